"""Orders (issue #29 part 2): the plan's first weeks as whole numbers a recruiting team or an ad
system can act on, within every budget, at the least extra expected cost.

Method: first the plan rounded (below), kept when it is provably near the best whole orders;
else the MIP on those weeks with the rest fixed. The plan's expected cost is a lower bound on
the cost of any whole orders that leave the rest of the plan as it is, so orders whose
rounding cost is at most ``ROUNDING_ACCEPT`` (0.05 %) of it are within 0.05 % of the best
orders, certified without a solver: on 50 depots x 52 weeks x 20 scenarios the rounding took
0.4 s at 0.024 % where the MIP took 12.7 s for 0.021 % (its last 0.003 % cost 10 s of
sub-MIP heuristics), so the command stays a second's work (issue #34 part 4). Rounded orders
that cost more, or need more than ``ROUNDING_MAX_REPAIRS`` repairs (30 depots x 26 weeks
needed 65 repairs and 6 s), go to the MIP.

The MIP: The plan's applicants and incentive spend
of weeks >= W+1 are fixed at the plan's values (as the planner's decisions are:
formulations/two_stage/decisions.py); applicants of weeks 1..W are whole numbers (integer
columns, ``ModelData.whole_weeks``); every row of the program stays (budgets, onboarding caps,
targets, the planner's decisions), and HiGHS minimises the same objective to a relative gap of
``ORDERS_GAP`` (0.01 %: on a 50-depot, 26-week instance the MIP then stops at its root node in
about 4 s, at 1e-5 it branched for more than ten minutes; the rounding cost there is 0.02 %), within the
caller's time limit (else ``ORDERS_TIME_LIMIT``). Each depot-week's incentive spend is then rounded down to whole currency units
(never above a budget; less than one unit per depot and week: integer spend columns made the
MIP three to four times slower for nothing a planner would see). So the orders are the cheapest whole
applicants that leave the rest of the plan as it is, and

    rounding cost = E[cost of the plan with the orders] - E[cost of the plan]   (currency, >= 0)

is reported (with its share of the plan's expected cost). A repair step follows as a guard
against the solver's feasibility tolerance: after the MIP's values are rounded to exact whole
numbers, a budget over its cap by any amount loses, one at a time, the order whose removal
raises the expected cost least (the evaluator's kernel), until every budget holds; the number
of repairs is reported (0 in every case measured).

Without a MIP solver (highspy cannot be imported: the plan then came from the DP fallback),
the orders are the plan's applicants rounded to the nearest whole number within the planner's
decisions and caps, and the same repair step restores any budget or onboarding cap that
rounding up broke (the method and the status say so; its rounding cost is reported the same way).

Applicants are per week (applicants/week); money in the instance currency, with the depot's
own currency beside it where countries have their own (cost_local = cost / fx_rate).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from pyomo.contrib.solver.common.results import SolutionStatus, TerminationCondition

from formulations.data import Decisions, ModelData
from formulations.two_stage.bonus import pool_excess, pool_members, pool_weights
from formulations.two_stage.budgets import budget_row_cover, budget_usage
from formulations.two_stage.decisions import applicant_bounds
from formulations.two_stage.drivers import IncentiveCurve, onboarding_excess, period_yield_kernel, simulate_drivers
from optplan.errors import EngineUnavailableError, InstanceError, NoSolutionError, OptionError, Problem
from optplan.evaluation.evaluator import FEASIBILITY_ATOL, expected_cost
from optplan.io.atomic import csv_text, json_text, write_files
from optplan.io.inputs import read_csv_strings
from optplan.solvers import Deadline, SolveOptions, solve_data
from optplan.solvers.base import SolverStatus, quiet_engines

#: The MIP stops within this relative gap of the best whole orders (the rest fixed).
ORDERS_GAP = 1e-4
#: Seconds the MIP may take when the caller gives no time limit (then: the best orders so far, with
#: their gap in the status; none found: no orders, and the plan says why).
ORDERS_TIME_LIMIT = 120.0
#: Weeks of orders by default (the CLI's --orders-weeks, `optplan orders --weeks`).
DEFAULT_WEEKS = 2
#: A budget holds when its spend is at most cap x (1 + this): float sums, and a plan read back
#: from its files at 10 significant digits (a thousandth of a currency unit on a million).
BUDGET_RTOL = 1e-9
#: The method when no MIP solver can be imported (the DP fallback's case).
ROUNDING_METHOD = "the plan rounded to the nearest whole applicants with a repair step (no MIP solver)"
#: Rounded orders are kept (no MIP) when their rounding cost is at most this share of the plan's
#: expected cost (a certified gap: the plan's cost bounds every whole orders' from below) ...
ROUNDING_ACCEPT = 5e-4
#: ... and the repair step needed at most this many removals (each costs an evaluation per order).
ROUNDING_MAX_REPAIRS = 10
#: The method when the rounded plan was kept.
ROUNDED_METHOD = "the plan rounded to the nearest whole applicants with a repair step, within 0.05 % of the plan"
#: Repairs at most (each removes one applicant or one currency unit).
MAX_REPAIRS = 10_000
#: When the rounded orders hold every cap but cost more than ROUNDING_ACCEPT, the MIP that looks
#: for better ones gets this many times the plan's own solve time, at least ORDERS_MIP_MIN_S
#: seconds (within the caller's limit): orders should not take ten times the plan (100 x 52 x 10:
#: the solve 2.1 s, the MIP 30 s for 0.05 % of the cost). The better of the two is kept.
ORDERS_MIP_SHARE = 1.0
ORDERS_MIP_MIN_S = 2.0
#: The method when the rounded orders were kept because the bounded MIP found none better.
ROUNDED_KEPT_METHOD = ("the plan rounded to the nearest whole applicants with a repair step (the MIP, bounded by "
                       "the plan's solve time, found no better orders)")


@dataclass
class Orders:
    """Whole orders for the first ``weeks`` weeks, with what rounding cost."""

    weeks: int
    data: ModelData
    start_date: pd.Timestamp
    decisions: Decisions  # the plan with the orders in weeks 1..weeks
    plan_decisions: Decisions  # the plan as solved
    plan_cost: float  # currency: the plan's expected cost (evaluator)
    orders_cost: float  # currency: the same with the orders
    status: SolverStatus  # of the MIP
    repairs: int
    method: str = "the MIP on the first weeks with the rest of the plan fixed"

    @property
    def rounding_cost(self) -> float:
        return self.orders_cost - self.plan_cost

    @property
    def rounding_share(self) -> float:
        return self.rounding_cost / abs(self.plan_cost) if self.plan_cost else 0.0

    # ------------------------------------------------------------------ tables
    def _week_start(self, t) -> pd.Series:
        return pd.Series(self.start_date + pd.to_timedelta(7 * np.asarray(t), unit="D")).dt.strftime("%Y-%m-%d")

    def _places(self, dd) -> dict:
        d = self.data
        out = {"region": np.asarray(d.regions)[dd]}
        if d.depot_country is not None:
            out["country"] = np.asarray(d.depot_country)[dd]
        return out

    def _local(self, dd, cost) -> dict:
        d = self.data
        if d.depot_currency is None:
            return {}
        return {"local_currency": np.asarray(d.depot_currency)[dd], "cost_local": cost / np.asarray(d.depot_fx)[dd]}

    @property
    def applicants(self) -> pd.DataFrame:
        """Whole applicants per depot, channel and week (rows where the order or the plan is > 0)."""
        d, W = self.data, self.weeks
        x = self.decisions.applicants[:, :, :W]
        p = self.plan_decisions.applicants[:, :, :W]
        dd, cc, tt = np.nonzero((x > 0) | (p > 0))
        n = np.rint(x[dd, cc, tt]).astype(np.int64)
        cost = n * d.cost_per_applicant[cc]
        return pd.DataFrame({
            "depot": np.asarray(d.depots)[dd], **self._places(dd),
            "channel": np.asarray(d.channels)[cc], "week": tt + 1, "week_start": self._week_start(tt),
            "applicants": n, "cost": cost, "currency": d.currency, **self._local(dd, cost),
            "plan_applicants": p[dd, cc, tt],
        })

    @property
    def incentives(self) -> pd.DataFrame:
        """Whole incentive spend per depot and week (rows where the order or the plan is > 0)."""
        d, W = self.data, self.weeks
        z = self.decisions.incentive_spend[:, :W].sum(axis=2)
        p = self.plan_decisions.incentive_spend[:, :W].sum(axis=2)
        dd, tt = np.nonzero((z > 0) | (p > 0))
        spend = np.rint(z[dd, tt])
        return pd.DataFrame({
            "depot": np.asarray(d.depots)[dd], **self._places(dd), "week": tt + 1,
            "week_start": self._week_start(tt), "spend": spend, "currency": d.currency,
            **{k.replace("cost", "spend"): v for k, v in self._local(dd, spend).items()},
            "plan_spend": p[dd, tt],
        })

    def by_channel(self) -> dict[str, pd.DataFrame]:
        """Per channel, the rows a recruiting team or an ad system loads: where, when, how many, at what cost."""
        a = self.applicants
        a = a[a["applicants"] > 0]
        return {str(c): g.drop(columns=["channel", "plan_applicants"]).reset_index(drop=True)
                for c, g in a.groupby("channel", sort=True)}

    def budgets(self) -> list[dict]:
        usage = budget_usage(self.data, self.decisions, every_cap=True)
        return [{"budget": family.removeprefix("budget_"), "key": key if isinstance(key, str) else int(key),
                 "cap": float(cap), "used": float(used), "slack": float(cap - used)}
                for family, (keys, useds, caps) in usage.items() for key, used, cap in zip(keys, useds, caps, strict=True)]

    def summary(self) -> dict:
        a, inc = self.applicants, self.incentives
        return {
            "weeks": self.weeks, "method": self.method, "status": self.status.to_dict(), "currency": self.data.currency,
            "expected_cost": {"plan": _num(self.plan_cost), "with_orders": _num(self.orders_cost),
                              "rounding": _num(self.rounding_cost), "rounding_share": _num(self.rounding_share)},
            "repairs": self.repairs,
            "applicants_by_channel": {c: int(v) for c, v in a.groupby("channel")["applicants"].sum().items()},
            "recruiting_spend": _num(float(a["cost"].sum())), "incentive_spend": _num(float(inc["spend"].sum())),
            "budgets": [{k: _num(v) if isinstance(v, float) else v for k, v in b.items()} for b in self.budgets()],
        }

    def render(self, prefix: str = "") -> dict[str, str]:
        files = {f"{prefix}orders.csv": csv_text(self.applicants), f"{prefix}incentives.csv": csv_text(self.incentives),
                 f"{prefix}orders.json": json_text(self.summary())}
        for channel, df in self.by_channel().items():
            files[f"{prefix}by_channel/{channel}.csv"] = csv_text(df)
        return files

    def write(self, folder: str | Path) -> list[Path]:
        files = self.render()
        write_files(folder, files)
        return [Path(folder) / n for n in files]

    def text(self) -> str:
        a, cur = self.applicants, self.data.currency
        by = a.groupby("channel")["applicants"].sum()
        chans = ", ".join(f"{c} {int(v)}" for c, v in by.items() if v > 0) or "none"
        return (f"  orders for weeks 1-{self.weeks}: {int(a['applicants'].sum())} applicants ({chans}), incentive "
                f"spend {self.incentives['spend'].sum():,.0f} {cur}; rounding to whole numbers costs "
                f"{self.rounding_cost:,.2f} {cur} ({self.rounding_share:.3%} of the plan's expected cost; "
                f"{self.method}{'' if self.status.optimal else ', ' + self.status.describe()})")


def _num(x: float) -> float | None:
    return float(f"{x:.10g}") if np.isfinite(x) else None


def make_orders(data: ModelData, plan: Decisions, start_date, weeks: int = DEFAULT_WEEKS,
                deadline: Deadline | None = None, options: SolveOptions | None = None,
                solve_seconds: float | None = None) -> Orders:
    """Whole orders for weeks 1..``weeks`` of the plan ``plan`` of ``data`` (module docstring).
    ``solve_seconds``: the plan's own solve time; when the rounded orders hold every cap, the MIP
    that looks for better ones is bounded by ORDERS_MIP_SHARE of it (at least ORDERS_MIP_MIN_S)
    and the better of the two is kept. Raises OptionError for weeks outside the horizon or not
    weekly, NoSolutionError when the MIP ends without orders (the time limit) and no rounding
    holds."""
    T = data.n_weeks
    if not 1 <= weeks <= T:
        raise OptionError("--weeks", f"1..{T} (the plan's weeks)", weeks)
    if np.any(data.period_length[:weeks] != 1):
        raise OptionError("--weeks", "weeks that are weekly periods (orders are per week; this instance's periods "
                          f"start {int(data.period_length[0])} weeks long)", weeks)
    x, z = plan.applicants, plan.incentive_spend
    lo, hi = applicant_bounds(data)  # the planner's decisions in the order weeks, the plan beyond
    lo[:, :, weeks:] = hi[:, :, weeks:] = x[:, :, weeks:]
    z_tot = z.sum(axis=2)
    z_lo = np.zeros_like(z_tot) if data.incentive_min is None else data.incentive_min.copy()
    z_hi = np.full_like(z_tot, np.inf) if data.incentive_max is None else data.incentive_max.copy()
    z_lo[:, weeks:] = z_hi[:, weeks:] = z_tot[:, weeks:]
    mip = replace(data, applicants_min=lo, applicants_max=hi, incentive_min=z_lo, incentive_max=z_hi,
                  whole_weeks=weeks, integer_applicants=False)
    opts = replace(options or SolveOptions(), integer=False, mip_rel_gap=ORDERS_GAP)
    if deadline is None or deadline.seconds is None:
        deadline = Deadline(ORDERS_TIME_LIMIT)
    before = expected_cost(data, plan)
    # first the plan rounded: kept when provably within ROUNDING_ACCEPT of the best whole orders
    ox, oz, _ = _rounded(data, x, z, lo, hi, weeks, "")
    oz[:, :weeks] = _whole_spend(data, oz[:, :weeks])
    ox[:, :, weeks:], oz[:, weeks:] = x[:, :, weeks:], z[:, weeks:]
    rounded, repairs = _repair(data, Decisions(ox, oz), weeks, max_repairs=ROUNDING_MAX_REPAIRS)
    fallback = None  # rounded orders that hold every cap: (orders, cost, repairs)
    if repairs <= ROUNDING_MAX_REPAIRS and _excess(data, rounded) == 0:
        after = expected_cost(data, rounded)
        fallback = (rounded, after, repairs)
        if solve_seconds is not None:  # the MIP may look for better orders for about as long as the plan took
            bound = max(ORDERS_MIP_MIN_S, ORDERS_MIP_SHARE * float(solve_seconds))
            deadline = Deadline(bound if deadline.seconds is None else min(bound, deadline.remaining()))
        if after - before <= ROUNDING_ACCEPT * abs(before):
            share = (after - before) / abs(before) if before else 0.0
            status = SolverStatus(TerminationCondition.convergenceCriteriaSatisfied, SolutionStatus.feasible,
                                  "rounding with repair", "", after, before,
                                  message=f"the plan rounded costs {share:.3%} of its expected cost, within "
                                          f"{ROUNDING_ACCEPT:.2%}: no MIP needed (the plan's cost bounds any whole "
                                          "orders' from below)")
            return Orders(weeks, data, pd.Timestamp(start_date), rounded, plan, before, after, status, repairs,
                          ROUNDED_METHOD)
    method = Orders.method
    try:
        with quiet_engines():
            result = solve_data(mip, opts, "highs", deadline=deadline)
    except EngineUnavailableError as exc:  # no MIP solver (the DP fallback's case): round, then repair
        ox, oz, status = _rounded(data, x, z, lo, hi, weeks, str(exc))
        method = ROUNDING_METHOD
    except NoSolutionError as exc:  # out of time before any orders: the rounding, if it holds every cap
        if fallback is None:
            raise
        return _kept_rounding(data, weeks, start_date, plan, before, fallback, exc.status or SolverStatus(
            TerminationCondition.maxTimeLimit, SolutionStatus.noSolution, "highs", str(exc), None, None))
    else:
        if not result.status.has_solution:
            if fallback is not None:
                return _kept_rounding(data, weeks, start_date, plan, before, fallback, result.status)
            raise NoSolutionError(f"no orders: {result.status.describe()}", result.status)
        ox = result.decisions.applicants.copy()
        oz = result.decisions.incentive_spend.copy()
        ox[:, :, :weeks] = np.rint(ox[:, :, :weeks])
        status = result.status
    oz[:, :weeks] = _whole_spend(data, oz[:, :weeks])
    ox[:, :, weeks:], oz[:, weeks:] = x[:, :, weeks:], z[:, weeks:]  # exactly the plan's, not the solver's copy
    orders, repairs = _repair(data, Decisions(ox, oz), weeks)
    after = expected_cost(data, orders)
    if fallback is not None and fallback[1] < after:  # the bounded MIP did worse than the rounding
        return _kept_rounding(data, weeks, start_date, plan, before, fallback, status)
    return Orders(weeks, data, pd.Timestamp(start_date), orders, plan, before, after, status, repairs, method)


def _kept_rounding(data: ModelData, weeks: int, start_date, plan: Decisions, before: float, fallback,
                   mip: SolverStatus) -> Orders:
    """The rounded orders (they hold every cap), kept when the MIP bounded by the plan's solve time
    found none better; the status says what the MIP did."""
    rounded, after, repairs = fallback
    share = (after - before) / abs(before) if before else 0.0
    status = SolverStatus(TerminationCondition.convergenceCriteriaSatisfied, SolutionStatus.feasible,
                          "rounding with repair", "", after, before,
                          message=f"the plan rounded costs {share:.3%} of its expected cost; the MIP bounded by the "
                                  f"plan's solve time found no better orders ({mip.describe()})")
    return Orders(weeks, data, pd.Timestamp(start_date), rounded, plan, before, after, status, repairs,
                  ROUNDED_KEPT_METHOD)


def _rounded(data: ModelData, x: np.ndarray, z: np.ndarray, lo: np.ndarray, hi: np.ndarray, weeks: int,
             why: str) -> tuple[np.ndarray, np.ndarray, SolverStatus]:
    """The plan's applicants of weeks 1..``weeks`` rounded to the nearest whole number within
    the planner's decisions and the applicant caps ([ceil lo, floor hi]); the repair step
    then restores any budget or onboarding cap the rounding up broke."""
    ox, oz = x.copy(), z.copy()
    top = np.floor(hi[:, :, :weeks] + 1e-9)
    bottom = np.minimum(np.ceil(lo[:, :, :weeks] - 1e-9), top)
    ox[:, :, :weeks] = np.clip(np.rint(x[:, :, :weeks]), bottom, top)
    status = SolverStatus(TerminationCondition.convergenceCriteriaSatisfied, SolutionStatus.feasible,
                          "rounding with repair", "", None, None,
                          message=f"no MIP solver for the orders ({why}): the plan rounded to the nearest whole "
                                  "applicants, then repaired")
    return ox, oz, status


def _whole_spend(data: ModelData, z: np.ndarray) -> np.ndarray:
    """Each depot-week's incentive spend (D, W, G) rounded down to whole currency units, split
    over the segments best rate first (drivers.IncentiveCurve, the order the LP fills them)."""
    totals = np.floor(z.sum(axis=2) + 1e-9)
    out = np.zeros_like(z)
    for d in range(z.shape[0]):
        out[d] = IncentiveCurve(data, d).split(totals[d])
    return out


def _excess(data: ModelData, decisions: Decisions) -> float:
    """How far the orders break the budgets (currency over the caps, beyond BUDGET_RTOL), the
    onboarding caps (new drivers beyond the caps) and the applicant pools of bonus levels
    (applicants beyond a channel's offer): 0 when everything holds."""
    return _Excess(data, decisions).total


class _Excess:
    """``_excess`` of some decisions, and what it becomes when one order (an applicant of cell
    (d, c, t), or a currency unit of incentive spend (d, t, g)) is removed, without re-evaluating
    the network: the budget rows' usage drops by that order's spend (budgets.budget_usage), only
    depot d's arrivals and onboarding excess change (drivers.recruited_arrivals, one channel's
    kernel row), and only its pool row of week t (bonus.pool_excess)."""

    def __init__(self, data: ModelData, decisions: Decisions):
        self.data = data
        D, C, T, _ = data.shape
        rows, used, caps = [], [], []
        for family, (keys, u, cap) in budget_usage(data, decisions).items():
            for key, ui, ci in zip(keys, u, cap, strict=True):
                rows.append(budget_row_cover(data, family, key))
                used.append(ui)
                caps.append(ci * (1 + BUDGET_RTOL))
        self.rows = np.array(rows, bool).reshape(len(rows), D, T)
        self.used, self.caps = np.array(used, float), np.array(caps, float)
        arrivals, _, _ = simulate_drivers(data, decisions)
        self.onb = onboarding_excess(data, arrivals)  # (D, T) drivers over the cap (<= 0 where it holds)
        finite = np.where(np.isfinite(data.onboarding_cap), data.onboarding_cap, 0.0)
        self.onb_tol = FEASIBILITY_ATOL * max(1.0, float(np.max(finite, initial=1.0)))
        self.onb_max = np.max(self.onb, axis=1, initial=-np.inf)  # (D,)
        self.pool = pool_excess(data, decisions.applicants)  # (D, P, T)
        self.members = pool_members(data)
        self.weights = [pool_weights(data, m) for m in self.members]
        self.kernel = period_yield_kernel(data) if data.has_periods else None

    def _budget(self, used: np.ndarray) -> float:
        return float(np.maximum(used - self.caps, 0.0).sum())

    def _onboarding(self, onb_max: np.ndarray, onb: np.ndarray) -> float:
        # as the evaluator flags it: counted when some depot-week is over the cap beyond its tolerance
        return float(np.maximum(onb, 0.0).sum()) if np.max(onb_max, initial=-np.inf) > self.onb_tol else 0.0

    @property
    def total(self) -> float:
        return self._budget(self.used) + self._onboarding(self.onb_max, self.onb) + float(
            np.maximum(self.pool, 0.0).sum())

    def helps(self) -> np.ndarray:
        """(D, T) True for depot-weeks whose orders enter a broken cap: the spend of (d, t) under a
        budget row over its cap (total, week t, d's region or country), any week of a depot whose
        onboarding cap or a bonus pool is broken (an applicant of an earlier week arrives later).
        Removing an order elsewhere cannot reduce the excess: the repair tries only these (at 1000
        depots trying every order took hours)."""
        out = self.rows[self.used > self.caps].any(axis=0)
        out[(self.onb > 0).any(axis=1), :] = True
        return out | (self.pool > 0).any(axis=1)

    def without(self, kind: str, cell: tuple) -> float:
        """``total`` after removing one order at ``cell`` (kind "x": (d, c, t); "z": (d, t, g))."""
        data = self.data
        d, t = int(cell[0]), int(cell[2] if kind == "x" else cell[1])
        spend = float(data.cost_per_applicant[cell[1]]) if kind == "x" else 1.0
        over = self._budget(self.used - spend * self.rows[:, d, t])
        pool = float(np.maximum(self.pool, 0.0).sum())
        if kind != "x":
            return over + self._onboarding(self.onb_max, self.onb) + pool
        c = int(cell[1])
        T = data.n_weeks
        if self.kernel is not None:
            drop = self.kernel[c, t]  # (T,) arrivals by period of one applicant of period t
        else:
            drop = np.zeros(T)
            k = data.yield_kernel[c, : max(0, T - t)]
            drop[t:t + len(k)] = k
        row = self.onb[d] - drop
        onb = self.onb.copy()
        onb[d] = row
        onb_max = self.onb_max.copy()
        onb_max[d] = np.max(row, initial=-np.inf)
        for i, chans in enumerate(self.members):
            hit = np.flatnonzero(chans == c)
            if len(hit):
                before = self.pool[d, i, t]
                pool += max(before - self.weights[i][d, hit[0]], 0.0) - max(before, 0.0)
        return over + self._onboarding(onb_max, onb) + pool


def _repair(data: ModelData, decisions: Decisions, weeks: int, max_repairs: int = MAX_REPAIRS) -> tuple[Decisions, int]:
    """Remove single orders (an applicant, a currency unit of spend), each time the one that
    raises the expected cost least (the evaluator's kernel) among those that reduce what is
    broken (_excess), until every budget and onboarding cap holds or ``max_repairs`` were
    made; (the repaired decisions, how many were removed)."""
    x, z = decisions.applicants.copy(), decisions.incentive_spend.copy()
    repairs = 0
    excess = _excess(data, Decisions(x, z))
    one: dict[int, ModelData] = {}  # each depot alone: the expected cost is a sum over depots

    def depot_cost(d: int) -> float:  # depot d's share of the expected cost (currency)
        if d not in one:
            one[d] = data.for_depot(d)
        return expected_cost(one[d], Decisions(x[d:d + 1], z[d:d + 1]))

    cost_now: dict[int, float] = {}
    while excess > 0 and repairs < max_repairs:
        now = _Excess(data, Decisions(x, z))
        helps = now.helps()  # (D, T): depot-weeks under a broken cap
        best, best_rise, best_excess = None, np.inf, excess
        for kind, arr, cells in (("x", x, np.argwhere((x[:, :, :weeks] >= 1) & helps[:, None, :weeks])),
                                 ("z", z, np.argwhere((z[:, :weeks] >= 1) & helps[:, :weeks, None]))):
            for cell in map(tuple, cells):
                d = int(cell[0])
                after = now.without(kind, cell)
                if after >= excess:
                    continue
                if d not in cost_now:
                    cost_now[d] = depot_cost(d)
                arr[cell] -= 1
                rise = depot_cost(d) - cost_now[d]  # the other depots' costs are unchanged
                arr[cell] += 1
                if rise < best_rise:
                    best, best_rise, best_excess = (kind, cell), rise, after
        if best is None:
            break
        (x if best[0] == "x" else z)[best[1]] -= 1
        cost_now.pop(int(best[1][0]), None)
        excess = best_excess
        repairs += 1
    return Decisions(x, z), repairs


def read_plan(folder: str | Path, data: ModelData) -> Decisions:
    """A plan folder's applicants.csv and incentives.csv as Decisions of ``data`` (ids must be
    the instance's: InstanceError naming the file and line otherwise)."""
    folder = Path(folder)
    D, C, T, _ = data.shape
    x = np.zeros((D, C, T))
    z = np.zeros((D, T, data.incentive_width.shape[1]))
    problems = []
    d_pos = {d: i for i, d in enumerate(data.depots)}
    c_pos = {c: i for i, c in enumerate(data.channels)}
    for name, cols in (("applicants.csv", ("depot", "channel", "week", "applicants")),
                       ("incentives.csv", ("depot", "week", "segment", "spend"))):
        df = read_csv_strings(folder / name, "a plan's table (optplan solve writes it)", name)
        missing = [c for c in cols if c not in df.columns]
        if missing:
            problems.append(Problem(name, 1, missing[0], f"the columns {', '.join(cols)}", "it missing"))
            continue
        for i, rec in enumerate(df.to_dict("records")):
            line = i + 2
            d = d_pos.get(rec["depot"])
            try:
                t = int(rec["week"]) - 1
                value = float(rec[cols[-1]])
            except ValueError:
                problems.append(Problem(name, line, "week", "a whole week and a number", f"{rec['week']!r}"))
                continue
            if d is None:
                problems.append(Problem(name, line, "depot", "a depot of the instance", repr(rec["depot"])))
                continue
            if not (0 <= t < T) or not np.isfinite(value) or value < 0:
                problems.append(Problem(name, line, cols[-1], f"a week in 1..{T} and a finite value >= 0",
                                        f"week {t + 1}, {value!r}"))
                continue
            if name == "applicants.csv":
                c = c_pos.get(rec["channel"])
                if c is None:
                    problems.append(Problem(name, line, "channel", "a channel of the instance", repr(rec["channel"])))
                    continue
                x[d, c, t] = value
            else:
                g = int(rec["segment"]) - 1
                if not 0 <= g < z.shape[2]:
                    problems.append(Problem(name, line, "segment", f"1..{z.shape[2]}", rec["segment"]))
                    continue
                z[d, t, g] = value
    if problems:
        raise InstanceError(problems)
    return Decisions(x, z)
