"""Drivers: arrivals through the funnel, the driver stock, onboarding, planned capacity.

Pyomo rows (``define_*_constraints``) and the numpy kernels of the same math side by side;
``tests/formulations/test_kernels_equal_rows.py`` checks them against each other. Everything else
(evaluator, DP, policy simulation, plan) calls the kernels here.

    n[d,t] = sum_c sum_k yield[c,k] x[d,c,t-k]                       drivers/week
    a[d,t] = retention[d] a[d,t-1] + n[d,t] + pipeline[d,t]         drivers, a[d,0] = initial
    n[d,t] + pipeline[d,t] <= onboarding_cap[d]                     drivers/week
    q[d,t] = b[d,t] a[d,t] + sum_g rate[d,g] z[d,t,g]   blocks/week
    (b[d,t] = data.supply: blocks an active driver offers in week t; blocks_per_driver[d]
    every week unless the instance gives supply by week)

Long-lead periods (data.period_weeks: period t is L_t whole weeks; docs/formulation.md
"Long-lead periods"). Applicants of a period and the drivers arriving in one are taken as
spread evenly over its weeks; the weekly rates are converted per period, and with every
L_t = 1 each factor below is the weekly one (Y_cst = yield[c,t-s], rho^L = rho, phi = 1, alpha = 1,
beta = 0), so the rows are the weekly rows:

    n[d,t] = sum_c sum_s Y[c,s,t] x[d,c,s]                     drivers/period
       Y[c,s,t] = 1/L_s sum_{w in s} sum_k yield[c,k] [w+k in t]   (not shift-invariant)
    a[d,t] = rho^L_t a[d,t-1] + phi_t (n[d,t] + pipeline[d,t])  drivers (end of period)
       phi_t = 1/L_t sum_{m<L_t} rho^m                            (arrivals churn within it)
    H[d,t] = alpha_t a[d,t] + beta_t a[d,t-1]                   driver-weeks in period t
       alpha_t = psi_t / phi_t, beta_t = sigma_t - alpha_t rho^L_t,
       sigma_t = sum_{j=1..L_t} rho^j, psi_t = 1/L_t sum_{m<L_t} (L_t - m) rho^m
    q[d,t] = b[d,t] H[d,t] + sum_g rate[d,g] z[d,t,g]           blocks/period
    n[d,t] + pipeline[d,t] <= L_t onboarding_cap[d]; x <= L_t applicant_cap; z <= L_t width
"""

from __future__ import annotations

import numpy as np

from formulations.data import Decisions, ModelData
from formulations.two_stage._pyomo import pyo
from formulations.two_stage.layout import Layout

# ---------------------------------------------------------------------------- numpy kernels


def period_yield_kernel(data: ModelData) -> np.ndarray:
    """(C, T, T) Y[c,s,t]: expected drivers newly active in period t per applicant recruited
    in period s (drivers/applicant), applicants of period s spread evenly over its L_s weeks:
    Y[c,s,t] = 1/L_s sum_{w in s} sum_k yield[c,k] [week w+k lies in period t]; arrivals
    after the horizon are lost. For weekly periods Y[c,s,t] = yield[c,t-s]."""
    C, K = data.yield_kernel.shape
    T = data.n_weeks
    length = data.period_length.astype(int)
    period_of = np.repeat(np.arange(T), length)  # (W,) period of each week
    W = len(period_of)
    w, k = np.meshgrid(np.arange(W), np.arange(K), indexing="ij")  # (W, K)
    inside = w + k < W
    s_idx, t_idx, k_idx = period_of[w[inside]], period_of[(w + k)[inside]], k[inside]
    Y = np.zeros((C, T, T))
    for c in range(C):
        np.add.at(Y[c], (s_idx, t_idx), data.yield_kernel[c, k_idx])
    return Y / length[None, :, None]


