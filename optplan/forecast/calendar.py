"""Calendar: holiday weeks and the holiday-aligned "same week last year", per country.

Holidays come from the ``holidays`` library (public holidays of a country, by ISO 3166 code),
plus Easter Sunday (dateutil), a retail peak everywhere though a public holiday almost
nowhere. The US keeps its retail holidays (Easter, Memorial Day, Independence Day, Labor
Day, Thanksgiving, Christmas); any other country aligns on all its public holidays (each
"(observed)" day left out) and Easter. The three holiday-distance features are Easter, the
country's Thanksgiving (none outside the US: the feature stays FAR) and Christmas (25
December).

Weeks are numbered 0, 1, ... from the first history week (``week_start[0]``); a week covers
the 7 days from its start. A holiday's week is the week containing its date.

Last year's week for week t is normally t - 52 (364 days earlier: same weekday). Holidays
drift against that: fixed-date ones (Christmas, 4 July) by a weekday a year, weekday-anchored
ones (Thanksgiving, Labor Day, Memorial Day) jump a week every few years, Easter moves by up
to five weeks. Near a holiday (within ``ALIGN_WINDOW`` weeks of its week) the lag is instead
the distance between this year's and last year's holiday weeks, so the Thanksgiving week is
compared with last year's Thanksgiving week, the week before it with the week before it, etc.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
from dateutil.easter import easter

from optplan.errors import OptionError

DEFAULT_COUNTRY = "US"
#: The US holidays the alignment uses (the library's names), as before the library came in.
US_ALIGN_NAMES = {"Memorial Day": "memorial_day", "Independence Day": "independence_day", "Labor Day": "labor_day",
                  "Thanksgiving Day": "thanksgiving", "Christmas Day": "christmas"}

WEEKS_PER_YEAR = 52  # default "last year" lag in weeks (364 days: same weekday)
ALIGN_WINDOW = 2  # weeks either side of a holiday week aligned with last year's holiday
FAR = 9.0  # holiday-distance feature value for weeks more than FEATURE_WINDOW weeks away
FEATURE_WINDOW = 3  # weeks either side of a holiday with a distance feature
ALIGN_HOLIDAYS = ("easter", "memorial_day", "independence_day", "labor_day", "thanksgiving", "christmas")
FEATURE_HOLIDAYS = ("easter", "thanksgiving", "christmas")  # the retail peaks that move against a 52-week lag


def check_country(code: str) -> str:
    """``code`` if the holidays library knows the country (ISO 3166 alpha-2), else an OptionError."""
    import holidays

    code = str(code).strip().upper()
    if code not in holidays.list_supported_countries():
        raise OptionError("--country", "an ISO 3166 country code the holidays library knows (US, CA, DE, GB, FR, ...)",
                          code)
    return code


@lru_cache(maxsize=256)
def country_holidays(country: str, first_year: int, last_year: int) -> dict[str, tuple[pd.Timestamp, ...]]:
    """{holiday key: one date per year it falls in} for ``country`` over the years: Easter
    Sunday and the country's public holidays (keys as in ALIGN_HOLIDAYS for the US, the
    library's English names elsewhere; "(observed)" days left out)."""
    import holidays

    years = range(first_year, last_year + 1)
    cal = holidays.country_holidays(country, years=years, language="en_US") if country != "US" else \
        holidays.country_holidays(country, years=years)
    out: dict[str, list[pd.Timestamp]] = {"easter": [pd.Timestamp(easter(y)) for y in years]}
    for day, names in sorted(cal.items()):
        for name in str(names).split("; "):
            if "(observed)" in name:
                continue
            key = US_ALIGN_NAMES.get(name) if country == "US" else name.lower()
            if key is None:
                continue
            if country != "US" and "thanksgiving" in key:
                key = "thanksgiving"
            if key == "christmas day":
                key = "christmas"
            out.setdefault(key, []).append(pd.Timestamp(day))
    return {k: tuple(v) for k, v in out.items()}


