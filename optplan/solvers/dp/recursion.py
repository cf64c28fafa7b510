"""The per-depot dynamic program over weeks, with active drivers as the state."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from formulations.two_stage.drivers import carry_over
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

def _best_targets(dep: DepotModel, t: int, base: np.ndarray, steps, g: np.ndarray, W: np.ndarray):
    """For each state's drivers carried into week t, ``base`` (M,) drivers, the best drivers
    y in [base, base + n_max] to end week t with and its cost A_t(y - base) + W(y) (priced
    currency; A_t the arrival cost, W on the grid g, linear between grid points).

    A_t is convex piecewise linear in the new drivers (channels cheapest priced first) and W
    is convex (the relaxed problem is convex), so the minimum over y lies at a breakpoint of
    A_t (base + each channel's cumulative cap), at a base-stock level S_k = argmin_y W(y) +
    s_k y for a channel slope s_k (W's subgradient meets -s_k inside that channel's piece), or
    at an end of the interval: (2C + 2) candidates per state instead of the whole grid.
    ``steps``: (cum_cap, slope, cum_cost) of dep.priced_steps for week t."""
    cum_cap, slope, cum_cost = steps
    n_max = dep.weeks[t].n_max
    levels = g[np.argmin(W[None, :] + slope[:, None] * g[None, :], axis=1)] if len(slope) else np.zeros(0)
    cand = np.concatenate([base[:, None] + np.minimum(cum_cap, n_max)[None, :],
                           np.broadcast_to(levels, (len(base), len(levels))), (base + n_max)[:, None]], axis=1)
    top = np.maximum(g[-1], base)  # no target beyond the grid (there every later week is idle)
    y = np.minimum(np.clip(cand, base[:, None], (base + n_max)[:, None]), top[:, None])
    cost = np.interp(y - base[:, None], cum_cap, cum_cost) + np.interp(y, g, W)
    j = np.argmin(cost, axis=1)
    rows = np.arange(len(base))
    return y[rows, j], cost[rows, j]


def solve_depot(dep: DepotModel, price: np.ndarray, n_points: int, keep_policy: bool = False):
    """DP over weeks for one depot with spend priced by ``price`` (T,) (1 + lam + mu_t).

    Returns a DepotSolution (the policy only with ``keep_policy``)."""
    data = dep.data
    T = data.n_weeks
    grids = dep.grids(n_points)
    width = max(len(g) for g in grids)
    padded = np.stack([np.pad(g, (0, width - len(g)), mode="edge") for g in grids])  # (T, N) drivers
    levels = dep.incentive_levels(price)
    H = dep.week_costs(padded, price, np.arange(T)[:, None], levels)[0]  # (T, N) week cost alone
    steps = []  # per week: the priced arrival cost's breakpoints, slopes and values
    for t in range(T):
        cum_cap, slope = dep.priced_steps(t, price)
        steps.append((cum_cap, slope, np.concatenate([[0.0], np.cumsum(np.diff(cum_cap) * slope)])))
    W = [None] * T  # W[t] on grids[t]: week t's cost + cost-to-go after it (priced currency)
    policy_arr, policy_val = [None] * T, [None] * T
    v_next = np.zeros(len(grids[-1]))  # cost-to-go after the last week
    for t in range(T - 1, -1, -1):
        g = grids[t]
        W[t] = H[t, : len(g)] + v_next
        prev = grids[t - 1] if t > 0 else np.array([dep.a0])
        base = carry_over(dep.rho, prev, dep.pipeline[t])  # drivers with no recruiting
        y, v_next = _best_targets(dep, t, base, steps[t], g, W[t])
        if keep_policy:
            policy_arr[t] = y - base
            policy_val[t] = v_next.copy()
    priced_value = float(v_next[0])
    # forward pass from the actual start: off-grid states, the exact week cost at the candidates
    C, G = data.shape[1], data.incentive_width.shape[1]
    arrivals = np.zeros((C, T))
    active, Z = np.zeros(T), np.zeros(T)
    a = dep.a0
    for t in range(T):
        g = grids[t]
        cum_cap, slope, cum_cost = steps[t]
        base = carry_over(dep.rho, a, dep.pipeline[t])
        n_max = dep.weeks[t].n_max
        cand = np.concatenate([[base, base + n_max], base + np.minimum(cum_cap, n_max), g[(g >= base) & (g <= base + n_max)]])
        cand = cand[cand <= g[-1] + 1e-9] if (cand <= g[-1] + 1e-9).any() else cand[:1]
        hc, zc = dep.week_costs(cand, price, t, levels)
        total = np.interp(cand - base, cum_cap, cum_cost) + hc + np.interp(cand, g, W[t] - H[t, : len(g)])
        j = int(np.argmin(total))
        a, active[t], Z[t] = float(cand[j]), float(cand[j]), float(zc[j])
        arrivals[:, t] = dep.split_arrivals(t, float(max(cand[j] - base, 0.0)), price)
    spend = np.stack([dep.split_incentive(z) for z in Z]) if T else np.zeros((0, G))
    capacity = dep.b * active + dep.curve.blocks(Z)
    unpriced = float((arrivals * _unit_costs(dep)).sum() + Z.sum() + dep.recourse(capacity, np.arange(T)).sum())
    policy = None
    if keep_policy:
        policy = DepotPolicy(data.depots[dep.d], [grids[t - 1] if t > 0 else np.array([dep.a0]) for t in range(T)],
                             policy_arr, policy_val, price.copy())
    return DepotSolution(arrivals, spend, priced_value, unpriced, policy)


def _unit_costs(dep: DepotModel) -> np.ndarray:
    """(C, T) unpriced currency per arriving driver by channel position and week (0 where a
    channel brings nobody)."""
    out = np.zeros((dep.data.shape[1], dep.data.n_weeks))
    for t, w in enumerate(dep.weeks):
        out[w.channel_order, t] = w.unit_cost
    return out
