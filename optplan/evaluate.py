"""Independent plan evaluator: simulate a plan on a scenario set without Pyomo or a solver.

Given first-stage decisions (applicants per depot, channel and week; incentive spend per
depot, week and segment) it recomputes the driver stock-flow and, per scenario, the optimal
recourse in closed form:

    shortfall = max(0, demand - q)                                  blocks/week
    surge     = min(shortfall, share * q)  if surge_cost < unserved_cost, else 0
    unserved  = shortfall - surge                                   blocks/week
    idle      = max(0, q - demand)                                  blocks/week

which is the optimum of the LP's second stage for fixed capacity q (each block short is
covered by the cheaper of surge and going unserved, surge only up to its cap). For the
LP's own plan on its own scenarios the expected cost equals the LP objective; tests check
this on many instances. Loops run over weeks and lags only; everything else is numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from formulations.data import ModelData

#: Constraint violations below this share of the right-hand side (at least 1 unit) are not
#: reported: solvers meet constraints to about 1e-7 relative.
FEASIBILITY_ATOL = 1e-6


@dataclass(frozen=True)
class Decisions:
    """First-stage decisions of a plan, as dense arrays."""

    applicants: np.ndarray  # (D, C, T) applicants/week
    incentive_spend: np.ndarray  # (D, T, G) currency/week


@dataclass
class Evaluation:
    """Expected cost and KPIs of a plan on a scenario set (money in ``currency``)."""

    currency: str
    cost: dict[str, float]  # component -> expected currency over the horizon
    kpis: dict[str, float]
    active_drivers: np.ndarray  # (D, T) drivers
    capacity_blocks: np.ndarray  # (D, T) blocks/week
    surge_blocks: np.ndarray  # (D, T, S)
    unserved_blocks: np.ndarray  # (D, T, S)
    idle_blocks: np.ndarray  # (D, T, S)
    violations: dict[str, float] = field(default_factory=dict)  # family -> largest violation

    @property
    def expected_cost(self) -> float:
        return self.cost["total"]

    def cost_table(self) -> pd.DataFrame:
        return pd.DataFrame(
            {"component": list(self.cost), "expected_cost": list(self.cost.values()), "currency": self.currency}
        )


def simulate_drivers(data: ModelData, decisions: Decisions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stock-flow of the plan: (recruited arrivals, active drivers, capacity), each (D, T).

    n[d,t] = sum_c sum_k yield[c,k] x[d,c,t-k]                   drivers/week
    a[d,t] = retention[d] a[d,t-1] + n[d,t] + pipeline[d,t]     drivers, a[d,0] = initial
    q[d,t] = blocks_per_driver[d] a[d,t] + sum_g rate[d,g] z[d,t,g]   blocks/week
    """
    D, C, T, _ = data.shape
    x = decisions.applicants
    arrivals = np.zeros((D, T))
    for k in range(data.n_lags):
        if k >= T:
            break
        # applicants of week t-k reach week t with probability yield[c,k]
        arrivals[:, k:] += np.einsum("dct,c->dt", x[:, :, : T - k], data.yield_kernel[:, k])
    active = np.zeros((D, T))
    previous = data.initial_active.astype(float)
    for t in range(T):
        previous = data.retention * previous + arrivals[:, t] + data.pipeline[:, t]
        active[:, t] = previous
    z = decisions.incentive_spend
    bought = np.einsum("dtg,dg->dt", z, data.incentive_rate) if z.size else np.zeros((D, T))
    capacity = data.blocks_per_driver[:, None] * active + bought
    return arrivals, active, capacity


def optimal_recourse(data: ModelData, capacity: np.ndarray, demand: np.ndarray):
    """Closed-form second stage (blocks/week) for capacity (...) and demand (..., S), e.g.
    (D, T) and (D, T, S); returns surge, unserved, idle, each shaped like demand."""
    q = np.asarray(capacity)[..., None]
    shortfall = np.maximum(demand - q, 0.0)
    if data.surge_cap_share > 0 and data.surge_cost < data.unserved_cost:
        surge = np.minimum(shortfall, data.surge_cap_share * np.maximum(q, 0.0))
    else:
        surge = np.zeros_like(shortfall)
    unserved = shortfall - surge
    idle = np.maximum(q - demand, 0.0)
    return surge, unserved, idle


