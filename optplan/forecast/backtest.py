"""Rolling-origin backtest of the weekly models, side by side.

For each origin n (the model sees weeks 1..n of the history and nothing after) every model
forecasts weeks n+1..n+H; the forecasts are scored against the history's actual demand
(blocks/week). Default origins: every ``step`` weeks over the last ``n_origins x step``
weeks, e.g. 143 weeks, step 13, 3 origins -> 104, 117 and 130 weeks of history.

Metrics, per depot (over its origins and weeks) and overall (over all depots):

* MASE of the P50 = mean over (origin, week) of |y - P50| / scale_{origin, depot}, where the
  scale is the depot's in-sample seasonal-naive error mean_t |y_t - y_{t-52}| over weeks
  before the origin; overall = mean over depots.
* wQL = 2 sum_{q in P10,P50,P90} sum pinball_q / (3 sum |y|) (sums over the depot's, or all
  depots', origins and weeks).
* coverage = share of (origin, week) with P10 <= y <= P90.

Also per origin (``by_origin``: the three metrics over the depots' weeks at that origin), and
the margins (``margins``): each model's overall MASE relative to a reference model's, with a
95% interval from resampling depots (the depots' errors are what varies between stores a
planner did not score; the interval says whether a gain could be the luck of the sample).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from optplan.errors import OptionError
from optplan.forecast.history import History
from optplan.forecast.metrics import coverage, mase_scale, pinball
from optplan.forecast.models import MODELS, GlobalConfig, base_forecast
from optplan.solvers.backends import SerialBackend

SCORED_LEVELS = (0.1, 0.5, 0.9)


def default_origins(n_weeks: int, horizon: int, step: int = 13, n_origins: int = 3) -> list[int]:
    """History lengths of the origins: the last forecast ends with the history."""
    last = n_weeks - horizon
    return sorted(last - k * step for k in range(n_origins))


@dataclass
class BacktestResult:
    """``rows``: one row per model, origin, depot and week with y, p10, p50, p90 and the MASE
    scale (blocks/week); ``by_depot`` and ``overall``: the metrics; ``seconds``: fit time per model."""

    rows: pd.DataFrame
    by_depot: pd.DataFrame
    overall: pd.DataFrame
    by_origin: pd.DataFrame
    origins: list[int]
    horizon: int
    seconds: dict[str, float] = field(default_factory=dict)
    info: dict = field(default_factory=dict)


def _fit_task(args):
    """One model at one origin (a backend task): (quantiles P10, P50, P90 (H, D), fitted-model
    info or None, fit seconds)."""
    fit, past, horizon, model, config, n_jobs = args
    t0 = time.perf_counter()
    fc = fit(past, horizon, model, config=config, n_jobs=n_jobs)
    return (fc.quantile(0.1), fc.quantile(0.5), fc.quantile(0.9)), fc.info.get("fitted_models"), time.perf_counter() - t0


def backtest(history: History, horizon: int = 13, origins: list[int] | None = None, models=MODELS,
             config: GlobalConfig | None = None, progress=None, n_jobs: int = 1, backend=None,
             fit=base_forecast) -> BacktestResult:
    """Run every model at every origin and score it (see the module docstring). The fits
    (origins x models) are tasks on ``backend`` (optplan.solvers.backends; default: this
    process); the result does not depend on where they run. ``fit(history, horizon, model,
    config=, n_jobs=)`` makes one forecast: the base models by default, every model with
    ``optplan.forecast.dispatch.forecast`` (passed in, so that the combined model, which runs a
    backtest, and this module do not import each other)."""
    origins = sorted(origins or default_origins(history.n_weeks, horizon))
    for n in origins:
        if n + horizon > history.n_weeks:
            raise OptionError("--origins", f"origins whose horizon ends within the history ({history.n_weeks} weeks)",
                                  f"origin {n} + horizon {horizon}")
    say = progress or (lambda msg: None)
    backend = backend or SerialBackend()
    parts, seconds, info = [], {m: 0.0 for m in models}, {}
    jobs = [(n, m) for n in origins for m in models]
    tasks = [(fit, history.subset(n), horizon, m, config, n_jobs) for n, m in jobs]
    say(f"backtest: {len(jobs)} fits ({len(origins)} origins x {len(models)} models: {', '.join(models)}) of "
        f"{len(history.depots)} depots, {horizon} weeks ahead each; a line per fit as it ends")
    for (n, m), (quantiles, fitted, fit_s) in zip(jobs, backend.imap(_fit_task, tasks), strict=True):
        say(f"origin {n} ({history.week_start[n - 1].date()}): {m} fitted in {fit_s:.1f} s")
        seconds[m] += fit_s
        if m == "ets" and fitted is not None:
            info.setdefault("ets_models", {})[str(n)] = fitted
        actual = history.blocks[n:n + horizon]  # (H, D) blocks/week, never shown to the models
        scale = mase_scale(history.subset(n).blocks)
        H, D = actual.shape
        p10, p50, p90 = quantiles
        parts.append(pd.DataFrame({
            "model": m, "origin": n, "depot": np.tile(history.depots, H), "h": np.repeat(np.arange(1, H + 1), D),
            "week_start": np.repeat(history.week_start[n:n + H].strftime("%Y-%m-%d"), D),
            "y": actual.ravel(), "p10": p10.ravel(), "p50": p50.ravel(), "p90": p90.ravel(), "scale": np.tile(scale, H),
        }))
    rows = pd.concat(parts, ignore_index=True)
    rows = rows[np.isfinite(rows["y"].to_numpy())].reset_index(drop=True)
    by_depot = _score(rows, ["model", "depot"])
    by_origin = _score(rows, ["model", "origin"])
    overall = _score(rows, ["model"])
    overall["MASE"] = by_depot.groupby("model", sort=False)["MASE"].mean().reindex(overall["model"]).to_numpy()
    order = {m: i for i, m in enumerate(models)}
    overall = overall.sort_values("model", key=lambda s: s.map(order)).reset_index(drop=True)
    return BacktestResult(rows=rows, by_depot=by_depot, overall=overall, by_origin=by_origin, origins=origins,
                          horizon=horizon,
                          seconds={k: round(v, 2) for k, v in seconds.items()}, info=info)


def _score(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    out = []
    for key, g in rows.groupby(keys, sort=False):
        y = g["y"].to_numpy()
        loss = sum(pinball(y, g[f"p{round(q * 100)}"].to_numpy(), q).sum() for q in SCORED_LEVELS)
        rec = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
        scale = g["scale"].to_numpy(float)
        ok = scale > 0  # a history that repeats itself a year on (seasonal-naive error 0) has no MASE
        total = float(np.abs(y).sum())
        rec.update({
            "MASE": float(np.mean(np.abs(y - g["p50"].to_numpy())[ok] / scale[ok])) if ok.any() else float("nan"),
            "wQL": float(2.0 * loss / (len(SCORED_LEVELS) * total)) if total > 0 else float("nan"),
            "coverage_p10_p90": coverage(y, g["p10"].to_numpy(), g["p90"].to_numpy()),
            "n": len(g),
        })
        out.append(rec)
    return pd.DataFrame(out)


#: Depot resamples behind the margins' intervals.
MARGIN_RESAMPLES = 2000


def margins(result: BacktestResult, reference: str = "seasonal_naive", level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Each other model's overall MASE relative to ``reference``'s (ratio - 1: negative is
    better), with a ``level`` interval from resampling the depots with replacement
    (``MARGIN_RESAMPLES`` resamples, ``seed``): one row per model."""
    piv = result.by_depot.pivot(index="depot", columns="model", values="MASE")
    if reference not in piv.columns:
        return pd.DataFrame(columns=["model", "reference", "MASE_vs_reference", "low", "high"])
    out = []
    for m in [c for c in result.overall["model"] if c != reference]:
        point, lo, hi = mase_ratio(piv[m].to_numpy(), piv[reference].to_numpy(), level, seed)
        out.append({"model": m, "reference": reference, "MASE_vs_reference": point, "low": lo, "high": hi})
    return pd.DataFrame(out)


