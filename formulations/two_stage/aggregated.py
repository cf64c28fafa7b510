"""Aggregated recourse: the expected second stage of each depot-week as one convex
piecewise-linear function of planned capacity, exact (docs/formulation.md, "Aggregated
recourse").

For fixed capacity q the second stage separates by (depot, week, scenario) and has the
closed form of ``recourse.optimal_recourse``. Per scenario its cost Q_s(q) (currency/week) is
piecewise linear in q with slopes (currency per block):

    q < D_s/(1+sigma)            cs*sigma - cu*(1+sigma)   (surge at its cap, rest unserved)   } if surge pays
    D_s/(1+sigma) <= q < D_s     -cs                       (the whole shortfall by surge)       }
    q < D_s                      -cu                       (unserved)                            if it does not
    q >= D_s                     ci                        (idle)

with cs, cu, ci the surge, unserved and idle costs per block, sigma the surge cap share and
D_s the demand (blocks/week). So phi(q) = sum_s p_s Q_s(q) is convex (each slope jump,
p_s (1+sigma)(cu - cs) at D_s/(1+sigma) and p_s (ci + cs) or p_s (ci + cu) at D_s, is >= 0),
with at most 2S breakpoints, and

    phi(q) = phi(0) + sum_k slope_k y_k,   q = sum_k y_k,   0 <= y_k <= b_{k+1} - b_k

where 0 = b_0 < b_1 < ... are the sorted breakpoints (the last segment has no upper bound)
and phi(0) = sum_s p_s cu D_s. Because the slopes increase, a minimising LP fills the
segments in order, so this "segment form" is exact: the aggregated program has the
extensive form's optimum, first-stage solutions and budget duals (the budget rows are the
same rows, and the recourse's value function for given first-stage decisions is the same
function). Per-scenario surge, unserved and idle blocks are recovered with
``recourse.optimal_recourse``.

``recourse_segments`` is the numpy kernel; ``define_aggregated_recourse`` the Pyomo rows;
``RecourseSegments.curve(d)`` the same function as breakpoints for fast exact evaluation (the
DP engine's week costs and polish).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from formulations.data import ModelData
from formulations.two_stage._pyomo import pyo
from formulations.two_stage.recourse import surge_pays, surge_pays_by_depot, week_points

#: Segments shorter than this (blocks/week) are dropped (coinciding breakpoints).
SEGMENT_ATOL = 1e-9


@dataclass(frozen=True)
class RecourseSegments:
    """The expected recourse of each depot-week in segment form, padded to K segments.

    value_at_zero: (D, T) phi(0), currency/week
    slope:         (D, T, K) currency per block of each segment, non-decreasing in k
    length:        (D, T, K) blocks/week of each segment (inf for the last one)
    used:          (D, T, K) True for segments that exist (length > SEGMENT_ATOL)
    unserved_slope: (D, T, K) expected unserved blocks per block of capacity on each segment
                   (<= 0, non-decreasing in k; -(1 + surge share) or -1 times the probability of
                   the scenarios still short there); E[unserved](0) = E[demand]
    idle_slope:    (D, T, K) expected idle blocks per block of capacity (>= 0, non-decreasing:
                   the probability of the scenarios already covered there); E[idle](0) = 0
    slope_below_zero: currency per block for capacity < 0 (no surge there: -unserved cost);
                   no plan has negative capacity, but line searches may probe it; (D,) when
                   the unserved price differs by depot
    """

    value_at_zero: np.ndarray
    slope: np.ndarray
    length: np.ndarray
    used: np.ndarray
    slope_below_zero: float | np.ndarray = 0.0
    unserved_slope: np.ndarray | None = None
    idle_slope: np.ndarray | None = None

    def value(self, capacity: np.ndarray) -> np.ndarray:
        """phi(q) (currency/week) for capacity (D, T) >= 0, by filling the segments in order."""
        start = np.concatenate([np.zeros(self.length.shape[:-1] + (1,)), np.cumsum(self.length, axis=-1)[..., :-1]],
                               axis=-1)
        fill = np.clip(np.asarray(capacity, float)[..., None] - start, 0.0, self.length)
        return self.value_at_zero + (np.where(self.used, self.slope, 0.0) * np.where(self.used, fill, 0.0)).sum(axis=-1)

    def curve(self, d: int) -> RecourseCurve:
        """Depot d's phi_dt for every week as breakpoints and values (exact, see RecourseCurve)."""
        slope, length = self.slope[d], self.length[d]  # (T, K)
        finite = np.where(np.isinf(length), 0.0, length)
        starts = np.concatenate([np.zeros((slope.shape[0], 1)), np.cumsum(finite, axis=1)], axis=1)  # (T, K+1)
        values = self.value_at_zero[d][:, None] + np.concatenate(
            [np.zeros((slope.shape[0], 1)), np.cumsum(slope * finite, axis=1)], axis=1)
        below = self.slope_below_zero[d] if np.ndim(self.slope_below_zero) else self.slope_below_zero
        return RecourseCurve(starts, values, slope, np.full(slope.shape[0], below))