def period_factors(data: ModelData) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Weekly retention rho[d] converted to each period of L_t weeks, each (D, T):
    (rho^L_t: a driver of the period's start still active at its end;
     phi_t = 1/L_t sum_{m<L_t} rho^m: an arrival of the period still active at its end;
     alpha_t, beta_t: driver-weeks H = alpha_t a[t] + beta_t a[t-1], from
     H = sigma_t a[t-1] + psi_t (arrivals), a[t] = rho^L a[t-1] + phi_t (arrivals),
     sigma_t = sum_{j=1..L} rho^j, psi_t = 1/L sum_{m<L} (L - m) rho^m).
    Every factor is the weekly one (rho, 1, 1, 0) where L_t = 1 (units: shares; alpha, beta in weeks)."""
    rho = np.asarray(data.retention, float)[:, None, None]  # (D, 1, 1)
    length = data.period_length
    L_max = int(length.max()) if len(length) else 1
    m = np.arange(L_max)[None, None, :]  # (1, 1, M) weeks 0..L_max-1
    inside = m < length[None, :, None]  # (1, T, M)
    powers = np.where(inside, rho ** m, 0.0)  # rho^m for m < L_t
    keep = rho[:, :, 0] ** length[None, :]  # (D, T)
    phi = powers.sum(axis=2) / length[None, :]
    sigma = np.where(inside, rho ** (m + 1), 0.0).sum(axis=2)
    psi = np.where(inside, (length[None, :, None] - m) * rho ** m, 0.0).sum(axis=2) / length[None, :]
    alpha = psi / phi
    beta = sigma - alpha * keep
    weekly = length[None, :] == 1  # exact weekly factors (no rounding) where L_t = 1
    return (np.where(weekly, rho[:, :, 0], keep), np.where(weekly, 1.0, phi), np.where(weekly, 1.0, alpha),
            np.where(weekly, 0.0, beta))


def recruited_arrivals(data: ModelData, applicants: np.ndarray) -> np.ndarray:
    """(D, T) new active drivers from recruiting (drivers/week) for applicants (D, C, T):
    n[d,t] = sum_c sum_k yield[c,k] x[d,c,t-k] (applicants of week t-k reach week t with
    probability yield[c,k]; lags beyond the horizon are lost). With long-lead periods,
    n[d,t] = sum_c sum_s Y[c,s,t] x[d,c,s] (drivers/period; ``period_yield_kernel``)."""
    D, C, T = applicants.shape
    if data.has_periods:
        return np.einsum("dcs,cst->dt", applicants, period_yield_kernel(data))
    L = min(data.n_lags, T)
    if D == 1:  # one depot (the DP's polish calls this per move): a convolution per channel is ~3x faster
        out = np.zeros(T)
        for c in range(C):
            out += np.convolve(applicants[0, c], data.yield_kernel[c, :L])[:T]
        return out[None]
    arrivals = np.zeros((D, T))
    for k in range(L):
        arrivals[:, k:] += np.einsum("dct,c->dt", applicants[:, :, : T - k], data.yield_kernel[:, k])
    return arrivals


def arrivals_matrix(data: ModelData, c: int) -> np.ndarray:
    """(T, T) the linear map of ``recruited_arrivals`` for one channel of a weekly instance:
    M[t, tau] = yield[c, t - tau] for 0 <= t - tau <= L (new drivers in week t per applicant of
    week tau, drivers/applicant), so that arrivals = M @ applicants (tested against it). The
    DP's deconvolution inverts it."""
    T = data.n_weeks
    y = data.yield_kernel[c]
    lag = np.arange(T)[:, None] - np.arange(T)[None, :]
    return np.where((lag >= 0) & (lag < len(y)), y[np.clip(lag, 0, len(y) - 1)], 0.0)


def cohort_arrivals(data: ModelData, applicants: np.ndarray) -> np.ndarray:
    """Expected new drivers (drivers/week) at lags 0..L of one week's applicants (..., C):
    sum_c x[..., c] yield[c, k] -> (..., L+1). The same kernel as recruited_arrivals, for
    one cohort at a time (a simulation that decides week by week)."""
    return np.einsum("...c,ck->...k", applicants, data.yield_kernel)


