"""Second stage: surge, unserved and idle blocks once demand is known.

Pyomo rows and the closed form of the same recourse side by side; the evaluator, the DP,
the policy simulation, the plan and the report call ``optimal_recourse`` /
``recourse_cost`` / ``expected_recourse`` here and nowhere restate them.

Rows (per depot d, week t, scenario s; blocks/week):

    q[d,t] + u[d,t,s] + v[d,t,s] - w[d,t,s] = demand[d,t,s]     demand balance
    u[d,t,s] <= surge_cap_share * q[d,t]                       surge cap (absent if the share is 0)

Closed form for fixed capacity q (the LP's second-stage optimum; docs/formulation.md):

    shortfall = max(0, demand - q)
    surge     = min(shortfall, share * q)   if surge pays (share > 0 and surge_cost < unserved_cost), else 0
                                            (per depot, with its own prices, when prices differ by depot)
    unserved  = shortfall - surge
    idle      = max(0, q - demand)

Each block short is covered by the cheaper of surge and going unserved (surge only up to its
cap); with all costs >= 0 an optimal recourse never buys surge while blocks sit idle.

Weeks inside a long-lead period (ModelData.demand_share, the share s_j of the period's demand
D in its week j < L): the period's capacity q is taken as even over its weeks (q/L each) and
the recourse is settled week by week. The closed form is positively homogeneous (phi(k q, k D)
= k phi(q, D): the surge cap is a share of capacity), so

    sum_j phi(q / L, s_j D) = sum_j 1/L phi(q, L s_j D)

is the recourse of L "week points" per scenario at the period's own capacity, with demand
L s_j D (blocks per period) and weight 1/L (``week_points``): the segment form and the
evaluator take them like scenarios (``period_recourse``). Without demand_share every week
of a period has demand D/L, and this is phi(q, D).
"""

from __future__ import annotations

import numpy as np

from formulations.data import ModelData
from formulations.two_stage._pyomo import pyo

# ---------------------------------------------------------------------------- numpy kernels


def surge_pays(data: ModelData) -> bool:
    """Surge is used at all: it is allowed (cap share > 0) and cheaper than an unserved block
    at some depot."""
    return bool(surge_pays_by_depot(data).any())


def surge_pays_by_depot(data: ModelData, depots=None) -> np.ndarray:
    """(D,) (or the ``depots`` rows) True where surge is allowed and cheaper than an unserved block."""
    cs, cu, _ = data.recourse_prices(depots)
    return (data.surge_cap_share > 0) & (cs < cu)


def _at_depots(values: np.ndarray, ndim: int, depot_axis: int) -> np.ndarray:
    """Per-depot values (D',) shaped to broadcast along ``depot_axis`` of an ndim-array."""
    shape = [1] * ndim
    shape[depot_axis] = len(values)
    return np.asarray(values).reshape(shape)


def optimal_recourse(data: ModelData, capacity, demand, depots=None, depot_axis: int = 0):
    """Closed-form second stage (blocks/week) for capacity (...) and demand (..., S), e.g.
    (D, T) and (D, T, S); returns (surge, unserved, idle), each shaped like demand. With
    prices that differ by depot, the arrays' axis ``depot_axis`` runs over ``depots`` (all
    depots by default) and each depot buys surge only where it pays there."""
    q = np.asarray(capacity, float)[..., None]
    shortfall = np.maximum(demand - q, 0.0)
    if data.uniform_prices() is None:
        pays = _at_depots(surge_pays_by_depot(data, depots), shortfall.ndim, depot_axis)
        surge = np.where(pays, np.minimum(shortfall, data.surge_cap_share * np.maximum(q, 0.0)), 0.0)
    elif surge_pays(data):
        surge = np.minimum(shortfall, data.surge_cap_share * np.maximum(q, 0.0))
    else:
        surge = np.zeros_like(shortfall)
    return surge, shortfall - surge, np.maximum(q - demand, 0.0)


def week_points(data: ModelData, demand=None, probability=None, share=None) -> tuple[np.ndarray, np.ndarray]:
    """The week points of long-lead periods (module docstring): demand (D, T, S*J) blocks per
    period, L_t s_j D_dts, and weights (T, S*J), p_s / L_t for j < L_t and 0 for the padding
    (whose demand repeats week 0's, so it adds no breakpoint). Defaults: the data's demand,
    probabilities and demand_share."""
    demand = data.demand if demand is None else np.asarray(demand, float)
    p = data.probability if probability is None else np.asarray(probability, float)
    share = data.demand_share if share is None else np.asarray(share, float)
    D, T, S = demand.shape
    J = share.shape[3]
    L = data.period_length  # (T,)
    inside = np.arange(J)[None, :] < L[:, None]  # (T, J)
    points = L[None, :, None, None] * share * demand[..., None]  # (D, T, S, J)
    points = np.where(inside[None, :, None, :], points, points[..., :1])
    weight = p[None, :, None] * np.where(inside, 1.0 / L[:, None], 0.0)[:, None, :]  # (T, S, J)
    return points.reshape(D, T, S * J), weight.reshape(T, S * J)


