"""Escapes found by a second review that tried to break the CLI (session 23): each exits 2 with
a one-line message naming the option, file or field, writes nothing, and is no 'internal
error' (exit 1) or NaN in an output. One test per escape."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import REPO, WALMART_CSV
from test_input_escapes import DEMO, applicant_log, assert_refused, funnel, run, set_cell

from optplan.cli import main


@pytest.mark.parametrize("args,option", [
    (["simulate", DEMO, "--paths", "2", "--policies", "static", "--noise", "nan"], "--noise"),
    (["simulate", DEMO, "--paths", "2", "--policies", "static", "--noise-ar", "nan"], "--noise-ar"),
    (["solve", DEMO, "--time-limit", "inf"], "--time-limit"),
    (["generate", "--budget-tightness", "nan"], "--budget-tightness"),
    (["report", DEMO, "--tornado-change", "nan"], "--tornado-change"),
])
def test_non_finite_numbers_are_refused_naming_the_option(tmp_path, args, option):
    code, errors = run(*args, "--out", tmp_path / "out")
    assert_refused(code, errors, option, "a finite number", "found")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args", [["generate"], ["generate-logs"], ["simulate", DEMO, "--paths", "2", "--policies", "static"]])
@pytest.mark.parametrize("seed", ["-1", str(2**32)])
def test_seeds_outside_what_numpy_takes_are_refused(tmp_path, args, seed):
    code, errors = run(*args, "--seed", seed, "--out", tmp_path / "out")
    assert_refused(code, errors, "--seed", "0 to 4,294,967,295", seed)


def test_out_that_is_a_file_or_under_a_file_is_refused_before_any_work(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("keep me\n")
    for out in (afile, afile / "plan"):
        code, errors = run("solve", DEMO, "--out", out)
        assert_refused(code, errors, "--out", "afile")
    code, errors = run("solve", DEMO, "--out", tmp_path / "o", "--save-mps", tmp_path)
    assert_refused(code, errors, "--save-mps", "an existing folder")
    assert afile.read_text() == "keep me\n"
    # schema's --out names a file: writing it again is fine, a folder there is not
    for _ in range(2):
        code, errors = run("schema", "--out", tmp_path / "schema.json")
        assert code == 0, errors
    code, errors = run("schema", "--out", tmp_path)
    assert_refused(code, errors, "--out", "a file path")


def test_generate_name_too_long_and_simulate_without_policies(tmp_path):
    code, errors = run("generate", "--name", "x" * 300, "--out", tmp_path / "g")
    assert_refused(code, errors, "--name", "300 characters")
    code, errors = run("simulate", DEMO, "--paths", "2", "--policies", "", "--out", tmp_path / "s")
    assert_refused(code, errors, "--policies", "nothing")
    code, errors = run("simulate", DEMO, "--paths", "2", "--policies", "static,foo", "--out", tmp_path / "s")
    assert_refused(code, errors, "--policies", "static,foo")


def test_an_exchange_rate_that_underflows_is_refused(tmp_path):
    """fx_rate 1e-310 (a subnormal: the money converted by it is NaN/inf downstream) is
    refused by the schema's lower bound 1e-6."""
    import optplan

    inst = tmp_path / "world"
    optplan.generate_instance(depots=4, weeks=6, scenarios=2, seed=0, countries=("US", "DE")).write(inst)
    table = pd.read_csv(inst / "countries.csv", dtype=str, keep_default_na=False)
    row = int(table.index[table["currency"] != "USD"][0])
    set_cell(inst / "countries.csv", row, "fx_rate", "1e-310")
    code, errors = run("solve", inst, "--out", tmp_path / "out")
    assert_refused(code, errors, "countries.csv", "fx_rate")
    assert not (tmp_path / "out").exists()


