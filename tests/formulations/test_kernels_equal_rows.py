"""Per constraint family: the numpy kernel equals the Pyomo rows (formulations/two_stage/).

On >= 20 random small cases (generated instances of 1-3 depots, 2-7 weeks, 1-3 scenarios,
1-3 channels, with surge switched off or priced above the unserved penalty in some, and
random regional budgets), random first-stage decisions within their bounds are put into
the Pyomo model; the derived quantities come from the kernels. Then every row of every
family is evaluated by Pyomo: definition rows have zero residual, inequality rows have the
slack the kernel says, and the objective equals the kernels' cost. A second route checks
the closed-form recourse: HiGHS on the model with the first stage fixed finds the same
expected cost as the evaluator.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyomo.environ as pyo
import pytest

import optplan
from formulations import two_stage
from formulations.data import Decisions
from formulations.two_stage.budgets import budget_usage
from formulations.two_stage.drivers import IncentiveCurve, onboarding_excess, simulate_drivers
from formulations.two_stage.layout import Layout
from formulations.two_stage.objective import cost_components
from formulations.two_stage.recourse import expected_recourse, optimal_recourse, recourse_cost
from optplan.evaluation.evaluator import evaluate_decisions

#: Residual of a row evaluated by Pyomo against the kernel (values of order 1e2-1e4).
ROW_ATOL = 1e-7
OBJ_RTOL = 1e-9
CASES = range(24)


def random_case(seed: int):
    """(ModelData, Decisions) of a random small instance and random feasible-bounds decisions."""
    rng = np.random.default_rng(seed)
    D, T, S, C = int(rng.integers(1, 4)), int(rng.integers(2, 8)), int(rng.integers(1, 4)), int(rng.integers(1, 4))
    data = optplan.generate_instance(depots=D, weeks=T, scenarios=S, channels=C, seed=seed).model_data()
    kind = seed % 3  # 0: as generated; 1: no surge; 2: surge dearer than going unserved
    if kind == 1:
        data = replace(data, surge_cap_share=0.0)
    elif kind == 2:
        data = replace(data, surge_cost=data.unserved_cost * 1.5)
    regions = tuple(f"r{i % 2}" for i in range(D))
    data = replace(data, regions=regions, budget_region={"r0": 5000.0 + 100 * seed})
    mask = data.recruit_mask()
    cap = np.where(np.isfinite(data.applicant_cap), data.applicant_cap, 50.0)[:, :, None]
    x = rng.uniform(0, 1, mask.shape) * cap * mask
    z = rng.uniform(0, 1, (D, T, data.incentive_width.shape[1])) * data.incentive_width[:, None, :]
    return data, Decisions(x, z)


def load(m: pyo.ConcreteModel, data, decisions: Decisions, recourse: bool = True) -> None:
    """Set every variable of ``m`` from the decisions and the kernels."""
    layout = Layout(data)
    xv, zv = layout.columns(decisions)
    for var, value in zip(m.applicants.values(), xv, strict=True):
        var.set_value(float(value), skip_validation=True)
    for var, value in zip(m.incentive_spend.values(), zv, strict=True):
        var.set_value(float(value), skip_validation=True)
    arrivals, active, capacity = simulate_drivers(data, decisions)
    for comp, arr in ((m.recruited_arrivals, arrivals), (m.active_drivers, active), (m.capacity_blocks, capacity)):
        for var, value in zip(comp.values(), arr.ravel(), strict=True):
            var.set_value(float(value), skip_validation=True)
    if recourse:
        for comp, arr in zip((m.surge_blocks, m.unserved_blocks, m.idle_blocks),
                             optimal_recourse(data, capacity, data.demand), strict=True):
            for var, value in zip(comp.values(), arr.ravel(), strict=True):
                var.set_value(float(value), skip_validation=True)


def residuals(con) -> np.ndarray:
    """body - upper (<= rows) or body - rhs (== rows), in row order."""
    out = []
    for row in con.values():
        body = pyo.value(row.body)
        out.append(body - (row.upper if row.upper is not None else row.lower))
    return np.asarray(out, float)


@pytest.mark.parametrize("seed", CASES)
def test_drivers_kernel_equals_rows(seed):
    """arrivals_definition, driver_stock, capacity_definition: zero residual at the kernels'
    values; onboarding_cap: the row's slack is the kernel's onboarding excess."""
    assert_drivers_rows_equal_kernels(*random_case(seed))


def assert_drivers_rows_equal_kernels(data, dec) -> None:
    """The drivers families' Pyomo rows at the kernels' values (test_drivers_kernel_equals_rows)."""
    m = two_stage.build_model(data)
    load(m, data, dec)
    for family in ("arrivals_definition", "driver_stock", "capacity_definition"):
        assert np.abs(residuals(m.component(family))).max() <= ROW_ATOL, family
    arrivals, _, _ = simulate_drivers(data, dec)
    rows = Layout(data).onboarding_rows()
    expected = np.array([onboarding_excess(data, arrivals)[d, t] for d, t in rows])
    assert len(m.onboarding_cap) == len(rows)
    np.testing.assert_allclose(residuals(m.onboarding_cap), expected, atol=ROW_ATOL)


@pytest.mark.parametrize("seed", CASES)
def test_recourse_kernel_equals_rows(seed):
    """demand_balance holds exactly at the closed-form recourse and surge_cap is met; with
    surge switched off the surge variables are fixed at 0 and the kernel buys none."""
    data, dec = random_case(seed)
    m = two_stage.build_model(data)
    load(m, data, dec)
    assert np.abs(residuals(m.demand_balance)).max() <= ROW_ATOL
    if data.surge_cap_share > 0:
        assert residuals(m.surge_cap).max() <= ROW_ATOL
    else:
        assert len(m.surge_cap) == 0 and all(v.ub == 0 for v in m.surge_blocks.values())
        assert all(v.value == 0 for v in m.surge_blocks.values())


@pytest.mark.parametrize("seed", CASES)
def test_budget_kernel_equals_rows(seed):
    """Every budget row's slack is the kernel's spend minus cap, row for row (Layout order)."""
    data, dec = random_case(seed)
    m = two_stage.build_model(data)
    load(m, data, dec, recourse=False)
    usage = budget_usage(data, dec)
    for family in ("budget_total", "budget_week", "budget_region"):
        keys, used, cap = usage[family]
        assert list(m.component(family).index_set()) == keys, family
        np.testing.assert_allclose(residuals(m.component(family)), used - cap, atol=ROW_ATOL * max(1.0, cap.max(initial=1)))


@pytest.mark.parametrize("seed", CASES)
def test_objective_kernel_equals_pyomo_objective(seed):
    data, dec = random_case(seed)
    m = two_stage.build_model(data)
    load(m, data, dec)
    _, _, capacity = simulate_drivers(data, dec)
    cost = cost_components(data, dec, *optimal_recourse(data, capacity, data.demand), data.probability)
    assert pyo.value(m.expected_cost) == pytest.approx(cost["total"], rel=OBJ_RTOL)


@pytest.mark.parametrize("seed", CASES)
def test_closed_form_recourse_is_the_lp_second_stage_optimum(seed):
    """Second route: fix the first stage in the Pyomo model, let HiGHS choose surge, unserved
    and idle; its optimum equals the evaluator's expected cost (closed-form recourse)."""
    from optplan.solvers.highs import solve_pyomo_model

    data, dec = random_case(seed)
    m = two_stage.build_model(data)
    load(m, data, dec, recourse=False)
    for comp in (m.applicants, m.incentive_spend):
        for var in comp.values():
            var.fix()
    for family in ("onboarding_cap", "budget_total", "budget_week", "budget_region"):  # random x may break them
        m.component(family).deactivate()
    status = solve_pyomo_model(m)
    assert status.optimal
    assert status.objective == pytest.approx(evaluate_decisions(data, dec).expected_cost, rel=1e-7)


