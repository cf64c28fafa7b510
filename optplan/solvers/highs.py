"""HiGHS engine: ModelData -> Pyomo model -> standard form -> highspy -> SolveResult.

The hand-off compiles the Pyomo model with Pyomo's ``LinearStandardFormCompiler`` (the
fastest route we measured from a Pyomo model to HiGHS: about 2x faster than Pyomo's
persistent ``highs``/``appsi_highs`` interfaces; docs/performance.md) and passes the sparse
matrix to highspy in one ``passModel`` call. Columns and rows come out grouped by component
in declaration order, so values and duals map back through ``Layout`` by slicing.

``compile_to_highs`` and ``run_compiled`` are also the persistent-model path of the
sensitivity analysis (re-solves warm-start from the last basis) and of the stochastic values.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from pyomo.contrib.solver.common.results import SolutionStatus, TerminationCondition

from formulations import two_stage
from formulations.data import ModelData
from formulations.two_stage.layout import Layout
from formulations.two_stage.recourse import optimal_recourse, period_recourse
from formulations.two_stage.service import TARGET_FAMILIES, region_targets, target_rows
from optplan.errors import EngineUnavailableError, InfeasibleError, NoSolutionError, OptionError, SolverError
from optplan.solvers.base import (
    ENGINE_LOGGER,
    GAP_TOLERANCE,
    Deadline,
    SolveOptions,
    SolveResult,
    SolverStatus,
    Timings,
)
from optplan.solvers.diagnose import infeasibility_message, infeasible_rows
from optplan.solvers.standard_form import build_standard_form, mark_integer, matrix_arrays, standard_form

log = logging.getLogger(ENGINE_LOGGER)

#: Each re-solve of the infeasibility diagnosis gets at most this many times the failed solve's
#: time, and at least DIAGNOSIS_MIN_S seconds (diagnose_infeasibility).
DIAGNOSIS_FACTOR = 5.0
DIAGNOSIS_MIN_S = 5.0
#: A row whose variables are all fixed counts as met within this share of its bound (at least 1 unit).
FIXED_ROW_RTOL = 1e-6

_BANNER_SHOWN = False


def import_highspy():
    """Import highspy (EngineUnavailableError if it cannot be). The first Highs() of a
    process prints a licence banner to the C-level stdout, which would garble the CLI's
    output, so that one construction is silenced."""
    global _BANNER_SHOWN
    try:
        import highspy
    except ImportError as exc:
        raise EngineUnavailableError(f"HiGHS is not available: cannot import highspy ({exc})") from exc
    if not _BANNER_SHOWN:
        _BANNER_SHOWN = True
        sys.stdout.flush()
        saved = os.dup(1)
        try:
            with open(os.devnull, "w") as devnull:
                os.dup2(devnull.fileno(), 1)
                highspy.Highs()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
    return highspy


def map_status(highspy, h) -> tuple[TerminationCondition, SolutionStatus, str]:
    """Map HiGHS's model status (and primal solution status) to the two axes; warn on a
    status this table does not know."""
    ms = h.getModelStatus()
    has_primal = h.getInfo().primal_solution_status == 2  # kSolutionStatusFeasible
    S = highspy.HighsModelStatus
    TC = TerminationCondition
    table = {
        S.kOptimal: (TC.convergenceCriteriaSatisfied, SolutionStatus.optimal),
        S.kModelEmpty: (TC.emptyModel, SolutionStatus.optimal),
        S.kInfeasible: (TC.provenInfeasible, SolutionStatus.infeasible),
        S.kUnboundedOrInfeasible: (TC.infeasibleOrUnbounded, SolutionStatus.noSolution),
        S.kUnbounded: (TC.unbounded, SolutionStatus.noSolution),
        S.kTimeLimit: (TC.maxTimeLimit, None),
        S.kIterationLimit: (TC.iterationLimit, None),
        S.kSolutionLimit: (TC.iterationLimit, None),
        S.kObjectiveBound: (TC.objectiveLimit, None),
        S.kObjectiveTarget: (TC.objectiveLimit, None),
        S.kInterrupt: (TC.interrupted, None),
        S.kHighsInterrupt: (TC.interrupted, None),
        S.kMemoryLimit: (TC.error, None),
        S.kLoadError: (TC.error, SolutionStatus.noSolution),
        S.kModelError: (TC.error, SolutionStatus.noSolution),
        S.kPresolveError: (TC.error, SolutionStatus.noSolution),
        S.kSolveError: (TC.error, SolutionStatus.noSolution),
        S.kPostsolveError: (TC.error, SolutionStatus.noSolution),
        S.kUnknown: (TC.unknown, None),
        S.kNotset: (TC.unknown, SolutionStatus.noSolution),
    }
    name = h.modelStatusToString(ms)
    if ms not in table:  # a status added in a newer HiGHS
        warnings.warn(f"unhandled HiGHS model status {name!r}; treating it as unknown", RuntimeWarning, stacklevel=3)
        term, sol = TC.unknown, None
    else:
        term, sol = table[ms]
    if sol is None:
        sol = SolutionStatus.feasible if has_primal else SolutionStatus.noSolution
    return term, sol, name


@dataclass
class CompiledModel:
    """A Pyomo model handed to HiGHS, with where each component's columns and rows are."""

    model: Any  # the Pyomo model; None once released (a plain solve does not need it)
    highs: Any
    columns: dict[str, np.ndarray]  # variable component -> column of each element (-1: absent)
    rows: dict[str, slice]
    n_cols: int
    n_rows: int
    n_nonzeros: int
    layout: Layout
    mip: bool = False  # integer columns (integer applicants, or the bad-week chance form's binaries)

    @property
    def size(self) -> dict[str, int]:
        return {"variables": self.n_cols, "constraints": self.n_rows, "nonzeros": self.n_nonzeros}