def test_retention_from_a_log_too_short_to_score_is_refused_not_nan(tmp_path):
    path = tmp_path / "activity.csv"
    path.write_text("driver_id,depot,week,blocks\nR1,D1,2026-01-05,4\nR1,D1,2026-01-12,3\n")
    code, errors = run("estimate", "retention", path, "--out", tmp_path / "ret")
    assert_refused(code, errors, "activity.csv", "week", "depot D1", "too few weeks")
    assert not (tmp_path / "ret").exists()


ROWS = [f"A{i},D1,ads,2026-01-05,2026-01-12,2026-01-19,{'2026-01-26' if i % 3 else ''},{30 + i % 20}" for i in range(60)]


def log_with(tmp_path: Path, row: int, column: str, value: str) -> Path:
    path = applicant_log(tmp_path, ROWS)
    text = path.read_text().replace("first_block\n", "first_block,age\n", 1)
    path.write_text(text)
    set_cell(path, row, column, value)
    return path


@pytest.mark.parametrize("column,value,fragments", [
    ("age", "inf", ("age", "a finite number", "'inf'")),
    ("channel", "", ("applicants.csv:2", "channel", "an empty cell")),
])
def test_applicant_log_typos_are_refused(tmp_path, column, value, fragments):
    code, errors = funnel(log_with(tmp_path, 0, column, value), tmp_path)
    assert_refused(code, errors, *fragments)


def test_a_log_where_nobody_passes_two_stages_fits_with_warnings(tmp_path):
    """onboarding and first_block empty for everyone: both stages get hazard 0 with the
    command's warning, and the held-back calibration (nothing to score there) no longer
    crashes."""
    rows = [f"A{i},D1,ads,2026-01-05,2026-01-12,," for i in range(60)]
    code, errors = funnel(applicant_log(tmp_path, rows), tmp_path, "--observed-until", "2026-06-30")
    assert code == 0, errors
    summary = pd.read_csv(tmp_path / "est" / "channel_summary.csv")
    assert summary.loc[0, "conversion"] == pytest.approx(0.0, abs=1e-12)


def test_pipeline_with_one_log_given_is_refused(tmp_path):
    """inputs.applicants without inputs.activity used to be ignored for synthetic logs."""
    import shutil



    for f in ("depots.csv", "channels.csv", "settings.yaml"):
        shutil.copy(REPO / "examples" / "pipeline" / f, tmp_path / f)
    (tmp_path / "history.csv").write_text("depot,week_start,blocks\n")
    (tmp_path / "applicants.csv").write_text("applicant_id,depot,channel,applied\n")
    (tmp_path / "p.yaml").write_text("name: p\ninputs:\n  applicants: applicants.csv\n  history: history.csv\n"
                                     "  depots: depots.csv\n  channels: channels.csv\n  settings: settings.yaml\n"
                                     "generate_logs: {depots: 2}\n")
    code, errors = run("pipeline", tmp_path / "p.yaml", "--out", tmp_path / "out")
    assert_refused(code, errors, "p.yaml", "inputs.activity", "beside inputs.applicants")


def test_an_activity_week_on_another_weekday_than_the_rest_is_refused(tmp_path):
    path = tmp_path / "activity.csv"
    path.write_text("driver_id,depot,week,blocks\nR1,D1,2026-01-05,4\nR1,D1,2026-01-12,3\nR1,D1,2026-01-20,3\n")
    code, errors = run("estimate", "retention", path, "--out", tmp_path / "ret")
    assert_refused(code, errors, "activity.csv:4", "week", "a Monday like the log's other weeks", "a Tuesday")


def test_a_yaml_key_given_twice_and_an_empty_file_name_are_refused(tmp_path):
    """PyYAML keeps the last of two equal keys silently; an empty files entry silently meant
    the default file; a NUL byte in a file name was an internal error."""
    from test_input_escapes import demo, set_manifest_line

    inst = demo(tmp_path)
    with open(inst / "instance.yaml", "a") as f:
        f.write("name: again\n")
    code, errors = run("validate", inst)
    assert_refused(code, errors, "instance.yaml", "'name' given twice", "first on line")
    inst = demo(tmp_path / "b")
    set_manifest_line(inst, "  depots: depots.csv", '  depots: ""')
    code, errors = run("validate", inst)
    assert_refused(code, errors, "instance.yaml", "files.depots")
    set_manifest_line(inst, '  depots: ""', '  depots: "dep\\0ots.csv"')
    code, errors = run("validate", inst)
    assert_refused(code, errors, "instance.yaml", "files.depots")


