"""Weekly re-planning (issue #13 part 1): the state format, the remaining instance, and the
re-plan checked against the original solve two ways (week 1 equals it; from the state the
plan expects at week k, the plan ahead costs exactly what the original plan's remaining
weeks cost: the principle of optimality)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import OBJ_RTOL, X_ATOL, build, tiny_spec

import optplan
from formulations.data import Decisions
from optplan.cli import main
from optplan.errors import InstanceError
from optplan.evaluation.evaluator import evaluate_decisions
from optplan.planning.replan import State, expected_state, initial_state, load_state, remaining_instance, replan, state_from_tables


@pytest.fixture(scope="module")
def demo(demo_path):
    inst = optplan.load_instance(demo_path)
    return inst, optplan.solve(inst)


def test_week_one_from_the_instances_own_state_is_the_original_solve(demo):
    inst, plan = demo
    r = replan(inst, initial_state(inst))
    assert r.plan.status.objective == pytest.approx(plan.status.objective, rel=OBJ_RTOL)
    np.testing.assert_allclose(r.plan.decisions.applicants, plan.decisions.applicants, atol=X_ATOL)
    np.testing.assert_allclose(r.plan.decisions.incentive_spend, plan.decisions.incentive_spend, atol=X_ATOL)


@pytest.mark.parametrize("week", [2, 5, 9, 12])
def test_nothing_changed_the_plan_ahead_costs_the_original_remaining_weeks(demo, week):
    """From the state the plan expects at week k, the re-plan's optimum equals the cost of the
    original plan's weeks k..T evaluated on the remaining instance (feasible there, and no
    cheaper tail exists: else the original would not have been optimal)."""
    inst, plan = demo
    r = replan(inst, expected_state(inst, plan, week))
    tail = Decisions(plan.decisions.applicants[:, :, week - 1:], plan.decisions.incentive_spend[:, week - 1:, :])
    ev = evaluate_decisions(r.remaining.model_data(), tail)
    assert ev.violations == {}
    assert r.plan.status.objective == pytest.approx(ev.expected_cost, rel=OBJ_RTOL)
    # the evaluator of the remaining instance agrees with the re-plan's LP too
    assert r.plan.evaluation.expected_cost == pytest.approx(r.plan.status.objective, rel=OBJ_RTOL)
    assert r.remaining.n_weeks == inst.n_weeks - week + 1


def test_remaining_instance_by_hand():
    """Tiny instance (conftest.tiny_spec: yield 0.5 at lag 1, 2 weeks, cost 10 USD/applicant)
    with a total budget of 100 USD. State at week 2: 7 drivers, 6 applicants recruited in week
    1, 30 USD spent. Remaining: 1 week starting 2027-01-11, 7 drivers at the start, a pipeline
    of 6 x 0.5 = 3 drivers in its week 1, a budget of 100 - 30 = 70 USD, week-2 demand only."""
    spec = tiny_spec()
    spec["manifest"]["budgets"] = {"total": 100.0}
    inst = build(spec)
    state = State(week=2, drivers=pd.DataFrame({"depot": ["A"], "active_drivers": [7.0]}),
                  recruited=pd.DataFrame({"depot": ["A"], "channel": ["ads"], "week": [1], "applicants": [6.0]}),
                  spend_total=30.0)
    rem = remaining_instance(inst, state)
    assert rem.n_weeks == 1
    assert str(rem.manifest.horizon.start_date) == "2027-01-11"
    assert rem.manifest.budgets.total == pytest.approx(70.0)
    assert rem.tables["depots"]["active_drivers"].tolist() == [7.0]
    pip = rem.tables["pipeline"]
    assert pip[["depot", "week"]].values.tolist() == [["A", 1]]
    assert pip["new_drivers"].iloc[0] == pytest.approx(3.0)
    dem = rem.tables["demand"]
    assert dem["week"].tolist() == [1] and dem["blocks"].tolist() == [30.0]
    # week 2 by hand: drivers 0.9 x 7 + 3 = 9.3, capacity 18.6 blocks against 30: 11.4 unserved x 100 USD;
    # recruiting in the last week cannot help (arrivals a week later, past the horizon)
    r = replan(inst, state)
    assert r.plan.status.objective == pytest.approx(11.4 * 100.0, rel=OBJ_RTOL)
    assert r.this_week.empty


def test_a_state_pipeline_replaces_the_kernel_and_the_instance_pipeline():
    inst = build(tiny_spec())
    state = State(week=2, drivers=pd.DataFrame({"depot": ["A"], "active_drivers": [7.0]}),
                  recruited=pd.DataFrame({"depot": ["A"], "channel": ["ads"], "week": [1], "applicants": [6.0]}),
                  pipeline=pd.DataFrame({"depot": ["A"], "week": [2], "new_drivers": [1.25]}))
    pip = remaining_instance(inst, state).tables["pipeline"]
    assert pip["new_drivers"].tolist() == [1.25]


def test_spend_beyond_the_budget_leaves_nothing_to_spend(demo):
    inst, plan = demo
    state = expected_state(inst, plan, 3)
    state.spend_total = 1e9
    r = replan(inst, state)
    assert r.remaining.manifest.budgets.total == 0.0
    assert r.plan.decisions.applicants.sum() == pytest.approx(0.0, abs=X_ATOL)


def test_cost_ahead_is_convex_in_the_drivers_on_hand(demo):
    """The drivers on hand enter the LP's right-hand side linearly, so the optimal cost ahead
    is a convex function of them (LP value functions are convex in the RHS): more drivers is
    not always cheaper (idle blocks cost 25 USD each), but the midpoint never costs more than
    the mean of the ends. Scaling all depots by 0.8, 1.0, 1.2."""
    inst, plan = demo
    costs = []
    for f in (0.8, 1.0, 1.2):
        st = expected_state(inst, plan, 4)
        st.drivers["active_drivers"] *= f
        costs.append(replan(inst, st).plan.status.objective)
    assert costs[1] <= (costs[0] + costs[2]) / 2 + 1e-6
    assert len({round(c, 6) for c in costs}) == 3  # the drivers on hand do move the cost


def test_state_files_round_trip(demo, tmp_path):
    inst, plan = demo
    state = expected_state(inst, plan, 6)
    back = load_state(state.write(tmp_path / "st"), inst)
    assert back.week == 6 and back.spend_total == pytest.approx(state.spend_total, rel=1e-9)
    np.testing.assert_allclose(back.drivers["active_drivers"], state.drivers["active_drivers"], rtol=1e-9)
    a, b = replan(inst, state), replan(inst, back)
    assert a.plan.status.objective == pytest.approx(b.plan.status.objective, rel=1e-8)


BAD_STATES = {
    "unknown depot": ("drivers", {"depot": ["D001", "D002", "D003", "D004", "D005", "D999"],
                                  "active_drivers": [1, 1, 1, 1, 1, 1]}, ["drivers.csv:7", "depot", "D999"]),
    "missing depot": ("drivers", {"depot": ["D001"], "active_drivers": [1]}, ["drivers.csv", "every depot", "D002"]),
    "negative drivers": ("drivers", {"depot": ["D001", "D002", "D003", "D004", "D005"],
                                     "active_drivers": [1, -1, 1, 1, 1]}, ["drivers.csv:3", "active_drivers", "-1"]),
    "recruited in the future": ("recruited", {"depot": ["D001"], "channel": ["referral"], "week": [4], "applicants": [2]},
                                ["recruited.csv:2", "week", "before the state's week 4"]),
    "unknown channel": ("recruited", {"depot": ["D001"], "channel": ["tv"], "week": [1], "applicants": [2]},
                        ["recruited.csv:2", "channel", "tv"]),
}


@pytest.mark.parametrize("case", sorted(BAD_STATES))
def test_bad_state_files_give_one_line_per_problem_and_exit_2(demo, demo_path, tmp_path, case):
    inst, plan = demo
    table, content, fragments = BAD_STATES[case]
    folder = expected_state(inst, plan, 4).write(tmp_path / "st")
    pd.DataFrame(content).to_csv(folder / f"{table}.csv", index=False)
    with pytest.raises(InstanceError) as err:
        load_state(folder, inst)
    assert any(all(f in str(p) for f in fragments) for p in err.value.problems), [str(p) for p in err.value.problems]
    r = CliRunner().invoke(main, ["replan", str(demo_path), "--state", str(folder), "--out", str(tmp_path / "out")])
    assert r.exit_code == 2, r.output
    assert not (tmp_path / "out").exists()


def test_state_week_beyond_the_horizon_and_bad_yaml(demo, tmp_path):
    inst, _ = demo
    with pytest.raises(InstanceError) as err:
        state_from_tables({"week": 13}, {"drivers": inst.tables["depots"][["depot", "active_drivers"]]}, inst)
    assert "a week in 1..12" in str(err.value.problems[0])
    with pytest.raises(InstanceError) as err:
        state_from_tables({"week": 3, "spend_to_date": {"total": float("inf")}},
                          {"drivers": inst.tables["depots"][["depot", "active_drivers"]]}, inst)
    assert "spend_to_date.total" in str(err.value.problems[0])


def test_cli_state_template_then_replan(demo_path, tmp_path):
    runner = CliRunner()
    r = runner.invoke(main, ["state", str(demo_path), "--week", "5", "--out", str(tmp_path / "st")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["replan", str(demo_path), "--state", str(tmp_path / "st"), "--out", str(tmp_path / "rp")])
    assert r.exit_code == 0, r.output
    week = pd.read_csv(tmp_path / "rp" / "this_week.csv")
    applicants = pd.read_csv(tmp_path / "rp" / "applicants.csv")
    first = applicants[(applicants["week"] == 1) & (applicants["applicants"] > 0)]
    assert set(week["week"]) <= {5}
    assert week.loc[week["action"] == "recruit", "applicants"].sum() == pytest.approx(first["applicants"].sum(), rel=1e-6)
    assert (tmp_path / "rp" / "instance" / "instance.yaml").exists()
    assert optplan.load_instance(tmp_path / "rp" / "instance").n_weeks == 8


def two_scenario_tiny(weeks: int = 3):
    """conftest.tiny_spec over 3 weeks (or more) with two equally likely scenarios: 'low' (20, 30,
    30, ... blocks) and 'high' (24, 36, 36, ...)."""
    spec = tiny_spec()
    spec["manifest"]["horizon"]["weeks"] = weeks
    spec["scenarios"] = [{"scenario": "low", "probability": 0.5}, {"scenario": "high", "probability": 0.5}]
    spec["demand"] = {("A", w, s): (20.0 if w == 1 else 30.0) * (1.2 if s == "high" else 1.0) for s in ("low", "high")
                      for w in range(1, weeks + 1)}
    return build(spec)


def test_demand_seen_reweights_the_scenarios_by_hand(tmp_path):
    """Week 1 saw 20 blocks (sd 0.05, no correlation). The noise each scenario implies:
    (log(20/20) + 0.00125)/0.05 = 0.025 for 'low', (log(20/24) + 0.00125)/0.05 = -3.62143 for
    'high'; P(low) = 1 / (1 + exp(-(3.62143^2 - 0.025^2)/2)) = 0.998582. The remaining
    instance carries those probabilities, read from state files, and replan says them."""
    inst = two_scenario_tiny()
    folder = tmp_path / "st"
    State(week=2, drivers=pd.DataFrame({"depot": ["A"], "active_drivers": [9.0]}),
          demand_seen=pd.DataFrame({"depot": ["A"], "week": [1], "blocks": [20.0]}), noise_sd=0.05,
          noise_ar=0.0).write(folder)
    state = load_state(folder, inst)
    assert state.noise_ar == 0.0 and len(state.demand_seen) == 1
    rem = remaining_instance(inst, state)
    sc = rem.tables["scenarios"].set_index("scenario")["probability"]
    assert sc["low"] == pytest.approx(0.998582, abs=1e-6) and sc["high"] == pytest.approx(0.001418, abs=1e-6)
    assert "given the demand of weeks 1..1" in rem.manifest.description
    inst.write(tmp_path / "inst")
    r = CliRunner().invoke(main, ["replan", str(tmp_path / "inst"), "--state", str(folder), "--out", str(tmp_path / "rp")])
    assert r.exit_code == 0, r.output
    assert "low 0.999, high 0.001 (of 2; was 0.500, 0.500)" in r.output
    # without demand_seen: the instance's own probabilities
    plain = remaining_instance(inst, State(week=2, drivers=pd.DataFrame({"depot": ["A"], "active_drivers": [9.0]})))
    assert plain.tables["scenarios"]["probability"].tolist() == [0.5, 0.5]


def test_demand_no_scenario_explains_is_said(tmp_path):
    """Issue #32 part 2: week 1 saw 40 blocks where the scenarios have 20 and 24 (sd 0.05). The
    best-explaining scenario, 'high', implies the noise (log(40/24) + 0.00125)/0.05 = 10.241, a
    chi-square of 104.9 with one degree of freedom: tail probability about 1e-24, below
    UNEXPLAINED_TAIL, and the re-plan says no scenario explains it. 20 blocks (noise 0.025 for
    'low': tail 0.98) says nothing of the kind."""
    from scipy.stats import chi2

    from optplan.evaluation.sampling import ScenarioPosterior
    from optplan.planning.replan import UNEXPLAINED_TAIL, scenario_probabilities

    inst = two_scenario_tiny()
    data = inst.model_data()
    for blocks, said in ((40.0, True), (20.0, False)):
        state = State(week=2, drivers=pd.DataFrame({"depot": ["A"], "active_drivers": [9.0]}),
                      demand_seen=pd.DataFrame({"depot": ["A"], "week": [1], "blocks": [blocks]}), noise_sd=0.05,
                      noise_ar=0.0)
        notes = []
        scenario_probabilities(inst, state, notes)
        assert any("no scenario explains the demand seen" in n for n in notes) == said, notes
        post = ScenarioPosterior(data, 1, 0.05, 0.0)
        post.update(np.array([[blocks]]))
        e = (np.log(blocks / (24.0 if said else 20.0)) + 0.5 * 0.05**2) / 0.05
        assert post.explained()[0] == pytest.approx(chi2.sf(e**2, 1), rel=1e-9)
        assert (post.explained()[0] < UNEXPLAINED_TAIL) == said
    folder = tmp_path / "st"
    State(week=2, drivers=pd.DataFrame({"depot": ["A"], "active_drivers": [9.0]}),
          demand_seen=pd.DataFrame({"depot": ["A"], "week": [1], "blocks": [40.0]}), noise_sd=0.05,
          noise_ar=0.0).write(folder)
    inst.write(tmp_path / "inst")
    r = CliRunner().invoke(main, ["replan", str(tmp_path / "inst"), "--state", str(folder), "--out", str(tmp_path / "rp")])
    assert r.exit_code == 0, r.output
    assert "no scenario explains the demand seen" in r.output, r.output


def test_demand_seen_from_the_future_is_one_line(tmp_path):
    inst = two_scenario_tiny()
    folder = tmp_path / "st"
    State(week=2, drivers=pd.DataFrame({"depot": ["A"], "active_drivers": [9.0]}),
          demand_seen=pd.DataFrame({"depot": ["A", "B"], "week": [2, 1], "blocks": [20.0, 5.0]})).write(folder)
    with pytest.raises(InstanceError) as err:
        load_state(folder, inst)
    text = str(err.value)
    assert "demand_seen.csv:2: field 'week'" in text and "a week before the state's week 2" in text
    assert "demand_seen.csv:3: field 'depot'" in text and "unknown depot 'B'" in text


def test_a_demand_seen_row_no_scenario_explains_is_left_out_not_wiping_the_rest(tmp_path):
    """Week 1 saw 20 blocks (the 'low' scenario's, as above: P(low) = 0.998582) and week 2 saw 0
    where both scenarios have demand: that row would rule out every scenario and fall back to
    the prior; it is left out with a warning, and week 1's evidence stands. With sd 0 and
    nothing equal to a scenario, the prior is kept and replan says why."""
    from optplan.planning.replan import scenario_probabilities

    inst = two_scenario_tiny()
    state = State(week=3, drivers=pd.DataFrame({"depot": ["A"], "active_drivers": [9.0]}),
                  demand_seen=pd.DataFrame({"depot": ["A", "A"], "week": [1, 2], "blocks": [20.0, 0.0]}),
                  noise_sd=0.05, noise_ar=0.0)
    notes: list[str] = []
    prob = scenario_probabilities(inst, state, notes)
    assert prob[inst.scenarios.index("low")] == pytest.approx(0.998582, abs=1e-6)
    assert len(notes) == 1 and "A week 2: 0 blocks where every scenario has some" in notes[0]
    exact = State(week=2, drivers=state.drivers, demand_seen=pd.DataFrame({"depot": ["A"], "week": [1], "blocks": [21.0]}),
                  noise_sd=0.0, noise_ar=0.0)
    notes = []
    np.testing.assert_allclose(scenario_probabilities(inst, exact, notes), [0.5, 0.5])
    assert len(notes) == 1 and "no scenario equals what was seen" in notes[0]
    exact.write(tmp_path / "st")
    inst.write(tmp_path / "inst")
    r = CliRunner().invoke(main, ["replan", str(tmp_path / "inst"), "--state", str(tmp_path / "st"),
                                  "--out", str(tmp_path / "rp")])
    assert r.exit_code == 0 and "warning: demand_seen: no scenario equals" in r.output


def test_a_noise_sd_too_small_to_compute_is_refused(tmp_path):
    inst = two_scenario_tiny()
    State(week=2, drivers=pd.DataFrame({"depot": ["A"], "active_drivers": [9.0]}),
          demand_seen=pd.DataFrame({"depot": ["A"], "week": [1], "blocks": [20.0]}), noise_sd=1e-300,
          noise_ar=0.0).write(tmp_path / "st")
    with pytest.raises(InstanceError) as err:
        load_state(tmp_path / "st", inst)
    assert "demand_noise.sd" in str(err.value) and "at least 0.001" in str(err.value)


def test_reforecast_relevels_the_scenarios_when_none_explains_the_demand(tmp_path):
    """Issue #32 part 1, `replan --reforecast`: weeks 1-3 saw 40, 60, 60 blocks where the scenarios
    have 20, 30, 30 and 24, 36, 36 (probabilities 0.5 each, mean 22, 33, 33): each week 1.818 x
    the forecast, 5/3 x the most likely scenario (10 noise sds of 0.05 every week: a new level),
    so the level is 40 / 22 (no spread to shrink by), the weeks ahead are every scenario times
    it, with the instance's probabilities. 20, 30, 30 (explained): the re-plan weighs the
    scenarios as without --reforecast. 26, 22.5, 39 (1.3, 0.75, 1.3 x 'low': the check fails,
    but the weeks straddle every scenario: wider noise, not a level): no re-forecast, and the
    warning says which."""
    from optplan.planning.replan import reforecast_levels, scenario_probabilities

    inst = two_scenario_tiny(weeks=5)
    drivers = pd.DataFrame({"depot": ["A"], "active_drivers": [9.0]})

    def seen_as(blocks):
        return pd.DataFrame({"depot": ["A"] * 3, "week": [1, 2, 3], "blocks": blocks})

    seen = State(week=4, drivers=drivers, demand_seen=seen_as([40.0, 60.0, 60.0]), noise_sd=0.05, noise_ar=0.0)
    assert reforecast_levels(inst, seen) == {"A": pytest.approx(40.0 / 22.0, rel=1e-12)}
    rem = remaining_instance(inst, seen, reforecast=True)
    base = inst.tables["demand"]
    base = base[base["week"] > 3].assign(week=lambda d: d["week"] - 3).set_index(["scenario", "week"])["blocks"]
    got = rem.tables["demand"].set_index(["scenario", "week"])["blocks"]
    pd.testing.assert_series_equal(got.sort_index(), (base * 40.0 / 22.0).sort_index(), check_dtype=False)
    assert rem.tables["scenarios"]["probability"].tolist() == [0.5, 0.5]
    assert "Re-forecast" in rem.manifest.description
    explained = replace(seen, demand_seen=seen_as([20.0, 30.0, 30.0]))
    assert reforecast_levels(inst, explained) is None
    pd.testing.assert_frame_equal(remaining_instance(inst, explained).tables["scenarios"],
                                  remaining_instance(inst, explained, reforecast=False).tables["scenarios"])
    wide = replace(seen, demand_seen=seen_as([26.0, 22.5, 39.0]))
    assert reforecast_levels(inst, wide) is None
    notes: list[str] = []
    prob = scenario_probabilities(inst, wide, notes)
    assert any("no depot shows a new level" in n for n in notes), notes
    # the weights integrate the noise's scale out (Student-t, nu0 = NOISE_PRIOR_WEIGHT = 2, n = 3 weeks):
    # SS_s = sum_w ((log(seen / scenario) + sd^2 / 2) / sd)^2, weight (1 + SS_s / 2)^(-5/2); low 0.53
    # where the Gaussian exp(-SS_s / 2) would give it 0.91
    sd = 0.05
    ss = {s: sum(((np.log(b / d) + sd**2 / 2) / sd) ** 2 for b, d in zip([26.0, 22.5, 39.0], scen, strict=True))
          for s, scen in (("low", [20.0, 30.0, 30.0]), ("high", [24.0, 36.0, 36.0]))}
    weight = {s: (1 + v / 2) ** -2.5 for s, v in ss.items()}
    assert prob[0] == pytest.approx(weight["low"] / (weight["low"] + weight["high"]), rel=1e-9)
    assert 0.5 < prob[0] < 0.55
    notes = []
    scenario_probabilities(inst, seen, notes)
    assert any("a new level at A" in n for n in notes), notes
    folder = tmp_path / "st"
    seen.write(folder)
    inst.write(tmp_path / "inst")
    # the default (the stress-world study's most robust policy) re-forecasts; --no-reforecast weighs the scenarios
    r = CliRunner().invoke(main, ["replan", str(tmp_path / "inst"), "--state", str(folder), "--out", str(tmp_path / "rp")])
    assert r.exit_code == 0, r.output
    assert "re-forecast (no scenario explains the demand seen, and it shows a new level)" in r.output, r.output
    assert "A x1.818" in r.output, r.output
    r = CliRunner().invoke(main, ["replan", str(tmp_path / "inst"), "--state", str(folder), "--out", str(tmp_path / "rp2"),
                                  "--no-reforecast"])
    assert r.exit_code == 0, r.output
    assert "re-forecast (no scenario" not in r.output and "high 1.000, low 0.000" in r.output, r.output
    kept = pd.read_csv(tmp_path / "rp2" / "instance" / "scenarios.csv")  # 'low' below 1e-9: dropped
    assert kept["scenario"].tolist() == ["high"] and kept["probability"].tolist() == [1.0]
    assert pd.read_csv(tmp_path / "rp" / "instance" / "scenarios.csv")["probability"].tolist() == [0.5, 0.5]
