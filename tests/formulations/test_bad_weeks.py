"""Bad weeks (issue #12 part 2): each depot's service level over the horizon at least y in a
share q of the scenarios, stated as its CVaR approximation CVaR_q(shortfall) <= 0 (an LP
that implies the chance constraint). Checked by hand, in the evaluator (the chance
constraint holds for the plan), against GLOP, by a sweep, and by the refusals."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import OBJ_RTOL, X_ATOL, build, tiny_spec

import optplan
from formulations.two_stage.service import scenario_shortfall
from optplan.errors import InstanceError, OptionError


def two_scenarios(targets=None):
    spec = tiny_spec()
    spec["scenarios"] = [{"scenario": "lo", "probability": 0.5}, {"scenario": "hi", "probability": 0.5}]
    spec["demand"] = {("A", 1, "lo"): 20.0, ("A", 2, "lo"): 30.0, ("A", 1, "hi"): 20.0, ("A", 2, "hi"): 40.0}
    spec["manifest"]["penalties"] = {"unserved_cost_per_block": 20.0, "idle_cost_per_block": 5.0}
    if targets:
        spec["manifest"]["targets"] = targets
    return build(spec)


def test_hand_worked():
    """Two equally likely scenarios, week-2 demand 30 or 40 blocks (week 1: 20, served 18 by
    the 9 drivers left), unserved 20 USD/block, idle 5, an applicant 10 USD for 1 block in
    week 2 (0.5 drivers x 2 blocks). Plain: capacity 30 (a block more costs 10 + 0.5 x 5 and
    saves 0.5 x 20), x = 13.8, cost 138 + 2 x 20 + 0.5 x 10 x 20 = 278 USD. Bad weeks, y = 0.9
    in q = 0.5 of scenarios: CVaR_0.5 is the worse scenario's shortfall, so 'hi' must serve
    0.9 x 60 = 54 blocks: 18 + c2 >= 54, c2 = 36, x = 19.8; cost 198 + 40 + 0.5 x 6 x 5 +
    0.5 x 4 x 20 = 293 USD."""
    plain = optplan.solve(two_scenarios())
    assert plain.status.objective == pytest.approx(278.0, rel=OBJ_RTOL)
    inst = two_scenarios({"scenario_service_level": 0.9, "scenario_service_share": 0.5})
    plan = optplan.solve(inst)
    assert plan.status.objective == pytest.approx(293.0, rel=OBJ_RTOL)
    assert plan.decisions.applicants.ravel() == pytest.approx([19.8, 0.0], abs=X_ATOL)
    assert optplan.evaluate(plan, inst).expected_cost == pytest.approx(293.0, rel=OBJ_RTOL)
    row = plan.targets.iloc[0]
    assert row["target"] == "bad_week_service" and row["binding"] and row["achieved_share"] == pytest.approx(1.0)
    glop = optplan.solve(inst, engine="glop")
    assert glop.status.objective == pytest.approx(293.0, rel=OBJ_RTOL)


@pytest.fixture(scope="module")
def gen():
    inst = optplan.generate_instance(depots=3, weeks=8, scenarios=10, seed=5)
    return inst.with_changes({"budgets.total": None, "budgets.weekly": None})


@pytest.mark.parametrize("share", [0.5, 0.8, 0.9])
def test_the_chance_constraint_holds_in_the_evaluator(gen, share):
    """The plan the CVaR form gives meets y in at least the share q of scenarios at every
    depot (by the evaluator's own recourse), and the LP agrees with the evaluator."""
    base = optplan.solve(gen)
    served = 1 - base.evaluation.unserved_blocks.sum(axis=1) / gen.model_data().demand.sum(axis=1)  # (D, S)
    y = float(served.min()) + 0.5 * (1 - float(served.min()))  # halfway from the plain plan's worst to 1
    inst = gen.with_changes({"targets.scenario_service_level": y, "targets.scenario_service_share": share})
    plan = optplan.solve(inst)
    data = inst.model_data()
    met = scenario_shortfall(data, data.demand, plan.evaluation.unserved_blocks) <= 1e-6  # (D, S)
    assert ((met * data.probability).sum(axis=1) >= share - 1e-9).all()
    assert optplan.evaluate(plan, inst).expected_cost == pytest.approx(plan.status.objective, rel=OBJ_RTOL)
    assert plan.status.objective > base.status.objective  # the target moves the plan


def test_cost_rises_with_the_level_and_the_share(gen):
    costs = [optplan.solve(gen.with_changes({"targets.scenario_service_level": y,
                                             "targets.scenario_service_share": q})).status.objective
             for y, q in ((0.95, 0.5), (0.98, 0.5), (0.98, 0.8), (0.99, 0.9))]
    assert np.all(np.diff(costs) >= -1e-6)


def test_refusals(gen):
    bad = gen.with_changes({"targets.scenario_service_level": 0.95})
    with pytest.raises(OptionError, match="extensive"):
        optplan.solve(bad, formulation="aggregated")
    with pytest.raises(OptionError):
        optplan.solve(bad, engine="dp")
    with pytest.raises(InstanceError, match="cannot plan both"):  # validate says it too (issue #33)
        bad.with_changes({"targets.service_level": 0.9})
    with pytest.raises(InstanceError):
        gen.with_changes({"targets.scenario_service_share": 1.0})


def test_a_bad_week_target_on_long_lead_weeks_is_refused_by_validate_not_blamed_on_an_option(tmp_path):
    """Long-lead periods with weekly demand are planned on the aggregated recourse, a bad-week
    target needs the extensive form: no engine or option plans both, so validate refuses the
    instance (solve used to blame --formulation extensive, an option the user never gave)."""
    from click.testing import CliRunner

    from optplan.cli import main

    folder = tmp_path / "3y"
    r = CliRunner().invoke(main, ["generate", "--depots", "2", "--weeks", "60", "--periods", "long-lead",
                                  "--scenarios", "3", "--out", str(folder)])
    assert r.exit_code == 0, r.output
    text = (folder / "instance.yaml").read_text()
    (folder / "instance.yaml").write_text(text.replace("targets:", "targets:\n  scenario_service_level: 0.9", 1)
                                          if "targets:" in text else text + "targets:\n  scenario_service_level: 0.9\n")
    for command in (["validate", str(folder)], ["solve", str(folder), "--out", str(tmp_path / "o")]):
        r = CliRunner().invoke(main, command)
        assert r.exit_code == 2, r.output
        assert "targets.scenario_service_level" in r.output and "long-lead" in r.output
        assert "--formulation" not in r.output and "extensive" not in r.output.split("(")[0]
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------ the chance form (a MIP)


def test_chance_form_by_hand():
    """The same two scenarios. With q = 0.5 the chance constraint only needs one scenario to
    serve 90%: the plain plan (capacity 30) serves 'lo' 48 of 50 blocks (96%), so it already
    holds and the optimum stays 278 USD, where the CVaR form (conservative) pays 293. With
    q = 0.6 both scenarios must meet it (each has 0.5), so 'hi' must serve 54 of 60: 293 USD
    again, x = 19.8."""
    for share, cost, applicants in ((0.5, 278.0, 13.8), (0.6, 293.0, 19.8)):
        inst = two_scenarios({"scenario_service_level": 0.9, "scenario_service_share": share,
                              "scenario_service_form": "chance"})
        plan = optplan.solve(inst)
        assert plan.status.optimal and "mip" in plan.engine
        assert plan.status.objective == pytest.approx(cost, rel=OBJ_RTOL)
        assert plan.decisions.applicants.ravel() == pytest.approx([applicants, 0.0], abs=X_ATOL)
        assert plan.targets.iloc[0]["achieved_share"] >= share
    cvar_form = optplan.solve(two_scenarios({"scenario_service_level": 0.9, "scenario_service_share": 0.5}))
    assert cvar_form.status.objective == pytest.approx(293.0, rel=OBJ_RTOL)


def test_chance_form_equals_enumerating_the_met_scenarios():
    """One depot, six scenarios: the MIP's optimum is the least cost over every set of
    scenarios that must meet y (probability >= q), each an LP with those binaries fixed;
    the plan meets y in >= q of the scenarios by the evaluator; and it costs no more than the
    CVaR form, which implies the chance constraint."""
    import itertools

    from formulations import two_stage
    from optplan.solvers.highs import solve_pyomo_model

    inst = optplan.generate_instance(depots=1, weeks=6, scenarios=6, seed=7).with_changes(
        {"budgets.total": None, "budgets.weekly": None})
    base = optplan.solve(inst)
    served = 1 - base.evaluation.unserved_blocks.sum(axis=1) / inst.model_data().demand.sum(axis=1)
    y, q = float(served.min()) + 0.6 * (1 - float(served.min())), 0.6
    chance = inst.with_changes({"targets.scenario_service_level": y, "targets.scenario_service_share": q,
                                "targets.scenario_service_form": "chance"})
    plan = optplan.solve(chance)
    data = chance.model_data()
    best = np.inf
    S = len(data.scenarios)
    for size in range(S + 1):
        for keep in itertools.combinations(range(S), size):
            if data.probability[list(keep)].sum() < q - 1e-12:
                continue
            m = two_stage.build_model(data)
            for s, name in enumerate(data.scenarios):
                m.service_met[data.depots[0], name].fix(1 if s in keep else 0)
            status = solve_pyomo_model(m)
            if status.optimal:
                best = min(best, status.objective)
    assert plan.status.objective == pytest.approx(best, rel=1e-6)
    met = scenario_shortfall(data, data.demand, plan.evaluation.unserved_blocks) <= 1e-6
    assert (met * data.probability).sum() >= q - 1e-9
    cvar_form = optplan.solve(chance.with_changes({"targets.scenario_service_form": "cvar"}))
    assert plan.status.objective <= cvar_form.status.objective * (1 + 1e-9)


def test_chance_form_needs_a_mip_engine():
    inst = two_scenarios({"scenario_service_level": 0.9, "scenario_service_share": 0.5,
                          "scenario_service_form": "chance"})
    with pytest.raises(OptionError, match="MIP"):
        optplan.solve(inst, engine="glop")
    with pytest.raises(InstanceError):
        two_scenarios({"scenario_service_level": 0.9, "scenario_service_form": "mip"})