def test_true_where_a_number_is_due_is_refused(tmp_path):
    """budgets.total: true was read as a budget of 1.0."""
    from test_input_escapes import demo

    inst = demo(tmp_path)
    text = (inst / "instance.yaml").read_text()
    import re

    (inst / "instance.yaml").write_text(re.sub(r"\n  total: [0-9.]+\n", "\n  total: true\n", text, count=1))
    code, errors = run("validate", inst)
    assert_refused(code, errors, "instance.yaml", "budgets.total", "a number, not true")


def test_a_pipeline_out_that_holds_its_inputs_is_refused(tmp_path):
    """out: . would write the step folders among the config's own inputs."""
    import shutil



    src = REPO / "examples" / "pipeline"
    for f in ("pipeline.yaml", "depots.csv", "channels.csv", "settings.yaml"):
        shutil.copy(src / f, tmp_path / f)
    shutil.copy(WALMART_CSV, tmp_path / "history.csv")
    text = (tmp_path / "pipeline.yaml").read_text()
    text = text.replace("out: ../../out/pipeline_example", "out: .").replace(
        "history: ../data/walmart_store_weekly_sales_30.csv", "history: history.csv")
    (tmp_path / "pipeline.yaml").write_text(text)
    before = sorted(p.name for p in tmp_path.iterdir())
    code, errors = run("pipeline", tmp_path / "pipeline.yaml")
    assert_refused(code, errors, "pipeline.yaml", "'out'", "does not contain, an input")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize("section,line,field", [
    ("estimate:", "  observed_until: 2026-13-01", "estimate.observed_until"),
    ("history:", "  country: XX", "history.country"),
    ("forecast:", "  periods: 5x3", "forecast.periods"),
    ("history:", "  depots: {\"1\": D001, \"2\": D001}", "history.depots"),
])
def test_pipeline_settings_are_checked_before_any_step_and_named_by_their_field(tmp_path, section, line, field):
    import shutil



    src = REPO / "examples" / "pipeline"
    for f in ("pipeline.yaml", "depots.csv", "channels.csv", "settings.yaml"):
        shutil.copy(src / f, tmp_path / f)
    shutil.copy(WALMART_CSV, tmp_path / "history.csv")
    text = (tmp_path / "pipeline.yaml").read_text().replace(
        "history: ../data/walmart_store_weekly_sales_30.csv", "history: history.csv")
    if line.startswith("  depots:"):  # the example has a depots mapping: replace it
        text = text.replace('  depots: {"1": D001, "2": D002, "3": D003, "4": D004, "5": D005}', line, 1)
    else:
        text = text.replace(f"\n{section}\n", f"\n{section}\n{line}\n", 1)
    (tmp_path / "pipeline.yaml").write_text(text)
    code, errors = run("pipeline", tmp_path / "pipeline.yaml", "--out", tmp_path / "out")
    assert_refused(code, errors, "pipeline.yaml", f"'{field}'")
    assert not any("--" in e.split("expected")[0] for e in errors)  # no command-line flag named
    assert not (tmp_path / "out").exists()


def test_state_week_beyond_the_horizon_is_refused_before_solving(tmp_path, monkeypatch):
    import optplan

    def no_solve(*a, **k):
        raise AssertionError("solved before checking --week")

    monkeypatch.setattr(optplan, "solve", no_solve)
    code, errors = run("state", DEMO, "--week", "13", "--out", tmp_path / "st")
    assert_refused(code, errors, "--week", "1..12", "13")


