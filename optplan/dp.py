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
   A polish (``_Polisher``, ``global_polish``) then improves the plan by exact 1-D searches
   that keep every budget.
4. **Prices.** The total and regional budget prices are found by bisection on the
   realized spend; the two plans that bracket the budget are mixed (the problem is convex,
   so a convex combination of feasible plans is feasible and no worse than their mix) so
   that the budget is used exactly. Weekly budgets get prices by Gauss-Seidel bisections;
   any remaining excess is moved a week later or scaled away.

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

from formulations.data import ModelData
from optplan.errors import InfeasibleError
from optplan.evaluate import Decisions, check_feasibility, evaluate_decisions, optimal_recourse

log = logging.getLogger("optplan")

#: Grid refinement stops when the DP value changes by less than this share between grids.
GRID_RTOL = 2e-3
#: Bisection on a budget price stops when the bracket is this narrow (relative to 1 + price).
PRICE_RTOL = 1e-7
#: Budgets count as met when spend <= cap * (1 + this).
BUDGET_RTOL = 1e-9
#: Rounds of weekly-budget price fitting (each: one bisection per exceeded week).
WEEKLY_PRICE_ROUNDS = 3
#: Projected-gradient iterations of the deconvolution (T <= a few hundred weeks).
DECONV_ITERATIONS = 400


@dataclass(frozen=True)
class DPOptions:
    """Options of the DP engine.

    grid_points: states per week (None: adaptive, doubling from ``min_grid_points`` until
        the DP value changes by less than ``grid_rtol`` or ``max_grid_points`` is reached).
    polish: improve the realized plan by exact 1-D searches (see _Polisher); off: the DP's
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
            raise ValueError(f"grid_points must be >= 2, got {self.grid_points}")
        if not 2 <= self.min_grid_points <= self.max_grid_points:
            raise ValueError("need 2 <= min_grid_points <= max_grid_points")


@dataclass
class DepotPolicy:
    """The state-feedback rule of one depot from the DP, at the final prices.

    ``grids[t]`` are the states (active drivers at the end of week t, t = 0..T-1; drivers)
    from which week t+1 is decided; ``arrivals[t]`` the new drivers to have arrive in week
    t+1 from each state (drivers/week); ``value[t]`` the cost-to-go (currency, priced)."""

    depot: str
    grids: list[np.ndarray]
    arrivals: list[np.ndarray]
    value: list[np.ndarray]
    price: np.ndarray  # (T,) spend multiplier 1 + lam + mu_t in force


@dataclass
class DPResult:
    """What the DP engine returns besides the plan's decisions."""

    decisions: Decisions
    dp_value: float  # DP's own estimate of the expected cost at the final prices, unpriced (currency)
    evaluated: float  # exact evaluator's expected cost of the realized plan (currency)
    grid_points: int
    grid_change: float  # relative change of the DP value between the last two grids
    prices: dict[str, float | list[float]]
    policies: dict[str, DepotPolicy] = field(default_factory=dict)
    seconds: float = 0.0
    iterations: int = 0

    @property
    def approximation_error(self) -> float:
        """Relative gap between the evaluated cost and the DP's own estimate (the error of the
        arrival-time relaxation, the grid and the repairs together)."""
        return (self.evaluated - self.dp_value) / max(1.0, abs(self.evaluated))


# ---------------------------------------------------------------------------- pieces
def expected_recourse(data: ModelData, q: np.ndarray, demand: np.ndarray, probability: np.ndarray) -> np.ndarray:
    """Expected second-stage cost (currency/week) for capacities q (...,) against demand (S,).

    The closed form of optplan.evaluate.optimal_recourse priced: surge cs, unserved cu and
    idle ci currency per block."""
    surge, unserved, idle = optimal_recourse(data, q, demand)
    return (data.surge_cost * surge + data.unserved_cost * unserved + data.idle_cost * idle) @ probability


def _kinks(data: ModelData, demand: np.ndarray) -> np.ndarray:
    """Capacities (blocks/week) where the expected recourse changes slope."""
    k = [demand]
    if data.surge_cap_share > 0 and data.surge_cost < data.unserved_cost:
        k.append(demand / (1.0 + data.surge_cap_share))
    return np.unique(np.concatenate(k))


@dataclass
class _DepotWeek:
    """Per depot and week: arrival cost curve and incentive segments (priced later)."""

    cum_cap: np.ndarray  # (C+1,) cumulative arrival caps of channels in cost order, drivers/week
    channel_order: np.ndarray  # (C,) channel positions, cheapest per driver first
    unit_cost: np.ndarray  # (C,) currency per arriving driver, unpriced, in channel_order
    spend_week: np.ndarray  # (C,) week position whose budget pays for it (applying week)
    n_max: float  # most arrivals this week (drivers/week)


