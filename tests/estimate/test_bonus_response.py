"""The sign-on bonus's conversion response estimated from the applicant log (issue #31 part 5).

Synthetic logs offer bonuses of 0, 100 and 250 at random to job_board and social_ads
applicants with a known effect on each stage's logit; the truth is the exact conversion had
every applicant of the channel been offered the bonus (optplan.estimate.synthetic.BonusDesign)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from test_estimation import build_cli, build_inputs  # noqa: F401 - a fixture

import optplan
from optplan.cli import main
from optplan.estimate import synthetic
from optplan.estimate.funnel import FunnelModel, bonus_levels, bonus_response, bootstrap_with_response
from optplan.estimate.synthetic import BonusDesign, generate_applicant_log

#: The issue's bar: the estimated uplift within 15 % of the truth (relative).
UPLIFT_RTOL = 0.15
#: ... and its 95 % interval covering the truth in at least 90 % of (seed, channel, level) cases.
COVERAGE_MIN = 0.90
#: Monte Carlo route to the truth: within this many standard errors.
MC_Z = 4.0


def test_the_bonus_truth_by_convolution_equals_a_simulation():
    """The exact truth (convolution over profiles) against 200,000 simulated applicants all
    offered 250, by the generating process itself (a second route)."""
    design = BonusDesign(levels=(250.0,), channels=synthetic.CHANNELS)
    truth = design.truth().set_index("channel")
    params = synthetic.funnel_params(5)
    rng = np.random.default_rng(7)
    pop = synthetic._draw_population(params, 200_000, rng)
    bonus = design.draw(pop["channel"], rng)
    assert (bonus == 250.0).all()
    t = synthetic._simulate_stage_weeks(params, pop, rng, design.logit_shift(bonus))
    active = (t >= 0).all(axis=0)
    for ci, ch in enumerate(synthetic.CHANNELS):
        mine = pop["channel"] == ci
        p = truth.loc[ch, "conversion"]
        se = np.sqrt(p * (1 - p) / mine.sum())
        assert abs(active[mine].mean() - p) < MC_Z * se, ch
    # a bonus raises conversion (positive coefficients), and more raises it more
    two = BonusDesign().truth()
    assert (two["conversion_uplift"] > 0).all()
    assert (two.groupby("channel")["conversion_uplift"].diff().dropna() > 0).all()


def test_a_log_without_a_bonus_design_is_unchanged():
    """Bonus draws happen only with a design: a log without one has no bonus column and the
    same rows as before bonuses existed (the first stage dates of seed 0 as recorded)."""
    log, _, _ = generate_applicant_log(200, seed=0)
    assert "bonus" not in log.columns
    with_bonus, _, _ = generate_applicant_log(200, seed=0, bonus=BonusDesign())
    assert list(with_bonus.columns) == [*log.columns, "bonus"]
    assert set(with_bonus["bonus"]) <= {0.0, 100.0, 250.0}
    assert (with_bonus.loc[~with_bonus["channel"].isin(["job_board", "social_ads"]), "bonus"] == 0).all()


@pytest.mark.parametrize("seed", [0, 1])
def test_the_estimated_uplift_is_within_15_percent_of_the_truth(seed):
    design = BonusDesign()
    truth = design.truth().set_index(["channel", "bonus"])["conversion_uplift"]
    log, _, observed = generate_applicant_log(40_000, seed=seed, bonus=design)
    model = FunnelModel(latent_classes=1).fit(log, observed_until=observed)
    levels = bonus_levels(log)
    assert levels == {"job_board": [100.0, 250.0], "social_ads": [100.0, 250.0]}
    est = bonus_response(model, levels).set_index(["channel", "bonus_per_driver"])
    for key, true in truth.items():
        assert est.loc[key, "conversion_uplift"] == pytest.approx(true, rel=UPLIFT_RTOL), key
    # the channel's own conversion (no bonus) is the one the menu raises: near the truth without
    base = synthetic.exact_funnel_truth(synthetic.funnel_params(5)).conversion
    for ch in ("job_board", "social_ads"):
        assert est.loc[(ch, 100.0), "conversion_without"] == pytest.approx(base[ch], abs=0.02)
        assert model.channel_summary({"bonus": 0.0}).set_index("channel").loc[ch, "conversion"] == pytest.approx(
            est.loc[(ch, 100.0), "conversion_without"], rel=1e-12)


@pytest.mark.slow  # 6 logs, each fitted 11 times (about 40 s); benchmarks/bench_bonus_response.py: 30 seeds
def test_the_uplift_interval_covers_the_truth_in_90_percent_of_seeds():
    """24 intervals (6 seeds x 2 channels x 2 levels): at most 2 miss the truth. Ten
    resamples: the interval's Student-t quantile with 9 degrees of freedom allows for them."""
    design = BonusDesign()
    truth = design.truth().set_index(["channel", "bonus"])["conversion_uplift"]
    covered = []
    for seed in range(100, 106):  # seeds not developed on
        log, _, observed = generate_applicant_log(20_000, seed=seed, bonus=design)
        model = FunnelModel(latent_classes=1).fit(log, observed_until=observed)
        _, r = bootstrap_with_response(model, log, bonus_levels(log), n=10, seed=seed)
        r = r.set_index(["channel", "bonus_per_driver"])
        covered += [bool(r.loc[k, "uplift_low"] <= t <= r.loc[k, "uplift_high"]) for k, t in truth.items()]
    assert np.mean(covered) >= COVERAGE_MIN, covered


