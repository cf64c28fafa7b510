"""Joint demand paths from quantile forecasts, and their reduction to S scenarios.

Sampling (an empirical copula, the "Schaake shuffle"): the marginal distribution of demand
in week h at depot d is the forecast's quantile function (blocks/week), interpolated
linearly between the quantile levels and extended beyond the outer ones with a normal tail
(scale fitted to the gap between the outer level and the P50). The dependence across weeks
and depots comes from the forecast's template: B blocks of past forecast errors, each
covering H consecutive weeks for every depot at once (the same calendar weeks for all
depots). A path picks one block b and one jitter v ~ U(0, 1) and sets, for every (h, d),

    u[h, d] = (rank of template[b, h, d] among template[:, h, d] + v) / B   (rank 0..B-1)
    path[h, d] = F^-1_{h,d}(u[h, d])                                        (blocks/week)

so a week that was bad for one depot in that past block is bad for the others, and a run
of bad weeks stays a run. u is clipped to [U_CLIP, 1 - U_CLIP].

Reduction: k-means (scikit-learn, fixed n_init and random_state) on the paths, each depot's
values divided by its mean so every depot counts alike; a scenario is a cluster, its
probability the cluster's share of paths and its demand the mean of its paths (blocks/week).
The probability-weighted mean of the scenarios therefore equals the mean of the paths
exactly. Centroids are less spread than paths, so the spread of each depot's total demand
over the horizon is then restored by moment matching: per depot d,

    scenario[k, :, d] <- mean[:, d] + lambda_d (scenario[k, :, d] - mean[:, d]),
    lambda_d = sd of the paths' totals / probability-weighted sd of the scenarios' totals

which keeps the mean exact (the deviations have probability-weighted mean 0). The check
compares the mean, P10 and P90 of each depot's total (blocks over the horizon) between paths
and scenarios (quantiles by :func:`optplan.forecast.metrics.weighted_quantile`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri

from optplan.errors import OptionError
from optplan.forecast.metrics import weighted_quantile
from optplan.forecast.models import QuantileForecast

U_CLIP = 0.005  # quantile levels sampled lie in [U_CLIP, 1 - U_CLIP]
CHECK_TOLERANCE = 0.02  # relative tolerance of the reduction check (mean, P10, P90 of per-depot totals)
BLOCKS_DECIMALS = 2  # blocks in demand.csv are rounded to 0.01
PROBABILITY_DECIMALS = 6


def quantile_function(levels: np.ndarray, values: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Evaluate quantile functions at probabilities ``u``.

    levels (Q,) increasing; values (..., Q) non-decreasing, blocks/week, broadcast against
    u (...) in (0, 1).
    Linear between levels; beyond the outer levels a normal tail whose scale makes the
    outer level and the P50 fit: sigma = (v_outer - v_50) / (z_outer - z_50)."""
    levels = np.asarray(levels, float)
    u = np.clip(np.asarray(u, float), U_CLIP, 1 - U_CLIP)
    v = np.broadcast_to(np.asarray(values, float), (*u.shape, len(levels)))
    flat_v, flat_u = v.reshape(-1, len(levels)), u.reshape(-1)
    out = np.empty(flat_u.shape)
    z = ndtri(levels)
    mid = int(np.argmin(np.abs(levels - 0.5)))
    # interior: per-row linear interpolation (vectorised via the bracketing level index)
    k = np.clip(np.searchsorted(levels, flat_u, side="right") - 1, 0, len(levels) - 2)
    rows = np.arange(len(flat_u))
    lo_l, hi_l = levels[k], levels[k + 1]
    t = (flat_u - lo_l) / (hi_l - lo_l)
    out[:] = flat_v[rows, k] + t * (flat_v[rows, k + 1] - flat_v[rows, k])
    below, above = flat_u < levels[0], flat_u > levels[-1]
    zu = ndtri(flat_u)
    if mid > 0:
        sig_lo = (flat_v[:, mid] - flat_v[:, 0]) / (z[mid] - z[0])
        out[below] = flat_v[below, 0] + (zu[below] - z[0]) * sig_lo[below]
    if mid < len(levels) - 1:
        sig_hi = (flat_v[:, -1] - flat_v[:, mid]) / (z[-1] - z[mid])
        out[above] = flat_v[above, -1] + (zu[above] - z[-1]) * sig_hi[above]
    return np.maximum(out, 0.0).reshape(u.shape)


