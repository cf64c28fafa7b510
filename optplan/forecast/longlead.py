"""Long-lead forecasts: monthly or quarterly demand up to three years ahead.

Aggregation: each week's demand (blocks/week) is spread evenly over its 7 days and summed
per calendar month (blocks/month); months the history does not cover completely (the first
and last, usually) are dropped.

Model, per depot, on x = log(monthly blocks):

* statsforecast ``AutoETS`` with additive errors (``model="AZZ"``: on the log scale this is
  a multiplicative model), the trend (none, additive or damped) and season (period 12) picked
  by AICc; the season is dropped with fewer than 2 years + 2 months of months. Its forecast
  gives the log mean m_k and, from its 80% interval, the log standard deviation
  sigma_ets,k = (hi80 - lo80) / (2 x 1.2816) at lead k months.
* ETS intervals fitted on under three years widen little (on the 30 Walmart stores the
  mean relative P10-P90 width is 8.5% at month 1 and 13.3% at month 36; store 1: 5.3% and
  5.5%): the data cannot pin down how fast a depot grows. Growth uncertainty is therefore added explicitly: sigma_g = the
  standard deviation of year-over-year log growth of 13-week mean demand, over every depot
  and week of the history (the spread of growth rates actually seen), and at lead k months
  (k / 12 years) the log standard deviation is

      sigma_k = sqrt(sigma_ets,k^2 + (sigma_g x k / 12)^2)

  (an unknown growth rate with standard deviation sigma_g per year moves the log level by
  sigma_g per year), so the interval widens linearly with the lead in the long run.
* Quantile q of month k: exp(m_k + z_q sigma_k) blocks/month (z_q: the standard normal quantile).

Quarters (blocks/quarter) are calendar quarters made of three forecast months; quantile q of
a quarter is the sum of its months' quantiles q (months moving together: exact for the
growth term, slightly wide for the monthly noise). A quarter whose first month is not a
forecast month is skipped.

Demand scenarios over long-lead periods (``optplan forecast --periods``): weekly paths from
the weekly model for its horizon (up to 52 weeks), then from this model month by month
(``long_lead_weekly_paths``), reduced to weekly scenarios with each week weighted by its period.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.special import ndtri

from optplan.errors import InputError, OptionError, Problem
from optplan.forecast.history import History
from optplan.forecast.models import LEVELS, _ets_methods

MONTHS_PER_YEAR = 12
MAX_PERIODS = {"month": 36, "quarter": 12}  # three years
ETS_LEVEL = 80  # the ETS interval converted to a standard deviation
Z80 = float(ndtri(0.9))  # 1.2816: half-width of an 80% normal interval in standard deviations
GROWTH_WINDOW = 13  # weeks in the rolling mean whose year-over-year change measures growth


def monthly_totals(history: History) -> tuple[pd.PeriodIndex, np.ndarray]:
    """(months, (M, D) blocks/month) for the months the history covers completely (every
    depot: a depot that opened later has NaN before its first full month)."""
    days = pd.date_range(history.week_start[0], history.week_start[-1] + pd.Timedelta(days=6), freq="D")
    daily = np.repeat(history.blocks / 7.0, 7, axis=0)  # blocks/day
    months = days.to_period("M")
    frame = pd.DataFrame(daily, index=months)
    total = frame.groupby(level=0).sum(min_count=1)
    count = frame.notna().groupby(level=0).sum()
    n_days = pd.Series(np.ones(len(days)), index=months).groupby(level=0).sum()
    full = n_days.to_numpy() == np.array([p.days_in_month for p in n_days.index])
    total, count = total[full], count[full]
    values = total.to_numpy(float)
    values[count.to_numpy() < np.array([p.days_in_month for p in total.index])[:, None]] = np.nan
    return pd.PeriodIndex(total.index), values


def growth_sigma(history: History) -> float:
    """Standard deviation of year-over-year log growth of 13-week mean demand (per year),
    pooled over depots and weeks."""
    Y = history.blocks
    if Y.shape[0] < 52 + GROWTH_WINDOW:
        return float("nan")
    kernel = np.ones(GROWTH_WINDOW) / GROWTH_WINDOW
    roll = np.stack([np.convolve(Y[:, d], kernel, mode="valid") for d in range(Y.shape[1])], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        g = np.log(roll[52:] / roll[:-52])
    g = g[np.isfinite(g)]
    return float(np.std(g)) if g.size > 1 else float("nan")


def long_lead_quantiles(history: History, periods: int, resolution: str = "month", n_jobs: int = 1) -> dict:
    """Quantiles of demand per depot and period; returns a dict with ``table`` (a DataFrame:
    depot, period, period_start, period_end, p10..p90 in blocks per period, unit), ``sigma_g``,
    ``models`` (the ETS picked per depot) and ``months_used``."""

    if resolution not in MAX_PERIODS:
        raise OptionError("--resolution", "month or quarter", resolution)
    months, _ = monthly_totals(history)
    last = months[-1]
    if resolution == "quarter":
        first_q = (last + 1).asfreq("Q")
        if first_q.asfreq("M", how="start") != last + 1:
            first_q += 1
        n_months = int(((first_q.asfreq("M", how="start") - (last + 1)).n) + 3 * periods)
    else:
        n_months = periods
    lf = monthly_log_forecast(history, n_months, n_jobs)
    z = ndtri(np.array(LEVELS))
    future = lf["future"]
    out = []
    for j, d in enumerate(history.depots):
        m = lf["mean"][j]
        sigma = np.sqrt(lf["sigma_ets"][j] ** 2 + lf["sigma_growth"] ** 2)
        q = np.exp(m[:, None] + z[None, :] * sigma[:, None])  # (months, Q) blocks/month
        if resolution == "month":
            starts, ends, vals = future.to_timestamp(how="start"), future.to_timestamp(how="end"), q
        else:
            skip = n_months - 3 * periods
            vals = q[skip:].reshape(periods, 3, -1).sum(axis=1)
            quarters = pd.period_range(future[skip].asfreq("Q"), periods=periods, freq="Q")
            starts, ends = quarters.to_timestamp(how="start"), quarters.to_timestamp(how="end")
        for p in range(len(vals)):
            row = {"depot": d, "period": p + 1, "period_start": starts[p].date().isoformat(),
                   "period_end": ends[p].date().isoformat()}
            row.update({f"p{round(lv * 100)}": float(vals[p, i]) for i, lv in enumerate(LEVELS)})
            row["unit"] = f"blocks/{resolution}"
            out.append(row)
    return {"table": pd.DataFrame(out), "sigma_g": lf["sigma_g"], "models": lf["models"], "months_used": len(months),
            "first_month": str(months[0]), "last_month": str(last), "season_length": lf["season_length"]}


def monthly_log_forecast(history: History, n_months: int, n_jobs: int = 1) -> dict:
    """The long-lead model (module docstring) for the ``n_months`` months after the last
    complete month of the history: ``future`` (PeriodIndex), ``mean`` (D, K) log blocks/month
    m_k, ``sigma_ets`` (D, K) and ``sigma_growth`` (K,) log standard deviations (ETS part,
    growth part sigma_g k/12), ``sigma_g`` (per year), ``models``, ``season_length``."""
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS

    months, M = monthly_totals(history)
    last = months[-1]
    season = MONTHS_PER_YEAR if len(months) >= 2 * MONTHS_PER_YEAR + 2 else 1
    ds = months.to_timestamp(how="start")
    rows, silent = [], set()
    for j, d in enumerate(history.depots):
        ok = np.isfinite(M[:, j]) & (M[:, j] > 0)
        if not ok.any():  # no demand in any month: it forecasts none (log blocks -inf, no spread)
            silent.add(d)
            continue
        rows.append(pd.DataFrame({"unique_id": d, "ds": ds[ok], "y": np.log(M[ok, j])}))
    if not rows:
        raise InputError([Problem("history", None, None, "a depot with demand in at least one month",
                                  "no demand at any depot")])
    df = pd.concat(rows, ignore_index=True)
    sf = StatsForecast(models=[AutoETS(season_length=season, model="AZZ")], freq="MS", n_jobs=n_jobs)
    with warnings.catch_warnings():
        # over-parameterised candidate models divide by zero degrees of freedom; AICc drops them
        warnings.simplefilter("ignore", RuntimeWarning)
        fc = sf.forecast(h=n_months, df=df, level=[ETS_LEVEL], fitted=False)
        sf.fit(df=df)

    methods = _ets_methods(sf, [d for d in history.depots if d not in silent])
    methods.update(dict.fromkeys(silent, "none: no demand in the history"))
    fc = fc.reset_index() if "unique_id" not in fc.columns else fc
    fc["unique_id"] = fc["unique_id"].astype(str)
    sigma_g = growth_sigma(history)
    sg = 0.0 if not np.isfinite(sigma_g) else sigma_g
    mean, s_ets = [], []
    for d in history.depots:
        if d in silent:
            mean.append(np.full(n_months, -np.inf))
            s_ets.append(np.zeros(n_months))
            continue
        g = fc[fc["unique_id"] == d].sort_values("ds")
        mean.append(g["AutoETS"].to_numpy(float))
        s = (g[f"AutoETS-hi-{ETS_LEVEL}"].to_numpy(float) - g[f"AutoETS-lo-{ETS_LEVEL}"].to_numpy(float)) / (2 * Z80)
        s_ets.append(np.maximum(s, 0.0))
    k = np.arange(1, n_months + 1)
    return {"future": pd.period_range(last + 1, periods=n_months, freq="M"), "mean": np.array(mean),
            "sigma_ets": np.array(s_ets), "sigma_growth": sg * k / MONTHS_PER_YEAR, "sigma_g": sigma_g,
            "models": methods, "season_length": season}


def long_lead_weekly_paths(history: History, near: np.ndarray, week_start: pd.DatetimeIndex, n_weeks: int,
                           seed: int = 0, n_jobs: int = 1) -> tuple[np.ndarray, dict]:
    """(N, n_weeks, D) weekly demand paths (blocks/week) over a long horizon: the near-term
    weekly paths ``near`` (N, H, D) of the weekly model for weeks 1..H (week 1 starts on
    ``week_start[0]``), then the long-lead monthly model for weeks H+1..n_weeks, each month's
    draw spread evenly over its days and summed per week. A path's month k at depot d is

        log M = m_k + sigma_ets,k eps_k + sigma_g (k/12) z_d,   eps_k ~ N(0, 1) independent,

    with the growth shock z_d comonotone with the path's near-term total at that depot
    (z_d = Phi^-1((rank + 1/2) / N)): a path that runs high in the first H weeks keeps
    growing from there. Returns the paths and what was used (models, sigma_g)."""
    N, H, D = near.shape
    if n_weeks <= H:
        return near[:, :n_weeks], {}
    first = pd.Timestamp(week_start[0])
    days = pd.date_range(first + pd.Timedelta(days=7 * H), first + pd.Timedelta(days=7 * n_weeks - 1), freq="D")
    months, _ = monthly_totals(history)
    need = int((days[-1].to_period("M") - months[-1]).n)
    lf = monthly_log_forecast(history, need, n_jobs)
    rng = np.random.default_rng([seed, 1])  # a stream of its own (sample_paths uses default_rng(seed))
    ranks = np.argsort(np.argsort(near.sum(axis=1), axis=0), axis=0)  # (N, D) rank of each path's near total
    z = ndtri((ranks + 0.5) / N)  # (N, D)
    eps = rng.standard_normal((N, D, need))
    log_m = lf["mean"][None] + lf["sigma_ets"][None] * eps + lf["sigma_growth"][None, None, :] * z[:, :, None]
    month_of_day = np.asarray((days.to_period("M") - (months[-1] + 1)).map(lambda off: off.n), dtype=int)
    per_day = np.exp(log_m) / np.array([p.days_in_month for p in lf["future"]])[None, None, :]  # blocks/day
    daily = per_day[:, :, month_of_day]  # (N, D, days)
    far = daily.reshape(N, D, n_weeks - H, 7).sum(axis=3).transpose(0, 2, 1)  # (N, weeks, D) blocks/week
    return np.concatenate([near, far], axis=1), {"models": lf["models"], "sigma_g": lf["sigma_g"],
                                                  "months": [str(lf["future"][0]), str(lf["future"][-1])]}
