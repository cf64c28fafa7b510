"""Driver supply by week (issue #15 part 4): b[d,t] blocks per active driver in week t
(supply.csv) instead of one b[d] per depot. By hand, by another route (a supply constant in
time is the depot's blocks_per_driver), LP against the evaluator, the Pyomo rows against the
array build, re-planning, validation and the engines that cannot state it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import OBJ_RTOL, X_ATOL, build, tiny_spec

import optplan
from optplan.errors import InstanceError


def with_supply(inst, rows):
    """``inst`` with a supply table of (depot, week, blocks_per_driver) rows, validated."""
    table = pd.DataFrame(rows, columns=["depot", "week", "blocks_per_driver"])
    return optplan.from_tables(inst.manifest, {**inst.tables, "supply": table})


def test_hand_worked():
    """tiny_spec: 9 drivers in week 1 (10 x 0.9), 8.1 + 0.5 x in week 2 for x applicants of
    week 1 (10 USD each). Constant 2 blocks: week 1 serves 18 of 20 (2 unserved, 200 USD),
    week 2 needs 2 (8.1 + 0.5 x) = 30, x = 13.8 (138 USD): 338 USD. With 2.5 blocks in
    week 1 and 3 in week 2: week 1 offers 22.5 (2.5 idle, 12.5 USD); week 2 needs
    3 (8.1 + 0.5 x) = 30, x = 3.8 (38 USD): 50.5 USD."""
    base = build(tiny_spec())
    plain = optplan.solve(base)
    assert plain.status.objective == pytest.approx(338.0, rel=OBJ_RTOL)
    inst = with_supply(base, [("A", 1, 2.5), ("A", 2, 3.0)])
    plan = optplan.solve(inst)
    assert plan.status.objective == pytest.approx(50.5, rel=OBJ_RTOL)
    assert plan.decisions.applicants.ravel() == pytest.approx([3.8, 0.0], abs=X_ATOL)
    assert plan.evaluation.expected_cost == pytest.approx(50.5, rel=OBJ_RTOL)
    # a week left out keeps the depot's constant: only week 2 at 3 blocks
    only2 = optplan.solve(with_supply(base, [("A", 2, 3.0)]))
    assert only2.status.objective == pytest.approx(238.0, rel=OBJ_RTOL)


@pytest.fixture(scope="module")
def gen():
    return optplan.generate_instance(depots=3, weeks=10, scenarios=5, seed=4, budget_tightness=0.7)


def test_supply_constant_in_time_is_the_depots_blocks_per_driver(gen):
    """Another route: supply.csv with c_d x b_d every week (rows for every week) against
    depots.csv with blocks_per_driver = c_d x b_d and no supply table."""
    factor = {d: f for d, f in zip(gen.depots, (0.8, 1.0, 1.3), strict=True)}
    dep = gen.tables["depots"].copy()
    rows = [(d, w, float(b) * factor[d]) for d, b in zip(dep["depot"], dep["blocks_per_driver"], strict=True)
            for w in range(1, gen.n_weeks + 1)]
    by_table = optplan.solve(with_supply(gen, rows))
    dep["blocks_per_driver"] = [float(b) * factor[d] for d, b in zip(dep["depot"], dep["blocks_per_driver"],
                                                                     strict=True)]
    by_depot = optplan.solve(optplan.from_tables(gen.manifest, {**gen.tables, "depots": dep}))
    assert by_table.status.objective == pytest.approx(by_depot.status.objective, rel=1e-9)
    np.testing.assert_allclose(by_table.decisions.applicants, by_depot.decisions.applicants, atol=1e-6)
    same = optplan.solve(with_supply(gen, [(d, 3, float(b)) for d, b in zip(gen.tables["depots"]["depot"],
                                                                             gen.tables["depots"]["blocks_per_driver"],
                                                                             strict=True)]))
    assert not with_supply(gen, [(gen.depots[0], 3, float(gen.tables["depots"]["blocks_per_driver"].iloc[0]))]) \
        .model_data().has_weekly_supply
    assert same.status.objective == pytest.approx(optplan.solve(gen).status.objective, rel=1e-9)


def seasonal(inst):
    rng = np.random.default_rng(0)
    dep = inst.tables["depots"]
    return with_supply(inst, [(d, w, float(b) * float(rng.uniform(0.6, 1.4)))
                              for d, b in zip(dep["depot"], dep["blocks_per_driver"], strict=True)
                              for w in range(1, inst.n_weeks + 1)])


def test_seasonal_supply_lp_equals_evaluator_and_pyomo_equals_arrays(gen):
    from formulations import two_stage
    from formulations.two_stage.matrix import aggregated_standard_form
    from optplan.solvers.standard_form import standard_form

    inst = seasonal(gen)
    data = inst.model_data()
    assert data.has_weekly_supply
    plan = optplan.solve(inst)
    assert plan.evaluation.expected_cost == pytest.approx(plan.status.objective, rel=OBJ_RTOL)
    ext = optplan.solve(inst, formulation="extensive", engine="glop")
    assert ext.status.objective == pytest.approx(plan.status.objective, rel=1e-7)
    a = aggregated_standard_form(data).A.tocsr()
    b = standard_form(two_stage.build_model(data, recourse="aggregated")).A.tocsr()
    a.eliminate_zeros()
    b.eliminate_zeros()
    assert abs(a - b).max() <= 1e-12 * abs(b).max()
    # capacity = b[d,t] x active + incentive blocks, week by week
    from formulations.two_stage.drivers import incentive_blocks

    expected = data.supply * plan.evaluation.active_drivers + incentive_blocks(data, plan.decisions.incentive_spend)
    np.testing.assert_allclose(plan.evaluation.capacity_blocks, expected, rtol=1e-12)


def test_supply_is_written_and_read_back(gen, tmp_path):
    inst = seasonal(gen)
    folder = inst.write(tmp_path / "seasonal")
    assert (folder / "supply.csv").exists()
    back = optplan.load_instance(folder)
    np.testing.assert_array_equal(back.model_data().supply, inst.model_data().supply)


def test_replanning_keeps_the_weeks_supply(gen):
    """From the plan's expected state at week 4, the plan ahead costs what the original plan's
    remaining weeks cost (the remaining instance's supply is weeks 4..T of the original)."""
    from optplan.planning.replan import expected_state, remaining_instance

    inst = seasonal(gen)
    plan = optplan.solve(inst)
    rem = remaining_instance(inst, expected_state(inst, plan, 4))
    np.testing.assert_array_equal(rem.model_data().supply, inst.model_data().supply[:, 3:])


def test_every_engine_plans_it(gen):
    """Supply by week is stated by every engine: the decomposition (its subproblems are the
    aggregated program) within 0.1 % of HiGHS, the DP (capacity b[d,t] a[t] in its week
    costs) within 2 %; the simulation's DP rule runs on it."""
    inst = seasonal(gen)
    exact = optplan.solve(inst, engine="auto")
    assert "highs" in exact.engine
    assert optplan.solve(inst, engine="decompose", backend="serial").status.objective == pytest.approx(
        exact.status.objective, rel=1e-3)
    dp = optplan.solve(inst, engine="dp")
    assert exact.status.objective <= dp.status.objective <= exact.status.objective * 1.02
    from optplan.evaluation.policy import simulate

    table = simulate(inst.model_data(), exact.decisions, n_paths=5, policies=("static", "dp", "basestock"),
                     tune_paths=4)
    assert set(table["policy"]) == {"static", "dp", "basestock"}


def test_bad_supply_rows_are_named():
    base = build(tiny_spec())
    for rows, field in (([("A", 3, 2.0)], "week"), ([("B", 1, 2.0)], "depot"), ([("A", 1, 0.0)], "blocks_per_driver"),
                        ([("A", 1, 2.0), ("A", 1, 3.0)], "week")):
        with pytest.raises(InstanceError) as err:
            with_supply(base, rows)
        assert field in str(err.value)
