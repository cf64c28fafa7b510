"""Demand forecasting (optplan.forecast): metrics by hand, history checks and repairs, the
holiday calendar, scenario sampling and reduction, long-lead widening, the CLI end to end,
and the backtest acceptance on a small subset of the Walmart stores."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import WALMART_CSV

from optplan.cli.forecast import backtest as backtest_cmd
from optplan.cli.forecast import forecast as forecast_cmd
from optplan.errors import InstanceError
from optplan.forecast.backtest import _score, backtest
from optplan.forecast.calendar import Calendar, country_holidays
from optplan.forecast.dispatch import forecast
from optplan.forecast.history import history_from_frame, read_history
from optplan.forecast.longlead import long_lead_quantiles
from optplan.forecast.metrics import coverage, mase, mase_scale, pinball, weighted_quantile, wql
from optplan.forecast.models import LEVELS, GlobalConfig, QuantileForecast
from optplan.forecast.scenarios import quantile_function, reduce_paths, sample_paths, template_ranks

SHARED_DATA = WALMART_CSV
USD_PER_BLOCK = 2000.0

#: Exact-arithmetic checks (sums of a few floats).
EXACT = 1e-9
#: Rounding of blocks in demand.csv (0.01 blocks) bounds the error of the scenario mean.
ROUNDING_ATOL = 0.005 + 1e-9
#: Reduction check: mean, P10 and P90 of per-depot totals within 2% of the paths' (the issue's bound).
REDUCTION_RTOL = 0.02
#: Sampled paths reproduce the forecast quantiles: share below P10/P50/P90 within 2 points.
MARGINAL_ATOL = 0.02
#: Acceptance (issue #4): P50 MASE at least 8% below seasonal naive and below AutoETS; P10-P90 coverage in [72%, 88%].
MASE_GAIN_VS_SNAIVE = 0.08
COVERAGE_RANGE = (0.72, 0.88)
#: A small but real global model for the tests (fewer, larger steps than the default).
FAST = GlobalConfig(max_iter=100, learning_rate=0.1, folds=3)
#: The forecast CLI with few boosting rounds (the model code is the same).
FAST_ROUNDS = "60"


# ---------------------------------------------------------------------- helpers


def synthetic_frame(n_depots=4, n_weeks=130, seed=0, start="2019-01-05") -> pd.DataFrame:
    """Weekly demand in blocks: level x yearly season x trend x lognormal noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_weeks)
    weeks = pd.date_range(start, periods=n_weeks, freq="7D")
    rows = []
    for d in range(n_depots):
        y = (100.0 * (1 + d)) * (1 + 0.2 * np.sin(2 * np.pi * t / 52)) * (1 + 0.002 * t) * np.exp(rng.normal(0, 0.05, n_weeks))
        rows.append(pd.DataFrame({"depot": f"D{d + 1}", "week_start": weeks.strftime("%Y-%m-%d"), "demand": np.round(y, 3)}))
    return pd.concat(rows, ignore_index=True)


def as_text(df: pd.DataFrame) -> pd.DataFrame:
    return df.astype(str)


def write_csv(df: pd.DataFrame, path: Path) -> Path:
    df.to_csv(path, index=False)
    return path


def problems_of(exc: InstanceError) -> str:
    return "\n".join(str(p) for p in exc.problems)


# ---------------------------------------------------------------------- metrics (by hand)


def test_pinball_and_wql_by_hand():
    y = np.array([10.0, 20.0])
    # q=0.9: under-forecast by 2 costs 0.9 x 2 = 1.8; over-forecast by 2 costs 0.1 x 2 = 0.2
    assert pinball(np.array([10.0]), np.array([8.0]), 0.9)[0] == pytest.approx(1.8, abs=EXACT)
    assert pinball(np.array([10.0]), np.array([12.0]), 0.9)[0] == pytest.approx(0.2, abs=EXACT)
    q = {0.1: np.array([9.0, 18.0]), 0.5: np.array([10.0, 21.0]), 0.9: np.array([12.0, 22.0])}
    # pinball: q0.1: 0.1*1 + 0.1*2 = 0.3; q0.5: 0 + 0.5*1 = 0.5; q0.9: 0.1*2 + 0.1*2 = 0.4 -> total 1.2
    # wQL = 2 x 1.2 / (3 x 30) = 0.026666...
    assert wql(y, q) == pytest.approx(2 * 1.2 / 90, abs=EXACT)
    assert coverage(y, q[0.1], q[0.9]) == 1.0
    assert coverage(np.array([5.0, 20.0]), q[0.1], q[0.9]) == 0.5


