"""Depot decomposition: Dantzig-Wolfe column generation over depots, subproblems on a backend.

Depots are coupled only by the budget rows (one total, one per week with a cap, one per
region with a cap). The master LP chooses, per depot, a convex combination of plans
("columns") proposed so far, within every budget:

    min  sum_{d,j} cost_dj w_dj
    s.t. sum_{d,j} spend_dj[row] w_dj <= B_row      every budget row          (duals pi <= 0)
         sum_j w_dj = 1                            every depot               (duals mu_d)
         w >= 0

where cost_dj is the plan's expected cost (first stage plus the aggregated recourse,
currency) and spend_dj[row] the plan's spend under that budget. Each depot's pricing
subproblem is its own aggregated program without budgets, with every currency it spends in
week t priced at m_dt = 1 + lambda_total + lambda_week[t] + lambda_region(d), lambda = -pi:

    priced_d = min_x  cost_d(x) + sum_rows lambda_row spend_row(x)

A plan with priced_d - mu_d < 0 enters the master. Every round gives the Lagrangian bound

    LB = sum_d priced_d - sum_rows lambda_row B_row   <=  the optimum  <=  master objective,

and the loop stops when (master - LB) / master <= ``gap`` (default 1e-4, well inside the
0.1 % target) or no plan improves. The plan returned is each depot's convex combination of
its columns: it meets every budget (the master's rows) and every depot's own rows (a convex
combination of feasible depot plans is feasible), and since a depot's cost is convex its
evaluated cost is at most the master objective. The master's budget duals are the budget
shadow prices.

The subproblems run through a backend (``backends.py``: serial, local processes or a Dask
cluster); each worker keeps its depots' HiGHS models between rounds, so a round only
changes the spend columns' costs and warm-starts.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass

import numpy as np
from pyomo.contrib.solver.common.results import SolutionStatus, TerminationCondition

from formulations.data import Decisions, ModelData
from formulations.two_stage.budgets import budget_usage, total_spend
from formulations.two_stage.decisions import lowest_decisions
from formulations.two_stage.layout import GROUP_BUDGETS
from formulations.two_stage.matrix import aggregated_standard_form
from optplan.errors import InfeasibleError, SolverError
from optplan.evaluation.evaluator import evaluate_decisions
from optplan.solvers.backends import get_backend
from optplan.solvers.base import (
    ENGINE_LOGGER,
    GAP_TOLERANCE,
    Deadline,
    SolveOptions,
    SolveResult,
    SolverStatus,
    Timings,
    engine_capabilities,
    out_of_time,
)
from optplan.solvers.diagnose import infeasibility_message, infeasible_rows
from optplan.solvers.highs import UNKNOWN_RETRIES, import_highspy, load_highs

log = logging.getLogger(ENGINE_LOGGER)

#: Relative gap (master objective against the Lagrangian bound) at which the loop stops: the
#: solvers' shared tolerance, so a converged decomposition counts as complete.
DECOMPOSITION_GAP = GAP_TOLERANCE
#: A column enters the master when its reduced cost is below -this x (1 + |cost|).
REDUCED_COST_RTOL = 1e-9
MAX_ROUNDS = 500
#: The master's budget duals are the LP's shadow prices once the loop has gone on to this gap
#: (or no plan improves: the master is then optimal for the whole LP). At the plan's gap
#: (1e-4) they can still be a few % off (0.250 against 0.0128 was seen at 1000 depots):
#: then they are not reported. Measured: at 1e-6 and below they match HiGHS to 1e-13.
PRICE_GAP = 1e-8
#: Rounds the loop may add after the plan has converged, to settle the prices.
PRICE_ROUNDS = 100


# ---------------------------------------------------------------------------- subproblems
@dataclass
class DepotTask:
    """One depot's pricing problem: its data (no budgets) and the spend price per week."""

    token: str  # identifies the instance, so that workers can keep the depot's model
    d: int
    data: ModelData | None  # None after the first round: the worker has the depot's model
    multiplier: np.ndarray  # (T,) currency charged per currency spent in week t (>= 1)


