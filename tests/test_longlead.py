"""Long-lead instances (issue #14 part 3): horizon.periods in the instance format, the
generator's long-lead layout, a hand-worked two-period instance, periods of one week that
are the weekly instance, and the commands that step week by week refusing cleanly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import OBJ_RTOL, REPO, build, tiny_spec

import optplan
from optplan.cli import main
from optplan.errors import InstanceError, OptionError
from optplan.io.instance import from_tables
from optplan.io.periods import in_periods, long_lead_runs, parse_periods, period_lengths

#: The issue's bound for "equals the weekly instance".
SAME_RTOL = 1e-9


def cli(*args):
    return CliRunner().invoke(main, list(map(str, args)))


def two_period_spec() -> dict:
    """The tiny instance (conftest.tiny_spec) over 3 weeks in periods of 1 and 2 weeks:
    demand 20 blocks in period 1 (week 1) and 60 over period 2 (weeks 2-3)."""
    spec = tiny_spec()
    spec["manifest"]["horizon"].update({"weeks": 3, "periods": [{"weeks": 1, "count": 1}, {"weeks": 2, "count": 1}]})
    spec["demand"] = {("A", 1, "base"): 20.0, ("A", 2, "base"): 60.0}
    return spec


def test_two_periods_by_hand():
    """rho = 0.9, 10 drivers, 2 blocks per driver-week, yield 0.5 at lag 1, 10 USD per applicant,
    unserved 100 USD/block, idle 5 USD/block.

    Period 1 (week 1): 9 drivers, 18 blocks: 2 unserved (200 USD); nothing recruited lands in it.
    Period 2 (weeks 2-3): the 9 drivers give sigma = 0.9 + 0.81 = 1.71 driver-weeks each
    (30.78 blocks). An applicant of period 1 arrives in week 2 with probability 0.5: Y = 0.5,
    psi = (2 + 0.9)/2 = 1.45 driver-weeks per arrival (arrivals even over the period), so
    1.45 blocks per applicant (6.90 USD/block); one of period 2 lands inside it only from
    week 2: Y = 0.5 x 0.5 = 0.25 (0.725 blocks, 13.79 USD/block). The LP recruits
    (60 - 30.78) / 1.45 applicants in period 1: cost 200 + 10 x 20.1517 = 401.517 USD."""
    inst = build(two_period_spec())
    data = inst.model_data()
    assert data.has_periods and data.n_weeks == 2
    plan = optplan.solve(inst, engine="highs")
    x1 = (60.0 - 1.71 * 9.0 * 2.0) / 1.45
    assert plan.decisions.applicants[0, 0, 0] == pytest.approx(x1, rel=OBJ_RTOL)
    assert plan.decisions.applicants[0, 0, 1] == pytest.approx(0.0, abs=1e-9)
    assert plan.status.objective == pytest.approx(200.0 + 10.0 * x1, rel=OBJ_RTOL)
    np.testing.assert_allclose(plan.active_drivers[0], [9.0, 0.81 * 9.0 + 0.95 * 0.5 * x1], rtol=OBJ_RTOL)
    ev = optplan.evaluate(plan, inst)
    assert ev.expected_cost == pytest.approx(plan.status.objective, rel=OBJ_RTOL)
    # the plan's tables name a period by its first week and say how long it is
    drivers = plan.drivers
    assert drivers["week"].tolist() == [1, 2] and drivers["weeks"].tolist() == [1, 2]
    assert plan.applicants["week"].tolist() == [1]


def test_weekly_periods_are_the_weekly_instance(demo_path):
    """horizon.periods of twelve one-week periods: the same arrays, plan and cost as the demo."""
    demo = optplan.load_instance(demo_path)
    manifest = demo.manifest.model_dump(mode="json")
    manifest["horizon"]["periods"] = [{"weeks": 1, "count": demo.n_weeks}]
    same = from_tables(manifest, demo.tables)
    a, b = demo.model_data(), same.model_data()
    assert not b.has_periods
    for field in ("demand", "pipeline", "budget_weekly", "yield_kernel", "retention"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    pa, pb = optplan.solve(demo, engine="highs"), optplan.solve(same, engine="highs")
    assert pb.status.objective == pytest.approx(pa.status.objective, rel=SAME_RTOL)
    np.testing.assert_allclose(pb.decisions.applicants, pa.decisions.applicants, atol=1e-9)


def test_long_lead_layout_and_period_sums():
    runs = long_lead_runs(156)
    L = period_lengths(runs)
    assert L.sum() == 156 and len(L) == 30
    assert (L[:13] == 1).all() and list(L[13:22]) == [4, 4, 5] * 3 and (L[22:] == 13).all()
    assert period_lengths(long_lead_runs(60))[-1] == 8  # what is left after week 52: one shorter period
    inst = optplan.generate_instance(depots=2, weeks=30, scenarios=3, seed=4)
    long = in_periods(inst, parse_periods("10x1,5x4", 30))
    weekly, period = inst.model_data(), long.model_data()
    starts = np.concatenate([[0], np.cumsum(period.period_length.astype(int))[:-1]])
    np.testing.assert_allclose(period.demand, np.add.reduceat(weekly.demand, starts, axis=1), atol=1e-6)
    np.testing.assert_allclose(period.pipeline, np.add.reduceat(weekly.pipeline, starts, axis=1), atol=1e-6)
    # a weekly budget of B per week caps a 4-week period at 4B
    np.testing.assert_allclose(period.budget_weekly, np.add.reduceat(weekly.budget_weekly, starts), rtol=1e-12)


def test_supply_by_week_is_averaged_over_each_period():
    inst = optplan.generate_instance(depots=2, weeks=8, scenarios=2, seed=3)
    tables = {k: v.copy() for k, v in inst.tables.items()}
    tables["supply"] = pd.DataFrame({"depot": ["D001", "D001"], "week": [5, 6], "blocks_per_driver": [1.0, 2.0]})
    manifest = inst.manifest.model_dump(mode="json")
    manifest["files"]["supply"] = "supply.csv"
    with_supply = from_tables(manifest, tables)
    long = in_periods(with_supply, parse_periods("4x1,1x4", 8))
    b = long.model_data().supply
    base = float(inst.tables["depots"]["blocks_per_driver"].iloc[0])
    assert b[0, 4] == pytest.approx((1.0 + 2.0 + 2 * base) / 4)  # weeks 5-8: two given, two the constant
    assert b[1, 4] == pytest.approx(float(inst.tables["depots"]["blocks_per_driver"].iloc[1]))


def test_bad_periods_are_one_line_each():
    spec = two_period_spec()
    spec["manifest"]["horizon"]["periods"] = [{"weeks": 1, "count": 1}, {"weeks": 3, "count": 1}]
    with pytest.raises(InstanceError) as err:
        build(spec)
    assert "field 'horizon.periods'" in str(err.value) and "1 x 1 + 1 x 3 = 4 weeks" in str(err.value)
    spec = two_period_spec()
    spec["demand"] = {("A", 1, "base"): 20.0, ("A", 3, "base"): 60.0}  # week 3 is inside period 2
    with pytest.raises(InstanceError) as err:
        build(spec)
    text = str(err.value)  # read as weekly demand (a week inside a period): week 2 is missing
    assert "no row for depot='A', week=2, scenario='base'" in text and "or one per period at its first week (1, 2)" in text
    spec["pipeline"] = [{"depot": "A", "week": 3, "new_drivers": 1.0}]  # pipeline rows are per period
    spec["demand"] = {("A", 1, "base"): 20.0, ("A", 2, "base"): 60.0}
    with pytest.raises(InstanceError) as err:
        build(spec)
    text = str(err.value)
    assert "pipeline.csv:2: field 'week'" in text and "the first week of a period" in text
    assert "Traceback" not in text
    with pytest.raises(OptionError, match="COUNTxWEEKS"):
        parse_periods("13 weeks", 13)
    with pytest.raises(OptionError, match="adding up to the horizon"):
        parse_periods("12x1", 13)


def test_shipped_long_lead_instance_is_the_generator_output(tmp_path):
    """instances/longlead is `optplan generate --depots 8 --weeks 156 --scenarios 10 --seed 11
    --budget-tightness 0.8 --periods long-lead --name longlead` (3 years in 30 periods)."""
    r = cli("generate", "--depots", 8, "--weeks", 156, "--scenarios", 10, "--seed", 11, "--budget-tightness", 0.8,
            "--periods", "long-lead", "--name", "longlead", "--out", tmp_path / "ll")
    assert r.exit_code == 0, r.output
    shipped = REPO / "instances" / "longlead"
    assert sorted(f.name for f in (tmp_path / "ll").iterdir()) == sorted(f.name for f in shipped.iterdir())
    for f in (tmp_path / "ll").iterdir():
        assert f.read_bytes() == (shipped / f.name).read_bytes(), f.name
    assert cli("generate", "--weeks", 10, "--periods", "3x4", "--out", tmp_path / "bad").exit_code == 2


def test_the_commands_that_step_week_by_week_refuse_periods(tmp_path):
    folder = REPO / "instances" / "longlead"
    r = cli("simulate", folder, "--out", tmp_path / "sim", "--paths", 2)
    assert r.exit_code == 2 and "long-lead periods" in r.output and "Traceback" not in r.output
    r = cli("solve", folder, "--engine", "dp", "--out", tmp_path / "dp")
    assert r.exit_code == 2 and "long-lead periods" in r.output
    from optplan.planning.replan import initial_state, replan

    inst = optplan.load_instance(folder)
    with pytest.raises(OptionError, match="long-lead periods"):
        replan(inst, initial_state(inst))


def test_out_of_sample_noise_stays_weekly_inside_periods():
    """A period's sampled demand is its scenario demand times the mean of its weeks' noise:
    with no correlation between weeks, a 13-week period's relative spread is about
    1/sqrt(13) of a week's (5% weekly: ~1.4%)."""
    from optplan.evaluation.sampling import sample_demand

    inst = optplan.load_instance(REPO / "instances" / "longlead")
    data = inst.model_data().with_scenarios([0])
    paths = sample_demand(data, 4000, np.random.default_rng(0), sigma=0.05, noise_ar=0.0)
    rel = paths / data.demand[None, :, :, 0]
    assert rel[:, :, :13].std() == pytest.approx(0.05, rel=0.05)
    assert rel[:, :, -1].std() == pytest.approx(0.05 / np.sqrt(13), rel=0.1)
    assert rel.mean() == pytest.approx(1.0, abs=2e-3)