class _Depot:
    """Precomputed, price-independent data of one depot."""

    def __init__(self, data: ModelData, d: int):
        self.data, self.d = data, d
        D, C, T, S = data.shape
        y = data.yield_kernel  # (C, L+1)
        conv = y.sum(axis=1)
        self.rho = float(data.retention[d])
        self.b = float(data.blocks_per_driver[d])
        self.pipeline = data.pipeline[d].astype(float)
        self.demand = data.demand[d]  # (T, S)
        self.p = data.probability
        cap_on = float(data.onboarding_cap[d])
        modal = data.modal_lag()  # the applying week whose budget pays for an arrival
        self.mask = mask = data.recruit_mask()[d]  # (C, T): applying weeks with a variable
        self._polish_tables = None
        # an uncapped channel is capped at more applicants than could ever be useful:
        # enough for every driver needed at the highest demand, 10 times over (applicants/week)
        min_conv = max(float(conv[conv > 0].min(initial=1.0)), 1e-6)
        big = 10.0 * (float(self.demand.max()) / self.b + float(data.initial_active[d]) + 1.0) / min_conv
        self.weeks: list[_DepotWeek] = []
        for t in range(T):
            caps = np.zeros(C)
            for c in range(C):
                if conv[c] <= 0 or data.applicant_cap[d, c] <= 0:
                    continue
                # arrivals in week t come from applying weeks t-k >= 0 that have a variable
                ks = np.arange(0, min(t, y.shape[1] - 1) + 1)
                ok = mask[c, t - ks]
                caps[c] = min(float(data.applicant_cap[d, c]), big) * float(y[c, ks][ok].sum()) if ok.any() else 0.0
            unit = np.where(conv > 0, data.cost_per_applicant / np.where(conv > 0, conv, 1.0), np.inf)
            order = np.argsort(unit, kind="stable")
            order = order[caps[order] > 0]
            n_max = float(caps[order].sum()) if len(order) else 0.0
            if np.isfinite(cap_on):
                room = cap_on - self.pipeline[t]
                if room < -1e-9:
                    raise InfeasibleError(
                        f"the instance has no feasible plan: infeasible because of constraint family onboarding_cap "
                        f"(depot {data.depots[d]} week {t + 1}: pipeline {self.pipeline[t]:g} > cap {cap_on:g} drivers/week)",
                        ["onboarding_cap"],
                        None,
                    )
                n_max = min(n_max, max(room, 0.0))
            self.weeks.append(
                _DepotWeek(
                    cum_cap=np.concatenate([[0.0], np.cumsum(caps[order])]),
                    channel_order=order,
                    unit_cost=unit[order],
                    spend_week=np.maximum(t - modal[order], 0),
                    n_max=n_max,
                )
            )
        rate = data.incentive_rate[d]
        width = data.incentive_width[d]
        keep = (rate > 0) & (width > 0)
        order = np.argsort(-rate[keep], kind="stable")
        self.seg_rate = rate[keep][order]  # blocks/currency, best first
        self.seg_width = width[keep][order]  # currency/week
        self.seg_index = np.flatnonzero(keep)[order]
        self.cum_z = np.concatenate([[0.0], np.cumsum(self.seg_width)])  # currency/week
        self.cum_inc = np.concatenate([[0.0], np.cumsum(self.seg_width * self.seg_rate)])  # blocks/week
        self._grid_bounds()

    def _grid_bounds(self):
        """Reachable, useful range of active drivers per week (drivers)."""
        T = self.data.n_weeks
        a0 = float(self.data.initial_active[self.d])
        peak = self.demand.max(axis=1) / self.b  # (T,) drivers needed at the week's highest demand
        need = np.empty(T)  # beyond need[t] drivers every later week is idle even without recruiting
        running = 0.0
        for t in range(T - 1, -1, -1):
            running = max(peak[t], running / self.rho if self.rho > 0 else np.inf)
            need[t] = running
        lo, hi = np.empty(T), np.empty(T)
        plo, phi = a0, a0
        for t in range(T):
            lo[t] = self.rho * plo + self.pipeline[t]
            reach = self.rho * phi + self.pipeline[t] + self.weeks[t].n_max
            hi[t] = max(min(reach, need[t]), self.rho * phi + self.pipeline[t], lo[t])
            plo, phi = lo[t], hi[t]
        self.lo, self.hi, self.a0 = lo, hi, a0
        reach = np.empty(T)  # most drivers any plan can have (for the polish's tables)
        prev = a0
        for t in range(T):
            reach[t] = self.rho * prev + self.pipeline[t] + self.weeks[t].n_max
            prev = reach[t]
        self.reach = np.maximum(reach, hi)

    def polish_tables(self) -> dict:
        """The polisher's price-independent pieces (cached): the kernel padded to T weeks
        (y), the impulse response R[c, j] = sum_{k<=j} y[c,k] rho^(j-k) (drivers per applicant
        j weeks on), the recourse tables F on a uniform capacity grid per week, the drivers
        with no recruiting, applicant bounds and onboarding room."""
        if self._polish_tables is not None:
            return self._polish_tables
        data, T = self.data, self.data.n_weeks
        C = data.shape[1]
        L = data.yield_kernel.shape[1]
        y = np.zeros((C, T))
        y[:, : min(L, T)] = data.yield_kernel[:, : min(L, T)]
        R = np.zeros((C, T))
        for j in range(T):
            R[:, j] = (y[:, : j + 1] * self.rho ** (j - np.arange(j + 1))[None, :]).sum(axis=1)
        # capacity tables span what any plan reaches, capped at 1.5x the useful driver range
        # (beyond it every later week is idle; more drivers only add cost)
        a_hi = np.minimum(self.reach, self.hi + np.maximum(0.5 * (self.hi - self.lo), 1.0))
        qlo = self.b * self.lo - 1e-9
        qhi = self.b * a_hi + self.cum_inc[-1] + 1e-9
        n = POLISH_TABLE_POINTS
        grid = qlo[:, None] + (qhi - qlo)[:, None] * np.linspace(0, 1, n)[None, :]
        F = np.stack([expected_recourse(data, grid[t], self.demand[t], self.p) for t in range(T)])  # (T, n)
        base = np.empty(T)  # drivers with no recruiting
        prev = self.a0
        for t in range(T):
            prev = self.rho * prev + self.pipeline[t]
            base[t] = prev
        cap = float(data.onboarding_cap[self.d])
        self._polish_tables = {
            "y": y, "R": R, "a_hi": a_hi + 1e-9, "qlo": qlo, "qhi": qhi, "n": n, "F": F, "dq": (qhi - qlo) / (n - 1),
            "base": base, "ub": np.where(self.mask, data.applicant_cap[self.d][:, None], 0.0),
            "room": cap - self.pipeline if np.isfinite(cap) else np.full(T, np.inf), "zmax": float(self.cum_z[-1]),
        }
        return self._polish_tables

    # -- priced pieces
    def arrival_cost(self, t: int, n: np.ndarray, price: np.ndarray) -> np.ndarray:
        """Priced cost (currency) of n arrivals (drivers) in week t: channels cheapest first."""
        w = self.weeks[t]
        if len(w.unit_cost) == 0:
            return np.where(n <= 1e-12, 0.0, np.inf)
        slope = w.unit_cost * price[w.spend_week]
        order = np.argsort(slope, kind="stable")
        cum_cap = np.concatenate([[0.0], np.cumsum(np.diff(w.cum_cap)[order])])
        cum_cost = np.concatenate([[0.0], np.cumsum(np.diff(w.cum_cap)[order] * slope[order])])
        out = np.interp(n, cum_cap, cum_cost)
        return np.where((n < -1e-9) | (n > w.n_max + 1e-9), np.inf, out)

    def split_arrivals(self, t: int, n: float, price: np.ndarray) -> np.ndarray:
        """(C,) arrivals per channel (drivers/week) that make up n at the least priced cost."""
        w = self.weeks[t]
        out = np.zeros(self.data.shape[1])
        if len(w.unit_cost) == 0 or n <= 0:
            return out
        slope = w.unit_cost * price[w.spend_week]
        order = np.argsort(slope, kind="stable")
        caps = np.diff(w.cum_cap)[order]
        take = np.clip(n - np.concatenate([[0.0], np.cumsum(caps)[:-1]]), 0.0, caps)
        out[w.channel_order[order]] = take
        return out

    def week_cost(self, t: int, a: np.ndarray, price_t: float) -> tuple[np.ndarray, np.ndarray]:
        """Least priced incentive spend plus expected recourse (currency) for active drivers
        a (N,) in week t; returns (cost, incentive spend Z currency/week)."""
        base_q = self.b * a  # blocks/week from drivers
        if len(self.seg_rate) == 0:
            return expected_recourse(self.data, base_q, self.demand[t], self.p), np.zeros_like(a)
        kinks = _kinks(self.data, self.demand[t])
        need = kinks[None, :] - base_q[:, None]  # (N, K) extra blocks to reach each kink
        z_kink = np.interp(np.clip(need, 0.0, self.cum_inc[-1]), self.cum_inc, self.cum_z)
        cand = np.concatenate([np.broadcast_to(self.cum_z, (len(a), len(self.cum_z))), z_kink], axis=1)
        inc = np.interp(cand, self.cum_z, self.cum_inc)
        cost = price_t * cand + expected_recourse(self.data, base_q[:, None] + inc, self.demand[t], self.p)
        j = np.argmin(cost, axis=1)
        rows = np.arange(len(a))
        return cost[rows, j], cand[rows, j]

    def split_incentive(self, z_total: float) -> np.ndarray:
        """(G,) spend per segment (currency/week) of a total filled best rate first."""
        G = self.data.incentive_width.shape[1]
        out = np.zeros(G)
        if len(self.seg_width):
            take = np.clip(z_total - self.cum_z[:-1], 0.0, self.seg_width)
            out[self.seg_index] = take
        return out