def evaluate_decisions(
    data: ModelData,
    decisions: Decisions,
    demand: np.ndarray | None = None,
    probability: np.ndarray | None = None,
) -> Evaluation:
    """Expected cost and KPIs of ``decisions`` on ``demand`` (D, T, S) with ``probability``
    (S,); defaults: the data's own scenarios."""
    demand = data.demand if demand is None else np.asarray(demand, float)
    probability = data.probability if probability is None else np.asarray(probability, float)
    _, active, capacity = simulate_drivers(data, decisions)
    surge, unserved, idle = optimal_recourse(data, capacity, demand)
    p = probability
    x, z = decisions.applicants, decisions.incentive_spend
    recruiting = float(np.einsum("dct,c->", x, data.cost_per_applicant))
    incentives = float(z.sum())
    exp = lambda a: float(np.einsum("dts,s->", a, p))  # noqa: E731 - expectation over scenarios
    cost = {
        "recruiting": recruiting,
        "planned_incentives": incentives,
        "surge": data.surge_cost * exp(surge),
        "unserved_penalty": data.unserved_cost * exp(unserved),
        "idle_penalty": data.idle_cost * exp(idle),
    }
    cost["total"] = sum(cost.values())
    total_demand = exp(demand)
    kpis = {
        "expected_demand_blocks": total_demand,
        "expected_unserved_blocks": exp(unserved),
        "expected_surge_blocks": exp(surge),
        "expected_idle_blocks": exp(idle),
        "service_level": 1.0 - exp(unserved) / total_demand if total_demand > 0 else 1.0,
        "planned_capacity_blocks": float(capacity.sum()),
        "applicants_total": float(x.sum()),
        "first_stage_spend": recruiting + incentives,
    }
    return Evaluation(
        currency=data.currency,
        cost=cost,
        kpis=kpis,
        active_drivers=active,
        capacity_blocks=capacity,
        surge_blocks=surge,
        unserved_blocks=unserved,
        idle_blocks=idle,
        violations=check_feasibility(data, decisions),
    )


def check_feasibility(data: ModelData, decisions: Decisions) -> dict[str, float]:
    """Largest violation of each first-stage constraint family (only those > tolerance)."""
    x, z = decisions.applicants, decisions.incentive_spend
    arrivals, _, _ = simulate_drivers(data, decisions)
    spend_w = np.einsum("dct,c->t", x, data.cost_per_applicant) + z.sum(axis=(0, 2))
    spend_d = np.einsum("dct,c->d", x, data.cost_per_applicant) + z.sum(axis=(1, 2))
    regions = np.asarray(data.regions)
    finite = lambda a: np.where(np.isfinite(a), a, 0.0)  # noqa: E731
    region_gaps = [(float(spend_d[regions == r].sum()) - cap, cap) for r, cap in data.budget_region.items()]
    checks = {  # family -> (largest violation, scale of its right-hand side)
        "applicant_bounds": (
            max(np.max(-x, initial=0.0), np.max(x - data.applicant_cap[:, :, None], initial=0.0)),
            np.max(finite(data.applicant_cap), initial=1.0),
        ),
        "incentive_bounds": (
            max(np.max(-z, initial=0.0), np.max(z - data.incentive_width[:, None, :], initial=0.0)),
            np.max(data.incentive_width, initial=1.0),
        ),
        "onboarding_cap": (
            np.max(arrivals + data.pipeline - data.onboarding_cap[:, None], initial=0.0),
            np.max(finite(data.onboarding_cap), initial=1.0),
        ),
        "budget_total": (spend_w.sum() - data.budget_total, finite(np.array(data.budget_total))),
        "budget_week": (np.max(spend_w - data.budget_weekly, initial=0.0), np.max(finite(data.budget_weekly), initial=1.0)),
        "budget_region": (
            max([g for g, _ in region_gaps], default=0.0),
            max([c for _, c in region_gaps], default=1.0),
        ),
    }
    return {
        family: float(v)
        for family, (v, scale) in checks.items()
        if v > FEASIBILITY_ATOL * max(1.0, float(scale))
    }
