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

A change of budget caps alone (the total, weekly, regional or country caps, the rows staying
the same) skips even the build: the new right-hand sides come from
``formulations.two_stage.matrix.budget_caps`` (the function ``budget_rows`` states them
with) and only the changed rows are pushed.

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
from dataclasses import dataclass, fields, replace

import numpy as np

from formulations.data import ModelData
from formulations.two_stage.layout import Layout
from formulations.two_stage.matrix import aggregated_standard_form, budget_caps
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
        self._data = None  # the ModelData those numbers are of
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
        same_options = replace(options, time_limit=None) == replace(self.options, time_limit=None)
        self.options = options
        t0 = time.perf_counter()
        if same_options and self._lp is not None and _only_budget_caps_differ(self._data, data):
            pushed = self._push_budget_caps(data)
            if pushed is not None:
                self.last_start = WarmStart(True, "", 0, 0, pushed, 0, build_s=0.0, update_s=time.perf_counter() - t0)
                return self._run(data, options, deadline)
        sf = aggregated_standard_form(data, integer=False)
        t1 = time.perf_counter()
        reason = self._shape_differs(sf)
        if not reason and not same_options:
            reason = "the solver options changed"
        if reason:
            self.compiled = highs_from_standard_form(sf, self.options)
            self.last_start = WarmStart(False, reason, build_s=t1 - t0, update_s=time.perf_counter() - t1)
        else:
            counts = self._update(sf)
            self.last_start = WarmStart(True, "", *counts, build_s=t1 - t0, update_s=time.perf_counter() - t1)
        self._lp = (sf.c.copy(), float(sf.offset), sf.col_lower.copy(), sf.col_upper.copy(), sf.row_lower.copy(),
                    sf.row_upper.copy(), sf.A.copy())
        self.compiled.columns, self.compiled.rows, self.compiled.layout = sf.columns, sf.rows, sf.layout
        return self._run(data, options, deadline)

    def _run(self, data: ModelData, options: SolveOptions, deadline: Deadline) -> SolveResult:
        self._data = data
        self.solves += 1
        result = run_compiled(data, self.compiled, options, deadline, build_s=self.last_start.build_s,
                              handoff_s=self.last_start.update_s)
        how = ("warm from the previous solve's basis" if self.last_start.warm
               else f"rebuilt: {self.last_start.reason}")
        return replace(result, status=replace(result.status, engine=f"{result.status.engine}, {how}"))

    def _push_budget_caps(self, data: ModelData) -> int | None:
        """The budget rows' new upper bounds pushed into HiGHS (the count changed), or None when
        the rows themselves would change (a cap added or removed: the full route)."""
        layout = Layout(data)
        if layout.budget_rows() != self.compiled.layout.budget_rows():
            return None
        highspy = import_highspy()
        row_upper = self._lp[5]
        changed = []
        for family, caps in budget_caps(data, layout).items():
            rows = np.arange(row_upper.size)[self.compiled.rows[family]]
            differ = rows[row_upper[rows] != caps]
            row_upper[differ] = caps[row_upper[rows] != caps]
            changed.append(differ)
        idx = np.concatenate(changed) if changed else np.zeros(0, np.int64)
        if idx.size:
            lower = np.clip(self._lp[4][idx], -highspy.kHighsInf, highspy.kHighsInf)
            upper = np.clip(row_upper[idx], -highspy.kHighsInf, highspy.kHighsInf)
            self.compiled.highs.changeRowsBounds(int(idx.size), idx.astype(np.int32), lower, upper)
        self.compiled.layout = layout
        return int(idx.size)

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


#: ModelData fields a change of budget caps alone touches.
BUDGET_FIELDS = ("budget_total", "budget_weekly", "budget_region", "budget_country")


def _same(a, b) -> bool:
    """Equal values (arrays elementwise, NaN equal to NaN; mappings and sequences item by item)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and a.dtype == b.dtype and bool(
            np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    try:
        return bool(a == b) or (a != a and b != b)  # noqa: PLR0124 - NaN equals NaN here
    except (TypeError, ValueError):
        return a is b


def _only_budget_caps_differ(old: ModelData | None, new: ModelData) -> bool:
    """True when ``new`` is ``old`` with at most its budget caps changed."""
    if old is None:
        return False
    return all(_same(getattr(old, f.name), getattr(new, f.name)) for f in fields(new) if f.name not in BUDGET_FIELDS)
