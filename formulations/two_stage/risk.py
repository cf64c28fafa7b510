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

Rows (extensive form only: CVaR couples the scenarios, so the aggregated recourse, which
keeps only each depot-week's expectation, cannot state it):

    cvar_excess_definition[s]:  e_s - X_s + eta >= 0                         currency

Special cases (tested): lambda = 0 is the expected cost; alpha = 0 makes CVaR the expected
cost, so any lambda gives the expected-cost optimum; alpha -> 1 approaches the worst case.

``cvar`` is the numpy kernel (exact for a discrete distribution); ``scenario_costs`` gives
X_s of any plan; ``define_cvar`` the Pyomo rows; the objective (objective.py) weights them.
"""

from __future__ import annotations

import numpy as np

from formulations.data import ModelData
from formulations.two_stage._pyomo import pyo

#: Variable components of the CVaR (in column order, after the recourse).
RISK_VARS = ("cvar_threshold", "cvar_excess")


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