# ---------------------------------------------------------------------------- per-depot DP
def _grids(dep: _Depot, n_points: int) -> list[np.ndarray]:
    """States per week: n_points evenly spaced over the reachable, useful range, plus the
    driver counts at which the week's cost has a kink (demand / blocks per driver, the surge
    cap's kink, each less the blocks of every filled incentive segment), where
    piecewise-linear optima lie."""
    out = []
    for t, (lo, hi) in enumerate(zip(dep.lo, dep.hi, strict=True)):
        if hi - lo <= 1e-9:
            out.append(np.array([lo]))
            continue
        # kinks of the week's cost in drivers: recourse kinks less each incentive breakpoint
        kinks = ((_kinks(dep.data, dep.demand[t])[:, None] - dep.cum_inc[None, :]) / dep.b).ravel()
        kinks = kinks[(kinks > lo) & (kinks < hi)]
        out.append(np.unique(np.concatenate([np.linspace(lo, hi, n_points), kinks])))
    return out


def solve_depot(dep: _Depot, price: np.ndarray, n_points: int, keep_policy: bool = False):
    """DP over weeks for one depot with spend priced by ``price`` (T,) (1 + lam + mu_t).

    Returns (arrivals per channel (C, T) drivers/week, incentive spend (T, G) currency/week,
    priced DP value, unpriced DP value (currency), policy or None)."""
    data = dep.data
    T = data.n_weeks
    grids = _grids(dep, n_points)
    W = [None] * T  # W[t] on grids[t]: week t's cost + cost-to-go after it (priced currency)
    H = [None] * T  # week cost alone on grids[t]
    policy_arr, policy_val = [None] * T, [None] * T
    v_next = np.zeros(len(grids[-1]))  # cost-to-go after the last week
    for t in range(T - 1, -1, -1):
        g = grids[t]
        H[t], _ = dep.week_cost(t, g, float(price[t]))
        W[t] = H[t] + v_next
        prev = grids[t - 1] if t > 0 else np.array([dep.a0])
        base = dep.rho * prev + dep.pipeline[t]  # drivers with no recruiting
        n = g[None, :] - base[:, None]  # arrivals landing exactly on grid points
        cost = dep.arrival_cost(t, n, price) + W[t][None, :]
        n0 = np.zeros_like(base)
        c0 = np.interp(base, g, W[t])
        nm = np.full_like(base, dep.weeks[t].n_max)
        reach = base + nm
        cm = np.where(reach <= g[-1] + 1e-9, dep.arrival_cost(t, nm, price) + np.interp(reach, g, W[t]), np.inf)
        allc = np.concatenate([cost, c0[:, None], cm[:, None]], axis=1)
        alln = np.concatenate([n, n0[:, None], nm[:, None]], axis=1)
        j = np.argmin(allc, axis=1)
        v_next = allc[np.arange(len(prev)), j]
        if keep_policy:
            policy_arr[t] = alln[np.arange(len(prev)), j]
            policy_val[t] = v_next.copy()
    priced_value = float(v_next[0])
    # forward pass from the actual start, re-optimizing at off-grid states
    C, G = data.shape[1], data.incentive_width.shape[1]
    arrivals = np.zeros((C, T))
    spend = np.zeros((T, G))
    a = dep.a0
    unpriced = 0.0
    for t in range(T):
        g = grids[t]
        base = dep.rho * a + dep.pipeline[t]
        to_go = W[t] - H[t]
        cand = np.concatenate([[base, base + dep.weeks[t].n_max], g[(g >= base) & (g <= base + dep.weeks[t].n_max)]])
        cand = cand[cand <= g[-1] + 1e-9] if (cand <= g[-1] + 1e-9).any() else cand[:1]
        n = cand - base
        hc, _ = dep.week_cost(t, cand, float(price[t]))
        total = dep.arrival_cost(t, n, price) + hc + np.interp(cand, g, to_go)
        j = int(np.argmin(total))
        a, nt = float(cand[j]), float(max(n[j], 0.0))
        arrivals[:, t] = dep.split_arrivals(t, nt, price)
        _, z = dep.week_cost(t, np.array([a]), float(price[t]))
        spend[t] = dep.split_incentive(float(z[0]))
        unpriced += float(np.dot(arrivals[:, t], _unit_costs(dep, t))) + float(z[0])
        unpriced += float(expected_recourse(data, np.array([dep.b * a + _inc(dep, float(z[0]))]), dep.demand[t], dep.p)[0])
    policy = None
    if keep_policy:
        policy = DepotPolicy(data.depots[dep.d], [grids[t - 1] if t > 0 else np.array([dep.a0]) for t in range(T)],
                             policy_arr, policy_val, price.copy())
    return arrivals, spend, priced_value, unpriced, policy