def carry_over(retention, previous, inflow):
    """One week of the driver stock: drivers at the end of a week (drivers) from those at the
    end of the week before (``previous``, drivers) and the week's new drivers (``inflow``,
    drivers/week): retention * previous + inflow. Broadcasts (scalars, (D,), (N, D), grids)."""
    return retention * previous + inflow


def active_drivers(data: ModelData, arrivals: np.ndarray) -> np.ndarray:
    """(D, T) expected active drivers at the end of each week (drivers), from recruited
    arrivals (D, T) plus the pipeline, starting from the initial drivers. With long-lead
    periods: a[t] = rho^L_t a[t-1] + phi_t (n[t] + pipeline[t]) (``period_factors``)."""
    D, _, T, _ = data.shape
    active = np.zeros((D, T))
    previous = data.initial_active.astype(float)
    if data.has_periods:
        keep, arrive, _, _ = period_factors(data)
        for t in range(T):
            previous = carry_over(keep[:, t], previous, arrive[:, t] * (arrivals[:, t] + data.pipeline[:, t]))
            active[:, t] = previous
        return active
    for t in range(T):
        previous = carry_over(data.retention, previous, arrivals[:, t] + data.pipeline[:, t])
        active[:, t] = previous
    return active


def driver_weeks(data: ModelData, active: np.ndarray) -> np.ndarray:
    """(D, T) active driver-weeks in each period, from the drivers active at the end of each
    period (D, T): H[t] = alpha_t a[t] + beta_t a[t-1] with a[0] the initial drivers
    (``period_factors``); for a weekly instance the week's active drivers themselves."""
    if not data.has_periods:
        return active
    _, _, alpha, beta = period_factors(data)
    previous = np.concatenate([data.initial_active.astype(float)[:, None], active[:, :-1]], axis=1)
    return alpha * active + beta * previous


def drivers_without_recruiting(data: ModelData, d: int) -> np.ndarray:
    """(T,) active drivers of depot d if nobody new is recruited (drivers): the initial
    drivers kept by retention plus the pipeline."""
    out = np.empty(data.n_weeks)
    previous = float(data.initial_active[d])
    for t in range(data.n_weeks):
        previous = carry_over(float(data.retention[d]), previous, float(data.pipeline[d, t]))
        out[t] = previous
    return out


def impulse_response(data: ModelData, d: int) -> np.ndarray:
    """(C, T) drivers active j weeks after one applicant of each channel joins at depot d:
    R[c, j] = sum_{k<=j} yield[c,k] retention^(j-k) (drivers per applicant). The driver
    stock is linear in applicants: a[t] = base[t] + sum_c sum_tau R[c, t-tau] x[c, tau]."""
    C, T, L = len(data.channels), data.n_weeks, data.n_lags
    rho = float(data.retention[d])
    y = np.zeros((C, T))
    y[:, : min(L, T)] = data.yield_kernel[:, : min(L, T)]
    R = np.zeros((C, T))
    for j in range(T):
        R[:, j] = (y[:, : j + 1] * rho ** (j - np.arange(j + 1))[None, :]).sum(axis=1)
    return R


def active_drivers_by_impulse(base: np.ndarray, response: np.ndarray, applicants: np.ndarray) -> np.ndarray:
    """(T,) one depot's active drivers (drivers) as the linear response to its applicants
    (C, T): a[t] = base[t] + sum_c sum_{tau<=t} R[c, t-tau] x[c, tau], with ``base`` the drivers
    without recruiting (``drivers_without_recruiting``) and ``response`` R its
    ``impulse_response`` (drivers per applicant). Equal to ``active_drivers`` of the
    ``recruited_arrivals`` (a weekly instance; tested), cheaper for many one-depot calls."""
    T = len(base)
    out = np.array(base, dtype=float, copy=True)
    for c in range(applicants.shape[0]):
        if applicants[c].any():
            out += np.convolve(applicants[c], response[c])[:T]
    return out


