"""The Python API for planners: load, solve, evaluate."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from optplan.dp import DPOptions, solve_dp
from optplan.errors import InstanceError, NoSolutionError, Problem, SolverError
from optplan.evaluate import Evaluation, evaluate_decisions
from optplan.instance import Instance
from optplan.plan import Plan
from optplan.solve import SolveOptions, SolverStatus, Timings, solve_model_data

log = logging.getLogger("optplan")


ENGINES = ("auto", "highs", "dp")


def solve(instance: Instance, engine: str = "auto", dp_options: DPOptions | None = None, **options) -> Plan:
    """Solve the two-stage program of ``instance`` and return the Plan.

    engine: ``highs`` (the LP/MIP by HiGHS), ``dp`` (the numpy dynamic-programming engine,
    optplan.dp; no solver needed) or ``auto`` (HiGHS, falling back to the DP when highspy
    cannot be imported, HiGHS fails, or the time limit passes with no feasible plan; the
    plan's ``status.engine`` and ``status.message`` say so, with HiGHS's bound and the gap
    to it when one exists). Options (see ``SolveOptions``): time_limit, mip_rel_gap,
    threads, method, presolve, integer, seed, log, highs_options. Raises
    ``InfeasibleError`` (naming the constraint family; never falls back, the DP could not
    do better), ``NoSolutionError`` or ``SolverError`` (engine ``highs`` only); a feasible
    but unproven HiGHS plan is returned with a RuntimeWarning and
    ``plan.status.optimal == False``.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    opts = SolveOptions(**options)
    data = instance.model_data(integer_applicants=opts.integer)
    name, start = instance.manifest.name, instance.manifest.horizon.start_date
    if engine == "dp":
        return _dp_plan(data, dp_options, name, start, reason=None, highs_status=None)
    try:
        raw = solve_model_data(data, opts)
    except (SolverError, NoSolutionError) as exc:
        if engine == "highs":
            raise
        log.warning("HiGHS gave no plan (%s); falling back to the DP engine", exc)
        return _dp_plan(data, dp_options, name, start, reason=str(exc), highs_status=getattr(exc, "status", None))
    return Plan.from_solution(raw, name, start)


def _dp_plan(data, dp_options, name, start, reason, highs_status) -> Plan:
    """Run the DP engine and wrap its decisions in a Plan with an honest status."""
    from pyomo.contrib.solver.common.results import SolutionStatus, TerminationCondition

    result = solve_dp(data, dp_options)
    bound = highs_status.bound if highs_status is not None else None
    parts = []
    if reason:
        parts.append(f"fallback to the DP engine because {reason}")
    parts.append(
        f"DP estimate {result.dp_value:,.2f} {data.currency}, evaluated {result.evaluated:,.2f} {data.currency} "
        f"(approximation error {result.approximation_error:+.2%}; grid {result.grid_points} states/week, "
        f"grid change {result.grid_change:.1e})"
    )
    status = SolverStatus(
        termination=TerminationCondition.convergenceCriteriaSatisfied,
        solution=SolutionStatus.feasible,
        engine=f"dp (numpy, {result.grid_points} states/week)",
        highs_status=highs_status.highs_status if highs_status is not None else "not run",
        objective=result.evaluated,
        bound=bound,
        message="; ".join(parts),
    )
    D, C, T, S = data.shape
    timings = Timings(build_s=0.0, handoff_s=0.0, solve_s=result.seconds, extract_s=0.0)
    size = {"depots": D, "weeks": T, "scenarios": S, "states_per_week": result.grid_points}
    return Plan.from_decisions(data, result.decisions, status, timings, size, name, start)


def scenario_arrays(instance: Instance, scenarios: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Demand (D, T, S) and probabilities (S,) from a table shaped like demand.csv, with an
    optional 'probability' column (constant per scenario; default: equal weights)."""
    problems = []
    need = {"depot", "week", "scenario", "blocks"}
    if missing := sorted(need - set(scenarios.columns)):
        raise InstanceError([Problem("scenarios", 1, m, f"a column named '{m}'", f"columns {list(scenarios.columns)}") for m in missing])
    d_idx = pd.Index(instance.depots)
    names = pd.unique(scenarios["scenario"])
    s_idx = pd.Index(names)
    D, T, S = len(d_idx), instance.n_weeks, len(names)
    di = d_idx.get_indexer(scenarios["depot"])
    wk = scenarios["week"].to_numpy()
    if (di < 0).any():
        problems.append(Problem("scenarios", None, "depot", "depots of the instance", f"{scenarios['depot'][di < 0].iloc[0]!r}"))
    if ((wk < 1) | (wk > T)).any():
        problems.append(Problem("scenarios", None, "week", f"weeks 1..{T}", "weeks outside"))
    if len(scenarios) != D * T * S or scenarios.duplicated(["depot", "week", "scenario"]).any():
        problems.append(Problem("scenarios", None, None, f"one row per depot, week and scenario ({D * T * S})", f"{len(scenarios)} rows"))
    if problems:
        raise InstanceError(problems)
    demand = np.zeros((D, T, S))
    demand[di, wk - 1, s_idx.get_indexer(scenarios["scenario"])] = scenarios["blocks"].to_numpy(float)
    if "probability" in scenarios.columns:
        prob = scenarios.groupby("scenario", sort=False)["probability"].first().reindex(names).to_numpy(float)
    else:
        prob = np.full(S, 1.0 / S)
    return demand, prob


def evaluate(plan: Plan, instance: Instance, scenarios: pd.DataFrame | None = None) -> Evaluation:
    """Expected cost and KPIs of ``plan`` on ``instance``'s scenarios, or on ``scenarios``
    (a table like demand.csv, optionally with a 'probability' column), computed without
    Pyomo or a solver (see optplan.evaluate)."""
    data = instance.model_data()
    if (plan.data.depots, plan.data.channels, plan.data.n_weeks) != (data.depots, data.channels, data.n_weeks):
        raise ValueError("the plan was made for other depots, channels or weeks than this instance has")
    if scenarios is None:
        return evaluate_decisions(data, plan.decisions)
    demand, prob = scenario_arrays(instance, scenarios)
    return evaluate_decisions(data, plan.decisions, demand, prob)
