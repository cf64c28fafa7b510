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
    if model == "combined":  # two validation origins (COMBINED_STEP apart) whose targets are in the history
        return min_history_weeks("global", horizon) + horizon + COMBINED_STEP
    if model == "rnn":
        return rnn.min_history_weeks(horizon)
    return WEEKS_PER_YEAR + GROWTH_WEEKS  # seasonal lag plus a few weeks for the in-sample errors


#: The combined model's own rolling-origin validation: this many origins, this many weeks apart,
#: the last one H weeks before the end of the history (all their target weeks are known).
COMBINED_ORIGINS = 4
COMBINED_STEP = 4


def combined_quantiles(history: History, horizon: int, config: GlobalConfig | None = None, progress=None,
                       n_jobs: int = 1) -> QuantileForecast:
    """The global model and AutoETS combined (``optplan.forecast.combine``), the weight and
    interval scale chosen by a rolling-origin backtest of both on this history's last
    ``COMBINED_ORIGINS`` origins whose target weeks it holds: nothing after the forecast origin
    is seen. The dependence template is the global model's."""
    say = progress or (lambda msg: None)
    W = history.n_weeks
    origins = [W - horizon - k * COMBINED_STEP for k in range(COMBINED_ORIGINS)]
    origins = sorted(n for n in origins if n >= min_history_weeks("global", horizon))
    if len(origins) < 2:
        raise OptionError("--model", f"a history of at least {min_history_weeks('combined', horizon)} weeks for the "
                          f"combined model (its weights are chosen on {COMBINED_ORIGINS} earlier origins)",
                          f"combined with {W} weeks")
    say(f"combined: choosing the weight and interval scale on origins {', '.join(map(str, origins))}")
    rows = backtest(history, horizon, origins, models=("global", "ets"), config=config, n_jobs=n_jobs, fit=base_forecast,
                    progress=lambda m: say(f"combined validation: {m}")).rows
    choice = choose(pair(rows))
    say(f"combined: weight of the global model {choice.weight_global:.2f}, interval scale {choice.interval_scale:.2f}")
    g = global_quantiles(history, horizon, config, progress)
    e = statsforecast_quantiles(history, horizon, "ets", n_jobs=n_jobs)
    values = combine_quantiles(g.values, e.values, choice.weight_global, choice.interval_scale, LEVELS.index(0.5))
    info = {"library": "optplan.forecast.combine", "weight_global": choice.weight_global,
            "interval_scale": choice.interval_scale, "validation_origins": list(choice.validation_origins),
            "validation_rows": choice.validation_rows, "validation_wql": round(choice.validation_wql, 5),
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
