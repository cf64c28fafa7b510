"""Dependent stage durations (issue #15 part 1, issue #30 part 1): applicants who are fast
through one stage are fast through the next. Synthetic logs with a latent speed (fast
applicants +1 on every stage's logit, slow ones -1) whose class mix differs by channel
(fast share 0.85 for referrals, 0.5 job boards, 0.2 agencies, 0.4 social ads), per-applicant
observation windows (21-119 days) and skipped stages (15% of converters without an
onboarding date). Independent stages put the mean time to first block about a week late and
conversion off; latent classes with one set of shares for every channel put a channel's
conversion 0.02-0.03 off and its timing 0.3-0.5 weeks late; classes with shares by channel,
their number chosen by held-out likelihood, recover both."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy.optimize import approx_fprime

from optplan.cli import main
from optplan.estimate.funnel import SELECTION_Z, FunnelModel, _mixture_objective, _with_classes, calibration, conversion_check
from optplan.estimate.logs import read_applicant_log
from optplan.estimate.synthetic import exact_funnel_truth, funnel_params, generate_applicant_log, monte_carlo_funnel_truth, with_windows

#: Issue #15's acceptance (with windows and skipped stages): conversion within 0.015
#: (probability), mean weeks to first block within 0.3 (weeks).
CONVERSION_ATOL = 0.015
MEAN_WEEKS_ATOL = 0.3
#: Issue #30's acceptance (every channel, at the same time): conversion within 0.01, mean weeks within 0.2.
CONVERSION_ATOL_30 = 0.01
MEAN_WEEKS_ATOL_30 = 0.2
STAGES = ["applied", "background_check", "onboarding", "first_block"]
SHIFT = 1.0
#: the share of fast applicants per channel (referral, job_board, agency, social_ads)
FAST_SHARE = (0.85, 0.5, 0.2, 0.4)


@pytest.fixture(scope="module")
def dependent_log(tmp_path_factory):
    apps, truth, observed = generate_applicant_log(40000, seed=5, depots=3, weeks=52, censored_share=0.3,
                                                   speed_shift=SHIFT, fast_share=FAST_SHARE)
    rng = np.random.default_rng(5)
    apps = with_windows(apps, rng)  # each applicant followed 21-119 days
    skipped = (apps["first_block"] != "") & (rng.random(len(apps)) < 0.15)
    apps.loc[skipped, "onboarding"] = ""
    path = tmp_path_factory.mktemp("dependent") / "applicants.csv"
    apps.to_csv(path, index=False)
    log, obs, notes = read_applicant_log(path, observed_until=observed)
    assert notes["skipped_stages_filled"] == int(skipped.sum()) > 1000
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mixture = FunnelModel().fit(log, observed_until=obs)
        independent = FunnelModel(latent_classes=1).fit(log, observed_until=obs)
        common = FunnelModel(class_shares_by=None).fit(log, observed_until=obs)
    return path, log, obs, truth, mixture, independent, common


def errors(model, truth):
    s = model.channel_summary().set_index("channel")
    return ({c: s.loc[c, "conversion"] - truth.conversion[c] for c in truth.conversion},
            {c: s.loc[c, "mean_weeks_to_first_block"] - truth.mean_weeks_to_first_block[c] for c in truth.conversion})


def test_latent_speed_truth_two_ways():
    """The exact truth with a latent speed (a mixture of convolutions, class mix by channel)
    equals a simulation of 300,000 applicants within 4 standard errors (conversion and mean
    weeks to first block); the speed makes converters faster."""
    exact = exact_funnel_truth(funnel_params(5, SHIFT, FAST_SHARE))
    mc = monte_carlo_funnel_truth(300_000, seed=2, speed_shift=SHIFT, fast_share=FAST_SHARE)
    for c, p in exact.conversion.items():
        assert abs(mc.conversion[c] - p) < 4 * np.sqrt(p * (1 - p) / mc.n_applicants[c]), c
        k = np.asarray(exact.kernel[c]) / p  # weeks to first block among converts
        weeks = np.arange(len(k))
        sd = np.sqrt(k @ (weeks - k @ weeks) ** 2)
        se = sd / np.sqrt(p * mc.n_applicants[c])
        assert abs(mc.mean_weeks_to_first_block[c] - exact.mean_weeks_to_first_block[c]) < 4 * se, c
    plain = exact_funnel_truth(funnel_params(5))
    half = exact_funnel_truth(funnel_params(5, SHIFT))
    assert all(half.mean_weeks_to_first_block[c] < plain.mean_weeks_to_first_block[c] - 0.2 for c in plain.conversion)
    # more fast applicants, more conversion: referral (0.85 fast) above, agency (0.2) below the 50/50 mix
    assert exact.conversion["referral"] > half.conversion["referral"] + 0.05
    assert exact.conversion["agency"] < half.conversion["agency"] - 0.05


def test_no_shift_leaves_the_generated_log_unchanged():
    a, _, _ = generate_applicant_log(500, seed=1, depots=2)
    b, _, _ = generate_applicant_log(500, seed=1, depots=2, speed_shift=0.0)
    pd.testing.assert_frame_equal(a, b)


def test_latent_classes_recover_conversion_and_time_to_first_block(dependent_log):
    *_, truth, mixture, independent, common = dependent_log
    assert mixture.n_classes_ == 2 and mixture.mixture_["reason"] == "the held-out likelihood prefers 2 classes"
    # each channel's share of the fast class, and the slow class's shift (-2 * SHIFT at every stage)
    shares = dict(zip(mixture.channels_, mixture.class_shares_[:, 0], strict=True))
    truth_share = dict(zip(("referral", "job_board", "agency", "social_ads"), FAST_SHARE, strict=True))
    for c, f in truth_share.items():
        assert shares[c] == pytest.approx(f, abs=0.06), (c, shares)
    np.testing.assert_allclose(mixture.class_shifts_[:, 1], -2 * SHIFT, atol=0.45)
    conv, mean = errors(mixture, truth)
    assert max(map(abs, conv.values())) <= CONVERSION_ATOL, conv
    assert max(map(abs, mean.values())) <= MEAN_WEEKS_ATOL, mean
    # the independent model misses (what the latent classes are for)
    conv1, mean1 = errors(independent, truth)
    assert max(map(abs, conv1.values())) > 2 * CONVERSION_ATOL, conv1
    assert max(map(abs, mean1.values())) > 2 * MEAN_WEEKS_ATOL, mean1
    # and so do shares common to every channel (what the shares by channel are for)
    conv2, mean2 = errors(common, truth)
    assert max(map(abs, conv2.values())) > CONVERSION_ATOL and max(map(abs, mean2.values())) > MEAN_WEEKS_ATOL, (conv2, mean2)


@pytest.fixture(scope="module")
def mixed_log():
    """100,000 applicants followed to the end of the log (no windows, no skipped stages):
    conversion's sampling error about 0.003 per channel, so that the 0.01 of issue #30 is
    about 3 of them (over seeds 1-5 the largest errors were 0.005 and 0.09 weeks;
    docs/estimation.md)."""
    apps, truth, observed = generate_applicant_log(100_000, seed=1, depots=3, weeks=52, censored_share=0.3,
                                                   speed_shift=SHIFT, fast_share=FAST_SHARE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return (apps, observed, truth, FunnelModel().fit(apps, observed_until=observed),
                FunnelModel(class_shares_by=None).fit(apps, observed_until=observed))


def test_conversion_and_timing_right_at_once_for_every_channel(mixed_log):
    """Issue #30's acceptance: with the class mix by channel, conversion within 0.01 and mean
    weeks to first block within 0.2 of the truth at the same time, in every channel; one set of
    shares for all misses one of them, and the conversion check (the raw share of applicants
    the log follows long enough) names a channel it misses."""
    apps, observed, truth, by_channel, common = mixed_log
    conv, mean = errors(by_channel, truth)
    assert max(map(abs, conv.values())) <= CONVERSION_ATOL_30, conv
    assert max(map(abs, mean.values())) <= MEAN_WEEKS_ATOL_30, mean
    assert conversion_check(by_channel, apps, observed)["ok"].all()
    conv2, mean2 = errors(common, truth)
    assert max(map(abs, conv2.values())) > CONVERSION_ATOL_30 or max(map(abs, mean2.values())) > MEAN_WEEKS_ATOL_30
    assert not conversion_check(common, apps, observed)["ok"].all()


def test_the_gradient_is_the_objectives(dependent_log):
    """The analytic gradient of the marginal likelihood against central differences, at the
    mixture's start, with bootstrap-like weights (2,000 applicants)."""
    _, log, obs, *_ = dependent_log
    model = FunnelModel(latent_classes=1)
    prepared = model._prepare(log.iloc[:2000], obs)
    model._fit_prepared(prepared, np.ones(prepared["n"]))
    cells = model._stage_cells(prepared)
    w = np.random.default_rng(0).poisson(1.0, prepared["n"]).astype(float)
    for mix in (None, {"group": prepared["channel_code"], "G": len(model.channels_)}):  # shares common | by channel
        G = 1 if mix is None else mix["G"]
        theta = _with_classes(model._independent_theta(), 3, 2, G)
        theta[-G:] = np.linspace(-0.5, 0.5, G)  # shares that differ by channel
        analytic = _mixture_objective(theta, cells, w, 2, model.C, mix)[1]
        numeric = approx_fprime(theta, lambda t, mix=mix: _mixture_objective(t, cells, w, 2, model.C, mix)[0], 1e-6)
        np.testing.assert_allclose(analytic, numeric, atol=1e-3 * np.abs(analytic).max())
    # with one class the objective's optimum is scikit-learn's fit (its gradient there is ~0)
    one = _mixture_objective(model._independent_theta(), cells, np.ones(prepared["n"]), 1, model.C)[1]
    assert np.abs(one).max() < 1e-2


