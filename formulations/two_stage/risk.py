"""Risk: the conditional value at risk (CVaR) of a scenario's total cost.

A plan's cost in scenario s (currency) is its first-stage spend plus that scenario's
recourse over all depots and weeks:

    X_s = sum cost[c] x + sum z + sum_{d,t} (surge_cost u_dts + unserved_cost v_dts + idle_cost w_dts)

CVaR at confidence alpha in [0, 1) is the expected cost of the worst (1 - alpha) share of
scenarios (by probability). Rockafellar and Uryasev (2000):

    CVaR_alpha(X) = min_eta  eta + 1 / (1 - alpha) * sum_s p_s max(0, X_s - eta)

(the minimum is at eta = VaR_alpha, the alpha-quantile of X). With weight lambda in [0, 1]
the program minimises

    (1 - lambda) E[X] + lambda (eta + 1 / (1 - alpha) sum_s p_s e_s),   e_s >= X_s - eta,  e_s >= 0

Two statements of the same CVaR:

Extensive form (every scenario's recourse is in the model):

    cvar_excess_definition[s]:  e_s - X_s + eta >= 0                         currency

Risk-envelope cuts on the aggregated recourse (the scalable one). CVaR has the dual form

    CVaR_alpha(R) = max { sum_s w_s R_s :  0 <= w_s <= p_s / (1 - alpha),  sum_s w_s = 1 }

a maximum over the vertices w of a polytope (the "risk envelope"). X_s = F + R_s with F the
first-stage cost (the same in every scenario) and R_s = sum_{d,t} Q_dts(q_dt) the scenario's
recourse, so CVaR(X) = F + CVaR(R), and for a fixed w

    sum_s w_s R_s(q) = sum_{d,t} phi^w_dt(q_dt)

is the aggregated recourse of aggregated.py with the probabilities replaced by w: convex
piecewise linear per depot-week, in segment form. The program

    min  F + (1 - lambda) phi^p(q) + lambda theta,   theta >= phi^{w_k}(q)  for k = 1..K

with one cut per vertex w_k (own segment columns y^k):

    cvar_cut_link[k,d,t]:  q[d,t] - sum_j y^k[d,t,j] = 0                     blocks/week
    cvar_cut[k]:           theta - sum_{d,t,j} slope^k[d,t,j] y^k[d,t,j] >= sum_{d,t} phi^{w_k}_dt(0)   currency

is a relaxation for any set of vertices and exact once the worst vertex of its own solution,
``cvar_vertex(R(q*))``, is among them (then theta* = CVaR(R(q*))). theta >= 0 because every
recourse cost is >= 0. The engine (optplan/solvers/cvar_cuts.py) adds the worst vertex of
each solution until it is there; the vertex set is finite, so this ends (2-6 rounds on the
instances measured, docs/performance.md). Each cut is as large as the aggregated recourse
restricted to the scenarios with w_s > 0 (the worst 1 - alpha), so the LP stays near the
size of the expected-cost one.

Special cases (tested): lambda = 0 is the expected cost; alpha = 0 makes CVaR the expected
cost, so any lambda gives the expected-cost optimum; alpha -> 1 approaches the worst case.

``cvar`` is the numpy kernel (exact for a discrete distribution); ``scenario_costs`` gives
X_s of any plan; ``define_cvar`` the Pyomo rows; the objective (objective.py) weights them.
"""

from __future__ import annotations

import numpy as np

from formulations.data import ModelData
from formulations.two_stage._pyomo import pyo
from formulations.two_stage.aggregated import recourse_segments
from formulations.two_stage.recourse import week_points

#: Variable components of the CVaR (in column order, after the recourse): extensive form,
#: and risk-envelope cuts on the aggregated recourse.
RISK_VARS = ("cvar_threshold", "cvar_excess")
CUT_RISK_VARS = ("cvar_threshold", "cvar_cut_segment")


def cvar(values, probability, alpha: float) -> float:
    """CVaR_alpha (same unit as ``values``) of a discrete distribution: values (S,) with
    probabilities (S,), alpha in [0, 1). The Rockafellar-Uryasev minimum over eta, taken
    over eta in the support (the function is convex piecewise linear in eta with its kinks
    there, so the minimum is at one of them)."""
    x = np.asarray(values, float)
    p = np.asarray(probability, float)
    if not 0.0 <= alpha < 1.0:
        raise ValueError(f"alpha must be in [0, 1), got {alpha}")
    tail = np.maximum(x[None, :] - x[:, None], 0.0) @ p  # (S,) E[(X - eta)+] at eta = each value
    return float(np.min(x + tail / (1.0 - alpha)))


def cvar_vertex(values, probability, alpha: float) -> np.ndarray:
    """The worst distribution in CVaR's risk envelope for ``values`` (S,): weights w (S,),
    0 <= w_s <= p_s / (1 - alpha), sum w = 1, filled from the largest value down (ties by
    position), so that w @ values = CVaR_alpha(values). Unitless."""
    x = np.asarray(values, float)
    p = np.asarray(probability, float)
    if not 0.0 <= alpha < 1.0:
        raise ValueError(f"alpha must be in [0, 1), got {alpha}")
    w = np.zeros_like(p)
    left = 1.0
    for s in np.argsort(-x, kind="stable"):
        take = min(p[s] / (1.0 - alpha), left)
        w[s] = take
        left -= take
        if left <= 1e-15:
            break
    return w


