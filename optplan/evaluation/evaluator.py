"""Independent plan evaluator: a plan on a scenario set without Pyomo or a solver.

Given first-stage decisions it recomputes the driver stock-flow
(``formulations.two_stage.drivers.simulate_drivers``) and, per scenario, the optimal
recourse in closed form (``formulations.two_stage.recourse.optimal_recourse``), then the
expected cost by component (``formulations.two_stage.objective.cost_components``) and the
KPIs. For the LP's own plan on its own scenarios the expected cost equals the LP objective;
tests check this on many instances. The plan, the DP, the report and the simulation read
costs and KPIs from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from formulations.data import Decisions, ModelData
from formulations.two_stage.bonus import pool_excess
from formulations.two_stage.budgets import budget_violations
from formulations.two_stage.decisions import decision_violations
from formulations.two_stage.drivers import driver_weeks, onboarding_excess, simulate_drivers
from formulations.two_stage.objective import cost_components
from formulations.two_stage.recourse import period_recourse, recourse_cost
from formulations.two_stage.risk import cvar, scenario_costs
from formulations.two_stage.service import service_kpis
from formulations.two_stage.sets import bound_violations

#: Constraint violations below this share of the right-hand side (at least 1 unit) are not
#: reported: solvers meet constraints to about 1e-7 relative.
FEASIBILITY_ATOL = 1e-6

__all__ = ["FEASIBILITY_ATOL", "Decisions", "Evaluation", "check_feasibility", "evaluate_decisions"]


@dataclass
class Evaluation:
    """Expected cost and KPIs of a plan on a scenario set (money in ``currency``)."""

    currency: str
    cost: dict[str, float]  # component -> expected currency over the horizon
    kpis: dict[str, float]
    recruited_arrivals: np.ndarray  # (D, T) drivers/week
    active_drivers: np.ndarray  # (D, T) drivers
    capacity_blocks: np.ndarray  # (D, T) blocks/week
    surge_blocks: np.ndarray  # (D, T, S) blocks/week
    unserved_blocks: np.ndarray  # (D, T, S)
    idle_blocks: np.ndarray  # (D, T, S)
    violations: dict[str, float] = field(default_factory=dict)  # family -> largest violation
    #: (S,) currency: each scenario's cost, first stage plus its recourse (risk.scenario_costs)
    scenario_cost: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def expected_cost(self) -> float:
        return self.cost["total"]

    def cost_table(self) -> pd.DataFrame:
        return pd.DataFrame(
            {"component": list(self.cost), "expected_cost": list(self.cost.values()), "currency": self.currency}
        )


def _scenarios(data: ModelData, demand, probability, share):
    """(demand (D, T, S), week shares or None, probability (S,)) an evaluation settles on:
    the caller's or the data's (``evaluate_decisions``)."""
    if demand is None and share is None:
        share = data.demand_share
    demand = data.demand if demand is None else np.asarray(demand, float)
    return demand, share, data.probability if probability is None else np.asarray(probability, float)


def expected_cost(data: ModelData, decisions: Decisions) -> float:
    """``evaluate_decisions(data, decisions).expected_cost`` (currency) without the KPIs, the
    scenario costs and the feasibility check: the same kernels, 2-3x faster, for callers that
    evaluate many small changes (the orders' repair step)."""
    demand, share, p = _scenarios(data, None, None, None)
    _, active, capacity = simulate_drivers(data, decisions)
    surge, unserved, idle = period_recourse(data, capacity, demand, share)
    return cost_components(data, decisions, surge, unserved, idle, p, active=active)["total"]


def evaluate_decisions(
    data: ModelData,
    decisions: Decisions,
    demand: np.ndarray | None = None,
    probability: np.ndarray | None = None,
    share: np.ndarray | None = None,
) -> Evaluation:
    """Expected cost and KPIs of ``decisions`` on ``demand`` (D, T, S) with ``probability``
    (S,); defaults: the data's own scenarios. Long-lead periods are settled week by week with
    ``share`` (D, T, S, J), each week's share of its period's demand (default: the data's
    demand_share with its own demand; even weeks with a caller's demand and no share)."""
    demand, share, p = _scenarios(data, demand, probability, share)
    arrivals, active, capacity = simulate_drivers(data, decisions)
    surge, unserved, idle = period_recourse(data, capacity, demand, share)
    cost = cost_components(data, decisions, surge, unserved, idle, p, active=active)
    exp = lambda a: float(np.einsum("dts,s->", a, p))  # noqa: E731 - expectation over scenarios (blocks)
    network = service_kpis(demand, unserved, idle, capacity, driver_weeks(data, active), p, by_depot=False)
    by_scenario = scenario_costs(cost["recruiting"] + cost["planned_incentives"] + cost.get("terminal_value", 0.0),
                                 recourse_cost(data, surge, unserved, idle).sum(axis=(0, 1)))  # (S,) currency
    kpis = {  # both customers' KPIs from the service kernel (formulations/two_stage/service.py)
        "expected_cost": cost["total"],
        "expected_demand_blocks": float(network["demand_blocks"]),
        "expected_unserved_blocks": float(network["unserved_blocks"]),
        "expected_surge_blocks": exp(surge),
        "expected_idle_blocks": float(network["idle_blocks"]),
        "service_level": float(network["service_level"]),
        "driver_utilisation": float(network["driver_utilisation"]),
        "blocks_per_driver_week": float(network["blocks_per_driver_week"]),
        "planned_capacity_blocks": float(capacity.sum()),
        "applicants_total": float(decisions.applicants.sum()),
        "expected_new_drivers_recruited": float(arrivals.sum()),
        "first_stage_spend": cost["recruiting"] + cost["planned_incentives"],
        # risk (formulations/two_stage/risk.py): mean cost of the worst 1 - alpha of scenarios
        "cvar_alpha": float(data.cvar_alpha),
        "cvar_cost": cvar(by_scenario, p, float(data.cvar_alpha)),
        "worst_scenario_cost": float(by_scenario.max()),
    }
    return Evaluation(
        currency=data.currency,
        cost=cost,
        kpis=kpis,
        recruited_arrivals=arrivals,
        active_drivers=active,
        capacity_blocks=capacity,
        surge_blocks=surge,
        unserved_blocks=unserved,
        idle_blocks=idle,
        violations=check_feasibility(data, decisions, arrivals=arrivals),
        scenario_cost=by_scenario,
    )


def check_feasibility(data: ModelData, decisions: Decisions, arrivals: np.ndarray | None = None) -> dict[str, float]:
    """Largest violation of each first-stage constraint family (only those > tolerance),
    from the numpy kernels of each family; ``arrivals`` (D, T drivers/week) if the caller has
    already simulated them (``simulate_drivers``), else simulated here."""
    if arrivals is None:
        arrivals, _, _ = simulate_drivers(data, decisions)
    finite_cap = np.where(np.isfinite(data.onboarding_cap), data.onboarding_cap, 0.0)
    checks = {  # family -> (largest violation, scale of its right-hand side)
        **bound_violations(data, decisions.applicants, decisions.incentive_spend),
        **decision_violations(data, decisions),
        "onboarding_cap": (np.max(onboarding_excess(data, arrivals), initial=0.0), np.max(finite_cap, initial=1.0)),
        "applicant_pool": (np.max(pool_excess(data, decisions.applicants), initial=0.0),
                           np.max(np.where(np.isfinite(data.applicant_cap), data.applicant_cap, 0.0), initial=1.0)),
        **budget_violations(data, decisions),
    }
    return {
        family: float(v)
        for family, (v, scale) in checks.items()
        if v > FEASIBILITY_ATOL * max(1.0, float(scale))
    }

