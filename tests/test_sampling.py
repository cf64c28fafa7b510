"""One out-of-sample definition (issue #13 part 4): report and simulate draw the same paths
from the same named settings, so the same plan gets the same figure from both when the
driver setting agrees; and the sampler without noise is the in-sample distribution."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

import optplan
from optplan.cli import main
from optplan.policy import simulate
from optplan.report import out_of_sample
from optplan.sampling import OutOfSample

#: Relative tolerance between two routes that evaluate the same plan on the same paths.
SAME_PATHS_RTOL = 1e-9


@pytest.fixture(scope="module")
def demo(demo_path):
    inst = optplan.load_instance(demo_path)
    return inst, optplan.solve(inst, engine="highs")


def test_report_and_simulate_score_the_static_plan_alike(demo):
    inst, plan = demo
    sampler = OutOfSample(paths=120, seed=3, noise_sd=0.07, noise_ar=0.4, random_drivers=False)
    oos = out_of_sample(plan, sampler)
    paths = simulate(inst.model_data(), plan.decisions, n_paths=120, seed=3, sigma=0.07, noise_ar=0.4,
                     stochastic_drivers=False)
    static = paths[paths["policy"] == "static"]["cost"].mean()
    assert static == pytest.approx(oos["expected_cost"], rel=SAME_PATHS_RTOL)
    assert oos["sampled"] == sampler.describe() and "120 paths (seed 3)" in oos["sampled"]


def test_without_noise_the_sampler_is_the_in_sample_distribution(demo):
    """noise_sd = 0: every path is one of the instance's scenarios drawn by probability, so
    the mean over many paths converges to the in-sample expected cost (within 4 standard
    errors), and each path's demand is exactly a scenario's."""
    _, plan = demo
    sampler = OutOfSample(paths=4000, seed=1, noise_sd=0.0)
    oos = out_of_sample(plan, sampler)
    assert abs(oos["expected_cost"] - oos["in_sample_expected_cost"]) <= 4 * oos["standard_error"]
    demand = sampler.demand(plan.data)[:5]
    scen = np.transpose(plan.data.demand, (2, 0, 1))
    for path in demand:
        assert any(np.allclose(path, s, rtol=0, atol=1e-12) for s in scen)


def test_noise_has_mean_one(demo):
    _, plan = demo
    d = plan.data
    flat = OutOfSample(paths=20000, seed=2, noise_sd=0.0).demand(d).mean(axis=0)
    noisy = OutOfSample(paths=20000, seed=2, noise_sd=0.2).demand(d).mean(axis=0)
    assert np.allclose(noisy / flat, 1.0, atol=0.02)


def test_both_commands_say_what_they_sampled(demo_path, tmp_path):
    runner = CliRunner()
    r = runner.invoke(main, ["simulate", str(demo_path), "--out", str(tmp_path / "sim"), "--paths", "50",
                             "--drivers", "expected"])
    assert r.exit_code == 0, r.output
    settings = json.loads((tmp_path / "sim" / "sampling.json").read_text())
    assert settings["paths"] == 50 and settings["random_drivers"] is False
    assert settings["description"] in r.output
    r = runner.invoke(main, ["report", str(demo_path), "--out", str(tmp_path / "rep"), "--oos-paths", "50",
                             "--service-points", "0", "--frontier-points", "3", "--quiet"])
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "rep" / "report.json").read_text())["out_of_sample"]
    assert report["sampler"]["noise_sd"] == settings["noise_sd"] and report["sampler"]["paths"] == 50
    assert report["sampled"] in (tmp_path / "rep" / "report.html").read_text()
