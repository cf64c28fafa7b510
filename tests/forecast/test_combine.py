"""The global/AutoETS combination chosen by rolling-origin validation (issue #15 part 2), and
optplan's forecast metrics against utilsforecast's losses (the same numbers two ways)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from optplan.forecast.combine import NOMINAL_COVERAGE, SCALES, apply, choose, pair
from optplan.forecast.metrics import coverage, mase, mase_scale

#: Float agreement of two routes to the same metric.
METRIC_RTOL = 1e-12


def rows(model, p10, p50, p90, y, origin=100):
    n = len(y)
    return pd.DataFrame({"model": model, "origin": origin, "depot": [f"S{i % 3}" for i in range(n)],
                         "h": np.arange(n) // 3 + 1, "week_start": "2012-01-07", "y": y, "scale": 1.0,
                         "p10": p10, "p50": p50, "p90": p90})


def test_apply_by_hand():
    """global 8/10/12 and AutoETS 6/10/14 at w = 0.5: 7/10/13; scale 2: 4/10/16; a P50 of 1
    with scale 2 would put P10 at -1: clipped at 0 blocks/week."""
    p = pair(pd.concat([rows("global", [8.0, 0.8], [10.0, 1.0], [12.0, 1.2], [10.0, 1.0]),
                        rows("ets", [6.0, 0.0], [10.0, 1.0], [14.0, 2.0], [10.0, 1.0])]))
    out = apply(p, 0.5, 2.0).sort_values("y", ascending=False)
    np.testing.assert_allclose(out[["p10", "p50", "p90"]].to_numpy(), [[4.0, 10.0, 16.0], [0.0, 1.0, 2.2]])
    np.testing.assert_allclose(apply(p, 0.5, 1.0).sort_values("y", ascending=False)["p10"], [7.0, 0.4])


def test_choose_takes_the_accurate_model_and_the_scale_whose_coverage_is_nearest_80_percent():
    rng = np.random.default_rng(0)
    y = 100 + rng.normal(0, 5, 600)
    good = y + rng.normal(0, 1, 600)  # the global model's P50: close to y
    table = pd.concat([rows("global", good - 2, good, good + 2, y), rows("ets", y - 7, y + 3, y + 13, y)])
    c = choose(pair(table))
    assert c.weight_global == 1.0
    # independent route: coverage of good +- 2 s for every candidate scale s
    cov = np.array([np.mean(np.abs(y - good) <= 2 * s) for s in SCALES])
    assert c.interval_scale == SCALES[int(np.argmin(np.abs(cov - NOMINAL_COVERAGE)))]
    assert c.validation_coverage == pytest.approx(cov[SCALES.index(c.interval_scale)])
    with pytest.raises(ValueError, match="no validation rows"):
        choose(pair(table.iloc[:0]))


def test_metrics_equal_utilsforecast_losses():
    """MASE (seasonality 52, scale from the training history) and P10-P90 coverage computed by
    optplan.forecast.metrics and by utilsforecast.losses on two series."""
    from utilsforecast.losses import coverage as uf_coverage
    from utilsforecast.losses import mase as uf_mase

    rng = np.random.default_rng(3)
    W, H = 120, 13
    train = 50 + 10 * np.sin(np.arange(W) * 2 * np.pi / 52)[:, None] + rng.normal(0, 3, (W, 2))
    y = 50 + rng.normal(0, 5, (H, 2))
    p50 = y + rng.normal(0, 4, (H, 2))
    lo, hi = p50 - 5, p50 + 5
    ds_train = pd.date_range("2010-01-02", periods=W, freq="W-SAT")
    ds_test = pd.date_range(ds_train[-1] + pd.Timedelta(days=7), periods=H, freq="W-SAT")
    df = pd.DataFrame({"unique_id": np.repeat(["a", "b"], H), "ds": np.tile(ds_test, 2), "y": y.T.ravel(),
                       "m": p50.T.ravel(), "m-lo-80": lo.T.ravel(), "m-hi-80": hi.T.ravel()})
    train_df = pd.DataFrame({"unique_id": np.repeat(["a", "b"], W), "ds": np.tile(ds_train, 2), "y": train.T.ravel()})
    theirs = uf_mase(df, ["m"], seasonality=52, train_df=train_df).set_index("unique_id")["m"]
    scale = mase_scale(train)
    ours = [mase(y[:, d], p50[:, d], scale[d]) for d in range(2)]
    np.testing.assert_allclose(theirs.loc[["a", "b"]].to_numpy(), ours, rtol=METRIC_RTOL)
    their_cov = uf_coverage(df, ["m"], level=80).set_index("unique_id")["m"]
    np.testing.assert_allclose(their_cov.loc[["a", "b"]].to_numpy(), [coverage(y[:, d], lo[:, d], hi[:, d]) for d in range(2)],
                               rtol=METRIC_RTOL)


def test_the_combined_model_is_its_two_models_combined_and_sees_no_future():
    """`forecast(..., "combined")` on 2 synthetic depots (150 weeks): its quantiles are the
    global model's and AutoETS's combined with the weight and scale it reports (recomputed
    here from the two models' own forecasts), and its validation origins' target weeks all
    lie inside the history."""
    from optplan.forecast.combine import combine_quantiles
    from optplan.forecast.history import history_from_frame
    from optplan.forecast.models import COMBINED_ORIGINS, LEVELS, GlobalConfig, forecast

    rng = np.random.default_rng(1)
    W, H = 150, 8
    t = np.arange(W)
    weeks = pd.date_range("2019-01-05", periods=W, freq="7D").strftime("%Y-%m-%d")
    frame = pd.concat([pd.DataFrame({"depot": f"D{d}", "week_start": weeks,
                                     "demand": 100 * (1 + d) * (1 + 0.2 * np.sin(2 * np.pi * t / 52)) * np.exp(rng.normal(0, 0.08, W))})
                       for d in range(2)])
    history = history_from_frame(frame, demand_col="demand")
    fast = GlobalConfig(max_iter=60, learning_rate=0.1, folds=3)
    combined = forecast(history, H, "combined", config=fast)
    info = combined.info
    assert len(info["validation_origins"]) == COMBINED_ORIGINS and max(info["validation_origins"]) + H <= W
    g, e = forecast(history, H, "global", config=fast), forecast(history, H, "ets")
    w, c = info["weight_global"], info["interval_scale"]
    np.testing.assert_allclose(combined.values, combine_quantiles(g.values, e.values, w, c, LEVELS.index(0.5)), rtol=1e-12)
    # by hand at one cell: the P50 is the weighted mean of the two P50s
    assert combined.quantile(0.5)[0, 0] == pytest.approx(w * g.quantile(0.5)[0, 0] + (1 - w) * e.quantile(0.5)[0, 0])