class ModelNotCached(LookupError):
    """A worker was sent a depot without its data and does not hold its model (a restarted
    or new worker); the master resends the round with the data."""


@dataclass
class DepotColumn:
    d: int
    applicants: np.ndarray  # (C, T) applicants/week
    incentive_spend: np.ndarray  # (T, G) currency/week
    spend: np.ndarray  # (T,) recruiting + incentive spend per week, currency
    cost: float  # expected cost of the plan (first stage + recourse), currency
    priced: float  # the subproblem's optimum: cost + priced extra spend, currency


_MODELS: dict = {}  # (token, d) -> (Highs, base cost vector, spend columns, their weeks, StandardForm)


def solve_depot_group(tasks: list[DepotTask]) -> list[DepotColumn]:
    """A worker's share of a round: its depots' pricing problems, in order."""
    return [solve_depot_task(task) for task in tasks]


def solve_depot_task(task: DepotTask) -> DepotColumn:
    """Solve one depot's pricing problem (module level: runs in any backend's worker)."""
    highspy = import_highspy()
    key = (task.token, task.d)
    if key not in _MODELS and task.data is None:
        raise ModelNotCached(key)
    if key not in _MODELS:
        if len(_MODELS) > 4096:  # a worker serving many instances: start afresh
            _MODELS.clear()
        sf = aggregated_standard_form(task.data)
        h = load_highs(highspy, sf.c, sf.offset, sf.A, sf.col_lower, sf.col_upper, sf.row_lower, sf.row_upper,
                       np.zeros(sf.A.shape[1], dtype=bool), False)
        layout = sf.layout
        _, _, tt = layout.recruit
        T = task.data.n_weeks
        sd, _ = layout.segment_pairs
        cols = np.concatenate([sf.columns["applicants"], sf.columns["incentive_spend"]]).astype(np.int32)
        weeks = np.concatenate([tt, np.tile(np.arange(T), len(sd))]).astype(np.int64)
        _MODELS[key] = (h, sf.c.copy(), cols, weeks, sf)
    h, base, cols, weeks, sf = _MODELS[key]
    h.changeColsCost(len(cols), cols, base[cols] * task.multiplier[weeks])
    h = _run_with_retries(highspy, h, sf.layout.data.depots[0])
    x = np.asarray(h.getSolution().col_value, float)
    decisions = sf.layout.decisions(x[sf.columns["applicants"]], x[sf.columns["incentive_spend"]])
    spend = total_spend(sf.layout.data, decisions.applicants, decisions.incentive_spend)[0]  # (T,)
    priced = float(h.getInfo().objective_function_value)
    cost = priced - float(((task.multiplier - 1.0) * spend).sum())
    return DepotColumn(task.d, decisions.applicants[0], decisions.incentive_spend[0], spend, cost, priced)


class SubproblemFailed(SolverError):
    """A depot's pricing problem ended without an optimum even after the re-solves the HiGHS
    engine makes (a new HiGHS without presolve, by ipm, then by the primal simplex)."""


def model_status(highspy, h):
    """The HiGHS model status after a run (a function, so that a test can inject one)."""
    return h.getModelStatus()


def _run_with_retries(highspy, h, depot: str):
    """Run a depot's model; after a status other than Optimal (numerical trouble: Unknown),
    re-solve a fresh copy as the HiGHS engine does (optplan.solvers.highs.UNKNOWN_RETRIES).
    The HiGHS that found the optimum; SubproblemFailed if none did. The cached model stays
    (its basis warm-starts the next round)."""
    h.run()
    status = model_status(highspy, h)
    if status == highspy.HighsModelStatus.kOptimal:
        return h
    first = h.modelStatusToString(status)
    for how, extra in UNKNOWN_RETRIES:
        log.warning("decomposition: depot %s's subproblem stopped with status %s; solving it again by %s without "
                    "presolve", depot, first, how)
        fresh = highspy.Highs()
        fresh.setOptionValue("output_flag", False)
        fresh.passModel(h.getModel())
        fresh.setOptionValue("presolve", "off")
        fresh.setOptionValue("solver", extra["solver"])
        for key, value in extra["options"].items():
            fresh.setOptionValue(key, value)
        fresh.run()
        if model_status(highspy, fresh) == highspy.HighsModelStatus.kOptimal:
            return fresh
    raise SubproblemFailed(f"depot {depot}: subproblem {first}, also by "
                           + " and by ".join(how for how, _ in UNKNOWN_RETRIES) + " without presolve")