def mase_ratio(mase: np.ndarray, reference: np.ndarray, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(point, low, high): the mean over depots of one model's MASE relative to another's
    (ratio - 1), per-depot MASE arrays in the same depot order, with a ``level`` interval from
    resampling the depots with replacement (``MARGIN_RESAMPLES`` resamples, ``seed``); depots
    where either has no MASE (NaN) are left out (all NaN: NaN)."""
    x, ref = np.asarray(mase, float), np.asarray(reference, float)
    both = np.isfinite(x) & np.isfinite(ref)
    if not both.any():
        return float("nan"), float("nan"), float("nan")
    x, ref = x[both], ref[both]
    idx = np.random.default_rng(seed).integers(0, len(x), size=(MARGIN_RESAMPLES, len(x)))
    draws = x[idx].mean(axis=1) / ref[idx].mean(axis=1) - 1.0
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return float(x.mean() / ref.mean() - 1.0), float(lo), float(hi)


def _demeaned_moments(n: int, a: float) -> tuple[float, float]:
    """(E sum_t u_t^2, E sum_t u_t u_{t+1}) / sigma^2 for u = x - mean(x), x n weeks of stationary
    AR(1) noise with coefficient ``a`` and variance sigma^2: tr(M R M) and the sum of its
    first off-diagonal, R[i,j] = a^|i-j|, M = I - 1/n (removing each series' own level biases both)."""
    i = np.arange(n)
    R = a ** np.abs(i[:, None] - i[None, :])
    M = np.eye(n) - 1.0 / n
    C = M @ R @ M
    return float(np.trace(C)), float(np.trace(C, offset=1))


def _pooled_moments(lengths: dict[int, int], a: float) -> tuple[float, float]:
    """``_demeaned_moments`` summed over series: ``lengths`` maps a length to how many series have it."""
    pairs = [(k, _demeaned_moments(n, a)) for n, k in lengths.items()]
    return sum(k * m[0] for k, m in pairs), sum(k * m[1] for k, m in pairs)


def demand_noise(rows: pd.DataFrame) -> pd.DataFrame:
    """Each model's weekly demand noise about its own forecast's level, from the backtest's log
    errors: one row per model with ``sd`` (log-sd), ``ar`` (week-to-week correlation), the
    series and weeks used. The numbers `optplan replan` weighs scenarios with (state.yaml
    demand_noise; docs/replan.md).

    Per model, origin and depot, r_h = log(y_h / P50_h) over the horizon's weeks h = 1..n (a
    series with a week of no demand or no forecast is left out); its mean is the level the
    forecast missed by, which the scenarios' spread stands for, so the noise is what is left,
    u = r - mean(r). Under AR(1) noise (sd sigma, coefficient a), E[sum u^2] = sigma^2 tr(M R M)
    and E[sum u_t u_t+1] = sigma^2 x its first off-diagonal (``_demeaned_moments``); pooled over
    the series, a solves sum(lag products) / sum(squares) = their ratio (increasing in a; by
    bisection on [-0.95, 0.99]) and sigma^2 = sum(squares) / sum tr(M R M). Method of moments,
    exact in expectation for AR(1) noise whatever the series' length (a plain lag-1 correlation
    of 13-week demeaned series is about 0.2 too low at a = 0.5)."""
    out = []
    for model, g in rows.groupby("model", sort=False):
        y, p50 = g["y"].to_numpy(float), g["p50"].to_numpy(float)
        ok = (y > 0) & (p50 > 0) & np.isfinite(y) & np.isfinite(p50)
        frame = pd.DataFrame({"key": list(zip(g["origin"], g["depot"], strict=True)), "h": g["h"].to_numpy(int),
                              "r": np.log(np.where(ok, y, 1.0) / np.where(ok, p50, 1.0)), "ok": ok})
        squares, lags, lengths = 0.0, 0.0, {}
        for _, series in frame.sort_values("h", kind="stable").groupby("key", sort=False):
            h = series["h"].to_numpy()
            if len(series) < 3 or not series["ok"].all() or (np.diff(h) != 1).any():
                continue
            u = series["r"].to_numpy() - series["r"].mean()
            squares += float(u @ u)
            lags += float(u[:-1] @ u[1:])
            lengths[len(u)] = lengths.get(len(u), 0) + 1
        n_series = sum(lengths.values())
        if n_series == 0 or squares <= 0:
            out.append({"model": model, "sd": float("nan"), "ar": float("nan"), "series": n_series, "weeks": 0})
            continue

        ratio = lags / squares
        lo, hi = -0.95, 0.99
        for _ in range(60):  # ratio of expectations increasing in a
            mid = 0.5 * (lo + hi)
            s, p = _pooled_moments(lengths, mid)
            lo, hi = (mid, hi) if p / s < ratio else (lo, mid)
        a = 0.5 * (lo + hi)
        out.append({"model": model, "sd": float(np.sqrt(squares / _pooled_moments(lengths, a)[0])), "ar": a,
                    "series": n_series,
                    "weeks": int(sum(n * k for n, k in lengths.items()))})
    return pd.DataFrame(out, columns=["model", "sd", "ar", "series", "weeks"])


def comparison(result: BacktestResult, reference: str = "seasonal_naive") -> dict:
    """The acceptance comparison: each model's overall MASE relative to the reference's."""
    o = result.overall.set_index("model")
    ref = float(o.loc[reference, "MASE"]) if reference in o.index else float("nan")
    return {m: {"MASE": round(float(r["MASE"]), 4), "MASE_vs_" + reference: round(float(r["MASE"]) / ref - 1.0, 4),
                "wQL": round(float(r["wQL"]), 4), "coverage_p10_p90": round(float(r["coverage_p10_p90"]), 4)}
            for m, r in o.iterrows()}
