"""Country calendars (issue #14 part 2): the forecasts align holidays per country, from the
holidays library rather than hand-written rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from optplan.cli.forecast import forecast as forecast_cmd
from optplan.errors import OptionError
from optplan.forecast.calendar import ALIGN_HOLIDAYS, FAR, Calendar
from optplan.forecast.history import history_from_frame
from optplan.forecast.models import _Design

ORIGIN = pd.Timestamp("2014-01-04")  # a Saturday: weeks run Saturday to Friday


def holiday_date(name: str, year: int) -> pd.Timestamp:
    """The US holidays by the rules written out by hand (the independent route to the library)."""
    from dateutil.easter import easter

    if name == "easter":
        return pd.Timestamp(easter(year))
    if name == "christmas":
        return pd.Timestamp(year, 12, 25)
    if name == "independence_day":
        return pd.Timestamp(year, 7, 4)
    if name == "thanksgiving":  # 4th Thursday of November
        first = pd.Timestamp(year, 11, 1)
        return first + pd.Timedelta(days=(3 - first.weekday()) % 7 + 21)
    if name == "labor_day":  # 1st Monday of September
        first = pd.Timestamp(year, 9, 1)
        return first + pd.Timedelta(days=(0 - first.weekday()) % 7)
    if name == "memorial_day":  # last Monday of May
        last = pd.Timestamp(year, 5, 31)
        return last - pd.Timedelta(days=last.weekday())
    raise ValueError(name)


def holiday_weeks(origin: pd.Timestamp, name: str, first_year: int, last_year: int) -> np.ndarray:
    """Week numbers (from the week starting ``origin``) holding the holiday, one per year."""
    return np.array([(holiday_date(name, y) - origin).days // 7 for y in range(first_year, last_year + 1)], dtype=int)


def test_hand_written_rules_by_example():
    assert holiday_date("thanksgiving", 2012) == pd.Timestamp("2012-11-22")
    assert holiday_date("thanksgiving", 2013) == pd.Timestamp("2013-11-28")
    assert holiday_date("easter", 2012) == pd.Timestamp("2012-04-08")
    assert holiday_date("labor_day", 2012) == pd.Timestamp("2012-09-03")
    assert holiday_date("memorial_day", 2012) == pd.Timestamp("2012-05-28")


def test_us_calendar_from_the_library_equals_the_hand_written_rules():
    """Easter, Memorial Day, Independence Day, Labor Day, Thanksgiving and Christmas weeks
    from the holidays library (and dateutil's Easter) against the rules written out by hand,
    1990-2039 (the calendar's years: two either side of its weeks)."""
    cal = Calendar(pd.Timestamp("1992-01-04"), 52 * 46)
    for name in ALIGN_HOLIDAYS:
        np.testing.assert_array_equal(cal.anchors[name], holiday_weeks(pd.Timestamp("1992-01-04"), name, 1990, 2039),
                                      err_msg=name)


def test_germany_has_no_thanksgiving_and_aligns_on_its_own_moving_holidays():
    us, de = Calendar(ORIGIN, 200, "US"), Calendar(ORIGIN, 200, "DE")
    t = np.arange(200)
    assert (de.holiday_distance(t)[:, 1] == FAR).all()  # weeks to Thanksgiving: none in Germany
    assert (us.holiday_distance(t)[:, 1] == 0).sum() == 3  # one Thanksgiving week a year, 2014-2016 (200 weeks)
    np.testing.assert_array_equal(de.holiday_distance(t)[:, [0, 2]], us.holiday_distance(t)[:, [0, 2]])  # Easter, Christmas
    # Ascension Day (Thursday, 39 days after Easter): 2015-05-14, 2016-05-05: 51 weeks apart, not 52
    asc16 = (pd.Timestamp("2016-05-05") - ORIGIN).days // 7
    assert de.last_year_lag(np.array([asc16]))[0] == 51
    assert us.last_year_lag(np.array([asc16]))[0] == 52  # no such holiday in the US calendar


def test_each_depot_uses_its_countrys_calendar():
    """Two depots in one history, D1 in the US and D2 in Germany: a spike in Ascension week
    every year at D2 only. For the target week of Ascension 2016 the global model's base
    ('the same week last year', grown) is last year's Ascension week at D2 (the spike), and
    the plain 52-week lag at D1; Thanksgiving distance is 0 in Thanksgiving week at D1, FAR at D2."""
    weeks = pd.date_range(ORIGIN, periods=150, freq="7D")
    ascension = {pd.Timestamp(f"{y}-{md}") for y, md in ((2014, "05-29"), (2015, "05-14"), (2016, "05-05"))}
    spike = np.array([any(w <= a < w + pd.Timedelta(days=7) for a in ascension) for w in weeks])
    frame = pd.concat([pd.DataFrame({"depot": d, "week_start": weeks.strftime("%Y-%m-%d"),
                                     "demand": np.where(spike & (d == "D2"), 300.0, 100.0)}) for d in ("D1", "D2")])
    history = history_from_frame(frame.astype(str), demand_col="demand", country={"D2": "DE"})
    assert history.country_of_depots() == ("US", "DE")
    asc16 = int(np.flatnonzero(spike)[-1])
    n = asc16 - 2  # an origin two weeks before, h = 3 lands on Ascension week 2016
    design = _Design(history.subset(n), 13)
    X, base, _, _ = design.rows(np.array([n, n]), np.array([3, 3]), np.array([0, 1]))
    assert base[1] == pytest.approx(300.0, rel=1e-9)  # D2: last year's Ascension week
    assert base[0] == pytest.approx(100.0, rel=1e-9)
    tg = (pd.Timestamp("2014-11-27") - ORIGIN).days // 7
    dist = design.holiday_distance(np.array([tg, tg]), np.array([0, 1]))
    assert dist[0, 1] == 0 and dist[1, 1] == FAR


def test_unknown_countries_are_option_errors(tmp_path):
    weeks = pd.date_range(ORIGIN, periods=120, freq="7D").strftime("%Y-%m-%d")
    frame = pd.DataFrame({"depot": "D1", "week_start": weeks, "demand": "100"})
    with pytest.raises(OptionError, match="--country"):
        history_from_frame(frame, demand_col="demand", country="XX")
    with pytest.raises(OptionError, match="D9"):
        history_from_frame(frame, demand_col="demand", country={"D9": "DE"})
    frame.to_csv(tmp_path / "h.csv", index=False)
    r = CliRunner().invoke(forecast_cmd, [str(tmp_path / "h.csv"), "--country", "D1=ZZ", "--model", "seasonal_naive",
                                          "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "--country" in r.output and "ZZ" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(forecast_cmd, [str(tmp_path / "h.csv"), "--country", "DE", "--model", "seasonal_naive",
                                          "--quiet", "--no-plots", "--out", str(tmp_path / "ok")])
    assert r.exit_code == 0, r.output


def test_without_a_flag_column_the_country_gives_the_holiday_flags():
    """A German history without a holiday column, read with --country DE: weeks holding a
    German public holiday are flagged (German Unity Day, 3 October 2016; Christmas), weeks
    without are not (1 September 2016); without a country there is no flag at all."""
    from optplan.forecast.calendar import public_holiday_flags

    weeks = pd.date_range(ORIGIN, periods=160, freq="7D")
    frame = pd.DataFrame({"depot": "D1", "week_start": weeks.strftime("%Y-%m-%d"), "demand": "100"})
    h = history_from_frame(frame, demand_col="demand", country="DE")
    flag = pd.Series(h.holiday[:, 0], index=weeks)
    week_of = lambda day: weeks[weeks <= pd.Timestamp(day)][-1]  # noqa: E731
    assert flag[week_of("2016-10-03")] == 1 and flag[week_of("2016-12-25")] == 1
    assert flag[week_of("2016-09-01")] == 0
    assert h.columns["holiday"] == "holidays library (by country)"
    assert history_from_frame(frame, demand_col="demand").holiday is None
    # by hand: of the 52 weeks of 2015 (from 3 January), those holding a German public holiday
    import holidays

    days = sorted(holidays.country_holidays("DE", years=[2015, 2016]))
    w2015 = pd.date_range("2015-01-03", periods=52, freq="7D")
    expected = [any(w <= pd.Timestamp(d) < w + pd.Timedelta(days=7) for d in days) for w in w2015]
    np.testing.assert_array_equal(public_holiday_flags(w2015, ("DE",))[:, 0], np.array(expected, float))
