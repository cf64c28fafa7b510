"""Solve orchestration: instance -> Pyomo model -> HiGHS -> Plan.

The hand-off to HiGHS compiles the Pyomo model with Pyomo's ``LinearStandardFormCompiler``
(the fastest route we measured from a Pyomo model to HiGHS: about 2x faster than Pyomo's
persistent ``highs``/``appsi_highs`` interfaces on a 52k-scenario-row model; see
docs/performance.md) and passes the sparse matrix to highspy in one ``passModel`` call.
Columns and rows come out grouped by component in declaration order, so solution values
and duals map back to the model's index sets by slicing, with no per-element Python.

Status is reported on two axes, after Pyomo's solver interfaces: why HiGHS stopped
(``TerminationCondition``) and what solution exists (``SolutionStatus``).
"""

from __future__ import annotations

import gc
import logging
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyomo.environ as pyo
from pyomo.contrib.solver.common.results import SolutionStatus, TerminationCondition
from pyomo.repn.plugins.standard_form import LinearStandardFormCompiler

from formulations import two_stage
from formulations.data import ModelData
from optplan.errors import InfeasibleError, NoSolutionError, SolverError

log = logging.getLogger("optplan")

#: Relative tolerance under which a budget counts as binding (used = cap).
BINDING_RTOL = 1e-7
#: Values of magnitude below this are written as 0 (solver noise, e.g. 1e-13 applicants).
CLEAN_ATOL = 1e-9

METHODS = {"choose": "choose", "simplex": "simplex", "ipm": "ipm", "pdlp": "pdlp"}


@dataclass(frozen=True)
class SolveOptions:
    """Options of a solve; those HiGHS knows are passed through to it.

    time_limit: seconds of HiGHS run time (None: no limit).
    mip_rel_gap: relative MIP gap at which HiGHS stops (integer plans only).
    threads: HiGHS threads (None: HiGHS default).
    method: LP algorithm, one of choose | simplex | ipm | pdlp.
    presolve: run HiGHS presolve.
    integer: applicants are whole numbers (a MIP).
    seed: HiGHS random seed (results are deterministic for a given seed).
    log: show the HiGHS log.
    highs_options: any further HiGHS options by name, e.g. {"primal_feasibility_tolerance": 1e-8}.
    """

    time_limit: float | None = None
    mip_rel_gap: float | None = None
    threads: int | None = None
    method: str = "choose"
    presolve: bool = True
    integer: bool = False
    seed: int = 0
    log: bool = False
    highs_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {sorted(METHODS)}, got {self.method!r}")
        if self.time_limit is not None and not self.time_limit > 0:
            raise ValueError(f"time_limit must be > 0 seconds, got {self.time_limit!r}")
        if self.mip_rel_gap is not None and not self.mip_rel_gap >= 0:
            raise ValueError(f"mip_rel_gap must be >= 0, got {self.mip_rel_gap!r}")


@dataclass(frozen=True)
class SolverStatus:
    """Why the solver stopped, and what solution exists (two separate axes)."""

    termination: TerminationCondition
    solution: SolutionStatus
    engine: str  # what produced the plan, e.g. "highs 1.16.0 (simplex)"
    highs_status: str  # HiGHS's own model status, verbatim
    objective: float | None  # objective of the solution returned (currency)
    bound: float | None  # best proven lower bound (currency)
    message: str = ""

    @property
    def optimal(self) -> bool:
        return self.solution == SolutionStatus.optimal

    @property
    def has_solution(self) -> bool:
        return self.solution in (SolutionStatus.optimal, SolutionStatus.feasible)

    @property
    def gap(self) -> float | None:
        """Relative gap between objective and bound (0 for a proven optimum)."""
        if self.objective is None or self.bound is None:
            return None
        return abs(self.objective - self.bound) / max(1.0, abs(self.objective))

    def to_dict(self) -> dict:
        return {
            "termination": self.termination.name,
            "solution": self.solution.name,
            "engine": self.engine,
            "highs_status": self.highs_status,
            "objective": self.objective,
            "bound": self.bound,
            "gap": self.gap,
            "message": self.message,
        }


@dataclass(frozen=True)
class Timings:
    """Wall-clock seconds of each step (not written to output files: they vary by run)."""

    build_s: float  # Pyomo model construction
    handoff_s: float  # standard-form compile + passModel to HiGHS
    solve_s: float  # HiGHS run
    extract_s: float  # solution -> arrays

    def to_dict(self) -> dict:
        return {k: round(v, 4) for k, v in self.__dict__.items()}


_BANNER_SHOWN = False


def _import_highspy():
    """Import highspy; the first Highs() of a process prints a licence banner to the C-level
    stdout, which would garble the CLI's output, so that one construction is silenced."""
    global _BANNER_SHOWN
    try:
        import highspy
    except ImportError as exc:  # pragma: no cover - exercised by the DP-fallback issue
        raise SolverError(f"HiGHS is not available: cannot import highspy ({exc})") from exc
    if not _BANNER_SHOWN:
        _BANNER_SHOWN = True
        import os
        import sys

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


