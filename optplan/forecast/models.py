"""Weekly quantile forecasts: two statsforecast baselines and a global gradient-boosting model.

Every model maps a :class:`~optplan.forecast.history.History` (blocks/week) to a
:class:`QuantileForecast`: quantiles ``LEVELS`` of demand (blocks/week) for each of the next
``horizon`` weeks and each depot, plus a "dependence template" of past forecast errors used
to draw joint demand paths (``optplan.forecast.scenarios``).

Baselines (statsforecast, not hand-written):

* ``seasonal_naive``: ``SeasonalNaive(season_length=52)``: the same week last year; its
  intervals come from the in-sample seasonal-naive residuals.
* ``ets``: ``AutoETS(season_length=52)``: exponential smoothing with the model picked by
  AICc. On 104+ weeks it fits weekly-seasonal models (e.g. ETS(M,A,M), ETS(M,N,M));
  with less than 53 weeks statsforecast drops the season. It is slow (seconds per depot).

Quantiles of both come from ``level=[50, 80]``: lo-80 = P10, lo-50 = P25, the point
forecast = P50, hi-50 = P75, hi-80 = P90.

Global model (``global``): one set of scikit-learn ``HistGradientBoostingRegressor``
(``loss="quantile"``) models, one per quantile level, trained on every depot and past
forecast origin at once (direct multi-horizon: the horizon h is a feature). For origin n
(weeks 0..n-1 known), horizon h and depot d, the target week is tau = n - 1 + h and

    s      = mean of the depot's last 52 weeks before n                  (blocks/week, depot scale)
    ly     = tau - lag(tau): the holiday-aligned same week last year    (optplan.forecast.calendar)
    g13    = log(mean y[n-13..n-1] / mean y[n-65..n-53])                  (year-over-year growth)
    base   = y[ly] x exp(g13)                                             (blocks/week)
    target = log((y[tau] + eps s) / (base + eps s)),  eps = 0.01          (log ratio, unitless)

Features (scale-free; eps s added inside every log): h; log(base/s); last year's week
smoothed over ly-1..ly+1 vs base; two years ago (aligned) vs base; growth over 4, 13 and 26
weeks; the last week, last 4 and last 13 weeks' mean vs base; the holiday flag of the
aligned last-year week (when the history has one); signed weeks to Easter, Thanksgiving
and Christmas (within 3 weeks). No week-of-year or depot id: with one or two years of
targets they only memorise noise.

Calibration (only data before the origin; the P50 is never moved). The training origins
are cut into ``folds`` contiguous blocks. Rolling validation: each of the last
``calib_blocks`` blocks is predicted by models fitted only on rows whose target week is
before the block, exactly as a forecast made at that time. On those validation rows, with
w = the row's predicted P10-P90 width (log scale, at least MIN_WIDTH),

    delta[g, h, q] = q-quantile of (target - prediction_q) / w

over the rows of horizon h-2..h+2 in group g (g: target week within 3 weeks of
Thanksgiving's or Christmas's week, or not: a Mondrian split, since holiday errors are
larger; a group with fewer than MIN_CAL_ROWS rows uses both groups; horizons without
validation rows take the nearest calibrated horizon's shift). The forecast's quantile q is
then prediction_q + delta[g, h, q] x w (locally adaptive conformalised quantile
regression: on validation data each quantile is exceeded at its nominal rate), clipped so
no quantile crosses the P50.

Dependence template: each of the ``folds`` blocks is also predicted by a P50 model fitted
on the other blocks (rows sharing its target weeks left out); the out-of-fold P50 residuals
at every past origin whose H target weeks are in the history are the template.

Fits: folds + (Q - 1) x calib_blocks + Q gradient-boosting fits (4 + 8 + 5 = 17 by
default), single-threaded by default (deterministic, and fastest on a shared machine).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from optplan.errors import OptionError
from optplan.forecast.calendar import FEATURE_HOLIDAYS, FEATURE_WINDOW, WEEKS_PER_YEAR, Calendar
from optplan.forecast.history import History

#: Quantile levels forecast by every model (P10, P25, P50, P75, P90).
LEVELS = (0.1, 0.25, 0.5, 0.75, 0.9)
#: statsforecast interval level (percent) -> (lower quantile, upper quantile)
SF_LEVELS = {50: (0.25, 0.75), 80: (0.1, 0.9)}
MODELS = ("global", "ets", "seasonal_naive")
#: Models of optional extras: "rnn" needs PyTorch (pip install optplan[deep]; optplan.forecast.rnn).
OPTIONAL_MODELS = ("rnn", "combined")
MAX_HORIZON = 52  # weeks
GROWTH_WEEKS = 13  # weeks in the year-over-year growth of the base
MIN_ORIGIN = WEEKS_PER_YEAR + GROWTH_WEEKS  # first training origin of the global model (weeks of history)
MIN_TRAIN_ORIGINS = 13  # training origins the global model needs at the longest horizon
MIN_FIT_ROWS = 100  # fewer training rows than this: the fit is skipped
MIN_CAL_ROWS = 100  # validation rows a calibration group needs (else groups are pooled)
MIN_WIDTH = 0.01  # smallest P10-P90 width (log ratio) used to normalise calibration residuals
EPS = 0.01  # share of the depot scale added inside every log (zero demand stays finite)


@dataclass
class QuantileForecast:
    """Quantile forecasts of weekly demand.

    values: (H, D, len(levels)) blocks/week, non-decreasing along the last axis.
    template: (B, H, D) past forecast errors (log scale) at B past origins, one block of H
    consecutive weeks each: the rank dependence across weeks and depots for scenarios.
    """

    model: str
    levels: tuple[float, ...]
    values: np.ndarray
    depots: list[str]
    week_start: pd.DatetimeIndex  # (H,) first day of each forecast week
    template: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    def quantile(self, q: float) -> np.ndarray:
        """(H, D) blocks/week at level q (one of ``levels``)."""
        return self.values[:, :, self.levels.index(q)]


def future_weeks(history: History, horizon: int) -> pd.DatetimeIndex:
    return pd.DatetimeIndex([history.week_start[-1] + pd.Timedelta(weeks=h) for h in range(1, horizon + 1)])


# ---------------------------------------------------------------------- baselines


def _sf_frame(history: History) -> pd.DataFrame:
    df = history.to_frame().rename(columns={"depot": "unique_id", "week_start": "ds", "blocks": "y"})
    return df[["unique_id", "ds", "y"]]


def sf_freq(history: History) -> str:
    """pandas weekly frequency anchored on the weekday the weeks start on, e.g. 'W-SAT'."""
    return "W-" + history.week_start[0].day_name()[:3].upper()


def statsforecast_quantiles(history: History, horizon: int, model: str, n_jobs: int = 1) -> QuantileForecast:
    """Seasonal-naive or AutoETS quantile forecasts from statsforecast."""
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, SeasonalNaive

    m = SeasonalNaive(season_length=WEEKS_PER_YEAR) if model == "seasonal_naive" else AutoETS(season_length=WEEKS_PER_YEAR)
    sf = StatsForecast(models=[m], freq=sf_freq(history), n_jobs=n_jobs)
    with warnings.catch_warnings():
        # candidate ETS models with no degrees of freedom left divide by zero; AICc drops them
        warnings.simplefilter("ignore", RuntimeWarning)
        sf.fit(df=_sf_frame(history))
        fc = sf.predict(h=horizon, level=sorted(SF_LEVELS))
    name = m.alias
    values, missing = _sf_values(fc, name, history.depots, future_weeks(history, horizon))
    info = {"library": "statsforecast", "class": type(m).__name__, "season_length": WEEKS_PER_YEAR,
            "zero_width_p10_p90": int((values[:, :, -1] - values[:, :, 0] <= 0).sum()),
            "missing_values_set_to_zero": missing}
    if model == "ets":
        info["fitted_models"] = _ets_methods(sf, history.depots)
    return QuantileForecast(model=model, levels=LEVELS, values=values, depots=list(history.depots),
                            week_start=future_weeks(history, horizon), template=seasonal_naive_template(history, horizon),
                            info=info)


def _sf_values(fc: pd.DataFrame, name: str, depots: list[str], weeks: pd.DatetimeIndex) -> tuple[np.ndarray, int]:
    """(H, D, Q) quantiles (blocks/week, floored at 0, sorted) and the count of missing ones (set to 0)."""
    fc = fc.reset_index() if "unique_id" not in fc.columns else fc
    cols = {0.5: name}
    for lv, (lo, hi) in SF_LEVELS.items():
        cols[lo], cols[hi] = f"{name}-lo-{lv}", f"{name}-hi-{lv}"
    H, D = len(weeks), len(depots)
    out = np.empty((H, D, len(LEVELS)))
    fc = fc.assign(unique_id=fc["unique_id"].astype(str)).set_index(["unique_id", "ds"])
    idx = pd.MultiIndex.from_product([depots, weeks], names=["unique_id", "ds"])
    fc = fc.reindex(idx)
    for k, q in enumerate(LEVELS):
        out[:, :, k] = fc[cols[q]].to_numpy(float).reshape(D, H).T
    missing = int(np.isnan(out).sum())
    out = np.sort(np.maximum(np.nan_to_num(out, nan=0.0), 0.0), axis=2)
    return out, missing


def _ets_methods(sf, depots: list[str]) -> dict[str, str]:
    """The ETS model statsforecast picked per depot, when it exposes it."""
    try:
        fitted = sf.fitted_
    except AttributeError:
        return {}
    out = {}
    for i, d in enumerate(depots):
        try:
            out[d] = str(fitted[i, 0].model_["method"])
        except (AttributeError, IndexError, KeyError, TypeError):
            return {}
    return out


def seasonal_naive_template(history: History, horizon: int) -> np.ndarray:
    """(B, H, D) blocks of year-over-year log changes minus each depot's mean change: the
    seasonal-naive errors of every past block of H consecutive weeks (missing -> 0)."""
    Y = history.blocks
    s = np.where(np.isfinite(Y), Y, np.nan)
    scale = _col_mean(s)
    a, b = s[WEEKS_PER_YEAR:], s[:-WEEKS_PER_YEAR]
    with np.errstate(invalid="ignore", divide="ignore"):  # an all-zero depot: 0/0 -> NaN -> 0 below
        e = np.log((a + EPS * scale) / (b + EPS * scale))
    e = np.where(np.isfinite(e), e, np.nan)
    e = e - _col_mean(e)
    e = np.where(np.isfinite(e), e, 0.0)
    n_blocks = e.shape[0] - horizon + 1
    if n_blocks < 1:
        return np.zeros((1, horizon, Y.shape[1]))
    return np.stack([e[i:i + horizon] for i in range(n_blocks)])


def _col_mean(x: np.ndarray) -> np.ndarray:
    ok = np.isfinite(x)
    n = ok.sum(axis=0)
    return np.where(n > 0, np.where(ok, x, 0.0).sum(axis=0) / np.maximum(n, 1), 0.0)


# ---------------------------------------------------------------------- global model


@dataclass(frozen=True)
class GlobalConfig:
    """Settings of the global gradient-boosting model (HistGradientBoostingRegressor)."""

    max_iter: int = 200
    learning_rate: float = 0.05
    max_leaf_nodes: int = 15
    min_samples_leaf: int = 40
    l2_regularization: float = 1.0
    folds: int = 4  # blocks of training origins: cross-fitting folds of the error template
    calibrate: bool = True
    calib_blocks: int = 2  # the last blocks are the rolling validation of the calibration
    h_pool: int = 2  # residuals of horizons h-2..h+2 calibrate horizon h
    threads: int = 1  # OpenMP threads per fit (1: fastest on a shared machine; results do not depend on it)
    seed: int = 0


FEATURES = ("h", "log_base_over_scale", "ly_smooth_vs_base", "ly2_vs_base", "growth_4", "growth_13", "growth_26",
            "last_vs_base", "mean4_vs_base", "mean13_vs_base", "holiday_ly", "weeks_to_easter", "weeks_to_thanksgiving",
            "weeks_to_christmas")


class _Design:
    """Feature rows for (origin n, horizon h, depot d) from one history matrix."""

    def __init__(self, history: History, horizon: int):
        Y = history.blocks
        self.Y = Y
        self.W, self.D = Y.shape
        ok = np.isfinite(Y)
        self.C = np.vstack([np.zeros(self.D), np.cumsum(np.where(ok, Y, 0.0), axis=0)])
        self.N = np.vstack([np.zeros(self.D), np.cumsum(ok, axis=0)])
        # one holiday calendar per country; each depot's rows use its country's
        countries = history.country_of_depots()
        self.calendars = {c: Calendar(history.week_start[0], self.W + horizon + 1, c) for c in sorted(set(countries))}
        self.country = np.array([sorted(self.calendars).index(c) for c in countries])
        self.hol = history.holiday

    def _mean(self, a: np.ndarray, b: np.ndarray, d: np.ndarray, strict: bool = True) -> np.ndarray:
        """Mean of Y[a:b, d] (blocks/week); NaN if a < 0 (when strict) or no week is known."""
        aa, bb = np.clip(a, 0, self.W), np.clip(b, 0, self.W)
        n = self.N[bb, d] - self.N[aa, d]
        m = (self.C[bb, d] - self.C[aa, d]) / np.maximum(n, 1)
        bad = (n <= 0) | ((a < 0) if strict else False)
        return np.where(bad, np.nan, m)

    def _by_country(self, method: str, t: np.ndarray, d: np.ndarray) -> np.ndarray:
        """``Calendar.<method>(t)`` with each row's week t evaluated in the calendar of its
        depot d's country."""
        t, d = np.atleast_1d(np.asarray(t, dtype=int)), np.broadcast_to(np.asarray(d, dtype=int), np.shape(t))
        out = None
        for k, cal in enumerate(self.calendars.values()):
            rows = self.country[d] == k
            if not rows.any():
                continue
            part = getattr(cal, method)(t[rows])
            if out is None:
                out = np.empty((len(t),) + part.shape[1:], dtype=part.dtype)
            out[rows] = part
        return out if out is not None else getattr(next(iter(self.calendars.values())), method)(t)

    def lag(self, t: np.ndarray, d: np.ndarray) -> np.ndarray:
        return self._by_country("last_year_lag", t, d)

    def holiday_distance(self, t: np.ndarray, d: np.ndarray) -> np.ndarray:
        return self._by_country("holiday_distance", t, d)

    def peak_group(self, t: np.ndarray, d: np.ndarray) -> np.ndarray:
        """1 for target weeks within 3 weeks of Thanksgiving's or Christmas's week (in the
        depot's country), else 0."""
        dist = self.holiday_distance(t, d)
        names = list(FEATURE_HOLIDAYS)
        near = np.zeros(len(dist), bool)
        for name in ("thanksgiving", "christmas"):
            near |= np.abs(dist[:, names.index(name)]) <= FEATURE_WINDOW
        return near.astype(int)

    def _at(self, t: np.ndarray, d: np.ndarray) -> np.ndarray:
        ok = (t >= 0) & (t < self.W)
        return np.where(ok, self.Y[np.clip(t, 0, self.W - 1), d], np.nan)

    def rows(self, n: np.ndarray, h: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(X, base, scale, target): features, base and scale (blocks/week), log-ratio target
        (NaN where the target week is not in the history)."""
        n, h, d = (np.asarray(x, dtype=int) for x in (n, h, d))
        tau = n - 1 + h
        s = self._mean(n - WEEKS_PER_YEAR, n, d, strict=False)
        s = np.maximum(np.nan_to_num(s, nan=0.0), 1e-9)
        lag = self.lag(tau, d)
        ly = tau - lag
        ly = np.where(ly > n - 1, tau - WEEKS_PER_YEAR, ly)
        ly2 = ly - self.lag(ly, d)

        def growth(k):
            return self._log(self._mean(n - k, n, d), self._mean(n - k - WEEKS_PER_YEAR, n - WEEKS_PER_YEAR, d), s)

        g4, g13, g26 = growth(4), growth(GROWTH_WEEKS), growth(26)
        y_ly = self._at(ly, d)
        mean13 = self._mean(n - 13, n, d)
        base = np.where(np.isfinite(y_ly), y_ly * np.exp(np.nan_to_num(g13, nan=0.0)), mean13)
        hol = self.hol[np.clip(ly, 0, self.W - 1), d] if self.hol is not None else np.full(len(n), np.nan)
        hol = np.where(ly >= 0, hol, np.nan)
        X = np.column_stack([
            h,
            self._log(base, s, s),
            self._log(self._mean(ly - 1, np.minimum(ly + 2, n), d), base, s),  # never past the row's origin
            self._log(self._at(ly2, d), base, s),
            g4, g13, g26,
            self._log(self._at(n - 1, d), base, s),
            self._log(self._mean(n - 4, n, d), base, s),
            self._log(mean13, base, s),
            hol,
            self.holiday_distance(tau, d),
        ])
        target = self._log(self._at(tau, d), base, s)
        return X, base, s, target

    @staticmethod
    def _log(a: np.ndarray, b: np.ndarray, s: np.ndarray) -> np.ndarray:
        """log((a + eps s) / (b + eps s)); NaN if either is missing."""
        with np.errstate(invalid="ignore"):
            return np.log((a + EPS * s) / (b + EPS * s))


def _grid(origins: np.ndarray, horizon: int, D: int, last_target: int | None):
    o, h, d = np.meshgrid(origins, np.arange(1, horizon + 1), np.arange(D), indexing="ij")
    o, h, d = o.ravel(), h.ravel(), d.ravel()
    if last_target is not None:
        keep = o - 1 + h <= last_target
        o, h, d = o[keep], h[keep], d[keep]
    return o, h, d


def _fit_predict(X_train, y_train, X_pred_list, q: float, cfg: GlobalConfig, keep: np.ndarray) -> list[np.ndarray]:
    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    model = HistGradientBoostingRegressor(
        loss="quantile", quantile=q, max_iter=cfg.max_iter, learning_rate=cfg.learning_rate,
        max_leaf_nodes=cfg.max_leaf_nodes, min_samples_leaf=cfg.min_samples_leaf,
        l2_regularization=cfg.l2_regularization, early_stopping=False, random_state=cfg.seed,
    )
    keep = keep & ~np.all(np.isnan(X_train), axis=0)  # a feature unknown in every training row cannot be binned
    with threadpool_limits(cfg.threads):
        model.fit(X_train[:, keep], y_train)
        return [model.predict(X[:, keep]) for X in X_pred_list]


def global_quantiles(history: History, horizon: int, config: GlobalConfig | None = None, progress=None) -> QuantileForecast:
    """Quantile forecasts of the global gradient-boosting model (see the module docstring).

    ``progress``: optional callable taking a message (one line per fitting stage)."""
    cfg = config or GlobalConfig()
    say = progress or (lambda msg: None)
    W, D = history.blocks.shape
    H = horizon
    design = _Design(history, H)
    o, h, d = _grid(np.arange(MIN_ORIGIN, W), H, D, last_target=W - 1)
    X, base, s, z = design.rows(o, h, d)
    ok = np.isfinite(z) & np.isfinite(base)
    o, h, d, X, z = o[ok], h[ok], d[ok], X[ok], z[ok]
    tau = o - 1 + h
    po, ph, pd_ = _grid(np.array([W]), H, D, last_target=None)
    Xp, base_p, s_p, _ = design.rows(po, ph, pd_)
    keep = np.ones(X.shape[1], bool)
    Q = len(LEVELS)
    j50, j_lo, j_hi = LEVELS.index(0.5), 0, Q - 1
    blocks = np.array_split(np.unique(o), max(1, min(cfg.folds, len(np.unique(o)))))

    # --- dependence template: cross-fitted (out-of-fold) P50 residuals at every past origin
    oof50 = np.full(len(z), np.nan)
    for k, blk in enumerate(blocks):
        lo, hi = int(blk.min()), int(blk.max())
        test = (o >= lo) & (o <= hi)
        train = ~test & ~((tau >= lo) & (tau <= hi - 1 + H))  # purge rows sharing the held-out target weeks
        if train.sum() >= MIN_FIT_ROWS:
            say(f"global model: cross-fitting the P50 for the error template, fold {k + 1}/{len(blocks)}")
            oof50[test] = _fit_predict(X[train], z[train], [X[test]], 0.5, cfg, keep)[0]

    # --- calibration: rolling-origin validation on the last `calib_blocks` blocks, each
    # predicted by models fitted only on rows whose target week is before the block
    val = np.full((len(z), Q), np.nan)
    if cfg.calibrate:
        for k, blk in enumerate(blocks[-cfg.calib_blocks:] if len(blocks) > 1 else []):
            lo, hi = int(blk.min()), int(blk.max())
            test, train = (o >= lo) & (o <= hi), tau < lo
            if train.sum() < MIN_FIT_ROWS:
                continue
            say(f"global model: rolling validation block {k + 1}/{cfg.calib_blocks} (origins {lo}-{hi}, "
                f"{int(train.sum())} training rows)")
            for j, q in enumerate(LEVELS):
                if j != j50:
                    val[test, j] = _fit_predict(X[train], z[train], [X[test]], q, cfg, keep)[0]

    say(f"global model: fitting {Q} quantile models on {len(z)} rows")
    pred = np.column_stack([_fit_predict(X, z, [Xp], q, cfg, keep)[0] for q in LEVELS])  # (H*D, Q) log ratios
    pred = np.sort(pred, axis=1)

    # --- Mondrian conformal shifts per level, horizon and group (holiday peak or regular week),
    # in units of the model's own P10-P90 width (locally adaptive)
    have = np.isfinite(val[:, j_lo]) & np.isfinite(val[:, j_hi])
    group, group_p = design.peak_group(tau, d), design.peak_group(W - 1 + ph, pd_)
    shift, n_cal = _conformal_shifts(z, val, h, group, have, H, cfg)
    width = np.maximum(pred[:, j_hi] - pred[:, j_lo], MIN_WIDTH)
    adj = pred + shift[group_p, ph - 1] * width[:, None]
    adj[:, j50] = pred[:, j50]
    adj[:, :j50] = np.minimum(adj[:, :j50], pred[:, [j50]])  # calibration never moves the P50 nor crosses it
    adj[:, j50 + 1:] = np.maximum(adj[:, j50 + 1:], pred[:, [j50]])
    adj = np.sort(adj, axis=1)
    values = (base_p[:, None] + EPS * s_p[:, None]) * np.exp(adj) - EPS * s_p[:, None]
    values = np.maximum(values, 0.0).reshape(H, D, Q)  # grid order: (h, d)

    template = _oof_template(o, h, d, z - oof50, W, H, D)
    val_cov = float(np.mean((z[have] >= val[have, j_lo]) & (z[have] <= val[have, j_hi]))) if have.any() else None
    info = {
        "library": "scikit-learn", "class": "HistGradientBoostingRegressor(loss='quantile')",
        "config": dict(cfg.__dict__),
        "training_rows": int(len(z)), "training_origins": [int(o.min()), int(o.max())] if len(o) else [],
        "features": list(FEATURES),
        "calibration": {
            "validation_rows": int(have.sum()),
            "raw_p10_p90_coverage_on_validation": None if val_cov is None else round(val_cov, 4),
            "rows_per_group": {GROUPS[g]: int(n_cal[g]) for g in range(len(GROUPS))},
            "shift_in_widths": {GROUPS[g]: {f"p{round(q * 100)}": [round(float(x), 4) for x in shift[g, :, j]]
                                            for j, q in enumerate(LEVELS) if j != j50} for g in range(len(GROUPS))},
        },
        "template_origins": int(template.shape[0]),
    }
    return QuantileForecast(model="global", levels=LEVELS, values=values, depots=list(history.depots),
                            week_start=future_weeks(history, H), template=template, info=info)


GROUPS = ("regular", "holiday_peak")  # Mondrian calibration groups of target weeks


def _conformal_shifts(z, val, h, group, have, H: int, cfg: GlobalConfig) -> tuple[np.ndarray, np.ndarray]:
    """(groups, H, Q) shifts in units of the validation P10-P90 width, and rows per group.

    shift[g, h, q] = the q-quantile of (target - validation prediction_q) / width over the
    validation rows of group g with horizon within h_pool of h; a group with fewer than
    MIN_CAL_ROWS such rows uses both groups; a horizon with too few rows (long horizons have
    no validation rows) takes the shift of the nearest horizon that has them."""
    Q = len(LEVELS)
    shift = np.full((len(GROUPS), H, Q), np.nan)
    n_cal = np.array([int((have & (group == g)).sum()) for g in range(len(GROUPS))])
    if not have.any():
        return np.zeros_like(shift), n_cal
    width = np.maximum(val[:, Q - 1] - val[:, 0], MIN_WIDTH)
    for g in range(len(GROUPS)):
        for hh in range(1, H + 1):
            near = have & (np.abs(h - hh) <= cfg.h_pool)
            if (near & (group == g)).sum() >= MIN_CAL_ROWS:
                near &= group == g
            if near.sum() < MIN_CAL_ROWS:
                continue
            for j, q in enumerate(LEVELS):
                if np.isfinite(val[near, j]).all():
                    shift[g, hh - 1, j] = np.quantile((z[near] - val[near, j]) / width[near], q)
        for j in range(Q):  # horizons without validation rows: nearest calibrated horizon
            known = np.flatnonzero(np.isfinite(shift[g, :, j]))
            if len(known):
                shift[g, :, j] = shift[g, known[np.abs(np.arange(H)[:, None] - known[None, :]).argmin(axis=1)], j]
    return np.nan_to_num(shift, nan=0.0), n_cal


def _oof_template(o, h, d, resid, W: int, H: int, D: int) -> np.ndarray:
    """(B, H, D) out-of-fold P50 residuals (log ratio) at the B past origins whose H target
    weeks are all in the history; cells without a residual (a depot not yet open) are 0."""
    complete = np.arange(MIN_ORIGIN, W - H + 1)
    if len(complete) == 0:
        return np.zeros((1, H, D))
    out = np.full((len(complete), H, D), np.nan)
    sel = (o <= W - H) & np.isfinite(resid)
    out[o[sel] - MIN_ORIGIN, h[sel] - 1, d[sel]] = resid[sel]
    return np.nan_to_num(out, nan=0.0)


def base_forecast(history: History, horizon: int, model: str = "global", config: GlobalConfig | None = None,
                  progress=None, n_jobs: int = 1) -> QuantileForecast:
    """Quantile forecast of one of the base ``MODELS`` (global, ets, seasonal_naive). The
    dispatcher over every model (rnn and combined too) is ``optplan.forecast.dispatch.forecast``."""
    if model == "global":
        return global_quantiles(history, horizon, config, progress)
    if model in ("ets", "seasonal_naive"):
        if progress:
            progress(f"{model}: fitting statsforecast on {len(history.depots)} depots")
        return statsforecast_quantiles(history, horizon, model, n_jobs=n_jobs)
    raise OptionError("--model", f"one of {', '.join(MODELS)} (rnn and combined: optplan.forecast.dispatch)", model)
