"""Polish: local improvement of a plan by exact 1-D searches that keep every budget.

The plan's cost J(x, Z) is convex and piecewise linear in the applicants x and the weekly
incentive spend Z (phi_t is the aggregated recourse, exact at its breakpoints). The polish is
a steepest-first coordinate descent over a fixed set of directions (``Polisher.directions``):

* every direction's one-sided derivative of J, up and down, is computed at once from phi_t's
  left and right slopes at the current capacities (one matrix-vector product over all
  directions); a convex function cannot fall along a direction whose one-sided derivative is
  >= 0, so only directions with a negative one are searched, steepest first;
* each search is exact: the 1-D restriction is convex piecewise linear, its minimum is at a
  breakpoint, found by bisection on the sign of its derivative;
* the drivers and arrivals of the plan are updated by each accepted move (a shifted impulse
  response), never recomputed by convolution.
"""

from __future__ import annotations

import numpy as np

from formulations.data import ModelData
from formulations.two_stage.budgets import total_spend
from formulations.two_stage.drivers import capacity as capacity_of
from formulations.two_stage.drivers import recruited_arrivals
from optplan.solvers.base import Deadline
from optplan.solvers.dp.depot import DepotModel

#: Improvement rounds of the polish (each: descend every depot, then the cross-depot transfers),
#: and the relative improvement of J below which a move or a round counts as no gain.
POLISH_SWEEPS = 30
POLISH_RTOL = 1e-7
#: Spend-neutral exchanges are tried between (channel, week) pairs at most this many weeks apart.
PAIR_WEEKS = 4
#: Directions searched per descent step (steepest first) before the descent gives up, and the
#: most accepted moves per descent, per applicant cell.
SEARCHES_PER_STEP = 16
MOVES_PER_CELL = 8
#: A one-sided derivative counts as negative below -DERIVATIVE_RTOL x (1 + the largest unit cost).
DERIVATIVE_RTOL = 1e-9