def _map_status(highspy, h) -> tuple[TerminationCondition, SolutionStatus, str]:
    """Map HiGHS's model status (and primal solution status) to the two axes."""
    ms = h.getModelStatus()
    info = h.getInfo()
    has_primal = info.primal_solution_status == 2  # kSolutionStatusFeasible
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

    model: pyo.ConcreteModel | None  # None once released (a plain solve does not need it)
    highs: Any
    columns: dict[str, np.ndarray]  # variable component -> column of each element (-1: absent)
    rows: dict[str, slice]
    n_cols: int
    n_rows: int
    n_nonzeros: int


def compile_to_highs(model: pyo.ConcreteModel, options: SolveOptions) -> CompiledModel:
    """Compile ``model`` to sparse standard form and pass it to a new HiGHS instance."""
    highspy = _import_highspy()
    var_components = [model.component(n) for n in (*two_stage.FIRST_STAGE_VARS, *two_stage.SECOND_STAGE_VARS)]
    info = LinearStandardFormCompiler().write(model, mixed_form=True, column_order=var_components)
    expected = sum(len(comp) for comp in var_components)
    columns: dict[str, np.ndarray] = {}
    if expected == len(info.columns):
        # fast path: every variable is used, so columns are the components in order
        start = 0
        for comp in var_components:
            columns[comp.local_name] = np.arange(start, start + len(comp))
            start += len(comp)
    else:
        # the compiler drops variables that appear in no active row (e.g. when a family is
        # deactivated for an infeasibility diagnosis): map each variable; -1 = absent
        position = {id(v): i for i, v in enumerate(info.columns)}
        for comp in var_components:
            columns[comp.local_name] = np.fromiter(
                (position.get(id(v), -1) for v in comp.values()), np.int64, len(comp)
            )
    rows, start = {}, 0
    for con in model.component_objects(pyo.Constraint, active=True, descend_into=False):
        rows[con.local_name] = slice(start, start + len(con))
        start += len(con)
    if start != len(info.rows):
        raise SolverError(f"internal: expected {start} rows, the compiler produced {len(info.rows)}")

    n_cols, n_rows = len(info.columns), len(info.rows)
    lower = np.fromiter((v.lb if v.lb is not None else -np.inf for v in info.columns), float, n_cols)
    upper = np.fromiter((v.ub if v.ub is not None else np.inf for v in info.columns), float, n_cols)
    kind = np.fromiter((r.bound_type for r in info.rows), np.int8, n_rows)
    rhs = np.asarray(info.rhs, float)
    row_lower = np.where(kind <= 0, rhs, -np.inf)  # == and >= rows have a lower bound
    row_upper = np.where(kind >= 0, rhs, np.inf)  # == and <= rows have an upper bound
    A = info.A.tocsc()
    cost = np.asarray(info.c.toarray()).ravel() if info.c.shape[0] else np.zeros(n_cols)

    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = n_cols, n_rows
    lp.col_cost_ = cost
    lp.offset_ = float(info.c_offset[0]) if len(info.c_offset) else 0.0
    lp.col_lower_, lp.col_upper_ = lower, upper
    lp.row_lower_, lp.row_upper_ = row_lower, row_upper
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = A.indptr.astype(np.int32)
    lp.a_matrix_.index_ = A.indices.astype(np.int32)
    lp.a_matrix_.value_ = A.data.astype(float)
    if options.integer:
        integrality = np.zeros(n_cols, dtype=np.uint8)
        used = columns["applicants"]
        integrality[used[used >= 0]] = 1
        lp.integrality_ = [highspy.HighsVarType(int(i)) for i in integrality]
    h = highspy.Highs()
    h.setOptionValue("output_flag", bool(options.log))
    status = h.passModel(lp)
    if status == highspy.HighsStatus.kError:
        raise SolverError("HiGHS rejected the model (passModel returned an error)")
    return CompiledModel(model, h, columns, rows, n_cols, n_rows, int(A.nnz))


def _apply_options(highspy, h, options: SolveOptions) -> None:
    settings: dict[str, Any] = {
        "random_seed": int(options.seed),
        "presolve": "on" if options.presolve else "off",
        "solver": METHODS[options.method],
    }
    if options.time_limit is not None:
        settings["time_limit"] = float(options.time_limit)
    if options.mip_rel_gap is not None:
        settings["mip_rel_gap"] = float(options.mip_rel_gap)
    if options.threads is not None:
        settings["threads"] = int(options.threads)
    settings.update(options.highs_options)
    for key, value in settings.items():
        if h.setOptionValue(key, value) == highspy.HighsStatus.kError:
            raise ValueError(f"HiGHS rejected option {key}={value!r}")


@dataclass
class RawSolution:
    """Everything a Plan needs from a solve, as arrays in the model's index order."""

    data: ModelData
    status: SolverStatus
    timings: Timings
    values: dict[str, np.ndarray]  # variable component -> values in index order
    duals: dict[str, np.ndarray]  # constraint component -> duals (empty for MIPs)
    size: dict[str, int]
    reduced_costs: dict[str, np.ndarray] = field(default_factory=dict)  # variable component -> col duals


