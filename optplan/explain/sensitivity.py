"""Sensitivity of a plan: marginal values, ranging, budget frontier, tornado.

Everything here works on one persistent HiGHS model of the instance (``SensitivityModel``):
the model is built and handed off once; re-solves change bounds or coefficients in place,
and HiGHS warm-starts from the previous basis. Money is in the instance currency.

* **Marginal values**: the LP duals of every budget (total, per week, per region) and of
  the onboarding caps, and the reduced costs of the recruiting columns, in planner terms
  ("one more USD of budget in week 12 saves X USD of expected cost").
* **Ranging**: for each budget, the interval of its cap over which its shadow price holds
  (HiGHS's row-bound ranging on the same model); for each channel, the interval of its
  cost per applicant over which the plan keeps its shape: the same optimal basis, i.e. the
  same decisions in use and the same constraints binding (where a budget binds, quantities
  still move with the cost, because the budget buys more or fewer applicants). A channel's
  cost sits in many columns and in the budget rows, which HiGHS's one-column cost ranging
  does not cover, so that interval is found by warm-started re-solves (bracketing, then
  bisection); HiGHS's tightest one-column interval is reported beside it.
* **Budget frontier**: expected cost, unserved blocks, service level and spend split for K
  total budgets from 0 to the budget at which it stops binding, each re-solve warm-started
  from the previous point.
* **Tornado**: one-at-a-time changes of +-X% in retention, conversion, demand level, blocks
  per driver, cost per applicant and unserved penalty; effect on expected cost and on
  recruits. Retention is perturbed through its complement: +-X% of the weekly churn
  probability 1 - retention (+-10% of a retention of 0.97 itself would be a swing from
  0.87 to 1.07, far outside what a planner means). Runs the 12 solves in parallel processes.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from formulations.data import ModelData
from formulations.two_stage.layout import Layout
from optplan.errors import InfeasibleError, NoSolutionError, OptionError
from optplan.planning.plan import Plan
from optplan.progress import progress
from optplan.solvers import solve_data
from optplan.solvers.backends import SerialBackend, get_backend
from optplan.solvers.base import Deadline, SolveOptions, SolveResult
from optplan.solvers.highs import highs_from_standard_form, import_highspy, run_compiled
from optplan.solvers.standard_form import build_standard_form

#: A shadow price smaller than this (currency per unit of cap) counts as 0: the row does not bind.
SHADOW_ATOL = 1e-9
#: A recruiting decision below this many applicants counts as unused.
PLAN_RTOL = 1e-6
#: Relative precision of the channel-cost range end points found by bisection.
RANGE_RTOL = 1e-4
#: Channel-cost multipliers probed when bracketing a range (beyond them: reported as open).
MAX_COST_FACTOR = 10.0
#: Above this many LP columns the channel-cost range is HiGHS's one-column ranging only: the
#: same-basis bisection re-solves the LP ~10 times per channel and direction, minutes each at
#: national scale (deterministic, unlike a time box, so the report stays reproducible).
RANGING_MAX_COLUMNS = 250_000


def same_basis(a, b) -> bool:
    """Two HiGHS bases are the same (every column and row has the same status)."""
    return list(a.col_status) == list(b.col_status) and list(a.row_status) == list(b.row_status)


class SensitivityModel:
    """A persistent HiGHS model of ``data`` for repeated, warm-started re-solves.

    The total budget row always exists (with an infinite cap when the instance has none),
    so the frontier can move it.
    """

    def __init__(self, data: ModelData, options: SolveOptions | None = None):
        self.options = options or SolveOptions()
        if self.options.integer:
            raise ValueError("sensitivity needs LP duals: use a continuous (not --integer) plan")
        self.data = data
        self.layout = Layout(data)
        self._budget_open = not math.isfinite(data.budget_total)
        build_data = replace(data, budget_total=1.0) if self._budget_open else data
        sf, _, _ = build_standard_form(build_data, self.options, Deadline(None), "HiGHS")
        self.compiled = highs_from_standard_form(sf, self.options)
        self.A = sf.A.tocsc()  # the base LP's matrix (the ranging changes HiGHS's copy and restores it)
        self.highspy = import_highspy()
        self.h = self.compiled.highs
        total = self.compiled.rows.get("budget_total", slice(0, 0))
        self._total_row = total.start if total.stop > total.start else None
        if self._budget_open and self._total_row is not None:
            self.h.changeRowBounds(self._total_row, -self.highspy.kHighsInf, self.highspy.kHighsInf)
        self.base = self.solve()
        self.base_basis = self.h.getBasis()

    # ---------------------------------------------------------------- solving
    def solve(self) -> SolveResult:
        result = run_compiled(self.data, self.compiled, self.options)
        if self._budget_open and "budget_total" in result.duals:
            # the row the frontier moves; the instance itself has no total budget (no row in its Layout)
            result.extra["budget_total_dual"] = result.duals.pop("budget_total")
        return result

    def set_total_budget(self, cap: float) -> None:
        if self._total_row is None:
            raise ValueError("the model has no total-budget row (no recruiting or incentive decisions)")
        upper = self.highspy.kHighsInf if math.isinf(cap) else float(cap)
        self.h.changeRowBounds(self._total_row, -self.highspy.kHighsInf, upper)

    def restore(self) -> None:
        """Back to the base instance's bounds and basis."""
        self.set_total_budget(self.data.budget_total)
        self.h.setBasis(self.base_basis)

    def _base_state(self) -> None:
        """Re-solve the base instance (from its basis: no pivots) so that HiGHS's ranging and
        duals describe it, whatever was solved since."""
        self.restore()
        self.base = self.solve()

    # ---------------------------------------------------------------- marginal values
    def marginal_values(self) -> pd.DataFrame:
        """Shadow prices of every budget and onboarding-cap row (expected cost saved per unit
        of cap), with the cap range over which each holds, in the cap's own units:

        * a binding row (shadow price > 0): HiGHS's ranging of the row bound, the caps over
          which the optimal basis, and so the price, stays (onboarding rows: plus the week's
          pipeline, since the row bounds recruited arrivals by cap - pipeline);
        * a row that does not bind (price 0): the price stays 0 for every cap at or above what
          the plan uses (``holds_from`` = the plan's spend or arrivals + pipeline) and there is
          no upper end (``holds_to`` blank: no limit). HiGHS's row ranging describes the row's
          activity there, not its cap, so it is not used.
        """
        self._base_state()
        d, raw = self.data, self.base
        _, ranging = self.h.getRanging()
        up = np.asarray(ranging.row_bound_up.value_, float)
        dn = np.asarray(ranging.row_bound_dn.value_, float)
        activity = np.asarray(self.h.getSolution().row_value, float)
        onboarding = self.layout.onboarding_rows()
        rows = []
        labels = {
            "budget_total": lambda k: ("budget", "total", "total"),
            "budget_week": lambda k: ("budget", "week", str(int(starts[int(self._weeks_with_cap()[k]) - 1]))),
            "budget_region": lambda k: ("budget", "region", self._regions_with_cap()[k]),
            "budget_country": lambda k: ("budget", "country", self.layout.budget_rows()["budget_country"][k]),
            "onboarding_cap": lambda k: ("onboarding_cap", *self._onboarding_key(k)),
        }
        starts = d.period_starts()  # a period (long-lead instances) is named by its first week
        length = d.period_length
        units = {"budget": f"{d.currency} per {d.currency}", "onboarding_cap": f"{d.currency} per driver/week"}
        for family, label in labels.items():
            sl = self.compiled.rows.get(family)
            if sl is None or sl.stop == sl.start:
                continue
            if family == "budget_total" and self._budget_open:
                continue
            duals = raw.duals[family]
            for k, row in enumerate(range(sl.start, sl.stop)):
                kind, scope, key = label(k)
                shift = float(d.pipeline[onboarding[k]]) if family == "onboarding_cap" else 0.0  # row bound -> cap
                # an onboarding row bounds L_t x the weekly cap (long-lead periods): per unit of weekly cap
                per = float(length[onboarding[k][1]]) if family == "onboarding_cap" else 1.0
                price = float(-duals[k]) * per + 0.0
                if abs(price) <= SHADOW_ATOL:
                    price, lo, hi = 0.0, (float(activity[row]) + shift) / per, math.inf
                else:
                    lo, hi = (float(dn[row]) + shift) / per, (float(up[row]) + shift) / per
                rows.append({"kind": kind, "scope": scope, "key": key, "shadow_price": price, "unit": units[kind],
                             "holds_from": lo, "holds_to": hi})
        return pd.DataFrame(rows, columns=["kind", "scope", "key", "shadow_price", "unit", "holds_from", "holds_to"])

    def _weeks_with_cap(self) -> list[int]:
        return self.layout.budget_rows()["budget_week"]

    def _regions_with_cap(self) -> list[str]:
        return self.layout.budget_rows()["budget_region"]

    def _onboarding_key(self, k: int) -> tuple[str, str]:
        d, t = self.layout.onboarding_rows()[k]
        return self.data.depots[d], str(int(self.data.period_starts()[t]))

    def channel_reduced_costs(self) -> pd.DataFrame:
        """Per channel: applicants recruited, and how much cheaper an applicant would have to
        be before the channel is used more (currency per applicant; 0 when some unused slot
        is already at break-even; blank when the channel has no unused slot).

        An applicant's cost enters the objective and every budget row it is spent in (the
        total, its applying week's, its depot's region's), so lowering it by delta lowers the
        column's reduced cost rc by delta (1 + sum of those rows' shadow prices): the
        break-even cut is rc / (1 + sum of the shadow prices), not rc (which overstates it
        whenever a budget binds). The smallest over the channel's unused depot-weeks."""
        d, raw = self.data, self.base
        _, cc, _ = self.layout.recruit
        x = raw.values["applicants"]
        rc = raw.reduced_costs.get("applicants", np.full(len(x), np.nan))
        factor = 1.0 + self._budget_prices_per_column()
        rows = []
        for c, name in enumerate(d.channels):
            sel = cc == c
            unused = sel & (x <= PLAN_RTOL)
            cut = rc[unused] / factor[unused]
            rows.append({
                "channel": name,
                "cost_per_applicant": float(d.cost_per_applicant[c]),
                "applicants": float(x[sel].sum()),
                "cheaper_by_to_recruit_more": max(float(np.min(cut)), 0.0) + 0.0 if unused.any() else float("nan"),
                "currency": d.currency,
            })
        return pd.DataFrame(rows)

    def _budget_prices_per_column(self) -> np.ndarray:
        """Per recruiting decision (layout order): the sum of the shadow prices (currency per
        currency) of the budget rows its spend enters, read off the LP's matrix: each budget
        row holds the cost per applicant as the column's coefficient, so sum_r lambda_r a_rj /
        cost_j."""
        lam = np.zeros(self.A.shape[0])
        for family in ("budget_total", "budget_week", "budget_region", "budget_country"):
            sl, duals = self.compiled.rows.get(family), self.base.duals.get(family)
            if sl is not None and sl.stop > sl.start and duals is not None:  # no total budget: the row is open, dual 0
                lam[sl] = np.maximum(-np.asarray(duals, float), 0.0)
        cols = self.compiled.columns["applicants"]
        _, cc, _ = self.layout.recruit
        weight = np.asarray(self.A.T @ lam).ravel()
        cost = self.data.cost_per_applicant[cc]
        out = np.zeros(len(cols))
        ok = (cols >= 0) & (cost > 0)
        out[ok] = weight[cols[ok]] / cost[ok]
        return out

    # ---------------------------------------------------------------- ranging
    def _set_channel_factor(self, c: int, factor: float) -> None:
        """Multiply channel c's cost per applicant by ``factor`` (objective and budget rows)."""
        cols = self.compiled.columns["applicants"]
        _, cc, _ = self.layout.recruit
        mine = cols[(cc == c) & (cols >= 0)]
        cost = float(self.data.cost_per_applicant[c]) * factor
        self.h.changeColsCost(len(mine), mine.astype(np.int32), np.full(len(mine), cost))
        for family in ("budget_total", "budget_week", "budget_region", "budget_country"):
            sl = self.compiled.rows.get(family)
            if sl is None:
                continue
            for row in range(sl.start, sl.stop):
                for col in self._row_cols(row, mine):
                    self.h.changeCoeff(row, int(col), cost)

    def _row_cols(self, row: int, candidates: np.ndarray) -> np.ndarray:
        cache = self.__dict__.setdefault("_row_col_cache", {})
        key = (row, candidates.tobytes())
        if key not in cache:
            entries = self.h.getRowsEntries(1, np.array([row], dtype=np.int32))
            index = entries[-2]  # (status, start, index, value)
            cache[key] = np.intersect1d(np.asarray(index), candidates)
        return cache[key]

    def _same_shape_at(self, c: int, factor: float) -> bool:
        """Is the optimal basis unchanged with channel c's cost scaled by ``factor``?"""
        self.h.setBasis(self.base_basis)
        self._set_channel_factor(c, factor)
        try:
            self.solve()
            return same_basis(self.h.getBasis(), self.base_basis)
        finally:
            self._set_channel_factor(c, 1.0)

    def channel_cost_ranges(self, bisection: bool | None = None) -> pd.DataFrame:
        """Interval of each channel's cost per applicant over which the plan keeps its shape
        (the same optimal basis), found by warm-started re-solves; with ``bisection=False``
        (default above RANGING_MAX_COLUMNS columns) only HiGHS's one-column ranging, and
        the same-basis columns are NaN."""
        d = self.data
        if bisection is None:
            bisection = self.compiled.n_cols <= RANGING_MAX_COLUMNS
        self._base_state()
        _, ranging = self.h.getRanging()
        cols = self.compiled.columns["applicants"]
        _, cc, _ = np.nonzero(d.recruit_mask())
        rows = []
        for c, name in enumerate(d.channels):
            cost = float(d.cost_per_applicant[c])
            lo = self._edge(c, direction=-1) if bisection else math.nan
            hi = self._edge(c, direction=+1) if bisection else math.nan
            mine = cols[(cc == c) & (cols >= 0)]
            col_up = np.asarray(ranging.col_cost_up.value_, float)[mine] if len(mine) else np.array([np.inf])
            col_dn = np.asarray(ranging.col_cost_dn.value_, float)[mine] if len(mine) else np.array([-np.inf])
            rows.append({
                "channel": name,
                "cost_per_applicant": cost,
                "basis_same_from": cost * lo,
                "basis_same_to": cost * hi if math.isfinite(hi) or math.isnan(hi) else float("inf"),
                "highs_one_column_from": float(np.max(col_dn)),
                "highs_one_column_to": float(np.min(col_up)),
                "currency": d.currency,
            })
        self.restore()
        return pd.DataFrame(rows)

    def _edge(self, c: int, direction: int) -> float:
        """Factor at which channel c's cost first changes the basis (bracket, then bisect)."""
        inside = 1.0
        step = 1e-3
        outside = None
        while True:
            factor = 1.0 + direction * step if direction < 0 else 1.0 + step
            if direction < 0 and factor <= 0:
                factor = 0.0
            if not self._same_shape_at(c, factor):
                outside = factor
                break
            inside = factor
            if factor == 0.0:
                return 0.0
            if factor >= MAX_COST_FACTOR:
                return math.inf
            step *= 2
        while abs(outside - inside) > RANGE_RTOL * max(1.0, abs(inside)):
            mid = 0.5 * (inside + outside)
            if self._same_shape_at(c, mid):
                inside = mid
            else:
                outside = mid
        return inside

    # ---------------------------------------------------------------- frontier
    def unconstrained_spend(self) -> float:
        """First-stage spend of the plan with no total budget: where the total stops binding."""

        self.set_total_budget(math.inf)
        spend = Plan.from_result(self.solve(), "frontier", "2000-01-03").kpis["first_stage_spend"]
        self.restore()
        return spend

    def budget_frontier(
        self, points: int = 10, budgets: np.ndarray | None = None, progress: bool = False, warm: bool = True,
        backend=None,
    ) -> pd.DataFrame:
        """Outcome for ``points`` total budgets from 0 to the budget at which the total
        stops binding (the unconstrained plan's spend), or for the given ``budgets``
        (``feasible`` False and the rest empty where no plan fits the budget, e.g. under a
        service target);
        each re-solve warm-starts from the previous point's basis (``warm=False`` clears
        HiGHS's solver state first, for comparison). With a ``backend`` of several workers
        the budgets are split into one contiguous, warm-started chain per worker (each
        worker builds and solves its own model first)."""

        if budgets is None:
            if points < 2:
                raise OptionError("--frontier-points", "at least 2 points", points)
            budgets = np.linspace(0.0, self.unconstrained_spend(), points)
        budgets = np.asarray(budgets, float)
        if (budgets < 0).any():
            raise OptionError("budgets", "frontier budgets >= 0", budgets.min())
        workers = getattr(backend, "workers", 1)
        if warm and workers > 1 and len(budgets) >= 2 * workers:
            chunks = [c for c in np.array_split(budgets, workers) if len(c)]
            parts = list(_progress(backend.imap(_frontier_chain, [(self.data, self.options, c) for c in chunks]),
                                   "budget frontier (chains)", progress, total=len(chunks)))
            return pd.DataFrame([row for part in parts for row in part])
        rows = []
        iterator = _progress(budgets, "budget frontier", progress)
        for cap in iterator:
            if not warm:
                self.h.clearSolver()
            self.set_total_budget(float(cap))
            try:
                raw = self.solve()
            except (InfeasibleError, NoSolutionError):
                self.h.clearSolver()  # no basis to start from after an infeasible point
                try:
                    raw = self.solve()
                except InfeasibleError:  # e.g. a service target that this little money cannot meet
                    self.h.clearSolver()
                    rows.append({"budget_total": float(cap), "feasible": False})
                    continue
            plan = Plan.from_result(raw, "frontier", "2000-01-03")
            rows.append({**_frontier_row(self.data, float(cap), plan, raw), "feasible": True})
        self.restore()
        return pd.DataFrame(rows)


