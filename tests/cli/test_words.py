"""What a planner reads (issue #25): one status phrase that never contradicts itself, every
expected cost said to be in-sample or out of sample, technical terms in plain words with the
acronym beside them, policies explained, repeated solver lines folded, and progress within
the first lines of a long command."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import REPO

from optplan.cli import main

DEMO = REPO / "instances" / "demo"


def run(*args):
    return CliRunner().invoke(main, list(map(str, args)))


def test_a_mip_within_the_requested_gap_says_so_once_and_exits_0(tmp_path):
    r = run("solve", DEMO, "--out", tmp_path / "o", "--integer", "--mip-gap", "0.01")
    assert r.exit_code == 0, r.output
    first = r.stdout.splitlines()[1]  # after the instance line
    assert first.startswith("plan for demo: optimal within the requested gap: at most ")
    assert "(allowed gap 1 %)" in first and "HiGHS" in first
    for contradiction in ("its status", "NOT PROVEN", "Optimal"):
        assert contradiction not in r.stdout, contradiction
    status = json.loads((tmp_path / "o" / "summary.json").read_text())["status"]
    assert status["requested_gap"] == 0.01 and status["solution"] in ("feasible", "optimal")


def test_the_decomposition_within_its_tolerance_is_not_called_unproven(tmp_path):
    r = run("solve", DEMO, "--out", tmp_path / "o", "--engine", "decompose", "--backend", "serial")
    assert r.exit_code == 0, r.output
    assert "NOT PROVEN" not in r.output
    first = r.stdout.splitlines()[1]
    assert first.startswith("plan for demo: optimal") and "decomposition" in first


def test_the_solve_summary_speaks_plainly_and_says_its_cost_is_in_sample(tmp_path):
    r = run("solve", DEMO, "--out", tmp_path / "o")
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert "expected cost over the plan's 10 demand scenarios (in-sample)" in out
    assert "cost of the bad weeks (CVaR):" in out and "CVaR_" not in out
    assert "is fully used" in out and " binds " not in out
    assert "variables" not in out and "constraints" not in out  # model size: summary.json


def test_the_report_names_its_costs_folds_solver_lines_and_explains_its_terms(tmp_path):
    r = run("report", DEMO, "--out", tmp_path / "rep", "--frontier-points", "3", "--service-points", "0",
            "--oos-paths", "30")
    assert r.exit_code == 0, r.output
    assert r.stderr.count("HiGHS stopped") <= 2  # the base solve's; the sweeps' hundreds are not shown
    assert "(in-sample)" in r.stdout and "30 new simulated demand paths (out of sample)" in r.stdout
    assert "value of planning for uncertainty (VSS)" in r.stdout and "value of perfect foresight (EVPI)" in r.stdout
    html = (tmp_path / "rep" / "report.html").read_text()
    for words in ("Value of planning for uncertainty", "Two expected costs of this plan", "Glossary",
                  "Price cut to be used more", "Saving per extra unit", "week-to-week correlated noise"):
        assert words in html, words
    for jargon in ("HiGHS one-column", "its status:", "AR(1) 0."):
        assert jargon not in html, jargon


def test_simulate_explains_every_policy_and_that_its_costs_are_out_of_sample(tmp_path):
    r = run("simulate", DEMO, "--out", tmp_path / "sim", "--paths", "20", "--drivers", "expected",
            "--policies", "static,rolling_mean,basestock", "--tune-paths", "10")
    assert r.exit_code == 0, r.output
    assert "over the same 20 simulated demand paths (out of sample" in r.stdout
    assert "rolling_mean: re-plan every week from the drivers actually there, for average demand only" in r.stdout
    assert "basestock: a simple rule tuned by simulation" in r.stdout
    assert "static: follow the plan made today" in r.stdout


@pytest.mark.slow  # CI's second step: keeps the README's test command within its time
def test_estimate_funnel_says_what_it_fits_before_fitting(tmp_path):
    from optplan.estimate.synthetic import generate_applicant_log

    log, _, observed = generate_applicant_log(1500, seed=2, depots=2, weeks=30)
    path = tmp_path / "applicants.csv"
    log.to_csv(path, index=False)
    r = run("estimate", "funnel", path, "--out", tmp_path / "est", "--bootstrap", "2", "--observed-until", observed)
    assert r.exit_code == 0, r.output
    lines = [line for line in r.stderr.splitlines() if line.startswith("[optplan]")]
    assert lines[0] == "[optplan] funnel: reading the applicant log applicants.csv"
    assert lines[1].startswith("[optplan] funnel: fitting 3 stage transitions on ")
    quiet = run("estimate", "funnel", path, "--out", tmp_path / "est2", "--bootstrap", "2", "--observed-until",
                observed, "--quiet")
    assert quiet.exit_code == 0 and "[optplan]" not in quiet.stderr and "bootstrap" not in quiet.stderr


def test_runs_of_alike_progress_lines_fold_into_one():
    import io
    import logging

    from optplan.cli.common import FoldingHandler

    stream = io.StringIO()
    handler = FoldingHandler(stream)
    handler.setFormatter(logging.Formatter("[optplan] %(message)s"))
    log = logging.getLogger("optplan.test_folding")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        for i in range(84):
            log.info("HiGHS stopped after %.2f s: Optimal", i / 100)
        log.info("report: frontier in 2.9 s")
        handler.flush_folded()
    finally:
        log.removeHandler(handler)
    assert stream.getvalue().splitlines() == [
        "[optplan] HiGHS stopped after 0.00 s: Optimal",
        "[optplan]   ... 82 more like it, the last:",
        "[optplan] HiGHS stopped after 0.83 s: Optimal",
        "[optplan] report: frontier in 2.9 s",
    ]


def test_a_command_that_repeats_progress_lines_folds_them_before_its_summary(tmp_path):
    """The decomposition logs a line per round: the run's first and last are shown with a
    count between them, and that count comes before the plan's summary (the handler is
    flushed when the solve ends, not only when the command exits). Click's runner keeps
    stdout and stderr interleaved in ``output`` in the order they were written."""
    r = run("solve", REPO / "instances" / "world", "--out", tmp_path / "w", "--engine", "decompose",
            "--backend", "serial")
    assert r.exit_code == 0, r.output
    rounds = [line for line in r.stderr.splitlines() if "decomposition round" in line]
    assert len(rounds) == 2 and rounds[0].startswith("[optplan] decomposition round 1:")
    lines = r.output.splitlines()
    folded = next(i for i, line in enumerate(lines) if "more like it, the last:" in line)
    summary = next(i for i, line in enumerate(lines) if line.startswith("plan for world"))
    assert folded < summary


def test_the_lstm_is_labelled_experimental_where_a_user_chooses_it():
    """Issue #30: the rnn model is less accurate than seasonal naive on the shipped stores, so
    the help of both commands that take it says it is experimental (and docs/forecast.md)."""
    text = " ".join(CliRunner().invoke(main, ["forecast", "--help"]).output.split())
    assert "rnn: EXPERIMENTAL" in text
    text = " ".join(CliRunner().invoke(main, ["backtest", "--help"]).output.split())
    assert "rnn: experimental" in text
    docs = (REPO / "docs" / "forecast.md").read_text()
    assert "### rnn: an LSTM quantile model (EXPERIMENTAL" in docs
