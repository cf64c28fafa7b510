"""The polish's pieces against independent routes: its exact line search against a dense
brute force of the same 1-D function, its kept drivers against the stock-flow from scratch,
and a descent that never raises the cost and keeps every budget."""

from __future__ import annotations

import numpy as np
import pytest

from formulations.data import Decisions
from formulations.two_stage.drivers import active_drivers, recruited_arrivals
from optplan.evaluation.evaluator import check_feasibility, evaluate_decisions
from optplan.io.generate import generate_instance
from optplan.solvers.dp.depot import DepotModel
from optplan.solvers.dp.polish import Polisher, global_polish

#: The brute force evaluates the line on this many points; the exact search may beat it by a grid step.
BRUTE_POINTS = 20001


@pytest.fixture(scope="module")
def data():
    return generate_instance(depots=3, weeks=12, scenarios=5, seed=4, budget_tightness=0.8).model_data()


def _plan(data, seed):
    rng = np.random.default_rng(seed)
    mask = data.recruit_mask()
    cap = np.where(np.isfinite(data.applicant_cap), data.applicant_cap, 50.0)[:, :, None]
    return rng.uniform(0, 0.5, mask.shape) * cap * mask


@pytest.mark.parametrize("seed", range(5))
def test_exact_line_search_finds_the_minimum_of_the_line(data, seed):
    x = _plan(data, seed)
    pol = Polisher(DepotModel(data, 0), np.ones(data.n_weeks))
    Z = pol.best_incentives(x[0])
    q = pol.capacity(x[0], Z)
    dirs = pol.directions()
    rng = np.random.default_rng(seed)
    for m in rng.choice(len(dirs["DC"]), 8, replace=False):
        dq, dc = dirs["DQ"][m], float(dirs["DC"][m])
        lo, hi = -5.0, 7.0
        d, gain = pol.exact_line(q, dq, dc, lo, hi)
        steps = np.linspace(lo, hi, BRUTE_POINTS)
        line = dc * steps + pol.f(q[None, :] + steps[:, None] * dq[None, :]) - pol.f(q)
        assert lo <= d <= hi
        assert gain == pytest.approx(dc * d + pol.f(q + d * dq) - pol.f(q), abs=1e-6)  # the gain is the line's value
        assert gain <= line.min() + 1e-6  # no grid point does better
        assert gain <= 0.0


def test_kept_drivers_equal_the_stock_flow_after_moves(data):
    x = _plan(data, 1) * 0.2  # within the onboarding cap: a feasible start
    assert check_feasibility(data, Decisions(x, np.zeros((3, data.n_weeks, data.incentive_width.shape[1])))) == {}
    dep = DepotModel(data, 0)
    pol = Polisher(dep, np.full(data.n_weeks, 2.0))
    xd = x[0].copy()
    Z = pol.best_incentives(xd)
    before = pol.cost(xd, Z)
    moved, finished = pol.descend(xd, Z)
    assert finished and moved > 0
    assert pol.cost(xd, Z) < before
    arrivals = recruited_arrivals(data, xd[None])[0]
    np.testing.assert_allclose(pol.drivers(xd), active_drivers(data.for_depot(0), arrivals[None])[0], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(pol.arrivals(xd), arrivals, rtol=1e-9, atol=1e-9)


def test_global_polish_lowers_the_cost_and_keeps_every_budget(data):
    x = _plan(data, 2) * 0.2
    z = np.zeros((len(data.depots), data.n_weeks, data.incentive_width.shape[1]))
    assert check_feasibility(data, Decisions(x, z)) == {}
    deps = [DepotModel(data, d) for d in range(len(data.depots))]
    xp, zp, finished = global_polish(data, deps, x, z)
    assert finished
    assert check_feasibility(data, Decisions(xp, zp)) == {}
    assert evaluate_decisions(data, Decisions(xp, zp)).expected_cost < evaluate_decisions(data, Decisions(x, z)).expected_cost
