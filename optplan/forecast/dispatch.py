"""Every forecast model behind one call: the base models (``optplan.forecast.models``), the
LSTM (``optplan.forecast.rnn``, with the deep extra) and the combination of the global model
and AutoETS whose weight is chosen by a backtest (``optplan.forecast.backtest`` and
``optplan.forecast.combine``).

The layering is one way: models <- rnn; models <- backtest (the fit is passed in); all of
them <- this module. ``forecast`` here is what the CLI, the workflow and the pipeline call.
"""

from __future__ import annotations

from optplan.errors import OptionError
from optplan.forecast import rnn
from optplan.forecast.backtest import backtest
from optplan.forecast.calendar import WEEKS_PER_YEAR
from optplan.forecast.combine import choose, combine_quantiles, pair
from optplan.forecast.history import History
from optplan.forecast.models import (
    GROWTH_WEEKS,
    LEVELS,
    MIN_ORIGIN,
    MIN_TRAIN_ORIGINS,
    MODELS,
    OPTIONAL_MODELS,
    GlobalConfig,
    QuantileForecast,
    base_forecast,
    future_weeks,
    global_quantiles,
    statsforecast_quantiles,
)
from optplan.forecast.rnn import rnn_quantiles


def min_history_weeks(model: str, horizon: int) -> int:
    """Weeks of history (up to the origin) a model needs for a ``horizon``-week forecast."""
    if model == "global":
        return MIN_ORIGIN + horizon + MIN_TRAIN_ORIGINS
    if model == "combined":  # the global model's, and one validation origin with a week of targets (combined_validation)
        return max(min_history_weeks("global", horizon), min_history_weeks("global", 1) + 1)
    if model == "rnn":
        return rnn.min_history_weeks(horizon)
    return WEEKS_PER_YEAR + GROWTH_WEEKS  # seasonal lag plus a few weeks for the in-sample errors


#: The combined model's own rolling-origin validation: this many origins, this many weeks apart,
#: the last one H weeks before the end of the history (all their target weeks are known).
COMBINED_ORIGINS = 4
COMBINED_STEP = 4


def combined_validation(n_weeks: int, horizon: int) -> tuple[list[int], int]:
    """The combined model's validation origins (weeks of history) and their horizon (weeks)
    for a forecast after ``n_weeks`` weeks: up to ``COMBINED_ORIGINS`` origins
    ``COMBINED_STEP`` apart whose ``horizon`` target weeks all lie in the history and where the
    global model can fit; when the history is too short for one, a single origin with the
    longest shorter horizon h' the history allows (n + h' <= n_weeks, n at least the global
    model's minimum for h'). ([], 0) when not even one week can be validated."""
    full = [n_weeks - horizon - k * COMBINED_STEP for k in range(COMBINED_ORIGINS)]
    full = sorted(n for n in full if n >= min_history_weeks("global", horizon))
    if full:
        return full, horizon
    for h in range(horizon - 1, 0, -1):
        if n_weeks - h >= min_history_weeks("global", h):
            return [n_weeks - h], h
    return [], 0


def combined_quantiles(history: History, horizon: int, config: GlobalConfig | None = None, progress=None,
                       n_jobs: int = 1) -> QuantileForecast:
    """The global model and AutoETS combined (``optplan.forecast.combine``), the weight and
    interval scale chosen by a rolling-origin backtest of both at this history's own earlier
    origins (``combined_validation``: up to ``COMBINED_ORIGINS`` origins with every target week
    in the history; with a short history fewer, or one origin with a shorter horizon, which
    ``info`` and the progress lines say): nothing after the forecast origin is seen. The
    dependence template is the global model's."""
    say = progress or (lambda msg: None)
    W = history.n_weeks
    origins, h_val = combined_validation(W, horizon)
    if not origins:
        raise OptionError("--model", f"a history of at least {min_history_weeks('combined', horizon)} weeks for the "
                          f"combined model (the global model's, and a validation origin before the forecast's)",
                          f"combined with {W} weeks")
    short = ""
    if h_val < horizon:
        short = (f"shorter validation: the history ({W} weeks) allows one validation origin with {h_val} of the "
                 f"{horizon} weeks (the interval scale is chosen on weeks 1-{h_val} ahead)")
    elif len(origins) < COMBINED_ORIGINS:
        short = (f"shorter validation: the history ({W} weeks) allows {len(origins)} of {COMBINED_ORIGINS} validation "
                 f"origins")
    say(f"combined: choosing the weight and interval scale on origins {', '.join(map(str, origins))}, "
        f"{h_val} weeks ahead" + (f" ({short})" if short else ""))
    rows = backtest(history, h_val, origins, models=("global", "ets"), config=config, n_jobs=n_jobs, fit=base_forecast,
                    progress=lambda m: say(f"combined validation: {m}")).rows
    choice = choose(pair(rows))
    say(f"combined: weight of the global model {choice.weight_global:.2f}, interval scale {choice.interval_scale:.2f}")
    g = global_quantiles(history, horizon, config, progress)
    e = statsforecast_quantiles(history, horizon, "ets", n_jobs=n_jobs)
    values = combine_quantiles(g.values, e.values, choice.weight_global, choice.interval_scale, LEVELS.index(0.5))
    info = {"library": "optplan.forecast.combine", "weight_global": choice.weight_global,
            "interval_scale": choice.interval_scale, "validation_origins": list(choice.validation_origins),
            "validation_rows": choice.validation_rows, "validation_horizon_weeks": h_val,
            **({"validation_note": short} if short else {}), "validation_wql": round(choice.validation_wql, 5),
            "validation_p10_p90_coverage": round(choice.validation_coverage, 4), "global": g.info, "ets": e.info}
    return QuantileForecast(model="combined", levels=LEVELS, values=values, depots=list(history.depots),
                            week_start=future_weeks(history, horizon), template=g.template, info=info)


def forecast(history: History, horizon: int, model: str = "global", config: GlobalConfig | None = None,
             progress=None, n_jobs: int = 1) -> QuantileForecast:
    """Quantile forecast of ``model`` (global, ets, seasonal_naive, combined, or rnn with the
    deep extra) for the next ``horizon`` weeks."""
    if model == "rnn":
        return rnn_quantiles(history, horizon, seed=config.seed if config is not None else 0, progress=progress)
    if model == "combined":
        return combined_quantiles(history, horizon, config, progress, n_jobs)
    if model in MODELS:
        return base_forecast(history, horizon, model, config, progress, n_jobs)
    raise OptionError("--model", f"one of {', '.join(MODELS + OPTIONAL_MODELS)}", model)
