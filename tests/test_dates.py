"""Dates as real files write them (issue #30 part 2): day first (05-02-2010, Walmart's own
file), month first, or a --date-format; a column whose cells read both ways is refused with a
line naming the file, the line, the column and an example, never read silently the wrong way."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from click.testing import CliRunner

from optplan.cli import main
from optplan.errors import InstanceError
from optplan.estimate.logs import numeric_date_order, parse_dates, read_activity_log
from optplan.forecast.history import read_history

WEEKS = pd.date_range("2010-02-05", periods=70, freq="7D")  # Fridays, as Walmart's weeks end


def history(tmp_path, fmt: str, weeks=WEEKS, name="sales.csv"):
    rows = [(s, w.strftime(fmt), 100000 + 5000 * math.sin(i / 4)) for s in (1, 2) for i, w in enumerate(weeks)]
    path = tmp_path / name
    pd.DataFrame(rows, columns=["Store", "Date", "Weekly_Sales"]).to_csv(path, index=False)
    return path


@pytest.mark.parametrize(("fmt", "order"), [("%d-%m-%Y", "dayfirst"), ("%m/%d/%Y", "monthfirst"),
                                            ("%d.%m.%Y", "dayfirst")])
def test_the_order_of_day_and_month_is_read_from_the_column(tmp_path, fmt, order):
    path = history(tmp_path, fmt)
    assert numeric_date_order(pd.read_csv(path, dtype=str)["Date"])[0] == order
    h = read_history(path, unit_factor=1 / 2000)
    iso = history(tmp_path, "%Y-%m-%d", name="iso.csv")
    assert h.to_frame().equals(read_history(iso, unit_factor=1 / 2000).to_frame())  # the same weeks, the same values


def test_a_column_that_reads_both_ways_is_refused_with_an_example(tmp_path):
    early = [w for w in WEEKS if w.day <= 12][:6]  # every cell reads as a date both ways
    path = history(tmp_path, "%d-%m-%Y", weeks=early)
    with pytest.raises(InstanceError) as exc:
        read_history(path)
    (p,) = exc.value.problems
    assert str(p) == ("sales.csv:2: field 'Date' expected dates in one order the column shows (a day above 12 "
                      f"somewhere), or --date-format (e.g. %d-%m-%Y), found dates whose day and month can be read "
                      f"either way, e.g. '{early[0].strftime('%d-%m-%Y')}'")
    # told the format, the same file reads, and day first
    h = read_history(path, date_format="%d-%m-%Y", min_weeks=1)
    iso = read_history(history(tmp_path, "%Y-%m-%d", weeks=early, name="iso.csv"), min_weeks=1)
    assert h.to_frame().equals(iso.to_frame())


def test_day_first_in_some_rows_and_month_first_in_others_is_refused():
    with pytest.raises(InstanceError) as exc:
        parse_dates(pd.Series(["19-02-2010", "02-19-2010"]), file="log.csv", column="applied")
    assert "log.csv:3: field 'applied'" in str(exc.value.problems[0])
    assert "the day first in some rows and the month first in others, e.g. '02-19-2010'" in str(exc.value.problems[0])
    # a date the same both ways (05-05-2010) is no ambiguity
    dates, bad, _ = parse_dates(pd.Series(["05-05-2010", "2010-05-12"]))
    assert list(dates.dt.strftime("%Y-%m-%d")) == ["2010-05-05", "2010-05-12"] and not bad.any()


def test_logs_take_a_date_format_and_the_cli_says_so(tmp_path):
    path = tmp_path / "activity.csv"
    path.write_text("driver_id,depot,week,blocks\nR1,D1,04/01/2027,3\nR1,D1,11/01/2027,2\n")
    with pytest.raises(InstanceError) as exc:  # 04/01 and 11/01: both read either way
        read_activity_log(path)
    assert "activity.csv:2: field 'week'" in str(exc.value.problems[0])
    log, _ = read_activity_log(path, date_format="%d/%m/%Y")
    assert list(log["week"].dt.strftime("%Y-%m-%d")) == ["2027-01-04", "2027-01-11"]
    r = CliRunner().invoke(main, ["estimate", "retention", str(path), "--out", str(tmp_path / "r"), "--quiet"])
    assert r.exit_code == 2 and "--date-format" in r.output


def test_the_forecast_command_reads_walmarts_own_day_first_file(tmp_path):
    path = history(tmp_path, "%d-%m-%Y")
    r = CliRunner().invoke(main, ["forecast", str(path), "--money-per-block", "2000", "--horizon", "2", "--model",
                                  "seasonal_naive", "--scenarios", "2", "--no-plots", "--out", str(tmp_path / "fc"),
                                  "--quiet"])
    assert r.exit_code == 0, r.output
    first = (WEEKS[-1] + pd.Timedelta(days=1)).strftime("%Y-%m-%d")  # the week after the last (Walmart dates end weeks)
    assert pd.read_csv(tmp_path / "fc" / "quantiles.csv")["week_start"].iloc[0] == first