def test_mase_by_hand():
    # two years of a depot: second year = first year + 2 everywhere -> seasonal-naive MAE = 2
    first = np.arange(52, dtype=float)
    blocks = np.concatenate([first, first + 2])[:, None]
    assert mase_scale(blocks)[0] == pytest.approx(2.0, abs=EXACT)
    # forecast errors 1 and 3 -> mean 2 -> MASE 1
    assert mase(np.array([10.0, 10.0]), np.array([9.0, 13.0]), 2.0) == pytest.approx(1.0, abs=EXACT)


def test_backtest_scores_match_hand_computation():
    rows = pd.DataFrame({"model": "m", "depot": ["a", "a", "b", "b"], "y": [10.0, 20.0, 10.0, 10.0],
                         "p10": [9.0, 18.0, 8.0, 11.0], "p50": [10.0, 21.0, 9.0, 12.0], "p90": [12.0, 22.0, 10.0, 13.0],
                         "scale": [2.0, 2.0, 1.0, 1.0]})
    by = _score(rows, ["model", "depot"]).set_index("depot")
    assert by.loc["a", "MASE"] == pytest.approx((0 / 2 + 1 / 2) / 2, abs=EXACT)
    assert by.loc["b", "MASE"] == pytest.approx((1 + 2) / 2, abs=EXACT)
    assert by.loc["a", "wQL"] == pytest.approx(2 * 1.2 / 90, abs=EXACT)
    # depot b: q0.1: 0.1*2 + 0.9*1 = 1.1; q0.5: 0.5*1 + 0.5*2 = 1.5; q0.9: 0 + 0.1*3 = 0.3 -> 2.9
    assert by.loc["b", "wQL"] == pytest.approx(2 * 2.9 / 60, abs=EXACT)
    assert by.loc["b", "coverage_p10_p90"] == 0.5


def test_weighted_quantile_equals_hazen_for_equal_weights():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(101, 3))
    for q in (0.1, 0.5, 0.9):
        np.testing.assert_allclose(weighted_quantile(x, None, q), np.quantile(x, q, axis=0, method="hazen"), atol=EXACT)
    # two atoms with probabilities 0.25/0.75: midpoints 0.125 and 0.625; the median interpolates between them
    assert weighted_quantile(np.array([0.0, 10.0]), np.array([0.25, 0.75]), 0.5) == pytest.approx(7.5, abs=EXACT)


# ---------------------------------------------------------------------- calendar


def test_holiday_dates_and_aligned_lags():
    us = country_holidays("US", 2012, 2013)
    assert us["thanksgiving"] == (pd.Timestamp("2012-11-22"), pd.Timestamp("2013-11-28"))
    assert us["easter"][0] == pd.Timestamp("2012-04-08")
    assert us["labor_day"][0] == pd.Timestamp("2012-09-03")
    assert us["memorial_day"][0] == pd.Timestamp("2012-05-28")
    cal = Calendar(pd.Timestamp("2010-01-30"), 400)  # Saturday-Friday weeks, as the Walmart data
    week_of = lambda day: (pd.Timestamp(day) - cal.origin).days // 7  # noqa: E731
    # Thanksgiving 2013 is 53 weeks after Thanksgiving 2012's week (Nov 22 -> Nov 28)
    t = week_of("2013-11-28")
    assert cal.last_year_lag(np.array([t]))[0] == week_of("2013-11-28") - week_of("2012-11-22") == 53
    # Easter 2012 (Apr 8) vs 2011 (Apr 24): 50 weeks, also for the week before
    t = week_of("2012-04-08")
    assert cal.last_year_lag(np.array([t, t - 1]))[0] == 50 and cal.last_year_lag(np.array([t - 1]))[0] == 50
    # an ordinary week: 52
    assert cal.last_year_lag(np.array([week_of("2012-08-15")]))[0] == 52
    d = cal.holiday_distance(np.array([week_of("2012-11-22"), week_of("2012-11-22") + 1, week_of("2012-08-15")]))
    assert list(d[:, 1]) == [0.0, 1.0, 9.0]


# ---------------------------------------------------------------------- history: reading, conversion, bad input


