"""Escapes of issue #33 ("trustworthy under any input, round two"): each was an internal error
(exit 1) or a silent acceptance before; now a one-line refusal (exit 2, nothing written) or,
where the input is fine, a result. One test per escape."""

from __future__ import annotations

import os

import pandas as pd
import pytest
from conftest import WALMART_CSV
from test_input_escapes import DEMO, assert_refused, run


def test_an_out_that_is_a_symbolic_link_to_itself_is_refused(tmp_path):
    loop = tmp_path / "self"
    os.symlink(loop, loop)
    code, errors = run("solve", DEMO, "--out", loop)
    assert_refused(code, errors, "--out", "loops back on itself")
    assert os.path.islink(loop) and not any(p.name != "self" for p in tmp_path.iterdir())


@pytest.mark.parametrize("noise", ["1e308", "3.5"])
def test_simulate_noise_beyond_any_forecast_error_is_refused(tmp_path, noise):
    code, _ = run("simulate", DEMO, "--paths", "2", "--policies", "static", "--noise", noise, "--out", tmp_path / "o")
    assert code == 2 and not (tmp_path / "o").exists()


@pytest.mark.parametrize("stages", ["applied", "applied,applied", "applied,,"])
def test_a_funnel_of_fewer_than_two_stages_is_refused(tmp_path, stages):
    code, _ = run("generate-logs", "--applicants", "300", "--drivers", "20", "--out", tmp_path / "logs")
    assert code == 0
    code, errors = run("estimate", "funnel", tmp_path / "logs" / "applicants.csv", "--stages", stages,
                       "--out", tmp_path / "p")
    assert_refused(code, errors, "--stages", "two or more different stages", stages)
    assert not (tmp_path / "p").exists()


def test_a_depot_with_no_demand_at_all_forecasts_none_by_the_month(tmp_path):
    """The weekly forecast of such a file worked; the monthly one was an internal error. Now
    the silent depot forecasts 0 blocks a month, the others are forecast as before."""
    history = pd.read_csv(WALMART_CSV)
    three = history[history["Store"].isin([1, 2, 3])].copy()
    three.loc[three["Store"] == 1, "Weekly_Sales"] = 0.0
    three.to_csv(tmp_path / "h.csv", index=False)
    code, errors = run("forecast", tmp_path / "h.csv", "--money-per-block", "2000", "--resolution", "month",
                       "--horizon", "6", "--out", tmp_path / "fc")
    assert code == 0, errors
    q = pd.read_csv(tmp_path / "fc" / "quantiles.csv", dtype={"depot": str})
    assert (q[q["depot"] == "1"][["p10", "p50", "p90"]] == 0).all().all()
    others = q[q["depot"] != "1"]
    assert len(others) == 12 and (others["p10"] > 0).all() and (others["p10"] <= others["p90"]).all()
