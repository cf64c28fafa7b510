"""Demand scenarios over long-lead periods (issue #14 part 3: "long-lead forecasts produce
scenarios at those periods"): the weekly model for its weeks, the long-lead monthly model
after, per period, as an instance's demand table; and the long-lead pipeline example."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from conftest import REPO, WALMART_CSV
from test_forecast import synthetic_frame, write_csv

import optplan
from optplan.cli.forecast import forecast as forecast_cmd
from optplan.forecast.history import read_history
from optplan.forecast.longlead import long_lead_weekly_paths, monthly_log_forecast, monthly_totals
from optplan.io.instance import from_tables

HISTORY = WALMART_CSV
#: Sampling error of a median over 4,000 draws of a log-normal with sigma <= 0.3 (relative).
MEDIAN_RTOL = 0.03


def test_the_far_weeks_follow_the_monthly_model_and_the_near_paths(tmp_path):
    """Weeks after the near horizon: each week's median over paths is the monthly model's
    median exp(m_k) spread over the month's days (summed over the week's days), and a path's
    growth shock follows its near-term total (comonotone: Spearman correlation 1 between the
    near total and the growth shock's rank)."""
    src = write_csv(synthetic_frame(n_depots=2, n_weeks=130), tmp_path / "h.csv")
    h = read_history(src, depot_col="depot", date_col="week_start", demand_col="demand")
    rng = np.random.default_rng(0)
    N, H = 4000, 8
    near = 100.0 * np.exp(rng.normal(0, 0.1, (N, H, 2)))
    week_start = pd.date_range(h.week_start[-1] + pd.Timedelta(days=7), periods=H, freq="7D")
    paths, info = long_lead_weekly_paths(h, near, week_start, 60, seed=1)
    assert paths.shape == (N, 60, 2) and np.array_equal(paths[:, :H], near)
    months, _ = monthly_totals(h)
    first = pd.Timestamp(week_start[0])
    days = pd.date_range(first + pd.Timedelta(days=7 * H), first + pd.Timedelta(days=7 * 60 - 1), freq="D")
    need = int((days[-1].to_period("M") - months[-1]).n)
    lf = monthly_log_forecast(h, need)
    per_day = np.exp(lf["mean"]) / np.array([p.days_in_month for p in lf["future"]])  # (D, K) median blocks/day
    k = np.array([(p - (months[-1] + 1)).n for p in days.to_period("M")])
    median_week = per_day[:, k].reshape(2, 60 - H, 7).sum(axis=2).T  # (weeks, D)
    # a week inside one month has the month's median exactly (its days share one draw)
    one_month = np.array([len(set(k[7 * w: 7 * w + 7])) == 1 for w in range(60 - H)])
    got = np.median(paths[:, H:], axis=0)
    np.testing.assert_allclose(got[one_month], median_week[one_month], rtol=MEDIAN_RTOL)
    from scipy.stats import spearmanr

    # the last week lies in one month k: its log is m_k + s_k eps + g_k z, so its rank correlation
    # with the near total (whose rank sets z) is about g_k / sqrt(s_k^2 + g_k^2) (0 if independent)
    w = np.flatnonzero(one_month)[-1]
    kk = k[7 * w]
    g, s_ets = lf["sigma_growth"][kk], lf["sigma_ets"][0, kk]
    expected = g / np.hypot(g, s_ets)
    got_corr = spearmanr(near.sum(axis=1)[:, 0], paths[:, H + w, 0]).statistic
    assert 0.5 * expected < got_corr < 1.5 * expected, (got_corr, expected)
    assert info["months"][0] == str(months[-1] + 1)


def test_period_scenarios_make_a_long_lead_instance(tmp_path):
    """`optplan forecast --periods`: demand.csv has one row per depot, period (its first week)
    and scenario; an instance built from it with the summary's horizon solves."""
    src = write_csv(synthetic_frame(n_depots=3, n_weeks=130), tmp_path / "h.csv")
    r = CliRunner().invoke(forecast_cmd, [str(src), "--model", "seasonal_naive", "--horizon", "78", "--periods",
                                          "13x1,3x13,1x26", "--scenarios", "5", "--paths", "300", "--no-plots", "--quiet",
                                          "--out", str(tmp_path / "fc")])
    assert r.exit_code == 0, r.output
    dem = pd.read_csv(tmp_path / "fc" / "demand.csv")
    assert sorted(dem["week"].unique()) == list(range(1, 79)) and len(dem) == 3 * 78 * 5  # every week
    q = pd.read_csv(tmp_path / "fc" / "quantiles.csv")
    assert q["weeks"].tolist()[:17] == [1] * 13 + [13, 13, 13, 26] and (q["unit"] == "blocks/period").all()
    # a 13-week period's quantiles hold about 13 weeks of demand: near 13 x the scenarios' weekly mean there
    sc0 = pd.read_csv(tmp_path / "fc" / "scenarios.csv").set_index("scenario")["probability"]
    weekly_mean = dem.assign(p=dem["scenario"].map(sc0)).eval("b = blocks * p").groupby(["depot", "week"])["b"].sum()
    first_quarter = weekly_mean.unstack().loc[:, 14:26].sum(axis=1)
    np.testing.assert_allclose(q[q["week"] == 14].set_index("depot")["p50"], first_quarter, rtol=0.05)
    summary = json.loads((tmp_path / "fc" / "forecast_summary.json").read_text())
    horizon = summary["horizon"]
    assert horizon["weeks"] == 78 and horizon["periods"] == [{"weeks": 1, "count": 13}, {"weeks": 13, "count": 3},
                                                             {"weeks": 26, "count": 1}]
    sc = pd.read_csv(tmp_path / "fc" / "scenarios.csv")
    base = optplan.generate_instance(depots=3, weeks=4, scenarios=1, seed=0)
    manifest = base.manifest.model_dump(mode="json")
    manifest["horizon"] = {"weeks": 78, "start_date": horizon["start_date"], "periods": horizon["periods"]}
    manifest["budgets"] = {"total": 50000.0}
    depots = base.tables["depots"].assign(depot=sorted(dem["depot"].unique()))
    tables = {k: v for k, v in base.tables.items() if k not in ("pipeline",)}
    tables.update({"depots": depots, "demand": dem, "scenarios": sc,
                   "incentives": base.tables["incentives"].assign(depot=lambda t: t["depot"].map(
                       dict(zip(base.tables["depots"]["depot"], depots["depot"], strict=True))))})
    inst = from_tables(manifest, tables)
    plan = optplan.solve(inst)
    assert plan.status.optimal and inst.model_data().has_week_profile
    r = CliRunner().invoke(forecast_cmd, [str(src), "--horizon", "78", "--periods", "13x1", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "adding up to the horizon (78 weeks)" in r.output


@pytest.mark.slow  # 26 s; docs/pipeline.md's commands run this example too (test_docs_commands.py)
def test_the_long_lead_pipeline_example_runs(tmp_path):
    """examples/pipeline/pipeline_longlead.yaml (3 years in 30 periods), without its report."""
    from optplan.cli import main

    folder = tmp_path / "cfg"
    shutil.copytree(REPO / "examples" / "pipeline", folder)
    cfg = yaml.safe_load((folder / "pipeline_longlead.yaml").read_text())
    cfg["inputs"]["history"] = str(HISTORY)
    cfg["out"] = str(tmp_path / "out")
    cfg["report"] = {"enabled": False}
    cfg["forecast"]["paths"] = 300
    (folder / "pipeline_longlead.yaml").write_text(yaml.safe_dump(cfg))
    r = CliRunner().invoke(main, ["pipeline", str(folder / "pipeline_longlead.yaml")])
    assert r.exit_code == 0, r.output
    inst = optplan.load_instance(tmp_path / "out" / "instance")
    assert inst.n_weeks == 156 and inst.n_periods == 30
    summary = json.loads((tmp_path / "out" / "plan" / "summary.json").read_text())
    assert summary["status"]["termination"] == "convergenceCriteriaSatisfied" or "optimal" in json.dumps(summary["status"])
