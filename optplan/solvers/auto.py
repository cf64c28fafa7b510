"""``auto``: a chain of engines under one wall-clock budget.

Each engine in the chain gets what is left of the one ``Deadline``. The chain moves on to
the next engine only when the current one is not installed, fails (SolverError), or stops
without any plan (NoSolutionError) while time is left; it never moves on from an
infeasible instance (InfeasibleError: no engine could do better). An engine that cannot
honour the options (GLOP and integer applicants) is skipped, and so is an exact engine
after one ran out of time (GLOP would not prove in less time what HiGHS could not; the DP
has a quick first plan). With a time limit, exact engines followed by a heuristic run
under a budget that ends RESERVE_SHARE (10 %) of the limit early, so that the heuristic has
time for a first plan if they have none. The plan's status names the
engine that made it and, in ``fallback``, why the ones before it did not.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from formulations.data import ModelData
from optplan.errors import EngineUnavailableError, NoSolutionError, SolverError
from optplan.solvers.base import (
    ENGINE_LOGGER,
    Capabilities,
    Deadline,
    SolveOptions,
    SolveResult,
    engine_capabilities,
    engine_names,
    get_engine,
    refusal,
)

log = logging.getLogger(ENGINE_LOGGER)

#: The default chain: the exact LP/MIP by HiGHS, the exact LP by GLOP when HiGHS is missing
#: or fails, then the DP heuristic.
DEFAULT_CHAIN = ("highs", "glop", "dp")
#: Share of a time limit that exact engines leave for a heuristic later in the chain (the DP's
#: first plan: one DP per depot, about 0.05-0.1 s per depot-year on this machine).
RESERVE_SHARE = 0.1
#: From this many depot-week-scenarios on, the default chain tries the depot decomposition first:
#: one LP of that size is beyond HiGHS in minutes (1000 x 104 x 100: 20.3 million columns, no
#: feasible plan after 741 s; the decomposition's plan, optimal, in 435 s, docs/performance.md),
#: while 500 x 104 x 50 (2.6 million) solves in one LP within its 5-minute target.
DECOMPOSE_SIZE = 5_000_000


class AutoEngine:
    """HiGHS, then GLOP, then the DP, under one time budget (see the module docstring)."""

    name = "auto"
    capabilities = Capabilities(lp=True, mip=True, duals=True, time_limit=True, exact=False)

    def __init__(self, chain: tuple[str, ...] = DEFAULT_CHAIN, engines: dict | None = None,
                 reserve_share: float = RESERVE_SHARE):
        self.chain = chain
        self.engines = engines or {}
        self.reserve_share = reserve_share

    def available(self) -> str | None:
        return None

    def _capabilities(self, name: str):
        return self.engines[name].capabilities if name in self.engines else engine_capabilities(name)

    def _heuristic_after(self, name: str, chain: tuple[str, ...] | None = None) -> bool:
        chain = chain or self.chain
        later = chain[chain.index(name) + 1:]
        return any(not self._capabilities(n).exact for n in later)

    def chain_for(self, data: ModelData, options: SolveOptions) -> tuple[tuple[str, ...], str]:
        """The chain for this instance, and why it differs from the default (""): at
        DECOMPOSE_SIZE depot-week-scenarios and more, the depot decomposition first, when it can
        state the instance and the options (an LP: no integer applicants, no CVaR)."""
        D, _, T, S = data.shape
        size = D * T * S
        if (self.chain != DEFAULT_CHAIN or size < DECOMPOSE_SIZE or options.integer or "decompose" in self.chain
                or "decompose" not in engine_names() or refusal(data, options, self._capabilities("decompose"))):
            return self.chain, ""
        why = (f"decompose first: {D} depots x {T} weeks x {S} scenarios = {size:,} depot-week-scenarios (at least "
               f"{DECOMPOSE_SIZE:,}) make one LP too large for HiGHS in minutes; the depots are solved as subproblems")
        return ("decompose", *self.chain), why

    def _engine(self, name: str):
        return self.engines[name] if name in self.engines else get_engine(name)

    def solve(self, data: ModelData, options: SolveOptions, deadline: Deadline) -> SolveResult:
        reasons: list[str] = []
        last: Exception | None = None
        out_of_time = False
        chain, chosen = self.chain_for(data, options)
        if chosen:
            log.info("auto: %s", chosen)
        for name in chain:
            engine = self._engine(name)
            missing = refusal(data, options, engine.capabilities)
            if missing is not None:  # the one table of what an engine must state (base.FEATURES)
                reasons.append(f"{name} skipped (cannot state {missing[1]})")
                continue
            if data.has_week_profile and options.cvar_weight > 0 and name == "glop":
                reasons.append(f"{name} skipped (states CVaR by the extensive form; long-lead weekly demand needs the "
                               "aggregated recourse)")
                continue
            if options.integer and not engine.capabilities.mip and engine.capabilities.lp:
                reasons.append(f"{name} skipped (no integer applicants)")
                continue
            if out_of_time and engine.capabilities.exact:
                # an exact engine cannot be expected to prove in less time what the one before
                # could not: after a time-out only a heuristic with a quick first plan is tried
                reasons.append(f"{name} skipped (exact, and the engine before ran out of time)")
                continue
            why_not = engine.available()
            if why_not is not None:
                reasons.append(f"{name} is not available ({why_not})")
                log.warning("%s is not available (%s); trying the next engine", name, why_not)
                continue
            if reasons and deadline.expired():
                break
            budget = deadline
            if engine.capabilities.exact and deadline.seconds is not None and self._heuristic_after(name, chain):
                # keep a share of the budget for the heuristic's first plan, in case this engine has none
                budget = deadline.shortened(self.reserve_share * deadline.seconds)
            try:
                result = engine.solve(data, options, budget)
            except EngineUnavailableError as exc:
                reasons.append(f"{name} is not available ({exc})")
                last = exc
                continue
            except (SolverError, NoSolutionError) as exc:  # never InfeasibleError: it propagates
                reasons.append(f"{name} gave no plan ({exc})")
                last = exc
                out_of_time = out_of_time or isinstance(exc, NoSolutionError)
                log.warning("%s gave no plan (%s); trying the next engine", name, exc)
                continue
            if reasons:
                result.status = replace(result.status, fallback="; ".join(reasons))
            if chosen:  # the chain itself was chosen by size: say so beside the engine's own message
                result.status = replace(result.status, message="; ".join(m for m in (f"auto: {chosen}",
                                                                                     result.status.message) if m))
            return result
        detail = "; ".join(reasons) or "no engine in the chain"
        if deadline.expired():
            raise NoSolutionError(f"no plan within the time limit of {deadline.seconds:g} s: {detail}",
                                  getattr(last, "status", None))
        if isinstance(last, NoSolutionError):
            raise NoSolutionError(f"no plan: {detail}", last.status)
        raise SolverError(f"no engine could make a plan: {detail}", getattr(last, "status", None))