def compile_to_highs(model, options: SolveOptions) -> CompiledModel:
    """Compile a built two-stage ``model`` to sparse standard form and pass it to a new HiGHS."""
    sf = standard_form(model)
    mark_integer(sf, model._optplan_data, options.integer)
    compiled = highs_from_standard_form(sf, options)
    compiled.model = model
    return compiled


def highs_from_standard_form(sf, options: SolveOptions) -> CompiledModel:
    """A new HiGHS holding the LP (or MIP) ``sf``."""
    highspy = import_highspy()
    n_rows, n_cols = sf.A.shape
    integrality = sf.integer if sf.integer is not None else np.zeros(n_cols, dtype=bool)
    h = load_highs(highspy, sf.c, sf.offset, sf.A, sf.col_lower, sf.col_upper, sf.row_lower, sf.row_upper,
                   integrality, options.log)
    return CompiledModel(None, h, sf.columns, sf.rows, n_cols, n_rows, int(sf.A.nnz), sf.layout,
                         mip=bool(integrality.any()))


def load_highs(highspy, c, offset, A, col_lower, col_upper, row_lower, row_upper, integrality, log: bool):
    """A new Highs holding  min c x + offset  s.t.  row bounds on A x (A CSC), column bounds,
    integer columns where ``integrality`` is True."""
    lp = highspy.HighsLp()
    lp.num_row_, lp.num_col_ = A.shape
    lp.col_cost_, lp.offset_ = c, offset
    lp.col_lower_, lp.col_upper_ = col_lower, col_upper
    lp.row_lower_, lp.row_upper_ = row_lower, row_upper
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = A.indptr.astype(np.int32)
    lp.a_matrix_.index_ = A.indices.astype(np.int32)
    lp.a_matrix_.value_ = A.data.astype(float)
    if integrality.any():
        lp.integrality_ = [highspy.HighsVarType(int(i)) for i in integrality]
    h = highspy.Highs()
    h.setOptionValue("output_flag", bool(log))
    if h.passModel(lp) == highspy.HighsStatus.kError:
        raise SolverError("HiGHS rejected the model (passModel returned an error)")
    return h


#: Re-solves, in order, after HiGHS stops with status Unknown and no plan (numerical trouble):
#: a new HiGHS without presolve by these methods (name, HiGHS solver and options).
UNKNOWN_RETRIES = (("ipm", {"solver": "ipm", "options": {}}),
                   ("the primal simplex", {"solver": "simplex", "options": {"simplex_strategy": 4}}))


def apply_options(highspy, h, options: SolveOptions, time_limit: float | None) -> None:
    """Set HiGHS's options from ``options``; ``time_limit`` is what is left of the budget (s)."""
    settings: dict[str, Any] = {
        "random_seed": int(options.seed),
        "presolve": "on" if options.presolve else "off",
        "solver": options.method,
        "time_limit": float(time_limit) if time_limit is not None and np.isfinite(time_limit) else float("inf"),
    }
    if options.mip_rel_gap is not None:
        settings["mip_rel_gap"] = float(options.mip_rel_gap)
    if options.threads is not None:
        settings["threads"] = int(options.threads)
    settings.update(options.highs_options)
    for key, value in settings.items():
        if h.setOptionValue(key, value) == highspy.HighsStatus.kError:
            raise OptionError(f"highs_options[{key!r}]", "an option and value HiGHS accepts", value)