def test_state_templates_and_messages_name_periods_by_their_first_week(tmp_path):
    """optplan state refuses a long-lead instance (its arrays are per period); an onboarding
    conflict names the period by its first week and the cap over the period."""
    from dataclasses import replace

    from formulations.two_stage.drivers import onboarding_conflicts
    from optplan.planning.replan import expected_state

    inst = optplan.load_instance(REPO / "instances" / "longlead")
    plan = optplan.solve(inst, engine="highs")
    with pytest.raises(OptionError, match="long-lead periods"):
        expected_state(inst, plan, 4)
    r = cli("state", REPO / "instances" / "longlead", "--week", 20, "--out", tmp_path / "st")
    assert r.exit_code == 2 and "long-lead periods" in r.output and not (tmp_path / "st").exists()
    data = inst.model_data()
    pipeline = np.zeros_like(data.pipeline)
    pipeline[0, 13] = 50.0  # period 14: weeks 14-17
    data = replace(data, pipeline=pipeline, onboarding_cap=np.full(len(data.depots), 10.0))
    assert onboarding_conflicts(data) == ["depot D001 week 14 (4 weeks): pipeline 50 > cap 40 drivers"]


def test_pipeline_compares_periods_as_runs():
    """Settings that write a run's keys in another order agree with the forecast's periods."""
    from optplan.planning.pipeline import _plain_horizon

    assert _plain_horizon("periods", [{"count": 13, "weeks": 1}]) == _plain_horizon("periods", [{"weeks": 1, "count": 13}])
    assert _plain_horizon("periods", [{"count": 13, "weeks": 1}]) != _plain_horizon("periods", [{"weeks": 13, "count": 1}])