def _frontier_chain(args) -> list[dict]:
    """One worker's warm-started chain of frontier points (a backend task)."""
    data, options, budgets = args
    return SensitivityModel(data, options).budget_frontier(budgets=budgets).to_dict("records")


def _total_dual(raw: SolveResult) -> float:
    """Expected cost saved per extra currency unit of total budget (minus the row dual)."""
    dual = raw.duals.get("budget_total", raw.extra.get("budget_total_dual"))
    return float(-dual[0]) + 0.0 if dual is not None and len(dual) else float("nan")


def _frontier_row(d: ModelData, cap: float, plan, raw: SolveResult) -> dict:
    x = plan.decisions.applicants
    row = {
        "budget_total": cap,
        "expected_cost": plan.cost["total"],
        "first_stage_spend": plan.kpis["first_stage_spend"],
        "expected_unserved_blocks": plan.kpis["expected_unserved_blocks"],
        "service_level": plan.kpis["service_level"],
        "shadow_price": _total_dual(raw),
        "incentive_spend": plan.cost["planned_incentives"],
    }
    for c, name in enumerate(d.channels):
        row[f"recruiting_{name}"] = float(x[:, c, :].sum() * d.cost_per_applicant[c])
    row["currency"] = d.currency
    return row


def _progress(items, desc: str, show: bool, total: int | None = None):
    """A progress bar with its total over ``items`` (shown on stderr when ``show``)."""

    return progress(items, desc, "solve", total=total, show=show)


