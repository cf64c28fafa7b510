"""The same problem two ways: LP vs evaluator, one scenario vs its mpi-sppy scenario model,
duplicated scenarios, permuted scenarios, and budget duals vs finite differences."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import OBJ_RTOL, build

import optplan
from formulations.two_stage import FIRST_STAGE_VARS, scenario_creator
from optplan.io.instance import from_tables
from optplan.solvers.base import SolveOptions
from optplan.solvers.highs import compile_to_highs

#: Relative tolerance between the shadow price and a finite-difference slope of the optimum.
SLOPE_RTOL = 1e-4


def _tables(inst):
    return {k: v.copy() for k, v in inst.tables.items()}


def test_evaluator_equals_lp_objective_on_demo(demo_path):
    inst = optplan.load_instance(demo_path)
    plan = optplan.solve(inst)
    ev = optplan.evaluate(plan, inst)
    assert ev.expected_cost == pytest.approx(plan.status.objective, rel=OBJ_RTOL)
    assert ev.violations == {}
    for key in ("recruiting", "planned_incentives", "surge", "unserved_penalty", "idle_penalty"):
        assert ev.cost[key] == pytest.approx(plan.cost[key], rel=1e-5, abs=1e-3)


@pytest.mark.parametrize(
    "depots,weeks,scenarios,seed,channels",
    [(1, 3, 1, 0, 1), (2, 6, 3, 1, 2), (3, 8, 5, 2, 3), (4, 10, 4, 3, 4), (5, 12, 10, 4, 3),
     (6, 9, 6, 5, 5), (8, 16, 8, 6, 3), (10, 13, 12, 7, 2), (3, 26, 7, 8, 3), (12, 20, 6, 9, 4)],
)
def test_evaluator_equals_lp_objective_on_generated(depots, weeks, scenarios, seed, channels):
    inst = optplan.generate_instance(depots=depots, weeks=weeks, scenarios=scenarios, seed=seed, channels=channels)
    plan = optplan.solve(inst)
    ev = optplan.evaluate(plan, inst)
    assert ev.expected_cost == pytest.approx(plan.status.objective, rel=OBJ_RTOL)
    assert ev.violations == {}
    # the evaluator recomputes the stock-flow itself: it must match the LP's values
    np.testing.assert_allclose(ev.active_drivers, plan.active_drivers, rtol=1e-6, atol=1e-6)
    # the light cost (no KPIs; the orders' repair step) is the same number from the same kernels
    from optplan.evaluation.evaluator import expected_cost

    assert expected_cost(inst.model_data(), plan.decisions) == ev.expected_cost


def test_one_scenario_equals_its_scenario_model():
    """One-scenario instance: the extensive form equals the mpi-sppy scenario model
    (weight 1) built by scenario_creator, solved separately."""
    inst = optplan.generate_instance(depots=3, weeks=8, scenarios=1, seed=11)
    plan = optplan.solve(inst)
    data = inst.model_data()
    model = scenario_creator(data.scenarios[0], data)
    assert model._mpisppy_probability == pytest.approx(1.0)
    assert [c.local_name for c in (getattr(model, n) for n in FIRST_STAGE_VARS)] == list(FIRST_STAGE_VARS)
    compiled = compile_to_highs(model, SolveOptions())
    compiled.highs.run()
    assert compiled.highs.getInfo().objective_function_value == pytest.approx(plan.status.objective, rel=OBJ_RTOL)


def test_scenario_models_add_up_to_the_extensive_form():
    """With the EF's first stage fixed, sum_s p_s * (scenario model objective) equals the EF
    objective: the scenario models carry exactly the EF's per-scenario costs."""
    inst = optplan.generate_instance(depots=2, weeks=6, scenarios=4, seed=3)
    plan = optplan.solve(inst)
    data = inst.model_data()
    total = 0.0
    for s, p in zip(data.scenarios, data.probability, strict=False):
        m = scenario_creator(s, data)
        # pin the first stage by equal bounds (the compiler drops fixed variables)
        for d, c, t in m.RECRUIT:
            x = plan.decisions.applicants[data.depots.index(d), data.channels.index(c), t - 1]
            m.applicants[d, c, t].setlb(x)
            m.applicants[d, c, t].setub(x)
        for d, t, g in m.SEGMENTS:
            z = plan.decisions.incentive_spend[data.depots.index(d), t - 1, g - 1]
            m.incentive_spend[d, t, g].setlb(z)
            m.incentive_spend[d, t, g].setub(z)
        compiled = compile_to_highs(m, SolveOptions())
        compiled.highs.run()
        total += p * compiled.highs.getInfo().objective_function_value
    assert total == pytest.approx(plan.status.objective, rel=OBJ_RTOL)


def test_duplicating_a_scenario_with_split_probability_changes_nothing():
    inst = optplan.generate_instance(depots=3, weeks=8, scenarios=4, seed=5)
    base = optplan.solve(inst)
    t = _tables(inst)
    sc = t["scenarios"]
    first = sc["scenario"].iloc[0]
    p = sc["probability"].iloc[0]
    sc.loc[sc.index[0], "probability"] = p / 2
    t["scenarios"] = pd.concat([sc, pd.DataFrame({"scenario": ["twin"], "probability": [p / 2]})], ignore_index=True)
    dem = t["demand"]
    twin = dem[dem["scenario"] == first].assign(scenario="twin")
    t["demand"] = pd.concat([dem, twin], ignore_index=True)
    split = optplan.solve(from_tables(inst.manifest, t))
    assert split.status.objective == pytest.approx(base.status.objective, rel=OBJ_RTOL)
    np.testing.assert_allclose(split.capacity_blocks, base.capacity_blocks, rtol=1e-6, atol=1e-6)


