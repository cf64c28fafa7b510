"""Dynamic-programming engine: a plan without an LP solver (numpy only).

The design (docs/dp.md has the full argument):

1. **Depots are coupled only through budgets.** Budgets are priced: spend at depot d in
   week t costs (1 + lam + lam_r(d) + mu_t) currency per currency unit, where lam prices the
   total budget, lam_r a regional budget and mu_t a weekly one. For given prices every
   depot is an independent problem.
2. **Per depot, a DP over weeks with the driver pool as state.** The funnel's lags are
   handled by a *relaxation in arrival time*: instead of applicants of week tau (who arrive
   spread over tau+k by the yield kernel) the DP buys *arrivals* in week t, channel c, at
   cost_c / conversion_c currency per new driver, at most applicant_cap_c x (share of the
   kernel that can land by week t) drivers per week. Every plan of the LP maps to a
   relaxed plan of no greater cost, so for one scenario set the relaxed optimum is a lower
   bound; for single-lag kernels the relaxation is exact. State: a = active drivers at
   the end of the previous week (drivers), on a grid per week spanning the reachable,
   useful range; decision: arrivals n (drivers/week), taken so that the next state falls
   on a grid point (so only the "recruit nothing" and "recruit at the cap" moves
   interpolate); within a week the incentive spend is chosen exactly (segments by rate).
3. **Realization.** The DP's arrival stream per channel becomes applicants per week by a
   bounded non-negative deconvolution of the yield kernel (projected gradient started from
   the shift by the channel's modal lag); arrivals over the onboarding cap are trimmed.
   A polish (``polish.Polisher``, ``polish.global_polish``) then improves the plan by exact 1-D searches
   that keep every budget.
4. **Prices.** The total and regional budget prices are found by bisection on the
   realized spend; the two plans that bracket the budget are mixed (the problem is convex,
   so a convex combination of feasible plans is feasible and no worse than their mix) so
   that the budget is used exactly. Weekly budgets get prices by Gauss-Seidel bisections;
   any remaining excess is moved a week later or scaled away.

**Time limit.** The engine keeps an incumbent: the first pass (every depot's DP at price 1,
   realized and repaired to fit every budget), then the price search's plan, then the
   polished plan, each kept only if the exact evaluator finds it cheaper. When the deadline
   passes it returns the incumbent with termination ``maxTimeLimit``; with no incumbent yet it
   raises NoSolutionError.

Subsystems: ``depot`` (per-depot data), ``recursion`` (the DP over weeks), ``realize``
(arrivals to applicants), ``prices`` (budget prices), ``polish``, ``repair``.

The reported error has two parts: ``dp_value`` (the DP's own estimate of the expected
cost, relaxation + grid) against ``evaluated`` (the exact evaluator on the realized plan).
Loops run over weeks, depots and price iterations only; states, decisions and scenarios
are numpy arrays.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
from pyomo.contrib.solver.common.results import SolutionStatus, TerminationCondition

from formulations.data import Decisions, ModelData
from optplan.errors import InfeasibleError, OptionError
from optplan.evaluation.evaluator import check_feasibility, evaluate_decisions
from optplan.solvers.base import (
    ENGINE_LOGGER,
    Deadline,
    DeadlinePassed,
    SolveOptions,
    SolveResult,
    SolverStatus,
    Timings,
    engine_capabilities,
    out_of_time,
    refuse,
)
from optplan.solvers.diagnose import infeasibility_message, infeasible_rows
from optplan.solvers.dp.depot import DepotModel
from optplan.solvers.dp.polish import global_polish
from optplan.solvers.dp.prices import PriceSearch
from optplan.solvers.dp.recursion import DepotPolicy, solve_depot, solve_depots
from optplan.solvers.dp.repair import repair_budgets

log = logging.getLogger(ENGINE_LOGGER)

#: Grid refinement stops when the DP value changes by less than this share between grids.
GRID_RTOL = 2e-3

__all__ = ["DPEngine", "DPOptions", "DPResult", "DepotModel", "DepotPolicy", "solve_dp"]


@dataclass(frozen=True)
class DPOptions:
    """Options of the DP engine.

    grid_points: states per week (None: adaptive, doubling from ``min_grid_points`` until
        the DP value changes by less than ``grid_rtol`` or ``max_grid_points`` is reached).
    polish: improve the realized plan by exact 1-D searches (see polish.Polisher); off: the DP's
        realized and repaired plan as is.
    """

    grid_points: int | None = None
    min_grid_points: int = 101
    max_grid_points: int = 801
    grid_rtol: float = GRID_RTOL
    price_iterations: int = 60
    polish: bool = True

    def __post_init__(self):
        if self.grid_points is not None and self.grid_points < 2:
            raise OptionError("grid_points", "at least 2 states per week", self.grid_points)
        if not 2 <= self.min_grid_points <= self.max_grid_points:
            raise OptionError("min_grid_points", "2 <= min_grid_points <= max_grid_points", self.min_grid_points)


@dataclass
class DPResult:
    """What the DP engine returns besides the plan's decisions (money in the data's currency)."""

    decisions: Decisions
    dp_value: float | None  # DP's own estimate of the expected cost at the final prices (None: not reached)
    evaluated: float  # exact evaluator's expected cost of the plan returned
    grid_points: int
    grid_change: float  # relative change of the DP value between the last two grids (nan: not measured)
    prices: dict[str, float | list[float]]
    stage: str  # the last stage whose plan was kept: "first pass", "priced", "polished"
    complete: bool  # False: the deadline passed and the incumbent was returned
    policies: dict[str, DepotPolicy] = field(default_factory=dict)
    seconds: float = 0.0
    iterations: int = 0

    @property
    def approximation_error(self) -> float | None:
        """Relative gap between the evaluated cost and the DP's own estimate (the error of the
        arrival-time relaxation, the grid and the repairs together)."""
        if self.dp_value is None:
            return None
        return (self.evaluated - self.dp_value) / max(1.0, abs(self.evaluated))


def _refuse_infeasible(data: ModelData) -> None:
    rows = infeasible_rows(data)
    if rows:
        raise InfeasibleError(infeasibility_message(["onboarding_cap"], "dp: pipeline exceeds the onboarding cap", rows),
                              ["onboarding_cap"], None, rows)


def solve_dp(data: ModelData, options: DPOptions | None = None, policies: bool = False,
             deadline: Deadline | None = None) -> DPResult:
    """Plan with the DP engine within ``deadline``: decisions that meet every first-stage
    constraint, the DP's own value and the exact evaluator's expected cost of them."""
    options = options or DPOptions()
    deadline = deadline or Deadline(None)
    t0 = time.perf_counter()
    # what the DP cannot state (its budget repair holds a depot to one capped group; its recursion
    # steps week by week): the one table of refusals, also when solve_dp is called directly
    refuse(data, SolveOptions(), engine_capabilities("dp"), "dp")
    _refuse_infeasible(data)
    if data.integer_applicants:
        log.warning("the DP engine plans fractional applicants; --integer is ignored by it")
    search = PriceSearch(data, options, deadline)
    best: dict = {}

    def consider(x, z, stage: str) -> None:
        x, z, notes = repair_budgets(data, x, z)
        for note in notes:
            log.info("DP repair (%s): %s", stage, note)
        cost = evaluate_decisions(data, Decisions(x, z)).expected_cost
        if not best or cost <= best["cost"]:
            best.update(x=x, z=z, cost=cost, stage=stage)
        log.info("DP %s: expected cost %.2f %s (kept: %s)", stage, cost, data.currency, best["stage"])

    n = options.grid_points or options.min_grid_points
    change, dp_value, lam, complete = float("nan"), None, 0.0, False
    try:
        # first pass: every depot at price 1 (no budget price), realized, repaired to fit
        search.n_points = n
        x, z, _ = search.allocate(0.0)
        consider(x, z, "first pass")
        if options.grid_points is None:  # adaptive grid: double until doubling changes the DP value (price 1) little
            everyone = list(range(len(search.depots)))
            ones = np.ones(data.n_weeks)
            value = sum(sol.value for sol in solve_depots(search.batch(everyone, n), ones))
            while 2 * n - 1 <= options.max_grid_points:
                deadline.check()
                finer = sum(sol.value for sol in solve_depots(search.batch(everyone, 2 * n - 1), ones))
                change = abs(finer - value) / max(1.0, abs(finer))
                if change <= options.grid_rtol:
                    break
                n, value = 2 * n - 1, finer
        log.info("DP grid: %d states per week (value change between the last two grids %.2e)", n, change)
        search.n_points = n
        (x, z, dp_value), lam = search.run()
        log.info("DP: total-budget price %.4f per %s; %d depot DPs", lam, data.currency, search.calls)
        consider(x, z, "priced")
        if options.polish:
            xp, zp, finished = global_polish(data, search.depots, best["x"], best["z"], deadline=deadline)
            consider(xp, zp, "polished")
            if not finished:
                raise DeadlinePassed
        complete = True
    except DeadlinePassed:
        if not best:
            raise out_of_time("dp (numpy)", f"the time limit ({deadline.seconds:g} s) passed before the DP finished "
                              "its first pass", "time limit before the first pass") from None
        log.info("DP: the time limit passed; returning the %s plan", best["stage"])
    x, z = best["x"], best["z"]
    violations = check_feasibility(data, Decisions(x, z))
    if violations:  # pragma: no cover - the repairs guarantee feasibility; a bug if reached
        raise RuntimeError(f"DP plan violates {violations}")
    result = DPResult(
        decisions=Decisions(x, z),
        dp_value=dp_value,
        evaluated=best["cost"],
        grid_points=n,
        grid_change=change,
        prices={"total": lam, "weekly": [float(m) for m in search.mu]},
        stage=best["stage"],
        complete=complete,
        seconds=time.perf_counter() - t0,
        iterations=search.calls,
    )
    if policies:
        price = 1.0 + lam + search.mu
        for dep in search.depots:
            result.policies[data.depots[dep.d]] = solve_depot(dep, price, n, keep_policy=True).policy
    return result


class DPEngine:
    """The numpy DP: no LP solver needed, honours the time limit with its best plan so far;
    a heuristic (no proven bound, no duals, fractional applicants)."""

    name = "dp"
    capabilities = engine_capabilities("dp")  # declared once, in the registry (optplan/solvers/__init__.py)

    def __init__(self, options: DPOptions | None = None):
        self.options = options

    def available(self) -> str | None:
        return None

    def solve(self, data: ModelData, options: SolveOptions, deadline: Deadline) -> SolveResult:
        result = solve_dp(data, self.options, deadline=deadline)
        parts = []
        if result.dp_value is not None:
            parts.append(
                f"DP estimate {result.dp_value:,.2f} {data.currency}, evaluated {result.evaluated:,.2f} {data.currency} "
                f"(approximation error {result.approximation_error:+.2%}; grid {result.grid_points} states/week, "
                f"grid change {result.grid_change:.1e})")
        else:
            parts.append(f"evaluated {result.evaluated:,.2f} {data.currency}")
        parts.append(f"plan from the DP's {result.stage} stage")
        term = TerminationCondition.convergenceCriteriaSatisfied if result.complete else TerminationCondition.maxTimeLimit
        native = "finished" if result.complete else f"time limit reached after the {result.stage} stage"
        status = SolverStatus(term, SolutionStatus.feasible, f"dp (numpy, {result.grid_points} states/week)",
                              native, result.evaluated, None, "; ".join(parts))
        D, C, T, S = data.shape
        return SolveResult(
            data, status, result.decisions, Timings(solve_s=result.seconds),
            {"depots": D, "weeks": T, "scenarios": S, "states_per_week": result.grid_points},
            extra={"dp": result},
        )
