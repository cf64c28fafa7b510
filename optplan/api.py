"""The Python API for planners: load, solve, evaluate."""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pandas as pd

from formulations.data import weekly_demand_in_periods
from optplan.errors import InstanceError, NoSolutionError, OptionError, OptplanError, Problem
from optplan.evaluation.evaluator import Evaluation, evaluate_decisions
from optplan.io.instance import Instance
from optplan.planning.orders import make_orders
from optplan.planning.overrides import MEASURES, measure, override_table
from optplan.planning.plan import Plan
from optplan.solvers import Deadline, SolveOptions, get_engine, solve_data
from optplan.solvers.auto import AutoEngine
from optplan.solvers.base import quiet_engines
from optplan.solvers.decompose import DecomposeEngine
from optplan.solvers.dp import DPEngine
from optplan.solvers.warm import WarmModel, warm_route_refusal

log = logging.getLogger("optplan")


def solve(instance: Instance, engine: str = "auto", dp_options=None, deadline=None, backend: str = "local",
          scheduler: str | None = None, workers: int | None = None, override_costs: str = "total",
          orders_weeks: int = 0, **options) -> Plan:
    """Solve the two-stage program of ``instance`` and return the Plan.

    engine: ``highs`` (the LP/MIP by HiGHS), ``glop`` (the LP by OR-tools GLOP), ``dp`` (the
    numpy dynamic-programming engine; no solver needed) or ``auto`` (HiGHS, then GLOP, then
    the DP, when the one before is not installed, fails, or stops with no plan while time is
    left); every engine, and ``auto`` as a whole, runs within ``time_limit`` seconds, model
    building included. Options (see ``optplan.solvers.SolveOptions``): time_limit,
    mip_rel_gap, threads, method, presolve, integer, seed, log, highs_options;
    ``dp_options`` (an ``optplan.solvers.dp.DPOptions``) tunes the DP. ``engine="decompose"``
    (Dantzig-Wolfe over depots) runs its depot subproblems on ``backend`` ("serial",
    "local" processes, or "dask": the cluster at ``scheduler``, or a local one of
    ``workers`` processes when it is None). With the planner's committed decisions
    (decisions.csv) the plan lists them (``plan.overrides``) and, by ``override_costs``
    ("total": one more solve without them; "each": also one per row; "none"), what they cost
    (optplan.planning.overrides), within the same time budget. ``orders_weeks`` W > 0 adds
    ``plan.orders``: the first W weeks as whole applicants (optplan.planning.orders: the MIP on
    those weeks with the rest fixed, and what rounding costs); when they cannot be made (the time
    limit, no HiGHS, weeks that are not weekly) the plan comes without them and a RuntimeWarning
    says why. ``deadline`` (an
    ``optplan.solvers.Deadline``) starts the time budget earlier than this call, e.g. when
    the instance was loaded (the CLI starts it when the command starts).

    Raises ``InfeasibleError`` (naming the constraint family and rows; never falls back),
    ``NoSolutionError`` (stopped before any plan) or ``SolverError``. A plan that is not
    what was asked for (``plan.status.complete == False``: a time or iteration limit, a
    stalled cut loop, a heuristic after a fallback) is returned with a RuntimeWarning; a MIP
    stopped within the ``mip_rel_gap`` asked for is complete but ``plan.status.optimal`` is
    False. ``plan.status.describe()`` says which in a planner's words.
    """


    opts = SolveOptions(**options)
    eng = get_engine(engine)
    if dp_options is not None:
        if engine == "dp":
            eng = DPEngine(dp_options)
        elif engine == "auto":
            eng = AutoEngine(engines={"dp": DPEngine(dp_options)})
    if engine == "decompose":
        eng = DecomposeEngine(backend=backend, scheduler=scheduler, workers=workers)
    if override_costs not in MEASURES:
        raise OptionError("override_costs", f"one of {', '.join(MEASURES)}", override_costs)
    deadline = deadline or Deadline(opts.time_limit)
    t0 = time.perf_counter()
    data = instance.model_data(integer_applicants=opts.integer)
    t1 = time.perf_counter()
    result = solve_data(data, opts, eng, deadline=deadline)
    t2 = time.perf_counter()
    if not result.status.complete:
        warnings.warn(f"the plan is not proven optimal: {result.status.describe()}", RuntimeWarning, stacklevel=2)
    plan = Plan.from_result(result, instance.manifest.name, instance.manifest.horizon.start_date,
                            instance.manifest.guards)
    t = result.timings
    engine_parts = {"build": t.build_s, "hand-off": t.handoff_s, "solve": t.solve_s, "extract": t.extract_s}
    plan.phases = {"model data": t1 - t0, **engine_parts,
                   "engine other": max(0.0, (t2 - t1) - sum(engine_parts.values())),
                   "plan": time.perf_counter() - t2}
    if data.has_decisions:

        def solve_again(changed: Instance) -> float:
            with quiet_engines():
                again = solve_data(changed.model_data(integer_applicants=opts.integer), opts, eng, deadline=deadline)
            if not again.status.complete:
                raise NoSolutionError(f"the solve without them stopped early: {again.status.describe()}", again.status)
            return float(again.status.objective)

        t3 = time.perf_counter()
        total, each = measure(instance, plan, solve_again, override_costs)
        table = override_table(plan, instance)
        table["cost"] = np.nan if each is None else each.reindex(table["line"]).to_numpy()
        plan.overrides, plan.override_cost = table, total
        plan.phases["overrides"] = time.perf_counter() - t3
    if orders_weeks:
        t4 = time.perf_counter()
        try:
            plan.orders = make_orders(plan.data, plan.decisions, plan.start_date, min(orders_weeks, plan.data.n_weeks),
                                      deadline=deadline, options=opts, solve_seconds=plan.timings.solve_s)
        except OptplanError as exc:
            warnings.warn(f"no orders: {exc}", RuntimeWarning, stacklevel=2)
        plan.phases["orders"] = time.perf_counter() - t4
    return plan


