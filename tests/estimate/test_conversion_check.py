"""The funnel's conversion checked against the raw share of applicants the log follows long
enough (issue #30 part 1): quiet on a fit of the true process, a warning with numbers on a
crafted misfit (the same fit judged on a log where half of one channel's first blocks are
gone), and the numbers in channel_summary.csv."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from optplan.cli import main
from optplan.estimate.funnel import FunnelModel, conversion_check, wilson_interval
from optplan.estimate.logs import read_applicant_log
from optplan.estimate.synthetic import generate_applicant_log


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    apps, _, _ = generate_applicant_log(8000, seed=3, depots=3, weeks=52, censored_share=0.3)
    path = tmp_path_factory.mktemp("log") / "applicants.csv"
    apps.to_csv(path, index=False)
    log, observed, _ = read_applicant_log(path)
    return path, log, observed, FunnelModel(latent_classes=1).fit(log, observed_until=observed)


def test_wilson_interval_by_hand():
    low, high = wilson_interval(20, 100)  # p = 0.2, n = 100, z = 1.96: centre 0.2154, half 0.0773
    assert low == pytest.approx(0.1334, abs=1e-4) and high == pytest.approx(0.2888, abs=1e-4)


def test_a_fit_of_the_true_process_passes_and_a_misfit_is_named(fitted):
    _, log, observed, model = fitted
    check = conversion_check(model, log, observed)
    assert check["ok"].all(), check
    assert (check["applicants_followed"] > 100).all()
    # the raw share by an independent route: pandas on the dates
    r = check.set_index("channel").loc["referral"]
    mine = log[log["channel"] == "referral"]
    followed = (pd.Timestamp(observed) - mine["applied"]).dt.days >= 7 * r["weeks"]
    within = ((mine["first_block"] - mine["applied"]).dt.days // 7 < r["weeks"]) & mine["first_block"].notna()
    assert r["applicants_followed"] == followed.sum() and r["converted"] == (followed & within).sum()
    # half of referral's first blocks gone: the model (fitted before) now over-converts it
    tampered = log.copy()
    conv = tampered.index[(tampered["channel"] == "referral") & tampered["first_block"].notna()]
    tampered.loc[conv[::2], "first_block"] = pd.NaT
    bad = conversion_check(model, tampered, observed).set_index("channel")
    assert not bad.loc["referral", "ok"] and bad.drop(index="referral")["ok"].all()
    assert bad.loc["referral", "model_share"] > bad.loc["referral", "high"]


def test_the_command_writes_the_check_and_warns_only_on_a_misfit(fitted, tmp_path, monkeypatch):
    path, _, _, _ = fitted
    r = CliRunner().invoke(main, ["estimate", "funnel", str(path), "--out", str(tmp_path / "f"), "--bootstrap", "0",
                                  "--latent-classes", "1", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "the fit misses" not in r.output
    summary = pd.read_csv(tmp_path / "f" / "channel_summary.csv")
    assert {"raw_share", "raw_share_low", "raw_share_high", "model_share", "check_ok"} <= set(summary.columns)
    assert summary["check_ok"].all()
    import optplan.estimate.workflow as wf

    real = wf.conversion_check

    def misfit(*args, **kwargs):  # the crafted misfit: referral's model share set outside its interval
        out = real(*args, **kwargs)
        out.loc[out["channel"] == "referral", ["model_share", "ok"]] = [0.999, False]
        return out

    monkeypatch.setattr(wf, "conversion_check", misfit)
    r = CliRunner().invoke(main, ["estimate", "funnel", str(path), "--out", str(tmp_path / "g"), "--bootstrap", "0",
                                  "--latent-classes", "1", "--quiet"])
    line = next(x for x in r.output.splitlines() if x.startswith("warning: channel referral"))
    assert "the model has 99.9% of applicants with a first block within" in line and "95% interval" in line
    assert np.isfinite(pd.read_csv(tmp_path / "g" / "channel_summary.csv")["raw_share"]).all()