# ------------------------------------------------------------------ tornado

TORNADO_PARAMETERS = (
    "churn", "conversion", "demand_level", "blocks_per_driver", "cost_per_applicant", "unserved_penalty",
)


def perturb(data: ModelData, parameter: str, factor: float) -> ModelData:
    """``data`` with one parameter scaled by ``factor`` (probabilities kept in [0, 1]).

    ``churn`` scales the weekly churn probability 1 - retention."""
    if parameter == "churn":
        return replace(data, retention=np.clip(1.0 - (1.0 - data.retention) * factor, 0.0, 1.0))
    if parameter == "conversion":
        kernel = data.yield_kernel * factor
        total = kernel.sum(axis=1, keepdims=True)
        kernel = np.where(total > 1.0, kernel / np.maximum(total, 1e-12), kernel)
        return replace(data, yield_kernel=kernel)
    if parameter == "demand_level":
        return replace(data, demand=data.demand * factor)
    if parameter == "blocks_per_driver":
        return replace(data, blocks_per_driver=data.blocks_per_driver * factor,
                       supply_by_week=None if data.supply_by_week is None else data.supply_by_week * factor)
    if parameter == "cost_per_applicant":
        return replace(data, cost_per_applicant=data.cost_per_applicant * factor)
    if parameter == "unserved_penalty":
        return replace(data, unserved_cost=data.unserved_cost * factor,
                       unserved_by_depot=None if data.unserved_by_depot is None else data.unserved_by_depot * factor)
    raise ValueError(f"unknown tornado parameter {parameter!r}; expected one of {TORNADO_PARAMETERS}")


