"""Drivers' earnings floor (issue #12 part 3): each depot's expected blocks worked per active
driver-week at least e (targets.blocks_per_driver). Rows beside the other targets
(service.py), checked in the evaluator, against the Pyomo rows, by a sweep, by the slope of
the cost, and by the depot named when it cannot be met."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import OBJ_RTOL, REPO
from test_kernels_equal_rows import random_case

import optplan
from formulations import two_stage
from formulations.two_stage.matrix import aggregated_standard_form
from optplan.errors import InfeasibleError, InstanceError
from optplan.solvers.standard_form import standard_form

#: Blocks per driver-week a plan may fall short of its floor in the evaluator (LP tolerance).
FLOOR_ATOL = 1e-6


@pytest.fixture(scope="module")
def demo():
    return optplan.load_instance(REPO / "instances" / "demo")


def test_floor_holds_in_the_evaluator_and_cost_rises_with_it(demo):
    """D002 works 2.32 blocks per driver-week in the plain plan (its drivers offer 2.51): floors
    from 2.30 to 2.45 are held by every plan in the evaluator, which agrees with the LP, and
    the cost never falls as the floor rises."""
    costs = []
    for floor in np.linspace(2.30, 2.45, 4):
        inst = demo.with_changes({"targets.blocks_per_driver": float(floor)})
        plan = optplan.solve(inst, engine="highs")
        assert (plan.service["blocks_per_driver_week"] >= floor - FLOOR_ATOL).all()
        assert optplan.evaluate(plan, inst).expected_cost == pytest.approx(plan.status.objective, rel=OBJ_RTOL)
        costs.append(plan.status.objective)
    assert np.all(np.diff(costs) >= -1e-7 * costs[0]) and costs[-1] > costs[0]


def test_cost_per_point_is_the_slope_of_the_cost(demo):
    """targets.csv: cost per 1% of the floor = |dual| x driver-weeks x floor / 100 (envelope
    theorem); equals a central finite difference of the optimal cost."""
    floor, h = 2.36, 1e-5
    plan = optplan.solve(demo.with_changes({"targets.blocks_per_driver": floor}), engine="highs")
    up = optplan.solve(demo.with_changes({"targets.blocks_per_driver": floor + h}), engine="highs").status.objective
    down = optplan.solve(demo.with_changes({"targets.blocks_per_driver": floor - h}), engine="highs").status.objective
    t = plan.targets
    row = t[t["binding"]]
    assert list(row["depot"]) == ["D002"] and list(row["target"]) == ["blocks_per_driver"]
    assert float(row["cost_per_point"].iloc[0]) == pytest.approx((up - down) / (2 * h) * floor / 100, rel=1e-4)


@pytest.mark.parametrize("seed", range(4))
def test_array_build_is_the_pyomo_lp_with_an_earnings_floor(seed):
    data, _ = random_case(seed)
    data = dataclasses.replace(data, earnings_floor=np.full(len(data.depots), 1.5))
    pyomo = standard_form(two_stage.build_model(data, recourse="aggregated"))
    arrays = aggregated_standard_form(data)
    assert arrays.rows == pyomo.rows
    a, b = arrays.A.tocsr(), pyomo.A.tocsr()
    a.eliminate_zeros()
    b.eliminate_zeros()
    assert abs(a - b).max() <= 1e-12 * max(1.0, abs(b).max())
    np.testing.assert_allclose(arrays.row_lower, pyomo.row_lower, rtol=1e-12)


def test_an_unreachable_floor_names_its_depot(demo):
    with pytest.raises(InfeasibleError) as err:
        optplan.solve(demo.with_changes({"targets.blocks_per_driver": 3.2}), engine="highs")
    assert "earnings_floor (depots D002)" in str(err.value)


def test_bad_floor_values_are_refused(demo):
    for bad in (-1.0, float("inf"), 1e9):
        with pytest.raises(InstanceError):
            demo.with_changes({"targets.blocks_per_driver": bad})
    with pytest.raises(Exception, match="targets"):
        optplan.solve(demo.with_changes({"targets.blocks_per_driver": 2.3}), engine="dp")
