"""The same decisions through every consumer give the kernels' numbers (issue #26, part 1).

For each family (drivers, budgets, recourse, risk, targets, periods), decisions (an optimal
plan, and random decisions within the bounds) go through each consumer that reports those
quantities: the evaluator, the plan's tables, the DP's linear form of the driver stock and its
expected-recourse curve, re-planning's expected state, the decomposition's columns, the CVaR
cut loop, the report's out-of-sample summary and solve_data's costing of a plan that is not
optimal. Each must equal the family's numpy kernel (DRIVERS_RTOL), so a consumer that
restated the math and drifted would fail here.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import REPO
from pyomo.contrib.solver.common.results import SolutionStatus, TerminationCondition

import optplan
from formulations.data import Decisions
from formulations.two_stage.budgets import budget_usage, spend, total_spend
from formulations.two_stage.drivers import driver_weeks, incentive_blocks, simulate_drivers
from formulations.two_stage.recourse import optimal_recourse, period_recourse, recourse_cost
from formulations.two_stage.risk import cvar, risk_objective, scenario_costs
from formulations.two_stage.service import scenario_service_level, service_kpis
from optplan.evaluation.evaluator import evaluate_decisions
from optplan.explain.report import out_of_sample
from optplan.planning.plan import Plan
from optplan.planning.replan import expected_state
from optplan.solvers import Capabilities, SolveOptions, SolveResult, SolverStatus, Timings, solve_data
from optplan.solvers.cvar_cuts import scenario_recourse
from optplan.solvers.dp.depot import DepotModel

#: Kernel against consumer: the same arithmetic, summed in another order at most.
DRIVERS_RTOL = 1e-9


def _close(a, b) -> None:
    a, b = np.asarray(a, float), np.asarray(b, float)
    np.testing.assert_allclose(a, b, rtol=DRIVERS_RTOL, atol=DRIVERS_RTOL * max(1.0, float(np.abs(b).max(initial=0.0))))


def _plan(instance, decisions: Decisions) -> Plan:
    """A Plan of given decisions (as an engine would return them), without a solve."""
    status = SolverStatus(TerminationCondition.convergenceCriteriaSatisfied, SolutionStatus.feasible, "given",
                          "given", None, None)
    data = instance.model_data()
    return Plan.from_result(SolveResult(data, status, decisions, Timings(), {}), instance.manifest.name,
                            instance.manifest.horizon.start_date)


def _cases():
    out = []
    for name in ("demo", "world"):
        inst = optplan.load_instance(REPO / "instances" / name)
        out.append((f"{name}-optimal", inst, optplan.solve(inst).decisions))
        data = inst.model_data()
        rng = np.random.default_rng(len(name))
        cap = np.where(np.isfinite(data.applicant_cap), data.applicant_cap, 30.0)[:, :, None]
        x = rng.uniform(0, 1, data.recruit_mask().shape) * cap * data.recruit_mask()
        z = rng.uniform(0, 1, (len(data.depots), data.n_weeks, data.incentive_width.shape[1])) \
            * data.incentive_width[:, None, :]
        out.append((f"{name}-random", inst, Decisions(x, z)))
    return out


CASES = _cases()


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_drivers_through_every_consumer(case):
    _, instance, decisions = case
    plan = _plan(instance, decisions)
    data, dec = plan.data, plan.decisions
    arrivals, active, capacity = simulate_drivers(data, dec)  # the kernel
    ev = evaluate_decisions(data, dec)
    for got, want in ((ev.recruited_arrivals, arrivals), (ev.active_drivers, active), (ev.capacity_blocks, capacity)):
        _close(got, want)
    table = plan.drivers
    _close(table["active_drivers"], active.ravel())
    _close(table["new_drivers_recruited"], arrivals.ravel())
    _close(plan.capacity["capacity_blocks"], capacity.ravel())
    incentives = plan.incentives
    blocks = incentive_blocks(data, dec.incentive_spend)  # (D, T) extra blocks by the kernel
    by_cell = np.zeros_like(blocks)
    np.add.at(by_cell, (incentives["depot"].map({d: i for i, d in enumerate(data.depots)}).to_numpy(),
                        incentives["week"].to_numpy() - 1), incentives["extra_blocks"].to_numpy())
    _close(by_cell, blocks)
    for d in range(len(data.depots)):
        _close(DepotModel(data, d).drivers(dec.applicants[d]), active[d])
    for week in (1, 3, data.n_weeks):
        state = expected_state(instance, plan, week)
        want = data.initial_active if week == 1 else active[:, week - 2]
        _close(state.drivers["active_drivers"], want)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_budgets_through_every_consumer(case):
    _, instance, decisions = case
    plan = _plan(instance, decisions)
    data, dec = plan.data, plan.decisions
    spend_dt = total_spend(data, dec.applicants, dec.incentive_spend)  # (D, T) currency, the kernel
    usage = budget_usage(data, dec)
    _close(plan.spend_by_week["total"], spend_dt.sum(axis=0))
    region_total = plan.spend_by_region.set_index("region")["total"]
    for r in set(data.regions):
        _close(region_total[r], spend_dt[np.asarray(data.regions) == r].sum())
    budgets = plan.budgets
    scope_of = {"budget_total": "total", "budget_week": "week", "budget_region": "region", "budget_country": "country"}
    for family, (keys, used, caps) in usage.items():
        rows = budgets[budgets["scope"] == scope_of[family]].set_index("key")
        for key, u, cap in zip(keys, used, caps, strict=True):
            shown = "total" if family == "budget_total" else str(key)
            _close(rows.loc[shown, "used"], u)
            _close(rows.loc[shown, "cap"], cap)
    for week in (1, 4, data.n_weeks):
        state = expected_state(instance, plan, week)
        _close(state.spend_total, spend_dt[:, : week - 1].sum())


@pytest.mark.parametrize("name", ["demo", "world"])
def test_the_decompositions_columns_spend_and_cost_what_the_kernels_say(name):
    """Each depot's pricing problem (solve_depot_task, at budget prices > 1 in some weeks)
    returns a column whose spend by week is the budgets kernel's of its decisions and whose
    cost is the evaluator's expected cost of them (first stage plus the aggregated recourse)."""
    from optplan.solvers.decompose import DepotTask, solve_depot_task

    data = optplan.load_instance(REPO / "instances" / name).model_data()
    T = data.n_weeks
    multiplier = 1.0 + 0.5 * (np.arange(T) % 3 == 0)  # every third week's spend priced 1.5x
    for d in range(len(data.depots)):
        depot = data.for_depot(d)
        col = solve_depot_task(DepotTask(f"test-{name}", d, depot, multiplier))
        decisions = Decisions(col.applicants[None], col.incentive_spend[None])
        _close(col.spend, total_spend(depot, decisions.applicants, decisions.incentive_spend)[0])
        _close(col.cost, evaluate_decisions(depot, decisions).expected_cost)
        _close(col.priced, col.cost + float(((multiplier - 1.0) * col.spend).sum()))


