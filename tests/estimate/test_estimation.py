"""Estimation from event logs against known truth (optplan.estimate.synthetic): accuracy at
50,000 applicants, the censoring bias of the naive estimator, calibration, the
scikit-learn contract, and logs -> parameters -> instance -> plan through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

import optplan
from optplan.cli import main
from optplan.estimate.funnel import FunnelModel, bootstrap, calibration, conversion_standard_errors, naive_conversion
from optplan.estimate.retention import RetentionModel, bootstrap_retention
from optplan.estimate.synthetic import generate_activity_log, generate_applicant_log

#: Acceptance tolerances of the estimation issue.
CONVERSION_ATOL = 0.015  # 1.5 percentage points
KERNEL_TV_MAX = 0.03  # total-variation distance
RETENTION_ATOL = 0.005  # per week


def tv(a: np.ndarray, b: np.ndarray) -> float:
    n = max(len(a), len(b))
    x, y = np.zeros(n), np.zeros(n)
    x[: len(a)], y[: len(b)] = a, b
    return 0.5 * float(np.abs(x - y).sum())


@pytest.fixture(scope="module")
def funnel_fit():
    log, truth, observed = generate_applicant_log(50_000, seed=3, censored_share=0.3)
    return log, truth, observed, FunnelModel().fit(log, observed_until=observed)


def test_funnel_recovers_conversion_and_kernels(funnel_fit):
    log, truth, _, model = funnel_fit
    summary = model.channel_summary().set_index("channel")
    kernels = model.yield_kernels()
    for channel, conversion in truth.conversion.items():
        assert summary.loc[channel, "conversion"] == pytest.approx(conversion, abs=CONVERSION_ATOL), channel
        estimated = kernels.loc[kernels["channel"] == channel, "probability"].to_numpy()
        assert tv(estimated, truth.kernel[channel]) <= KERNEL_TV_MAX, channel
        assert summary.loc[channel, "mean_weeks_to_first_block"] == pytest.approx(
            truth.mean_weeks_to_first_block[channel], abs=0.5)


def test_naive_estimator_is_biased_under_censoring_and_ours_is_not(funnel_fit):
    """With ~30% of applicants still in the funnel, counting them as drop-outs biases every
    channel's conversion low by far more than sampling noise; ours stays within tolerance."""
    log, truth, observed, model = funnel_fit
    naive = naive_conversion(log)
    ours = model.channel_summary().set_index("channel")["conversion"]
    n = log["channel"].value_counts()
    for channel, p in truth.conversion.items():
        se = np.sqrt(p * (1 - p) / n[channel])
        assert truth.conversion[channel] - naive[channel] > 4 * se, channel  # naive: biased low
        assert abs(ours[channel] - p) < CONVERSION_ATOL
    assert (naive < ours).all()


@pytest.mark.slow  # CI's second step: keeps the README's test command within its time
def test_calibration_on_held_back_applicants(funnel_fit):
    log, _, observed, _ = funnel_fit
    rng = np.random.default_rng(0)
    test = rng.random(len(log)) < 0.2
    model = FunnelModel().fit(log.loc[~test], observed_until=observed)
    brier, table = calibration(model, log.loc[test], observed_until=observed)
    assert 0 < brier < 0.25
    big = table[table["rows"] > 500]
    assert len(big) >= 5
    np.testing.assert_allclose(big["mean_predicted"], big["observed_rate"], atol=0.02)