class WhatIf:
    """What-ifs on one instance at the speed of a conversation (issue #34).

    ``session = optplan.WhatIf(instance, **options)``; ``session.solve({"budgets.total":
    4e6})`` returns the Plan of the instance with those changes (validated like
    ``Instance.with_changes``; the paths of ``optplan.io.whatif``), each solve on one persistent
    HiGHS model updated in place and warm-started from the previous solve's basis
    (``optplan.solvers.warm``): after a budget, cost, penalty or demand change it re-solves from
    where the last plan was. A change of the program's shape (a budget or target added or
    removed) rebuilds it, and a program the warm route does not hold (CVaR, whole applicants, a
    bad-week target) is solved cold by the HiGHS engine; ``plan.status.engine`` says which and
    why. Changes are not cumulative: each call is the instance given plus that call's changes.
    Options as ``solve``'s (time_limit applies to each call)."""

    def __init__(self, instance: Instance, **options):
        self.instance = instance
        self.options = SolveOptions(**options)
        self.model = WarmModel(self.options)

    def solve(self, changes: dict | None = None, deadline=None) -> Plan:
        instance = self.instance.with_changes(changes) if changes else self.instance
        data = instance.model_data(integer_applicants=self.options.integer)
        risk = replace(data, cvar_weight=float(self.options.cvar_weight), cvar_alpha=float(self.options.cvar_alpha))
        why = warm_route_refusal(risk, self.options)  # a reason the warm model cannot take it, or ""
        engine = get_engine("highs") if why else self.model
        result = solve_data(data, self.options, engine, deadline=deadline or Deadline(self.options.time_limit))
        if why:
            result = replace(result, status=replace(result.status, engine=f"{result.status.engine}, cold: {why}"))
        if not result.status.complete:
            warnings.warn(f"the plan is not proven optimal: {result.status.describe()}", RuntimeWarning, stacklevel=2)
        return Plan.from_result(result, instance.manifest.name, instance.manifest.horizon.start_date,
                                instance.manifest.guards)


