"""Polish: local improvement of a plan by exact 1-D searches that keep every budget."""

from __future__ import annotations

import numpy as np

from formulations.data import ModelData
from formulations.two_stage.budgets import total_spend
from formulations.two_stage.drivers import capacity as capacity_of
from formulations.two_stage.drivers import recruited_arrivals
from formulations.two_stage.recourse import expected_recourse
from optplan.solvers.base import Deadline
from optplan.solvers.dp.depot import DepotModel

#: Coordinate sweeps of the polish, and its relative improvement threshold per sweep.
POLISH_SWEEPS = 30
POLISH_RTOL = 1e-7
#: Spend-neutral exchanges are tried between (channel, week) pairs at most this many weeks apart.
PAIR_WEEKS = 4
#: The deadline is checked every this many polish moves (a move costs ~0.1-1 ms).
MOVES_PER_CHECK = 64


class Polisher:
    """Local improvement of one depot's plan on its exact (priced) cost.

    Coordinates: applicants x[c, tau] and the week's total incentive spend Z[t] (filled
    best rate first). J(x, Z) = sum price[tau] cost_c x[c,tau] + sum price[t] Z[t]
    + sum_t f_t(q_t), with q_t = b a_t(x) + inc(Z_t) blocks/week, a_t linear in x
    (impulse response R[c, j] = sum_{k<=j} y[c,k] rho^(j-k) drivers per applicant j weeks
    on), and f_t the week's expected recourse, tabulated on a uniform capacity grid.
    Moves: one coordinate, a channel's shift to the next week, channel swaps, and
    spend-neutral exchanges, each an exact-on-a-grid 1-D search over its feasible interval
    (box, onboarding cap, and any budget ``limits``); accepted only if J falls."""

    def __init__(self, dep: DepotModel, price: np.ndarray):
        data = dep.data
        D, C, T, _ = data.shape
        self.dep, self.price, self.T, self.C = dep, price, T, C
        self.__dict__.update(dep.polish_tables())  # price-independent, built once per depot
        self.unit = data.cost_per_applicant[:, None] * price[None, :]  # (C, T) priced currency per applicant
        self._drivers_key = self._arrivals_key = None

    # -- pieces
    def inc(self, Z: np.ndarray) -> np.ndarray:
        return self.dep.curve.blocks(Z)

    def f(self, q: np.ndarray) -> np.ndarray:
        """Sum over weeks of tabulated recourse for capacities q (..., T)."""
        pos = np.clip((q - self.qlo) / self.dq, 0.0, self.n - 1 - 1e-9)
        i = pos.astype(int)
        w = pos - i
        t = np.arange(self.T)
        return ((1 - w) * self.F[t, i] + w * self.F[t, i + 1]).sum(axis=-1)

    def drivers(self, x: np.ndarray) -> np.ndarray:
        """(T,) active drivers for applicants x (C, T): the stock-flow of drivers.active_drivers
        written with its impulse response (drivers.impulse_response), which is linear in x.
        Remembered for the last x seen: most polish moves are rejected and leave x as it was."""
        key = x.tobytes()
        if self._drivers_key != key:
            a = self.base.copy()
            for c in range(self.C):
                a += np.convolve(x[c], self.R[c])[: self.T]
            self._drivers_key, self._drivers = key, a
        return self._drivers.copy()

    def arrivals(self, x: np.ndarray) -> np.ndarray:
        """(T,) recruited arrivals (drivers/week) for applicants x (C, T); remembered like drivers."""
        key = x.tobytes()
        if self._arrivals_key != key:
            self._arrivals_key, self._arrivals = key, recruited_arrivals(self.dep.data, x[None])[0]
        return self._arrivals.copy()

    def capacity(self, x: np.ndarray, Z: np.ndarray) -> np.ndarray:
        return capacity_of(self.dep.b, self.drivers(x), self.inc(Z))

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

    def run(self, x: np.ndarray, Z: np.ndarray | None = None, sweeps: int = POLISH_SWEEPS,
            deadline: Deadline | None = None):
        """Polish without budgets (the prices stand in for them); returns (x, Z). Raises
        DeadlinePassed when ``deadline`` passes (checked every MOVES_PER_CHECK moves)."""
        x = x.copy()
        Z = self.best_incentives(x) if Z is None else Z.copy()
        moves = self.moves()
        for _ in range(sweeps):
            before = self.cost(x, Z)
            for i, (coords, w) in enumerate(moves):
                if deadline is not None and i % MOVES_PER_CHECK == 0:
                    deadline.check()
                self.step(x, Z, coords, w)
            for t in range(self.T):
                self.step_incentive(x, Z, t)
            if before - self.cost(x, Z) <= POLISH_RTOL * max(1.0, abs(before)):
                break
        return x, Z



