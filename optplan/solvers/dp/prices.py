"""Budget prices: bisection on the realized spend, weekly prices by Gauss-Seidel, mixing."""

from __future__ import annotations

import numpy as np

from formulations.data import ModelData
from formulations.two_stage.aggregated import recourse_segments
from formulations.two_stage.budgets import total_spend
from optplan.errors import InfeasibleError
from optplan.solvers.base import Deadline
from optplan.solvers.dp.depot import DepotModel
from optplan.solvers.dp.realize import trim_onboarding
from optplan.solvers.dp.recursion import DepotBatch, solve_depots
from optplan.solvers.dp.repair import BUDGET_RTOL

#: The search for a budget price stops when the bracket is this narrow (relative to 1 + price),
#: or when the plan within the budget spends all but this share of it (the two bracketing plans
#: are then mixed to use the budget exactly).
PRICE_RTOL = 1e-7
SPEND_RTOL = 1e-3
#: Rounds of weekly-budget price fitting (each: one bisection per exceeded week).
WEEKLY_PRICE_ROUNDS = 3


class PriceSearch:
    """Prices, per-depot DPs, realization and mixing for one ModelData. Every per-depot
    plan checks ``deadline`` first (DeadlinePassed ends the search)."""

    def __init__(self, data: ModelData, options, deadline: Deadline | None = None):
        self.data = data
        self.options = options
        self.deadline = deadline or Deadline(None)
        segments = recourse_segments(data)  # phi_dt of every depot-week, built once
        self.depots = [DepotModel(data, d, segments) for d in range(len(data.depots))]
        D, C, T, _ = data.shape
        self.n_points = self.options.grid_points or self.options.min_grid_points
        self.mu = np.zeros(T)
        self.calls = 0
        self._plans: dict = {}
        self._batches: dict = {}

    def batch(self, depots: list[int], n_points: int | None = None) -> DepotBatch:
        """The stacked DP arrays of ``depots`` (cached per depot set and grid)."""
        key = (tuple(depots), n_points or self.n_points)
        if key not in self._batches:
            self._batches[key] = DepotBatch([self.depots[d] for d in depots], key[1])
        return self._batches[key]

    def at_price(self, depots: list[int], lam: float):
        """(x (k,C,T), z (k,T,G), DP value) of ``depots`` at total price lam (+ their mu):
        their DPs in one batch, each plan realized, its incentives re-chosen for the realized
        drivers. Remembered, as the searches revisit prices (the first pass's is the search's
        start)."""
        key = (tuple(depots), float(lam), self.mu.tobytes(), self.n_points)
        if key not in self._plans:
            self.deadline.check()
            price = 1.0 + lam + self.mu
            sols = solve_depots(self.batch(depots), price)
            self.calls += len(depots)
            xs, zs = [], []
            weeks = np.arange(self.data.n_weeks)
            for d, sol in zip(depots, sols, strict=True):
                dep = self.depots[d]
                x = trim_onboarding(self.data, d, dep.realizer(sol.arrivals))
                xs.append(x)
                zs.append(dep.split_incentive(dep.week_costs(dep.drivers(x), price, weeks)[1]))
            self._plans[key] = (np.stack(xs), np.stack(zs), np.array([sol.value for sol in sols]))
        x, z, values = self._plans[key]
        return x, z, float(values.sum())

    def spend(self, plan) -> float:
        return float(total_spend(self.data, plan[0], plan[1]).sum())

    def meet_cap(self, make, cap: float, lam0: float = 0.0, bracket=None, iterations=None, spend=None,
                 row: str = "budget_total"):
        """Smallest price >= lam0 whose plan ``make(price)`` spends <= cap, by a search on the
        realized spend (regula falsi with the Illinois rule, safeguarded by bisection); the
        plans on both sides of the cap are mixed so that the cap is used exactly.
        ``spend(plan)``: the spend the cap limits (default: the total; currency). Returns
        (mixed plan, price)."""
        iterations = self.options.price_iterations if iterations is None else iterations
        spend = spend or self.spend
        over = lambda plan: spend(plan) > cap * (1 + BUDGET_RTOL)  # noqa: E731
        if bracket is None:
            lo_plan = make(lam0)
            if not np.isfinite(cap) or not over(lo_plan):
                return lo_plan, lam0
            lo, hi = lam0, lam0 + 1.0
            hi_plan = make(hi)
            while over(hi_plan):
                lo, lo_plan = hi, hi_plan
                hi = 2 * hi + 1.0
                if hi > 1e7:
                    raise InfeasibleError(f"the DP found no plan within the budget ({row})", [row], None)
                hi_plan = make(hi)
        else:
            lo, hi = bracket
            lo_plan, hi_plan = make(lo), make(hi)
            if not over(lo_plan):
                return lo_plan, lo
            while over(hi_plan):
                lo, lo_plan, hi = hi, hi_plan, 2 * hi + 1.0
                hi_plan = make(hi)
        # regula falsi on spend(price) - cap with the Illinois rule (the side kept twice in a row
        # has its value halved) and a bisection step whenever the bracket shrank by less than half
        f_lo, f_hi = spend(lo_plan) - cap, spend(hi_plan) - cap  # > 0 and <= 0 (currency)
        side, width = 0, 2.0 * (hi - lo)
        for _ in range(iterations):
            if hi - lo <= PRICE_RTOL * (1 + hi) or -f_hi <= SPEND_RTOL * abs(cap):
                break
            mid = hi - f_hi * (hi - lo) / (f_hi - f_lo) if f_lo != f_hi else 0.5 * (lo + hi)
            if not lo + 1e-3 * (hi - lo) < mid < hi - 1e-3 * (hi - lo) or hi - lo > 0.5 * width:
                mid, width = 0.5 * (lo + hi), hi - lo
            mid_plan = make(mid)
            f_mid = spend(mid_plan) - cap
            if f_mid > cap * BUDGET_RTOL:
                lo, lo_plan, f_lo = mid, mid_plan, f_mid
                if side == -1:
                    f_hi *= 0.5
                side = -1
            else:
                hi, hi_plan, f_hi = mid, mid_plan, f_mid
                if side == 1:
                    f_lo *= 0.5
                side = 1
        s_lo, s_hi = spend(lo_plan), spend(hi_plan)
        theta = 0.0 if s_lo <= s_hi else min(1.0, max(0.0, (cap - s_hi) / (s_lo - s_hi)))
        return tuple(theta * a + (1 - theta) * b for a, b in zip(lo_plan, hi_plan, strict=True)), hi

    def allocate(self, lam: float):
        """Plans for all depots at total-budget price lam, each regional cap met inside by a
        further regional price. Returns (x (D,C,T), z (D,T,G), DP value)."""
        data = self.data
        D, C, T, _ = data.shape
        x, z = np.zeros((D, C, T)), np.zeros((D, T, data.incentive_width.shape[1]))
        value = 0.0
        regions = np.asarray(data.regions)
        everyone = list(range(D))
        self.at_price(everyone, lam)  # every depot in one batch; a region over its cap is searched alone
        ax, az, av = self._plans[(tuple(everyone), float(lam), self.mu.tobytes(), self.n_points)]
        for r in dict.fromkeys(data.regions):
            members = list(np.flatnonzero(regions == r))
            cap = data.budget_region.get(r, np.inf)
            plan = (ax[members], az[members], float(av[members].sum()))
            if np.isfinite(cap) and self.spend(plan) > cap * (1 + BUDGET_RTOL):
                plan, _ = self.meet_cap(lambda p, m=members: self.at_price(m, p), cap, lam)
            x[members], z[members] = plan[0], plan[1]
            value += plan[2]
        return x, z, value

    def week_spend(self, plan) -> np.ndarray:
        return total_spend(self.data, plan[0], plan[1]).sum(axis=0)

    def run(self):
        """Prices, then plans: the total-budget price (regula falsi on the realized spend);
        weekly prices (Gauss-Seidel: one such search per week whose cap is exceeded, the
        total price refitted after each round). Returns ((x, z, DP value), total price)."""
        B, B_w = self.data.budget_total, self.data.budget_weekly
        plan, lam = self.meet_cap(self.allocate, B)
        for _ in range(WEEKLY_PRICE_ROUNDS):
            over = np.flatnonzero(self.week_spend(plan) > B_w * (1 + BUDGET_RTOL))
            if not len(over):
                break
            for t in over:
                def at_mu(m, t=t, lam=lam):
                    self.mu[t] = m
                    return self.allocate(lam)
                spend_t = lambda pl, t=t: float(self.week_spend(pl)[t])  # noqa: E731
                _, self.mu[t] = self.meet_cap(at_mu, B_w[t], lam0=float(self.mu[t]), spend=spend_t, row="budget_weekly")
            plan, lam = self.meet_cap(self.allocate, B)
        return plan, lam