def scenario_arrays(instance: Instance, scenarios: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Demand (D, T, S) and probabilities (S,) from a table shaped like demand.csv, with an
    optional 'probability' column (constant per scenario; default: equal weights)."""
    problems = []
    need = {"depot", "week", "scenario", "blocks"}
    if missing := sorted(need - set(scenarios.columns)):
        raise InstanceError([Problem("scenarios", 1, m, f"a column named '{m}'", f"columns {list(scenarios.columns)}") for m in missing])
    d_idx = pd.Index(instance.depots)
    names = pd.unique(scenarios["scenario"])
    s_idx = pd.Index(names)
    D, T, S = len(d_idx), instance.n_periods, len(names)
    di = d_idx.get_indexer(scenarios["depot"])
    wk = pd.Index(instance.period_starts).get_indexer(scenarios["week"])  # period position of each row
    if (di < 0).any():
        problems.append(Problem("scenarios", None, "depot", "depots of the instance", f"{scenarios['depot'][di < 0].iloc[0]!r}"))
    if (wk < 0).any():
        what = f"weeks 1..{T}" if instance.period_weeks is None else "the first weeks of the instance's periods"
        problems.append(Problem("scenarios", None, "week", what, "weeks outside"))
    if len(scenarios) != D * T * S or scenarios.duplicated(["depot", "week", "scenario"]).any():
        problems.append(Problem("scenarios", None, None, f"one row per depot, week and scenario ({D * T * S})", f"{len(scenarios)} rows"))
    if problems:
        raise InstanceError(problems)
    demand = np.zeros((D, T, S))
    demand[di, wk, s_idx.get_indexer(scenarios["scenario"])] = scenarios["blocks"].to_numpy(float)
    if "probability" in scenarios.columns:
        prob = scenarios.groupby("scenario", sort=False)["probability"].first().reindex(names).to_numpy(float)
    else:
        prob = np.full(S, 1.0 / S)
    return demand, prob


def evaluate(plan: Plan, instance: Instance, scenarios: pd.DataFrame | None = None) -> Evaluation:
    """Expected cost and KPIs of ``plan`` on ``instance``'s scenarios, or on ``scenarios``
    (a table like demand.csv, optionally with a 'probability' column), computed without
    Pyomo or a solver (see optplan.evaluation.evaluator)."""
    data = instance.model_data()
    if (plan.data.depots, plan.data.channels, plan.data.n_weeks) != (data.depots, data.channels, data.n_weeks):
        raise OptionError("plan", "a plan made for this instance's depots, channels and weeks",
                          f"a plan for {len(plan.data.depots)} depots, {len(plan.data.channels)} channels, {plan.data.n_weeks} weeks")
    if scenarios is None:
        return evaluate_decisions(data, plan.decisions)
    if instance.period_weeks is not None and not scenarios["week"].isin(instance.period_starts).all():
        # weekly demand for a long-lead instance: period totals, each period settled week by week

        weekly, prob = scenario_arrays(_weekly_view(instance), scenarios)  # (D, W, S) blocks/week
        demand, share = weekly_demand_in_periods(weekly, instance.period_weeks)
        return evaluate_decisions(data, plan.decisions, demand, prob, share=share)
    demand, prob = scenario_arrays(instance, scenarios)
    return evaluate_decisions(data, plan.decisions, demand, prob)


def _weekly_view(instance: Instance):
    """The instance's depots and weeks without its periods, for reading a weekly demand table
    (scenario_arrays only reads depots, weeks and scenarios)."""

    return SimpleNamespace(depots=instance.depots, n_periods=instance.n_weeks, period_weeks=None,
                           period_starts=np.arange(1, instance.n_weeks + 1))
