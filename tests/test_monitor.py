"""A watch on forecasts, recruiting and conversion (issue #29 part 3): hand-worked metrics and
alerts, quiet in a world that matches the forecast and the funnel, loud in worlds that break
them (demand 50 % above the forecast, conversion halved, recruiting behind the plan)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import optplan
from optplan.io.instance import load_instance
from optplan.planning.monitor import Thresholds, monitor

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "instances" / "demo"
#: Shares and ratios worked by hand agree to this.
EXACT = 1e-12
STAGES = ("applied", "background_check", "onboarding", "first_block")


@pytest.fixture(scope="module")
def demo():
    return load_instance(DEMO)


def quantiles(rows):
    return pd.DataFrame(rows, columns=["depot", "week", "p10", "p50", "p90"])


def test_hand_worked_coverage_wape_mase_and_the_band_alert(demo):
    q = quantiles([(d, w, 90.0, 100.0, 110.0) for d in ("D001", "D002") for w in range(1, 5)])
    demand = pd.DataFrame({"depot": ["D001"] * 4 + ["D002"] * 4, "week": [1, 2, 3, 4] * 2,
                           "blocks": [100.0, 105.0, 120.0, 130.0, 95.0, 80.0, 140.0, 150.0]})
    # history: D001 alternates 100, 110 (naive error 10), D002 alternates 100, 120 (20): 40 weeks
    history = pd.DataFrame({"depot": ["D001"] * 40 + ["D002"] * 40,
                            "week_start": list(pd.date_range("2026-01-05", periods=40, freq="7D")) * 2,
                            "blocks": [100.0, 110.0] * 20 + [100.0, 120.0] * 20})
    m = monitor(demo, demand, q, history, thresholds=Thresholds(band_high=1.0, band_weeks=2, mase_max=1.4))
    by = m.by_depot.set_index("depot")
    assert by.loc["D001", "coverage"] == pytest.approx(2 / 4, abs=EXACT)  # 100, 105 inside; 120, 130 out
    assert by.loc["D002", "coverage"] == pytest.approx(1 / 4, abs=EXACT)  # 95 inside
    assert by.loc["D001", "wape"] == pytest.approx((0 + 5 + 20 + 30) / 455, abs=EXACT)
    assert by.loc["D002", "wape"] == pytest.approx((5 + 20 + 40 + 50) / 465, abs=EXACT)
    assert by.loc["D001", "mase"] == pytest.approx(55 / 4 / 10, abs=EXACT)  # lag-1 scale (history < 53 weeks)
    assert by.loc["D002", "mase"] == pytest.approx(115 / 4 / 20, abs=EXACT)
    assert m.overall["coverage"] == pytest.approx(3 / 8, abs=EXACT)
    assert m.by_week["coverage"].tolist() == [1.0, 0.5, 0.0, 0.0]
    # the last two weeks pooled: 0 of 4 depot-weeks inside, below 60 %, and a binomial p of
    # 2 x 0.2^4 = 0.0032 < 0.01; D002's MASE 1.4375 passes 1.4, D001's 1.375 does not.
    assert sorted((a["kind"], a["where"]) for a in m.alerts) == [("coverage", "D001,D002"), ("depot", "D002")]
    coverage = next(a for a in m.alerts if a["kind"] == "coverage")
    assert "coverage 0% in weeks 3..4 (0 of 4 depot-weeks" in coverage["message"] and "p = 0.0032" in coverage["message"]
    assert "mostly above P90 at D001, D002" in coverage["message"]
    assert "ALERT coverage" in m.text() and "MASE 1.41" in m.text()  # the mean of 8 scaled errors: (5.5 + 5.75) / 8
    # weeks 1, 3, 4 pooled: 2 of 6 inside (33 %) is out of band but not significant (p = 0.034)
    m3 = monitor(demo, demand[demand["week"] != 2], q, thresholds=Thresholds(band_high=1.0, band_weeks=3))
    assert not [a for a in m3.alerts if a["kind"] == "coverage"]


def test_the_forecast_world_is_quiet_and_a_shifted_world_is_not(demo):
    """Demand drawn from the instance's own scenarios: coverage near the nominal 80 % and no
    coverage alert; the same draws 50 % higher: coverage collapses and it alerts."""
    data = demo.model_data()
    rng = np.random.default_rng(3)
    rows = []
    for _ in range(40):  # 40 worlds of the demo's 12 weeks: a pooled coverage from 2,400 depot-weeks
        s = rng.choice(len(data.probability), p=data.probability, size=(len(data.depots), data.n_weeks))
        for i, depot in enumerate(data.depots):
            for t in range(data.n_weeks):
                rows.append((depot, t + 1, data.demand[i, t, s[i, t]]))
    draws = pd.DataFrame(rows, columns=["depot", "week", "blocks"])
    coverages = []
    for k in range(40):
        world = draws.iloc[k * 60:(k + 1) * 60].reset_index(drop=True)
        m = monitor(demo, world)
        coverages.append(m.overall["coverage"])
    # the scenarios' own P10-P90 (Hazen quantiles of 10 weighted scenarios) hold about 80 %
    assert 0.7 <= np.mean(coverages) <= 0.9
    world = draws.iloc[:60].reset_index(drop=True)
    assert monitor(demo, world).alerts == []
    shifted = world.assign(blocks=world["blocks"] * 1.5)
    m = monitor(demo, shifted)
    assert m.overall["coverage"] < 0.2
    assert [a for a in m.alerts if a["kind"] == "coverage"]
    assert {a["where"] for a in m.alerts if a["kind"] == "depot"} == set(demo.depots)  # WAPE about 1/3 > 25 %


def drawn_log(data, weeks, per_week, rng, keep_share=1.0):
    """Applicants at D001 drawn from the instance's own kernel, per channel and week 1..weeks;
    ``keep_share`` of the first blocks kept (the rest never start: a funnel that got worse)."""
    start = pd.Timestamp("2027-01-04")
    y = data.yield_kernel
    parts = []
    for c, channel in enumerate(data.channels):
        probs = np.append(y[c], 1 - y[c].sum())
        for s in range(1, weeks + 1):
            lags = rng.choice(len(probs), size=per_week, p=probs)
            started = (lags < len(y[c])) & (rng.random(per_week) < keep_share)
            first = pd.Series(start + pd.to_timedelta(7 * (s - 1 + lags), unit="D")).where(started)
            parts.append(pd.DataFrame({"applicant_id": [f"{channel}{s}-{i}" for i in range(per_week)], "depot": "D001",
                                       "channel": channel, "applied": start + pd.Timedelta(weeks=s - 1),
                                       "background_check": pd.NaT, "onboarding": pd.NaT, "first_block": first}))
    return pd.concat(parts, ignore_index=True)


def median_demand(inst, weeks):
    q = optplan.planning.monitor.forecast_quantiles(inst)
    return q[q["week"] <= weeks][["depot", "week", "p50"]].rename(columns={"p50": "blocks"}).reset_index(drop=True)


def test_conversion_is_quiet_when_the_funnel_holds_and_alerts_when_it_halves(demo):
    data = demo.model_data()
    L = data.yield_kernel.shape[1]
    weeks_seen = 8  # cohorts of weeks 1..8-L+1 have had their whole kernel
    demand = median_demand(demo, weeks_seen)
    same = monitor(demo, demand, applicants=drawn_log(data, 6, 500, np.random.default_rng(2)))
    conv = same.conversion.set_index("channel")
    full_cohorts = weeks_seen - L + 1
    assert (conv["applicants"] == 500 * full_cohorts).all()
    for channel, r in conv.iterrows():
        assert r.low <= r.estimate <= r.high, channel
        assert r.estimate == pytest.approx(data.yield_kernel[data.channels.index(channel)].sum(), abs=EXACT)
    assert not [a for a in same.alerts if a["kind"] == "conversion"]  # (demand at P50 every week: over-covered)
    halved = monitor(demo, demand, applicants=drawn_log(data, 6, 500, np.random.default_rng(2), keep_share=0.5))
    assert sorted(a["where"] for a in halved.alerts if a["kind"] == "conversion") == sorted(data.channels)
    conv = halved.conversion.set_index("channel")
    assert (conv["observed"] < 0.65 * conv["estimate"]).all()


def test_recruiting_against_the_plan(demo, tmp_path):
    plan = optplan.solve(demo, engine="highs")
    plan.write(tmp_path / "plan")
    x = plan.decisions.applicants[:, :, :2]  # (D, C, 2) the plan's first two weeks
    rows = []
    for c, channel in enumerate(plan.data.channels):
        for t in range(2):
            n = int(np.floor(0.5 * x[:, c, t].sum()))  # half the plan's applicants, all at D001
            rows += [(f"{channel}{t}-{i}", "D001", channel, pd.Timestamp("2027-01-04") + pd.Timedelta(weeks=t))
                     for i in range(n)]
    log = pd.DataFrame(rows, columns=["applicant_id", "depot", "channel", "applied"])
    for stage in STAGES[1:]:
        log[stage] = pd.NaT
    m = monitor(demo, median_demand(demo, 2), plan=tmp_path / "plan", applicants=log)
    rec = m.recruiting.groupby("channel")[["applicants", "plan_applicants"]].sum()
    for c, channel in enumerate(plan.data.channels):
        assert rec.loc[channel, "plan_applicants"] == pytest.approx(x[:, c, :].sum(), rel=1e-6)
        assert rec.loc[channel, "applicants"] == sum(int(np.floor(0.5 * x[:, c, t].sum())) for t in range(2))
    behind = {a["where"] for a in m.alerts if a["kind"] == "recruiting"}
    assert behind == {ch for c, ch in enumerate(plan.data.channels) if x[:, c, :].sum() >= 2}
    assert set(m.arrivals.columns) == {"depot", "week", "first_blocks", "plan_new_drivers"}


def test_the_cli_writes_the_watch_and_refuses_bad_tables(demo, tmp_path):
    demand = median_demand(demo, 3)
    demand.loc[demand["depot"] == "D002", "blocks"] *= 2  # one depot far above its forecast
    demand.to_csv(tmp_path / "seen.csv", index=False)
    cmd = [sys.executable, "-m", "optplan", "monitor", str(DEMO), "--demand", str(tmp_path / "seen.csv"),
           "--out", str(tmp_path / "watch")]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "ALERT depot: depot D002: WAPE 50.0% over 3 weeks" in r.stdout
    alerts = pd.read_csv(tmp_path / "watch" / "alerts.csv")
    assert alerts["where"].tolist() == ["D002"]
    assert {p.name for p in (tmp_path / "watch").iterdir()} == {
        "demand.csv", "by_depot.csv", "by_week.csv", "alerts.csv", "monitor.json", "monitor.txt"}
    (tmp_path / "bad.csv").write_text("depot,week,blocks\nD001,1,100\nD099,2,inf\n")
    bad = subprocess.run([*cmd[:5], "--demand", str(tmp_path / "bad.csv"), "--out", str(tmp_path / "no")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "bad.csv:3: field 'depot'" in bad.stderr and "bad.csv:3: field 'blocks'" in bad.stderr
    assert not (tmp_path / "no").exists()


def scenario_world(data, rng, weeks=None):
    """Demand of every depot-week drawn from that depot-week's scenario distribution."""
    T = data.n_weeks if weeks is None else weeks
    s = rng.choice(len(data.probability), p=data.probability, size=(len(data.depots), T))
    dd, tt = np.meshgrid(np.arange(len(data.depots)), np.arange(T), indexing="ij")
    return pd.DataFrame({"depot": np.asarray(data.depots)[dd.ravel()], "week": tt.ravel() + 1,
                         "blocks": data.demand[dd.ravel(), tt.ravel(), s.ravel()]})