def _unit_costs(dep: _Depot, t: int) -> np.ndarray:
    """(C,) unpriced currency per arriving driver by channel position (inf if unavailable)."""
    out = np.zeros(dep.data.shape[1])
    w = dep.weeks[t]
    out[w.channel_order] = w.unit_cost
    return out


def _inc(dep: _Depot, z: float) -> float:
    return float(np.interp(z, dep.cum_z, dep.cum_inc)) if len(dep.seg_rate) else 0.0


# ---------------------------------------------------------------------------- realization
def realize(data: ModelData, d: int, arrivals: np.ndarray) -> np.ndarray:
    """Applicants (C, T) whose expected arrivals match ``arrivals`` (C, T) as closely as the
    kernel allows: bounded non-negative least squares by projected gradient, started from
    the shift by the modal lag. Applying weeks without a variable stay 0."""
    D, C, T, _ = data.shape
    y = data.yield_kernel
    mask = data.recruit_mask()[d]
    out = np.zeros((C, T))
    for c in range(C):
        target = arrivals[c]
        if target.sum() <= 0:
            continue
        k = np.arange(y.shape[1])
        # Y[t, tau] = y[c, t - tau]: arrivals in week t per applicant of week tau
        lag = np.arange(T)[:, None] - np.arange(T)[None, :]
        Y = np.where((lag >= 0) & (lag < len(k)), y[c, np.clip(lag, 0, len(k) - 1)], 0.0) * mask[c][None, :]
        cap = float(data.applicant_cap[d, c])
        ub = np.where(mask[c], cap, 0.0)
        modal = int(np.argmax(y[c]))
        x = np.zeros(T)
        x[: T - modal] = target[modal:] / y[c].sum()
        x = np.clip(x, 0.0, ub)
        step = 1.0 / max(np.linalg.norm(Y, 2) ** 2, 1e-12)
        for _ in range(DECONV_ITERATIONS):
            x = np.clip(x - step * (Y.T @ (Y @ x - target)), 0.0, ub)
        out[c] = x
    return out