def test_walmart_layout_is_detected_and_converted():
    h = read_history(SHARED_DATA, unit_factor=1 / USD_PER_BLOCK)
    assert h.columns["depot"] == "Store" and h.columns["demand"] == "Weekly_Sales" and h.columns["week_date"] == "end"
    assert h.blocks.shape == (143, 30) and h.holiday is not None
    raw = pd.read_csv(SHARED_DATA)
    first = raw[(raw["Store"] == 1) & (raw["Date"] == "2010-02-05")]["Weekly_Sales"].iloc[0]
    assert h.blocks[0, 0] == pytest.approx(first / USD_PER_BLOCK, rel=EXACT)
    assert h.week_start[0] == pd.Timestamp("2010-01-30")  # week ending Friday 2010-02-05 starts on Saturday


def test_gap_is_filled_by_interpolation_and_reported():
    num = synthetic_frame(n_depots=2, n_weeks=80)
    drop = num.index[(num["depot"] == "D2") & (num["week_start"] == num["week_start"].iloc[40])]
    before, after = num.loc[drop - 1, "demand"].iloc[0], num.loc[drop + 1, "demand"].iloc[0]
    df = as_text(num)
    df.loc[(df["depot"] == "D1") & (df["week_start"] == df["week_start"].iloc[10]), "demand"] = "NaN"  # empty cell
    h = history_from_frame(df.drop(index=drop), min_weeks=1)
    assert len(h.repairs) == 2
    assert any("depot D2" in r and df["week_start"].iloc[40] in r and "interpolation" in r for r in h.repairs)
    assert h.blocks[40, 1] == pytest.approx((before + after) / 2, rel=EXACT)
    assert np.isfinite(h.blocks).all()


@pytest.mark.parametrize("case, expect", [
    ("negative", ["h.csv:12:", "depot D1, week 2019-03-16: -5", "demand >= 0"]),
    ("text", ["demand", "a finite number", "'lots'"]),
    ("duplicate", ["one row per depot and week", "again (first on line 2)", "depot D1"]),
    ("long_gap", ["depot D2", "4 weeks missing", "at most 2 consecutive"]),
    ("short", ["depot D9", "at least 65 weeks", "10 weeks"]),
    ("off_grid", ["weeks starting on a", "depot D1"]),
    ("bad_date", ["a date (ISO 8601", "'31/31/2020'"]),
    ("ends_early", ["depot D2 ends with week", "to run to the last week"]),
    ("missing_column", ["a demand column"]),
    ("empty", ["a header without rows"]),
])
def test_bad_history_names_depot_and_week(case, expect):
    df = as_text(synthetic_frame(n_depots=2, n_weeks=80))
    if case == "negative":
        df.loc[10, "demand"] = "-5"
    elif case == "text":
        df.loc[3, "demand"] = "lots"
    elif case == "duplicate":
        df = pd.concat([df, df.iloc[[0]]], ignore_index=True)
    elif case == "long_gap":
        df = df.drop(index=df.index[(df["depot"] == "D2")][30:34])
    elif case == "short":
        extra = df[df["depot"] == "D1"].tail(10).assign(depot="D9")
        df = pd.concat([df, extra], ignore_index=True)
    elif case == "off_grid":
        df.loc[5, "week_start"] = str((pd.Timestamp(df.loc[5, "week_start"]) + pd.Timedelta(days=2)).date())
    elif case == "bad_date":
        df.loc[7, "week_start"] = "31/31/2020"
    elif case == "ends_early":
        df = df.drop(index=df.index[df["depot"] == "D2"][-3:])
    elif case == "missing_column":
        df = df.rename(columns={"demand": "qty"})
    elif case == "empty":
        df = df.iloc[0:0]
    with pytest.raises(InstanceError) as info:
        history_from_frame(df, source="h.csv", min_weeks=65)
    text = problems_of(info.value)
    for piece in expect:
        assert piece in text, text
    assert all(str(p).startswith("h.csv") for p in info.value.problems)


def test_bad_history_on_the_command_line_exits_2_and_writes_nothing(tmp_path):
    df = synthetic_frame(n_depots=2, n_weeks=100)
    df.loc[10, "demand"] = -1.0
    path = write_csv(df, tmp_path / "h.csv")
    out = tmp_path / "out"
    r = CliRunner().invoke(forecast_cmd, [str(path), "--out", str(out)])
    assert r.exit_code == 2, r.output
    assert "h.csv:12: field 'demand' expected demand >= 0, found depot D1, week" in r.output
    assert not out.exists()
    r = CliRunner().invoke(forecast_cmd, [str(tmp_path / "none.csv"), "--out", str(out)])
    assert r.exit_code == 2 and "no such file" in r.output


