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


@pytest.mark.slow  # about 20 s: CI's second step keeps the README's test command within its time
def test_the_combined_model_is_its_two_models_combined_and_sees_no_future():
    """`forecast(..., "combined")` on 2 synthetic depots (150 weeks): its quantiles are the
    global model's and AutoETS's combined with the weight and scale it reports (recomputed
    here from the two models' own forecasts), and its validation origins' target weeks all
    lie inside the history."""
    from optplan.forecast.combine import combine_quantiles
    from optplan.forecast.dispatch import COMBINED_ORIGINS, forecast
    from optplan.forecast.history import history_from_frame
    from optplan.forecast.models import LEVELS, GlobalConfig

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


def drifting_table(origins, H=4, depots=6, seed=5, growth=0.06):
    """Paired-style backtest rows: the global model's P50 equals the outcome's centre, its P10/P90
    at -+1.2816 (a unit normal's 10/90% points); the outcome's spread is exp(growth * target week)
    around the centre (in units of 1.2816 ... so with growth > 0 the later weeks need wider
    intervals). AutoETS is worse (its P50 off by 3) so the weight of global is 1."""
    rng = np.random.default_rng(seed)
    parts = []
    for o in origins:
        h = np.repeat(np.arange(1, H + 1), depots)
        t = o + h - 1
        spread = np.exp(growth * (t - origins[0]))
        y = 100 + spread * rng.normal(0, 1, len(h))
        base = dict(origin=o, depot=np.tile([f"S{d}" for d in range(depots)], H), h=h, week_start="2012-01-07", y=y, scale=1.0)
        parts.append(pd.DataFrame({**base, "model": "global", "p10": 100 - 1.2816, "p50": 100.0, "p90": 100 + 1.2816}))
        parts.append(pd.DataFrame({**base, "model": "ets", "p10": 103 - 1.2816, "p50": 103.0, "p90": 103 + 1.2816}))
    return pair(pd.concat(parts, ignore_index=True))


def test_choose_sees_only_cells_observed_before_the_origin_and_weights_them_by_recency():
    """At origin 110 with H = 4, the rows of origins 106..109 count only at horizons h with
    origin + h - 1 <= 109 (by hand: 4+3+2+1 = 10 of 16 horizon-rows); outcomes of later cells
    can be anything without changing the choice. Recency weight of a cell: 0.5 ** (age / half-life)."""
    from optplan.forecast.combine import choose, recency_weights, target_week

    table = drifting_table(list(range(100, 110)))
    seen = table[table["origin"] + table["h"] <= 110]
    assert seen.groupby("origin").size().loc[106:109].tolist() == [6 * 4, 6 * 3, 6 * 2, 6 * 1]
    a = choose(table, origin=110)
    b = choose(seen)  # the independent route: the rows filtered by hand, no origin given
    assert (a.weight_global, a.interval_scale, a.validation_rows) == (b.weight_global, b.interval_scale, b.validation_rows)
    spoiled = table.copy()
    spoiled.loc[spoiled["origin"] + spoiled["h"] > 110, "y"] = 1e6  # unobserved at 110
    assert choose(spoiled, origin=110) == a
    # weights by hand: the newest target (week 109) weighs 1, week 103 half at half-life 6
    tw = target_week(table)
    w = recency_weights(table, 110, 6.0)
    assert w[tw == 109][0] == pytest.approx(1.0) and w[tw == 103][0] == pytest.approx(0.5)
    assert recency_weights(table, 110, None) is None
    with pytest.raises(ValueError, match="need the forecast origin"):
        choose(table, half_life=6.0)


def test_choose_nested_picks_the_short_half_life_when_the_spread_drifts():
    """The outcome's spread grows 3% a week, so an interval scale fitted to all past cells
    equally is too narrow at the next origin, and one fitted to the latest cells nearer right.
    Inner origins by hand (H = 4, origins 100..129 every 1, forecast origin 130): m + 4 <= 130
    and some o + 4 <= m, i.e. 104..126. The half-life with the least inner deviation wins, and
    its scale exceeds the equal-weights scale."""
    from optplan.forecast.combine import HALF_LIVES, choose, choose_nested, inner_origins

    table = drifting_table(list(range(100, 130)), depots=20, growth=0.03)
    assert inner_origins(table, 130) == list(range(104, 127))
    nested = choose_nested(table, origin=130)
    scores = dict(nested.half_life_scores)
    assert list(scores) == ["equal" if h is None else f"{h:g}" for h in HALF_LIVES]
    assert nested.half_life == 6.0 and scores["6"] == min(scores.values())
    assert scores["6"] < scores["equal"] - 0.02  # by a margin, not by a tie
    assert scores["equal"] > scores["26"] > scores["13"] > scores["6"]  # the shorter, the better here
    equal = choose(table, origin=130)
    assert nested.weight_global == equal.weight_global == 1.0
    assert nested.interval_scale > equal.interval_scale
    # with no inner origin, equal weights (the plain choice)
    short = table[table["origin"] < 104]
    assert choose_nested(short, origin=104) == choose(short, origin=104)