def _solve_summary(args) -> tuple[float, float]:
    """(optimal cost, applicants) of one tornado case; (NaN, NaN) when the changed instance
    has no plan (e.g. 10 % more demand breaks a service target): reported as an empty cell."""
    data, options = args

    try:
        result = solve_data(data, options, "highs")
    except InfeasibleError:
        return float("nan"), float("nan")
    return float(result.status.objective), float(result.decisions.applicants.sum())


@dataclass(frozen=True)
class TornadoResult:
    table: pd.DataFrame
    base_cost: float
    base_recruits: float


def tornado(
    data: ModelData,
    change: float = 0.10,
    options: SolveOptions | None = None,
    workers: int | None = None,
    progress: bool = False,
    backend=None,
) -> TornadoResult:
    """Effect of +-``change`` (a share, default 10%) in each parameter on expected cost
    (currency) and total applicants, one parameter at a time: 13 solves as tasks on
    ``backend`` (an optplan.solvers.backends backend; default: ``workers`` local processes)."""
    if not 0 < change < 1:
        raise ValueError(f"change must be a share in (0, 1), got {change!r}")
    options = options or SolveOptions()
    jobs = [(data, options)]
    labels = [("base", 0.0)]
    for p in TORNADO_PARAMETERS:
        for sign in (-1.0, +1.0):
            jobs.append((perturb(data, p, 1.0 + sign * change), options))
            labels.append((p, sign * change))

    workers = workers or min(len(jobs), os.cpu_count() or 1)
    own = backend is None
    backend = backend or get_backend("local" if workers > 1 else "serial", None, workers)
    try:
        results = list(_progress(backend.imap(_solve_summary, jobs), "tornado", progress, total=len(jobs)))
    finally:
        if own:
            backend.close()
    base_cost, base_recruits = results[0]
    rows = []
    for (p, delta), (cost, recruits) in zip(labels[1:], results[1:], strict=True):
        rows.append({
            "parameter": p, "change": delta, "expected_cost": cost, "cost_change": cost - base_cost,
            "applicants": recruits, "applicants_change": recruits - base_recruits, "currency": data.currency,
        })
    table = pd.DataFrame(rows)
    swing = table.groupby("parameter")["cost_change"].apply(lambda s: s.abs().max())
    table["swing"] = table["parameter"].map(swing)
    table = table.sort_values(["swing", "parameter", "change"], ascending=[False, True, True]).drop(columns="swing")
    return TornadoResult(table.reset_index(drop=True), base_cost, base_recruits)


