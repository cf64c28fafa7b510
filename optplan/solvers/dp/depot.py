"""Per-depot, price-independent data of the DP: arrival cost curves, incentive curve,
reachable driver ranges and the polish's tables."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from formulations.data import ModelData
from formulations.two_stage.drivers import IncentiveCurve, carry_over, drivers_without_recruiting, impulse_response
from formulations.two_stage.recourse import expected_recourse, recourse_kinks

#: States per week of the polish's week-cost tables (linear interpolation between them).
POLISH_TABLE_POINTS = 1501


@dataclass
class DepotWeek:
    """Per depot and week: arrival cost curve and incentive segments (priced later)."""

    cum_cap: np.ndarray  # (C+1,) cumulative arrival caps of channels in cost order, drivers/week
    channel_order: np.ndarray  # (C,) channel positions, cheapest per driver first
    unit_cost: np.ndarray  # (C,) currency per arriving driver, unpriced, in channel_order
    spend_week: np.ndarray  # (C,) week position whose budget pays for it (applying week)
    n_max: float  # most arrivals this week (drivers/week)


class DepotModel:
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
        self.weeks: list[DepotWeek] = []
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
            if np.isfinite(cap_on):  # onboarding room; conflicts are refused before any DepotModel is built
                n_max = min(n_max, max(cap_on - self.pipeline[t], 0.0))
            self.weeks.append(
                DepotWeek(
                    cum_cap=np.concatenate([[0.0], np.cumsum(caps[order])]),
                    channel_order=order,
                    unit_cost=unit[order],
                    spend_week=np.maximum(t - modal[order], 0),
                    n_max=n_max,
                )
            )
        self.curve = IncentiveCurve(data, d)
        self.seg_rate = self.curve.rate  # blocks/currency, best first
        self.cum_z = self.curve.cum_spend  # currency/week
        self.cum_inc = self.curve.cum_blocks  # blocks/week
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
            lo[t] = carry_over(self.rho, plo, self.pipeline[t])
            reach = carry_over(self.rho, phi, self.pipeline[t] + self.weeks[t].n_max)
            hi[t] = max(min(reach, need[t]), carry_over(self.rho, phi, self.pipeline[t]), lo[t])
            plo, phi = lo[t], hi[t]
        self.lo, self.hi, self.a0 = lo, hi, a0
        reach = np.empty(T)  # most drivers any plan can have (for the polish's tables)
        prev = a0
        for t in range(T):
            reach[t] = carry_over(self.rho, prev, self.pipeline[t] + self.weeks[t].n_max)
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
        R = impulse_response(data, self.d)
        # capacity tables span what any plan reaches, capped at 1.5x the useful driver range
        # (beyond it every later week is idle; more drivers only add cost)
        a_hi = np.minimum(self.reach, self.hi + np.maximum(0.5 * (self.hi - self.lo), 1.0))
        qlo = self.b * self.lo - 1e-9
        qhi = self.b * a_hi + self.cum_inc[-1] + 1e-9
        n = POLISH_TABLE_POINTS
        grid = qlo[:, None] + (qhi - qlo)[:, None] * np.linspace(0, 1, n)[None, :]
        F = np.stack([expected_recourse(data, grid[t], self.demand[t], self.p) for t in range(T)])  # (T, n)
        base = drivers_without_recruiting(data, self.d)
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
        kinks = recourse_kinks(self.data, self.demand[t])
        need = kinks[None, :] - base_q[:, None]  # (N, K) extra blocks to reach each kink
        z_kink = self.curve.spend_for(need)
        cand = np.concatenate([np.broadcast_to(self.cum_z, (len(a), len(self.cum_z))), z_kink], axis=1)
        inc = np.interp(cand, self.cum_z, self.cum_inc)
        cost = price_t * cand + expected_recourse(self.data, base_q[:, None] + inc, self.demand[t], self.p)
        j = np.argmin(cost, axis=1)
        rows = np.arange(len(a))
        return cost[rows, j], cand[rows, j]

    def split_incentive(self, z_total: float) -> np.ndarray:
        """(G,) spend per segment (currency/week) of a weekly total filled best rate first."""
        return self.curve.split(z_total)
