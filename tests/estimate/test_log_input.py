"""Bad and messy applicant/activity logs: one line per problem naming the row, options to
drop or reorder out-of-order stages with counts, messy-but-valid files load."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

import optplan
from optplan.cli import main
from optplan.estimate.logs import read_activity_log, read_applicant_log

HEADER = "applicant_id,depot,channel,applied,background_check,onboarding,first_block,vehicle\n"
GOOD = [
    "A1,D1,referral,2026-01-05,2026-01-12,2026-01-26,2026-02-02,car",
    "A2,D1,agency,2026-01-06,2026-01-20,,,bike",
    "A3,D2,referral,2026-02-02,,,,car",
]


def write(tmp_path, rows, name="apps.csv", header=HEADER, newline="\n"):
    path = tmp_path / name
    path.write_bytes((header + newline.join(rows) + newline).replace("\n", newline).encode())
    return path


def problems(path, **kw):
    with pytest.raises(optplan.InstanceError) as err:
        read_applicant_log(path, **kw)
    return [str(p) for p in err.value.problems]


def test_good_log_loads(tmp_path):
    log, observed, notes = read_applicant_log(write(tmp_path, GOOD))
    assert len(log) == 3 and str(observed.date()) == "2026-02-02" and notes["applicants"] == 3


def test_out_of_order_is_an_error_by_default_and_names_the_line(tmp_path):
    rows = GOOD + ["A4,D2,agency,2026-01-10,2026-01-05,,,car"]
    (msg,) = problems(write(tmp_path, rows))
    assert msg.startswith("apps.csv:5:") and "stage order" in msg and "background_check=2026-01-05" in msg


def test_out_of_order_drop_and_reorder_report_counts(tmp_path):
    """A4's dates run backwards (out of order: dropped or reordered as asked); A5 skipped the
    background check on its way to onboarding: a later stage implies the earlier one was
    passed, on the later one's date, so A5 is kept either way (it was dropped before, which
    biased conversion low)."""
    rows = GOOD + ["A4,D2,agency,2026-01-10,2026-01-05,,,car", "A5,D2,agency,2026-01-10,,2026-01-20,,car"]
    log, _, notes = read_applicant_log(write(tmp_path, rows), on_out_of_order="drop")
    assert notes["out_of_order_dropped"] == 1 and notes["skipped_stages_filled"] == 1 and len(log) == 4
    a5 = log.set_index("applicant_id").loc["A5"]
    assert str(a5["background_check"].date()) == "2026-01-20" and str(a5["onboarding"].date()) == "2026-01-20"
    log, _, notes = read_applicant_log(write(tmp_path, rows), on_out_of_order="reorder")
    assert notes["out_of_order_reordered"] == 1 and len(log) == 5
    a4 = log.set_index("applicant_id").loc["A4"]
    assert str(a4["applied"].date()) == "2026-01-05" and str(a4["background_check"].date()) == "2026-01-10"


def test_column_map_and_covariates(tmp_path):
    """--map renames the file's own columns; a column filled only for applicants who reached
    a stage (a vehicle model known at onboarding) is dropped from the covariates with a note,
    and refused when asked for explicitly; the missing-columns error is one line."""
    header = "id,site,source,signup,bgc,onb,first_trip,vehicle,model"
    rows = [header] + [f"A{i},D1,ads,2026-01-05,2026-01-07,{'2026-01-12' if i % 2 else ''},,car,"
                       f"{'corolla' if i % 2 else ''}" for i in range(40)]
    path = tmp_path / "raw.csv"
    path.write_text("\n".join(rows) + "\n")
    mapping = {"id": "applicant_id", "site": "depot", "source": "channel", "signup": "applied",
               "bgc": "background_check", "onb": "onboarding", "first_trip": "first_block"}
    log, _, notes = read_applicant_log(path, column_map=mapping)
    assert "model" not in log.columns and "vehicle" in log.columns
    assert notes["covariate_model_dropped_known_only_after_onboarding"] == 1 and notes["covariates_used"] == 1
    with pytest.raises(optplan.InstanceError) as err:
        read_applicant_log(path, column_map=mapping, covariates=["model"])
    assert "leak the outcome" in str(err.value.problems[0]) and "onboarding" in str(err.value.problems[0])
    log, _, notes = read_applicant_log(path, column_map=mapping, covariates=[])
    assert notes["covariates_used"] == 0 and "vehicle" not in log.columns
    with pytest.raises(optplan.InstanceError) as err:
        read_applicant_log(path)
    assert len(err.value.problems) == 1 and "or --map them" in str(err.value.problems[0])


def test_duplicate_ids_unparseable_and_late_dates(tmp_path):
    rows = GOOD + ["A1,D1,referral,2026-01-07,,,,car", "A6,D1,referral,not-a-date,,,,car"]
    found = problems(write(tmp_path, rows))
    assert any("apps.csv:5:" in p and "applicant_id" in p and "duplicate of line 2" in p for p in found), found
    assert any("apps.csv:6:" in p and "applied" in p and "'not-a-date'" in p for p in found), found
    late = problems(write(tmp_path, GOOD), observed_until="2026-01-31")
    assert any("apps.csv:2:" in p and "first_block" in p and "on or before observed_until 2026-01-31" in p for p in late), late


def test_long_format_unknown_stage(tmp_path):
    header = "applicant_id,stage,date,depot,channel\n"
    rows = ["A1,applied,2026-01-05,D1,referral", "A1,bgc,2026-01-12,D1,referral"]
    found = problems(write(tmp_path, rows, header=header))
    assert any("apps.csv:3:" in p and "unknown stage 'bgc'" in p for p in found), found


def test_long_format_equals_wide(tmp_path):
    header = "applicant_id,stage,date,depot,channel,vehicle\n"
    rows = ["A1,applied,2026-01-05,D1,referral,car", "A1,background_check,2026-01-12,D1,referral,car",
            "A1,onboarding,2026-01-26,D1,referral,car", "A1,first_block,2026-02-02,D1,referral,car",
            "A2,applied,2026-01-06,D1,agency,bike", "A2,background_check,2026-01-20,D1,agency,bike",
            "A3,applied,2026-02-02,D2,referral,car"]
    long_log, _, _ = read_applicant_log(write(tmp_path, rows, header=header, name="long.csv"))
    wide_log, _, _ = read_applicant_log(write(tmp_path, GOOD))
    cols = ["applicant_id", "applied", "background_check", "onboarding", "first_block"]
    assert long_log[cols].sort_values("applicant_id").reset_index(drop=True).equals(
        wide_log[cols].sort_values("applicant_id").reset_index(drop=True))


def test_messy_file_loads_with_a_report(tmp_path):
    """CRLF endings, NA words, spaces and a US-style date load; the non-ISO date is counted (01/13:
    only month first reads; 01/12 alone would be ambiguous, tests/test_dates.py)."""
    rows = ["A1, D1 ,referral,2026-01-05,01/13/2026,NA,N/A,car", "A2,D1,agency,2026-01-06,null,,,bike"]
    log, _, notes = read_applicant_log(write(tmp_path, rows, newline="\r\n"))
    assert notes["non_iso_dates_parsed"] == 1
    assert str(log.loc[0, "background_check"].date()) == "2026-01-13" and log.loc[0, "onboarding"] is not None
    assert log["onboarding"].isna().all() and log.loc[0, "depot"] == "D1"


def test_activity_log_problems(tmp_path):
    path = tmp_path / "act.csv"
    path.write_text("driver_id,depot,week,blocks\nX1,D1,2026-01-05,3\nX1,D1,2026-01-05,2\nX2,D1,soon,1\nX3,D1,2026-01-12,-1\n")
    with pytest.raises(optplan.InstanceError) as err:
        read_activity_log(path)
    found = [str(p) for p in err.value.problems]
    assert any("act.csv:3:" in p and "one row per driver and week" in p for p in found), found
    assert any("act.csv:4:" in p and "'soon'" in p for p in found), found
    assert any("act.csv:5:" in p and "blocks" in p and "'-1'" in p for p in found), found


def test_cli_reports_bad_log_with_exit_status_2(tmp_path):
    path = write(tmp_path, GOOD + ["A4,D2,agency,2026-01-10,2026-01-05,,,car"])
    result = CliRunner().invoke(main, ["estimate", "funnel", str(path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "apps.csv:5:" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o").exists()
