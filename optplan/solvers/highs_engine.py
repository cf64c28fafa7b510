"""The HiGHS engine: the LP/MIP by HiGHS behind the engine protocol (optplan.solvers.base).

The engine builds the model (arrays or Pyomo, ``standard_form.build_standard_form``), hands
it to HiGHS and runs it (``highs.py``: hand-off, run, status mapping, infeasibility
diagnosis); with CVaR on the aggregated recourse it runs the risk-envelope cut loop
(``cvar_cuts.py``), which uses the same HiGHS primitives. Kept apart from highs.py so that
the cut loop and the engine both sit above those primitives (no import cycle).
"""

from __future__ import annotations

import logging
import time

from formulations.data import ModelData
from optplan.errors import EngineUnavailableError
from optplan.solvers.base import ENGINE_LOGGER, Deadline, SolveOptions, SolveResult, engine_capabilities, out_of_time
from optplan.solvers.cvar_cuts import solve_by_cuts
from optplan.solvers.highs import highs_from_standard_form, import_highspy, run_compiled
from optplan.solvers.standard_form import build_standard_form

log = logging.getLogger(ENGINE_LOGGER)


class HighsEngine:
    """The LP/MIP by HiGHS: exact, with duals (LP), honours the time limit (build included)."""

    name = "highs"
    capabilities = engine_capabilities("highs")  # declared once, in the registry (optplan/solvers/__init__.py)

    def available(self) -> str | None:
        try:
            import_highspy()
        except EngineUnavailableError as exc:
            return str(exc)
        return None

    def solve(self, data: ModelData, options: SolveOptions, deadline: Deadline) -> SolveResult:
        import_highspy()
        if data.cvar_weight > 0 and options.recourse == "aggregated":
            return solve_by_cuts(data, options, deadline)
        sf, build_s, compile_s = build_standard_form(data, options, deadline, "HiGHS")
        t1 = time.perf_counter()
        compiled = highs_from_standard_form(sf, options)
        del sf
        handoff_s = compile_s + time.perf_counter() - t1
        log.info("built in %.2f s, handed off in %.2f s: %d variables, %d constraints, %d nonzeros; HiGHS is solving%s",
                 build_s, handoff_s, compiled.n_cols, compiled.n_rows, compiled.n_nonzeros,
                 "" if options.log else " (--log shows its progress)")
        if deadline.expired():
            raise out_of_time("highs", f"the time limit passed while building the model ({build_s + handoff_s:.1f} s) "
                                       "before HiGHS could run", "not run: time budget spent building the model")
        return run_compiled(data, compiled, options, deadline, build_s=build_s, handoff_s=handoff_s)