def test_scenario_order_does_not_matter():
    inst = optplan.generate_instance(depots=3, weeks=8, scenarios=5, seed=6)
    base = optplan.solve(inst)
    t = _tables(inst)
    t["scenarios"] = t["scenarios"].iloc[::-1].reset_index(drop=True)
    t["demand"] = t["demand"].sample(frac=1.0, random_state=0).reset_index(drop=True)
    shuffled = optplan.solve(from_tables(inst.manifest, t))
    assert shuffled.status.objective == pytest.approx(base.status.objective, rel=OBJ_RTOL)


def test_budget_shadow_price_is_the_slope_of_the_optimum():
    """Shadow price of the total budget = -(f(B + h) - f(B - h)) / 2h, both sides of B."""
    inst = optplan.generate_instance(depots=4, weeks=10, scenarios=6, seed=2, budget_tightness=0.3)
    plan = optplan.solve(inst)
    b = plan.budgets.set_index("scope").loc["total"]
    assert bool(b["binding"]) and b["shadow_price"] > 0
    h = 1e-3 * b["cap"]

    def optimum(cap):
        m = inst.manifest.model_copy(deep=True)
        m.budgets.total = cap
        return optplan.solve(from_tables(m, _tables(inst))).status.objective

    slope = -(optimum(b["cap"] + h) - optimum(b["cap"] - h)) / (2 * h)
    assert slope == pytest.approx(b["shadow_price"], rel=SLOPE_RTOL)


def test_evaluator_on_other_scenarios_and_a_perturbed_plan():
    """Out-of-sample evaluation works, and a plan that recruits less than optimal costs more
    in-sample (the LP plan is optimal for its own scenarios)."""
    inst = optplan.generate_instance(depots=3, weeks=10, scenarios=6, seed=4)
    other = optplan.generate_instance(depots=3, weeks=10, scenarios=20, seed=99)
    plan = optplan.solve(inst)
    fresh = other.tables["demand"]
    oos = optplan.evaluate(plan, inst, scenarios=fresh)
    assert oos.kpis["expected_demand_blocks"] == pytest.approx(
        other.tables["demand"]["blocks"].sum() / 20, rel=1e-9)
    from optplan.evaluation.evaluator import Decisions, evaluate_decisions

    half = Decisions(plan.decisions.applicants * 0.5, plan.decisions.incentive_spend)
    assert evaluate_decisions(inst.model_data(), half).expected_cost > plan.status.objective


def test_solves_are_deterministic(tmp_path):
    inst = optplan.generate_instance(depots=4, weeks=10, scenarios=5, seed=8)
    optplan.solve(inst).write(tmp_path / "a")
    optplan.solve(inst).write(tmp_path / "b")
    for f in sorted((tmp_path / "a").iterdir()):
        assert f.read_bytes() == (tmp_path / "b" / f.name).read_bytes(), f.name


def test_mpisppy_extensive_form_from_our_scenario_creator_matches():
    """mpi-sppy builds its own extensive form from optplan's scenario_creator (its protocol:
    probability, root node with first-stage cost and variables); solved by HiGHS through
    Pyomo's appsi interface it gives optplan's objective."""
    import pyomo.environ as pyo
    from mpisppy.utils import sputils

    inst = optplan.generate_instance(depots=3, weeks=8, scenarios=4, seed=3)
    data = inst.model_data()
    ef = sputils.create_EF(list(data.scenarios), scenario_creator, scenario_creator_kwargs={"data": data})
    pyo.SolverFactory("appsi_highs").solve(ef)
    assert pyo.value(ef.EF_Obj) == pytest.approx(optplan.solve(inst).status.objective, rel=OBJ_RTOL)


def test_both_customers_kpis_by_hand(spec):
    """tiny_spec, nothing recruited: week 1 has 9 drivers (18 blocks) against 20, week 2
    8.1 drivers (16.2 blocks) against 30: nothing idle, so every offered block is worked
    (utilisation 1), 34.2 blocks over 17.1 driver-weeks = 2 blocks per driver-week, and 15.8
    of 50 blocks unserved (service 0.684). With demand halved, week 1 leaves 8 blocks idle and
    week 2 1.2: utilisation (34.2 - 9.2) / 34.2, 25 blocks worked / 17.1 driver-weeks."""
    from dataclasses import replace

    from formulations.data import Decisions
    from formulations.two_stage.service import service_kpis
    from optplan.evaluation.evaluator import evaluate_decisions

    data = build(spec).model_data()
    nothing = Decisions(np.zeros_like(data.recruit_mask(), dtype=float),
                        np.zeros((1, data.n_weeks, data.incentive_width.shape[1])))
    k = evaluate_decisions(data, nothing).kpis
    assert k["driver_utilisation"] == pytest.approx(1.0)
    assert k["blocks_per_driver_week"] == pytest.approx(34.2 / 17.1)
    assert k["service_level"] == pytest.approx(1 - 15.8 / 50)
    half = replace(data, demand=data.demand / 2)
    e = evaluate_decisions(half, nothing)
    assert e.kpis["driver_utilisation"] == pytest.approx((34.2 - 9.2) / 34.2)
    assert e.kpis["blocks_per_driver_week"] == pytest.approx(25.0 / 17.1)
    per_depot = service_kpis(half.demand, e.unserved_blocks, e.idle_blocks, e.capacity_blocks, e.active_drivers,
                             half.probability)
    assert per_depot["driver_utilisation"][0] == pytest.approx(e.kpis["driver_utilisation"])