def template_ranks(template: np.ndarray) -> np.ndarray:
    """(B, H, D) rank 0..B-1 of each block's value among the B blocks, per (h, d) (ties by block order)."""
    order = np.argsort(template, axis=0, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(template.shape[0])[:, None, None] * np.ones_like(order), axis=0)
    return ranks


def sample_paths(fc: QuantileForecast, n_paths: int, seed: int = 0) -> np.ndarray:
    """(n_paths, H, D) joint demand paths (blocks/week); see the module docstring."""
    H, D, _ = fc.values.shape
    template = fc.template if fc.template is not None and fc.template.shape[1:] == (H, D) else np.zeros((1, H, D))
    ranks = template_ranks(template)
    B = template.shape[0]
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, B, size=n_paths)
    jitter = rng.random(n_paths)
    u = (ranks[pick] + jitter[:, None, None]) / B  # (N, H, D)
    vals = np.broadcast_to(fc.values[None], (n_paths, H, D, fc.values.shape[2]))
    return quantile_function(np.array(fc.levels), vals, u)


@dataclass
class Reduction:
    """S scenarios: demand (S, H, D) blocks/week, probabilities (S,), and the check."""

    demand: np.ndarray
    probabilities: np.ndarray
    check: dict
    method: str


def _totals_stats(totals: np.ndarray, weights: np.ndarray | None) -> dict[str, np.ndarray]:
    w = np.full(totals.shape[0], 1.0 / totals.shape[0]) if weights is None else weights
    mean = (w[:, None] * totals).sum(axis=0)
    p10, p90 = weighted_quantile(totals, w, [0.1, 0.9])
    return {"mean": mean, "p10": p10, "p90": p90}


def reduction_check(paths: np.ndarray, demand: np.ndarray, probabilities: np.ndarray, depots: list[str],
                    tolerance: float = CHECK_TOLERANCE) -> dict:
    """Compare mean, P10 and P90 of each depot's total over the horizon (blocks) between
    the paths (equally likely) and the scenarios; relative differences |scen - paths| /
    max(paths, 1 block): a depot with (next to) no demand, whose scenarios round its few
    hundredths of a block to 0, is not a failed reduction."""
    a = _totals_stats(paths.sum(axis=1), None)
    b = _totals_stats(demand.sum(axis=1), probabilities)
    rel = {k: np.abs(b[k] - a[k]) / np.maximum(np.abs(a[k]), 1.0) for k in a}
    worst = {k: float(v.max()) for k, v in rel.items()}
    return {
        "statistic": "total blocks per depot over the horizon: mean, P10, P90",
        "tolerance": tolerance,
        "max_relative_difference": {k: round(v, 6) for k, v in worst.items()},
        "within_tolerance": bool(max(worst.values()) <= tolerance),
        "worst_depot": {k: depots[int(np.argmax(v))] for k, v in rel.items()},
        "per_depot": {d: {k: {"paths": round(float(a[k][i]), 4), "scenarios": round(float(b[k][i]), 4)} for k in a}
                      for i, d in enumerate(depots)},
    }


