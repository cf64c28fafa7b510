"""Warm what-ifs: one persistent HiGHS model of an instance's LP, updated in place.

A what-if (a budget, a cost, a penalty, a demand scale changed) usually leaves the LP's
shape alone and changes some of its numbers: the objective's costs, the column and row
bounds, some coefficients. ``WarmModel.solve(data)`` builds the changed LP by the array route
(``formulations.two_stage.matrix.aggregated_standard_form``: numpy only, a fraction of the
solve), compares it with the LP the HiGHS object holds, pushes only what differs
(``changeColsCost``, ``changeColsBounds``, ``changeRowsBounds``, ``changeCoeff``,
``changeObjectiveOffset``) and re-runs HiGHS, which starts from the basis of the previous
solve. The plan is the cold solve's (same optimum, tested to 1e-7; budget prices to 1e-6 on
generated instances, tests/solvers/test_warm.py).

When the shape differs (a budget added where there was none, a target that adds rows, a
different number of depots, weeks or scenarios, recourse segments that appear or vanish), the
model is rebuilt from scratch and ``last_start`` says so and why; so is a program the warm
route does not cover: CVaR (the cut loop keeps its own persistent model,
optplan.solvers.cvar_cuts) and whole-applicant MIPs (a MIP has no basis to start from).

It is an engine (``name``, ``capabilities``, ``available``, ``solve(data, options, deadline)``),
so ``optplan.solvers.solve_data`` runs it like any other: the same refusals, the same status,
and every solve within its own ``deadline`` (the HiGHS engine's ``run_compiled``: its Unknown
retries, its infeasibility diagnosis). The status's engine says "warm" or "rebuilt" and why.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from formulations.data import ModelData
from formulations.two_stage.matrix import aggregated_standard_form
from optplan.solvers.base import Deadline, SolveOptions, SolveResult, engine_capabilities
from optplan.solvers.highs import highs_from_standard_form, import_highspy, run_compiled
from optplan.solvers.highs_engine import HighsEngine


@dataclass(frozen=True)
class WarmStart:
    """How the last solve started: ``warm`` (from the previous basis, with what changed) or
    cold (``reason``)."""

    warm: bool
    reason: str = ""
    costs_changed: int = 0
    column_bounds_changed: int = 0
    row_bounds_changed: int = 0
    coefficients_changed: int = 0
    build_s: float = 0.0  # seconds to build the changed LP (arrays)
    update_s: float = 0.0  # seconds to push the differences into HiGHS


def warm_route_refusal(data: ModelData, options: SolveOptions) -> str:
    """Why the warm route cannot hold this program ('' when it can)."""
    if data.cvar_weight > 0:
        return "CVaR is solved by its own cut loop (optplan.solvers.cvar_cuts), which is warm round to round"
    if options.integer or int(data.whole_weeks) > 0:
        return "a whole-applicant MIP has no basis to start from"
    if data.has_scenario_targets:
        return "a bad-week target is stated on the extensive form; the warm route holds the aggregated recourse"
    if options.recourse == "extensive":
        return "the warm route holds the aggregated recourse, not the extensive form"
    return ""


class WarmModel:
    """A persistent HiGHS model for what-ifs on one instance, and an engine (module docstring).

    ``solve(data, options, deadline)``: the LP of ``data`` (any ModelData of the same
    instance, changed or not), warm when its shape is the held model's, else rebuilt;
    ``last_start`` says which. Options that change the HiGHS object itself (an option other than
    the time limit) rebuild it.
    """

    name = "highs"
    capabilities = engine_capabilities("highs")

    def __init__(self, options: SolveOptions | None = None):
        self.options = options or SolveOptions()
        self.compiled = None
        self._lp = None  # the numbers the HiGHS object holds: c, offset, bounds, A (CSC)
        self.last_start: WarmStart | None = None
        self.solves = 0

    def available(self) -> str | None:
        return HighsEngine().available()  # the same library, the same answer

    def solve(self, data: ModelData, options: SolveOptions | None = None, deadline: Deadline | None = None) -> SolveResult:
        options = options or self.options
        refusal = warm_route_refusal(data, options)
        if refusal:
            raise ValueError(f"the warm what-if route does not cover this program: {refusal}")
        deadline = deadline or Deadline(options.time_limit)
        t0 = time.perf_counter()
        sf = aggregated_standard_form(data, integer=False)
        t1 = time.perf_counter()
        reason = self._shape_differs(sf)
        if not reason and replace(options, time_limit=None) != replace(self.options, time_limit=None):
            reason = "the solver options changed"
        self.options = options
        if reason:
            self.compiled = highs_from_standard_form(sf, self.options)
            self.last_start = WarmStart(False, reason, build_s=t1 - t0, update_s=time.perf_counter() - t1)
        else:
            counts = self._update(sf)
            self.last_start = WarmStart(True, "", *counts, build_s=t1 - t0, update_s=time.perf_counter() - t1)
        self._lp = (sf.c.copy(), float(sf.offset), sf.col_lower.copy(), sf.col_upper.copy(), sf.row_lower.copy(),
                    sf.row_upper.copy(), sf.A.copy())
        self.compiled.columns, self.compiled.rows, self.compiled.layout = sf.columns, sf.rows, sf.layout
        self.solves += 1
        result = run_compiled(data, self.compiled, options, deadline, build_s=t1 - t0,
                              handoff_s=self.last_start.update_s)
        how = ("warm from the previous solve's basis" if self.last_start.warm
               else f"rebuilt: {self.last_start.reason}")
        return replace(result, status=replace(result.status, engine=f"{result.status.engine}, {how}"))

    def _shape_differs(self, sf) -> str:
        if self._lp is None:
            return "the first solve of this model"
        A = self._lp[6]
        if A.shape != sf.A.shape:
            return (f"the program's shape changed ({A.shape[0]:,} x {A.shape[1]:,} rows x columns before, "
                    f"{sf.A.shape[0]:,} x {sf.A.shape[1]:,} now: a budget, target or segment added or removed)")
        if not (np.array_equal(A.indptr, sf.A.indptr) and np.array_equal(A.indices, sf.A.indices)):
            return "the constraint matrix's pattern changed (a coefficient became zero or non-zero)"
        return ""

    def _update(self, sf) -> tuple[int, int, int, int]:
        """Push into HiGHS what differs from the held LP; returns the counts changed (costs,
        column bounds, row bounds, coefficients)."""
        highspy = import_highspy()
        h = self.compiled.highs
        c, offset, cl, cu, rl, ru, A = self._lp

        def finite(v):  # HiGHS's infinity for +-inf
            return np.clip(v, -highspy.kHighsInf, highspy.kHighsInf)

        cost = np.flatnonzero(c != sf.c)
        if cost.size:
            h.changeColsCost(int(cost.size), cost.astype(np.int32), sf.c[cost].astype(float))
        if offset != float(sf.offset):
            h.changeObjectiveOffset(float(sf.offset))
        cb = np.flatnonzero((cl != sf.col_lower) | (cu != sf.col_upper))
        if cb.size:
            h.changeColsBounds(int(cb.size), cb.astype(np.int32), finite(sf.col_lower[cb]), finite(sf.col_upper[cb]))
        rb = np.flatnonzero((rl != sf.row_lower) | (ru != sf.row_upper))
        if rb.size:
            h.changeRowsBounds(int(rb.size), rb.astype(np.int32), finite(sf.row_lower[rb]), finite(sf.row_upper[rb]))
        changed = np.flatnonzero(A.data != sf.A.data)
        if changed.size:
            col_of = np.repeat(np.arange(A.shape[1]), np.diff(A.indptr))
            for k in changed:
                h.changeCoeff(int(sf.A.indices[k]), int(col_of[k]), float(sf.A.data[k]))
        return int(cost.size), int(cb.size), int(rb.size), int(changed.size)