def period_recourse(data: ModelData, capacity, demand=None, share=None, depots=None):
    """(surge, unserved, idle) blocks per period and scenario, each (D, T, S), for capacity
    (D, T) against demand (D, T, S) (default: the data's): ``optimal_recourse``, settled week by
    week inside long-lead periods when a weekly profile ``share`` (D, T, S, J) is given
    (default: the data's demand_share with its own demand; none with a caller's demand).
    ``depots``: the depots whose rows the arrays hold (as optimal_recourse)."""
    rows = None if depots is None else np.atleast_1d(np.asarray(depots, dtype=int))
    if share is None and demand is None:
        share = data.demand_share
        if rows is not None and share is not None:
            share = share[rows]
    if demand is None:
        demand = data.demand if rows is None else data.demand[rows]
    demand = np.asarray(demand, float)
    if share is None or not data.has_periods:
        return optimal_recourse(data, capacity, demand, depots)
    D, T, S = demand.shape
    J = np.asarray(share).shape[3]
    points, _ = week_points(data, demand, np.ones(S), share)
    L = data.period_length
    w = np.where(np.arange(J)[None, :] < L[:, None], 1.0 / L[:, None], 0.0)  # (T, J) 1/L_t inside the period
    return tuple((a.reshape(D, T, S, J) * w[None, :, None, :]).sum(axis=3)
                 for a in optimal_recourse(data, capacity, points, depots))


def recourse_cost(data: ModelData, surge, unserved, idle, depots=None, depot_axis: int = 0):
    """Second-stage cost (currency) of surge, unserved and idle blocks, elementwise:
    surge_cost * u + unserved_cost * v + idle_cost * w (each depot's own prices along
    ``depot_axis`` when they differ; see ``optimal_recourse``)."""
    uniform = data.uniform_prices()
    if uniform is not None:
        cs, cu, ci = uniform
        return cs * surge + cu * unserved + ci * idle
    ndim = max(np.ndim(surge), np.ndim(unserved), np.ndim(idle))
    cs, cu, ci = (_at_depots(a, ndim, depot_axis) for a in data.recourse_prices(depots))
    return cs * surge + cu * unserved + ci * idle


def expected_recourse(data: ModelData, capacity, demand, probability, depots=None, depot_axis: int = 0):
    """Expected optimal second-stage cost (currency/week) for capacities (...) against demand
    (..., S) with scenario probabilities (S,)."""
    return recourse_cost(data, *optimal_recourse(data, capacity, demand, depots, depot_axis), depots,
                         depot_axis) @ probability


def recourse_kinks(data: ModelData, demand) -> np.ndarray:
    """Capacities (blocks/week) where the expected recourse of a depot-week changes slope:
    each demand, and demand / (1 + surge share) where surge pays."""
    k = [np.asarray(demand, float).ravel()]
    if surge_pays(data):
        k.append(k[0] / (1.0 + data.surge_cap_share))
    return np.unique(np.concatenate(k))


# ---------------------------------------------------------------------------- Pyomo rows


def define_second_stage_variables(m: pyo.ConcreteModel, data: ModelData) -> None:
    """u, v, w >= 0 per depot, week and scenario (blocks/week); u is fixed at 0 when the
    surge cap share is 0."""
    m.surge_blocks = pyo.Var(
        m.DEPOT_WEEK_SCENARIO,
        domain=pyo.NonNegativeReals,
        bounds=(0.0, 0.0) if data.surge_cap_share == 0 else (0.0, None),
    )
    m.unserved_blocks = pyo.Var(m.DEPOT_WEEK_SCENARIO, domain=pyo.NonNegativeReals)
    m.idle_blocks = pyo.Var(m.DEPOT_WEEK_SCENARIO, domain=pyo.NonNegativeReals)


def define_demand_balance_constraints(m: pyo.ConcreteModel, data: ModelData) -> None:
    """Second-stage balance of blocks in every scenario.

    q[d,t] + u[d,t,s] + v[d,t,s] - w[d,t,s] = demand[d,t,s]      blocks/week

    One row replaces the pair  v >= demand - q - u,  w >= q - demand:  with all costs
    non-negative an optimal recourse never buys surge while blocks sit idle, so both give
    the same optimum (docs/formulation.md, "Balance row").
    """
    d_pos = {d: i for i, d in enumerate(data.depots)}
    s_pos = {data.scenarios[i]: i for i in m._optplan_scenario_positions}
    demand = data.demand
    q, u, v, w = m.capacity_blocks, m.surge_blocks, m.unserved_blocks, m.idle_blocks

    def rule(_m, d, t, s):
        return q[d, t] + u[d, t, s] + v[d, t, s] - w[d, t, s] == float(demand[d_pos[d], t - 1, s_pos[s]])

    m.demand_balance = pyo.Constraint(m.DEPOT_WEEK_SCENARIO, rule=rule)


def define_surge_cap_constraints(m: pyo.ConcreteModel, data: ModelData) -> None:
    """Surge blocks are capped as a share of planned capacity (absent when the share is 0).

    u[d,t,s] <= surge_cap_share * q[d,t]                          blocks/week
    """
    share = float(data.surge_cap_share)
    index = m.DEPOT_WEEK_SCENARIO if share > 0 else pyo.Set(initialize=[], dimen=3)
    u, q = m.surge_blocks, m.capacity_blocks

    def rule(_m, d, t, s):
        return u[d, t, s] - share * q[d, t] <= 0

    m.surge_cap = pyo.Constraint(index, rule=rule)