# ---------------------------------------------------------------------- scenarios


def test_quantile_function_interpolates_between_levels():
    levels = np.array(LEVELS)
    vals = np.array([[80.0, 90.0, 100.0, 110.0, 130.0]])
    at = quantile_function(levels, np.repeat(vals, 5, axis=0), levels)
    np.testing.assert_allclose(at, vals[0], atol=EXACT)
    mid = quantile_function(levels, vals, np.array([0.8]))  # between P75=110 and P90=130: 110 + 20 x (0.05/0.15)
    assert mid[0] == pytest.approx(110 + 20 / 3, abs=1e-9)
    tail = quantile_function(levels, vals, np.array([0.95, 0.05]))
    assert tail[0] > 130 and tail[1] < 80


def _toy_forecast(H=6, D=3, B=40, seed=0) -> QuantileForecast:
    rng = np.random.default_rng(seed)
    p50 = 100.0 * (1 + np.arange(D))[None, :] * np.ones((H, 1))
    spread = np.array([-0.12, -0.05, 0.0, 0.05, 0.13])
    values = p50[:, :, None] * (1 + spread[None, None, :] * np.sqrt(np.arange(1, H + 1))[:, None, None])
    common = rng.normal(size=(B, H, 1)).cumsum(axis=1)  # the same shock for every depot, persistent over weeks
    template = common + 0.3 * rng.normal(size=(B, H, D))
    return QuantileForecast("toy", LEVELS, values, [f"D{d}" for d in range(D)],
                            pd.date_range("2030-01-05", periods=H, freq="7D"), template=template)


def test_sampled_paths_keep_the_marginals_and_the_dependence():
    fc = _toy_forecast()
    paths = sample_paths(fc, 4000, seed=3)
    for q in (0.1, 0.5, 0.9):
        share = np.mean(paths <= fc.quantile(q)[None] + 1e-9)
        assert share == pytest.approx(q, abs=MARGINAL_ATOL)
    # ranks follow the template: depots move together, as in the template's common shock
    z = np.log(paths[:, 3, :])
    corr = np.corrcoef(z.T)[0, 1]
    tmpl = np.corrcoef(template_ranks(fc.template)[:, 3, :].T)[0, 1]
    assert corr > 0.5 and abs(corr - tmpl) < 0.15
    # same seed -> same paths; another seed -> others
    np.testing.assert_array_equal(paths, sample_paths(fc, 4000, seed=3))
    assert not np.array_equal(paths, sample_paths(fc, 4000, seed=4))


def test_kmeans_reduction_keeps_the_mean_exactly_and_the_totals_within_2pct():
    fc = _toy_forecast(H=8, D=4, B=60)
    paths = sample_paths(fc, 2000, seed=0)
    red = reduce_paths(paths, 20, fc.depots, seed=0)
    assert red.demand.shape == (20, 8, 4)
    p = red.probabilities
    assert len(p) == 20 and (p > 0).all() and abs(p.sum() - 1.0) < 1e-9
    assert all(len(f"{x:.6f}".rstrip("0")) <= 8 for x in p)  # rounded to 6 decimals
    # probability-weighted mean of the scenarios = the paths' mean, week by week (up to the 0.01-block rounding)
    mean_s = (p[:, None, None] * red.demand).sum(axis=0)
    np.testing.assert_allclose(mean_s, paths.mean(axis=0), atol=ROUNDING_ATOL + 1e-6 * paths.mean())
    # mean / P10 / P90 of per-depot totals, recomputed here by numpy's Hazen quantiles for the paths
    tot_p, tot_s = paths.sum(axis=1), red.demand.sum(axis=1)
    for q in (0.1, 0.9):
        a = np.quantile(tot_p, q, axis=0, method="hazen")
        b = weighted_quantile(tot_s, p, q)
        np.testing.assert_array_less(np.abs(b - a) / a, REDUCTION_RTOL)
    assert red.check["within_tolerance"]
    # plain k-means: cluster shares and centroids preserve the mean exactly before rounding
    from sklearn.cluster import KMeans

    X = paths.reshape(len(paths), -1)
    labels = KMeans(n_clusters=5, n_init=3, random_state=0).fit(X).labels_
    share = np.bincount(labels) / len(labels)
    cent = np.stack([paths[labels == k].mean(axis=0) for k in range(5)])
    np.testing.assert_allclose((share[:, None, None] * cent).sum(axis=0), paths.mean(axis=0), rtol=1e-12)


