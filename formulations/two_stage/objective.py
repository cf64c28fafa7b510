"""The objective: expected total cost, in the instance currency.

    first stage:  sum cost[c] x + sum z - sum_d terminal_value[d] a[d,T]       currency
    second stage: sum_s weight_s sum_{d,t} (surge_cost u + unserved_cost v + idle_cost w)

The terminal value (currency per driver, optional) credits the drivers still active at the
end of week T, a[d,T] (the expected stock, the same in every scenario), so the plan does not
let the pool run down because weeks after T are not modelled. It must not exceed the cost of
recruiting a driver, min_c cost[c] / conversion[c] (else recruiting only to be credited at
the end would pay without limit); the instance's validation enforces it.

``cost_components`` is the numpy kernel of the same sum, split by component; the evaluator
and the plan call it.
"""

from __future__ import annotations

import numpy as np

from formulations.data import Decisions, ModelData
from formulations.two_stage._pyomo import pyo
from formulations.two_stage.budgets import spend
from formulations.two_stage.recourse import recourse_cost
from formulations.two_stage.risk import define_cvar

#: Cost components in report order (currency each), then "total".
COST_COMPONENTS = ("recruiting", "planned_incentives", "surge", "unserved_penalty", "idle_penalty")


def terminal_credit(data: ModelData, active) -> float:
    """-sum_d terminal_value[d] a[d,T] (currency; <= 0): the value of the drivers active at
    the end of the last week, ``active`` (D, T) drivers, as a negative cost."""
    if not data.has_terminal_value:
        return 0.0
    return -float(np.dot(data.terminal_value, np.asarray(active)[:, -1]))


def cost_components(data: ModelData, decisions: Decisions, surge, unserved, idle, probability,
                    active=None) -> dict[str, float]:
    """Expected cost by component (currency) of first-stage decisions and per-scenario
    recourse (D, T, S) with scenario probabilities (S,); "total" is their sum. With a
    terminal value, ``active`` (D, T) drivers gives the "terminal_value" component (<= 0)."""
    recruiting, incentives = spend(data, decisions)
    exp = lambda a: float(np.einsum("dts,s->", a, probability))  # noqa: E731 - expectation over scenarios
    cost = {
        "recruiting": float(recruiting.sum()),
        "planned_incentives": float(incentives.sum()),
        "surge": exp(recourse_cost(data, surge, 0.0, 0.0)),
        "unserved_penalty": exp(recourse_cost(data, 0.0, unserved, 0.0)),
        "idle_penalty": exp(recourse_cost(data, 0.0, 0.0, idle)),
    }
    if data.has_terminal_value:
        cost["terminal_value"] = terminal_credit(data, active)
    cost["total"] = sum(cost.values())
    return cost


def define_objective(m: pyo.ConcreteModel, data: ModelData, weights: dict[int, float]) -> None:
    """Minimise expected total cost (currency); with ``data.cvar_weight`` = lambda > 0,
    (1 - lambda) E[cost] + lambda CVaR_alpha[cost] instead (risk.py: the excess rows of the
    extensive form, or F + (1 - lambda) E[recourse] + lambda theta with theta above the
    risk-envelope cuts on the aggregated recourse).

    ``first_stage_cost`` and ``second_stage_cost[s]`` are kept as named Expressions so that
    mpi-sppy (and the reports) can read them; ``weights`` maps scenario positions to the
    weight of their second-stage cost (the probabilities in the extensive form). With the
    aggregated recourse the second stage is ``m.expected_recourse_cost`` (aggregated.py)."""
    credit = 0.0
    if data.has_terminal_value:  # terminal_credit's rows: - sum_d value[d] a[d,T]
        T = data.n_weeks
        credit = -sum(float(v) * m.active_drivers[d, T] for d, v in zip(data.depots, data.terminal_value, strict=True)
                      if v != 0)
    m.first_stage_cost = pyo.Expression(expr=m.first_stage_spend.expr + credit)
    lam = float(data.cvar_weight)
    if getattr(m, "_optplan_recourse", "extensive") == "aggregated":
        if lam > 0:  # F + (1 - lambda) phi^p(q) + lambda theta (risk.define_cvar_cuts: theta >= each cut)
            m.cvar_cost = pyo.Expression(expr=m.first_stage_cost + m.cvar_threshold)
            m.expected_cost = pyo.Objective(expr=m.first_stage_cost + (1.0 - lam) * m.expected_recourse_cost
                                            + lam * m.cvar_threshold, sense=pyo.minimize)
            return
        m.expected_cost = pyo.Objective(expr=m.first_stage_cost + m.expected_recourse_cost, sense=pyo.minimize)
        return
    # currency per block, per depot (the same for every depot unless prices differ by country)
    price = {d: tuple(float(a[i]) for a in data.recourse_prices()) for i, d in enumerate(data.depots)}
    by_scenario: dict[str, list] = {s: [] for s in m.SCENARIOS}
    for d, t, s in m.DEPOT_WEEK_SCENARIO:
        by_scenario[s].append((d, t))

    def second_stage(_m, s):
        return sum(
            price[d][0] * m.surge_blocks[d, t, s] + price[d][1] * m.unserved_blocks[d, t, s]
            + price[d][2] * m.idle_blocks[d, t, s]
            for d, t in by_scenario[s]
        )

    m.second_stage_cost = pyo.Expression(m.SCENARIOS, rule=second_stage)
    name_weight = {data.scenarios[i]: w for i, w in weights.items()}
    expected = m.first_stage_cost + sum(name_weight[s] * m.second_stage_cost[s] for s in m.SCENARIOS)
    if lam > 0:  # (1 - lambda) E[cost] + lambda CVaR_alpha[cost] (risk.py)
        define_cvar(m, data)
        m.expected_cost = pyo.Objective(expr=(1.0 - lam) * expected + lam * m.cvar_cost, sense=pyo.minimize)
        return
    m.expected_cost = pyo.Objective(expr=expected, sense=pyo.minimize)
