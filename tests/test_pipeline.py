"""One command from data to report (issue #14 part 4): the shipped example config runs end
to end; a re-run skips every step; a change re-runs exactly the steps that depend on it;
the same config gives the same files; a bad config is one line per problem, exit 2."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from conftest import REPO, WALMART_CSV

import optplan
from optplan.cli import main

EXAMPLE = REPO / "examples" / "pipeline"
HISTORY = WALMART_CSV
FAST = {"estimate": {"bootstrap": 2, "latent_classes": 1}, "generate_logs": {"depots": 5, "applicants": 4000, "drivers": 800, "seed": 1},
        "report": {"enabled": True, "frontier_points": 2, "service_points": 0, "oos_paths": 20}}


def run(*args):
    r = CliRunner().invoke(main, ["pipeline", *map(str, args)])
    return r.exit_code, r.output


@pytest.mark.slow  # the whole shipped example (about 20 s); tests/test_docs_commands.py runs it too
def test_the_shipped_example_runs_end_to_end_and_reruns_nothing(tmp_path):
    """examples/pipeline/pipeline.yaml as shipped (synthetic logs, five of the shipped stores)."""
    assert HISTORY.is_file(), f"the shipped store history is expected at {HISTORY}"
    code, out = run(EXAMPLE / "pipeline.yaml", "--out", tmp_path / "run")
    assert code == 0, out
    manifest = json.loads((tmp_path / "run" / "pipeline.json").read_text())
    assert list(manifest["steps"]) == ["logs", "funnel", "retention", "history", "forecast", "instance", "plan", "report"]
    assert all(s["status"] == "ran" for s in manifest["steps"].values())
    inst = optplan.load_instance(tmp_path / "run" / "instance")
    assert inst.depots == ["D001", "D002", "D003", "D004", "D005"] and inst.n_weeks == 13
    assert str(inst.manifest.horizon.start_date) == "2012-10-27"  # the forecast's first week
    assert (tmp_path / "run" / "report" / "report.html").is_file()
    assert json.loads((tmp_path / "run" / "plan" / "summary.json").read_text())["status"]["solution"] == "optimal"
    code, out = run(EXAMPLE / "pipeline.yaml", "--out", tmp_path / "run")
    assert code == 0 and "ran nothing" in out, out


@pytest.fixture
def config(tmp_path) -> Path:
    """A copy of the example, made fast, with the history by absolute path."""
    folder = tmp_path / "cfg"
    shutil.copytree(EXAMPLE, folder)
    cfg = yaml.safe_load((folder / "pipeline.yaml").read_text())
    cfg["inputs"]["history"] = str(HISTORY)
    cfg["out"] = str(tmp_path / "out")
    cfg.update(FAST)
    (folder / "pipeline.yaml").write_text(yaml.safe_dump(cfg))
    return folder / "pipeline.yaml"


def hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "pipeline.json"}


@pytest.mark.slow  # about 30 s: CI's second step keeps the README's test command within its time
def test_the_same_config_gives_the_same_files_and_a_change_reruns_exactly_what_depends_on_it(config, tmp_path):
    """One run, then the same config with --force (the same plan, instance, forecast and funnel files,
    byte for byte: deterministic), then changes that rerun exactly the steps they feed (one test:
    each full run costs about 10 s of CI's second step)."""
    code, out = run(config)
    assert code == 0, out
    first = hashes(tmp_path / "out")
    assert run(config, "--force")[0] == 0
    second = hashes(tmp_path / "out")
    plan_files = {k: v for k, v in first.items() if k.startswith(("plan/", "instance/", "forecast/", "funnel/"))}
    assert plan_files and all(second[k] == v for k, v in plan_files.items())
    channels = config.parent / "channels.csv"
    channels.write_text(channels.read_text().replace("referral,40,", "referral,45,"))
    code, out = run(config)
    assert code == 0, out
    assert "ran instance, plan, report; skipped logs, funnel, retention, history, forecast" in out
    cfg = yaml.safe_load(config.read_text())
    cfg["forecast"]["scenarios"] = 5
    config.write_text(yaml.safe_dump(cfg))
    code, out = run(config)
    assert "ran forecast, instance, plan, report; skipped logs, funnel, retention, history" in out
    code, out = run(config, "--quiet")  # after a run that printed progress in this process: one line
    assert code == 0 and out.strip().splitlines() == [next(x for x in out.splitlines() if x.startswith("ran nothing"))]


def test_bad_configs_are_one_line_each(config, tmp_path):
    cfg = yaml.safe_load(config.read_text())
    bad = dict(cfg, surprise=1)
    bad["inputs"] = dict(cfg["inputs"], depots="nowhere.csv")
    (config.parent / "bad.yaml").write_text(yaml.safe_dump(bad))
    code, out = run(config.parent / "bad.yaml")
    assert code == 2, out
    assert "bad.yaml" in out and "surprise" in out
    cfg["history"]["depots"] = {"999": "D001"}
    (config.parent / "bad2.yaml").write_text(yaml.safe_dump(cfg))
    code, out = run(config.parent / "bad2.yaml")
    assert code == 2 and "history.depots" in out and "999" in out, out
    settings = config.parent / "settings.yaml"
    settings.write_text(settings.read_text().replace("  currency: USD", "  currency: USD\n  weeks: 8"))
    code, out = run(config)
    assert code == 2 and "horizon.weeks" in out and "13 (the forecast's)" in out, out


def _mutated(tmp_path, what: str) -> Path:
    """A copy of the shipped example (run into tmp_path/'run') with one input broken."""
    folder = tmp_path / "cfg"
    shutil.copytree(EXAMPLE, folder)
    cfg = yaml.safe_load((folder / "pipeline.yaml").read_text())
    cfg["inputs"]["history"] = str(HISTORY)
    cfg["out"] = str(tmp_path / "run")
    settings = yaml.safe_load((folder / "settings.yaml").read_text())
    depots, channels = (folder / "depots.csv").read_text(), (folder / "channels.csv").read_text()
    if what == "depots without region":
        lines = [",".join(c for i, c in enumerate(line.split(",")) if i != 1) for line in depots.splitlines()]
        (folder / "depots.csv").write_text("\n".join(lines) + "\n")
    elif what == "an extra depot":
        (folder / "depots.csv").write_text(depots + depots.splitlines()[-1].replace("D005", "D006") + "\n")
    elif what == "a channel cost of nan":
        head, first, *rest = channels.splitlines()
        cols = head.split(",")
        cells = first.split(",")
        cells[cols.index("cost_per_applicant")] = "nan"
        (folder / "channels.csv").write_text("\n".join([head, ",".join(cells), *rest]) + "\n")
    elif what == "an unknown settings key":
        settings["surprise"] = 1
    elif what == "a negative total budget":
        settings["budgets"]["total"] = -1
    elif what == "a service level of 150 %":
        settings.setdefault("targets", {})["service_level"] = 1.5
    elif what == "a conflicting start date":
        settings["horizon"]["start_date"] = "2013-01-07"
    elif what == "a header-only history":
        (folder / "h.csv").write_text(HISTORY.read_text().splitlines()[0] + "\n")
        cfg["inputs"]["history"] = "h.csv"
    elif what == "an unknown series":
        cfg["history"]["depots"] = {"999": "D001"}
    elif what == "a money per block of 1e-300":
        cfg["history"]["money_per_block"] = 1e-300
    (folder / "settings.yaml").write_text(yaml.safe_dump(settings))
    (folder / "pipeline.yaml").write_text(yaml.safe_dump(cfg))
    return folder / "pipeline.yaml"


@pytest.mark.parametrize("what,file,words", [
    ("depots without region", "depots.csv", "'region'"),
    ("an extra depot", "depots.csv", "'D006', which has no demand history"),
    ("a channel cost of nan", "channels.csv", "cost_per_applicant"),
    ("an unknown settings key", "settings.yaml", "surprise"),
    ("a negative total budget", "settings.yaml", "budgets.total"),
    ("a service level of 150 %", "settings.yaml", "targets.service_level"),
    ("a conflicting start date", "settings.yaml", "2012-10-27 (the forecast's)"),
    ("a header-only history", "h.csv", ""),
    ("an unknown series", "pipeline.yaml", "unknown series 999"),
    ("a money per block of 1e-300", "walmart_store_weekly_sales_30.csv", "as the money-per-block or unit-factor setting"),
])
def test_every_input_is_checked_before_the_first_step_writes(tmp_path, what, file, words):
    """Issue #33: each of these was found by a later step, after the logs, funnel, retention
    and forecast folders were written, and named by an intermediate file (settings_used.yaml)."""
    code, out = run(_mutated(tmp_path, what))
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert code == 2, out
    assert any(e.startswith(f"error: {file}") and words in e for e in errors), errors
    assert "settings_used" not in out and "running" not in out and "--unit-factor" not in out
    assert not (tmp_path / "run").exists(), "nothing may be written before every input is checked"
    if what == "a money per block of 1e-300":  # every one of the 4,290 weeks is too big: the true count, capped lines
        assert len(errors) <= 30 and "4290 problem(s) found" in out and "and 4265 more" in out, out


@pytest.mark.slow  # a whole run up to the plan (about 15 s)
def test_a_step_that_fails_says_truthfully_what_was_kept(config, tmp_path):
    """A plan no budget can buy (a 99.9 % service target on a budget of 1) fails at the plan
    step, after five steps wrote their folders: the message says which are kept and where, the
    failed step leaves nothing, pipeline.json marks it failed, and a re-run resumes."""
    settings = config.parent / "settings.yaml"
    s = yaml.safe_load(settings.read_text())
    s["budgets"] = {"total": 1.0}
    s["targets"] = {"service_level": 0.999}
    settings.write_text(yaml.safe_dump(s))
    code, out = run(config, "--quiet")
    assert code != 0 and "nothing was written" not in out, out
    assert "bootstrap" not in out and "[optplan]" not in out and len(out.strip().splitlines()) == 2, out  # quiet
    assert "step 'plan' failed and left nothing" in out and "logs, funnel, retention, history, forecast, instance" in out
    manifest = json.loads((tmp_path / "out" / "pipeline.json").read_text())
    assert manifest["steps"]["plan"]["status"] == "failed" and not (tmp_path / "out" / "plan").exists()
    assert (tmp_path / "out" / "instance" / "instance.yaml").is_file()
    s["budgets"] = {"total": 60000.0}
    s.pop("targets")
    settings.write_text(yaml.safe_dump(s))
    code, out = run(config)
    assert code == 0 and "skipped logs, funnel, retention, history, forecast" in out, out


def test_bad_replan_sections_are_one_line_each(config):
    cfg = yaml.safe_load(config.read_text())
    for replan, words in (({"week": 0}, "replan.week"), ({"week": "soon"}, "replan.week"),
                          ({"week": 2, "spend": "nowhere.csv"}, "replan.spend")):
        (config.parent / "bad.yaml").write_text(yaml.safe_dump(dict(cfg, replan=replan)))
        code, out = run(config.parent / "bad.yaml")
        errors = [line for line in out.splitlines() if line.startswith("error:")]
        assert code == 2 and any(words in e for e in errors), out
        assert "running" not in out
    for monitor, words in (({"demand": "nowhere.csv"}, "monitor.demand"), ({"demand": "x", "band": [0.9, 0.5]}, "band"),
                           ({}, "monitor.demand")):
        (config.parent / "bad.yaml").write_text(yaml.safe_dump(dict(cfg, monitor=monitor)))
        code, out = run(config.parent / "bad.yaml")
        errors = [line for line in out.splitlines() if line.startswith("error:")]
        assert code == 2 and any(words in e for e in errors), out
        assert "running" not in out


@pytest.mark.slow  # a whole run with the re-plan (about 25 s)
def test_a_weekly_run_replans_from_the_logs(config, tmp_path):
    """Logs that reach into the plan's horizon (the instance starts 2012-10-27; the synthetic
    logs run 47 weeks from 2012-01-02, the last in the plan's week 4): replan.week auto is week
    5; the state step builds the state from the logs and the replan step plans weeks 5..13."""
    cfg = yaml.safe_load(config.read_text())
    cfg["generate_logs"].update(start="2012-01-02", weeks=47)
    cfg["replan"] = {"week": "auto"}
    cfg["monitor"] = {"demand": "seen.csv"}
    config.write_text(yaml.safe_dump(cfg))
    # demand seen in weeks 1..4: each depot's week-1 history level doubled at D003 (blocks/week)
    seen = pd.DataFrame([(d, w, 400.0 * (2 if d == "D003" else 1)) for d in ("D001", "D002", "D003", "D004", "D005")
                         for w in range(1, 5)], columns=["depot", "week", "blocks"])
    seen.to_csv(config.parent / "seen.csv", index=False)
    code, out = run(config)
    assert code == 0, out
    manifest = json.loads((tmp_path / "out" / "pipeline.json").read_text())
    assert list(manifest["steps"]) == ["logs", "funnel", "retention", "history", "forecast", "instance", "plan",
                                       "state", "replan", "monitor", "report"]
    assert "What happened so far" in (tmp_path / "out" / "report" / "report.html").read_text()
    watch = json.loads((tmp_path / "out" / "monitor" / "monitor.json").read_text())
    assert watch["weeks_seen"] == [1, 2, 3, 4] and watch["overall"]["mase"] is not None  # the history's scale
    assert "D003" in {a["where"] for a in watch["alerts"] if a["kind"] == "depot"}
    assert (tmp_path / "out" / "monitor" / "recruiting.csv").is_file()
    state = yaml.safe_load((tmp_path / "out" / "state" / "state.yaml").read_text())
    assert state["week"] == 5 and state["files"]["pipeline"] == "pipeline.csv"
    from_logs = json.loads((tmp_path / "out" / "state" / "from_logs.json").read_text())
    assert from_logs["counts"]["applicants_in_funnel"] > 0 and sum(from_logs["counts"]["drivers_active"].values()) > 0
    this_week = pd.read_csv(tmp_path / "out" / "replan" / "this_week.csv")
    assert len(this_week) and set(this_week["week"]) == {5}
    summary = json.loads((tmp_path / "out" / "replan" / "summary.json").read_text())
    assert summary["status"]["solution"] == "optimal"
    inst = optplan.load_instance(tmp_path / "out" / "replan" / "instance")
    assert inst.n_weeks == 13 - 4
    code, out = run(config)  # a week later nothing new: every step skipped
    assert code == 0 and "ran nothing" in out, out


@pytest.mark.slow  # a whole run to the plan (about 15 s)
def test_raw_real_files_reach_a_plan_in_one_config(config, tmp_path):
    """Issue #30 part 2: Walmart's own day-first dates (05-02-2010), a signup log with its own
    column names, day-first dates and out-of-order rows, and no activity log (depots.csv gives
    the drivers, retention and blocks per driver): one config, a plan, no hand-made files."""
    from optplan.estimate.synthetic import BonusDesign, generate_applicant_log

    folder = config.parent
    raw = pd.read_csv(HISTORY)
    raw["Date"] = pd.to_datetime(raw["Date"]).dt.strftime("%d-%m-%Y")
    raw.to_csv(folder / "sales.csv", index=False)
    # the log offers sign-on bonuses (a bonus column): the instance gets the estimated menu (issue #31 part 5)
    apps, _, _ = generate_applicant_log(3000, seed=2, depots=5, weeks=40, censored_share=0.3, bonus=BonusDesign())
    stages = ["applied", "background_check", "onboarding", "first_block"]
    for s in stages:
        apps[s] = pd.to_datetime(apps[s]).dt.strftime("%d/%m/%Y")
    swap = apps["background_check"].notna() & apps["onboarding"].notna()
    idx = apps.index[swap][:5]  # five applicants with two stages' dates swapped: reordered, said
    apps.loc[idx, ["background_check", "onboarding"]] = apps.loc[idx, ["onboarding", "background_check"]].to_numpy()
    apps = apps.rename(columns={"applicant_id": "signup_id", "applied": "signup_date", "first_block": "first_trip"})
    apps.to_csv(folder / "signups.csv", index=False)
    depots = pd.read_csv(folder / "depots.csv")
    depots["retention"] = 0.97
    depots["blocks_per_driver"] = 3.0
    depots.to_csv(folder / "depots.csv", index=False)
    cfg = yaml.safe_load(config.read_text())
    cfg["inputs"].update(history="sales.csv", applicants="signups.csv", activity=None)
    cfg.pop("generate_logs")
    cfg["estimate"].update(columns={"applicant_id": "signup_id", "applied": "signup_date", "first_block": "first_trip"},
                           on_out_of_order="reorder")
    cfg["report"] = {"enabled": False}
    config.write_text(yaml.safe_dump(cfg))
    code, out = run(config)
    assert code == 0, out
    assert "no activity log: drivers, retention and blocks per driver of 5 depots from depots.csv" in out
    manifest = json.loads((tmp_path / "out" / "pipeline.json").read_text())
    assert list(manifest["steps"]) == ["funnel", "retention", "history", "forecast", "instance", "plan"]
    inst = optplan.load_instance(tmp_path / "out" / "instance")
    assert str(inst.manifest.horizon.start_date) == "2012-10-27"  # day-first read right: the same weeks as ISO
    assert (inst.tables["depots"]["retention"] == 0.97).all()
    menu = inst.tables["bonuses"]
    assert sorted(set(zip(menu["channel"], menu["bonus_per_driver"], strict=True))) == [
        ("job_board", 100.0), ("job_board", 250.0), ("social_ads", 100.0), ("social_ads", 250.0)]
    assert (menu["conversion_uplift"] > 0).all()
    assert json.loads((tmp_path / "out" / "plan" / "summary.json").read_text())["status"]["solution"] == "optimal"
    # without the drivers' columns and without an activity log: one line naming depots.csv, nothing run
    depots.drop(columns=["retention"]).to_csv(folder / "depots.csv", index=False)
    code, out = run(config, "--force")
    assert code == 2 and "error: depots.csv:1: field 'retention' expected the depots' drivers, weekly retention" in out
    assert "when inputs.activity is null" in out and "running" not in out