@dataclass(frozen=True)
class RecourseCurve:
    """phi_t(q) of one depot (currency/week) for every week t, as breakpoints: piecewise linear
    through (points[t, k], values[t, k]) (blocks/week, currency/week; points non-decreasing,
    points[t, 0] = 0, K+1 of them for K segments, the last repeated), segment k from
    points[t, k] with slope ``slopes[t, k]`` (currency per block, non-decreasing in k; the
    last, the idle cost, continues beyond the last breakpoint), and slope ``below_zero[t]``
    for capacity < 0. Exact: the same function as
    ``RecourseSegments.value`` and ``recourse.expected_recourse`` (tested), evaluated by one
    ``np.interp`` over all weeks (each week's breakpoints are shifted to a range of its own),
    O(log K) per query instead of O(S)."""

    points: np.ndarray  # (T, K+1) blocks/week
    values: np.ndarray  # (T, K+1) currency/week
    slopes: np.ndarray  # (T, K) currency per block
    below_zero: np.ndarray  # (T,) currency per block below 0

    def __post_init__(self):
        top = self.points[:, -1]
        span = float(top.max(initial=0.0)) + 1.0
        offset = span * np.arange(len(top))
        object.__setattr__(self, "_xp", (self.points + offset[:, None]).ravel())
        object.__setattr__(self, "_fp", self.values.ravel())
        object.__setattr__(self, "_offset", offset)
        K = self.slopes.shape[1]  # breakpoints between segments, shifted like _xp (for slopes_at)
        object.__setattr__(self, "_interior", (self.points[:, 1:K] + offset[:, None]).ravel())

    def __call__(self, capacity, week) -> np.ndarray:
        """phi_week(capacity) (currency/week); ``week`` (int positions) broadcasts against
        ``capacity`` (blocks/week)."""
        q = np.asarray(capacity, float)
        week = np.broadcast_to(np.asarray(week, int), q.shape)
        top = self.points[week, -1]
        inside = np.clip(q, 0.0, top)
        out = np.interp(inside + self._offset[week], self._xp, self._fp)
        return out + self.below_zero[week] * np.minimum(q, 0.0) + self.slopes[week, -1] * np.maximum(q - top, 0.0)

    def slopes_at(self, capacity, week) -> tuple[np.ndarray, np.ndarray]:
        """One-sided derivatives (left, right) of phi_week at capacity (currency per block):
        the slope of the segment ending at / starting from capacity (equal between breakpoints)."""
        q = np.asarray(capacity, float)
        week = np.broadcast_to(np.asarray(week, int), q.shape)
        K = self.slopes.shape[1]
        shifted = np.clip(q, 0.0, None) + self._offset[week]
        base = week * (K - 1)
        left = np.searchsorted(self._interior, shifted, side="left") - base
        right = np.searchsorted(self._interior, shifted, side="right") - base
        below = q < 0
        sl, sr = self.slopes[week, np.clip(left, 0, K - 1)], self.slopes[week, np.clip(right, 0, K - 1)]
        return np.where(q <= 0, self.below_zero[week], sl), np.where(below, self.below_zero[week], sr)

    def kinks(self, t: int) -> np.ndarray:
        """Week t's breakpoints above 0 (blocks/week): where phi_t changes slope."""
        p = self.points[t, 1:]
        return np.unique(p[p > 0])


#: Elements of one (depots, T, K, S) comparison block in ``recourse_segments`` (about 128 MB as
#: float64): at 1000 depots x 104 weeks x 100 scenarios the whole block would be 2 billion
#: elements (the command was killed for memory); chunks of depots keep it bounded and give the
#: same numbers (the sums run over scenarios, within a depot-week).
COMPARE_CHUNK = 16_000_000