def run_compiled(
    data: ModelData,
    compiled: CompiledModel,
    options: SolveOptions,
    deadline: Deadline | None = None,
    build_s: float = 0.0,
    handoff_s: float = 0.0,
    diagnose: bool = True,
) -> SolveResult:
    """Run HiGHS on a compiled model (again: a persistent model keeps its basis, so a re-run
    after changing bounds warm-starts) and extract the result; raise if there is no plan."""
    highspy = import_highspy()
    deadline = deadline or Deadline(options.time_limit)
    h = compiled.highs
    apply_options(highspy, h, options, deadline.remaining() if deadline.seconds is not None else None)
    t2 = time.perf_counter()
    run_status = h.run()
    t3 = time.perf_counter()
    log.info("HiGHS stopped after %.2f s: %s", t3 - t2, h.modelStatusToString(h.getModelStatus()))
    term, sol, name = map_status(highspy, h)
    mip = options.integer or compiled.mip
    method = "mip" if mip else options.method
    retries = iter(UNKNOWN_RETRIES)
    while term == TerminationCondition.unknown and sol == SolutionStatus.noSolution and not mip \
            and not deadline.expired() and (retry := next(retries, None)) is not None:
        # numerical trouble: HiGHS 1.16 ends a nearly infeasible target LP Unknown by the dual
        # simplex with or without presolve and by ipm after presolve (tests/solvers: the long-lead
        # service frontier); a new HiGHS without presolve, by ipm and then by the primal simplex,
        # proves what it finds. The caller's HiGHS (a persistent model) is left as it was.
        how, extra = retry
        log.warning("HiGHS stopped with status %s and no plan (%s); solving again from scratch by %s without "
                    "presolve", name, method, how)
        fresh = highspy.Highs()
        fresh.setOptionValue("output_flag", bool(options.log))
        fresh.passModel(h.getModel())
        apply_options(highspy, fresh, replace(options, presolve=False, method=extra["solver"],
                                              highs_options={**options.highs_options, **extra["options"]}),
                      deadline.remaining() if deadline.seconds is not None else None)
        h = fresh
        run_status = h.run()
        t3 = time.perf_counter()
        log.info("HiGHS (%s, no presolve) stopped after %.2f s: %s", how, t3 - t2,
                 h.modelStatusToString(h.getModelStatus()))
        term, sol, name = map_status(highspy, h)
        method = f"{how} without presolve after {options.method} stopped with status Unknown"
    info = h.getInfo()
    engine = f"highs {h.version()} ({method})"
    has_solution = sol in (SolutionStatus.optimal, SolutionStatus.feasible)
    objective = float(info.objective_function_value) if has_solution else None
    if mip:
        bound = float(info.mip_dual_bound) if np.isfinite(info.mip_dual_bound) else None
    else:
        bound = objective if sol == SolutionStatus.optimal else None
    message = "HiGHS returned an error status from run()" if (
        run_status == highspy.HighsStatus.kError and term != TerminationCondition.error) else ""
    if mip and sol == SolutionStatus.optimal and np.isfinite(info.mip_gap) and info.mip_gap > GAP_TOLERANCE:
        # HiGHS says Optimal once the gap is within mip_rel_gap; a gap wider than its default is a
        # feasible plan stopped by the gap, not a proven optimum
        sol = SolutionStatus.feasible
        message = f"HiGHS stopped at the requested MIP gap (its own measure of the gap: {100 * info.mip_gap:.2g} %)"
    status = SolverStatus(term, sol, engine, name, objective, bound, message,
                          requested_gap=options.highs_options.get("mip_rel_gap", options.mip_rel_gap) if mip else None)

    if term in (TerminationCondition.provenInfeasible, TerminationCondition.infeasibleOrUnbounded):
        per_check = max(DIAGNOSIS_MIN_S, DIAGNOSIS_FACTOR * (t3 - t2))
        families = diagnose_infeasibility(data, options, deadline, per_check) if diagnose else []
        rows = infeasible_rows(data)
        raise InfeasibleError(infeasibility_message(families, name, rows), families, status, rows)
    if term == TerminationCondition.error:
        raise SolverError(f"HiGHS failed: {name} {message}".strip(), status)
    if not status.has_solution:
        why = {
            TerminationCondition.maxTimeLimit: "the time limit passed before HiGHS found any feasible plan",
            TerminationCondition.iterationLimit: "the iteration limit was reached before HiGHS found a feasible plan",
            TerminationCondition.interrupted: "the solve was interrupted before a feasible plan was found",
            TerminationCondition.unbounded: "the model is unbounded (a cost is missing?)",
        }.get(term, f"HiGHS stopped without a plan ({name})")
        raise NoSolutionError(f"no plan: {why}; HiGHS status: {name}", status)

    solution = h.getSolution()
    col = np.asarray(solution.col_value, float)
    values = {comp: np.where(pos >= 0, col[pos], 0.0) for comp, pos in compiled.columns.items()}
    duals: dict[str, np.ndarray] = {}
    reduced_costs: dict[str, np.ndarray] = {}
    if not mip and solution.dual_valid:
        row_dual = np.asarray(solution.row_dual, float)
        duals = {fam: row_dual[sl] for fam, sl in compiled.rows.items()}
        col_dual = np.asarray(solution.col_dual, float)
        reduced_costs = {comp: np.where(pos >= 0, col_dual[pos], np.nan) for comp, pos in compiled.columns.items()}
    decisions = compiled.layout.decisions(values["applicants"], values["incentive_spend"])
    t4 = time.perf_counter()
    timings = Timings(build_s=build_s, handoff_s=handoff_s, solve_s=t3 - t2, extract_s=t4 - t3)
    return SolveResult(data, status, decisions, timings, compiled.size, values, duals, reduced_costs)