# ---------------------------------------------------------------------- models and long lead


@pytest.mark.slow  # CI's second step: keeps the README's test command within its time
def test_global_model_never_sees_the_target_weeks():
    """Backtest forecasts depend only on the weeks before the origin: scrambling the weeks
    after the last forecast week changes nothing; the model scores differ only through y."""
    h = history_from_frame(as_text(synthetic_frame(n_depots=3, n_weeks=120)), min_weeks=1)
    other = h.subset()
    other.blocks[110:] *= 3.0  # after the origin 97 + 13 weeks
    a = backtest(h, 13, [97], models=("global",), config=FAST).rows
    b = backtest(other, 13, [97], models=("global",), config=FAST).rows
    pd.testing.assert_frame_equal(a, b)
    other.blocks[97:110] *= 2.0  # the target weeks themselves: only y changes
    c = backtest(other, 13, [97], models=("global",), config=FAST).rows
    pd.testing.assert_frame_equal(a.drop(columns="y"), c.drop(columns="y"))
    assert not np.allclose(a["y"], c["y"])


def test_global_quantiles_are_ordered_and_positive():
    h = history_from_frame(as_text(synthetic_frame(n_depots=3, n_weeks=110)), min_weeks=1)
    fc = forecast(h, 13, "global", config=FAST)
    assert fc.values.shape == (13, 3, len(LEVELS))
    assert (np.diff(fc.values, axis=2) >= 0).all() and (fc.values >= 0).all()
    assert fc.template.shape[1:] == (13, 3)
    assert fc.info["calibration"]["validation_rows"] > 0


def test_long_lead_intervals_widen_and_have_the_right_periods():
    h = read_history(SHARED_DATA, unit_factor=1 / USD_PER_BLOCK).subset(depots=["1", "2", "3"])
    for resolution, periods, unit in (("month", 36, "blocks/month"), ("quarter", 12, "blocks/quarter")):
        r = long_lead_quantiles(h, periods, resolution)
        t = r["table"]
        assert len(t) == 3 * periods and set(t["unit"]) == {unit}
        assert sorted(t["period"].unique()) == list(range(1, periods + 1))
        starts = pd.to_datetime(t[t["depot"] == "1"]["period_start"])
        step = 1 if resolution == "month" else 3
        assert (starts.dt.year * 12 + starts.dt.month).diff().dropna().eq(step).all()
        width = ((t["p90"] - t["p10"]) / t["p50"]).groupby(t["period"]).mean().to_numpy()
        # widens with the lead: each year wider than the one before, the last period ~4x the first
        per_year = 12 if resolution == "month" else 4
        yearly = width.reshape(-1, per_year).mean(axis=1)
        assert (np.diff(yearly) > 0).all() and width[-1] > 3 * width[0]
        assert (t[["p10", "p25", "p50", "p75", "p90"]].diff(axis=1).iloc[:, 1:] >= 0).all().all()