def recourse_segments(data: ModelData, demand: np.ndarray | None = None,
                      probability: np.ndarray | None = None, depots=None) -> RecourseSegments:
    """Segment form of phi_dt (see the module docstring) for demand (D, T, S) with scenario
    probabilities (S,); defaults: the data's own scenarios. ``depots``: the depots whose rows
    ``demand`` holds (their recourse prices; default all), when prices differ by depot."""
    if demand is None and probability is None and data.has_week_profile:
        # long-lead periods settled week by week: their week points are the scenarios here
        # (recourse.week_points), with weights per period
        demand, probability = week_points(data)
    demand = data.demand if demand is None else np.asarray(demand, float)
    p = data.probability if probability is None else np.asarray(probability, float)
    P = p[None, :] if p.ndim == 1 else p  # (1 or T, S) weights of the demand points
    D, T, S = demand.shape
    sigma = float(data.surge_cap_share)
    if depots is None and D != len(data.depots):  # a caller's own demand rows: they need naming unless prices are uniform
        if data.uniform_prices() is None:
            raise ValueError("recourse_segments: name the depots of the demand rows (their prices differ)")
        depots = np.zeros(D, dtype=int)
    cs, cu, ci = (a[:, None, None] for a in data.recourse_prices(depots))  # (D, 1, 1) currency/block
    pays = surge_pays_by_depot(data, depots)[:, None, None]  # (D, 1, 1)
    Pw = P[None]  # (1, 1 or T, S)
    if surge_pays(data):  # where surge does not pay at a depot, its kink at demand / (1 + share) has no jump
        first = np.where(pays, cs * sigma - cu * (1.0 + sigma), -cu)  # slope below the surge kink
        points = np.concatenate([demand / (1.0 + sigma), demand], axis=2)  # (D, T, 2S)
        jumps = np.concatenate([np.broadcast_to(np.where(pays, Pw * (1.0 + sigma) * (cu - cs), 0.0), (D, T, S)),
                                np.broadcast_to(np.where(pays, Pw * (ci + cs), Pw * (ci + cu)), (D, T, S))], axis=2)
    else:
        first = -cu
        points, jumps = demand, np.broadcast_to(Pw * (ci + cu), (D, T, S))
    order = np.argsort(points, axis=2, kind="stable")
    points = np.take_along_axis(points, order, axis=2)
    jumps = np.take_along_axis(np.asarray(jumps, float), order, axis=2)
    # segment k runs from breakpoint k-1 (0 for k = 0) to breakpoint k; the last beyond all
    starts = np.concatenate([np.zeros((D, T, 1)), points], axis=2)  # (D, T, K) with K = breakpoints + 1
    ends = np.concatenate([points, np.full((D, T, 1), np.inf)], axis=2)
    mass = float(p.sum()) if p.ndim == 1 else P.sum(axis=1)[None, :, None]  # the weights' total (1: probabilities)
    slope = first * mass + np.concatenate([np.zeros((D, T, 1)), np.cumsum(jumps, axis=2)], axis=2)
    length = ends - starts
    used = length > SEGMENT_ATOL
    value_at_zero = cu[:, :, 0] * (np.einsum("dts,s->dt", demand, p) if p.ndim == 1 else (demand * Pw).sum(axis=2))
    # the expected unserved and idle blocks are piecewise linear on the same segments: each
    # segment lies in one regime per scenario (its breakpoints are all of them), read at its middle
    mid = starts + np.where(np.isfinite(length), 0.5 * np.where(np.isfinite(length), length, 0.0), 1.0)  # (D, T, K)
    if p.ndim == 1:  # scenarios: (d, T, K, S) comparisons, a chunk of depots at a time (memory bounded)
        Pk = P[None, :, None, :]  # (1, 1, 1, S)
        unserved_slope, idle_slope = np.empty(mid.shape), np.empty(mid.shape)
        K = mid.shape[2]
        step = max(1, COMPARE_CHUNK // max(1, T * K * S))  # depots per chunk
        for lo in range(0, D, step):
            part = slice(lo, lo + step)
            m, dem = mid[part][..., None], demand[part][:, :, None, :]
            lost = -((m < dem) * Pk).sum(axis=3)
            if surge_pays(data):
                short = m < (dem / (1.0 + sigma))
                lost = np.where(pays[part], -(1.0 + sigma) * (short * Pk).sum(axis=3), lost)
            unserved_slope[part] = lost
            idle_slope[part] = ((m > dem) * Pk).sum(axis=3)
    else:  # week points (S x J of them, K ~ 2 S J segments): weights above/below each midpoint by sorting
        weights = np.broadcast_to(P, (T, S))
        unserved_slope = -_weight_beyond(demand, weights, mid, above=True)
        if surge_pays(data):
            short = _weight_beyond(demand / (1.0 + sigma), weights, mid, above=True)
            unserved_slope = np.where(pays, -(1.0 + sigma) * short, unserved_slope)
        idle_slope = _weight_beyond(demand, weights, mid, above=False)
    below_zero = -cu[:, 0, 0] * float(P.sum(axis=1)[0])  # (D,) currency per block: no surge below 0
    return RecourseSegments(value_at_zero, np.broadcast_to(slope, (D, T, slope.shape[2])).copy(),
                            np.where(used, length, 0.0), used,
                            float(below_zero[0]) if D and np.ptp(below_zero) == 0 else below_zero,
                            unserved_slope, idle_slope)


def _weight_beyond(values: np.ndarray, weights: np.ndarray, queries: np.ndarray, above: bool) -> np.ndarray:
    """(D, T, K) the total weight of the points ``values`` (D, T, S) with weights (T, S) that lie
    strictly above (``above``) or strictly below each query (D, T, K): sorted per depot-week and
    read by binary search, O(S log S + K log S) memory-light (the week points' comparisons as one
    (D, T, K, S) array would take gigabytes at national size)."""
    D, T, S = values.shape
    out = np.zeros(queries.shape)
    for d in range(D):
        for t in range(T):
            order = np.argsort(values[d, t], kind="stable")
            v, w = values[d, t][order], weights[t][order]
            if above:  # weight of v > q: the suffix after the last v <= q
                suffix = np.concatenate([np.cumsum(w[::-1])[::-1], [0.0]])
                out[d, t] = suffix[np.searchsorted(v, queries[d, t], side="right")]
            else:  # weight of v < q: the prefix before the first v >= q
                prefix = np.concatenate([[0.0], np.cumsum(w)])
                out[d, t] = prefix[np.searchsorted(v, queries[d, t], side="left")]
    return out


def define_aggregated_recourse(m: pyo.ConcreteModel, data: ModelData) -> None:
    """Expected recourse in segment form (replaces the per-scenario second stage).

    0 <= recourse_segment[d,t,k] <= length[d,t,k]                               blocks/week
    recourse_link[d,t]:  q[d,t] - sum_k recourse_segment[d,t,k] = 0             blocks/week
    expected_recourse = sum_dt phi_dt(0) + sum_dtk slope[d,t,k] recourse_segment  currency
    (``m.expected_recourse_cost``, an Expression the objective adds).
    """
    seg = recourse_segments(data)
    m._optplan_segments = seg  # the target rows (service.py) read the same segments
    dd, tt, kk = np.nonzero(seg.used)
    m.RECOURSE_SEGMENTS = pyo.Set(dimen=3, ordered=True, initialize=[
        (data.depots[d], int(t) + 1, int(k) + 1) for d, t, k in zip(dd, tt, kk, strict=True)])
    lengths = seg.length[dd, tt, kk]
    slopes = seg.slope[dd, tt, kk]
    bound = {key: (0.0, None if np.isinf(L) else float(L)) for key, L in zip(m.RECOURSE_SEGMENTS, lengths, strict=True)}
    m.recourse_segment = pyo.Var(m.RECOURSE_SEGMENTS, domain=pyo.NonNegativeReals, bounds=lambda _m, *key: bound[key])
    members: dict[tuple[str, int], list] = {key: [] for key in m.DEPOT_WEEK}
    for d, t, k in m.RECOURSE_SEGMENTS:
        members[d, t].append(m.recourse_segment[d, t, k])

    def link(_m, d, t):
        return m.capacity_blocks[d, t] - sum(members[d, t]) == 0

    m.recourse_link = pyo.Constraint(m.DEPOT_WEEK, rule=link)
    constant = float(seg.value_at_zero.sum())
    m.expected_recourse_cost = pyo.Expression(expr=constant + sum(
        float(c) * v for c, v in zip(slopes, m.recourse_segment.values(), strict=True) if c != 0))