def _trim_onboarding(data: ModelData, d: int, x: np.ndarray) -> np.ndarray:
    """Lower the latest cohorts until recruited arrivals + pipeline <= onboarding cap."""
    cap = float(data.onboarding_cap[d])
    if not np.isfinite(cap):
        return x
    y = data.yield_kernel
    T = data.n_weeks
    x = x.copy()
    for t in range(T):
        ks = np.arange(0, min(t, y.shape[1] - 1) + 1)
        excess = float((y[:, ks] * x[:, t - ks]).sum()) + data.pipeline[d, t] - cap
        for k in ks:  # latest cohort first (k = 0, 1, ...)
            if excess <= 1e-12:
                break
            contrib = y[:, k] * x[:, t - k]
            tot = contrib.sum()
            if tot <= 0:
                continue
            cut = min(1.0, excess / tot)
            x[:, t - k] *= 1.0 - cut
            excess -= cut * tot
    return x



# ---------------------------------------------------------------------------- polish
#: States per week of the polish's week-cost tables (linear interpolation between them).
POLISH_TABLE_POINTS = 1501
#: Coordinate sweeps of the polish, and its relative improvement threshold per sweep.
POLISH_SWEEPS = 30
POLISH_RTOL = 1e-7
#: Spend-neutral exchanges are tried between (channel, week) pairs at most this many weeks apart.
PAIR_WEEKS = 4


