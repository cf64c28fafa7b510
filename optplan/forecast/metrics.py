"""Forecast accuracy metrics (all demand in blocks/week).

pinball_q(y, f)   = max(q (y - f), (q - 1)(y - f))                       blocks/week
MASE              = mean_t |y_t - P50_t| / scale,   scale = mean over in-sample t of
                    |y_t - y_{t-52}| (the in-sample seasonal-naive error)  unitless
wQL               = 2 sum_{t,q} pinball_q(y_t, f_{t,q}) / (|Q| sum_t |y_t|)  unitless
coverage(lo, hi)  = share of t with lo_t <= y_t <= hi_t
"""

from __future__ import annotations

import numpy as np

SEASON = 52  # weeks: the seasonal-naive lag of the MASE scale


def pinball(y: np.ndarray, f: np.ndarray, q: float) -> np.ndarray:
    """Pinball (quantile) loss of forecast ``f`` of quantile ``q`` for outcome ``y``, elementwise (blocks/week)."""
    diff = np.asarray(y, float) - np.asarray(f, float)
    return np.maximum(q * diff, (q - 1.0) * diff)


def mase_scale(blocks: np.ndarray, season: int = SEASON) -> np.ndarray:
    """In-sample seasonal-naive mean absolute error per column of ``blocks`` (W, D) (blocks/week);
    weeks where either value is missing (NaN) are skipped."""
    a, b = blocks[season:], blocks[:-season]
    ok = np.isfinite(a) & np.isfinite(b)
    n = ok.sum(axis=0)
    tot = np.where(ok, np.abs(a - b), 0.0).sum(axis=0)
    return np.where(n > 0, tot / np.maximum(n, 1), np.nan)


def mase(y: np.ndarray, p50: np.ndarray, scale: np.ndarray | float) -> float:
    """Mean absolute scaled error: mean |y - p50| / scale (scale broadcast against y)."""
    return float(np.mean(np.abs(np.asarray(y) - np.asarray(p50)) / scale))


def wql(y: np.ndarray, quantiles: dict[float, np.ndarray], weights: np.ndarray | None = None) -> float:
    """Weighted quantile loss over the quantile levels given: 2 sum pinball / (|Q| sum |y|);
    with ``weights`` (one per outcome, >= 0) both sums are weighted."""
    y = np.asarray(y, float)
    w = np.ones_like(y) if weights is None else np.asarray(weights, float)
    total = sum(float((w * pinball(y, f, q)).sum()) for q, f in quantiles.items())
    return 2.0 * total / (len(quantiles) * float((w * np.abs(y)).sum()))


def coverage(y: np.ndarray, lo: np.ndarray, hi: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Share of outcomes inside [lo, hi] (with ``weights``: their weighted share)."""
    y = np.asarray(y)
    inside = (np.asarray(lo) <= y) & (y <= np.asarray(hi))
    return float(np.average(inside, weights=weights))


def weighted_quantile(values: np.ndarray, weights: np.ndarray | None, q: float | np.ndarray) -> np.ndarray:
    """Quantile of a discrete distribution (``values`` with probabilities ``weights``) along axis 0.

    The CDF is interpolated linearly between the cumulative-weight midpoints
    c_i = sum_{j<i} w_j + w_i / 2 of the sorted values (Hazen's rule for equal weights:
    c_i = (i - 1/2) / n) and held flat beyond the first and last; the same rule for sampled
    paths (equal weights) and reduced scenarios, so they are compared like with like."""
    values = np.asarray(values, float)
    n = values.shape[0]
    w = np.full(n, 1.0 / n) if weights is None else np.asarray(weights, float) / np.sum(weights)
    flat = values.reshape(n, -1)
    out = np.empty((np.size(q), flat.shape[1]))
    for j in range(flat.shape[1]):
        order = np.argsort(flat[:, j], kind="stable")
        v, ww = flat[order, j], w[order]
        c = np.cumsum(ww) - ww / 2.0
        out[:, j] = np.interp(np.atleast_1d(q), c, v)
    shape = values.shape[1:]
    return out.reshape((np.size(q), *shape)) if np.ndim(q) else out[0].reshape(shape)
