"""The per-depot dynamic program over weeks, with active drivers as the state."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from formulations.two_stage.drivers import carry_over
from formulations.two_stage.recourse import expected_recourse, recourse_kinks
from optplan.solvers.dp.depot import DepotModel


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
class DepotSolution:
    """What the per-depot DP returns."""

    arrivals: np.ndarray  # (C, T) new drivers per channel, drivers/week
    spend: np.ndarray  # (T, G) incentive spend per segment, currency/week
    priced_value: float  # DP value at the prices (priced currency)
    value: float  # the same plan's cost without prices (currency)
    policy: DepotPolicy | None = None

def _grids(dep: DepotModel, n_points: int) -> list[np.ndarray]:
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
        kinks = ((recourse_kinks(dep.data, dep.demand[t])[:, None] - dep.cum_inc[None, :]) / dep.b).ravel()
        kinks = kinks[(kinks > lo) & (kinks < hi)]
        out.append(np.unique(np.concatenate([np.linspace(lo, hi, n_points), kinks])))
    return out


def solve_depot(dep: DepotModel, price: np.ndarray, n_points: int, keep_policy: bool = False):
    """DP over weeks for one depot with spend priced by ``price`` (T,) (1 + lam + mu_t).

    Returns a DepotSolution (the policy only with ``keep_policy``)."""
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
        base = carry_over(dep.rho, prev, dep.pipeline[t])  # drivers with no recruiting
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
        base = carry_over(dep.rho, a, dep.pipeline[t])
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
        unpriced += float(expected_recourse(data, np.array([dep.b * a + float(dep.curve.blocks(float(z[0])))]), dep.demand[t], dep.p)[0])
    policy = None
    if keep_policy:
        policy = DepotPolicy(data.depots[dep.d], [grids[t - 1] if t > 0 else np.array([dep.a0]) for t in range(T)],
                             policy_arr, policy_val, price.copy())
    return DepotSolution(arrivals, spend, priced_value, unpriced, policy)


def _unit_costs(dep: DepotModel, t: int) -> np.ndarray:
    """(C,) unpriced currency per arriving driver by channel position (inf if unavailable)."""
    out = np.zeros(dep.data.shape[1])
    w = dep.weeks[t]
    out[w.channel_order] = w.unit_cost
    return out