def diagnosis_order() -> list[str]:
    """Every constraint family (formulations.two_stage.CONSTRAINT_FAMILIES), in the order the
    diagnosis tries them: targets, then the other rows a planner can change (budgets, caps),
    then the rows that only define quantities (DEFINITIONAL_FAMILIES)."""
    families, definitional = two_stage.CONSTRAINT_FAMILIES, two_stage.DEFINITIONAL_FAMILIES
    first = [f for f in families if f in TARGET_FAMILIES or f == "service_chance_share"]
    actionable = first + [f for f in families if f not in definitional and f not in first]
    return actionable + [f for f in families if f in definitional]


def diagnose_infeasibility(data: ModelData, options: SolveOptions, deadline: Deadline | None = None,
                           per_check_s: float | None = None) -> list[str]:
    """Constraint families whose removal alone makes the model feasible, and for a target
    family (service.py) the depots whose row alone does: 'service_target (depots D001)'.

    The LP is built once (the same route as the solve: arrays or Pyomo); removing a family
    is relaxing its rows' bounds to (-inf, inf) in HiGHS and re-solving (cold, with
    presolve), then restoring them (only after HiGHS has proven infeasibility, so this costs
    nothing on feasible instances). Targets are tried first, then budgets and caps (what a
    planner can change); the rows that only define quantities last, and only when none of
    the others explains it. Each try gets at most ``per_check_s`` seconds: a try that is
    still infeasible can take HiGHS far longer to prove so than the first solve did (28 s
    against 1.4 s at 50x52x20), and one that stops undecided counts as not explaining it.
    Stops when the time budget runs out."""

    highspy = import_highspy()
    deadline = deadline or Deadline(options.time_limit)
    try:
        sf, _, _ = build_standard_form(data, options, deadline, "highs (diagnosis)")
    except NoSolutionError:
        return []
    sf.integer = None  # the LP: which rows make it infeasible
    h = highs_from_standard_form(sf, SolveOptions()).highs
    inf = highspy.kHighsInf

    def feasible_without(rows: np.ndarray) -> bool:
        idx = rows.astype(np.int32)
        h.changeRowsBounds(len(idx), idx, np.full(len(idx), -inf), np.full(len(idx), inf))
        left = deadline.remaining() if deadline.seconds is not None else np.inf
        apply_options(highspy, h, SolveOptions(), min(left, per_check_s or np.inf))
        # cold, so that presolve runs: from the last (infeasible) basis the dual simplex took
        # minutes to prove infeasibility again where presolve and a fresh start take ~1 s (50x52x20)
        h.clearSolver()
        h.run()
        ok = h.getModelStatus() == highspy.HighsModelStatus.kOptimal
        h.changeRowsBounds(len(idx), idx, sf.row_lower[idx].astype(float), sf.row_upper[idx].astype(float))
        return ok

    culprits = []
    targets = target_rows(data)
    A_csr = None  # the matrix by rows, for the service reach (converted once, when first needed)
    # what a planner can change first (targets, budgets, the onboarding cap); the rows that only
    # define drivers, capacity and costs are tried when none of those explains it (removing one
    # "explains" almost anything, and each try is a re-solve of the time budget)
    for family in diagnosis_order():
        if family in two_stage.DEFINITIONAL_FAMILIES and culprits:
            break
        sl = sf.rows.get(family)
        if sl is None or sl.stop <= sl.start:
            continue
        if deadline.expired():
            log.info("time budget spent: infeasibility diagnosis stopped before family %s", family)
            break
        if not feasible_without(np.arange(sl.start, sl.stop)):
            continue
        label = family
        if (family in TARGET_FAMILIES or family == "service_chance_share") and sl.stop - sl.start > 1:
            depots = targets["service_cvar_bound" if family == "service_chance_share" else family][0]
            labels = (region_targets(data)[0] if family == "region_service_target"
                      else [data.depots[d] if d >= 0 else "network" for d in depots])
            names = [labels[i] for i, row in enumerate(range(sl.start, sl.stop))
                     if not deadline.expired() and feasible_without(np.array([row]))]
            if names:
                label = f"{family} ({'regions' if family == 'region_service_target' else 'depots'} {', '.join(names)})"
        if family in ("service_target", "network_service_target", "region_service_target"):
            A_csr = A_csr if A_csr is not None else sf.A.tocsr()
            reach = [_reach_text(service_reach(h, highspy, sf, A_csr, data, family, int(d), row, deadline),
                                 data, family, int(d))
                     for d, row in zip(targets[family][0], range(sl.start, sl.stop), strict=True)]
            reach = [r for r in reach if r]
            if reach:
                label += ": " + "; ".join(reach[:MAX_REACH])
        culprits.append(label)
    return culprits