def test_weekly_demand_in_a_long_lead_instance_is_settled_week_by_week():
    """instances/longlead gives demand.csv by week: the model holds period totals and each
    week's share; its out-of-sample evaluation without noise is its in-sample cost, and
    evaluating on its own weekly demand table by the API gives the same cost. Stated with
    period totals only, the same plan reads cheaper (weeks net out)."""
    from optplan.evaluation.sampling import OutOfSample
    from optplan.explain.report import out_of_sample

    inst = optplan.load_instance(REPO / "instances" / "longlead")
    assert inst.demand_by_week
    data = inst.model_data()
    assert data.has_week_profile and data.demand_share.shape == (8, 30, 10, 13)
    np.testing.assert_allclose(data.demand_share.sum(axis=3), 1.0, atol=1e-12)
    plan = optplan.solve(inst, engine="highs")
    cost = plan.cost["total"]
    oos = out_of_sample(plan, OutOfSample(paths=400, seed=1, noise_sd=0.0))
    assert oos["expected_cost"] == pytest.approx(cost, rel=0.03)  # 400 scenario draws: sampling error only
    table = inst.tables["demand"].assign(probability=lambda t: t["scenario"].map(
        inst.tables["scenarios"].set_index("scenario")["probability"]))
    again = optplan.evaluate(plan, inst, table.drop(columns=["_line"], errors="ignore"))
    assert again.expected_cost == pytest.approx(cost, rel=1e-9)
    from dataclasses import replace

    from optplan.evaluation.evaluator import evaluate_decisions, expected_cost

    even = evaluate_decisions(replace(data, demand_share=None), plan.decisions)  # period totals only
    assert even.expected_cost < 0.9 * cost
    # the light cost (the orders' repair step) settles week by week too: the same number
    assert expected_cost(data, plan.decisions) == evaluate_decisions(data, plan.decisions).expected_cost
    assert expected_cost(replace(data, demand_share=None), plan.decisions) == even.expected_cost