def public_holiday_flags(week_start: pd.DatetimeIndex, countries) -> np.ndarray:
    """(W, D) 1.0 where the week (7 days from ``week_start``) holds a public holiday of depot
    d's country (``countries`` per depot; holidays library, observed days included: they are
    days off), else 0.0: the holiday flag for a history that has none."""
    import holidays

    days = np.asarray(week_start.values.astype("datetime64[D]"))
    years = range(pd.Timestamp(week_start[0]).year, pd.Timestamp(week_start[-1]).year + 2)
    out = np.zeros((len(days), len(countries)))
    for code in sorted(set(countries)):
        dates = np.array(sorted(holidays.country_holidays(code, years=years)), dtype="datetime64[D]")
        first = np.searchsorted(dates, days)  # the first holiday on or after each week's start
        hit = (first < len(dates)) & (dates[np.minimum(first, len(dates) - 1)] < days + 7)
        out[:, [i for i, c in enumerate(countries) if c == code]] = hit[:, None]
    return out


class Calendar:
    """Holiday weeks of ``country`` for week numbers relative to ``origin`` (the first history
    week's start)."""

    def __init__(self, origin: pd.Timestamp, n_weeks: int, country: str = DEFAULT_COUNTRY):
        self.origin = pd.Timestamp(origin)
        self.country = check_country(country)
        last = self.origin + pd.Timedelta(weeks=n_weeks)
        y0, y1 = self.origin.year - 2, last.year + 2
        dates = country_holidays(self.country, y0, y1)
        self.anchors = {name: np.array([(d - self.origin).days // 7 for d in days], dtype=int)
                        for name, days in dates.items() if len(days) >= 2}
        self.anchors.setdefault("christmas", np.array([(pd.Timestamp(y, 12, 25) - self.origin).days // 7
                                                       for y in range(y0, y1 + 1)], dtype=int))

    def week_start(self, t) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.origin + pd.to_timedelta(np.asarray(t, dtype=int) * 7, unit="D"))

    def last_year_lag(self, t: np.ndarray) -> np.ndarray:
        """Holiday-aligned lag (weeks) back to "the same week last year" for week numbers ``t``."""
        t = np.atleast_1d(np.asarray(t, dtype=int))
        lag = np.full(t.shape, WEEKS_PER_YEAR)
        best = np.full(t.shape, ALIGN_WINDOW + 1)
        # the US holidays in their old order first (ties go to the first), then the rest by name
        order = [n for n in ALIGN_HOLIDAYS if n in self.anchors] + sorted(set(self.anchors) - set(ALIGN_HOLIDAYS))
        for name in order:
            a = self.anchors[name]
            j = np.abs(t[:, None] - a[None, :]).argmin(axis=1)
            dist = np.abs(t - a[j])
            ok = (j >= 1) & (dist < best)
            prev_lag = a[j] - a[np.maximum(j - 1, 0)]
            ok &= (prev_lag >= 46) & (prev_lag <= 58)
            lag = np.where(ok, prev_lag, lag)
            best = np.where(ok, dist, best)
        return lag

    def holiday_distance(self, t: np.ndarray) -> np.ndarray:
        """(len(t), len(FEATURE_HOLIDAYS)): signed weeks from each holiday's nearest week
        (-3..3), FAR when further away."""
        t = np.atleast_1d(np.asarray(t, dtype=int))
        out = np.empty((len(t), len(FEATURE_HOLIDAYS)))
        for k, name in enumerate(FEATURE_HOLIDAYS):
            a = self.anchors.get(name)
            if a is None:  # the country has no such holiday (no Thanksgiving outside the US)
                out[:, k] = FAR
                continue
            j = np.abs(t[:, None] - a[None, :]).argmin(axis=1)
            dist = (t - a[j]).astype(float)
            out[:, k] = np.where(np.abs(dist) <= FEATURE_WINDOW, dist, FAR)
        return out