def _recourse_by_kernel(data, capacity):
    """(surge, unserved, idle) (D, T, S) blocks by the recourse kernel: week by week, or
    settled week by week inside long-lead periods."""
    if data.has_week_profile:
        return period_recourse(data, capacity, data.demand, data.demand_share)
    return optimal_recourse(data, capacity, data.demand)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_recourse_through_every_consumer(case):
    _, instance, decisions = case
    plan = _plan(instance, decisions)
    data, dec = plan.data, plan.decisions
    _, active, capacity = simulate_drivers(data, dec)
    surge, unserved, idle = _recourse_by_kernel(data, capacity)
    ev = evaluate_decisions(data, dec)
    for got, want in ((ev.surge_blocks, surge), (ev.unserved_blocks, unserved), (ev.idle_blocks, idle)):
        _close(got, want)
    p = data.probability
    by_part = {"surge": recourse_cost(data, surge, 0.0, 0.0), "unserved_penalty": recourse_cost(data, 0.0, unserved, 0.0),
               "idle_penalty": recourse_cost(data, 0.0, 0.0, idle)}
    for part, cost in by_part.items():
        _close(plan.cost[part], float(np.einsum("dts,s->", cost, p)))
    per_scenario = recourse_cost(data, surge, unserved, idle).sum(axis=(0, 1))  # (S,) currency
    _close(scenario_recourse(data, capacity), per_scenario)  # the CVaR cut loop's R_s
    if not data.has_periods:  # the DP plans weekly instances: its phi_t is the expected recourse
        weeks = np.arange(data.n_weeks)
        for d in range(len(data.depots)):
            want = recourse_cost(data, surge[d:d + 1], unserved[d:d + 1], idle[d:d + 1], depots=[d])[0] @ p
            _close(DepotModel(data, d).recourse(capacity[d], weeks), want)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_risk_through_every_consumer(case):
    _, instance, decisions = case
    plan = _plan(instance, decisions)
    data, dec = plan.data, plan.decisions
    _, active, capacity = simulate_drivers(data, dec)
    recruiting, incentives = spend(data, dec)
    first = float(recruiting.sum() + incentives.sum()) + plan.cost.get("terminal_value", 0.0)
    per_scenario = scenario_costs(first, recourse_cost(data, *_recourse_by_kernel(data, capacity)).sum(axis=(0, 1)))
    want_cvar = cvar(per_scenario, data.probability, float(data.cvar_alpha))
    ev = evaluate_decisions(data, dec)
    _close(ev.scenario_cost, per_scenario)
    _close(ev.kpis["cvar_cost"], want_cvar)
    _close(plan.kpis["cvar_cost"], want_cvar)
    _close(plan.kpis["worst_scenario_cost"], per_scenario.max())
    # solve_data costs a plan that is not optimal by the kernels: (1 - lambda) E + lambda CVaR
    # (a plan that breaks a first-stage row keeps the engine's objective)
    weight = 0.3
    result = solve_data(data, SolveOptions(cvar_weight=weight, cvar_alpha=float(data.cvar_alpha)), _Given(dec))
    want = 1e18 if ev.violations else risk_objective(float(per_scenario @ data.probability), want_cvar, weight)
    _close(result.status.objective, want)
    # the report's out-of-sample summary on the instance's own scenarios as equally likely paths
    _close(out_of_sample(plan, _ScenariosAsPaths(data))["expected_cost"], per_scenario.mean())


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_targets_through_every_consumer(case):
    """The service kernel's per-depot KPIs are the plan's service table and the achieved
    shares of its targets (service level per depot and network, utilisation floor)."""
    _, instance, decisions = case
    instance = instance.with_changes({"targets.service_level": 0.5, "targets.network_service_level": 0.5,
                                      "targets.driver_utilisation": 0.1})
    plan = _plan(instance, decisions)
    data, dec = plan.data, plan.decisions
    _, active, capacity = simulate_drivers(data, dec)
    _, unserved, idle = _recourse_by_kernel(data, capacity)
    k = service_kpis(data.demand, unserved, idle, capacity, driver_weeks(data, active), data.probability)
    net = service_kpis(data.demand, unserved, idle, capacity, driver_weeks(data, active), data.probability, by_depot=False)
    for col in ("demand_blocks", "unserved_blocks", "capacity_blocks", "idle_blocks", "service_level",
                "driver_utilisation"):
        _close(plan.service[col], k[col])
    _close(plan.kpis["service_level"], net["service_level"])
    _close(plan.kpis["driver_utilisation"], net["driver_utilisation"])
    t = plan.targets
    depot_rows = t[(t["target"] == "service_level") & (t["scope"] == "depot")].set_index("depot")
    _close(depot_rows.loc[list(data.depots), "achieved_share"], k["service_level"])
    _close(t.loc[t["scope"] == "network", "achieved_share"], [net["service_level"]])
    floors = t[t["target"] == "driver_utilisation"].set_index("depot")
    _close(floors.loc[list(data.depots), "achieved_share"], k["driver_utilisation"])
    oos = out_of_sample(plan, _ScenariosAsPaths(data))
    _close(oos["service_level_mean"], scenario_service_level(data.demand, unserved).mean())