def test_independent_logs_keep_independent_stages():
    """Without a latent speed the held-out likelihood keeps independent stages (the mixture
    gains less than SELECTION_Z standard errors): the same kernels as latent_classes=1."""
    apps, _, observed = generate_applicant_log(20000, seed=8, depots=3, censored_share=0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        default = FunnelModel().fit(apps, observed_until=observed)
        one = FunnelModel(latent_classes=1).fit(apps, observed_until=observed)
    assert default.n_classes_ == 1 and default.mixture_["reason"] == "the held-out likelihood prefers independent stages"
    step = default.mixture_["comparisons"][0]
    assert step["held_out_gain"] < SELECTION_Z * step["standard_error"]
    pd.testing.assert_frame_equal(default.yield_kernels(), one.yield_kernels())


def test_calibration_conditions_on_each_applicants_history(dependent_log):
    """One-step-ahead predictions (class posterior given the applicant's earlier weeks) are
    calibrated on fresh applicants and score better than the independent model's."""
    _, log, obs, _, mixture, independent, _ = dependent_log
    fresh, _, observed = generate_applicant_log(10000, seed=11, depots=3, censored_share=0.3, speed_shift=SHIFT,
                                            fast_share=FAST_SHARE)
    brier, table = calibration(mixture, fresh, observed_until=observed)
    brier1, _ = calibration(independent, fresh, observed_until=observed)
    assert brier < brier1
    big = table[table["rows"] > 1000]
    np.testing.assert_allclose(big["mean_predicted"], big["observed_rate"], atol=0.02)


@pytest.mark.slow  # CI's second step: keeps the README's test command within its time
def test_the_command_reports_the_dependence(dependent_log, tmp_path):
    path, *_ = dependent_log
    path = tmp_path / "some.csv"  # 8,000 of the applicants: enough for BIC to see the dependence
    pd.read_csv(dependent_log[0], dtype=str, keep_default_na=False).iloc[:8000].to_csv(path, index=False)
    r = CliRunner().invoke(main, ["estimate", "funnel", str(path), "--bootstrap", "0", "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert "stage durations: dependent; 2 latent speed classes" in r.output
    r1 = CliRunner().invoke(main, ["estimate", "funnel", str(path), "--bootstrap", "0", "--latent-classes", "1",
                                   "--out", str(tmp_path / "o1")])
    assert r1.exit_code == 0 and "stage durations: independent given the covariates (latent_classes=1)" in r1.output