# ---------------------------------------------------------------------------- master
class Master:
    """The restricted master LP in a persistent HiGHS (columns are added, re-solves warm-start)."""

    def __init__(self, data: ModelData):
        self.hs = import_highspy()
        self.data = data
        D, _, T, _ = data.shape
        usage = budget_usage(data, Decisions.zeros(data))  # the budgets kernel: each row's key and cap, in row order
        families = ("budget_total", "budget_week", *GROUP_BUDGETS)
        self.keys = [(family, key) for family in families for key in usage[family][0]]
        self.B = np.concatenate([np.asarray(usage[family][2], float) for family in families])
        self.nb = len(self.keys)
        # row coefficients of a column of depot d: spend (T,) -> budget rows
        self.week_row = {t: i for i, (f, t) in enumerate(self.keys) if f == "budget_week"}
        self.total_row = next((i for i, (f, _) in enumerate(self.keys) if f == "budget_total"), None)
        # each depot's rows of the grouped budgets (its region's, its country's), where capped
        groups = {f: data.budget_groups(f) for f in GROUP_BUDGETS}
        self.group_rows = {d: [i for i, (f, g) in enumerate(self.keys) if f in groups and g == groups[f][d]]
                           for d in range(D)}
        h = self.hs.Highs()
        h.setOptionValue("output_flag", False)
        inf = self.hs.kHighsInf
        n = self.nb + D
        lower = np.concatenate([np.full(self.nb, -inf), np.ones(D)])
        upper = np.concatenate([self.B, np.ones(D)])
        h.addRows(n, lower, upper, 0, np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0))
        self.h = h
        self.columns: list[DepotColumn] = []

    def add(self, col: DepotColumn) -> None:
        idx, val = [], []
        if self.total_row is not None:
            idx.append(self.total_row)
            val.append(float(col.spend.sum()))
        for t, row in self.week_row.items():
            idx.append(row)
            val.append(float(col.spend[t - 1]))
        for row in self.group_rows[col.d]:
            idx.append(row)
            val.append(float(col.spend.sum()))
        idx.append(self.nb + col.d)
        val.append(1.0)
        self.h.addCol(float(col.cost), 0.0, self.hs.kHighsInf, len(idx), np.array(idx, np.int32), np.array(val, float))
        self.columns.append(col)

    def solve(self) -> tuple[float, np.ndarray, np.ndarray]:
        """(objective, lambda >= 0 per budget row, mu per depot)."""
        self.h.run()
        if self.h.getModelStatus() != self.hs.HighsModelStatus.kOptimal:
            raise SolverError(f"decomposition master: {self.h.modelStatusToString(self.h.getModelStatus())}")
        dual = np.asarray(self.h.getSolution().row_dual, float)
        return float(self.h.getInfo().objective_function_value), np.maximum(-dual[: self.nb], 0.0), dual[self.nb:]

    def multipliers(self, lam: np.ndarray) -> np.ndarray:
        """(D, T) spend price per depot and week: 1 + lambda_total + lambda_week[t] + lambda_region(d)
        + lambda_country(d)."""
        D, _, T, _ = self.data.shape
        m = np.ones((D, T))
        if self.total_row is not None:
            m += lam[self.total_row]
        for t, row in self.week_row.items():
            m[:, t - 1] += lam[row]
        for d, rows in self.group_rows.items():
            for row in rows:
                m[d] += lam[row]
        return m

    def plan(self) -> Decisions:
        """Each depot's convex combination of its columns."""
        D, C, T, _ = self.data.shape
        w = np.asarray(self.h.getSolution().col_value, float)
        x = np.zeros((D, C, T))
        z = np.zeros((D, T, self.data.incentive_width.shape[1]))
        for weight, col in zip(w, self.columns, strict=True):
            if weight > 0:
                x[col.d] += weight * col.applicants
                z[col.d] += weight * col.incentive_spend
        return Decisions(x, z)

    def duals(self, lam: np.ndarray) -> dict[str, np.ndarray]:
        """Budget row duals (HiGHS's sign: <= 0 for a binding <= row) by family, Layout order."""
        out: dict[str, list] = {}
        for (family, _), value in zip(self.keys, lam, strict=True):
            out.setdefault(family, []).append(-value)
        return {f: np.asarray(v, float) for f, v in out.items()}