def test_a_non_finite_scale_in_set_is_one_line(tmp_path):
    code, errors = run("solve", DEMO, "--out", tmp_path / "o", "--set", "demand.blocks=*nan")
    assert_refused(code, errors, "--set", "demand.blocks", "finite", "*nan")
    assert len(errors) == 1


def test_a_mostly_numeric_covariate_with_text_is_read_as_categories_with_a_note(tmp_path):
    """'abc' among ages may be a typo, 'K1A 0B6' among zip codes a real category: the column
    is read as categories (as before the review) and the command says so."""
    from optplan.estimate.logs import read_applicant_log

    _, _, notes = read_applicant_log(log_with(tmp_path, 0, "age", "abc"))
    assert any(k.startswith("covariate_age_read_as_categories_for_1_cells") for k in notes), notes


def test_activity_weeks_on_one_weekday_other_than_monday_are_accepted(tmp_path):
    """Retail weeks named by their Sunday: the same retention as the Monday log (whole weeks
    between rows); a row on another weekday than the rest is refused."""
    rows = ["driver_id,depot,week,blocks"] + [f"R{d},D1,{(pd.Timestamp('2026-01-05') + pd.Timedelta(weeks=w)).date()},4"
                                               for d in range(30) for w in range(d % 7 + 10)]
    (tmp_path / "mon.csv").write_text("\n".join(rows) + "\n")
    sun = [r if r.startswith("driver") else r.replace(r.split(",")[2], str((pd.Timestamp(r.split(",")[2])
                                                                            - pd.Timedelta(days=1)).date()))
           for r in rows]
    (tmp_path / "sun.csv").write_text("\n".join(sun) + "\n")
    a = run("estimate", "retention", tmp_path / "mon.csv", "--out", tmp_path / "m", "--bootstrap", "0")
    b = run("estimate", "retention", tmp_path / "sun.csv", "--out", tmp_path / "s", "--bootstrap", "0")
    assert a[0] == 0 and b[0] == 0, (a, b)
    ra = pd.read_csv(tmp_path / "m" / "retention.csv")
    rb = pd.read_csv(tmp_path / "s" / "retention.csv")
    np.testing.assert_allclose(ra["retention"], rb["retention"], rtol=1e-12)


def test_a_depot_too_new_to_score_is_left_out_with_a_note(tmp_path):
    rows = ["driver_id,depot,week,blocks"] + [f"R{d},D1,{(pd.Timestamp('2026-01-05') + pd.Timedelta(weeks=w)).date()},4"
                                               for d in range(30) for w in range(d % 7 + 10)]
    rows += [f"N1,D2,{(pd.Timestamp('2026-03-09') + pd.Timedelta(weeks=w)).date()},4" for w in range(3)]
    (tmp_path / "act.csv").write_text("\n".join(rows) + "\n")
    r = CliRunner().invoke(main, ["estimate", "retention", str(tmp_path / "act.csv"), "--out", str(tmp_path / "o"),
                                  "--bootstrap", "0"])
    assert r.exit_code == 0, r.output
    assert "note: left out (too few weeks to score retention): D2" in r.output
    table = pd.read_csv(tmp_path / "o" / "retention.csv")
    assert table["depot"].tolist() == ["D1"] and np.isfinite(table["retention"]).all()


def test_yaml_merge_keys_still_merge_and_true_inside_a_mapping_is_refused(tmp_path):
    from test_input_escapes import demo

    from optplan.io.inputs import read_yaml_mapping

    path = tmp_path / "a.yaml"
    path.write_text("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  y: 3\n")
    assert read_yaml_mapping(path, "x")["c"] == {"x": 1, "y": 3}
    inst = demo(tmp_path)
    text = (inst / "instance.yaml").read_text()
    assert "  regions: {}" in text
    (inst / "instance.yaml").write_text(text.replace("  regions: {}", "  regions: {R01: true}"))
    code, errors = run("validate", inst)
    assert_refused(code, errors, "budgets.regions", "a number, not true")