class _Polisher:
    """Local improvement of one depot's plan on its exact (priced) cost.

    Coordinates: applicants x[c, tau] and the week's total incentive spend Z[t] (filled
    best rate first). J(x, Z) = sum price[tau] cost_c x[c,tau] + sum price[t] Z[t]
    + sum_t f_t(q_t), with q_t = b a_t(x) + inc(Z_t) blocks/week, a_t linear in x
    (impulse response R[c, j] = sum_{k<=j} y[c,k] rho^(j-k) drivers per applicant j weeks
    on), and f_t the week's expected recourse, tabulated on a uniform capacity grid.
    Moves: one coordinate, a channel's shift to the next week, channel swaps, and
    spend-neutral exchanges, each an exact-on-a-grid 1-D search over its feasible interval
    (box, onboarding cap, and any budget ``limits``); accepted only if J falls."""

    def __init__(self, dep: _Depot, price: np.ndarray):
        data = dep.data
        D, C, T, _ = data.shape
        self.dep, self.price, self.T, self.C = dep, price, T, C
        self.__dict__.update(dep.polish_tables())  # price-independent, built once per depot
        self.unit = data.cost_per_applicant[:, None] * price[None, :]  # (C, T) priced currency per applicant

    # -- pieces
    def inc(self, Z: np.ndarray) -> np.ndarray:
        return np.interp(Z, self.dep.cum_z, self.dep.cum_inc) if self.zmax > 0 else np.zeros_like(Z)

    def f(self, q: np.ndarray) -> np.ndarray:
        """Sum over weeks of tabulated recourse for capacities q (..., T)."""
        pos = np.clip((q - self.qlo) / self.dq, 0.0, self.n - 1 - 1e-9)
        i = pos.astype(int)
        w = pos - i
        t = np.arange(self.T)
        return ((1 - w) * self.F[t, i] + w * self.F[t, i + 1]).sum(axis=-1)

    def drivers(self, x: np.ndarray) -> np.ndarray:
        a = self.base.copy()
        for c in range(self.C):
            a += np.convolve(x[c], self.R[c])[: self.T]
        return a

    def arrivals(self, x: np.ndarray) -> np.ndarray:
        return sum(np.convolve(x[c], self.y[c])[: self.T] for c in range(self.C))

    def capacity(self, x: np.ndarray, Z: np.ndarray) -> np.ndarray:
        return self.dep.b * self.drivers(x) + self.inc(Z)

    def cost(self, x: np.ndarray, Z: np.ndarray) -> float:
        return float((self.unit * x).sum() + (self.price * Z).sum() + self.f(self.capacity(x, Z)))

    def exact_cost(self, x: np.ndarray, Z: np.ndarray) -> float:
        """cost() with the recourse computed exactly instead of from the tables."""
        q = self.capacity(x, Z)
        rec = sum(float(expected_recourse(self.dep.data, q[t : t + 1], self.dep.demand[t], self.dep.p)[0]) for t in range(self.T))
        return float((self.unit * x).sum() + (self.price * Z).sum() + rec)

    def best_incentives(self, x: np.ndarray) -> np.ndarray:
        """(T,) least priced incentive spend per week for the drivers x brings (no budgets)."""
        a = self.drivers(x)
        return np.array([self.dep.week_cost(t, a[t : t + 1], float(self.price[t]))[1][0] for t in range(self.T)])

    # -- moves
    def moves(self):
        """Directions tried, as (coords, weights): each coordinate; each channel's shift to
        the next week; each swap between two channels in a week (equal drivers at week T);
        and spend-neutral exchanges between any two (channel, week) pairs up to
        PAIR_WEEKS apart (the same money moved), which matter when budgets bind."""
        out = []
        cells = [(c, t) for c in range(self.C) for t in range(self.T) if self.ub[c, t] > 0]
        for c, t in cells:
            out.append(([(c, t)], [1.0]))
            if t + 1 < self.T and self.ub[c, t + 1] > 0:
                out.append(([(c, t), (c, t + 1)], [-1.0, 1.0]))
            for c2 in range(c + 1, self.C):
                if self.ub[c2, t] > 0:
                    out.append(([(c, t), (c2, t)], [-1.0, self.R[c, -1] / max(self.R[c2, -1], 1e-12)]))
        for i, (c, t) in enumerate(cells):
            for c2, t2 in cells[i + 1:]:
                if abs(t2 - t) <= PAIR_WEEKS and self.unit[c, t] > 0 and self.unit[c2, t2] > 0:
                    out.append(([(c, t), (c2, t2)], [-1.0, self.unit[c, t] / self.unit[c2, t2]]))
        return out

    def _line(self, lo, hi, value):
        """Minimum of value(d) over [lo, hi] on a 17-point grid refined three times."""
        best_d, best_v = 0.0, 0.0
        a_lo, a_hi = lo, hi
        for _ in range(3):
            d = np.linspace(a_lo, a_hi, 17)
            v = value(d)
            j = int(np.argmin(v))
            if v[j] < best_v:
                best_d, best_v = float(d[j]), float(v[j])
            span = (a_hi - a_lo) / 16
            a_lo, a_hi = max(lo, d[j] - span), min(hi, d[j] + span)
        return best_d, best_v

    def step(self, x: np.ndarray, Z: np.ndarray, coords, weights, limits=()) -> float:
        """Best step of x along one direction, in place; returns the (negative) change."""
        lo, hi = -np.inf, np.inf
        da, dn, dc = np.zeros(self.T), np.zeros(self.T), 0.0
        for (c, tau), w in zip(coords, weights, strict=True):
            if w > 0:
                lo, hi = max(lo, -x[c, tau] / w), min(hi, (self.ub[c, tau] - x[c, tau]) / w)
            else:
                lo, hi = max(lo, (self.ub[c, tau] - x[c, tau]) / w), min(hi, -x[c, tau] / w)
            da[tau:] += w * self.R[c, : self.T - tau]
            dn[tau:] += w * self.y[c, : self.T - tau]
            dc += w * self.unit[c, tau]
        for coef, room in limits:
            if coef > 1e-15:
                hi = min(hi, max(room, 0.0) / coef)
            elif coef < -1e-15:
                lo = max(lo, max(room, 0.0) / coef)
        a = self.drivers(x)
        slack = self.room - self.arrivals(x)
        for vec, top in ((dn, slack), (da, self.a_hi - a)):
            pos, neg = vec > 1e-15, vec < -1e-15
            if pos.any():
                hi = min(hi, float(np.min(top[pos] / vec[pos])))
            if neg.any():
                lo = max(lo, float(np.max(top[neg] / vec[neg])))
        if not hi > lo + 1e-12:
            return 0.0
        q = self.dep.b * a + self.inc(Z)
        base = self.f(q)
        dq = self.dep.b * da
        d, gain = self._line(lo, hi, lambda d: d * dc + self.f(q[None, :] + d[:, None] * dq[None, :]) - base)
        if gain < 0:
            for (cc, tt), ww in zip(coords, weights, strict=True):
                x[cc, tt] = min(max(x[cc, tt] + d * ww, 0.0), self.ub[cc, tt])
        return gain

    def step_incentive(self, x: np.ndarray, Z: np.ndarray, t: int, room: float = np.inf) -> float:
        """Best incentive spend of week t (within [0, max] and ``room`` more), in place."""
        if self.zmax <= 0:
            return 0.0
        q = self.capacity(x, Z)
        lo, hi = -Z[t], min(self.zmax - Z[t], max(room, 0.0))
        if not hi > lo + 1e-12:
            return 0.0
        qt = q[t] - self.inc(Z[t : t + 1])[0]

        def value(d):
            qq = np.broadcast_to(q, (len(d), self.T)).copy()
            qq[:, t] = qt + self.inc(Z[t] + d)
            return self.price[t] * d + self.f(qq) - self.f(q)

        d, gain = self._line(lo, hi, value)
        if gain < 0:
            Z[t] = min(max(Z[t] + d, 0.0), self.zmax)
        return gain

    def run(self, x: np.ndarray, Z: np.ndarray | None = None, sweeps: int = POLISH_SWEEPS):
        """Polish without budgets (the prices stand in for them); returns (x, Z)."""
        x = x.copy()
        Z = self.best_incentives(x) if Z is None else Z.copy()
        moves = self.moves()
        for _ in range(sweeps):
            before = self.cost(x, Z)
            for coords, w in moves:
                self.step(x, Z, coords, w)
            for t in range(self.T):
                self.step_incentive(x, Z, t)
            if before - self.cost(x, Z) <= POLISH_RTOL * max(1.0, abs(before)):
                break
        return x, Z


