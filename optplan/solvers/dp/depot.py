"""Per-depot, price-independent data of the DP: arrival cost curves, incentive curve, the
expected recourse phi_t as breakpoints (formulations.two_stage.aggregated.RecourseCurve),
reachable driver ranges, state grids and the polish's pieces."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from formulations.data import ModelData
from formulations.two_stage.aggregated import RecourseSegments, recourse_segments
from formulations.two_stage.drivers import (
    IncentiveCurve,
    active_drivers_by_impulse,
    carry_over,
    drivers_without_recruiting,
    impulse_response,
)
from optplan.solvers.dp.realize import Realizer


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

    def __init__(self, data: ModelData, d: int, segments: RecourseSegments | None = None):
        """``segments``: recourse_segments(data), when the caller builds it once for all depots."""
        self.data, self.d = data, d
        D, C, T, S = data.shape
        y = data.yield_kernel  # (C, L+1)
        conv = y.sum(axis=1)
        self.rho = float(data.retention[d])
        self.b = np.asarray(data.supply[d], float)  # (T,) blocks per active driver in each week: b[d,t]
        self.pipeline = data.pipeline[d].astype(float)
        self.demand = data.demand[d]  # (T, S)
        self.p = data.probability
        cap_on = float(data.onboarding_cap[d])
        modal = data.modal_lag()  # the applying week whose budget pays for an arrival
        self.mask = mask = data.recruit_mask()[d]  # (C, T): applying weeks with a variable
        self._polish_tables = None
        self._realizer = None
        self._grids: dict[int, list[np.ndarray]] = {}
        self.phi = (segments or recourse_segments(data, data.demand[d : d + 1], depots=[d])).curve(0 if segments is None else d)
        # an uncapped channel is capped at more applicants than could ever be useful:
        # enough for every driver needed at the highest demand, 10 times over (applicants/week)
        min_conv = max(float(conv[conv > 0].min(initial=1.0)), 1e-6)
        big = 10.0 * (float(self.demand.max()) / float(self.b.min()) + float(data.initial_active[d]) + 1.0) / min_conv
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
            unit = data.cost_per_driver()  # currency/driver
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
        self.seg_blocks = self.curve.width * self.curve.rate  # blocks/week each segment can buy
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

    def grids(self, n_points: int) -> list[np.ndarray]:
        """States per week (drivers), cached: n_points evenly spaced over the reachable,
        useful range [lo, hi], plus the driver counts where the week's cost has a kink (each
        breakpoint of phi_t less the blocks of every filled incentive segment, over blocks
        per driver), where piecewise-linear optima lie."""
        if n_points not in self._grids:
            out = []
            for t, (lo, hi) in enumerate(zip(self.lo, self.hi, strict=True)):
                if hi - lo <= 1e-9:
                    out.append(np.array([lo]))
                    continue
                kinks = ((self.phi.kinks(t)[:, None] - self.cum_inc[None, :]) / self.b[t]).ravel()
                kinks = kinks[(kinks > lo) & (kinks < hi)]
                out.append(np.unique(np.concatenate([np.linspace(lo, hi, n_points), kinks])))
            self._grids[n_points] = out
        return self._grids[n_points]

    def polish_tables(self) -> dict:
        """The polisher's price-independent pieces (cached): the kernel padded to T weeks
        (y), the impulse response R[c, j] = sum_{k<=j} y[c,k] rho^(j-k) (drivers per applicant
        j weeks on), the drivers with no recruiting, the most useful drivers, applicant
        bounds and onboarding room."""
        if self._polish_tables is not None:
            return self._polish_tables
        data, T = self.data, self.data.n_weeks
        C = data.shape[1]
        L = data.yield_kernel.shape[1]
        y = np.zeros((C, T))
        y[:, : min(L, T)] = data.yield_kernel[:, : min(L, T)]
        R = impulse_response(data, self.d)
        # beyond 1.5x the useful driver range every later week is idle; more drivers only add cost
        a_hi = np.minimum(self.reach, self.hi + np.maximum(0.5 * (self.hi - self.lo), 1.0))
        base = drivers_without_recruiting(data, self.d)
        cap = float(data.onboarding_cap[self.d])
        self._polish_tables = {
            "y": y, "R": R, "a_hi": a_hi + 1e-9, "base": base, "ub": np.where(self.mask, data.applicant_cap[self.d][:, None], 0.0),
            "room": cap - self.pipeline if np.isfinite(cap) else np.full(T, np.inf), "zmax": float(self.cum_z[-1]),
        }
        return self._polish_tables

    @property
    def realizer(self):
        """The depot's deconvolution operators (realize.Realizer), built on first use."""
        if self._realizer is None:
            self._realizer = Realizer(self.data, self.d)
        return self._realizer

    def drivers(self, x: np.ndarray) -> np.ndarray:
        """(T,) active drivers for applicants x (C, T): the stock-flow of drivers.active_drivers
        written with its impulse response (drivers.impulse_response), which is linear in x."""
        tab = self.polish_tables()
        return active_drivers_by_impulse(tab["base"], tab["R"], x)

    # -- priced pieces
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

    def incentive_levels(self, price: np.ndarray) -> np.ndarray:
        """(G', T) capacity (blocks/week) up to which incentive segment g pays in week t: an
        incentive block of segment g costs price[t] / rate_g currency and saves -phi_t'(q),
        so it pays while phi_t's slope is below -price[t] / rate_g, i.e. up to the start of the
        first segment of phi_t whose slope is not (segments fill best rate first, so later
        segments have lower levels)."""
        T = self.data.n_weeks
        if len(self.seg_rate) == 0:
            return np.zeros((0, T))
        threshold = -np.asarray(price, float)[None, :] / self.seg_rate[:, None]  # (G', T) currency per block
        first = (self.phi.slopes[None, :, :] < threshold[:, :, None]).sum(axis=2)  # (G', T)
        return np.take_along_axis(np.broadcast_to(self.phi.points, (len(self.seg_rate),) + self.phi.points.shape),
                                  first[:, :, None], axis=2)[:, :, 0]

    def week_costs(self, a: np.ndarray, price: np.ndarray, weeks, levels: np.ndarray | None = None):
        """Least priced incentive spend plus expected recourse (priced currency) for active
        drivers a (drivers) in weeks ``weeks`` (positions, broadcast against a), spend priced by
        price (T,); returns (cost, incentive spend Z currency/week), shaped like a. Exact:
        segments are bought best rate first up to their ``incentive_levels``."""
        a = np.asarray(a, float)
        weeks = np.broadcast_to(np.asarray(weeks, int), a.shape)
        q = self.b[weeks] * a  # blocks/week from drivers (b[d,t] of each week)
        z = np.zeros_like(q)
        if len(self.seg_rate):
            levels = self.incentive_levels(price) if levels is None else levels
            for g, (rate, room) in enumerate(zip(self.seg_rate, self.seg_blocks, strict=True)):
                buy = np.clip(levels[g][weeks] - q, 0.0, room)  # blocks/week
                q = q + buy
                z = z + buy / rate
        return np.asarray(price, float)[weeks] * z + self.phi(q, weeks), z

    def week_cost(self, t: int, a: np.ndarray, price_t: float) -> tuple[np.ndarray, np.ndarray]:
        """week_costs for week t alone at spend multiplier price_t."""
        price = np.full(self.data.n_weeks, float(price_t))
        return self.week_costs(np.asarray(a, float), price, t)

    def recourse(self, capacity, weeks) -> np.ndarray:
        """phi_t(capacity) (currency/week), exact (the aggregated recourse)."""
        return self.phi(capacity, weeks)

    def split_incentive(self, z_total) -> np.ndarray:
        """Spend per segment (currency/week) of weekly totals (...,) filled best rate first: (..., G)."""
        return self.curve.split(z_total)