def value_at_risk(values, probability, alpha: float) -> float:
    """VaR_alpha: the smallest value v with P(X <= v) >= alpha (same unit as ``values``)."""
    x = np.asarray(values, float)
    order = np.argsort(x, kind="stable")
    cum = np.cumsum(np.asarray(probability, float)[order])
    return float(x[order][min(int(np.searchsorted(cum, alpha - 1e-12)), len(x) - 1)])


def scenario_costs(first_stage_spend: float, recourse_by_scenario) -> np.ndarray:
    """(S,) total cost of each scenario (currency): the first-stage spend plus that
    scenario's recourse cost summed over depots and weeks (``recourse_by_scenario`` (S,))."""
    return float(first_stage_spend) + np.asarray(recourse_by_scenario, float)


def risk_objective(expected_cost: float, cvar_cost: float, weight: float) -> float:
    """(1 - lambda) E[cost] + lambda CVaR_alpha[cost] (currency), lambda = ``weight``: the
    objective every risk formulation minimises (define_cvar's excess rows, the cuts), its
    value for a plan from the evaluator's expected cost and CVaR; E[cost] alone at weight 0."""
    lam = float(weight)
    return float(expected_cost) if lam == 0 else (1.0 - lam) * float(expected_cost) + lam * float(cvar_cost)


def define_cvar(m: pyo.ConcreteModel, data: ModelData) -> None:
    """eta (``cvar_threshold``, currency, free), e_s (``cvar_excess``, currency, >= 0) and

    cvar_excess_definition[s]:  e_s - (first_stage_cost + second_stage_cost[s]) + eta >= 0

    ``m.cvar_cost`` = eta + 1 / (1 - alpha) sum_s p_s e_s (currency), an Expression the
    objective weights. Needs the extensive form over all scenarios."""
    alpha = float(data.cvar_alpha)
    m.cvar_threshold = pyo.Var(domain=pyo.Reals)
    m.cvar_excess = pyo.Var(m.SCENARIOS, domain=pyo.NonNegativeReals)

    def excess(_m, s):
        return m.cvar_excess[s] - (m.first_stage_cost + m.second_stage_cost[s]) + m.cvar_threshold >= 0

    m.cvar_excess_definition = pyo.Constraint(m.SCENARIOS, rule=excess)
    p = {data.scenarios[i]: float(data.probability[i]) for i in m._optplan_scenario_positions}
    m.cvar_cost = pyo.Expression(expr=m.cvar_threshold + sum(p[s] * m.cvar_excess[s] for s in m.SCENARIOS) / (1.0 - alpha))


def define_cvar_cuts(m: pyo.ConcreteModel, data: ModelData, vertices) -> None:
    """theta (``cvar_threshold``, currency, >= 0) and one risk-envelope cut per vertex in
    ``vertices`` (each (S,) weights) on an aggregated model: segment columns
    ``cvar_cut_segment[k,d,t,j]`` (blocks/week) and the rows ``cvar_cut_link[k,d,t]`` and
    ``cvar_cut[k]`` of the module docstring (the objective defines ``m.cvar_cost`` = F + theta,
    currency)."""
    m.cvar_threshold = pyo.Var(domain=pyo.NonNegativeReals)
    keys, bounds, slopes, constants = [], {}, {}, []
    for k, w in enumerate(vertices, start=1):
        seg = cut_segments(data, w)
        constants.append(float(seg.value_at_zero.sum()))
        for d, t, j in zip(*np.nonzero(seg.used), strict=True):
            key = (k, data.depots[d], int(t) + 1, int(j) + 1)
            keys.append(key)
            length = seg.length[d, t, j]
            bounds[key] = (0.0, None if np.isinf(length) else float(length))
            slopes[key] = float(seg.slope[d, t, j])
    m.CVAR_CUTS = pyo.RangeSet(1, len(constants))
    m.CVAR_CUT_SEGMENTS = pyo.Set(dimen=4, ordered=True, initialize=keys)
    m.cvar_cut_segment = pyo.Var(m.CVAR_CUT_SEGMENTS, domain=pyo.NonNegativeReals, bounds=lambda _m, *key: bounds[key])
    members: dict[tuple, list] = {}
    for key in keys:
        members.setdefault(key[:3], []).append(m.cvar_cut_segment[key])
        members.setdefault(key[:1], []).append((slopes[key], m.cvar_cut_segment[key]))

    def link(_m, k, d, t):
        return m.capacity_blocks[d, t] - sum(members.get((k, d, t), ())) == 0

    m.cvar_cut_link = pyo.Constraint(m.CVAR_CUTS, m.DEPOT_WEEK, rule=link)

    def cut(_m, k):
        return m.cvar_threshold - sum(c * y for c, y in members[(k,)] if c != 0) >= constants[k - 1]

    m.cvar_cut = pyo.Constraint(m.CVAR_CUTS, rule=cut)


def cut_segments(data: ModelData, weights):
    """The segment form (aggregated.RecourseSegments) of sum_s w_s Q_dts(q) for the vertex
    ``weights`` (S,), over the scenarios with w_s > 0 only."""

    w = np.asarray(weights, float)
    keep = w > 0
    if data.has_week_profile:  # long-lead periods settled week by week (recourse.week_points)

        return recourse_segments(data, *week_points(data, data.demand[..., keep], w[keep], data.demand_share[:, :, keep]))
    return recourse_segments(data, data.demand[..., keep], w[keep])
