"""Engines behind one protocol (``base.Engine``), one time budget and a registry.

    highs   the LP/MIP by HiGHS (exact, duals)                       highs_engine.py, highs.py, cvar_cuts.py
    glop    the LP by OR-tools GLOP (exact, duals; no integer)         glop.py
    dp      the numpy dynamic program (heuristic, no solver)          dp/
    decompose  Dantzig-Wolfe over depots, subproblems on a backend     decompose.py, backends.py
    auto    highs -> glop -> dp under one deadline                    auto.py

``solve_data(data, options, engine="auto")`` is the one entry point; ``register_engine``
adds an engine (tests register stubs). Each shipped engine's Capabilities are declared once,
here, and its class reads them (``engine_capabilities(name)``): ``auto`` plans its chain
from them without importing the engines, and ``FEATURES`` (base.py) words every refusal.
"""

from __future__ import annotations

from dataclasses import replace

from formulations.data import ModelData
from formulations.two_stage.risk import risk_objective
from optplan.errors import EngineUnavailableError, OptionError
from optplan.evaluation.evaluator import evaluate_decisions
from optplan.solvers.base import (
    FEATURES,
    Capabilities,
    Deadline,
    DeadlinePassed,
    Engine,
    SolveOptions,
    SolveResult,
    SolverStatus,
    Timings,
    clean_decisions,
    engine_names,
    engines_that,
    get_engine,
    refuse,
    register_engine,
    unregister_engine,
)


# The engine classes are imported when an engine is first chosen: GLOP loads OR-tools, the
# decomposition Dask's backends, HiGHS highspy; ``auto`` plans its chain from the
# capabilities below without loading any of them.
def _highs():
    from optplan.solvers.highs_engine import HighsEngine

    return HighsEngine()


def _glop():
    from optplan.solvers.glop import GlopEngine

    return GlopEngine()


def _dp():
    from optplan.solvers.dp import DPEngine

    return DPEngine()


def _decompose():
    from optplan.solvers.decompose import DecomposeEngine

    return DecomposeEngine()


def _auto():
    from optplan.solvers.auto import AutoEngine

    return AutoEngine()


register_engine("auto", _auto)
register_engine("highs", _highs, Capabilities(lp=True, mip=True, duals=True, time_limit=True, exact=True, risk=True,
                                                   targets=True, terminal=True,
                                weekly_supply=True, periods=True, decisions=True, applicant_pools=True))
register_engine("glop", _glop, Capabilities(lp=True, mip=False, duals=True, time_limit=True, exact=True, risk=True,
                                                  targets=True, terminal=True,
                                weekly_supply=True, periods=True, decisions=True, applicant_pools=True))
register_engine("dp", _dp, Capabilities(lp=False, mip=False, duals=False, time_limit=True, exact=False,
                                        weekly_supply=True, country_budgets=False))
register_engine("decompose", _decompose, Capabilities(lp=True, mip=False, duals=True, time_limit=True, exact=True,
                                                      weekly_supply=True, periods=True, decisions=True, applicant_pools=True))


def solve_data(data: ModelData, options: SolveOptions | None = None, engine: str | Engine = "auto",
               deadline: Deadline | None = None) -> SolveResult:
    """Solve ``data`` with ``engine`` (a registered name or an Engine) within ``options.time_limit``."""
    options = options or SolveOptions()
    eng = get_engine(engine) if isinstance(engine, str) else engine
    deadline = deadline or Deadline(options.time_limit)
    if (options.cvar_weight, options.cvar_alpha) != (data.cvar_weight, data.cvar_alpha):
        data = replace(data, cvar_weight=float(options.cvar_weight), cvar_alpha=float(options.cvar_alpha))
    if data.has_scenario_targets and options.formulation == "auto":  # bad-week rows need every scenario
        options = replace(options, formulation="extensive")
    _refuse_what_the_engine_cannot_state(data, options, eng, getattr(eng, "name", engine))
    if not isinstance(engine, str) or engine != "auto":
        why_not = eng.available()
        if why_not is not None:
            raise EngineUnavailableError(why_not)
    return _plan_cost_as_objective(data, eng.solve(data, options, deadline))


def _plan_cost_as_objective(data: ModelData, result: SolveResult) -> SolveResult:
    """A plan that is feasible but not optimal (a MIP stopped by its gap or the time limit) may
    come with recourse columns that are not optimal for its own first stage, so the solver's
    objective can exceed what the plan costs. The plan's cost is its first stage with the optimal
    recourse (the evaluator's kernel; with CVaR, (1 - lambda) E + lambda CVaR), an upper bound as
    valid as the solver's and never above it: the status reports it, and says so. Not with
    targets (their rows bind the recourse, which the closed form ignores) or a violated row."""
    st = result.status
    if (st.optimal or not st.has_solution or st.objective is None or result.decisions is None
            or data.has_targets or data.has_scenario_targets):
        return result
    decisions = clean_decisions(data, result.decisions)
    ev = evaluate_decisions(data, decisions)
    result.extra["evaluation"] = (decisions, ev)  # Plan.from_result reads it: the evaluator runs once per solve
    value = risk_objective(ev.expected_cost, ev.kpis["cvar_cost"], data.cvar_weight)
    if ev.violations or not value < st.objective - 1e-9 * max(1.0, abs(st.objective)):
        return result
    note = (f"objective: the plan's first stage with its recourse re-optimised (the solver's incumbent: "
            f"{st.objective:,.2f} {data.currency})")
    return replace(result, status=replace(st, objective=float(value), message="; ".join(m for m in (st.message, note) if m)))


def _refuse_what_the_engine_cannot_state(data: ModelData, options: SolveOptions, eng, name) -> None:
    """CVaR and targets need an engine that states them (``auto`` skips the others) and, for
    targets, the aggregated recourse; OptionError otherwise."""
    picky = name != "auto"
    if picky:
        refuse(data, options, eng.capabilities, name)
    if data.has_week_profile and (options.recourse == "extensive" or (
            getattr(eng, "name", name) == "glop" and options.cvar_weight > 0)):
        raise OptionError("formulation", "aggregated or auto for long-lead periods with their weekly demand (their "
                          "week-by-week recourse is stated on the aggregated recourse only; no CVaR by the extensive "
                          "form, no bad-week targets)", options.formulation)
    if data.has_scenario_targets:
        if data.has_targets:
            raise OptionError("targets", "expected-value targets or a bad-week service target, not both yet (the "
                              "first are rows of the aggregated recourse, the second of the extensive form)",
                              "both")
        if options.recourse != "extensive":
            raise OptionError("formulation", "extensive or auto with a bad-week service target (it needs every "
                              "scenario's unserved blocks)", options.formulation)
    if not data.has_targets:
        return
    if options.recourse != "aggregated":
        raise OptionError("formulation", "aggregated or auto with service or utilisation targets (they are rows "
                          "of the aggregated recourse; with CVaR too, HiGHS adds its cuts there)", options.formulation)


__all__ = [
    "Capabilities", "Deadline", "DeadlinePassed", "Engine", "SolveOptions", "SolveResult", "SolverStatus", "Timings",
    "FEATURES", "engine_names", "engines_that", "get_engine", "register_engine", "solve_data", "unregister_engine",
]