@pytest.mark.slow  # CI's second step: keeps the README's test command within its time
def test_bootstrap_intervals_student_t_and_the_delta_method_cross_check(funnel_fit):
    """Bootstrap refits reuse the prepared rows but equal a weighted fit; the interval is
    estimate +- t(n-1) x bootstrap sd; the bootstrap sd agrees with the delta-method standard
    error (no resampling noise) within the sd's own noise at 40 resamples (about 11%)."""
    from scipy.stats import t as student_t

    log, _, observed, model = funnel_fit
    w = np.random.default_rng(7).poisson(1.0, len(log)).astype(float)
    # (the weight reuse is the same with latent classes; the independent fit keeps this quick)
    direct = FunnelModel(latent_classes=1).fit(log, observed_until=observed, sample_weight=w).channel_summary()
    reused = FunnelModel(latent_classes=1)._fit_prepared(FunnelModel()._prepare(log, observed), w).channel_summary()
    pd.testing.assert_frame_equal(direct, reused)
    n = 40
    ci = bootstrap(model, log, n=n, seed=1).set_index("channel")
    point = model.channel_summary().set_index("channel")["conversion"]
    t = student_t.ppf(0.975, n - 1)
    np.testing.assert_allclose(ci["conversion_high"] - point, t * ci["conversion_se"], rtol=1e-12)
    np.testing.assert_allclose(point - ci["conversion_low"], t * ci["conversion_se"], rtol=1e-12)
    se = conversion_standard_errors(model)
    assert set(se.index) == set(point.index)
    # the scale of a binomial proportion's sd (the model pools the channels' shared effects:
    # a little below it for the small channels, censoring pushes it up)
    binomial = np.sqrt(point * (1 - point) / log["channel"].value_counts()[point.index])
    assert (se / binomial).between(0.7, 1.5).all()
    np.testing.assert_allclose(ci["conversion_se"], se[ci.index], rtol=0.35)


def test_retention_bootstrap_interval_uses_the_student_t_quantile():
    from scipy.stats import t as student_t

    log, _ = generate_activity_log(3000, seed=5)
    model = RetentionModel().fit(log)
    ci = bootstrap_retention(model, log, n=5, seed=0).set_index("depot")
    point = model.depot_summary_.set_index("depot")["retention"]
    np.testing.assert_allclose(ci["retention_high"] - point[ci.index], student_t.ppf(0.975, 4) * ci["retention_se"], rtol=1e-12)
    assert (ci["retention_low"] < point[ci.index]).all()


def test_retention_and_blocks_per_driver():
    log, truth = generate_activity_log(20_000, seed=4)
    model = RetentionModel().fit(log)
    s = model.depot_summary_.set_index("depot")
    for depot, r in truth.retention.items():
        assert s.loc[depot, "retention"] == pytest.approx(r, abs=RETENTION_ATOL), depot
        assert s.loc[depot, "blocks_per_driver"] == pytest.approx(truth.blocks_per_driver[depot], rel=0.03), depot
    curves = model.tenure_curves(weeks=10)
    assert (curves.groupby("depot")["still_driving"].diff().dropna() <= 1e-12).all()


def test_scikit_learn_contract():
    model = FunnelModel(max_weeks_in_stage=20, C=10.0)
    assert clone(model).get_params() == model.get_params()
    with pytest.raises(NotFittedError):
        model.predict_proba(pd.DataFrame({"stage": [0], "tau": [0], "channel": ["referral"]}))
    log, _, observed = generate_applicant_log(3000, seed=1)
    fitted = model.fit(log, observed_until=observed)
    assert fitted is model and hasattr(model, "stage_models_")
    rows = log.head(5).assign(stage=0, tau=1)
    p = model.predict_proba(rows)
    assert p.shape == (5, 2) and np.allclose(p.sum(axis=1), 1)