def incentive_blocks(data: ModelData, incentive_spend: np.ndarray) -> np.ndarray:
    """(D, T) extra blocks bought by planned incentives (blocks/week) for spend (D, T, G)
    (currency/week): sum_g rate[d,g] z[d,t,g]."""
    D, _, T, _ = data.shape
    if incentive_spend.size == 0:
        return np.zeros((D, T))
    return np.einsum("dtg,dg->dt", incentive_spend, data.incentive_rate)


def capacity(blocks_per_driver, active, extra_blocks):
    """Capacity (blocks/week) of ``active`` drivers working ``blocks_per_driver`` blocks each
    plus ``extra_blocks`` bought by incentives: b * a + extra. Broadcasts."""
    return blocks_per_driver * active + extra_blocks


def planned_capacity(data: ModelData, active: np.ndarray, incentive_spend: np.ndarray) -> np.ndarray:
    """(D, T) planned capacity (blocks/week): b[d,t] (data.supply) * active drivers + incentive blocks
    (with long-lead periods, blocks/period: b[d,t] * driver-weeks H[d,t] + incentive blocks)."""
    return capacity(data.supply, driver_weeks(data, active), incentive_blocks(data, incentive_spend))


def simulate_drivers(data: ModelData, decisions: Decisions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The plan's stock-flow: (recruited arrivals drivers/week, active drivers, capacity
    blocks/week), each (D, T)."""
    arrivals = recruited_arrivals(data, decisions.applicants)
    active = active_drivers(data, arrivals)
    return arrivals, active, planned_capacity(data, active, decisions.incentive_spend)


def onboarding_excess(data: ModelData, arrivals: np.ndarray) -> np.ndarray:
    """(D, T) new drivers beyond the onboarding cap (drivers/week; <= 0 where it holds):
    n[d,t] + pipeline[d,t] - L_t onboarding_cap[d] (-inf for depots without a cap; L_t = 1
    for weekly periods)."""
    return arrivals + data.pipeline - data.onboarding_cap[:, None] * data.period_length[None, :]


class IncentiveCurve:
    """Depot d's concave incentive response as a function of the week's total planned spend:
    segments filled best rate first (rates sorted non-increasing, so filling in that order
    is optimal). ``cum_spend`` (currency/week) and ``cum_blocks`` (blocks/week) are the
    breakpoints; ``blocks(Z)`` interpolates, ``split(Z)`` gives the spend per segment (G,)."""

    def __init__(self, data: ModelData, d: int):
        rate, width = data.incentive_rate[d], data.incentive_width[d]
        keep = (rate > 0) & (width > 0)
        order = np.argsort(-rate[keep], kind="stable")
        self.n_segments = data.incentive_width.shape[1]
        self.rate = rate[keep][order]  # blocks per currency unit, best first
        self.width = width[keep][order]  # currency/week
        self.index = np.flatnonzero(keep)[order]  # segment positions
        self.cum_spend = np.concatenate([[0.0], np.cumsum(self.width)])
        self.cum_blocks = np.concatenate([[0.0], np.cumsum(self.width * self.rate)])

    @property
    def max_spend(self) -> float:
        return float(self.cum_spend[-1])

    def blocks(self, spend):
        """Extra blocks/week bought by total spend (currency/week), best rate first."""
        if len(self.rate) == 0:
            return np.zeros_like(np.asarray(spend, float))
        return np.interp(spend, self.cum_spend, self.cum_blocks)

    def spend_for(self, blocks):
        """Least total spend (currency/week) that buys ``blocks`` extra blocks/week (capped at the maximum)."""
        return np.interp(np.clip(blocks, 0.0, self.cum_blocks[-1]), self.cum_blocks, self.cum_spend)

    def split(self, spend) -> np.ndarray:
        """Spend per segment (currency/week) of weekly totals ``spend`` (...,) filled best rate
        first: shape (..., G)."""
        spend = np.asarray(spend, float)
        out = np.zeros(spend.shape + (self.n_segments,))
        if len(self.width):
            out[..., self.index] = np.clip(spend[..., None] - self.cum_spend[:-1], 0.0, self.width)
        return out


# ---------------------------------------------------------------------------- Pyomo rows


def define_arrivals_definition_constraints(m: pyo.ConcreteModel, data: ModelData) -> None:
    """New active drivers from recruiting, through each channel's yield kernel.

    n[d,t] = sum_c sum_{k=0..L} yield[c,k] * x[d,c,t-k]        drivers/week
    (yield[c,k]: probability that an applicant of week t-k is newly active in week t;
    x terms outside RECRUIT or before week 1 are absent).
    """
    terms: dict[tuple[str, int], list] = {key: [] for key in m.DEPOT_WEEK}
    kernel = data.yield_kernel
    c_pos = {c: i for i, c in enumerate(data.channels)}
    T = data.n_weeks
    if data.has_periods:  # long-lead periods: n[d,t] = sum_c sum_s Y[c,s,t] x[d,c,s] (drivers/period)
        Y = period_yield_kernel(data)
        for d, c, s in m.RECRUIT:
            row = Y[c_pos[c], s - 1]
            for t in np.flatnonzero(row):
                terms[d, int(t) + 1].append((float(row[t]), m.applicants[d, c, s]))
    else:
        for d, c, t in m.RECRUIT:
            row = kernel[c_pos[c]]
            var = m.applicants[d, c, t]
            for k in np.flatnonzero(row):
                if t + k <= T:
                    terms[d, t + int(k)].append((float(row[k]), var))

    def rule(_m, d, t):
        return m.recruited_arrivals[d, t] - sum(coef * var for coef, var in terms[d, t]) == 0

    m.arrivals_definition = pyo.Constraint(m.DEPOT_WEEK, rule=rule)


def define_driver_stock_constraints(m: pyo.ConcreteModel, data: ModelData) -> None:
    """Stock-flow of active drivers (expected headcount), the rows of ``carry_over``.

    a[d,t] = retention[d] * a[d,t-1] + n[d,t] + pipeline[d,t]   drivers
    with a[d,0] = initial active drivers (constant).
    """
    d_pos = {d: i for i, d in enumerate(data.depots)}
    if data.has_periods:  # a[d,t] = rho^L_t a[d,t-1] + phi_t (n[d,t] + pipeline[d,t])   drivers
        keep, arrive, _, _ = period_factors(data)

        def rule(_m, d, t):
            i = d_pos[d]
            r, f = float(keep[i, t - 1]), float(arrive[i, t - 1])
            inflow = f * float(data.pipeline[i, t - 1])
            if t == 1:
                return m.active_drivers[d, t] - f * m.recruited_arrivals[d, t] == r * float(data.initial_active[i]) + inflow
            return m.active_drivers[d, t] - r * m.active_drivers[d, t - 1] - f * m.recruited_arrivals[d, t] == inflow

        m.driver_stock = pyo.Constraint(m.DEPOT_WEEK, rule=rule)
        return

    def rule(_m, d, t):
        i = d_pos[d]
        r = float(data.retention[i])
        inflow = float(data.pipeline[i, t - 1])
        if t == 1:
            previous = r * float(data.initial_active[i])
            return m.active_drivers[d, t] - m.recruited_arrivals[d, t] == previous + inflow
        return m.active_drivers[d, t] - r * m.active_drivers[d, t - 1] - m.recruited_arrivals[d, t] == inflow

    m.driver_stock = pyo.Constraint(m.DEPOT_WEEK, rule=rule)


def define_onboarding_cap_constraints(m: pyo.ConcreteModel, data: ModelData) -> None:
    """Onboarding throughput, where a depot has a cap (rows in ``Layout.onboarding_rows`` order).

    n[d,t] + pipeline[d,t] <= onboarding_cap[d]                drivers/week
    (L_t onboarding_cap[d] with long-lead periods: drivers/period)
    """
    rows = [(data.depots[d], t + 1) for d, t in Layout(data).onboarding_rows()]
    d_pos = {d: i for i, d in enumerate(data.depots)}
    length = data.period_length

    def rule(_m, d, t):
        i = d_pos[d]
        room = float(data.onboarding_cap[i]) * float(length[t - 1]) - float(data.pipeline[i, t - 1])
        return m.recruited_arrivals[d, t] <= room

    m.onboarding_cap = pyo.Constraint(pyo.Set(initialize=rows, dimen=2, ordered=True), rule=rule)


def define_capacity_definition_constraints(m: pyo.ConcreteModel, data: ModelData) -> None:
    """Planned capacity: drivers' blocks plus blocks bought by planned incentives.

    q[d,t] = b[d,t] * a[d,t] + sum_g rate[d,g] * z[d,t,g]   blocks/week
    (b = data.supply, blocks/driver/week; rate: extra blocks per currency unit; segments fill in order because rates are
    non-increasing, i.e. the response is concave). With long-lead periods a[d,t] becomes the
    period's driver-weeks alpha_t a[d,t] + beta_t a[d,t-1] (blocks/period; a[d,0] constant).
    """
    d_pos = {d: i for i, d in enumerate(data.depots)}
    b = data.supply
    segments: dict[tuple[str, int], list[int]] = {}
    for d, t, g in m.SEGMENTS:
        segments.setdefault((d, t), []).append(g)
    if data.has_periods:
        _, _, alpha, beta = period_factors(data)

        def rule(_m, d, t):
            i = d_pos[d]
            bought = sum(float(data.incentive_rate[i, g - 1]) * m.incentive_spend[d, t, g]
                         for g in segments.get((d, t), ()))
            bt, al, be = float(b[i, t - 1]), float(alpha[i, t - 1]), float(beta[i, t - 1])
            if t == 1:
                return (m.capacity_blocks[d, t] - bt * al * m.active_drivers[d, t] - bought
                        == bt * be * float(data.initial_active[i]))
            return (m.capacity_blocks[d, t] - bt * al * m.active_drivers[d, t] - bt * be * m.active_drivers[d, t - 1]
                    - bought == 0)

        m.capacity_definition = pyo.Constraint(m.DEPOT_WEEK, rule=rule)
        return

    def rule(_m, d, t):
        i = d_pos[d]
        bought = sum(float(data.incentive_rate[i, g - 1]) * m.incentive_spend[d, t, g] for g in segments.get((d, t), ()))
        return m.capacity_blocks[d, t] - float(b[i, t - 1]) * m.active_drivers[d, t] - bought == 0

    m.capacity_definition = pyo.Constraint(m.DEPOT_WEEK, rule=rule)


def onboarding_conflicts(data: ModelData) -> list[str]:
    """Rows of the onboarding cap that no plan can meet: the pipeline alone exceeds the cap
    (drivers/week), one phrase each, e.g. "depot D001 week 3: pipeline 12 > cap 10 drivers/week"
    (a long-lead period by its first week: "... week 14 (4 weeks): pipeline 50 > cap 40 drivers")."""
    excess = onboarding_excess(data, np.zeros_like(data.pipeline))
    starts, length = data.period_starts(), data.period_length

    def where(t):
        return f"week {starts[t]}" + (f" ({int(length[t])} weeks)" if length[t] != 1 else "")

    def cap(d, t):
        return (f"{data.onboarding_cap[d]:g} drivers/week" if length[t] == 1
                else f"{data.onboarding_cap[d] * length[t]:g} drivers")

    return [
        f"depot {data.depots[d]} {where(t)}: pipeline {data.pipeline[d, t]:g} > cap {cap(d, t)}"
        for d, t in zip(*np.nonzero(excess > 1e-9), strict=True)
    ]
