"""CVaR on the aggregated recourse by risk-envelope cuts, solved by HiGHS (the scalable path).

The program and why it is exact are in formulations/two_stage/risk.py ("Risk-envelope
cuts"). The loop:

1. build the aggregated program with theta >= 0 and no cut (arrays), hand it to HiGHS once;
2. solve (each round warm-starts from the last basis: the HiGHS object is persistent and
   only grows);
3. from the plan's capacity q, every scenario's recourse cost R_s (currency) by the
   closed-form kernel (recourse.period_recourse), its worst vertex w = cvar_vertex(R) and
   CVaR(R) = w @ R;
4. stop when lambda (CVaR(R) - theta) <= CUT_RTOL x max(1, |objective|) or w is already a cut
   (the gap is then the LP's own tolerance; a repeated cut with a gap above STALL_RTOL means the
   cut does not reproduce the kernel, and the plan is returned as feasible, not optimal, with
   the gap); else add w's cut and go to 2.

Every round's objective is a lower bound on the optimum (a relaxation) and the plan's true
objective, F + (1 - lambda) E[R] + lambda CVaR(R), an upper bound; when the time budget runs
out between rounds the last plan is returned as feasible (not optimal) with both, so the
status gives the gap. The budget duals of the last round are duals of the full program (it
is optimal there and every missing cut is slack).
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import numpy as np
from pyomo.contrib.solver.common.results import SolutionStatus, TerminationCondition

from formulations.data import ModelData
from formulations.two_stage.matrix import aggregated_standard_form, cvar_cut_block
from formulations.two_stage.recourse import period_recourse, recourse_cost
from formulations.two_stage.risk import cvar_vertex
from optplan.solvers.base import ENGINE_LOGGER, Deadline, SolveOptions, SolveResult, Timings, out_of_time
from optplan.solvers.highs import highs_from_standard_form, import_highspy, run_compiled

log = logging.getLogger(ENGINE_LOGGER)

#: The loop stops when lambda (CVaR(R) - theta) is at most this share of the objective (at least 1 currency unit).
CUT_RTOL = 1e-9
#: A repeated vertex with a gap above this share of the objective is a stall, not convergence.
STALL_RTOL = 1e-6
#: Weights closer than this are the same vertex.
VERTEX_ATOL = 1e-12
#: At most this many rounds (a safeguard: the vertex set is finite, and 2-6 rounds were measured).
MAX_ROUNDS = 500


def scenario_recourse(data: ModelData, capacity: np.ndarray) -> np.ndarray:
    """R_s (S,): each scenario's recourse cost (currency) summed over depots and weeks, for
    capacity (D, T) blocks/week, by the closed-form kernel."""
    return recourse_cost(data, *period_recourse(data, capacity)).sum(axis=(0, 1))


def solve_by_cuts(data: ModelData, options: SolveOptions, deadline: Deadline) -> SolveResult:
    """Minimise F + (1 - lambda) E[R] + lambda CVaR_alpha(R) on the aggregated recourse by
    HiGHS with risk-envelope cuts (module docstring). Raises like the HiGHS engine (an
    infeasible instance is infeasible in the first round, which has no cut)."""

    highspy = import_highspy()
    lam, alpha = float(data.cvar_weight), float(data.cvar_alpha)
    t0 = time.perf_counter()
    sf = aggregated_standard_form(data, integer=options.integer, cvar_vertices=[])
    t1 = time.perf_counter()
    compiled = highs_from_standard_form(sf, options)
    h = compiled.highs
    handoff_s = time.perf_counter() - t1
    D, _, T, _ = data.shape
    q_cols = sf.columns["capacity_blocks"].reshape(D, T)
    theta_col = int(sf.columns["cvar_threshold"][0])
    del sf
    log.info("CVaR by risk-envelope cuts (lambda %.3g, alpha %.3g): built in %.2f s, %d variables, %d constraints",
             lam, alpha, t1 - t0, compiled.n_cols, compiled.n_rows)
    if deadline.expired():
        raise out_of_time("highs", "the time limit passed while building the model before HiGHS could run",
                          "not run: time budget spent building the model")
    vertices: list[np.ndarray] = []
    solve_s = 0.0
    rounds = []  # per round: HiGHS seconds and simplex iterations (round 1 cold, the others from the last basis)
    for round_ in range(1, MAX_ROUNDS + 1):
        result = run_compiled(data, compiled, options, deadline, build_s=t1 - t0, handoff_s=handoff_s,
                              diagnose=round_ == 1)  # only the first round (no cut) can be infeasible
        solve_s += result.timings.solve_s
        rounds.append({"round": round_, "cuts": len(vertices), "highs_s": round(result.timings.solve_s, 3),
                       "simplex_iterations": int(h.getInfo().simplex_iteration_count)})
        status = result.status
        capacity = result.values["capacity_blocks"].reshape(D, T)
        R = scenario_recourse(data, capacity)
        w = cvar_vertex(R, data.probability, alpha)
        theta = float(result.values["cvar_threshold"][0])
        gap = lam * (float(w @ R) - theta)  # currency: the true objective minus the round's
        lower = status.objective
        upper = lower + max(gap, 0.0)
        repeated = any(np.allclose(w, v, rtol=0.0, atol=VERTEX_ATOL) for v in vertices)
        log.info("CVaR round %d (%.1f s): objective %.6g, CVaR(R) %.6g, theta %.6g, gap %.3g (%d cuts)", round_,
                 result.timings.solve_s, lower,
                 float(w @ R), theta, gap, len(vertices))
        converged = gap <= CUT_RTOL * max(1.0, abs(upper)) or repeated
        # the round's lower bound on the full program: its LP optimum, or a MIP's dual bound (a MIP
        # stopped by its gap has an incumbent whose objective is no bound); the loop goes on from
        # an LP optimum or such an incumbent, and stops on any other status
        bound = status.bound
        usable = status.has_solution and status.termination == TerminationCondition.convergenceCriteriaSatisfied
        if usable and repeated and gap > STALL_RTOL * max(1.0, abs(upper)):
            status = replace(status, termination=TerminationCondition.unknown, solution=SolutionStatus.feasible,
                             message=f"the CVaR cuts stalled after {round_} rounds: the worst-case weights repeat with "
                                     f"a gap of {gap:,.2f} {data.currency} between the plan and the bound")
            break
        if not usable or converged:
            break
        if deadline.expired():
            status = replace(status, termination=TerminationCondition.maxTimeLimit, solution=SolutionStatus.feasible,
                             message=f"the time limit passed after {round_} CVaR cut rounds; "
                                     f"gap {gap:,.2f} {data.currency} between the plan and the bound")
            break
        vertices.append(w)
        block = cvar_cut_block(data, w, q_cols, theta_col, h.getNumCol())
        n = len(block.upper)
        h.addVars(n, np.zeros(n), np.where(np.isinf(block.upper), highspy.kHighsInf, block.upper))
        for rows in (block.link, block.cut):
            order = np.lexsort((rows.col, rows.row))
            r, c, v = rows.row[order], rows.col[order], rows.val[order]
            starts = np.searchsorted(r, np.arange(rows.n)).astype(np.int32)
            h.addRows(rows.n, rows.lower.astype(float), np.where(np.isinf(rows.upper), highspy.kHighsInf, rows.upper),
                      len(c), starts, c.astype(np.int32), v.astype(float))
        compiled.n_cols = h.getNumCol()
        compiled.n_rows = h.getNumRow()
        compiled.n_nonzeros = h.getNumNz()
    else:  # pragma: no cover - a safeguard
        status = replace(status, termination=TerminationCondition.iterationLimit, solution=SolutionStatus.feasible,
                         message=f"stopped after {MAX_ROUNDS} CVaR cut rounds")
    if status.has_solution:  # the plan's own objective F + (1 - lambda) E + lambda CVaR(R) and the round's bound
        status = replace(status, objective=upper, bound=bound)
    status = replace(status, engine=f"{status.engine} with {len(vertices)} CVaR cuts",
                     message=status.message or f"CVaR by {len(vertices)} risk-envelope cuts in {round_} rounds")
    timings = Timings(build_s=t1 - t0, handoff_s=handoff_s, solve_s=solve_s, extract_s=result.timings.extract_s)
    out = replace(result, status=status, timings=timings, size=compiled.size)
    out.extra["cvar_rounds"] = rounds
    return out