def test_expected_recourse_is_convex_piecewise_linear_with_kinks_where_stated():
    """expected_recourse changes slope only at recourse_kinks (checked on a fine grid)."""
    from formulations.two_stage.recourse import recourse_kinks

    data, _ = random_case(0)
    demand, p = data.demand[0, 0], data.probability
    q = np.linspace(0, 1.5 * demand.max(), 20001)
    f = expected_recourse(data, q, demand, p)
    slope = np.diff(f) / np.diff(q)
    bends = q[1:-1][np.abs(np.diff(slope)) > 1e-6]
    kinks = recourse_kinks(data, demand)
    step = q[1] - q[0]
    assert all(np.min(np.abs(kinks - b)) <= 2 * step for b in bends)
    assert (np.diff(slope) >= -1e-6).all()  # convex (slopes non-decreasing up to rounding)


def test_incentive_curve_fills_best_rate_first_and_matches_the_rows():
    """IncentiveCurve.split gives per-segment spend whose blocks (rows' sum rate * z) equal
    the curve's blocks, and no cheaper split exists (segments in rate order)."""
    for seed in range(6):
        data, _ = random_case(seed)
        for d in range(len(data.depots)):
            curve = IncentiveCurve(data, d)
            for total in np.linspace(0, curve.max_spend, 7):
                z = curve.split(total)
                assert z.sum() == pytest.approx(total)
                assert float(z @ data.incentive_rate[d]) == pytest.approx(float(curve.blocks(total)))
                assert float(curve.spend_for(curve.blocks(total))) == pytest.approx(total, abs=1e-9)


def test_recourse_cost_prices_each_block_once():
    data, _ = random_case(1)
    assert recourse_cost(data, 1.0, 0.0, 0.0) == data.surge_cost
    assert recourse_cost(data, 0.0, 2.0, 0.0) == 2 * data.unserved_cost
    assert recourse_cost(data, 0.0, 0.0, 3.0) == 3 * data.idle_cost


@pytest.mark.parametrize("seed", CASES)
def test_drivers_by_impulse_response_equal_the_stock_flow(seed):
    """The DP's linear form of the driver stock (drivers.active_drivers_by_impulse: base plus
    each channel's applicants convolved with the impulse response) is the stock-flow kernel's
    active drivers, depot by depot (drivers; 1e-9)."""
    from formulations.two_stage.drivers import (
        active_drivers_by_impulse,
        drivers_without_recruiting,
        impulse_response,
    )

    data, dec = random_case(seed)
    _, active, _ = simulate_drivers(data, dec)
    for d in range(len(data.depots)):
        linear = active_drivers_by_impulse(drivers_without_recruiting(data, d), impulse_response(data, d),
                                           dec.applicants[d])
        np.testing.assert_allclose(linear, active[d], rtol=0, atol=1e-9 * max(1.0, float(np.abs(active[d]).max())))


@pytest.mark.parametrize("seed", CASES)
def test_the_arrivals_matrix_is_the_arrivals_kernel(seed):
    """drivers.arrivals_matrix (the DP's deconvolution operator) applied to each depot's
    applicants of each channel gives recruited_arrivals (drivers/week; 1e-9)."""
    from formulations.two_stage.drivers import arrivals_matrix, recruited_arrivals

    data, dec = random_case(seed)
    want = recruited_arrivals(data, dec.applicants)
    got = sum(dec.applicants[:, c, :] @ arrivals_matrix(data, c).T for c in range(len(data.channels)))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9 * max(1.0, float(np.abs(want).max())))
