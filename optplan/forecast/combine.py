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
its c. One scale for all weeks: a scale per calibration group (holiday-peak weeks
or not, the global model's own Mondrian groups) was tried and over-covered the held-out
stores (92% pooled; docs/forecast.md). The caller decides which rows the choice sees: in ``benchmarks/bench_forecast_nested.py``
only origins whose target weeks all end before the scored origin, and only stores that are
not scored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from optplan.forecast.metrics import coverage, wql

#: Candidate weights of the global model (the rest is AutoETS).
WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
#: Candidate interval scales (multiply the distances of P10 and P90 from the P50).
SCALES = tuple(float(c) for c in np.round(np.arange(0.5, 2.5001, 0.05), 2))
NOMINAL_COVERAGE = 0.8  # P10-P90
LEVEL_COLUMNS = ("p10", "p50", "p90")


@dataclass(frozen=True)
class Combination:
    """The chosen weight of the global model, interval scale and what the choice saw."""

    weight_global: float
    interval_scale: float
    validation_rows: int
    validation_origins: tuple[int, ...]
    validation_wql: float
    validation_coverage: float


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


def apply(paired: pd.DataFrame, weight_global: float, interval_scale: float, first: str = "global",
          second: str = "ets") -> pd.DataFrame:
    """The combination's p10/p50/p90 (blocks/week) for paired rows (``pair``)."""
    stack = {m: np.column_stack([paired[f"{c}_{m}"].to_numpy(float) for c in LEVEL_COLUMNS]) for m in (first, second)}
    comb = combine_quantiles(stack[first], stack[second], weight_global, interval_scale, LEVEL_COLUMNS.index("p50"))
    out = paired[["origin", "depot", "h", "week_start", "y", "scale"]].copy()
    for k, c in enumerate(LEVEL_COLUMNS):
        out[c] = comb[:, k]
    return out


def choose(paired: pd.DataFrame, first: str = "global", second: str = "ets") -> Combination:
    """Weight and interval scale chosen on ``paired`` validation rows (module docstring)."""
    if paired.empty:
        raise ValueError("no validation rows to choose a combination on")
    y = paired["y"].to_numpy()
    best = None
    for w in WEIGHTS:
        cover = []
        for c in SCALES:
            r = apply(paired, w, c, first, second)
            cover.append(coverage(y, r["p10"].to_numpy(), r["p90"].to_numpy()))
        k = int(np.argmin(np.abs(np.asarray(cover) - NOMINAL_COVERAGE)))  # first minimum: the smaller scale on ties
        r = apply(paired, w, SCALES[k], first, second)
        score = wql(y, {0.1: r["p10"].to_numpy(), 0.5: r["p50"].to_numpy(), 0.9: r["p90"].to_numpy()})
        if best is None or score < best[0] - 1e-12:
            best = (score, w, SCALES[k], cover[k])
    score, w, c, cov = best
    return Combination(weight_global=w, interval_scale=c, validation_rows=len(paired),
                       validation_origins=tuple(int(o) for o in sorted(paired["origin"].unique())),
                       validation_wql=float(score), validation_coverage=float(cov))