__all__ = ["SensitivityModel", "tornado", "perturb", "TORNADO_PARAMETERS", "TornadoResult"]


#: The two-sided frontier: depot service targets from the plain plan's lowest depot service
#: level up this share of the way to 100 %, and the utilisation floors tried (None: none).
SERVICE_FRONTIER_SPAN = 0.5


def _service_point(args) -> dict:
    """One point of the two-sided frontier (a backend task): the optimum with every depot's
    service target tau and utilisation floor f (None: none); empty costs when no plan exists."""
    data, options, tau, floor = args
    D = len(data.depots)
    changed = replace(data, service_target=np.full(D, tau),
                      utilisation_floor=np.full(D, np.nan if floor is None else floor))
    row = {"service_target": tau, "utilisation_floor": np.nan if floor is None else floor}
    try:
        result = solve_data(changed, options, "highs")
    except InfeasibleError:
        return {**row, "feasible": False}

    plan = Plan.from_result(result, "service frontier", "2000-01-03")
    svc = plan.service
    return {**row, "feasible": True, "expected_cost": plan.cost["total"], "service_level": plan.kpis["service_level"],
            "driver_utilisation": plan.kpis["driver_utilisation"],
            "lowest_depot_utilisation": float(svc["driver_utilisation"].min()), "currency": data.currency}