class Polisher:
    """Local improvement of one depot's plan on its exact (priced) cost.

    Coordinates: applicants x[c, tau] and the week's total incentive spend Z[t] (filled
    best rate first). J(x, Z) = sum price[tau] cost_c x[c,tau] + sum price[t] Z[t]
    + sum_t phi_t(q_t), with q_t = b a_t(x) + inc(Z_t) blocks/week, a_t linear in x
    (impulse response R[c, j] = sum_{k<=j} y[c,k] rho^(j-k) drivers per applicant j weeks
    on), and phi_t the week's expected recourse (the aggregated recourse's breakpoints, exact).
    Moves: one coordinate, a channel's shift to the next week, channel swaps, and
    spend-neutral exchanges, each a 1-D search on a refined grid over its feasible interval
    (box, onboarding cap, and any budget ``limits``); accepted only if J falls. The drivers
    and arrivals of the current plan are kept and updated by each accepted move (a move
    along a direction adds a shifted impulse response), not recomputed."""

    def __init__(self, dep: DepotModel, price: np.ndarray):
        data = dep.data
        D, C, T, _ = data.shape
        self.dep, self.price, self.T, self.C = dep, price, T, C
        self.__dict__.update(dep.polish_tables())  # price-independent, built once per depot
        self.unit = data.cost_per_applicant[:, None] * price[None, :]  # (C, T) priced currency per applicant
        self.weeks = np.arange(T)
        self._key = None

    # -- pieces
    def inc(self, Z: np.ndarray) -> np.ndarray:
        return self.dep.curve.blocks(Z)

    def f(self, q: np.ndarray) -> np.ndarray:
        """Sum over weeks of the expected recourse phi_t for capacities q (..., T) (currency)."""
        return self.dep.recourse(q, self.weeks).sum(axis=-1)

    def _state(self, x: np.ndarray) -> None:
        """Drivers and arrivals of x, from scratch unless x is the plan last seen."""
        key = x.tobytes()
        if self._key != key:
            self._key = key
            self._drivers = self.dep.drivers(x)
            self._arrivals = recruited_arrivals(self.dep.data, x[None])[0]

    def _moved(self, x: np.ndarray, da: np.ndarray, dn: np.ndarray) -> None:
        """x has just been moved in place by an accepted step that changes drivers by da and
        arrivals by dn (T,): update the kept state instead of recomputing it."""
        self._drivers = self._drivers + da
        self._arrivals = self._arrivals + dn
        self._key = x.tobytes()

    def drivers(self, x: np.ndarray) -> np.ndarray:
        """(T,) active drivers for applicants x (C, T) (DepotModel.drivers, kept for the current plan)."""
        self._state(x)
        return self._drivers.copy()

    def arrivals(self, x: np.ndarray) -> np.ndarray:
        """(T,) recruited arrivals (drivers/week) for applicants x (C, T), kept like drivers."""
        self._state(x)
        return self._arrivals.copy()

    def capacity(self, x: np.ndarray, Z: np.ndarray) -> np.ndarray:
        return capacity_of(self.dep.b, self.drivers(x), self.inc(Z))

    def cost(self, x: np.ndarray, Z: np.ndarray) -> float:
        """J(x, Z), priced currency (exact: phi_t is evaluated at its breakpoints, no tables)."""
        return float((self.unit * x).sum() + (self.price * Z).sum() + self.f(self.capacity(x, Z)))

    def best_incentives(self, x: np.ndarray) -> np.ndarray:
        """(T,) least priced incentive spend per week for the drivers x brings (no budgets)."""
        return self.dep.week_costs(self.drivers(x), self.price, self.weeks)[1]

    # -- moves
    def _line(self, lo, hi, value):
        """Minimum of value(d) over [lo, hi] on a 17-point grid refined three times (the
        cross-depot transfers, whose restriction mixes two depots)."""
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

    def exact_line(self, q: np.ndarray, dq: np.ndarray, dc: float, lo: float, hi: float) -> tuple[float, float]:
        """Minimum over d in [lo, hi] (lo <= 0 <= hi) of g(d) = dc d + sum_t phi_t(q_t + d dq_t)
        - g(0). g is convex piecewise linear: along each side its derivative starts at the
        one-sided derivative at 0 (phi_t's left and right slopes) and rises, at each d where
        some q_t + d dq_t crosses a breakpoint of phi_t, by |dq_t| times phi_t's slope jump
        there; the minimum is the first d where it is no longer negative (or the end of the
        side). One sort of the breakpoints, no probing. Returns (d, g(d) - g(0))."""
        nz = np.flatnonzero(np.abs(dq) > 1e-15)
        if not len(nz):
            d = hi if dc < 0 else lo if dc > 0 else 0.0
            return (float(d), float(dc * d)) if np.isfinite(d) else (0.0, 0.0)
        phi = self.dep.phi
        K = phi.slopes.shape[1]
        qn, dqn, wk = q[nz], dq[nz], self.weeks[nz]
        left, right = phi.slopes_at(qn, wk)
        cross = (phi.points[nz, 1:K] - qn[:, None]) / dqn[:, None]  # (n, K-1) steps where a breakpoint is met
        jump = np.abs(dqn)[:, None] * np.diff(phi.slopes[nz], axis=1)  # (n, K-1) rise of g' there
        best = 0.0
        for sign, end in ((1.0, hi), (-1.0, -lo)):  # the side d > 0, then d < 0 as e = -d > 0
            if not end > 0:
                continue
            rate = sign * dc + float((sign * dqn * np.where(sign * dqn > 0, right, left)).sum())
            if rate >= 0:
                continue
            e = sign * cross
            keep = (e > 0) & (e < end)
            order = np.argsort(e[keep], kind="stable")
            slope_after = rate + np.cumsum(jump[keep][order])
            first = int(np.argmax(slope_after >= 0)) if len(order) and slope_after[-1] >= 0 else -1
            if first >= 0:
                best = sign * float(e[keep][order][first])
            elif np.isfinite(end):
                best = sign * float(end)
            else:  # unbounded side that keeps falling: cannot happen with idle cost >= 0 and spend > 0
                best = sign * (2.0 * float(e[keep].max(initial=0.0)) + 1.0)
            break
        if best == 0.0:
            return 0.0, 0.0
        gain = dc * best + float(phi(qn + best * dqn, wk).sum() - phi(qn, wk).sum())
        return best, gain

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
        q = capacity_of(self.dep.b, a, self.inc(Z))
        d, gain = self.exact_line(q, self.dep.b * da, dc, lo, hi)
        if gain < 0:
            for (cc, tt), ww in zip(coords, weights, strict=True):
                x[cc, tt] = min(max(x[cc, tt] + d * ww, 0.0), self.ub[cc, tt])
            self._moved(x, d * da, d * dn)
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
        # the week's cost in d is convex piecewise linear: its minimum is at lo, hi, an end of an
        # incentive segment or a spend whose blocks bring capacity to a breakpoint of phi_t
        curve = self.dep.curve
        cand = np.concatenate([[lo, hi, 0.0], curve.cum_spend - Z[t], curve.spend_for(self.dep.phi.points[t] - qt) - Z[t]])
        cand = cand[(cand >= lo) & (cand <= hi)]
        value = self.price[t] * cand + self.dep.recourse(qt + self.inc(Z[t] + cand), t) - self.dep.recourse(q[t], t)
        j = int(np.argmin(value))
        d, gain = float(cand[j]), float(value[j])
        if gain < 0:
            Z[t] = min(max(Z[t] + d, 0.0), self.zmax)
        return gain

    def directions(self):
        """The directions the polish tries, as arrays (cached per Polisher): each coordinate;
        each channel's shift to the next week; each swap between two channels in a week (equal
        drivers at week T); and spend-neutral exchanges between any two (channel, week) cells
        up to PAIR_WEEKS apart (the same money moved), which matter when budgets bind.
        pairs (M, 2) of flat
        cells c * T + tau and weights (M, 2) (second weight 0 for one-coordinate moves),
        DQ (M, T) capacity change (blocks/week), DN (M, T) arrivals change (drivers/week), DC
        (M,) priced cost change (currency) and SP (M, T) unpriced spend change by week
        (currency), each per unit step."""
        if getattr(self, "_dirs", None) is not None:
            return self._dirs
        T = self.T
        cc, tt = np.nonzero(self.ub > 0)  # cells, channel-major
        n = len(cc)
        flat = cc * T + tt
        unit = self.unit[cc, tt]
        i_idx, j_idx, w0, w1 = [np.arange(n)], [np.full(n, -1)], [np.ones(n)], [np.zeros(n)]
        same_c = cc[:, None] == cc[None, :]
        shift = same_c & (tt[None, :] == tt[:, None] + 1)  # (c, t) -> (c, t + 1)
        a, b = np.nonzero(shift)
        i_idx.append(a), j_idx.append(b), w0.append(-np.ones(len(a))), w1.append(np.ones(len(a)))
        swap = (cc[None, :] > cc[:, None]) & (tt[None, :] == tt[:, None])  # (c, t) -> (c2 > c, t)
        a, b = np.nonzero(swap)
        i_idx.append(a), j_idx.append(b), w0.append(-np.ones(len(a)))
        w1.append(self.R[cc[a], -1] / np.maximum(self.R[cc[b], -1], 1e-12))
        later = np.triu(np.ones((n, n), bool), 1)  # cell j after cell i in channel-major order
        near = np.abs(tt[None, :] - tt[:, None]) <= PAIR_WEEKS
        pay = (unit[:, None] > 0) & (unit[None, :] > 0)
        a, b = np.nonzero(later & near & pay)  # spend-neutral exchanges
        i_idx.append(a), j_idx.append(b), w0.append(-np.ones(len(a)))
        w1.append(unit[a] / np.where(unit[b] > 0, unit[b], 1.0))
        i_idx, j_idx = np.concatenate(i_idx), np.concatenate(j_idx)
        w = np.stack([np.concatenate(w0), np.concatenate(w1)], axis=1)
        # per cell: the shifted impulse response, kernel, priced cost and spend of one applicant
        lag = np.arange(T)[None, :] - tt[:, None]
        ok = lag >= 0
        Rs = np.where(ok, self.R[cc[:, None], np.clip(lag, 0, T - 1)], 0.0)  # (n, T) drivers
        Ys = np.where(ok, self.y[cc[:, None], np.clip(lag, 0, T - 1)], 0.0)  # (n, T) drivers/week
        Ss = np.zeros((n, T))
        Ss[np.arange(n), tt] = self.dep.data.cost_per_applicant[cc]  # (n, T) currency
        pad = lambda A: np.vstack([A, np.zeros((1,) + A.shape[1:])])  # noqa: E731  row -1: nothing
        Rs, Ys, Ss, unit_p = pad(Rs), pad(Ys), pad(Ss), np.append(unit, 0.0)
        DA = w[:, :1] * Rs[i_idx] + w[:, 1:] * Rs[j_idx]
        DQ = self.dep.b * DA
        pairs = np.stack([flat[i_idx], np.where(j_idx >= 0, np.append(flat, 0)[j_idx], 0)], axis=1)
        self._dirs = {
            "pairs": pairs, "w": w, "DQ": DQ, "DN": w[:, :1] * Ys[i_idx] + w[:, 1:] * Ys[j_idx],
            "DC": w[:, 0] * unit_p[i_idx] + w[:, 1] * unit_p[j_idx], "SP": w[:, :1] * Ss[i_idx] + w[:, 1:] * Ss[j_idx],
            "up": np.maximum(DQ, 0.0), "down": np.minimum(DQ, 0.0),
        }
        return self._dirs

    def descend(self, x: np.ndarray, Z: np.ndarray, rooms=None, deadline: Deadline | None = None,
                max_moves: int | None = None) -> tuple[int, bool]:
        """Steepest-first coordinate descent on J, in place (module docstring): repeatedly
        compute every direction's one-sided derivatives (up and down) and every week's
        incentive derivatives, search the SEARCHES_PER_STEP most negative ones exactly in
        turn, and keep every search that lowers J by more than POLISH_RTOL x |J|; stop when
        none does. ``rooms()`` gives the budgets' room for the current
        plan: (room of each week's budget (T,), room of the total and the depot's regional
        budget, the smaller; currency); a direction that spends more where there is no room
        is not searched, and every step keeps within the rooms (None: no budgets, the prices
        stand in). Returns (moves accepted, finished: False when ``deadline`` passed)."""
        dirs = self.directions()
        cells, w = dirs["pairs"], dirs["w"]
        ubf = self.ub.ravel()
        tol = DERIVATIVE_RTOL * (1.0 + float(np.abs(self.unit).max(initial=0.0)))
        curve = self.dep.curve
        max_moves = MOVES_PER_CELL * max(1, int((self.ub > 0).sum())) if max_moves is None else max_moves
        accepted = 0
        while accepted < max_moves:
            if deadline is not None and deadline.expired():
                return accepted, False
            q = self.capacity(x, Z)
            scale = POLISH_RTOL * max(1.0, abs(self.cost(x, Z)))
            left, right = self.dep.phi.slopes_at(q, self.weeks)
            up = dirs["DC"] + dirs["up"] @ right + dirs["down"] @ left  # d J / d step along +direction
            down = -dirs["DC"] - dirs["down"] @ right - dirs["up"] @ left  # along -direction
            xv = x.ravel()[cells]
            below, above = xv < ubf[cells] - 1e-12, xv > 1e-12
            can_up = np.all((w == 0) | ((w > 0) & below) | ((w < 0) & above), axis=1)
            can_down = np.all((w == 0) | ((w > 0) & above) | ((w < 0) & below), axis=1)
            if rooms is not None:  # no spending more where a budget has no room left
                week_room, total_room = rooms()
                full = week_room <= 1e-9 * (1.0 + np.abs(week_room))
                SP, spent = dirs["SP"], dirs["SP"].sum(axis=1)
                tight = total_room <= 1e-9 * (1.0 + abs(total_room))
                can_up &= ~(((SP > 1e-15) & full[None, :]).any(axis=1) | (tight & (spent > 1e-15)))
                can_down &= ~(((SP < -1e-15) & full[None, :]).any(axis=1) | (tight & (spent < -1e-15)))
            scores = [np.where(can_up, up, np.inf), np.where(can_down, down, np.inf)]
            if self.zmax > 0:  # incentives: d J / d Z_t up and down (rates of the segments at Z_t)
                seg = curve.cum_spend[1:-1]
                r_up = np.where(Z < self.zmax - 1e-12, curve.rate[np.searchsorted(seg, Z, side="right")], 0.0)
                r_dn = np.where(Z > 1e-12, curve.rate[np.searchsorted(seg, Z, side="left")], 0.0)
                scores.append(np.where(Z < self.zmax - 1e-12, self.price + right * r_up, np.inf))
                scores.append(np.where(Z > 1e-12, -self.price - left * r_dn, np.inf))
            score = np.concatenate(scores)
            order = np.argsort(score, kind="stable")[:SEARCHES_PER_STEP]
            moved = False
            M = len(dirs["DC"])
            for k in order:
                if not score[k] < -tol:
                    break
                if k < 2 * M:
                    m, sign = (k, 1.0) if k < M else (k - M, -1.0)
                    (i, j), (w0, w1) = cells[m], w[m]
                    coords = [divmod(int(i), self.T)] + ([divmod(int(j), self.T)] if w1 != 0 else [])
                    weights = [sign * w0] + ([sign * w1] if w1 != 0 else [])
                    lim = _limits(sign * dirs["SP"][m], *rooms()) if rooms is not None else ()
                    gain = self.step(x, Z, coords, weights, lim)
                else:
                    t = int((k - 2 * M) % self.T)
                    room = np.inf
                    if rooms is not None:
                        week_room, total_room = rooms()
                        room = min(float(week_room[t]), total_room)
                    gain = self.step_incentive(x, Z, t, room)
                if gain < -scale:  # exact gains: later candidates' derivatives are stale, their searches are not
                    moved = True
                    accepted += 1
            if not moved:
                break
        return accepted, True


