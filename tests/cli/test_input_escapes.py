"""Every escape listed in issue #16 ("Bad input that still escapes"), through the real CLI:
each now exits 2 with one-line messages naming the file (and field or line), nothing written,
no 'internal error'. One test per escape, so a regression names the escape it reopens."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import REPO

from optplan.cli import main

DEMO = REPO / "instances" / "demo"
EXIT_BAD_INPUT = 2


def run(*args) -> tuple[int, list[str]]:
    r = CliRunner().invoke(main, list(map(str, args)))
    return r.exit_code, [line for line in r.output.splitlines() if line.startswith(("error:", "internal error"))]


def demo(tmp_path: Path) -> Path:
    inst = tmp_path / "inst"
    shutil.copytree(DEMO, inst)
    return inst


def set_manifest_line(inst: Path, old: str, new: str) -> None:
    text = (inst / "instance.yaml").read_text()
    assert old in text
    (inst / "instance.yaml").write_text(text.replace(old, new))


def set_cell(file: Path, row: int, column: str, value: str) -> None:
    df = pd.read_csv(file, dtype=str, keep_default_na=False)
    df.loc[row, column] = value
    df.to_csv(file, index=False)


def assert_refused(code: int, errors: list[str], *fragments: str) -> None:
    assert code == EXIT_BAD_INPUT, errors
    assert errors and not any(e.startswith("internal error") for e in errors), errors
    assert any(all(f in e for f in fragments) for e in errors), errors
    assert all(len(e) < 400 for e in errors), "a message echoed a whole oversized value"


def solve_refused(inst: Path, tmp_path: Path, *fragments: str) -> None:
    out = tmp_path / "out"
    code, errors = run("solve", inst, "--out", out)
    assert_refused(code, errors, *fragments)
    assert not out.exists(), "nothing may be written for bad input"


# ------------------------------------------------------------------ instance files


def test_header_duplicate_after_trimming(tmp_path):
    inst = demo(tmp_path)
    text = (inst / "depots.csv").read_text().splitlines()
    text[0] += ", depot"
    text[1:] = [line + ",X" for line in text[1:]]
    (inst / "depots.csv").write_text("\n".join(text) + "\n")
    solve_refused(inst, tmp_path, "depots.csv:1", "'depot'", "each column name once")


def test_unquoted_impossible_date_names_the_field(tmp_path):
    inst = demo(tmp_path)
    set_manifest_line(inst, "start_date: '2027-01-04'", "start_date: 2027-02-29")
    solve_refused(inst, tmp_path, "instance.yaml", "horizon.start_date", "2027-02-29")


@pytest.mark.parametrize("date", ["2262-03-01", "1600-01-03"])
def test_dates_beyond_the_supported_range(tmp_path, date):
    inst = demo(tmp_path)
    set_manifest_line(inst, "start_date: '2027-01-04'", f"start_date: '{date}'")
    code, errors = run("validate", inst)
    assert_refused(code, errors, "instance.yaml", "horizon.start_date", "1900-01-01 to 2200-01-01")


def test_directory_where_a_table_belongs(tmp_path):
    inst = demo(tmp_path)
    (inst / "depots.csv").unlink()
    (inst / "depots.csv").mkdir()
    solve_refused(inst, tmp_path, "depots.csv", "a directory")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this OS")
def test_fifo_where_a_table_belongs_does_not_block(tmp_path):
    inst = demo(tmp_path)
    (inst / "depots.csv").unlink()
    os.mkfifo(inst / "depots.csv")
    solve_refused(inst, tmp_path, "depots.csv", "FIFO")


def test_file_name_too_long_for_the_os(tmp_path):
    inst = demo(tmp_path)
    set_manifest_line(inst, "depots: depots.csv", f"depots: {'a' * 300}.csv")
    solve_refused(inst, tmp_path, "at most 255 bytes")


def test_integer_past_int64(tmp_path):
    inst = demo(tmp_path)
    set_cell(inst / "demand.csv", 0, "week", "99999999999999999999")
    solve_refused(inst, tmp_path, "demand.csv:2", "week", "[1, 520]")


def test_integer_past_int64_in_a_float_field(tmp_path):
    inst = demo(tmp_path)
    set_cell(inst / "pipeline.csv", 0, "new_drivers", "99999999999999999999999")
    solve_refused(inst, tmp_path, "pipeline.csv:2", "new_drivers")


def test_huge_incentive_segment(tmp_path):
    inst = demo(tmp_path)
    set_cell(inst / "incentives.csv", 0, "max_spend", "1e15")
    solve_refused(inst, tmp_path, "incentives.csv:2", "max_spend", "1e15")


@pytest.mark.parametrize("field", ["unserved_cost_per_block", "idle_cost_per_block"])
def test_infinite_manifest_value(tmp_path, field):
    inst = demo(tmp_path)
    text = (inst / "instance.yaml").read_text()
    import re

    (inst / "instance.yaml").write_text(re.sub(rf"{field}: [0-9.]+", f"{field}: .inf", text))
    solve_refused(inst, tmp_path, "instance.yaml", f"penalties.{field}", "finite")


def test_nan_manifest_budget(tmp_path):
    inst = demo(tmp_path)
    set_manifest_line(inst, "total: 7025.0", "total: .nan")
    solve_refused(inst, tmp_path, "instance.yaml", "budgets.total")


def test_nul_byte_in_a_cell(tmp_path):
    inst = demo(tmp_path)
    data = (inst / "demand.csv").read_bytes().split(b"\n")
    data[1] = data[1][:-3] + b"\x00" + data[1][-3:]
    (inst / "demand.csv").write_bytes(b"\n".join(data))
    solve_refused(inst, tmp_path, "demand.csv:2", "NUL")


def test_absurd_cost_per_applicant(tmp_path):
    inst = demo(tmp_path)
    set_cell(inst / "channels.csv", 0, "cost_per_applicant", "1e+308")
    solve_refused(inst, tmp_path, "channels.csv:2", "cost_per_applicant", "1e+308")


def test_oversized_cell_is_named_not_echoed(tmp_path):
    inst = demo(tmp_path)
    set_cell(inst / "depots.csv", 0, "region", "R" * 200_000)
    solve_refused(inst, tmp_path, "depots.csv:2", "region", "200,000 characters")


def test_long_id(tmp_path):
    inst = demo(tmp_path)
    for file in ("depots.csv", "demand.csv", "pipeline.csv", "incentives.csv"):
        df = pd.read_csv(inst / file, dtype=str, keep_default_na=False)
        df["depot"] = df["depot"].replace("D001", "D" * 300)
        df.to_csv(inst / file, index=False)
    solve_refused(inst, tmp_path, "depots.csv:2", "depot", "at most 100 characters")


def test_out_equal_to_the_instance_folder(tmp_path):
    inst = demo(tmp_path)
    before = {p.name: p.read_bytes() for p in inst.iterdir()}
    code, errors = run("solve", inst, "--out", inst)
    assert_refused(code, errors, "--out")
    assert {p.name: p.read_bytes() for p in inst.iterdir()} == before


def test_big_table_of_duplicates_is_reported_briefly(tmp_path):
    """A table of 200,000 repeated rows: the first 25 repeats worded, the rest counted (it
    used to word every repeat; the 50 MB case is in benchmarks/bench_validation.py)."""
    inst = demo(tmp_path)
    lines = (inst / "demand.csv").read_text().splitlines()
    body = lines[1:] * (200_000 // (len(lines) - 1) + 1)
    (inst / "demand.csv").write_text("\n".join([lines[0], *body]) + "\n")
    code, out = run("validate", inst)
    assert code == EXIT_BAD_INPUT
    assert any("a duplicate of line 2: depot='D001', week=1, scenario='S001'" in e for e in out), out[:3]
    assert sum("a duplicate of line" in e for e in out) == 25
    assert any("more problems" in e for e in out)


# ------------------------------------------------------------------ histories and logs

HISTORY = "depot,week_start,blocks\n" + "".join(
    f"D1,{d.date()},{100 + i % 7}\n" for i, d in enumerate(pd.date_range("2024-01-01", periods=60, freq="7D")))


def history(tmp_path: Path, edit=None) -> Path:
    lines = HISTORY.splitlines()
    if edit:
        lines = edit(lines)
    path = tmp_path / "h.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def forecast_refused(path: Path, tmp_path: Path, *fragments: str) -> None:
    out = tmp_path / "fc"
    code, errors = run("forecast", path, "--out", out, "--horizon", 4, "--no-plots")
    assert_refused(code, errors, *fragments)
    assert not out.exists()


def test_history_date_with_a_time_zone(tmp_path):
    def edit(lines):
        lines[5] = lines[5].replace(",2024", ",2024").split(",")
        lines[5][1] += "T00:00:00+02:00"
        lines[5] = ",".join(lines[5])
        return lines

    forecast_refused(history(tmp_path, edit), tmp_path, "h.csv:6", "week_start", "no time zone")


def test_history_absurd_demand(tmp_path):
    def edit(lines):
        lines[3] = lines[3].rsplit(",", 1)[0] + ",1e308"
        return lines

    forecast_refused(history(tmp_path, edit), tmp_path, "h.csv:4", "blocks", "at most 1e+09")


def test_history_header_duplicate_after_trimming(tmp_path):
    def edit(lines):
        lines[0] += ", blocks"
        return [lines[0]] + [line + ",1" for line in lines[1:]]

    forecast_refused(history(tmp_path, edit), tmp_path, "h.csv:1", "blocks", "each column name once")


def test_history_long_depot_id(tmp_path):
    def edit(lines):
        return [lines[0]] + [line.replace("D1,", "D" * 300 + ",", 1) for line in lines[1:]]

    forecast_refused(history(tmp_path, edit), tmp_path, "h.csv:2", "depot", "at most 100 characters")


def test_history_oversized_cell(tmp_path):
    def edit(lines):
        lines[2] = lines[2].rsplit(",", 1)[0] + "," + "9" * 100_000
        return lines

    forecast_refused(history(tmp_path, edit), tmp_path, "h.csv:3", "blocks", "100,000 characters")


def test_history_is_a_directory(tmp_path):
    (tmp_path / "dir.csv").mkdir()
    forecast_refused(tmp_path / "dir.csv", tmp_path, "dir.csv", "a directory")


def applicant_log(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "applicants.csv"
    path.write_text("applicant_id,depot,channel,applied,background_check,onboarding,first_block\n" + "".join(
        r + "\n" for r in rows))
    return path


def funnel(path: Path, tmp_path: Path, *extra) -> tuple[int, list[str]]:
    return run("estimate", "funnel", path, "--out", tmp_path / "est", "--bootstrap", 5, *extra)


def test_header_only_applicant_log(tmp_path):
    code, errors = funnel(applicant_log(tmp_path, []), tmp_path)
    assert_refused(code, errors, "applicants.csv", "no rows")


def test_header_only_activity_log(tmp_path):
    path = tmp_path / "activity.csv"
    path.write_text("driver_id,depot,week,blocks\n")
    code, errors = run("estimate", "retention", path, "--out", tmp_path / "ret")
    assert_refused(code, errors, "activity.csv", "no rows")


def test_infinite_blocks_in_the_activity_log(tmp_path):
    path = tmp_path / "activity.csv"
    path.write_text("driver_id,depot,week,blocks\nR1,D1,2026-01-05,4\nR1,D1,2026-01-12,inf\n")
    code, errors = run("estimate", "retention", path, "--out", tmp_path / "ret")
    assert_refused(code, errors, "activity.csv:3", "blocks", "inf")


def test_impossible_observed_until(tmp_path):
    path = applicant_log(tmp_path, ["A1,D1,ads,2026-01-05,2026-01-12,2026-01-19,2026-01-26"])
    code, errors = funnel(path, tmp_path, "--observed-until", "2026-13-01")
    assert_refused(code, errors, "--observed-until", "2026-13-01")


def degenerate(kind: str) -> list[str]:
    days = pd.date_range("2026-01-05", periods=40, freq="7D")
    rows = []
    for i, d in enumerate(days):
        a = d.date()
        if kind == "nobody_last":  # nobody reaches the last stage
            rows.append(f"A{i},D1,ads,{a},{a},{(d + pd.Timedelta(days=7)).date()},")
        elif kind == "one_day":  # every stage on the application day
            rows.append(f"A{i},D1,ads,{a},{a},{a},{a}")
    return rows


@pytest.mark.parametrize("kind,hazard", [("nobody_last", "0"), ("one_day", "1")])
def test_degenerate_logs_fit_with_a_warning(tmp_path, kind, hazard):
    """Well-formed but degenerate logs are not input errors: the stage whose data has one
    outcome only gets that constant hazard, and the command says so (it crashed in sklearn)."""
    r = CliRunner().invoke(main, ["estimate", "funnel", str(applicant_log(tmp_path, degenerate(kind))),
                                  "--out", str(tmp_path / "est"), "--bootstrap", "5", "--observed-until", "2026-12-31"])
    assert r.exit_code == 0, r.output
    assert "onboarding -> first_block: every applicant-week in the log has the same outcome" in r.output
    assert f"weekly hazard taken as {hazard} for everyone" in r.output
    summary = pd.read_csv(tmp_path / "est" / "channel_summary.csv")
    expected = 0.0 if kind == "nobody_last" else 1.0
    assert summary.loc[0, "conversion"] == pytest.approx(expected, abs=1e-9)


def test_single_applicant_log(tmp_path):
    path = applicant_log(tmp_path, ["A1,D1,ads,2026-01-05,2026-01-12,2026-01-19,2026-01-26"])
    code, errors = funnel(path, tmp_path)
    assert code == 0, errors


def test_all_zero_history_gives_valid_json(tmp_path):
    """An all-zero history forecasts zero demand; forecast_summary.json stays valid JSON with
    no NaN (it held NaN before)."""
    import json

    rows = ["depot,week_start,blocks"] + [f"{d},{day.date()},0" for d in ("D1", "D2")
                                          for day in pd.date_range("2023-01-02", periods=120, freq="7D")]
    path = tmp_path / "zero.csv"
    path.write_text("\n".join(rows) + "\n")
    code, errors = run("forecast", path, "--out", tmp_path / "fc", "--horizon", 4, "--no-plots", "--model", "seasonal_naive")
    assert code == 0, errors
    text = (tmp_path / "fc" / "forecast_summary.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-finite {c} in forecast_summary.json"))


@pytest.mark.parametrize("log,header", [("applicants.csv", "applicant_id,depot,channel,applied,background_check,"
                                                           "onboarding,first_block, depot"),
                                        ("activity.csv", "driver_id,depot,week,blocks, blocks")])
def test_log_header_duplicate_after_trimming(tmp_path, log, header):
    path = tmp_path / log
    path.write_text(header + "\n" + ",".join(["x"] * len(header.split(","))) + "\n")
    command = ["estimate", "funnel" if log == "applicants.csv" else "retention", path, "--out", tmp_path / "o"]
    code, errors = run(*command)
    assert_refused(code, errors, f"{log}:1", "each column name once")


def test_funnel_map_and_covariates_through_the_cli(tmp_path):
    header = "id,site,source,signup,bgc,onb,first_trip,vehicle"
    rows = [header] + [f"A{i},D1,ads,2026-01-05,2026-01-07,{'2026-01-12' if i % 2 else ''},"
                       f"{'2026-01-19' if i % 4 == 1 else ''},{'car' if i % 3 else 'bike'}" for i in range(60)]
    path = tmp_path / "raw.csv"
    path.write_text("\n".join(rows) + "\n")
    mapping = "applicant_id=id,depot=site,channel=source,applied=signup,background_check=bgc,onboarding=onb," \
              "first_block=first_trip"
    r = CliRunner().invoke(main, ["estimate", "funnel", str(path), "--map", mapping, "--covariates", "vehicle",
                                  "--bootstrap", "2", "--observed-until", "2026-03-01", "--out", str(tmp_path / "est")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "est" / "yield.csv").is_file()
    code, errors = run("estimate", "funnel", path, "--map", "applied", "--out", tmp_path / "e2")
    assert_refused(code, errors, "--map", "OURS=THEIRS")
    code, errors = run("estimate", "funnel", path, "--map", mapping, "--covariates", "colour", "--out", tmp_path / "e3")
    assert_refused(code, errors, "raw.csv:1", "colour")


@pytest.mark.parametrize("engine", ["auto", "dp"])
def test_incentive_segment_of_1e9_solves_within_memory(tmp_path, engine):
    """The issue's segment of 1e9 (within the bounds now) died with a 179 GiB MemoryError;
    it solves, by HiGHS and by the DP."""
    inst = demo(tmp_path)
    set_cell(inst / "incentives.csv", 0, "max_spend", "1e9")
    r = CliRunner().invoke(main, ["solve", str(inst), "--out", str(tmp_path / "o"), "--engine", engine])
    assert r.exit_code == 0, r.output
