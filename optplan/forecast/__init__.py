"""Weekly demand forecasts per depot, probabilistic scenarios for instances, and backtests.

    history   read and check a weekly history table (blocks/week, or converted to blocks)
    models    statsforecast baselines (seasonal naive, AutoETS) and the global quantile
              gradient-boosting model
    scenarios joint demand paths (empirical copula of past errors) reduced to S scenarios
    dispatch  every model behind one call (forecast), the combined model
    backtest  rolling-origin backtest: MASE, weighted quantile loss, P10-P90 coverage
    longlead  monthly/quarterly forecasts up to three years ahead
    workflow  the file-level path behind ``optplan forecast`` and ``optplan backtest``

See docs/forecast.md.
"""

from optplan.forecast.backtest import BacktestResult, backtest
from optplan.forecast.dispatch import forecast
from optplan.forecast.history import History, history_from_frame, read_history
from optplan.forecast.models import LEVELS, MODELS, GlobalConfig, QuantileForecast
from optplan.forecast.scenarios import reduce_paths, sample_paths

__all__ = [
    "LEVELS", "MODELS", "BacktestResult", "GlobalConfig", "History", "QuantileForecast", "backtest", "forecast",
    "history_from_frame", "read_history", "reduce_paths", "sample_paths",
]