def solve_model_data(data: ModelData, options: SolveOptions) -> RawSolution:
    """Build, hand off and solve; raise if there is no solution to return."""
    D, C, T, S = data.shape
    log.info("building the model: %d depots x %d weeks x %d scenarios, %d channels", D, T, S, C)
    t0 = time.perf_counter()
    model = two_stage.build_model(data)
    t1 = time.perf_counter()
    log.info("built in %.2f s; handing off to HiGHS", t1 - t0)
    compiled = compile_to_highs(model, options)
    t2 = time.perf_counter()
    log.info(
        "handed off in %.2f s: %d variables, %d constraints, %d nonzeros; HiGHS is solving%s",
        t2 - t1, compiled.n_cols, compiled.n_rows, compiled.n_nonzeros,
        "" if options.log else " (--log shows its progress)",
    )
    # HiGHS holds its own copy now: release the Pyomo model before the solve so the two are
    # not in memory together (peak memory ~ max(build, solve) instead of their sum).
    compiled.model = None
    del model
    gc.collect()
    return run_compiled(data, compiled, options, build_s=t1 - t0, handoff_s=t2 - t1)


def run_compiled(
    data: ModelData, compiled: CompiledModel, options: SolveOptions, build_s: float = 0.0, handoff_s: float = 0.0
) -> RawSolution:
    """Run HiGHS on a compiled model (again: a persistent model keeps its basis, so a re-run
    after changing bounds warm-starts) and extract the solution; raise if there is none."""
    highspy = _import_highspy()
    h = compiled.highs
    _apply_options(highspy, h, options)
    t2 = time.perf_counter()
    run_status = h.run()
    t3 = time.perf_counter()
    log.info("HiGHS stopped after %.2f s: %s", t3 - t2, h.modelStatusToString(h.getModelStatus()))
    term, sol, name = _map_status(highspy, h)
    info = h.getInfo()
    method = options.method
    engine = f"highs {h.version()} ({'mip' if options.integer else method})"
    objective = float(info.objective_function_value) if sol in (SolutionStatus.optimal, SolutionStatus.feasible) else None
    if options.integer:
        bound = float(info.mip_dual_bound) if np.isfinite(info.mip_dual_bound) else None
    else:
        bound = objective if sol == SolutionStatus.optimal else None
    message = ""
    if run_status == highspy.HighsStatus.kError and term != TerminationCondition.error:
        message = "HiGHS returned an error status from run()"
    status = SolverStatus(term, sol, engine, name, objective, bound, message)
    size = {"variables": compiled.n_cols, "constraints": compiled.n_rows, "nonzeros": compiled.n_nonzeros}

    if term in (TerminationCondition.provenInfeasible, TerminationCondition.infeasibleOrUnbounded):
        families = diagnose_infeasibility(data, options)
        detail = ", ".join(families) if families else "no single constraint family (a combination)"
        raise InfeasibleError(
            f"the instance has no feasible plan: infeasible because of constraint family {detail} "
            f"(removing it makes the model feasible); HiGHS status: {name}",
            families,
            status,
        )
    if term == TerminationCondition.error:
        raise SolverError(f"HiGHS failed: {name} {message}".strip())
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
    values = {name_: np.where(pos >= 0, col[pos], 0.0) for name_, pos in compiled.columns.items()}
    duals: dict[str, np.ndarray] = {}
    reduced_costs: dict[str, np.ndarray] = {}
    if not options.integer and solution.dual_valid:
        row_dual = np.asarray(solution.row_dual, float)
        duals = {name_: row_dual[sl] for name_, sl in compiled.rows.items()}
        col_dual = np.asarray(solution.col_dual, float)
        reduced_costs = {name_: np.where(pos >= 0, col_dual[pos], np.nan) for name_, pos in compiled.columns.items()}
    t4 = time.perf_counter()
    timings = Timings(build_s=build_s, handoff_s=handoff_s, solve_s=t3 - t2, extract_s=t4 - t3)
    if not status.optimal:
        warnings.warn(
            f"HiGHS stopped ({term.name}) with a feasible but not proven optimal plan; "
            f"gap to the bound: {status.gap}",
            RuntimeWarning,
            stacklevel=3,
        )
    return RawSolution(data, status, timings, values, duals, size, reduced_costs)


def diagnose_infeasibility(data: ModelData, options: SolveOptions) -> list[str]:
    """Constraint families whose removal alone makes the model feasible.

    Re-solves the model once per family with that family deactivated (only after HiGHS has
    proven infeasibility, so this costs nothing on feasible instances).
    """
    highspy = _import_highspy()
    culprits = []
    for family in two_stage.CONSTRAINT_FAMILIES:
        model = two_stage.build_model(data)
        component = model.component(family)
        if component is None or len(component) == 0:
            continue
        component.deactivate()
        h = compile_to_highs(model, SolveOptions(integer=False)).highs
        _apply_options(highspy, h, SolveOptions(time_limit=options.time_limit, integer=False))
        h.run()
        if h.getModelStatus() == highspy.HighsModelStatus.kOptimal:
            culprits.append(family)
    return culprits