#: Cross-depot transfers (same channel and week, spend-neutral) are tried up to this many depots.
MAX_TRANSFER_DEPOTS = 12


def transfers(data: ModelData, pols: list[Polisher], x: np.ndarray, Z: np.ndarray, regions: np.ndarray) -> None:
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


def global_polish(data: ModelData, dep_list: list[DepotModel], x: np.ndarray, z: np.ndarray,
                  sweeps: int = POLISH_SWEEPS, deadline: Deadline | None = None) -> tuple[np.ndarray, np.ndarray, bool]:
    """Improve a feasible plan on its true (unpriced) expected cost, keeping every budget:
    per-depot moves of applicants and incentives as in Polisher, each bounded by the slack
    of the weekly, regional and total budgets it touches; cross-depot transfers. Every move
    keeps the plan feasible, so when ``deadline`` passes the plan so far is returned.
    Returns (x, z, finished)."""
    finished = True
    D, C, T, _ = data.shape
    pols = [Polisher(dep, np.ones(T)) for dep in dep_list]
    cpa = data.cost_per_applicant
    regions = np.asarray(data.regions)
    x = x.copy()
    Z = z.sum(axis=2).copy()  # (D, T) currency/week, feasible on entry

    def limits_for(d, per_week):
        week_spend = total_spend(data, x, Z[:, :, None]).sum(axis=0)
        out = [(per_week[t], data.budget_weekly[t] - week_spend[t]) for t in np.flatnonzero(per_week)]
        total = float(per_week.sum())
        out.append((total, data.budget_total - week_spend.sum()))
        r = regions[d]
        if r in data.budget_region:
            m = regions == r
            out.append((total, data.budget_region[r] - float(total_spend(data, x[m], Z[m][:, :, None]).sum())))
        return out

    for _ in range(sweeps):
        before = sum(p.cost(x[d], Z[d]) for d, p in enumerate(pols))
        for d, pol in enumerate(pols):
            for i, (coords, w) in enumerate(pol.moves()):
                if deadline is not None and i % MOVES_PER_CHECK == 0 and deadline.expired():
                    finished = False
                    break
                per_week = np.zeros(T)
                for (c, t), ww in zip(coords, w, strict=True):
                    per_week[t] += ww * cpa[c]
                pol.step(x[d], Z[d], coords, w, limits_for(d, per_week))
            for t in range(T):
                e_t = np.zeros(T)
                e_t[t] = 1.0
                room = min(r for coef, r in limits_for(d, e_t))
                pol.step_incentive(x[d], Z[d], t, room)
            if not finished:
                break
        if not finished:
            break
        if D <= MAX_TRANSFER_DEPOTS:
            transfers(data, pols, x, Z, regions)
        after = sum(p.cost(x[d], Z[d]) for d, p in enumerate(pols))
        if before - after <= POLISH_RTOL * max(1.0, abs(before)):
            break
    z_out = np.stack([np.stack([dep_list[d].split_incentive(float(Z[d, t])) for t in range(T)]) for d in range(D)])
    return x, z_out, finished


