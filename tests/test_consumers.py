"""The same decisions through every consumer give the kernels' numbers (issue #26, part 1).

For the drivers and budgets families, decisions (an optimal plan, and random decisions within
the bounds) go through each consumer that reports those quantities: the evaluator, the plan's
tables, the DP's linear form of the driver stock, re-planning's expected state, and the
decomposition's columns. Each must equal the family's numpy kernel (DRIVERS_RTOL), so a
consumer that restated the math and drifted would fail here.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import REPO
from pyomo.contrib.solver.common.results import SolutionStatus, TerminationCondition

import optplan
from formulations.data import Decisions
from formulations.two_stage.budgets import budget_usage, total_spend
from formulations.two_stage.drivers import incentive_blocks, simulate_drivers
from optplan.evaluation.evaluator import evaluate_decisions
from optplan.planning.plan import Plan
from optplan.planning.replan import expected_state
from optplan.solvers import SolveResult, SolverStatus, Timings

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
    from optplan.solvers.dp.depot import DepotModel

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