# ---------------------------------------------------------------------- CLI end to end


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow  # CI's second step: keeps the README's test command within its time
def test_forecast_cli_writes_an_instance_ready_table_deterministically(tmp_path):
    src = write_csv(synthetic_frame(n_depots=3, n_weeks=110), tmp_path / "history.csv")
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    args = [str(src), "--horizon", "8", "--scenarios", "6", "--paths", "600", "--seed", "1", "--boosting-rounds", FAST_ROUNDS, "--quiet"]
    r1 = CliRunner().invoke(forecast_cmd, [*args, "--out", str(tmp_path / "a")])
    assert r1.exit_code == 0, r1.output
    r2 = CliRunner().invoke(forecast_cmd, [*args, "--out", str(tmp_path / "b")])
    assert r2.exit_code == 0, r2.output
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert a == b  # byte-identical
    assert hashlib.sha256(src.read_bytes()).hexdigest() == digest  # input untouched
    assert {"demand.csv", "scenarios.csv", "quantiles.csv", "forecast_summary.json", "fan/D1.svg"} <= set(a)
    demand = pd.read_csv(io.BytesIO(a["demand.csv"]))
    scen = pd.read_csv(io.BytesIO(a["scenarios.csv"]))
    assert list(demand.columns) == ["depot", "week", "scenario", "blocks"]
    assert list(scen["scenario"]) == [f"S{k:03d}" for k in range(1, 7)]
    assert round(scen["probability"].sum(), 6) == 1.0
    assert len(demand) == 3 * 8 * 6 and sorted(demand["week"].unique()) == list(range(1, 9))
    q = pd.read_csv(io.BytesIO(a["quantiles.csv"]))
    assert list(q.columns) == ["depot", "week", "week_start", "p10", "p25", "p50", "p75", "p90", "unit"]
    summary = json.loads(a["forecast_summary.json"])
    assert summary["model"] == "global" and summary["conversion"]["blocks_per_demand_unit"] == 1.0
    first_forecast_week = pd.Timestamp("2019-01-05") + pd.Timedelta(weeks=110)  # 110 history weeks from 2019-01-05
    assert summary["horizon"]["weeks"] == 8 and summary["horizon"]["start_date"] == str(first_forecast_week.date())
    assert "max_relative_difference" in summary["reduction_check"]

    # build-instance takes demand.csv and scenarios.csv as they are
    from optplan.estimate.workflow import build_instance

    d = tmp_path / "parts"
    d.mkdir()
    pd.DataFrame({"depot": ["D1", "D2", "D3"], "retention": 0.97, "blocks_per_driver": 3.0,
                  "active_drivers": [30.0, 60.0, 90.0]}).to_csv(d / "retention.csv", index=False)
    pd.DataFrame({"channel": "ads", "lag": [1, 2], "probability": [0.3, 0.2]}).to_csv(d / "yield.csv", index=False)
    pd.DataFrame({"depot": ["D1", "D2", "D3"], "region": "R1"}).to_csv(d / "depots.csv", index=False)
    pd.DataFrame({"channel": ["ads"], "cost_per_applicant": [20.0]}).to_csv(d / "channels.csv", index=False)
    (d / "settings.yaml").write_text(
        "name: fc\nhorizon: {weeks: 8, start_date: 2021-02-13, currency: USD}\n"
        "recourse: {surge_cost_per_block: 90.0, surge_cap_share: 0.1}\npenalties: {unserved_cost_per_block: 150.0}\n"
        "budgets: {}\n")
    inst = build_instance(d / "yield.csv", d / "retention.csv", d / "depots.csv", d / "channels.csv",
                          tmp_path / "a" / "demand.csv", tmp_path / "a" / "scenarios.csv", d / "settings.yaml", tmp_path / "inst")
    assert inst.n_weeks == 8 and len(inst.scenarios) == 6


