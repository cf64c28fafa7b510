"""A combination of the global model and AutoETS whose weight and interval scale are chosen by
rolling-origin validation on data the choice may see.

Quantile averaging ("Vincentization"), per level q, depot and week (blocks/week):

    comb_q = w global_q + (1 - w) ets_q

then the interval is scaled about the P50 (c > 1 widens, c < 1 narrows), never below 0:

    out_q = max(0, comb_50 + c (comb_q - comb_50))

The choice (``choose``), on validation rows of both models (``backtest`` rows: depot, origin,
h, y, p10, p50, p90, scale): for each weight w in ``WEIGHTS`` the scale c in ``SCALES`` whose
P10-P90 coverage is closest to the nominal 80% (ties: the smaller c), then the w with the
smallest wQL (pinball losses of P10, P50 and P90, a proper score of the whole interval) at
its c. One scale for all weeks: a scale per calibration group (holiday-peak weeks or not,
the global model's own Mondrian groups) was tried and over-covered the held-out stores (92%
pooled; docs/forecast.md). The caller decides which rows the choice sees: the combined
model (``dispatch.combined_quantiles``) and ``benchmarks/bench_forecast_nested.py`` pass whole
earlier origins whose targets all end before the forecast origin, weighted equally.

A variant, measured and not the default (docs/forecast.md, "Recent cells"): given the
forecast origin n, ``choose`` keeps every row whose target week precedes n (target week
origin + h - 1 < n: the recent origins' first horizons included) and may weight them by
recency, 0.5 ** (age / half_life) with age = n - 1 - target week (weeks), since coverage
drifts with the season and all depots share each week's shocks. ``choose_nested`` chooses
the half-life (``HALF_LIVES``, equal weights first) by rolling origins inside those rows: at
each earlier origin m whose targets are all observed before n (and which has a whole
validation origin before it), the choice made on the cells observed before m is applied at
m; the half-life whose coverage at those origins is nearest 80% on average
(mean |coverage_m - 0.8|) wins.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from optplan.forecast.metrics import coverage, wql

#: Candidate weights of the global model (the rest is AutoETS).
WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
#: Candidate interval scales (multiply the distances of P10 and P90 from the P50).
SCALES = tuple(float(c) for c in np.round(np.arange(0.5, 2.5001, 0.05), 2))
NOMINAL_COVERAGE = 0.8  # P10-P90
LEVEL_COLUMNS = ("p10", "p50", "p90")


#: Candidate half-lives (weeks) of the recency weights of validation cells; None: equal weights.
HALF_LIVES = (None, 26.0, 13.0, 6.0)


@dataclass(frozen=True)
class Combination:
    """The chosen weight of the global model, interval scale and what the choice saw."""

    weight_global: float
    interval_scale: float
    validation_rows: int
    validation_origins: tuple[int, ...]
    validation_wql: float
    validation_coverage: float
    half_life: float | None = None  # weeks; None: validation cells weighted equally
    #: per candidate half-life ("equal" for None): mean |coverage - 0.8| at the inner origins
    half_life_scores: tuple[tuple[str, float], ...] = ()
    inner_origins: tuple[int, ...] = ()


def target_week(paired: pd.DataFrame) -> np.ndarray:
    """Week index (weeks since the history's first) of each row's target: origin + h - 1."""
    return paired["origin"].to_numpy(int) + paired["h"].to_numpy(int) - 1


def recency_weights(paired: pd.DataFrame, origin: int, half_life: float | None) -> np.ndarray | None:
    """0.5 ** ((origin - 1 - target week) / half_life) per row (None for equal weights)."""
    if half_life is None:
        return None
    return 0.5 ** ((origin - 1 - target_week(paired)) / float(half_life))


def pair(rows: pd.DataFrame, first: str = "global", second: str = "ets") -> pd.DataFrame:
    """Backtest rows of two models side by side: one row per (origin, depot, h) with y, scale
    and p10/p50/p90 of each, suffixed _<model>; only cells both models forecast."""
    keys = ["origin", "depot", "h", "week_start", "y", "scale"]
    a = rows[rows["model"] == first].set_index(keys)[list(LEVEL_COLUMNS)].add_suffix(f"_{first}")
    b = rows[rows["model"] == second].set_index(keys)[list(LEVEL_COLUMNS)].add_suffix(f"_{second}")
    return a.join(b, how="inner").reset_index()


def combine_quantiles(first: np.ndarray, second: np.ndarray, weight_first: float, interval_scale: float,
                      median: int) -> np.ndarray:
    """The combination (module docstring) of two quantile arrays (..., Q) in blocks/week whose
    level ``median`` (an index of the last axis) is the P50: averaged with weight
    ``weight_first``, scaled about the P50 by ``interval_scale``, floored at 0, sorted."""
    comb = weight_first * np.asarray(first, float) + (1.0 - weight_first) * np.asarray(second, float)
    p50 = comb[..., median:median + 1]
    return np.sort(np.maximum(p50 + interval_scale * (comb - p50), 0.0), axis=-1)


def _stack(paired: pd.DataFrame, model: str) -> np.ndarray:
    """(rows, 3) one model's p10/p50/p90 columns of paired rows (blocks/week)."""
    return np.column_stack([paired[f"{c}_{model}"].to_numpy(float) for c in LEVEL_COLUMNS])


def apply(paired: pd.DataFrame, weight_global: float, interval_scale: float, first: str = "global",
          second: str = "ets") -> pd.DataFrame:
    """The combination's p10/p50/p90 (blocks/week) for paired rows (``pair``)."""
    comb = combine_quantiles(_stack(paired, first), _stack(paired, second), weight_global, interval_scale,
                             LEVEL_COLUMNS.index("p50"))
    out = paired[["origin", "depot", "h", "week_start", "y", "scale"]].copy()
    for k, c in enumerate(LEVEL_COLUMNS):
        out[c] = comb[:, k]
    return out


def choose(paired: pd.DataFrame, first: str = "global", second: str = "ets", origin: int | None = None,
           half_life: float | None = None, band: tuple[float, float] | None = None) -> Combination:
    """Weight and interval scale chosen on ``paired`` validation rows (module docstring): with
    ``origin``, only rows whose target week precedes it, weighted by recency with ``half_life``
    (weeks; None: equally). With ``band`` (lo, hi), the choice first maximises the number of
    validation origins whose own P10-P90 coverage lies in [lo, hi] (for each w the c with the
    most, then the nearest 80% pooled; then the w with the most, then the least wQL)."""
    if origin is not None:
        paired = paired[target_week(paired) < origin]
    if paired.empty:
        raise ValueError("no validation rows to choose a combination on")
    if half_life is not None and origin is None:
        raise ValueError("recency weights need the forecast origin")
    weights = recency_weights(paired, origin, half_life) if origin is not None else None
    y = paired["y"].to_numpy(float)
    a, b = _stack(paired, first), _stack(paired, second)
    mid = LEVEL_COLUMNS.index("p50")
    codes, _ = pd.factorize(paired["origin"].to_numpy(), sort=True)
    per_origin_rows = np.bincount(codes)

    def in_band(q) -> int:
        """Validation origins whose P10-P90 coverage lies in ``band`` (0 without a band)."""
        if band is None:
            return 0
        inside = (q[:, 0] <= y) & (y <= q[:, -1])
        share = np.bincount(codes, weights=inside.astype(float)) / per_origin_rows
        return int(((share >= band[0]) & (share <= band[1])).sum())

    best = None
    for w in WEIGHTS:
        keys = []
        for c in SCALES:
            q = combine_quantiles(a, b, w, c, mid)
            cov = coverage(y, q[:, 0], q[:, -1], weights)
            keys.append((-in_band(q), abs(cov - NOMINAL_COVERAGE), cov))
        k = min(range(len(SCALES)), key=lambda i: keys[i][:2])  # first minimum: the smaller scale on ties
        q = combine_quantiles(a, b, w, SCALES[k], mid)
        score = wql(y, {0.1: q[:, 0], 0.5: q[:, mid], 0.9: q[:, -1]}, weights)
        key = (keys[k][0], score)
        if best is None or key[0] < best[0][0] or (key[0] == best[0][0] and score < best[0][1] - 1e-12):
            best = (key, w, SCALES[k], keys[k][2])
    (_, score), w, c, cov = best
    return Combination(weight_global=w, interval_scale=c, validation_rows=len(paired),
                       validation_origins=tuple(int(o) for o in sorted(paired["origin"].unique())),
                       validation_wql=float(score), validation_coverage=float(cov), half_life=half_life)


def inner_origins(paired: pd.DataFrame, origin: int) -> list[int]:
    """The origins m of ``paired`` at which ``choose_nested`` tries each half-life: all m's
    targets observed before ``origin`` (m + H <= origin, H the longest horizon) and some
    origin's targets all observed before m."""
    H = int(paired["h"].max())
    origins = sorted(int(o) for o in paired["origin"].unique())
    return [m for m in origins if m + H <= origin and any(o + H <= m for o in origins)]


def choose_nested(paired: pd.DataFrame, origin: int, first: str = "global", second: str = "ets",
                  candidates=HALF_LIVES) -> Combination:
    """The choice at forecast ``origin`` with the recency half-life chosen by rolling origins
    inside the rows observed before it (module docstring). Without inner origins
    (``inner_origins``) the cells are weighted equally."""
    inner = inner_origins(paired, origin)
    if not inner:
        return choose(paired, first, second, origin=origin)
    scores = []
    for hl in candidates:
        dev = []
        for m in inner:
            c = choose(paired, first, second, origin=m, half_life=hl)
            at = apply(paired[paired["origin"] == m], c.weight_global, c.interval_scale, first, second)
            dev.append(abs(coverage(at["y"].to_numpy(), at["p10"].to_numpy(), at["p90"].to_numpy()) - NOMINAL_COVERAGE))
        scores.append(float(np.mean(dev)))
    k = int(np.argmin(np.round(scores, 12)))  # ties: the earlier candidate (equal weights first)
    final = choose(paired, first, second, origin=origin, half_life=candidates[k])
    named = tuple(("equal" if hl is None else f"{hl:g}", round(v, 6)) for hl, v in zip(candidates, scores, strict=True))
    return replace(final, half_life_scores=named, inner_origins=tuple(inner))