#: Target rows whose reach an infeasibility message spells out at most.
MAX_REACH = 5
#: Weeks named per unreachable service target (the worst first).
WORST_WEEKS = 3


@dataclass
class ServiceReach:
    """The most a service target row can reach: ``level`` (share) against ``target`` (share),
    and each week's service (D', T) of the depots in the row at that plan."""

    level: float
    target: float
    depots: list[int]
    served_week: np.ndarray


def service_reach(h, highspy, sf, A_csr, data: ModelData, family: str, d: int, row: int,
                  deadline: Deadline) -> ServiceReach | None:
    """The highest service level the budgets and every other row allow for the service
    target ``row`` (an LP maximising the row's served blocks with the row relaxed, on the
    built HiGHS model ``h``; costs and bounds restored), and each week's service at that plan
    by the evaluator's recourse on its capacity. None when time is out or the LP fails."""

    if deadline.expired():
        return None
    start, stop = A_csr.indptr[row], A_csr.indptr[row + 1]
    cols, coef = A_csr.indices[start:stop], A_csr.data[start:stop]
    inf = highspy.kHighsInf
    n = A_csr.shape[1]
    h.changeRowsBounds(1, np.array([row], np.int32), np.array([-inf]), np.array([inf]))
    cost = np.zeros(n)
    cost[cols] = -coef  # maximise the served blocks of the row
    h.changeColsCost(n, np.arange(n, dtype=np.int32), cost)
    try:
        apply_options(highspy, h, SolveOptions(), deadline.remaining() if deadline.seconds is not None else None)
        h.run()
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return None
        col = np.asarray(h.getSolution().col_value, float)
    finally:
        h.changeColsCost(n, np.arange(n, dtype=np.int32), sf.c.astype(float))
        h.changeRowsBounds(1, np.array([row], np.int32), sf.row_lower[[row]].astype(float),
                           sf.row_upper[[row]].astype(float))
    best = float(coef @ col[cols])  # blocks served over the horizon, in expectation
    D, T = data.shape[0], data.n_weeks
    q = col[sf.columns["capacity_blocks"]].reshape(D, T)
    if family == "region_service_target":
        _, shares, members = region_targets(data)
        depots, target = list(members[d]), float(shares[d])
    elif d >= 0:
        depots, target = [d], float(data.service_target[d])
    else:
        depots, target = list(range(D)), float(data.network_service_target)
    demand = np.einsum("dts,s->dt", data.demand, data.probability)[depots]  # (n, T) expected blocks
    _, unserved, _ = period_recourse(data, q[depots], depots=depots) if data.has_week_profile else \
        optimal_recourse(data, q[depots], data.demand[depots], depots=depots)
    served_week = 1.0 - np.einsum("dts,s->dt", unserved, data.probability) / np.where(demand > 0, demand, 1.0)
    return ServiceReach(best / max(float(demand.sum()), 1e-12), target, depots, served_week)


