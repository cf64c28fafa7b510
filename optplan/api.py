"""The Python API for planners: load, solve, evaluate."""

from __future__ import annotations

import numpy as np
import pandas as pd

from optplan.errors import InstanceError, Problem
from optplan.evaluate import Evaluation, evaluate_decisions
from optplan.instance import Instance
from optplan.plan import Plan
from optplan.solve import SolveOptions, solve_model_data


def solve(instance: Instance, **options) -> Plan:
    """Solve the two-stage program of ``instance`` with HiGHS and return the Plan.

    Options (see ``SolveOptions``): time_limit, mip_rel_gap, threads, method, presolve,
    integer, seed, log, highs_options. Raises ``InfeasibleError`` (naming the constraint
    family), ``NoSolutionError`` (e.g. a time limit with no feasible plan) or
    ``SolverError``; a feasible but unproven plan is returned with a RuntimeWarning and
    ``plan.status.optimal == False``.
    """
    opts = SolveOptions(**options)
    data = instance.model_data(integer_applicants=opts.integer)
    raw = solve_model_data(data, opts)
    return Plan.from_solution(raw, instance.manifest.name, instance.manifest.horizon.start_date)


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
