"""The per-depot dynamic program over weeks, with active drivers as the state."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from formulations.two_stage.drivers import capacity as capacity_of
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

class DepotBatch:
    """The price-independent arrays of k depots' DPs, stacked so that each week is one array
    operation for all of them (the per-week Python work is paid once per batch, not per depot).

    grids (T, k, N): the states of each depot and week (``DepotModel.grids``), padded by
    repeating the last; caps (k, T, C): most arrivals per channel (drivers/week); room (k, T):
    onboarding room; unit (C,) currency per arriving driver; spend_week (T, C): the week whose
    budget pays for an arrival; offsets (k,): each depot's states shifted to a range of its own
    so that one np.interp serves all depots."""

    def __init__(self, deps: list[DepotModel], n_points: int):
        self.deps, self.n_points = deps, n_points
        data = deps[0].data
        D, C, T, _ = data.shape
        self.T, self.C, self.k = T, C, len(deps)
        grids = [dep.grids(n_points) for dep in deps]
        N = max(len(g) for gs in grids for g in gs)
        self.sizes = [[len(g) for g in gs] for gs in grids]
        self.grids = np.stack([np.stack([np.pad(gs[t], (0, N - len(gs[t])), mode="edge") for gs in grids]) for t in range(T)])
        self.rho = np.array([dep.rho for dep in deps])
        self.b = np.array([dep.b for dep in deps])
        self.a0 = np.array([dep.a0 for dep in deps])
        self.pipeline = np.stack([dep.pipeline for dep in deps])  # (k, T)
        self.caps = np.zeros((self.k, T, C))
        self.n_max = np.zeros((self.k, T))
        for i, dep in enumerate(deps):
            for t, w in enumerate(dep.weeks):
                self.caps[i, t, w.channel_order] = np.diff(w.cum_cap)
                self.n_max[i, t] = w.n_max
        per_driver = data.cost_per_driver()  # currency/driver, inf where a channel never converts
        self.unit = np.where(np.isfinite(per_driver), per_driver, 0.0)
        self.unit_order = np.argsort(per_driver, kind="stable")
        modal = data.modal_lag()
        self.spend_week = np.maximum(np.arange(T)[:, None] - modal[None, :], 0)  # (T, C)
        self.offsets = (float(self.grids.max(initial=0.0)) + 1.0) * np.arange(self.k)

    def steps(self, t: int, price: np.ndarray):
        """Week t's priced arrival cost, channels cheapest priced first: (order (C,), caps
        (k, C) drivers/week, cumulative caps (k, C+1), slopes (C,) priced currency per driver)."""
        o0 = self.unit_order
        slope = self.unit[o0] * price[self.spend_week[t, o0]]
        order = o0[np.argsort(slope, kind="stable")]
        caps = self.caps[:, t, order]
        cum = np.concatenate([np.zeros((self.k, 1)), np.cumsum(caps, axis=1)], axis=1)
        return order, caps, cum, slope[np.argsort(slope, kind="stable")]

    def targets(self, t: int, base: np.ndarray, step, W: np.ndarray):
        """For drivers carried into week t, ``base`` (k, M), the best drivers y in
        [base, base + n_max] to end week t with, and the cost A_t(y - base) + W(y) (priced
        currency; A_t the arrival cost, W (k, N) on this week's grids, linear between them).

        A_t is convex piecewise linear in the new drivers and W is convex (the relaxed problem
        is convex), so the minimum lies at a breakpoint of A_t (base + each channel's
        cumulative cap), at a base-stock level S_c = argmin_y W(y) + s_c y for a channel slope
        s_c (W's subgradient meets -s_c inside that channel's piece), or at an end of the
        interval: 2C + 2 candidates per state instead of the whole grid."""
        _, caps, cum, slope = step
        g = self.grids[t]  # (k, N)
        n_max = self.n_max[:, t][:, None]  # (k, 1)
        levels = np.take_along_axis(g, np.argmin(W[:, None, :] + slope[None, :, None] * g[:, None, :], axis=2), axis=1)
        cand = np.concatenate([base[:, :, None] + np.minimum(cum, n_max)[:, None, :],
                               np.broadcast_to(levels[:, None, :], base.shape + (self.C,)),
                               (base + n_max)[:, :, None]], axis=2)  # (k, M, 2C+2)
        top = np.maximum(g[:, -1][:, None], base)  # no target beyond the grid (every later week idle there)
        y = np.minimum(np.clip(cand, base[:, :, None], (base + n_max)[:, :, None]), top[:, :, None])
        new = y - base[:, :, None]
        arrival = (slope[None, None, None, :] * np.clip(new[..., None] - cum[:, None, None, :-1], 0.0,
                                                       caps[:, None, None, :])).sum(axis=3)
        off = self.offsets[:, None, None]
        inside = np.clip(y, g[:, :1, None], g[:, -1:, None])
        cost = arrival + np.interp(inside + off, (g + self.offsets[:, None]).ravel(), W.ravel())
        j = np.argmin(cost, axis=2)[..., None]
        return np.take_along_axis(y, j, axis=2)[..., 0], np.take_along_axis(cost, j, axis=2)[..., 0]


def solve_depots(batch: DepotBatch, price: np.ndarray, keep_policy: bool = False) -> list[DepotSolution]:
    """DP over weeks for every depot of ``batch`` with spend priced by ``price`` (T,)
    (1 + lam + mu_t, shared by the batch). Returns a DepotSolution per depot (with its policy
    only when ``keep_policy``)."""
    deps, T, k, C = batch.deps, batch.T, batch.k, batch.C
    data = deps[0].data
    weeks = np.arange(T)
    H = np.stack([dep.week_costs(batch.grids[:, i, :], price, weeks[:, None])[0] for i, dep in enumerate(deps)], axis=1)
    steps = [batch.steps(t, price) for t in range(T)]
    W = [None] * T  # W[t] (k, N): week t's cost + cost-to-go after it on the grids (priced currency)
    policy_arr, policy_val = [None] * T, [None] * T
    v_next = np.zeros(batch.grids[-1].shape)  # cost-to-go after the last week
    for t in range(T - 1, -1, -1):
        W[t] = H[t] + v_next
        prev = batch.grids[t - 1] if t > 0 else batch.a0[:, None]
        base = carry_over(batch.rho[:, None], prev, batch.pipeline[:, t][:, None])  # drivers with no recruiting
        y, v_next = batch.targets(t, base, steps[t], W[t])
        if keep_policy:
            policy_arr[t], policy_val[t] = y - base, v_next.copy()
    priced_value = v_next[:, 0]
    # forward pass from the actual start (off-grid states: the same candidates)
    arrivals = np.zeros((k, C, T))
    active = np.zeros((k, T))
    a = batch.a0.copy()
    for t in range(T):
        base = carry_over(batch.rho, a, batch.pipeline[:, t])
        y, _ = batch.targets(t, base[:, None], steps[t], W[t])
        a = y[:, 0]
        active[:, t] = a
        order, caps, cum, _ = steps[t]
        arrivals[:, order, t] = np.clip((a - base)[:, None] - cum[:, :-1], 0.0, caps)
    out = []
    for i, dep in enumerate(deps):
        Z = dep.week_costs(active[i], price, weeks)[1]
        spend = dep.split_incentive(Z)
        capacity = capacity_of(dep.b, active[i], dep.curve.blocks(Z))  # the drivers kernel, b[d,t] per week
        unpriced = float((arrivals[i] * batch.unit[:, None]).sum() + Z.sum() + dep.recourse(capacity, weeks).sum())
        policy = None
        if keep_policy:
            n = batch.sizes[i]
            policy = DepotPolicy(data.depots[dep.d], [dep.grids(batch.n_points)[t - 1] if t > 0 else np.array([dep.a0]) for t in range(T)],
                                 [policy_arr[t][i, : (n[t - 1] if t > 0 else 1)] for t in range(T)],
                                 [policy_val[t][i, : (n[t - 1] if t > 0 else 1)] for t in range(T)], price.copy())
        out.append(DepotSolution(arrivals[i], spend, float(priced_value[i]), unpriced, policy))
    return out


def solve_depot(dep: DepotModel, price: np.ndarray, n_points: int, keep_policy: bool = False) -> DepotSolution:
    """DP over weeks for one depot with spend priced by ``price`` (T,) (1 + lam + mu_t)."""
    return solve_depots(DepotBatch([dep], n_points), price, keep_policy)[0]
