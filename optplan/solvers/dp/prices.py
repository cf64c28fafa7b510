"""Budget prices: bisection on the realized spend, weekly prices by Gauss-Seidel, mixing."""

from __future__ import annotations

import numpy as np

from formulations.data import ModelData
from formulations.two_stage.budgets import total_spend
from optplan.errors import InfeasibleError
from optplan.solvers.base import Deadline
from optplan.solvers.dp.depot import DepotModel
from optplan.solvers.dp.polish import Polisher
from optplan.solvers.dp.realize import realize, trim_onboarding
from optplan.solvers.dp.recursion import solve_depot
from optplan.solvers.dp.repair import BUDGET_RTOL

#: Bisection on a budget price stops when the bracket is this narrow (relative to 1 + price).
PRICE_RTOL = 1e-7
#: Rounds of weekly-budget price fitting (each: one bisection per exceeded week).
WEEKLY_PRICE_ROUNDS = 3


class PriceSearch:
    """Prices, per-depot DPs, realization and mixing for one ModelData. Every per-depot
    plan checks ``deadline`` first (DeadlinePassed ends the search)."""

    def __init__(self, data: ModelData, options, deadline: Deadline | None = None):
        self.data = data
        self.options = options
        self.deadline = deadline or Deadline(None)
        self.depots = [DepotModel(data, d) for d in range(len(data.depots))]
        D, C, T, _ = data.shape
        self.n_points = self.options.grid_points or self.options.min_grid_points
        self.mu = np.zeros(T)
        self.calls = 0
        self.polish = True

    def depot_plan(self, d: int, lam: float, n_points: int | None = None):
        """Realized (and, when self.polish, polished) plan of depot d at price 1 + lam + mu:
        (applicants (C, T), incentive spend (T, G), unpriced DP value)."""
        self.deadline.check()
        price = 1.0 + lam + self.mu
        sol = solve_depot(self.depots[d], price, n_points or self.n_points)
        unpriced = sol.value
        self.calls += 1
        x = trim_onboarding(self.data, d, realize(self.data, d, sol.arrivals))
        pol = Polisher(self.depots[d], price)
        Z = pol.best_incentives(x)
        if self.polish:
            xp, Zp = pol.run(x, Z, deadline=self.deadline)
            if pol.exact_cost(xp, Zp) < pol.exact_cost(x, Z):  # the tables interpolate; trust only exact gains
                x, Z = xp, Zp
        spend = np.stack([self.depots[d].split_incentive(float(v)) for v in Z])
        return x, spend, unpriced

    def at_price(self, depots: list[int], lam: float):
        """(x (k,C,T), z (k,T,G), DP value) of ``depots`` at total price lam (+ their mu)."""
        parts = [self.depot_plan(d, lam) for d in depots]
        return np.stack([p[0] for p in parts]), np.stack([p[1] for p in parts]), sum(p[2] for p in parts)

    def spend(self, plan) -> float:
        return float(total_spend(self.data, plan[0], plan[1]).sum())

    def meet_cap(self, make, cap: float, lam0: float = 0.0, bracket=None, iterations=None):
        """Smallest price >= lam0 whose plan ``make(price)`` spends <= cap, by bisection on
        the realized spend; the plans on both sides of the cap are mixed so that the cap is
        used exactly. Returns (mixed plan, price)."""
        iterations = self.options.price_iterations if iterations is None else iterations
        over = lambda plan: self.spend(plan) > cap * (1 + BUDGET_RTOL)  # noqa: E731
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
                    raise InfeasibleError("the DP found no plan within the budget", ["budget_total"], None)
                hi_plan = make(hi)
        else:
            lo, hi = bracket
            lo_plan, hi_plan = make(lo), make(hi)
            if not over(lo_plan):
                return lo_plan, lo
            while over(hi_plan):
                lo, lo_plan, hi = hi, hi_plan, 2 * hi + 1.0
                hi_plan = make(hi)
        for _ in range(iterations):
            if hi - lo <= PRICE_RTOL * (1 + hi):
                break
            mid = 0.5 * (lo + hi)
            mid_plan = make(mid)
            if over(mid_plan):
                lo, lo_plan = mid, mid_plan
            else:
                hi, hi_plan = mid, mid_plan
        s_lo, s_hi = self.spend(lo_plan), self.spend(hi_plan)
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
        for r in dict.fromkeys(data.regions):
            members = list(np.flatnonzero(regions == r))
            cap = data.budget_region.get(r, np.inf)
            (gx, gz, gv), _ = self.meet_cap(lambda p, m=members: self.at_price(m, p), cap, lam)
            x[members], z[members] = gx, gz
            value += gv
        return x, z, value

    def week_spend(self, plan) -> np.ndarray:
        return total_spend(self.data, plan[0], plan[1]).sum(axis=0)

    def run(self):
        """Prices, then plans. The total-budget price by bisection on DP plans without the
        polish; weekly prices (Gauss-Seidel: one bisection per week whose cap is exceeded,
        the total price refitted after each round); then a short bisection around the total
        price with polished plans. Returns ((x, z, DP value), total price)."""
        B, B_w = self.data.budget_total, self.data.budget_weekly
        self.polish = False
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
                lo, hi = self.mu[t], self.mu[t] + 1.0
                while spend_t(at_mu(hi)) > B_w[t] * (1 + BUDGET_RTOL) and hi < 1e6:
                    lo, hi = hi, 2 * hi + 1.0
                for _ in range(self.options.price_iterations // 3):
                    mid = 0.5 * (lo + hi)
                    if spend_t(at_mu(mid)) > B_w[t] * (1 + BUDGET_RTOL):
                        lo = mid
                    else:
                        hi = mid
                self.mu[t] = hi
            plan, lam = self.meet_cap(self.allocate, B)
        self.polish = True
        if lam == 0.0:
            return self.allocate(0.0), 0.0
        return self.meet_cap(self.allocate, B, bracket=(0.5 * lam, 1.5 * lam + 0.05), iterations=12)