#: Issue #29's acceptance: the share of seeds of a world that matches the forecast allowed to alert.
FALSE_ALERT_SHARE = 0.05


def test_a_shift_above_every_scenario_alerts_with_the_depots_once_visible(demo):
    """Demand 25 % above every scenario from week 8: no alert while the weeks seen end before
    the shift fills the window (band_weeks 3), then an alert naming every depot."""
    data = demo.model_data()
    world = scenario_world(data, np.random.default_rng(4))
    top = data.demand.max(axis=2)  # (D, T) the highest scenario
    shifted = world["week"] >= 8
    d = pd.Index(data.depots).get_indexer(world["depot"])
    world.loc[shifted, "blocks"] = 1.25 * top[d[shifted], world.loc[shifted, "week"] - 1]
    for last in range(7, 13):
        m = monitor(demo, world[world["week"] <= last])
        coverage = [a for a in m.alerts if a["kind"] == "coverage"]
        if last < 9:
            assert not coverage, last  # at most one shifted week seen: 1 week of 3 cannot be significant
        if last >= 10:  # the window is all shifted weeks
            (alert,) = coverage
            assert alert["where"] == ",".join(data.depots) and "above P90" in alert["message"]


def test_a_world_drawn_from_the_forecast_alerts_in_at_most_5_percent_of_seeds(demo):
    data = demo.model_data()
    alerted = sum(bool(monitor(demo, scenario_world(data, np.random.default_rng(seed))).alerts) for seed in range(200))
    assert alerted / 200 <= FALSE_ALERT_SHARE


def test_an_empty_demand_table_is_a_clean_refusal(demo, tmp_path):
    """Found by the property tests (tests/test_property_inputs.py, kind loop): a header-only
    demand table crashed the text summary."""
    from optplan.errors import InstanceError
    from optplan.planning.monitor import monitor_files

    (tmp_path / "seen.csv").write_text("depot,week,blocks\n")
    with pytest.raises(InstanceError) as exc:
        monitor_files(demo, tmp_path / "seen.csv", tmp_path / "watch")
    assert str(exc.value.problems[0]) == "seen.csv: expected a row per depot and week seen (depot, week, blocks), found no rows"
    assert not (tmp_path / "watch").exists()