def _reach_text(reach: ServiceReach | None, data: ModelData, family: str, d: int) -> str:
    """An unreachable target in words, e.g. "D001 reaches at most 98.0% (target 99.9%);
    least served at that plan: week 1 91.2%, week 2 95.0%, week 3 97.1%" (empty when the
    row can be met or there is no reach)."""
    if reach is None or reach.level >= reach.target - 1e-9:
        return ""
    T = data.n_weeks
    starts = data.period_starts()  # a long-lead period is named by its first week
    single = family == "service_target"
    order = np.argsort(reach.served_week, axis=None, kind="stable")[:WORST_WEEKS]
    where = (lambda i: f"week {starts[i % T]}") if single else (
        lambda i: f"{data.depots[reach.depots[i // T]]} week {starts[i % T]}")
    weeks = ", ".join(f"{where(i)} {reach.served_week.flat[i]:.1%}" for i in order)
    name = (f"region {region_targets(data)[0][d]}" if family == "region_service_target"
            else data.depots[d] if single else "the network")
    return f"{name} reaches at most {reach.level:.1%} (target {reach.target:.1%}); least served at that plan: {weeks}"


def solve_pyomo_model(model, options: SolveOptions | None = None) -> SolverStatus:
    """Solve any linear Pyomo model (one active objective, minimised) by HiGHS through the
    same standard-form hand-off, and load the solution into the model's variables when one
    exists (fixed variables keep their values). Used for models that are not the two-stage
    program (the stochastic values' extensive form, mean-scenario and scenario models)."""
    import pyomo.environ as pyo
    from pyomo.core.expr.visitor import identify_variables
    from pyomo.repn.plugins.standard_form import LinearStandardFormCompiler

    options = options or SolveOptions()
    highspy = import_highspy()
    objectives = list(model.component_data_objects(pyo.Objective, active=True))
    if len(objectives) != 1 or objectives[0].sense != pyo.minimize:
        raise OptionError("model", "exactly one active objective, minimised", f"{len(objectives)} active objective(s)")
    # Rows whose variables are all fixed (e.g. a first stage fixed at another solution) are
    # checked here with a feasibility tolerance and left out: the compiler would compare them
    # exactly and reject a row that a solver meets to 1e-9.
    constant_rows = [c for c in model.component_data_objects(pyo.Constraint, active=True)
                     if not any(True for _ in identify_variables(c.body, include_fixed=False))]
    for con in constant_rows:
        body = pyo.value(con.body)
        lb, ub = pyo.value(con.lower), pyo.value(con.upper)
        if (lb is not None and body < lb - FIXED_ROW_RTOL * max(1.0, abs(lb))) or (
                ub is not None and body > ub + FIXED_ROW_RTOL * max(1.0, abs(ub))):
            return SolverStatus(TerminationCondition.provenInfeasible, SolutionStatus.infeasible, "highs",
                                f"fixed variables violate row {con.name}", None, None)
    for con in constant_rows:
        con.deactivate()
    try:
        info = LinearStandardFormCompiler().write(model, mixed_form=True)
    finally:
        for con in constant_rows:
            con.activate()
    arrays = matrix_arrays(info)
    integrality = np.array([v.is_integer() or v.is_binary() for v in info.columns], dtype=bool)
    h = load_highs(highspy, *(arrays[k] for k in ("c", "offset", "A", "col_lower", "col_upper", "row_lower",
                                                  "row_upper")), integrality, options.log)
    apply_options(highspy, h, options, options.time_limit)
    h.run()
    term, sol, name = map_status(highspy, h)
    objective = None
    if sol in (SolutionStatus.optimal, SolutionStatus.feasible):
        values = np.asarray(h.getSolution().col_value, float)
        for var, value in zip(info.columns, values, strict=True):
            var.set_value(float(value), skip_validation=True)
        objective = float(h.getInfo().objective_function_value)
    return SolverStatus(term, sol, f"highs {h.version()}", name, objective,
                        objective if sol == SolutionStatus.optimal else None)