def service_frontier(data: ModelData, options: SolveOptions | None = None, points: int = 5, floors=None,
                     backend=None, progress: bool = False) -> pd.DataFrame:
    """Cost against customers' service for several floors on drivers' utilisation: for
    every depot service target tau (``points`` levels from the plain plan's lowest depot
    service level up SERVICE_FRONTIER_SPAN of the way to 100 %) and every utilisation floor
    (default: none, the plain plan's median depot utilisation, and its best depot's),
    the optimal expected cost (currency), the network service level and driver utilisation
    achieved; ``feasible`` False (costs empty) where no plan meets both. The solves are
    backend tasks."""
    options = options or SolveOptions()
    if points < 2:
        raise OptionError("points", "at least 2 service levels", points)
    base = Plan.from_result(solve_data(data, options, "highs"), "base", "2000-01-03")
    low = float(base.service["service_level"].min())
    taus = np.linspace(low, low + SERVICE_FRONTIER_SPAN * (1.0 - low), points)
    if floors is None:  # none, the plain plan's median and its best depot's utilisation
        util = base.service["driver_utilisation"]
        floors = [None, float(util.median()), float(util.max())]
    tasks = [(data, options, float(tau), None if f is None else float(f)) for f in floors for tau in taus]
    backend = backend or SerialBackend()
    rows = list(_progress(backend.imap(_service_point, tasks), "service frontier", progress, total=len(tasks)))
    out = pd.DataFrame(rows)
    out["currency"] = data.currency
    return out