@pytest.mark.slow  # CI's second step: keeps the README's test command within its time
def test_logs_to_plan_through_the_cli(tmp_path, demo_path):
    """generate-logs -> estimate funnel / retention -> build-instance (demo's depots, demand and
    settings, estimated parameters) -> solve."""
    run = lambda *a: CliRunner().invoke(main, [str(x) for x in a])  # noqa: E731
    r = run("generate-logs", "--applicants", 8000, "--drivers", 3000, "--seed", 2, "--out", tmp_path / "logs")
    assert r.exit_code == 0, r.output
    observed = json.loads((tmp_path / "logs" / "truth.json").read_text())["observed_until"]
    r = run("estimate", "funnel", tmp_path / "logs" / "applicants.csv", "--out", tmp_path / "est", "--bootstrap", 5,
            "--observed-until", observed)
    assert r.exit_code == 0, r.output
    r = run("estimate", "retention", tmp_path / "logs" / "activity.csv", "--out", tmp_path / "est", "--bootstrap", 5)
    assert r.exit_code == 0, r.output
    demo = optplan.load_instance(demo_path)
    demo.tables["depots"][["depot", "region", "onboarding_cap"]].to_csv(tmp_path / "depots.csv", index=False)
    channels = pd.DataFrame({"channel": ["referral", "job_board", "agency", "social_ads"],
                             "cost_per_applicant": [40.0, 25.0, 160.0, 12.0], "applicant_cap": [4.0, 25.0, 15.0, 40.0]})
    channels.to_csv(tmp_path / "channels.csv", index=False)
    demo.tables["demand"].to_csv(tmp_path / "demand.csv", index=False)
    demo.tables["scenarios"].to_csv(tmp_path / "scenarios.csv", index=False)
    settings = demo.manifest.model_dump(mode="json", exclude={"files"})
    settings["name"] = "from_logs"
    import yaml

    (tmp_path / "settings.yaml").write_text(yaml.safe_dump(settings))
    r = run("build-instance", "--yield", tmp_path / "est" / "yield.csv", "--retention", tmp_path / "est" / "retention.csv",
            "--depots", tmp_path / "depots.csv", "--channels", tmp_path / "channels.csv", "--demand", tmp_path / "demand.csv",
            "--scenarios", tmp_path / "scenarios.csv", "--settings", tmp_path / "settings.yaml", "--out", tmp_path / "inst")
    assert r.exit_code == 0, r.output
    r = run("solve", tmp_path / "inst", "--out", tmp_path / "plan", "--quiet")
    assert r.exit_code == 0, r.output
    inst = optplan.load_instance(tmp_path / "inst")
    est = pd.read_csv(tmp_path / "est" / "retention.csv").set_index("depot")
    assert inst.tables["depots"].set_index("depot")["retention"].to_dict() == pytest.approx(est["retention"].to_dict())
    assert (tmp_path / "plan" / "applicants.csv").exists()


def test_build_instance_rejects_a_channel_absent_from_the_instance(tmp_path):
    (tmp_path / "yield.csv").write_text("channel,lag,probability\ntiktok,1,0.3\n")
    (tmp_path / "channels.csv").write_text("channel,cost_per_applicant\nreferral,40\n")
    (tmp_path / "retention.csv").write_text("depot,retention,blocks_per_driver,active_drivers\nD001,0.97,3,10\n")
    (tmp_path / "depots.csv").write_text("depot,region\nD001,R1\n")
    for f in ("demand.csv", "scenarios.csv"):
        (tmp_path / f).write_text("x\n")
    (tmp_path / "settings.yaml").write_text("name: t\n")
    r = build_cli(tmp_path)
    assert r.exit_code == 2 and "yield.csv:2" in r.output and "tiktok" in r.output and "absent from the instance" in r.output


def build_cli(d, **replace):
    files = {"yield": "yield.csv", "retention": "retention.csv", "depots": "depots.csv", "channels": "channels.csv",
             "demand": "demand.csv", "scenarios": "scenarios.csv", "settings": "settings.yaml", **replace}
    args = ["build-instance"]
    for option, name in files.items():
        args += [f"--{option}", str(d / name)]
    return CliRunner().invoke(main, [*args, "--out", str(d / "o")])


@pytest.fixture
def build_inputs(tmp_path):
    """Valid build-instance inputs: one depot, one channel, two weeks, one scenario."""
    (tmp_path / "yield.csv").write_text("channel,lag,probability\nreferral,1,0.3\n")
    (tmp_path / "channels.csv").write_text("channel,cost_per_applicant\nreferral,40\n")
    (tmp_path / "retention.csv").write_text("depot,retention,blocks_per_driver,active_drivers\nD001,0.97,3,10\n")
    (tmp_path / "depots.csv").write_text("depot,region\nD001,R1\n")
    (tmp_path / "demand.csv").write_text("depot,week,scenario,blocks\nD001,1,S1,30\nD001,2,S1,33\n")
    (tmp_path / "scenarios.csv").write_text("scenario,probability\nS1,1\n")
    (tmp_path / "settings.yaml").write_text("name: t\nhorizon: {weeks: 2, start_date: '2027-01-04'}\n"
                                            "penalties: {unserved_cost_per_block: 100}\n")
    return tmp_path


