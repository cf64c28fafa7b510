"""Drivers: arrivals through the funnel, the driver stock, onboarding, planned capacity.

Pyomo rows (``define_*_constraints``) and the numpy kernels of the same math side by side;
``tests/formulations/test_drivers.py`` checks them against each other. Everything else
(evaluator, DP, policy simulation, plan) calls the kernels here.

    n[d,t] = sum_c sum_k yield[c,k] x[d,c,t-k]                       drivers/week
    a[d,t] = retention[d] a[d,t-1] + n[d,t] + pipeline[d,t]         drivers, a[d,0] = initial
    n[d,t] + pipeline[d,t] <= onboarding_cap[d]                     drivers/week
    q[d,t] = b[d,t] a[d,t] + sum_g rate[d,g] z[d,t,g]   blocks/week
    (b[d,t] = data.supply: blocks an active driver offers in week t; blocks_per_driver[d]
    every week unless the instance gives supply by week)
"""

from __future__ import annotations

import numpy as np

from formulations.data import Decisions, ModelData
from formulations.two_stage._pyomo import pyo
from formulations.two_stage.layout import Layout

# ---------------------------------------------------------------------------- numpy kernels


def recruited_arrivals(data: ModelData, applicants: np.ndarray) -> np.ndarray:
    """(D, T) new active drivers from recruiting (drivers/week) for applicants (D, C, T):
    n[d,t] = sum_c sum_k yield[c,k] x[d,c,t-k] (applicants of week t-k reach week t with
    probability yield[c,k]; lags beyond the horizon are lost)."""
    D, C, T = applicants.shape
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
    arrivals (D, T) plus the pipeline, starting from the initial drivers."""
    D, _, T, _ = data.shape
    active = np.zeros((D, T))
    previous = data.initial_active.astype(float)
    for t in range(T):
        previous = carry_over(data.retention, previous, arrivals[:, t] + data.pipeline[:, t])
        active[:, t] = previous
    return active


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
    """(D, T) planned capacity (blocks/week): b[d,t] (data.supply) * active drivers + incentive blocks."""
    return capacity(data.supply, active, incentive_blocks(data, incentive_spend))


def simulate_drivers(data: ModelData, decisions: Decisions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The plan's stock-flow: (recruited arrivals drivers/week, active drivers, capacity
    blocks/week), each (D, T)."""
    arrivals = recruited_arrivals(data, decisions.applicants)
    active = active_drivers(data, arrivals)
    return arrivals, active, planned_capacity(data, active, decisions.incentive_spend)


def onboarding_excess(data: ModelData, arrivals: np.ndarray) -> np.ndarray:
    """(D, T) new drivers beyond the onboarding cap (drivers/week; <= 0 where it holds):
    n[d,t] + pipeline[d,t] - onboarding_cap[d] (-inf for depots without a cap)."""
    return arrivals + data.pipeline - data.onboarding_cap[:, None]


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
    """
    rows = [(data.depots[d], t + 1) for d, t in Layout(data).onboarding_rows()]
    d_pos = {d: i for i, d in enumerate(data.depots)}

    def rule(_m, d, t):
        i = d_pos[d]
        room = float(data.onboarding_cap[i]) - float(data.pipeline[i, t - 1])
        return m.recruited_arrivals[d, t] <= room

    m.onboarding_cap = pyo.Constraint(pyo.Set(initialize=rows, dimen=2, ordered=True), rule=rule)


def define_capacity_definition_constraints(m: pyo.ConcreteModel, data: ModelData) -> None:
    """Planned capacity: drivers' blocks plus blocks bought by planned incentives.

    q[d,t] = b[d,t] * a[d,t] + sum_g rate[d,g] * z[d,t,g]   blocks/week
    (b = data.supply, blocks/driver/week; rate: extra blocks per currency unit; segments fill in order because rates are
    non-increasing, i.e. the response is concave).
    """
    d_pos = {d: i for i, d in enumerate(data.depots)}
    b = data.supply
    segments: dict[tuple[str, int], list[int]] = {}
    for d, t, g in m.SEGMENTS:
        segments.setdefault((d, t), []).append(g)

    def rule(_m, d, t):
        i = d_pos[d]
        bought = sum(float(data.incentive_rate[i, g - 1]) * m.incentive_spend[d, t, g] for g in segments.get((d, t), ()))
        return m.capacity_blocks[d, t] - float(b[i, t - 1]) * m.active_drivers[d, t] - bought == 0

    m.capacity_definition = pyo.Constraint(m.DEPOT_WEEK, rule=rule)


def onboarding_conflicts(data: ModelData) -> list[str]:
    """Rows of the onboarding cap that no plan can meet: the pipeline alone exceeds the cap
    (drivers/week), one phrase each, e.g. "depot D001 week 3: pipeline 12 > cap 10 drivers/week"."""
    excess = onboarding_excess(data, np.zeros_like(data.pipeline))
    return [
        f"depot {data.depots[d]} week {t + 1}: pipeline {data.pipeline[d, t]:g} > cap {data.onboarding_cap[d]:g} drivers/week"
        for d, t in zip(*np.nonzero(excess > 1e-9), strict=True)
    ]