def _token(data: ModelData) -> str:
    h = hashlib.sha1()
    for arr in (data.demand, data.yield_kernel, data.cost_per_applicant, data.applicant_cap, data.pipeline,
                data.retention, data.initial_active, data.incentive_width, data.incentive_rate, data.probability,
                data.period_length, data.supply,
                np.zeros(0) if data.demand_share is None else data.demand_share):
        h.update(np.ascontiguousarray(arr, float).tobytes())
    h.update(b"shares" if data.demand_share is not None else b"even")
    h.update(repr((data.depots, data.channels, data.surge_cost, data.surge_cap_share, data.unserved_cost,
                   data.idle_cost, data.onboarding_cap.tolist(), data.blocks_per_driver.tolist(),
                   [None if a is None else a.tolist() for a in (data.surge_by_depot, data.unserved_by_depot,
                                                                 data.idle_by_depot)])).encode())
    return h.hexdigest()


# ---------------------------------------------------------------------------- the engine
class DecomposeEngine:
    """Dantzig-Wolfe over depots with subproblems on a backend (serial, local, dask); the LP
    to within ``gap`` with its bound; honours the time limit with the master's plan so far."""

    name = "decompose"
    capabilities = engine_capabilities("decompose")  # declared once, in the registry (optplan/solvers/__init__.py)

    def __init__(self, backend: str = "local", scheduler: str | None = None, workers: int | None = None,
                 gap: float = DECOMPOSITION_GAP, max_rounds: int = MAX_ROUNDS, backend_object=None):
        self.backend_name, self.scheduler, self.workers = backend, scheduler, workers
        self.gap, self.max_rounds = gap, max_rounds
        self.backend_object = backend_object

    def available(self) -> str | None:
        return None

    def solve(self, data: ModelData, options: SolveOptions, deadline: Deadline) -> SolveResult:
        if options.integer:
            raise SolverError("the depot decomposition solves the LP only: drop --integer or use highs")

        rows = infeasible_rows(data)
        if rows:
            raise InfeasibleError(infeasibility_message(["onboarding_cap"], "decompose: pipeline above the cap", rows),
                                  ["onboarding_cap"], None, rows)
        backend = self.backend_object or get_backend(self.backend_name, self.scheduler, self.workers)
        try:
            return self._solve(data, deadline, backend)
        finally:
            if self.backend_object is None:
                backend.close()

    def _solve(self, data: ModelData, deadline: Deadline, backend) -> SolveResult:
        t0 = time.perf_counter()
        D, C, T, _ = data.shape
        token = _token(data)
        depots = [data.for_depot(d) for d in range(D)]
        master = Master(data)
        for d in range(D):  # the least plan (recruiting nothing but what the planner committed) is
            # within every budget (the instance's checks refuse commitments that are not): the master is feasible
            least = lowest_decisions(depots[d])
            master.add(DepotColumn(d, least.applicants[0], least.incentive_spend[0], total_spend(
                depots[d], least.applicants, least.incentive_spend)[0], _plan_cost(depots[d], least), 0.0))
        lam = np.zeros(master.nb)
        mu = np.full(D, np.inf)
        best_lb, objective, rounds, gap = -np.inf, np.inf, 0, np.inf
        timed_out, failed, settling, added = False, "", 0, -1
        log.info("decomposition: %d depots on the %s backend (%d workers), %d budget rows", D, backend.name,
                 backend.workers, master.nb)
        while rounds < self.max_rounds:
            if rounds and deadline.expired():
                timed_out = True
                break
            m = master.multipliers(lam)
            # one group of depots per worker, the same group on the same worker every round
            # (its HiGHS models stay warm there)
            parts = [part for part in np.array_split(np.arange(D), min(D, backend.workers)) if len(part)]

            def round_tasks(with_data: bool, parts=parts, m=m):
                return [[DepotTask(token, d, depots[d] if with_data else None, m[d]) for d in part] for part in parts]

            try:  # the depots' data go to the workers in the first round only
                try:
                    results = backend.map_pinned(solve_depot_group, round_tasks(with_data=rounds == 0))
                except ModelNotCached:
                    results = backend.map_pinned(solve_depot_group, round_tasks(with_data=True))
            except SubproblemFailed as exc:  # keep the work done: the master's plan so far, with its gap
                if not np.isfinite(objective):
                    raise
                failed = str(exc)
                log.warning("decomposition round %d stopped: %s; returning the plan of round %d", rounds + 1, failed,
                            rounds)
                break
            columns = [c for group in results for c in group]
            rounds += 1
            lb = sum(c.priced for c in columns) - float(lam @ master.B)
            best_lb = max(best_lb, lb)
            added = 0
            for c in columns:
                if not np.isfinite(mu[c.d]) or c.priced - mu[c.d] < -REDUCED_COST_RTOL * (1.0 + abs(c.cost)):
                    master.add(c)
                    added += 1
            objective, lam, mu = master.solve()
            gap = (objective - best_lb) / max(1.0, abs(objective))
            log.info("decomposition round %d: master %.2f, bound %.2f, gap %.2e, %d new plans", rounds, objective,
                     best_lb, gap, added)
            if added == 0 or gap <= min(self.gap, PRICE_GAP):
                break
            if gap <= self.gap:  # the plan is within its gap: a few more rounds settle the prices
                settling += 1
                if settling > PRICE_ROUNDS or deadline.expired():
                    break
        decisions = master.plan()

        evaluated = evaluate_decisions(data, decisions).expected_cost
        converged = gap <= self.gap or (not timed_out and not failed and rounds < self.max_rounds)
        term = (TerminationCondition.maxTimeLimit if timed_out else
                TerminationCondition.convergenceCriteriaSatisfied if converged else
                TerminationCondition.error if failed else TerminationCondition.iterationLimit)
        if not np.isfinite(objective):
            raise out_of_time("decompose", "the decomposition ran out of time before its master was solved", "no master")
        native = f"{rounds} rounds, {len(master.columns)} plans, master {objective:.6g}, bound {best_lb:.6g}, gap {gap:.2e}"
        priced = added == 0 or gap <= PRICE_GAP
        unpriced = "" if priced else (
            f"budget shadow prices not reported: they settle at a gap of {PRICE_GAP:g} and the loop stopped at "
            f"{gap:.1e} (solve with --engine highs for them)")
        status = SolverStatus(term, SolutionStatus.feasible, f"decompose ({backend.name}, {backend.workers} workers)",
                              native, evaluated, float(best_lb),
                              message=f"Dantzig-Wolfe over {D} depots: {native}" + (
                                  f"; stopped early: {failed}; the plan is the master's of the last full round, "
                                  "within its gap" if failed else "") + (f"; {unpriced}" if unpriced else ""))
        return SolveResult(data, status, decisions, Timings(solve_s=time.perf_counter() - t0),
                           {"depots": D, "rounds": rounds, "plans": len(master.columns)},
                           duals=master.duals(lam) if priced else {},
                           extra={"gap": gap, "master_objective": objective, "prices": unpriced or "the LP's"})


def _plan_cost(depot: ModelData, decisions: Decisions) -> float:
    return evaluate_decisions(depot, decisions).expected_cost