def test_forecast_cli_baseline_model_and_long_lead(tmp_path):
    src = write_csv(synthetic_frame(n_depots=2, n_weeks=120), tmp_path / "history.csv")
    r = CliRunner().invoke(forecast_cmd, [str(src), "--model", "seasonal_naive", "--horizon", "6", "--scenarios", "4",
                                          "--paths", "200", "--no-plots", "--quiet", "--out", str(tmp_path / "sn")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "sn" / "forecast_summary.json").read_text())["model"] == "seasonal_naive"
    r = CliRunner().invoke(forecast_cmd, [str(src), "--resolution", "quarter", "--horizon", "6", "--quiet",
                                          "--out", str(tmp_path / "lq")])
    assert r.exit_code == 0, r.output
    q = pd.read_csv(tmp_path / "lq" / "quantiles.csv")
    assert len(q) == 2 * 6 and not (tmp_path / "lq" / "demand.csv").exists()
    r = CliRunner().invoke(forecast_cmd, [str(src), "--horizon", "53", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "1 to 52 weeks" in r.output
    r = CliRunner().invoke(forecast_cmd, [str(src), "--usd-per-block", "2000", "--unit-factor", "2", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "at most one of the two" in r.output
    r = CliRunner().invoke(forecast_cmd, [str(src), "--scenarios", "50", "--paths", "20", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "1 to --paths (20) scenarios" in r.output
    assert not (tmp_path / "x").exists()


def test_money_per_block_and_its_old_name_are_one_option(tmp_path):
    """--money-per-block U and the old --usd-per-block U give the same forecast files."""
    src = write_csv(synthetic_frame(n_depots=2, n_weeks=100).assign(demand=lambda d: d["demand"] * 2000), tmp_path / "h.csv")
    outs = []
    for name in ("--money-per-block", "--usd-per-block"):
        out = tmp_path / name.strip("-")
        r = CliRunner().invoke(forecast_cmd, [str(src), name, "2000", "--model", "seasonal_naive", "--horizon", "4",
                                              "--no-plots", "--out", str(out)])
        assert r.exit_code == 0, r.output
        outs.append((out / "demand.csv").read_text())
    assert outs[0] == outs[1]


def test_usd_per_block_converts_sales(tmp_path):
    df = synthetic_frame(n_depots=2, n_weeks=100).rename(columns={"demand": "sales_usd"})
    df["sales_usd"] = df["sales_usd"] * USD_PER_BLOCK
    h = read_history(write_csv(df, tmp_path / "h.csv"), demand_col="sales_usd", unit_factor=1 / USD_PER_BLOCK)
    ref = history_from_frame(as_text(synthetic_frame(n_depots=2, n_weeks=100)))
    np.testing.assert_allclose(h.blocks, ref.blocks, rtol=1e-12)


@pytest.mark.slow  # CI's second step: keeps the README's test command within its time
def test_backtest_cli_prints_and_writes_the_tables(tmp_path):
    src = write_csv(synthetic_frame(n_depots=3, n_weeks=120), tmp_path / "history.csv")
    r = CliRunner().invoke(backtest_cmd, [str(src), "--models", "global,seasonal_naive", "--horizon", "8", "--step", "8",
                                          "--origins", "2", "--boosting-rounds", FAST_ROUNDS, "--quiet", "--out", str(tmp_path / "bt")])
    assert r.exit_code == 0, r.output
    assert "origins at 104, 112 weeks of history, 8-week horizon" in r.output
    assert "global" in r.output and "seasonal_naive" in r.output and "MASE snaive" in r.output
    overall = pd.read_csv(tmp_path / "bt" / "backtest_overall.csv")
    assert list(overall["model"]) == ["global", "seasonal_naive"]
    rows = pd.read_csv(tmp_path / "bt" / "backtest_rows.csv")
    assert len(rows) == 2 * 2 * 8 * 3
    # per origin: coverage of each origin's 8 weeks x 3 depots, recomputed from the rows
    by_origin = pd.read_csv(tmp_path / "bt" / "backtest_by_origin.csv").set_index(["model", "origin"])
    for (m, n), g in rows.groupby(["model", "origin"]):
        assert by_origin.loc[(m, n), "coverage_p10_p90"] == pytest.approx(((g.p10 <= g.y) & (g.y <= g.p90)).mean(), abs=1e-6)
    assert "P10-P90 coverage by origin" in r.output
    # the margin: the ratio of the overall MASEs, inside its own interval
    summary = json.loads((tmp_path / "bt" / "backtest_summary.json").read_text())
    (mg,) = summary["margins_vs_seasonal_naive"]
    mase = overall.set_index("model")["MASE"]
    assert mg["MASE_vs_reference"] == pytest.approx(mase["global"] / mase["seasonal_naive"] - 1, abs=1e-5)
    assert mg["low"] <= mg["MASE_vs_reference"] <= mg["high"]
    assert "MASE global vs seasonal_naive:" in r.output and "depots resampled" in r.output
    # the demand noise about each forecast's level (issue #32 part 2): written, printed, recomputed
    from optplan.forecast.backtest import demand_noise

    noise = {n["model"]: n for n in summary["demand_noise"]}
    again = demand_noise(rows).set_index("model")
    for m in ("global", "seasonal_naive"):
        assert noise[m]["sd"] == pytest.approx(again.loc[m, "sd"], abs=1e-6) and noise[m]["sd"] > 0
        assert noise[m]["series"] == 6 and noise[m]["weeks"] == 48
        assert f"{m:<16} sd {noise[m]['sd']:.3f}" in r.output
    r = CliRunner().invoke(backtest_cmd, [str(src), "--at", "40", "--models", "seasonal_naive", "--quiet"])
    assert r.exit_code == 2 and "origins with at least 65 weeks of history" in r.output
    r = CliRunner().invoke(backtest_cmd, [str(src), "--models", "prophet"])
    assert r.exit_code == 2


NOISE_SD_TOL = 0.05  # relative, on the mean of 20 draws of 90 series (the estimate's sd is ~3 %; mean ~0.7 %)
NOISE_AR_TOL = 0.03  # absolute, likewise (one draw's sd ~0.03-0.04)


@pytest.mark.parametrize(("sd", "ar"), [(0.08, 0.5), (0.08, 0.0), (0.05, 0.3)])
def test_demand_noise_recovers_a_known_ar1_noise_from_backtest_errors(sd, ar):
    """Backtest rows whose errors are a level per origin and depot (sd 0.1, what scenarios stand
    for) plus AR(1) log noise of known sd and coefficient, 13-week horizons, 30 depots x 3 origins:
    the method-of-moments estimate is unbiased (mean of 20 draws within the named tolerances),
    where the plain lag-1 correlation of the demeaned series is ~0.2 low at AR 0.5."""
    from optplan.forecast.backtest import demand_noise

    rng = np.random.default_rng(7)
    n = 13

    def rows():
        parts = []
        for g in range(90):
            e = np.empty(n)
            e[0] = rng.standard_normal()
            for t in range(1, n):
                e[t] = ar * e[t - 1] + np.sqrt(1 - ar**2) * rng.standard_normal()
            p50 = rng.uniform(50, 150, n)
            parts.append(pd.DataFrame({"model": "m", "origin": g // 30, "depot": g % 30, "h": np.arange(1, n + 1),
                                       "y": p50 * np.exp(0.1 * rng.standard_normal() + sd * e), "p50": p50}))
        return pd.concat(parts, ignore_index=True)

    draws = [demand_noise(rows()).iloc[0] for _ in range(20)]
    assert np.mean([d.sd for d in draws]) == pytest.approx(sd, rel=NOISE_SD_TOL)
    assert np.mean([d.ar for d in draws]) == pytest.approx(ar, abs=NOISE_AR_TOL)
    assert draws[0].series == 90 and draws[0].weeks == 90 * n
    naive = []
    for _, g in rows().groupby(["origin", "depot"]):
        u = np.log(g.y / g.p50).to_numpy()
        u = u - u.mean()
        naive.append((u[:-1] @ u[1:], u @ u))
    if ar == 0.5:
        assert sum(a for a, _ in naive) / sum(b for _, b in naive) < ar - 0.1  # what the correction is for
    # a series with a week of no demand is left out, not a -inf in the sums
    bad = rows()
    bad.loc[0, "y"] = 0.0
    assert demand_noise(bad).iloc[0].series == 89


# ---------------------------------------------------------------------- acceptance on a subset


@pytest.mark.slow
def test_backtest_acceptance_on_a_subset_of_the_walmart_stores():
    """The issue's acceptance on 5 stores and the last two origins (the full run, 30 stores
    and 3 origins, is benchmarks/bench_forecast.py)."""
    h = read_history(SHARED_DATA, unit_factor=1 / USD_PER_BLOCK).subset(depots=["1", "2", "3", "4", "5"])
    res = backtest(h, 13, [117, 130], config=FAST)
    o = res.overall.set_index("model")
    g, e, s = (float(o.loc[m, "MASE"]) for m in ("global", "ets", "seasonal_naive"))
    assert g <= (1 - MASE_GAIN_VS_SNAIVE) * s, res.overall
    assert g < e, res.overall
    cov = float(o.loc["global", "coverage_p10_p90"])
    assert COVERAGE_RANGE[0] <= cov <= COVERAGE_RANGE[1], res.overall
    assert set(res.by_depot["depot"]) == set(h.depots) and len(res.by_depot) == 15


@pytest.mark.slow  # CI's second step: keeps the README's test command within its time
def test_backtest_fits_on_local_processes_give_the_same_scores():
    """The backtest's fits (origins x models) are backend tasks: on two local processes the
    rows and scores are the ones computed in this process."""
    from optplan.solvers.backends import LocalBackend

    h = read_history(SHARED_DATA, unit_factor=1 / USD_PER_BLOCK).subset(depots=["1", "2", "3"])
    here = backtest(h, 13, [130], models=("global", "seasonal_naive"), config=FAST)
    backend = LocalBackend(2)
    try:  # 2 tasks (1 origin x 2 models), one per process
        there = backtest(h, 13, [130], models=("global", "seasonal_naive"), config=FAST, backend=backend)
    finally:
        backend.close()
    pd.testing.assert_frame_equal(here.rows, there.rows)
    pd.testing.assert_frame_equal(here.overall, there.overall)


def test_long_lead_refuses_weekly_options_instead_of_ignoring_them(tmp_path):
    """--resolution quarter used to ignore --scenarios silently; now it says why it cannot."""
    src = write_csv(synthetic_frame(n_depots=2, n_weeks=160), tmp_path / "h.csv")
    r = CliRunner().invoke(forecast_cmd, [str(src), "--resolution", "quarter", "--horizon", "4", "--scenarios", "10",
                                          "--out", str(tmp_path / "q")])
    assert r.exit_code == 2 and "--scenarios" in r.output and "quantiles only" in r.output, r.output
    assert not (tmp_path / "q").exists()