def test_build_instance_inputs_are_checked_like_an_instance(build_inputs):
    """Issue #16 escapes in build-instance: each bad input is one line naming its own file
    (the settings file, not instance.yaml), exit 2; nothing written."""
    d = build_inputs
    assert build_cli(d).exit_code == 0
    (d / "o").rename(d / "first")
    cases = {
        "bad.yaml": ("name: t\nhorizon: {weeks: 2, start_date: 2027-02-30}\npenalties: {unserved_cost_per_block: 1}\n",
                     "settings", ["bad.yaml", "horizon.start_date", "2027-02-30"]),
        "nodepot.csv": ("depot\nD001\n", "depots", ["nodepot.csv:1", "region"]),
        "badret.csv": ("x\n1\n", "retention", ["badret.csv:1", "retention"]),
        "badch.csv": ("channel,cost_per_applicant\nreferral,-4\n", "channels", ["badch.csv:2", "cost_per_applicant"]),
        "list.yaml": ("- 1\n- 2\n", "settings", ["list.yaml", "a mapping"]),
    }
    for name, (text, option, fragments) in cases.items():
        (d / name).write_text(text)
        r = build_cli(d, **{option: name})
        assert r.exit_code == 2, (name, r.output)
        assert "internal error" not in r.output
        assert any(all(f in line for f in fragments) for line in r.output.splitlines()), (name, r.output)
        assert not (d / "o").exists()


def test_build_instance_says_when_depots_csv_replaces_the_estimated_drivers(build_inputs):
    d = build_inputs
    (d / "depots.csv").write_text("depot,region,active_drivers\nD001,R1,12\n")
    r = build_cli(d)
    assert r.exit_code == 0, r.output
    assert "note: active drivers from depots.csv replace the retention.csv estimates" in r.output
    assert optplan.load_instance(d / "o").tables["depots"]["active_drivers"].tolist() == [12.0]




def test_kernels_by_depot_where_the_data_supports_it(funnel_fit):
    """Per depot and channel: groups under the applicant threshold get no kernel; the others,
    weighted by their applicants, average back to the channel kernel (same model, the mix
    split by depot)."""
    log, _, observed, model = funnel_fit
    by_depot = model.yield_kernels(by="depot", min_applicants=1, trim=0.0)
    per_channel = model.yield_kernels(trim=0.0)
    for channel, g in by_depot.groupby("channel"):
        w = g.groupby("depot")["applicants"].first()
        avg = (g.assign(wp=g["probability"] * g["depot"].map(w)).groupby("lag")["wp"].sum() / w.sum())
        mine = per_channel[per_channel["channel"] == channel].set_index("lag")["probability"]
        both = avg.index.intersection(mine.index)
        np.testing.assert_allclose(avg[both], mine[both], atol=1e-9)
    counts = log.groupby(["depot", "channel"]).size()
    threshold = int(counts.median()) + 1
    limited = model.yield_kernels(by="depot", min_applicants=threshold)
    kept = set(map(tuple, limited[["depot", "channel"]].drop_duplicates().to_numpy()))
    assert kept == {k for k, n in counts.items() if n >= threshold}
    # independent stages: the depot effects are what is tested (latent classes: test_dependent_stages.py)
    with_effects = FunnelModel(depot_effects=True, latent_classes=1).fit(log, observed_until=observed)
    assert "depot" in with_effects.covariates_
    conv = with_effects.yield_kernels(by="depot").groupby(["depot", "channel"])["probability"].sum()
    assert conv.between(0, 1).all()