# ---------------------------------------------------------------------------- the engine
class DPEngine:
    """Prices, per-depot DPs, realization, mixing and repair for one ModelData."""

    def __init__(self, data: ModelData, options: DPOptions | None = None):
        self.data = data
        self.options = options or DPOptions()
        self.depots = [_Depot(data, d) for d in range(len(data.depots))]
        D, C, T, _ = data.shape
        self.n_points = self.options.grid_points or self.options.min_grid_points
        self.mu = np.zeros(T)
        self.calls = 0
        self.polish = True

    def depot_plan(self, d: int, lam: float, n_points: int | None = None):
        """Realized (and, when self.polish, polished) plan of depot d at price 1 + lam + mu:
        (applicants (C, T), incentive spend (T, G), unpriced DP value)."""
        price = 1.0 + lam + self.mu
        arrivals, spend, priced, unpriced, _ = solve_depot(self.depots[d], price, n_points or self.n_points)
        self.calls += 1
        x = _trim_onboarding(self.data, d, realize(self.data, d, arrivals))
        pol = _Polisher(self.depots[d], price)
        Z = pol.best_incentives(x)
        if self.polish:
            xp, Zp = pol.run(x, Z)
            if pol.exact_cost(xp, Zp) < pol.exact_cost(x, Z):  # the tables interpolate; trust only exact gains
                x, Z = xp, Zp
        spend = np.stack([self.depots[d].split_incentive(float(v)) for v in Z])
        return x, spend, unpriced

    def at_price(self, depots: list[int], lam: float):
        """(x (k,C,T), z (k,T,G), DP value) of ``depots`` at total price lam (+ their mu)."""
        parts = [self.depot_plan(d, lam) for d in depots]
        return np.stack([p[0] for p in parts]), np.stack([p[1] for p in parts]), sum(p[2] for p in parts)

    def spend(self, plan) -> float:
        return float(np.einsum("kct,c->", plan[0], self.data.cost_per_applicant) + plan[1].sum())

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
        return np.einsum("kct,c->t", plan[0], self.data.cost_per_applicant) + plan[1].sum(axis=(0, 2))

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


#: Cross-depot transfers (same channel and week, spend-neutral) are tried up to this many depots.
MAX_TRANSFER_DEPOTS = 12


def _transfers(data: ModelData, pols: list[_Polisher], x: np.ndarray, Z: np.ndarray, regions: np.ndarray) -> None:
    """Move applicants of one channel and week from depot d to depot e (spend-neutral, so
    weekly and total budgets hold; only within a region when that region has a budget)."""
    D, C, T, _ = data.shape
    for c in range(C):
        for t in range(T):
            for d in range(D):
                for e in range(D):
                    if d == e or pols[d].ub[c, t] <= 0 or pols[e].ub[c, t] <= 0 or x[d, c, t] <= 0:
                        continue
                    if regions[d] != regions[e] and (regions[d] in data.budget_region or regions[e] in data.budget_region):
                        continue
                    pd_, pe = pols[d], pols[e]
                    hi = min(x[d, c, t], pe.ub[c, t] - x[e, c, t])
                    dn_e = np.zeros(T)
                    dn_e[t:] = pe.y[c, : T - t]
                    slack = pe.room - pe.arrivals(x[e])
                    if (dn_e > 1e-15).any():
                        hi = min(hi, float(np.min(slack[dn_e > 1e-15] / dn_e[dn_e > 1e-15])))
                    if not hi > 1e-12:
                        continue
                    dq_d, dq_e = np.zeros(T), np.zeros(T)
                    dq_d[t:] = pd_.dep.b * pd_.R[c, : T - t]
                    dq_e[t:] = pe.dep.b * pe.R[c, : T - t]
                    q_d, q_e = pd_.capacity(x[d], Z[d]), pe.capacity(x[e], Z[e])
                    base = pd_.f(q_d) + pe.f(q_e)
                    delta, gain = pd_._line(0.0, hi, lambda s, q_d=q_d, q_e=q_e, dq_d=dq_d, dq_e=dq_e, pe=pe, pd_=pd_, base=base:
                                            pd_.f(q_d[None] - s[:, None] * dq_d[None]) + pe.f(q_e[None] + s[:, None] * dq_e[None]) - base)
                    if gain < 0:
                        x[d, c, t] -= delta
                        x[e, c, t] += delta


def global_polish(data: ModelData, dep_list: list[_Depot], x: np.ndarray, z: np.ndarray,
                  sweeps: int = POLISH_SWEEPS) -> tuple[np.ndarray, np.ndarray]:
    """Improve a feasible plan on its true (unpriced) expected cost, keeping every budget:
    per-depot moves of applicants and incentives as in _Polisher, each bounded by the slack
    of the weekly, regional and total budgets it touches; cross-depot transfers."""
    D, C, T, _ = data.shape
    pols = [_Polisher(dep, np.ones(T)) for dep in dep_list]
    cpa = data.cost_per_applicant
    regions = np.asarray(data.regions)
    x = x.copy()
    Z = z.sum(axis=2).copy()  # (D, T) currency/week, feasible on entry

    def limits_for(d, per_week):
        week_spend = np.einsum("dct,c->t", x, cpa) + Z.sum(axis=0)
        out = [(per_week[t], data.budget_weekly[t] - week_spend[t]) for t in np.flatnonzero(per_week)]
        total = float(per_week.sum())
        out.append((total, data.budget_total - week_spend.sum()))
        r = regions[d]
        if r in data.budget_region:
            m = regions == r
            out.append((total, data.budget_region[r] - float(np.einsum("dct,c->", x[m], cpa) + Z[m].sum())))
        return out

    for _ in range(sweeps):
        before = sum(p.cost(x[d], Z[d]) for d, p in enumerate(pols))
        for d, pol in enumerate(pols):
            for coords, w in pol.moves():
                per_week = np.zeros(T)
                for (c, t), ww in zip(coords, w, strict=True):
                    per_week[t] += ww * cpa[c]
                pol.step(x[d], Z[d], coords, w, limits_for(d, per_week))
            for t in range(T):
                e_t = np.zeros(T)
                e_t[t] = 1.0
                room = min(r for coef, r in limits_for(d, e_t))
                pol.step_incentive(x[d], Z[d], t, room)
        if D <= MAX_TRANSFER_DEPOTS:
            _transfers(data, pols, x, Z, regions)
        after = sum(p.cost(x[d], Z[d]) for d, p in enumerate(pols))
        if before - after <= POLISH_RTOL * max(1.0, abs(before)):
            break
    z_out = np.stack([np.stack([dep_list[d].split_incentive(float(Z[d, t])) for t in range(T)]) for d in range(D)])
    return x, z_out