def reduce_paths(paths: np.ndarray, n_scenarios: int, depots: list[str], seed: int = 0, n_init: int = 10,
                 tolerance: float = CHECK_TOLERANCE, week_weight: np.ndarray | None = None) -> Reduction:
    """k-means reduction of (N, H, D) paths to ``n_scenarios`` scenarios, moment-matched
    spread of per-depot totals, blocks rounded to BLOCKS_DECIMALS and probabilities to
    PROBABILITY_DECIMALS (the last absorbs the rounding so they sum to 1); scenarios sorted
    by total demand (S001 lowest). ``week_weight`` (H,): each week's weight in the k-means
    distance (default 1; long-lead periods: 1/sqrt(weeks in the week's period), so that each
    period counts alike)."""
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    N, H, D = paths.shape
    S = int(n_scenarios)
    if not 1 <= S <= N:
        raise OptionError("--scenarios", f"between 1 and the number of sampled paths ({N})", S)
    norm = np.maximum(paths.mean(axis=(0, 1)), 1e-12)  # (D,) blocks/week
    distinct = np.unique((paths / norm).reshape(N, H * D).round(9), axis=0).shape[0]
    fewer = distinct < S  # e.g. an all-zero history: every path the same, one scenario says it all
    if fewer:
        S = distinct
    if S == N:
        labels = np.arange(N)
    elif S == 1:
        labels = np.zeros(N, dtype=int)
    else:
        X = (paths / norm)
        if week_weight is not None:
            X = X * np.asarray(week_weight, float)[None, :, None]
        X = X.reshape(N, H * D)
        with threadpool_limits(1):
            labels = KMeans(n_clusters=S, n_init=n_init, random_state=seed).fit(X).labels_
    counts = np.bincount(labels, minlength=S)
    centers = np.stack([paths[labels == k].mean(axis=0) for k in range(S)])  # (S, H, D)
    prob = counts / N
    method = "k-means (cluster means, probability = cluster share)"
    if fewer:
        method += f"; only {distinct} distinct sampled path(s), so {distinct} scenario(s) instead of {int(n_scenarios)}"
    kmeans_check = reduction_check(paths, centers, prob, depots, tolerance)
    if S > 1:
        centers = map_totals(paths, centers, prob)
        method += "; per-depot totals mapped to the paths' quantiles"
    order = np.argsort(centers.sum(axis=(1, 2)), kind="stable")
    centers, prob = centers[order], prob[order]
    demand = np.round(centers, BLOCKS_DECIMALS)
    p = np.round(prob, PROBABILITY_DECIMALS)
    p[-1] = np.round(1.0 - p[:-1].sum(), PROBABILITY_DECIMALS)
    check = reduction_check(paths, demand, p, depots, tolerance)
    check["kmeans_only_max_relative_difference"] = kmeans_check["max_relative_difference"]
    return Reduction(demand=demand, probabilities=p, check=check, method=method)


def map_totals(paths: np.ndarray, centers: np.ndarray, prob: np.ndarray) -> np.ndarray:
    """Move each depot's scenario totals onto the paths' distribution of totals, keeping the
    probability-weighted mean of every week exactly.

    Per depot d: sort the scenarios by total T_k (blocks over the horizon), give each its
    cumulative-probability midpoint c_k, take the paths' total quantile T*_k at c_k, shift
    all T*_k by one constant so sum_k p_k T*_k = the paths' mean total, and add
    (T*_k - T_k) x m_h / sum_h m_h to week h of scenario k (m: the paths' mean per week,
    blocks/week). The added amounts have probability-weighted mean 0 in every week, so the
    mean per week is unchanged. A depot whose mapped demand would go below 0 is left as it was."""
    out = centers.copy()
    mean = paths.mean(axis=0)  # (H, D)
    path_tot = paths.sum(axis=1)  # (N, D)
    for d in range(centers.shape[2]):
        tot = centers[:, :, d].sum(axis=1)
        order = np.argsort(tot, kind="stable")
        c = np.empty_like(tot)
        c[order] = np.cumsum(prob[order]) - prob[order] / 2.0
        target = weighted_quantile(path_tot[:, d], None, c)
        target += path_tot[:, d].mean() - (prob * target).sum()
        w = mean[:, d] / max(mean[:, d].sum(), 1e-12)
        mapped = centers[:, :, d] + (target - tot)[:, None] * w[None, :]
        if (mapped >= 0).all():
            out[:, :, d] = mapped
    return out


def scenario_ids(n: int) -> list[str]:
    width = max(3, len(str(n)))
    return [f"S{k + 1:0{width}d}" for k in range(n)]
