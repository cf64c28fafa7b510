"""GLOP engine: the exact LP by OR-tools' GLOP, when HiGHS is missing or fails.

The same standard form as HiGHS's hand-off (``standard_form.py``) is loaded into GLOP in one
vectorised call (``model_builder_helper.ModelBuilderHelper.fill_model_from_sparse_data``;
per-object construction through pywraplp measured ~40x slower to build at 1e6 nonzeros).
GLOP is an LP solver: it cannot plan whole applicants, so ``auto`` skips it for
``integer=True``. Its duals follow HiGHS's sign convention for a minimisation
(c - A' row_dual = col_dual; checked against HiGHS to 3e-10), so budget shadow prices
read the same.

Status: GLOP reports no "time limit"; a run stopped by the time limit comes back as
NOT_SOLVED (no plan) or FEASIBLE (a primal-feasible point), read as ``maxTimeLimit``.
Its presolve reports "infeasible or unbounded" as INFEASIBLE; the two are told apart by a
feasibility re-solve with zero costs.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import numpy as np
from pyomo.contrib.solver.common.results import SolutionStatus, TerminationCondition

from formulations.data import ModelData
from optplan.errors import EngineUnavailableError, InfeasibleError, NoSolutionError, OptionError, SolverError
from optplan.solvers.base import (
    ENGINE_LOGGER,
    Deadline,
    SolveOptions,
    SolveResult,
    SolverStatus,
    Timings,
    engine_capabilities,
    out_of_time,
)
from optplan.solvers.diagnose import infeasibility_message, infeasible_rows
from optplan.solvers.standard_form import StandardForm, build_standard_form

log = logging.getLogger(ENGINE_LOGGER)


def import_glop():
    try:
        from ortools.linear_solver.python import model_builder_helper
    except ImportError as exc:
        raise EngineUnavailableError(f"GLOP is not available: cannot import ortools ({exc})") from exc
    if not hasattr(model_builder_helper.ModelBuilderHelper, "fill_model_from_sparse_data"):
        raise EngineUnavailableError("GLOP is not available: this ortools has no vectorised model loader (need >= 9.10)")
    return model_builder_helper


def _run(mbh, sf: StandardForm, c: np.ndarray, time_limit: float | None):
    import scipy.sparse as sp

    model = mbh.ModelBuilderHelper()
    A = sp.csr_matrix(sf.A, dtype=np.float64)  # the loader wants rows = constraints
    A.sum_duplicates()
    f64 = lambda v: np.ascontiguousarray(v, dtype=np.float64)  # noqa: E731
    model.fill_model_from_sparse_data(f64(sf.col_lower), f64(sf.col_upper), f64(c), f64(sf.row_lower),
                                      f64(sf.row_upper), A)
    model.set_objective_offset(float(sf.offset))
    solver = mbh.ModelSolverHelper("glop")
    if time_limit is not None and np.isfinite(time_limit):
        solver.set_time_limit_in_seconds(max(float(time_limit), 0.0))
    solver.solve(model)
    return solver


class GlopEngine:
    """The LP by GLOP: exact, with duals, honours the time limit; no integer applicants."""

    name = "glop"
    capabilities = engine_capabilities("glop")  # declared once, in the registry (optplan/solvers/__init__.py)

    def available(self) -> str | None:
        try:
            import_glop()
        except EngineUnavailableError as exc:
            return str(exc)
        return None

    def solve(self, data: ModelData, options: SolveOptions, deadline: Deadline) -> SolveResult:
        mbh = import_glop()
        from ortools import __version__ as ortools_version

        if options.integer:
            raise SolverError("GLOP solves LPs only: it cannot plan whole applicants (drop --integer or use highs)")
        if data.cvar_weight > 0 and options.recourse == "aggregated":
            # GLOP has no persistent model to add risk-envelope cuts to: it states CVaR by the extensive form
            if options.formulation == "aggregated" or data.has_targets:
                raise OptionError("engine", "highs or auto for CVaR on the aggregated recourse (risk-envelope cuts; "
                                  "with service or utilisation targets too); GLOP states CVaR by the extensive form",
                                  "glop")

            options = replace(options, formulation="extensive")
        S = mbh.SolveStatus
        engine = f"glop (or-tools {ortools_version})"
        sf, build_s, handoff_s = build_standard_form(data, options, deadline, "GLOP")
        t2 = time.perf_counter()
        log.info("GLOP: %d variables, %d constraints; solving", *sf.A.shape[::-1])
        limited = deadline.seconds is not None
        if deadline.expired():
            raise out_of_time(engine, "the time limit passed while building the model, before GLOP could run",
                              "not run")
        solver = _run(mbh, sf, sf.c, deadline.remaining() if limited else None)
        t3 = time.perf_counter()
        st = solver.status()
        native = st.name + (f": {solver.status_string()}" if solver.status_string() else "")
        TC, SS = TerminationCondition, SolutionStatus
        if st == S.OPTIMAL:
            term, sol = TC.convergenceCriteriaSatisfied, SS.optimal
        elif st == S.FEASIBLE:
            term, sol = (TC.maxTimeLimit if limited else TC.unknown), SS.feasible
        elif st == S.NOT_SOLVED:
            term, sol = (TC.maxTimeLimit if limited else TC.unknown), SS.noSolution
        elif st == S.INFEASIBLE:
            check = _run(mbh, sf, np.zeros_like(sf.c), deadline.remaining() if limited else None).status()
            native += f"; feasibility re-solve: {check.name}"
            if check in (S.OPTIMAL, S.FEASIBLE):
                term, sol = TC.unbounded, SS.noSolution
            else:
                term, sol = TC.provenInfeasible, SS.infeasible
        elif st == S.UNBOUNDED:
            term, sol = TC.unbounded, SS.noSolution
        else:
            term, sol = TC.error, SS.noSolution
        has = sol in (SS.optimal, SS.feasible) and solver.has_solution()
        objective = float(solver.objective_value()) if has else None
        status = SolverStatus(term, sol if has or sol == SS.infeasible else SS.noSolution, engine, native, objective,
                              objective if sol == SS.optimal else None)
        if sol == SS.infeasible:
            rows = infeasible_rows(data)
            families = ["onboarding_cap"] if rows else []
            raise InfeasibleError(infeasibility_message(families, native, rows), families, status, rows)
        if term == TC.error:
            raise SolverError(f"GLOP failed: {native}", status)
        if not has:
            why = "the time limit passed" if term == TC.maxTimeLimit else "GLOP stopped"
            raise NoSolutionError(f"no plan: {why} before GLOP found any feasible plan; GLOP status: {native}", status)
        x = np.asarray(solver.variable_values(), float)
        values = {comp: np.where(pos >= 0, x[pos], 0.0) for comp, pos in sf.columns.items()}
        duals, reduced = {}, {}
        if sol == SS.optimal:
            row_dual = np.asarray(solver.dual_values(), float)
            duals = {fam: row_dual[sl] for fam, sl in sf.rows.items()}
            col_dual = np.asarray(solver.reduced_costs(), float)
            reduced = {comp: np.where(pos >= 0, col_dual[pos], np.nan) for comp, pos in sf.columns.items()}
        decisions = sf.layout.decisions(values["applicants"], values["incentive_spend"])
        timings = Timings(build_s=build_s, handoff_s=handoff_s, solve_s=t3 - t2, extract_s=time.perf_counter() - t3)
        return SolveResult(data, status, decisions, timings, sf.size, values, duals, reduced)