def repair_budgets(data: ModelData, x: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Scale spend down where a budget is exceeded (weeks, regions, total), in that order."""
    x, z = x.copy(), z.copy()
    notes = []
    cpa = data.cost_per_applicant
    B_w = data.budget_weekly
    shifted = scaled = 0
    T = data.n_weeks
    mask = data.recruit_mask()
    for t in range(T):
        spend_t = float(np.einsum("dc,c->", x[:, :, t], cpa) + z[:, t].sum())
        if not spend_t > B_w[t] * (1 + BUDGET_RTOL):
            continue
        keep = B_w[t] / spend_t
        excess_x = x[:, :, t] * (1 - keep)
        x[:, :, t] *= keep
        z[:, t] *= keep
        if t + 1 < T:  # recruit the cut applicants one week later where that still lands in the horizon
            movable = excess_x * mask[:, :, t + 1]
            room = np.maximum(data.applicant_cap - x[:, :, t + 1], 0.0)
            moved = np.minimum(movable, room)
            x[:, :, t + 1] += moved
            shifted += 1
        else:
            scaled += 1
    if shifted or scaled:
        notes.append(f"weekly budget: applicants over the cap moved one week later in {shifted} week(s), cut in {scaled}")
    regions = np.asarray(data.regions)
    for r, cap in data.budget_region.items():
        m = regions == r
        s = float(np.einsum("dct,c->", x[m], cpa) + z[m].sum())
        if np.isfinite(cap) and s > cap * (1 + BUDGET_RTOL):
            x[m] *= cap / s
            z[m] *= cap / s
            notes.append(f"region {r} budget: spend scaled by {cap / s:.6f}")
    s = float(np.einsum("dct,c->", x, cpa) + z.sum())
    if np.isfinite(data.budget_total) and s > data.budget_total * (1 + BUDGET_RTOL):
        x *= data.budget_total / s
        z *= data.budget_total / s
        notes.append(f"total budget: spend scaled by {data.budget_total / s:.6f}")
    return x, z, notes


def solve_dp(data: ModelData, options: DPOptions | None = None, policies: bool = False) -> DPResult:
    """Plan with the DP engine: returns decisions that meet every first-stage constraint,
    the DP's own value and the exact evaluator's expected cost of them."""
    options = options or DPOptions()
    t0 = time.perf_counter()
    if data.integer_applicants:
        log.warning("the DP engine plans fractional applicants; --integer is ignored by it")
    engine = DPEngine(data, options)
    # adaptive grid: double until the DP value (no budget price) settles
    n = options.grid_points or options.min_grid_points
    change = float("nan")
    if options.grid_points is None:
        prev = None
        while True:
            value = sum(solve_depot(dep, np.ones(data.n_weeks), n)[3] for dep in engine.depots)
            if prev is not None:
                change = abs(value - prev) / max(1.0, abs(value))
                if change <= options.grid_rtol:
                    break
            if 2 * n - 1 > options.max_grid_points:
                break
            prev = value
            n = 2 * n - 1
    log.info("DP grid: %d states per week (value change between the last two grids %.2e)", n, change)
    engine.n_points = n
    (x, z, dp_value), lam = engine.run()
    log.info("DP: total-budget price %.4f per %s; %d depot DPs", lam, data.currency, engine.calls)
    x, z, notes = repair_budgets(data, x, z)
    for note in notes:
        log.info("DP repair: %s", note)
    before = evaluate_decisions(data, Decisions(x, z)).expected_cost
    if options.polish:
        xp, zp = global_polish(data, engine.depots, x, z)
        ev = evaluate_decisions(data, Decisions(xp, zp)).expected_cost
        if ev <= before:  # the polish searches tabulated costs; keep it only if the exact evaluator agrees
            x, z = xp, zp
        else:
            ev = before
    else:
        ev = before
    log.info("DP: expected cost %.2f %s after realization and repair, %.2f after the polish", before, data.currency, ev)
    violations = check_feasibility(data, Decisions(x, z))
    if violations:  # pragma: no cover - the repairs guarantee feasibility; a bug if reached
        raise RuntimeError(f"DP plan violates {violations}")
    result = DPResult(
        decisions=Decisions(x, z),
        dp_value=dp_value,
        evaluated=ev,
        grid_points=n,
        grid_change=change,
        prices={"total": lam, "weekly": [float(m) for m in engine.mu]},
        seconds=time.perf_counter() - t0,
        iterations=engine.calls,
    )
    if policies:
        price = 1.0 + lam + engine.mu
        for dep in engine.depots:
            result.policies[data.depots[dep.d]] = solve_depot(dep, price, n, keep_policy=True)[4]
    return result
