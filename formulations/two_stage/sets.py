"""Index sets and first-stage variables, built from ``layout.Layout`` (the only place that
knows their order). RECRUIT and SEGMENTS are sparse: only entries that can matter."""

from __future__ import annotations

import numpy as np

from formulations.data import ModelData
from formulations.two_stage._pyomo import pyo
from formulations.two_stage.layout import Layout


def define_sets(m: pyo.ConcreteModel, data: ModelData, positions: list[int]) -> None:
    """DEPOTS, CHANNELS, WEEKS (1..T), SCENARIOS (the model's), RECRUIT (d, c, t),
    SEGMENTS (d, t, g), DEPOT_WEEK (d, t), DEPOT_WEEK_SCENARIO (d, t, s)."""
    layout = Layout(data)
    m.DEPOTS = pyo.Set(initialize=data.depots, ordered=True)
    m.CHANNELS = pyo.Set(initialize=data.channels, ordered=True)
    m.WEEKS = pyo.RangeSet(1, data.n_weeks)
    m.SCENARIOS = pyo.Set(initialize=[data.scenarios[i] for i in positions], ordered=True)
    m.RECRUIT = pyo.Set(dimen=3, ordered=True, initialize=layout.recruit_labels())
    m.SEGMENTS = pyo.Set(dimen=3, ordered=True, initialize=layout.segment_labels())
    m.DEPOT_WEEK = pyo.Set(dimen=2, ordered=True, initialize=layout.depot_week_labels())
    m.DEPOT_WEEK_SCENARIO = pyo.Set(
        dimen=3, ordered=True, initialize=[(d, t, s) for d, t in layout.depot_week_labels() for s in m.SCENARIOS]
    )


def define_first_stage_variables(m: pyo.ConcreteModel, data: ModelData) -> None:
    """x, z, n, a, q with their bounds.

    0 <= x[d,c,t] <= applicant_cap[d,c]            applicants/week
    0 <= z[d,t,g] <= incentive_width[d,g]          currency/week
    (x L_t with long-lead periods: applicants and currency per period of L_t weeks)
    n, a, q >= 0                                   drivers/week, drivers, blocks/week
    """
    d_pos = {d: i for i, d in enumerate(data.depots)}
    c_pos = {c: i for i, c in enumerate(data.channels)}
    cap = data.applicant_cap
    length = data.period_length  # weeks per period: caps per week x L_t (long-lead periods)

    def applicant_bounds(_m, d, c, t):
        ub = cap[d_pos[d], c_pos[c]] * length[t - 1]
        return (0.0, None if np.isinf(ub) else float(ub))

    domain = pyo.NonNegativeIntegers if data.integer_applicants else pyo.NonNegativeReals
    m.applicants = pyo.Var(m.RECRUIT, domain=domain, bounds=applicant_bounds)

    def spend_bounds(_m, d, t, g):
        return (0.0, float(data.incentive_width[d_pos[d], g - 1] * length[t - 1]))

    m.incentive_spend = pyo.Var(m.SEGMENTS, domain=pyo.NonNegativeReals, bounds=spend_bounds)
    m.recruited_arrivals = pyo.Var(m.DEPOT_WEEK, domain=pyo.NonNegativeReals)
    m.active_drivers = pyo.Var(m.DEPOT_WEEK, domain=pyo.NonNegativeReals)
    m.capacity_blocks = pyo.Var(m.DEPOT_WEEK, domain=pyo.NonNegativeReals)


def bound_violations(data: ModelData, applicants: np.ndarray, incentive_spend: np.ndarray) -> dict[str, tuple[float, float]]:
    """numpy kernel of the variable bounds: family -> (largest violation, scale of the bound).

    applicants (D, C, T) within [0, applicant_cap] (applicants/week); incentive spend
    (D, T, G) within [0, incentive_width] (currency/week); both x L_t with long-lead periods."""
    x, z = applicants, incentive_spend
    length = data.period_length
    finite = np.where(np.isfinite(data.applicant_cap), data.applicant_cap, 0.0)
    return {
        "applicant_bounds": (
            max(np.max(-x, initial=0.0), np.max(x - data.applicant_cap[:, :, None] * length[None, None, :], initial=0.0)),
            np.max(finite, initial=1.0),
        ),
        "incentive_bounds": (
            max(np.max(-z, initial=0.0),
                np.max(z - data.incentive_width[:, None, :] * length[None, :, None], initial=0.0)),
            np.max(data.incentive_width, initial=1.0),
        ),
    }
