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

from __future__ import annotations

import importlib

#: The package's names, each loaded from its module on first use (PEP 562): reading a history
#: (optplan.forecast.history, e.g. simulate's history world) does not load the models' libraries.
_NAMES = {
    "BacktestResult": "backtest", "backtest": "backtest", "forecast": "dispatch",
    "History": "history", "history_from_frame": "history", "read_history": "history",
    "LEVELS": "models", "MODELS": "models", "GlobalConfig": "models", "QuantileForecast": "models",
    "reduce_paths": "scenarios", "sample_paths": "scenarios",
}
__all__ = sorted(_NAMES)


def __getattr__(name: str):
    if name in _NAMES:
        return getattr(importlib.import_module(f"optplan.forecast.{_NAMES[name]}"), name)
    raise AttributeError(f"module 'optplan.forecast' has no attribute {name!r}")

__all__ = [
    "LEVELS", "MODELS", "BacktestResult", "GlobalConfig", "History", "QuantileForecast", "backtest", "forecast",
    "history_from_frame", "read_history", "reduce_paths", "sample_paths",
]