def test_choose_with_a_band_first_maximises_the_validation_origins_in_it():
    """Brute force over every (w, c) with pandas (an independent route): the band choice puts
    as many validation origins' coverage in [0.72, 0.88] as any candidate does, and among
    those weights has the least wQL; on the drifting table (later origins wider) the plain
    choice puts fewer origins in the band."""
    from optplan.forecast.combine import WEIGHTS, choose
    from optplan.forecast.metrics import wql

    table = drifting_table(list(range(100, 112)), H=4, depots=20, growth=0.03)
    band = (0.72, 0.88)

    def in_band(w, c):
        r = apply(table, w, c)
        share = ((r["p10"] <= r["y"]) & (r["y"] <= r["p90"])).groupby(r["origin"]).mean()
        return int(((share >= band[0]) & (share <= band[1])).sum())

    most = max(in_band(w, c) for w in WEIGHTS for c in SCALES)
    chosen = choose(table, band=band)
    assert in_band(chosen.weight_global, chosen.interval_scale) == most
    plain = choose(table)
    assert in_band(plain.weight_global, plain.interval_scale) < most
    r = apply(table, chosen.weight_global, chosen.interval_scale)
    assert chosen.validation_wql == pytest.approx(wql(r["y"].to_numpy(), {0.1: r["p10"].to_numpy(), 0.5: r["p50"].to_numpy(),
                                                                           0.9: r["p90"].to_numpy()}), rel=METRIC_RTOL)


def test_a_depot_whose_history_repeats_has_no_mase_and_does_not_poison_the_rest(tmp_path):
    """A depot with the same demand every week has a seasonal-naive error of 0, so no MASE (an
    empty cell and a note, no RuntimeWarning); the overall MASE and the margins come from the
    other depot alone."""
    import warnings

    from optplan.forecast.workflow import backtest_files

    rng = np.random.default_rng(0)
    W = 150
    weeks = pd.date_range("2019-01-07", periods=W, freq="7D").strftime("%Y-%m-%d")
    varied = 100 * (1 + 0.2 * np.sin(2 * np.pi * np.arange(W) / 52)) * np.exp(rng.normal(0, 0.05, W))
    frame = pd.concat([pd.DataFrame({"depot": "V", "week_start": weeks, "blocks": varied}),
                       pd.DataFrame({"depot": "C", "week_start": weeks, "blocks": 50.0})])
    path = tmp_path / "history.csv"
    frame.to_csv(path, index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        result, lines = backtest_files(path, tmp_path / "bt", horizon=4, step=4, n_origins=2,
                                       models=("seasonal_naive", "ets"))
    by = result.by_depot.set_index(["model", "depot"])["MASE"]
    assert np.isnan(by[("ets", "C")]) and np.isfinite(by[("ets", "V")])
    assert result.overall.set_index("model").loc["ets", "MASE"] == pytest.approx(by[("ets", "V")], rel=1e-12)
    assert any(line.startswith("note: no MASE at C") for line in lines)
    from optplan.forecast.backtest import margins

    m = margins(result).set_index("model").loc["ets"]
    assert m["MASE_vs_reference"] == pytest.approx(by[("ets", "V")] / by[("seasonal_naive", "V")] - 1, rel=1e-12)


def test_the_combined_models_validation_shrinks_with_the_history():
    """Issue #30: the combined model runs at any origin the global model can (by hand, H = 13:
    the global model needs 65 + h + 13 weeks for an h-week forecast): with 150 weeks four full
    origins 4 apart; at 104 weeks (the backtest's first default origin on 143 weeks) one full
    origin, 91; at 100 weeks one origin with 11 weeks ahead (89 + 11 = 100, 89 >= 65 + 11 + 13);
    at 91 weeks, 6 weeks ahead at 85."""
    from optplan.forecast.dispatch import combined_validation, min_history_weeks

    assert combined_validation(150, 13) == ([125, 129, 133, 137], 13)
    assert combined_validation(104, 13) == ([91], 13)
    assert combined_validation(100, 13) == ([89], 11)
    assert combined_validation(91, 13) == ([85], 6)
    assert min_history_weeks("combined", 13) == min_history_weeks("global", 13) == 91
    assert min_history_weeks("combined", 1) == 80 and combined_validation(80, 1) == ([79], 1)
    assert combined_validation(79, 1) == ([], 0)


def test_a_short_history_gets_a_shorter_validation_said_in_the_output(tmp_path):
    """100 weeks of 2 synthetic depots, 13 weeks ahead: the combined model validates 11 weeks
    ahead at origin 89, says so, and its quantiles are the two models' combined with the
    weight and scale it reports."""
    from optplan.forecast.combine import combine_quantiles
    from optplan.forecast.dispatch import forecast
    from optplan.forecast.models import LEVELS, GlobalConfig
    from optplan.forecast.workflow import forecast_files

    rng = np.random.default_rng(2)
    W, H = 100, 13
    t = np.arange(W)
    weeks = pd.date_range("2019-01-05", periods=W, freq="7D").strftime("%Y-%m-%d")
    frame = pd.concat([pd.DataFrame({"depot": f"D{d}", "week_start": weeks,
                                     "demand": 100 * (1 + d) * (1 + 0.2 * np.sin(2 * np.pi * t / 52)) * np.exp(rng.normal(0, 0.08, W))})
                       for d in range(2)])
    path = tmp_path / "history.csv"
    frame.to_csv(path, index=False)
    fast = GlobalConfig(max_iter=60, learning_rate=0.1, folds=3)
    lines = forecast_files(path, tmp_path / "fc", horizon=H, n_scenarios=3, n_paths=50, model="combined", config=fast,
                           plots=False, demand_col="demand")
    text = "\n".join(lines)
    assert "chosen at origins 89 (11 weeks ahead" in text, text
    assert "note: shorter validation: the history (100 weeks) allows one validation origin with 11 of the 13 weeks" in text
    from optplan.forecast.history import history_from_frame

    history = history_from_frame(frame, demand_col="demand")
    combined = forecast(history, H, "combined", config=fast)
    assert combined.info["validation_horizon_weeks"] == 11 and combined.info["validation_origins"] == [89]
    g, e = forecast(history, H, "global", config=fast), forecast(history, H, "ets")
    np.testing.assert_allclose(combined.values, combine_quantiles(g.values, e.values, combined.info["weight_global"],
                                                                  combined.info["interval_scale"], LEVELS.index(0.5)),
                               rtol=1e-12)
