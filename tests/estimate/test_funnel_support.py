"""Hazards beyond what the log shows (issue #15 part 1): a log of only a few weeks cannot tell
what happens to applicants after those weeks in a stage. The fit used to extrapolate the
regulariser's guess to 26 weeks (conversion 0.93-1.0 where the truth is 0.18-0.63); now the
later hazards are taken as 0, conversion is a lower bound, and the command says so."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest
from click.testing import CliRunner

from optplan.cli import main
from optplan.estimate.funnel import FunnelModel
from optplan.estimate.logs import read_applicant_log
from optplan.estimate.synthetic import generate_applicant_log

#: How far above the truth a lower-bound estimate may sit (sampling noise of 20,000 applicants).
NOISE = 0.03


@pytest.fixture(scope="module")
def short_log(tmp_path_factory):
    apps, truth, observed = generate_applicant_log(20000, seed=3, depots=3, weeks=4, censored_share=0.95)
    path = tmp_path_factory.mktemp("short") / "applicants.csv"
    apps.to_csv(path, index=False)
    return path, truth, observed


@pytest.mark.slow  # CI's second step: keeps the README's test command within its time
def test_a_four_week_log_gives_lower_bounds_not_a_blow_up(short_log):
    path, truth, observed = short_log
    log, obs, _ = read_applicant_log(path, observed_until=observed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = FunnelModel().fit(log, observed_until=obs)
    assert model.unsupported_weeks() == {"applied -> background_check": 4, "background_check -> onboarding": 4,
                                         "onboarding -> first_block": 4}
    summary = model.channel_summary().set_index("channel")
    for channel, conversion in truth.conversion.items():
        assert summary.loc[channel, "conversion"] <= conversion + NOISE, channel
        assert summary.loc[channel, "conversion"] >= 0.5 * conversion, channel  # a bound, not nothing


def test_a_long_log_is_untouched():
    apps, _, observed = generate_applicant_log(3000, seed=4, depots=2, weeks=52, censored_share=0.3)
    model = FunnelModel()
    log = apps.copy()
    for s in ("applied", "background_check", "onboarding", "first_block"):
        log[s] = pd.to_datetime(log[s])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(log, observed_until=observed)
    assert model.unsupported_weeks() == {}
    assert model.supported(26).all()


def test_the_command_says_it_cannot_tell(short_log, tmp_path):
    path, _, observed = short_log
    # one latent class: what the command says about short logs does not depend on the mixture (11 s of it)
    r = CliRunner().invoke(main, ["estimate", "funnel", str(path), "--observed-until", str(observed), "--bootstrap", "2",
                                  "--latent-classes", "1", "--out", str(tmp_path / "est")])
    assert r.exit_code == 0, r.output
    assert "is seen for only 4 week(s) in stage" in r.output and "lower bounds" in r.output
