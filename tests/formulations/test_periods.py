"""Long-lead periods (formulations/two_stage/drivers.py, docs/formulation.md "Long-lead periods").

Three routes to the same numbers:
- hand-worked factors for one period length (rho = 0.9, L = 2 and L = 4);
- a weekly simulation: applicants spread evenly over each period's weeks, a kernel that
  lands at lag 0 (so arrivals are even within a period too) and a constant pipeline per
  period; the weekly kernels then give exactly what the period kernels give per period
  (arrivals, drivers at each period's end, capacity = the sum of the weeks' capacity);
- the period kernels against the Pyomo rows, and the array build against Pyomo's matrix.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from test_kernels_equal_rows import assert_drivers_rows_equal_kernels, random_case
from test_matrix_equals_pyomo import assert_same_lp

from formulations import two_stage
from formulations.data import Decisions
from formulations.two_stage.drivers import (
    driver_weeks,
    period_factors,
    period_yield_kernel,
    simulate_drivers,
)
from formulations.two_stage.matrix import aggregated_standard_form
from optplan.evaluation.evaluator import evaluate_decisions
from optplan.solvers import SolveOptions, solve_data
from optplan.solvers.standard_form import standard_form

#: Kernels against each other (sums of a few hundred terms of order 1e2).
KERNEL_ATOL = 1e-9
#: LP objective against the evaluator's expected cost (HiGHS feasibility ~1e-7 relative).
LP_RTOL = 1e-7


def random_periods(T: int, rng) -> np.ndarray:
    """Period lengths of 1-4 weeks adding up to T, at least one longer than a week when T > 1."""
    out, left = [], T
    while left:
        L = int(rng.integers(1, min(4, left) + 1))
        out.append(L)
        left -= L
    if all(L == 1 for L in out) and T > 1:
        out = [2] + [1] * (T - 2)
    return np.array(out)


def period_case(seed: int):
    """A random case (test_kernels_equal_rows.random_case) in random periods, with decisions
    within the period bounds (caps per week x L_t)."""
    data, _ = random_case(seed)
    rng = np.random.default_rng(1000 + seed)
    data = replace(data, n_weeks=data.n_weeks)  # a copy
    T = max(data.n_weeks, 3)
    if T != data.n_weeks:  # at least three weeks so that some period is longer than one week
        import optplan

        data = optplan.generate_instance(depots=2, weeks=T, scenarios=2, seed=seed).model_data()
    data = data.with_periods(random_periods(data.n_weeks, rng))
    D, C, Tp, _ = data.shape
    L = data.period_length
    cap = np.where(np.isfinite(data.applicant_cap), data.applicant_cap, 50.0)[:, :, None] * L[None, None, :]
    x = rng.uniform(0, 1, (D, C, Tp)) * cap * data.recruit_mask()
    z = rng.uniform(0, 1, (D, Tp, data.incentive_width.shape[1])) * data.incentive_width[:, None, :] * L[None, :, None]
    return data, Decisions(x, z)


def test_factors_by_hand():
    """rho = 0.9: L = 1 is the weekly step; L = 2: rho^2 = 0.81, phi = (1 + 0.9)/2 = 0.95,
    sigma = 0.9 + 0.81 = 1.71, psi = (2 + 0.9)/2 = 1.45, alpha = psi/phi, beta = sigma - alpha rho^2;
    L = 4 with rho = 1: phi = 1, alpha = (L+1)/2 = 2.5, beta = (L-1)/2 = 1.5."""
    import optplan

    data = optplan.generate_instance(depots=2, weeks=7, scenarios=1, seed=1).model_data()
    data = replace(data, retention=np.array([0.9, 1.0])).with_periods([1, 2, 4])
    keep, phi, alpha, beta = period_factors(data)
    np.testing.assert_allclose(keep[0], [0.9, 0.81, 0.9 ** 4])
    np.testing.assert_allclose(phi[0, :2], [1.0, 0.95])
    np.testing.assert_allclose(alpha[0, :2], [1.0, 1.45 / 0.95])
    np.testing.assert_allclose(beta[0, :2], [0.0, 1.71 - 1.45 / 0.95 * 0.81])
    np.testing.assert_allclose([keep[1, 2], phi[1, 2], alpha[1, 2], beta[1, 2]], [1.0, 1.0, 2.5, 1.5])


def test_period_yield_kernel_of_weekly_periods_is_the_shifted_weekly_kernel():
    import optplan

    data = optplan.generate_instance(depots=1, weeks=12, scenarios=1, channels=3, seed=2).model_data()
    Y = period_yield_kernel(replace(data, period_weeks=np.ones(12, int)))
    K = data.n_lags
    for s in range(12):
        for t in range(12):
            want = data.yield_kernel[:, t - s] if 0 <= t - s < K else 0.0
            np.testing.assert_array_equal(Y[:, s, t], want)


def test_period_yield_kernel_keeps_the_conversion_and_loses_only_what_lands_after_the_horizon():
    import optplan

    data = optplan.generate_instance(depots=1, weeks=60, scenarios=1, channels=2, seed=3).model_data()
    data = data.with_periods([1] * 8 + [4] * 5 + [13] * 2 + [6])
    Y = period_yield_kernel(data)
    conv = data.conversion()
    # applicants of period 1 land within the horizon: the whole conversion
    np.testing.assert_allclose(Y[:, 0].sum(axis=1), conv, atol=KERNEL_ATOL)
    # the last period's applicants land at most in the last period: less than the conversion
    assert (Y[:, -1, :-1] == 0).all() and (Y[:, -1, -1] < conv).all()
    assert (np.triu(np.ones((16, 16)), 0)[None] >= (Y > 0)).all()  # no arrival before its period


@pytest.mark.parametrize("seed", range(6))
def test_recruit_mask_is_where_the_period_yield_kernel_lands_inside_the_horizon(seed):
    """ModelData.recruit_mask states the index set without the drivers module (no import
    cycle): its twin is the period yield kernel, nonzero somewhere in the horizon."""
    data, _ = period_case(seed)
    lands = period_yield_kernel(data).sum(axis=2) > 0  # (C, T)
    expected = lands[None] & (data.applicant_cap[:, :, None] > 0)
    assert data.has_periods and (data.recruit_mask() == expected).all()


@pytest.mark.parametrize("seed", range(4))
def test_period_kernels_equal_a_weekly_simulation_with_even_weeks(seed):
    """Even applicants and arrivals within periods: the period model is exact."""
    import optplan

    rng = np.random.default_rng(seed)
    weekly = optplan.generate_instance(depots=2, weeks=20, scenarios=2, channels=2, seed=seed).model_data()
    kernel = np.zeros((2, 1))
    kernel[:, 0] = [0.3, 0.5]  # lag 0 only: arrivals even within a period when applicants are
    lengths = np.array([1, 2, 4, 4, 1, 8])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    pipeline_period = rng.uniform(0, 3, (2, len(lengths)))  # drivers per week, constant within a period
    supply_period = rng.uniform(8, 12, (2, len(lengths)))  # blocks per driver-week, constant within a period
    weekly = replace(weekly, yield_kernel=kernel, retention=np.array([0.97, 0.9]),
                     pipeline=np.repeat(pipeline_period, lengths, axis=1),
                     supply_by_week=np.repeat(supply_period, lengths, axis=1),
                     applicant_cap=np.full((2, 2), np.inf))
    period = weekly.with_periods(lengths)
    X = rng.uniform(0, 20, (2, 2, len(lengths)))  # applicants per period
    Z = rng.uniform(0, 1, (2, len(lengths), weekly.incentive_width.shape[1])) * weekly.incentive_width[:, None, :]
    x_week = np.repeat(X / lengths, lengths, axis=2)  # spread evenly
    z_week = np.repeat(Z, lengths, axis=1)  # Z currency/week in each week of the period
    arr_w, act_w, cap_w = simulate_drivers(weekly, Decisions(x_week, z_week))
    arr_p, act_p, cap_p = simulate_drivers(period, Decisions(X, Z * lengths[None, :, None]))
    np.testing.assert_allclose(arr_p, np.add.reduceat(arr_w, starts, axis=1), atol=KERNEL_ATOL)
    np.testing.assert_allclose(act_p, act_w[:, starts + lengths - 1], atol=KERNEL_ATOL)
    np.testing.assert_allclose(cap_p, np.add.reduceat(cap_w, starts, axis=1), atol=KERNEL_ATOL)
    np.testing.assert_allclose(driver_weeks(period, act_p), np.add.reduceat(act_w, starts, axis=1), atol=KERNEL_ATOL)
    # first-stage spend: the same money either way
    assert evaluate_decisions(period, Decisions(X, Z * lengths[None, :, None])).cost["recruiting"] == pytest.approx(
        evaluate_decisions(weekly, Decisions(x_week, z_week)).cost["recruiting"], rel=1e-12)


@pytest.mark.parametrize("seed", range(12))
def test_period_kernels_equal_rows(seed):
    data, dec = period_case(seed)
    assert data.has_periods
    assert_drivers_rows_equal_kernels(data, dec)


@pytest.mark.parametrize("seed", range(8))
def test_period_array_build_is_the_pyomo_lp(seed):
    data, _ = period_case(seed)
    D = len(data.depots)
    data = replace(data, earnings_floor=np.full(D, 5.0), utilisation_floor=np.full(D, 0.3))
    assert_same_lp(aggregated_standard_form(data), standard_form(two_stage.build_model(data, recourse="aggregated")))


@pytest.mark.parametrize("seed", range(4))
def test_period_lp_equals_the_evaluator(seed):
    """HiGHS on the period program: its objective is the evaluator's expected cost of its plan,
    and the plan keeps every period cap (caps per week x L_t)."""
    data, _ = period_case(seed)
    result = solve_data(data, SolveOptions(), engine="highs")
    ev = evaluate_decisions(data, result.decisions)
    assert result.status.optimal
    assert ev.expected_cost == pytest.approx(result.status.objective, rel=LP_RTOL)
    assert ev.violations == {}


def test_weekly_periods_are_the_weekly_program():
    """Periods of one week each: the same data, the same LP, the same optimum."""
    import optplan

    data = optplan.generate_instance(depots=3, weeks=10, scenarios=3, seed=5, budget_tightness=0.7).model_data()
    same = data.with_periods(np.ones(10, int))
    assert not same.has_periods
    a = solve_data(data, SolveOptions(), engine="highs")
    b = solve_data(same, SolveOptions(), engine="highs")
    assert b.status.objective == pytest.approx(a.status.objective, rel=1e-12)
    np.testing.assert_allclose(b.decisions.applicants, a.decisions.applicants, atol=1e-9)


def test_the_dp_refuses_periods_and_auto_skips_it():
    import optplan
    from optplan.errors import OptionError

    data = optplan.generate_instance(depots=2, weeks=8, scenarios=2, seed=6).model_data().with_periods([2, 2, 4])
    with pytest.raises(OptionError, match="long-lead periods"):
        solve_data(data, SolveOptions(), engine="dp")
    result = solve_data(data, SolveOptions(), engine="auto")
    assert result.status.optimal and "highs" in result.status.engine.lower()


# ---------------------------------------------------------------------- weeks inside a period


def test_week_profile_settles_the_recourse_week_by_week():
    """One period of 2 weeks with demand 10 and 30 (shares 1/4, 3/4) and capacity c per week
    (2c over the period): week by week, c - 10 idle and 30 - c unserved; the period total
    alone (40 against 2c) would net them. recourse.period_recourse gives the weekly numbers."""
    import optplan
    from formulations.two_stage.recourse import period_recourse

    weekly = optplan.generate_instance(depots=1, weeks=2, scenarios=1, seed=1).model_data()
    weekly = replace(weekly, demand=np.array([[[10.0], [30.0]]]), surge_cap_share=0.0)
    period = weekly.with_periods([2], week_profile=True)
    np.testing.assert_allclose(period.demand_share[0, 0, 0], [0.25, 0.75])
    c = 18.0
    surge, unserved, idle = period_recourse(period, np.array([[2 * c]]))
    assert unserved[0, 0, 0] == pytest.approx(30 - c) and idle[0, 0, 0] == pytest.approx(c - 10)
    _, unserved_even, idle_even = period_recourse(replace(period, demand_share=None), np.array([[2 * c]]))
    assert unserved_even[0, 0, 0] == pytest.approx(40 - 2 * c) and idle_even[0, 0, 0] == 0.0


@pytest.mark.parametrize("seed", range(3))
def test_week_profile_equals_the_weekly_evaluator_when_capacity_is_even_within_periods(seed):
    """Retention 1, recruiting (lag 0) only in the one-week periods, no pipeline, incentives
    even within a period: capacity is the same every week of a long period, so settling the
    recourse week by week is exact: the period evaluator's cost equals the weekly evaluator's
    (1e-9) on every component; without the profile it reads lower (weeks net out)."""
    import optplan

    rng = np.random.default_rng(seed)
    weekly = optplan.generate_instance(depots=2, weeks=20, scenarios=3, channels=2, seed=seed).model_data()
    kernel = np.zeros((2, 1))
    kernel[:, 0] = [0.4, 0.6]
    at_mean = weekly.demand.mean(axis=(1, 2)) / weekly.blocks_per_driver  # drivers for mean demand: weeks short and long
    weekly = replace(weekly, yield_kernel=kernel, retention=np.ones(2), pipeline=np.zeros((2, 20)),
                     applicant_cap=np.full((2, 2), np.inf), initial_active=0.95 * at_mean)
    lengths = np.array([1, 1, 1, 1, 4, 4, 8])
    period = weekly.with_periods(lengths, week_profile=True)
    X = np.zeros((2, 2, len(lengths)))
    X[:, :, :4] = rng.uniform(0, 3, (2, 2, 4))
    Z = rng.uniform(0, 1, (2, len(lengths), weekly.incentive_width.shape[1])) * weekly.incentive_width[:, None, :]
    x_week = np.repeat(X / lengths, lengths, axis=2)
    z_week = np.repeat(Z, lengths, axis=1)
    ev_w = evaluate_decisions(weekly, Decisions(x_week, z_week))
    ev_p = evaluate_decisions(period, Decisions(X, Z * lengths[None, :, None]))
    for part in ("recruiting", "planned_incentives", "surge", "unserved_penalty", "idle_penalty", "total"):
        assert ev_p.cost[part] == pytest.approx(ev_w.cost[part], rel=1e-9, abs=1e-9), part
    even = evaluate_decisions(replace(period, demand_share=None), Decisions(X, Z * lengths[None, :, None]))
    assert even.cost["total"] < ev_p.cost["total"]


@pytest.mark.parametrize("seed", range(4))
def test_week_profile_lp_equals_the_evaluator_and_the_pyomo_lp(seed):
    """The segment form over the week points: HiGHS's objective is the evaluator's expected
    cost (settled week by week), the array build is Pyomo's matrix, and with CVaR the cuts'
    objective is (1 - lambda) E + lambda CVaR by the evaluator."""
    import optplan

    weekly = optplan.generate_instance(depots=2, weeks=18, scenarios=3, seed=seed, budget_tightness=0.8).model_data()
    data = weekly.with_periods(random_periods(18, np.random.default_rng(seed)), week_profile=True)
    assert data.has_week_profile
    result = solve_data(data, SolveOptions(), engine="highs")
    ev = evaluate_decisions(data, result.decisions)
    assert ev.expected_cost == pytest.approx(result.status.objective, rel=LP_RTOL)
    assert_same_lp(aggregated_standard_form(data), standard_form(two_stage.build_model(data, recourse="aggregated")))
    lam = 0.5
    risky = solve_data(data, SolveOptions(cvar_weight=lam, cvar_alpha=0.8), engine="highs")
    ev = evaluate_decisions(replace(data, cvar_weight=lam, cvar_alpha=0.8), risky.decisions)
    assert (1 - lam) * ev.expected_cost + lam * ev.kpis["cvar_cost"] == pytest.approx(risky.status.objective, rel=LP_RTOL)
    # the cuts' own LP value (the bound) meets the plan's cost: the objective above is the
    # evaluator's kernel by construction, the bound is what the cut rows say
    assert risky.status.optimal and risky.status.bound == pytest.approx(risky.status.objective, rel=LP_RTOL)
    from optplan.errors import OptionError

    with pytest.raises(OptionError, match="weekly demand"):
        solve_data(data, SolveOptions(formulation="extensive"), engine="highs")


def test_mean_demand_keeps_the_mean_of_every_week():
    """The expected-value problem of weekly demand in periods: each week's mean demand is the
    mean scenario's share of the mean period total (the stochastic values' EV and EEV use it)."""
    import optplan

    weekly = optplan.generate_instance(depots=2, weeks=9, scenarios=4, seed=8).model_data()
    data = weekly.with_periods([1, 4, 4], week_profile=True)
    mean = data.with_mean_demand()
    assert mean.scenarios == ("mean",) and mean.demand_share.shape == (2, 3, 1, 4)
    want = np.einsum("dws,s->dw", weekly.demand, weekly.probability)  # (D, W) mean blocks per week
    got = (mean.demand_share[:, :, 0, :] * mean.demand[:, :, 0, None])  # (D, T, J)
    np.testing.assert_allclose(got[:, 0, 0], want[:, 0])
    np.testing.assert_allclose(got[:, 1, :], want[:, 1:5])
    np.testing.assert_allclose(got[:, 2, :], want[:, 5:9])


def test_period_recourse_of_some_depots_is_their_rows():
    """period_recourse(..., depots=[d]) with the data's own demand: depot d's rows of the full
    computation (the unreachable-target message reads it per depot)."""
    import optplan
    from formulations.two_stage.recourse import period_recourse

    weekly = optplan.generate_instance(depots=3, weeks=9, scenarios=2, seed=2).model_data()
    data = weekly.with_periods([1, 4, 4], week_profile=True)
    q = np.random.default_rng(0).uniform(50, 400, (3, 3))
    full = period_recourse(data, q)
    for d in range(3):
        part = period_recourse(data, q[[d]], depots=[d])
        for a, b in zip(part, full, strict=True):
            np.testing.assert_allclose(a[0], b[d])


def test_week_point_slopes_by_sorting_equal_the_direct_comparison():
    """The unserved and idle slopes of the week points are read by sorting
    (aggregated._weight_beyond); the direct (D, T, K, S') comparison gives the same."""
    import optplan
    from formulations.two_stage.aggregated import recourse_segments
    from formulations.two_stage.recourse import week_points

    weekly = optplan.generate_instance(depots=2, weeks=10, scenarios=3, seed=4).model_data()
    data = weekly.with_periods([2, 4, 4], week_profile=True)
    seg = recourse_segments(data)
    demand, w = week_points(data)
    starts = np.concatenate([np.zeros(seg.length.shape[:-1] + (1,)), np.cumsum(seg.length, axis=-1)[..., :-1]], axis=-1)
    mid = starts + np.where(np.isinf(seg.length) | ~seg.used, 1.0, 0.5 * seg.length)
    above = ((mid[..., None] < demand[:, :, None, :]) * w[None, :, None, :]).sum(axis=3)
    below = ((mid[..., None] > demand[:, :, None, :]) * w[None, :, None, :]).sum(axis=3)
    sigma = data.surge_cap_share
    short = ((mid[..., None] < demand[:, :, None, :] / (1 + sigma)) * w[None, :, None, :]).sum(axis=3)
    want = -(1 + sigma) * short if sigma > 0 and data.surge_cost < data.unserved_cost else -above
    np.testing.assert_allclose(np.where(seg.used, seg.unserved_slope, 0), np.where(seg.used, want, 0), atol=1e-12)
    np.testing.assert_allclose(np.where(seg.used, seg.idle_slope, 0), np.where(seg.used, below, 0), atol=1e-12)


@pytest.mark.parametrize("lengths,profile", [([2, 2, 4, 8], False), ([2, 2, 4, 8], True), ([13, 3], False),
                                             ([13, 3], True)])
def test_a_binding_earnings_floor_holds_exactly_in_driver_weeks(lengths, profile):
    """The earnings floor (blocks per driver-week >= 4.3 at each depot, formulations/two_stage/
    service.py) in period models: the LP's plan gives, by the evaluator's driver-weeks
    (drivers.driver_weeks, itself checked against a weekly simulation above), at least 4.3
    blocks per driver-week at every depot and exactly 4.3 at one (the floor binds: the plan
    costs more than without it)."""
    import optplan
    from formulations.two_stage.service import service_kpis

    weekly = optplan.generate_instance(depots=2, weeks=16, scenarios=3, seed=3, budget_tightness=3.0).model_data()
    data = weekly.with_periods(lengths, week_profile=profile)
    floor = 4.3
    bound = replace(data, earnings_floor=np.full(len(data.depots), floor))
    free, held = solve_data(data, SolveOptions(), engine="highs"), solve_data(bound, SolveOptions(), engine="highs")
    assert held.status.objective > free.status.objective * (1 + 1e-6)
    ev = evaluate_decisions(bound, held.decisions)
    assert ev.expected_cost == pytest.approx(held.status.objective, rel=LP_RTOL)
    k = service_kpis(bound.demand, ev.unserved_blocks, ev.idle_blocks, ev.capacity_blocks,
                     driver_weeks(bound, ev.active_drivers), bound.probability)
    per_depot = np.asarray(k["blocks_per_driver_week"], float)
    assert per_depot.min() >= floor * (1 - 1e-7)
    assert per_depot.min() == pytest.approx(floor, rel=1e-6)


def test_period_caps_are_the_weekly_caps_times_the_weeks():
    """Applicant caps and incentive-segment widths are per week; a period of L weeks allows L
    times as much, by hand, in the Pyomo bounds, the array build's column bounds and the
    bounds kernel (which flags 1% more than that and not the cap itself)."""
    import optplan
    from formulations.two_stage.sets import bound_violations

    weekly = optplan.generate_instance(depots=2, weeks=12, scenarios=2, seed=1).model_data()
    lengths = np.array([1, 3, 8])
    data = weekly.with_periods(lengths)
    D, C, T = len(data.depots), len(data.channels), len(lengths)
    x_cap = np.where(np.isfinite(data.applicant_cap), data.applicant_cap, 0.0)[:, :, None] * lengths[None, None, :]
    z_cap = data.incentive_width[:, None, :] * lengths[None, :, None]  # (D, T, G) currency per period
    m = two_stage.build_model(data, recourse="aggregated")
    for (d, c, t), var in m.applicants.items():
        i, j = data.depots.index(d), data.channels.index(c)
        if np.isfinite(data.applicant_cap[i, j]):
            assert var.ub == pytest.approx(x_cap[i, j, t - 1], rel=1e-12)
    for (d, t, g), var in m.incentive_spend.items():
        assert var.ub == pytest.approx(z_cap[data.depots.index(d), t - 1, g - 1], rel=1e-12)
    sf = aggregated_standard_form(data)
    ub = np.sort(sf.col_upper[sf.columns["incentive_spend"]])
    np.testing.assert_allclose(ub, np.sort(z_cap.ravel()), rtol=1e-12)
    at_cap = bound_violations(data, np.zeros((D, C, T)), z_cap)
    over = bound_violations(data, np.zeros((D, C, T)), z_cap * 1.01)
    assert at_cap["incentive_bounds"][0] == 0.0
    assert over["incentive_bounds"][0] == pytest.approx(0.01 * z_cap.max(), rel=1e-9)


def test_with_periods_sums_weekly_budgets_and_demand_and_averages_supply():
    """``ModelData.with_periods`` by hand on one period of 3 weeks: the weekly budget is the
    sum of the three weeks' budgets (currency per period), demand the sum of the weeks'
    (blocks per period), supply the mean (blocks per driver-week), and it agrees with the
    instance file route (optplan.io.periods.in_periods) field by field."""
    from dataclasses import fields

    import optplan
    from optplan.io.periods import in_periods, runs_of

    inst = optplan.generate_instance(depots=2, weeks=6, scenarios=2, seed=4, budget_tightness=0.8)
    weekly = inst.model_data()
    lengths = [1, 1, 1, 3]
    data = weekly.with_periods(lengths)
    assert data.budget_weekly[3] == pytest.approx(weekly.budget_weekly[3:6].sum(), rel=1e-12)
    np.testing.assert_allclose(data.demand[:, 3], weekly.demand[:, 3:6].sum(axis=1), rtol=1e-12)
    np.testing.assert_allclose(data.demand[:, :3], weekly.demand[:, :3], rtol=1e-12)
    varied = replace(weekly, supply_by_week=weekly.supply * np.array([1.0, 1.0, 1.0, 0.9, 1.0, 1.4])[None, :])
    np.testing.assert_allclose(varied.with_periods(lengths).supply[:, 3], weekly.supply[:, 3] * 1.1, rtol=1e-12)
    other = in_periods(inst, runs_of(lengths)).model_data()
    for f in fields(data):
        a, b = getattr(data, f.name), getattr(other, f.name)
        if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
            np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=1e-6, atol=1e-6,
                                       equal_nan=True, err_msg=f.name)