def test_estimate_funnel_writes_the_response_and_yields_without_a_bonus(tmp_path):
    log, _, _ = generate_applicant_log(6_000, seed=3, bonus=BonusDesign())
    log.to_csv(tmp_path / "apps.csv", index=False)
    out = tmp_path / "f"
    r = CliRunner().invoke(main, ["estimate", "funnel", str(tmp_path / "apps.csv"), "--out", str(out), "--bootstrap", "3",
                                  "--latent-classes", "1", "--quiet"])
    assert r.exit_code == 0, r.output
    resp = pd.read_csv(out / "bonus_response.csv")
    assert list(resp[["channel", "bonus_per_driver"]].itertuples(index=False, name=None)) == [
        ("job_board", 100.0), ("job_board", 250.0), ("social_ads", 100.0), ("social_ads", 250.0)]
    assert (resp["uplift_low"] <= resp["conversion_uplift"]).all() and (resp["conversion_uplift"] <= resp["uplift_high"]).all()
    assert "job_board: a sign-on bonus of 100.00 per converted driver" in r.output
    # yield.csv is each channel's kernel without a bonus: its conversion is the response's base
    kernels = pd.read_csv(out / "yield.csv").groupby("channel")["probability"].sum()
    assert kernels["job_board"] == pytest.approx(resp.loc[0, "conversion_without"], abs=1e-4)  # yield.csv trims lags below 1e-6
    # the same folder on a log without bonuses: no response left from the earlier run
    log.drop(columns=["bonus"]).to_csv(tmp_path / "apps.csv", index=False)
    r = CliRunner().invoke(main, ["estimate", "funnel", str(tmp_path / "apps.csv"), "--out", str(out), "--bootstrap", "0",
                                  "--latent-classes", "1", "--quiet"])
    assert r.exit_code == 0, r.output
    assert not (out / "bonus_response.csv").exists()
    assert "sign-on bonus" not in r.output


def test_a_bad_bonus_cell_is_one_line_naming_the_applicant(tmp_path):
    log, _, _ = generate_applicant_log(300, seed=4, bonus=BonusDesign())
    log["bonus"] = log["bonus"].astype(object)
    log.loc[3, "bonus"] = -50
    log.loc[7, "bonus"] = "lots"
    log.loc[9, "bonus"] = ""  # empty: no bonus offered
    log.to_csv(tmp_path / "apps.csv", index=False)
    r = CliRunner().invoke(main, ["estimate", "funnel", str(tmp_path / "apps.csv"), "--out", str(tmp_path / "f")])
    assert r.exit_code == 2, r.output
    lines = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 2, r.output
    for i, value in ((3, "-50"), (7, "lots")):
        assert any("apps.csv" in line and "'bonus'" in line and log.loc[i, "applicant_id"] in line and value in line
                   and "a number >= 0" in line for line in lines), r.output
    assert not (tmp_path / "f").exists()


def test_build_instance_takes_the_response_as_the_bonus_menu(build_inputs):  # noqa: F811 - the fixture
    d = build_inputs
    (d / "resp.csv").write_text("channel,bonus_per_driver,conversion,conversion_without,conversion_uplift,uplift_low\n"
                                "referral,50,0.36,0.3,0.2,0.1\nreferral,80,0.29,0.3,-0.03,-0.1\n")
    r = build_cli(d, bonuses="resp.csv")
    assert r.exit_code == 0, r.output
    assert "1 bonus level(s) of resp.csv left out of the menu: their conversion uplift is not above 0 (referral 80)" \
        in r.output
    inst = optplan.load_instance(d / "o")
    menu = inst.tables["bonuses"]
    assert list(zip(menu["channel"], menu["bonus_per_driver"], menu["conversion_uplift"], strict=True)) == [
        ("referral", 50.0, 0.2)]
    assert optplan.solve(inst).status.optimal
    # a level the instance refuses is named in the response's own file
    (d / "bad.csv").write_text("channel,bonus_per_driver,conversion_uplift\nnobody,50,0.2\n")
    import shutil

    shutil.rmtree(d / "o")
    r = build_cli(d, bonuses="bad.csv")
    assert r.exit_code == 2, r.output
    assert any("bad.csv:2" in line and "channel" in line and "nobody" in line for line in r.output.splitlines()), r.output