def test_a_week_typed_wrong_in_a_per_period_demand_table_is_one_line():
    """A per-period demand.csv with one row at a week inside a period is read per period (not
    as weekly demand with thousands of rows missing): the bad row is named."""
    weekly = optplan.generate_instance(depots=2, weeks=30, scenarios=2, seed=1)
    long = in_periods(weekly, parse_periods("10x1,5x4", 30), week_profile=False)
    tables = {k: v.drop(columns=[c for c in v.columns if c.startswith("_")]) for k, v in long.tables.items()}
    dem = tables["demand"].copy()
    dem.loc[dem.index[-1], "week"] = 28  # inside the last period (weeks 27-30)
    tables["demand"] = dem
    with pytest.raises(InstanceError) as err:
        from_tables(long.manifest.model_dump(mode="json"), tables)
    problems = err.value.problems
    assert any(p.field == "week" and "the first week of a period" in str(p) and "28" in str(p) for p in problems)
    assert len(problems) <= 3, [str(p) for p in problems]


def test_engines_that_cannot_settle_weeks_refuse_and_caches_tell_the_profiles_apart():
    """GLOP with CVaR (the extensive form) refuses weekly demand in periods with an OptionError
    and auto leaves it out; the decomposition's model cache tells data with and without week
    shares apart (it used to reuse the models of one for the other); the stochastic values'
    scenario-models route refuses."""
    from dataclasses import replace

    from optplan.explain.stochastic import optplan_values
    from optplan.solvers import SolveOptions, solve_data
    from optplan.solvers.auto import AutoEngine
    from optplan.solvers.decompose import DecomposeEngine

    weekly = optplan.generate_instance(depots=2, weeks=16, scenarios=3, seed=2, budget_tightness=0.7)
    data = in_periods(weekly, parse_periods("4x1,3x4", 16)).model_data()
    assert data.has_week_profile
    with pytest.raises(OptionError, match="weekly demand"):
        solve_data(data, SolveOptions(cvar_weight=0.5), "glop")
    r = solve_data(data, SolveOptions(cvar_weight=0.5), AutoEngine(chain=("glop", "highs")))
    assert "highs" in r.status.engine
    even = replace(data, demand_share=None)
    engine = DecomposeEngine(backend="serial")
    a = solve_data(data, SolveOptions(), engine).status.objective
    b = solve_data(even, SolveOptions(), engine).status.objective
    assert a == pytest.approx(solve_data(data, SolveOptions(), "highs").status.objective, rel=1e-3)
    assert b == pytest.approx(solve_data(even, SolveOptions(), "highs").status.objective, rel=1e-3)
    with pytest.raises(OptionError, match="engines for long-lead weekly demand"):
        optplan_values(data, route="scenario_models")
