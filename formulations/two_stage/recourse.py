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