def test_long_lead_periods_through_every_consumer():
    """Periods: the plan's capacity and drivers are the drivers kernel's (with its period
    factors), its recourse the week-by-week settlement inside each period (period_recourse),
    its spend by period the budgets kernel's."""
    inst = optplan.load_instance(REPO / "instances" / "longlead")
    data = inst.model_data()
    assert data.has_periods and data.has_week_profile
    plan = optplan.solve(inst)
    dec = plan.decisions
    _, active, capacity = simulate_drivers(data, dec)
    _close(plan.capacity["capacity_blocks"], capacity.ravel())
    _close(plan.drivers["active_drivers"], active.ravel())
    surge, unserved, idle = period_recourse(data, capacity, data.demand, data.demand_share)
    _close(plan.evaluation.unserved_blocks, unserved)
    _close(plan.cost["idle_penalty"], float(np.einsum("dts,s->", recourse_cost(data, 0.0, 0.0, idle), data.probability)))
    _close(plan.spend_by_week["total"], total_spend(data, dec.applicants, dec.incentive_spend).sum(axis=0))


class _Given:
    """An engine that returns given decisions, feasible and not proven optimal, with an
    objective above any plan's cost (so that solve_data re-costs the plan by the kernels)."""

    name = "given"
    capabilities = Capabilities(lp=True, mip=False, duals=False, time_limit=True, exact=True, risk=True)

    def __init__(self, decisions):
        self.decisions = decisions

    def available(self):
        return None

    def solve(self, data, options, deadline):
        status = SolverStatus(TerminationCondition.maxTimeLimit, SolutionStatus.feasible, self.name, "given",
                              1e18, None)
        return SolveResult(data, status, self.decisions, Timings(), {})


class _ScenariosAsPaths:
    """A sampler whose 'fresh paths' are the instance's scenarios, equally likely (so the
    report's out-of-sample numbers can be checked against the kernels on known demand)."""

    seed = 0

    def __init__(self, data):
        self.paths = data.demand.shape[2]

    def describe(self) -> str:
        return "the instance's scenarios"

    def to_dict(self) -> dict:
        return {"paths": self.paths}

    def demand_and_share(self, data):
        share = None if data.demand_share is None else np.transpose(data.demand_share, (2, 0, 1, 3))
        return np.transpose(data.demand, (2, 0, 1)), share