def _limits(per_week: np.ndarray, week_room: np.ndarray, total_room: float) -> list[tuple[float, float]]:
    """Budget rows a step along a direction must keep, as (spend per unit step, room), for a
    direction that changes spend by ``per_week`` (T,) currency per unit step."""
    out = [(float(per_week[t]), float(week_room[t])) for t in np.flatnonzero(per_week)]
    out.append((float(per_week.sum()), float(total_room)))
    return out


#: Cross-depot transfers (same channel and week, spend-neutral) are tried up to this many depots,
#: and at most this many searches per depot in a round.
MAX_TRANSFER_DEPOTS = 12
TRANSFER_TRIES_PER_DEPOT = 64


def _cell_derivatives(pol: Polisher, x: np.ndarray, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(C, T) one-sided derivatives of the depot's J for one more applicant in each cell (up)
    and one fewer (down), currency per applicant (inf where the cell has no variable)."""
    dirs = pol.directions()
    n = int((pol.ub > 0).sum())  # the first n directions are the cells, channel-major
    left, right = pol.dep.phi.slopes_at(pol.capacity(x, Z), pol.weeks)
    up_rows, down_rows = dirs["up"][:n], dirs["down"][:n]
    up = np.full((pol.C, pol.T), np.inf)
    down = np.full((pol.C, pol.T), np.inf)
    cc, tt = np.nonzero(pol.ub > 0)
    up[cc, tt] = dirs["DC"][:n] + up_rows @ right + down_rows @ left
    down[cc, tt] = -dirs["DC"][:n] - down_rows @ right - up_rows @ left
    return up, down


def transfers(data: ModelData, pols: list[Polisher], x: np.ndarray, Z: np.ndarray, regions: np.ndarray) -> None:
    """Move applicants of one channel and week from depot d to depot e (spend-neutral, so
    weekly and total budgets hold; only within a region when that region has a budget).
    Only transfers whose one-sided derivative (one fewer at d, one more at e) is negative are
    searched, steepest first, at most TRANSFER_TRIES_PER_DEPOT x depots of them."""
    D, C, T, _ = data.shape
    ups, downs = zip(*(_cell_derivatives(p, x[d], Z[d]) for d, p in enumerate(pols)), strict=True)
    score = np.stack(downs)[:, None] + np.stack(ups)[None, :]  # (D from, D to, C, T)
    fenced = np.array([[regions[d] != regions[e] and (regions[d] in data.budget_region or regions[e] in data.budget_region)
                        for e in range(D)] for d in range(D)])
    score[np.eye(D, dtype=bool) | fenced] = np.inf
    score[np.broadcast_to((x <= 0)[:, None], score.shape)] = np.inf
    tol = DERIVATIVE_RTOL * (1.0 + float(np.abs(data.cost_per_applicant).max(initial=0.0)))
    flat = np.argsort(score, axis=None, kind="stable")[: TRANSFER_TRIES_PER_DEPOT * D]
    for d, e, c, t in zip(*np.unravel_index(flat, score.shape), strict=True):
        if not score[d, e, c, t] < -tol:
            break
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
        dq_d[t:] = pd_.dep.b[t:] * pd_.R[c, : T - t]
        dq_e[t:] = pe.dep.b[t:] * pe.R[c, : T - t]
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
    per depot the steepest-first descent of Polisher.descend, each move bounded by the slack
    of the weekly, regional and total budgets it touches; then cross-depot transfers (up to
    MAX_TRANSFER_DEPOTS depots). Rounds repeat until one gains less than POLISH_RTOL. Every
    move keeps the plan feasible, so when ``deadline`` passes the plan so far is returned.
    Returns (x, z, finished)."""
    D, C, T, _ = data.shape
    pols = [Polisher(dep, np.ones(T)) for dep in dep_list]
    regions = np.asarray(data.regions)
    x = x.copy()
    Z = z.sum(axis=2).copy()  # (D, T) currency/week, feasible on entry

    def own_spend(d: int) -> np.ndarray:  # (T,) depot d's spend by week (currency)
        return total_spend(data, x[d : d + 1], Z[d : d + 1, :, None]).sum(axis=0)

    for _ in range(sweeps):
        before = sum(p.cost(x[d], Z[d]) for d, p in enumerate(pols))
        for d, pol in enumerate(pols):
            week_all = total_spend(data, x, Z[:, :, None]).sum(axis=0)
            others = week_all - own_spend(d)  # every other depot's spend by week, fixed while d moves
            r = regions[d]
            in_region = regions == r
            others_region = (float(total_spend(data, x[in_region], Z[in_region][:, :, None]).sum()) - float(own_spend(d).sum())
                             if r in data.budget_region else 0.0)

            def rooms(d=d, others=others, r=r, others_region=others_region):
                own = own_spend(d)
                week = others + own
                total = data.budget_total - float(week.sum())
                if r in data.budget_region:
                    total = min(total, data.budget_region[r] - others_region - float(own.sum()))
                return data.budget_weekly - week, total

            _, finished = pol.descend(x[d], Z[d], rooms=rooms, deadline=deadline)
            if not finished:
                break
        else:
            finished = True
        if not finished:
            break
        if D <= MAX_TRANSFER_DEPOTS:
            transfers(data, pols, x, Z, regions)
        after = sum(p.cost(x[d], Z[d]) for d, p in enumerate(pols))
        if before - after <= POLISH_RTOL * max(1.0, abs(before)):
            break
    z_out = np.stack([dep_list[d].split_incentive(Z[d]) for d in range(D)])
    return x, z_out, finished
