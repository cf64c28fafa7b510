"""The LSTM quantile forecaster (optional deep extra): deterministic with a seed, sane
quantiles, close to a seasonal truth, and a clean error without PyTorch."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from optplan.errors import OptionError
from optplan.forecast.history import History

#: Relative error of the P50 against the noise-free seasonal truth (the noise is 3%).
P50_RTOL = 0.12


def seasonal_history(weeks: int = 140, depots: int = 3, seed: int = 0) -> tuple[History, np.ndarray]:
    """Weekly blocks = level_d x (1 + 0.3 sin(2 pi week of year / 52)) x lognormal(0.03)."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2022-01-03")
    week_start = pd.DatetimeIndex([start + pd.Timedelta(weeks=t) for t in range(weeks + 13)])
    woy = np.array([w.isocalendar()[1] for w in week_start], float)
    level = np.array([100.0, 250.0, 60.0])[:depots]
    truth = level[None, :] * (1 + 0.3 * np.sin(2 * np.pi * (woy[:, None] - 1) / 52))
    noisy = truth[:weeks] * np.exp(0.03 * rng.standard_normal((weeks, depots)))
    hist = History([f"D{i + 1}" for i in range(depots)], week_start[:weeks], noisy)
    return hist, truth[weeks:]


def test_rnn_is_deterministic_sane_and_close_to_the_truth():
    pytest.importorskip("torch")
    from optplan.forecast.rnn import rnn_quantiles

    hist, future = seasonal_history()
    a = rnn_quantiles(hist, 13, seed=3, epochs=30)
    b = rnn_quantiles(hist, 13, seed=3, epochs=30)
    np.testing.assert_array_equal(a.values, b.values)
    assert a.values.shape == (13, 3, 5) and np.isfinite(a.values).all() and (a.values >= 0).all()
    assert (np.diff(a.values, axis=-1) >= 0).all()
    p50 = a.quantile(0.5)
    assert np.abs(p50 / future - 1).mean() < P50_RTOL
    assert a.model == "rnn" and a.template is not None


def test_without_torch_the_rnn_says_how_to_install_it(monkeypatch):
    from optplan.forecast import rnn
    from optplan.forecast.dispatch import forecast

    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    assert "pip install 'optplan[deep]'" in rnn.available()
    hist, _ = seasonal_history()
    with pytest.raises(OptionError, match="deep"):
        forecast(hist, 13, model="rnn")
