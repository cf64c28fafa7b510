"""Reading a weekly demand history, with every problem reported by file, line, depot and week.

The history is a long CSV table with one row per depot and week: a depot id, a date that
marks the week, the demand of that week, and optionally a holiday flag (0/1). Other columns
(Temperature, CPI, ...) are ignored. Column names are detected (``depot``/``Store``,
``week``/``week_start``/``Date``, ``demand``/``blocks``/``Weekly_Sales``,
``holiday``/``Holiday_Flag``) or given explicitly.

Units: demand is converted to blocks/week as ``blocks = demand x unit_factor`` (blocks per
demand unit; 1 = the history is already in blocks). Sales at 2,000 currency units per block
is ``unit_factor = 1/2000`` (the CLI's ``--money-per-block 2000``, formerly ``--usd-per-block``).

Week dates: ``week_date="start"`` means the date is the first day of the week,
``"end"`` the last day (Walmart's ``Date`` is the Friday that ends a Saturday-Friday week).
``"auto"`` is "end" when the date column is named ``Date`` and the demand column
``Weekly_Sales`` (the Walmart layout), else "start". Internally every week is identified
by its first day.

Problems (each one line naming file, line, depot and week; raised together as one
``InstanceError``): missing columns; unparseable dates; dates off the weekly grid (another
weekday than the rest); non-numeric, infinite or negative demand; a holiday flag other than
0/1/true/false; the same depot and week twice (naming the line of the first); a depot whose
history ends before the others'; gaps longer than ``fill_gaps`` weeks; a depot with fewer
than ``min_weeks`` weeks.

Repair (reported in ``History.repairs``, one line per gap): a run of at most ``fill_gaps``
consecutive weeks that are absent or have an empty/NaN demand cell is filled by linear
interpolation between the weeks on either side (blocks/week); the holiday flag of a filled
week is 0 unless given.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from optplan.errors import InstanceError, OptionError, Problem
from optplan.estimate.logs import parse_dates, read_text_csv
from optplan.forecast.calendar import DEFAULT_COUNTRY, check_country, public_holiday_flags
from optplan.io.inputs import MAX_ID_CHARS
from optplan.io.schema import MAX_BLOCKS

#: At most this many lines are reported per kind of problem; the rest are counted.
MAX_LINES_PER_CHECK = 25
#: Cells that mean "no value".
NA_WORDS = {"", "na", "n/a", "null", "none", "nan", "nat", "-"}
#: Candidate column names (compared case-insensitively), in order of preference.
DEPOT_COLUMNS = ("depot", "depot_id", "store", "store_id", "site")
DATE_COLUMNS = ("week_start", "week", "week_end", "date", "week_date")
DEMAND_COLUMNS = ("demand", "blocks", "weekly_sales", "sales", "demand_blocks")
HOLIDAY_COLUMNS = ("holiday", "holiday_flag", "is_holiday")
TRUE_WORDS = {"1", "1.0", "true", "yes", "y", "t"}
FALSE_WORDS = {"0", "0.0", "false", "no", "n", "f"}


@dataclass
class History:
    """A complete weekly history in blocks/week: one row per week, one column per depot.

    ``blocks[t, d]`` is the demand of depot ``depots[d]`` in the week starting
    ``week_start[t]`` (blocks/week); NaN only before a depot's first week (a depot that
    opened later). ``holiday[t, d]`` is the 0/1 holiday flag (None without a holiday
    column). ``repairs`` lists every filled gap; ``source`` names the file.
    """

    depots: list[str]
    week_start: pd.DatetimeIndex
    blocks: np.ndarray
    holiday: np.ndarray | None = None
    unit_factor: float = 1.0
    source: str = "history"
    columns: dict[str, str | None] = field(default_factory=dict)
    repairs: list[str] = field(default_factory=list)
    first_line: dict[str, int] = field(default_factory=dict)  # depot -> line of its first row
    countries: tuple[str, ...] | None = None  # per depot: ISO 3166 code of its holiday calendar (None: all US)

    @property
    def n_weeks(self) -> int:
        return len(self.week_start)

    def weeks_of(self, d: int) -> int:
        """Weeks of history of depot index ``d`` (from its first week to the last)."""
        ok = np.isfinite(self.blocks[:, d])
        return int(self.n_weeks - np.argmax(ok)) if ok.any() else 0

    def first_week(self, d: int) -> pd.Timestamp:
        return self.week_start[self.n_weeks - self.weeks_of(d)]

    def country_of_depots(self) -> tuple[str, ...]:
        """Per depot: the country whose holiday calendar its forecasts align on."""

        return self.countries if self.countries is not None else (DEFAULT_COUNTRY,) * len(self.depots)

    def with_countries(self, countries) -> History:
        """The same history with each depot's holiday country: one code for all depots, or a
        mapping depot -> code (depots not listed: the default); codes checked against the
        holidays library."""


        if isinstance(countries, str):
            codes = (check_country(countries),) * len(self.depots)
        else:
            unknown = sorted(set(countries) - set(self.depots))
            if unknown:
                raise OptionError("--country", "depot ids of the history", ", ".join(unknown))
            codes = tuple(check_country(countries.get(d, DEFAULT_COUNTRY)) for d in self.depots)
        return replace(self, countries=codes)

    def subset(self, n_weeks: int | None = None, depots: list[str] | None = None) -> History:
        """The first ``n_weeks`` weeks (a backtest origin) of the listed depots."""
        idx = list(range(len(self.depots))) if depots is None else [self.depots.index(d) for d in depots]
        n = self.n_weeks if n_weeks is None else n_weeks
        return History(
            depots=[self.depots[i] for i in idx], week_start=self.week_start[:n], blocks=self.blocks[:n, idx].copy(),
            holiday=None if self.holiday is None else self.holiday[:n, idx].copy(), unit_factor=self.unit_factor,
            source=self.source, columns=dict(self.columns), repairs=list(self.repairs),
            first_line={d: self.first_line[d] for d in (self.depots[i] for i in idx) if d in self.first_line},
            countries=None if self.countries is None else tuple(self.countries[i] for i in idx),
        )

    def to_frame(self) -> pd.DataFrame:
        """Long table depot, week_start, blocks[, holiday] (weeks before a depot opened left out)."""
        W, D = self.blocks.shape
        df = pd.DataFrame({
            "depot": np.tile(self.depots, W),
            "week_start": np.repeat(self.week_start.to_numpy(), D),
            "blocks": self.blocks.ravel(),
        })
        if self.holiday is not None:
            df["holiday"] = self.holiday.ravel()
        return df[np.isfinite(df["blocks"].to_numpy())].reset_index(drop=True)


def _read_text_csv(path: Path) -> pd.DataFrame:
    return read_text_csv(path, "a CSV history file")


def _pick(columns: list[str], given: str | None, candidates: tuple[str, ...]) -> str | None:
    if given is not None:
        return given if given in columns else None
    lower = {c.lower(): c for c in columns}
    return next((lower[c] for c in candidates if c in lower), None)


def _structure(dates, week_date, depot, week_txt, lines, source, tc, add):
    """Weekly-grid and duplicate checks on rows with parsed dates; returns (week starts,
    first week start, days since it)."""
    start = dates.to_numpy("datetime64[ns]")
    if week_date == "end":
        start = start - np.timedelta64(6, "D")
    start = pd.DatetimeIndex(start)
    # weekly grid: every date the same weekday as the first one
    origin = start.min()
    offset = (start - origin).days.to_numpy()
    off_grid = offset % 7 != 0
    day_name = origin.day_name()
    add(off_grid, tc, f"weeks starting on a {day_name} like the first week ({origin.date()}), 7 days apart",
        [f"depot {depot[i]}: {week_txt[i]} (a week starting on a {start[i].day_name()})" for i in np.flatnonzero(off_grid)])
    key = pd.DataFrame({"d": depot, "w": offset})
    dup = key.duplicated(keep="first").to_numpy()
    if dup.any():
        first = key.reset_index().groupby(["d", "w"])["index"].transform("min").to_numpy()
        add(dup, tc, "one row per depot and week",
            [f"depot {depot[i]}, week {week_txt[i]} again (first on line {lines[first[i]]})" for i in np.flatnonzero(dup)])
    return start, origin, offset


def read_history(path: str | Path, **options) -> History:
    """Read and check a history CSV (see the module docstring); options as in :func:`history_from_frame`."""
    path = Path(path)
    return history_from_frame(_read_text_csv(path), source=path.name, **options)


def history_from_frame(
    raw: pd.DataFrame,
    *,
    source: str = "history",
    depot_col: str | None = None,
    date_col: str | None = None,
    demand_col: str | None = None,
    holiday_col: str | None = None,
    unit_factor: float = 1.0,
    week_date: str = "auto",
    fill_gaps: int = 2,
    min_weeks: int = 1,
    use_holiday: bool = True,
    country=None,
    date_format: str | None = None,
) -> History:
    """Check a raw table (all cells as text, as read) and build a :class:`History`.

    ``unit_factor``: blocks per demand unit (blocks = demand x unit_factor). ``min_weeks``:
    the least weeks of history each depot must have. ``fill_gaps``: the longest run of
    missing weeks filled by interpolation (0: none). ``country``: the holiday calendar the
    forecasts align on, one ISO 3166 code for every depot or {depot: code} (None: US); given,
    and the history has no holiday column, the holiday flag is each depot's country's public
    holidays (``calendar.public_holiday_flags``)."""
    if not (np.isfinite(unit_factor) and unit_factor > 0):
        raise OptionError("--unit-factor", "a positive number of blocks per demand unit", unit_factor)
    if week_date not in ("auto", "start", "end"):
        raise OptionError("--week-date", "auto, start or end", week_date)
    raw = raw.astype(str).apply(lambda s: s.str.strip()).reset_index(drop=True)
    cols = list(raw.columns)
    picked = {
        "depot": _pick(cols, depot_col, DEPOT_COLUMNS),
        "date": _pick(cols, date_col, DATE_COLUMNS),
        "demand": _pick(cols, demand_col, DEMAND_COLUMNS),
        "holiday": _pick(cols, holiday_col, HOLIDAY_COLUMNS) if use_holiday else None,
    }
    given = {"depot": depot_col, "date": date_col, "demand": demand_col, "holiday": holiday_col}
    candidates = {"depot": DEPOT_COLUMNS, "date": DATE_COLUMNS, "demand": DEMAND_COLUMNS, "holiday": HOLIDAY_COLUMNS}
    problems = []
    for role in ("depot", "date", "demand", "holiday"):
        if picked[role] is None and (role != "holiday" or given[role] is not None):
            want = f"a column '{given[role]}'" if given[role] else f"a {role} column (one of {', '.join(candidates[role])})"
            problems.append(Problem(source, 1, given[role] or role, want, f"columns {cols}"))
    if not problems and len(raw) == 0:
        problems.append(Problem(source, None, None, "one row per depot and week", "a header without rows"))
    if problems:
        raise InstanceError(problems)
    dc, tc, yc, hc = picked["depot"], picked["date"], picked["demand"], picked["holiday"]
    if week_date == "auto":
        week_date = "end" if (tc == "Date" and yc == "Weekly_Sales") else "start"

    lines = np.arange(len(raw)) + 2  # header = line 1
    problems = []
    omitted = 0

    def add(mask: np.ndarray, field_name: str, expected: str, found: list[str]) -> None:
        nonlocal omitted
        idx = np.flatnonzero(mask)
        for i, f in zip(idx[:MAX_LINES_PER_CHECK], found[:MAX_LINES_PER_CHECK], strict=False):
            problems.append(Problem(source, int(lines[i]), field_name, expected, f))
        omitted += max(0, len(idx) - MAX_LINES_PER_CHECK)

    depot = raw[dc].to_numpy(str)
    no_depot = depot == ""
    add(no_depot, dc, "a depot id", ["an empty cell"] * int(no_depot.sum()))
    long_id = np.char.str_len(depot) > MAX_ID_CHARS  # ids end up in file names (fan charts) and labels
    add(long_id, dc, f"a depot id of at most {MAX_ID_CHARS} characters",
        [f"{len(depot[i])} characters" for i in np.flatnonzero(long_id)])


    dates, bad_date, _ = parse_dates(raw[tc], date_format, source, tc)
    empty_date = dates.isna().to_numpy() & ~bad_date.to_numpy()
    bad = bad_date.to_numpy() | empty_date
    add(bad, tc, "a date (ISO 8601 like 2012-02-03, no time zone, 1900 to 2200)",
        [f"depot {depot[i]}: {raw[tc].iloc[i]!r}" for i in np.flatnonzero(bad)])

    text = raw[yc]
    is_na = text.str.lower().isin(NA_WORDS).to_numpy()
    value = pd.to_numeric(text.where(~is_na), errors="coerce").to_numpy(float)
    not_number = ~is_na & (np.isnan(value) | np.isinf(value))
    week_txt = raw[tc].to_numpy(str)
    add(not_number, yc, "a finite number", [f"depot {depot[i]}, week {week_txt[i]}: {text.iloc[i]!r}" for i in np.flatnonzero(not_number)])
    negative = np.isfinite(value) & (value < 0)
    add(negative, yc, "demand >= 0", [f"depot {depot[i]}, week {week_txt[i]}: {text.iloc[i]}" for i in np.flatnonzero(negative)])
    huge = np.isfinite(value) & (value * unit_factor > MAX_BLOCKS)
    add(huge, yc, f"demand of at most {MAX_BLOCKS:g} blocks per depot and week (the column x {unit_factor:g} blocks "
                  "per demand unit, as the money-per-block or unit-factor setting makes it)",
        [f"depot {depot[i]}, week {week_txt[i]}: {text.iloc[i]}" for i in np.flatnonzero(huge)])

    hol = None
    if hc is not None:
        h_text = raw[hc].str.lower()
        is_true, is_false = h_text.isin(TRUE_WORDS).to_numpy(), h_text.isin(FALSE_WORDS).to_numpy()
        bad_h = ~(is_true | is_false)
        add(bad_h, hc, "a holiday flag 0 or 1 (true/false)",
            [f"depot {depot[i]}, week {week_txt[i]}: {raw[hc].iloc[i]!r}" for i in np.flatnonzero(bad_h)])
        hol = np.where(is_true, 1.0, 0.0)
    # rows whose date parsed are also checked for the weekly grid and duplicates, so one run
    # lists cell problems and structural ones together
    if bad.any():
        ok = ~bad
        if ok.any():
            _structure(dates[ok], week_date, depot[ok], week_txt[ok], lines[ok], source, tc, add)
        raise InstanceError(problems, omitted)

    start, origin, offset = _structure(dates, week_date, depot, week_txt, lines, source, tc, add)
    if problems:
        raise InstanceError(problems, omitted)

    week_idx = offset // 7
    n_weeks = int(week_idx.max()) + 1
    week_start = pd.DatetimeIndex([origin + pd.Timedelta(weeks=k) for k in range(n_weeks)])
    depots = sorted(set(depot.tolist()), key=_natural_key)
    col_of = {d: j for j, d in enumerate(depots)}
    D = len(depots)
    Y = np.full((n_weeks, D), np.nan)
    present = np.zeros((n_weeks, D), bool)
    Hh = np.zeros((n_weeks, D)) if hol is not None else None
    cols_idx = np.array([col_of[d] for d in depot])
    Y[week_idx, cols_idx] = value * unit_factor  # NaN where the cell was empty
    present[week_idx, cols_idx] = True
    if Hh is not None:
        Hh[week_idx, cols_idx] = hol
    first_line = {}
    for i in range(len(depot) - 1, -1, -1):
        first_line[depot[i]] = int(lines[i])

    repairs: list[str] = []
    last_week = week_start[-1].date()
    for j, d in enumerate(depots):
        rows = np.flatnonzero(present[:, j])
        first, last = rows.min(), rows.max()
        if last < n_weeks - 1:
            problems.append(Problem(source, first_line[d], dc, f"every depot's history to run to the last week ({last_week})",
                                    f"depot {d} ends with week {week_start[last].date()}"))
            continue
        missing = ~np.isfinite(Y[first:, j])  # absent rows and empty cells, from the depot's first week on
        for a, b in _runs(missing):
            lo, hi = first + a, first + b - 1  # the run's first and last week index
            weeks = b - a
            span = f"{week_start[lo].date()}" + (f" to {week_start[hi].date()}" if weeks > 1 else "")
            if lo == first:  # a depot cannot start with a gap: its first row has no demand
                problems.append(Problem(source, first_line[d], yc, "a demand value in the depot's first week",
                                        f"depot {d}, week {span}: no demand"))
            elif hi == n_weeks - 1:  # nor end with one: nothing to interpolate towards
                problems.append(Problem(source, None, yc, "a demand value in the last week of the history",
                                        f"depot {d}, week(s) {span}: no demand"))
            elif weeks > fill_gaps:
                problems.append(Problem(source, None, yc,
                                        f"at most {fill_gaps} consecutive missing weeks per depot (filled by interpolation)",
                                        f"depot {d}, week(s) {span}: {weeks} weeks missing or empty"))
            else:
                left, right = Y[lo - 1, j], Y[hi + 1, j]
                Y[lo:hi + 1, j] = left + (right - left) * np.arange(1, weeks + 1) / (weeks + 1)
                repairs.append(f"depot {d}, week(s) {span}: {weeks} missing or empty week(s) filled by linear interpolation "
                               f"between {left:.6g} and {right:.6g} blocks/week")
        have = n_weeks - first
        if have < min_weeks:
            problems.append(Problem(source, first_line[d], dc, f"at least {min_weeks} weeks of history per depot",
                                    f"depot {d}: {have} weeks ({week_start[first].date()} to {last_week})"))
    if problems:
        raise InstanceError(problems, omitted)
    if Hh is not None:
        Hh[~np.isfinite(Y)] = 0.0
    history = History(depots=depots, week_start=week_start, blocks=Y, holiday=Hh, unit_factor=float(unit_factor),
                      source=source, columns={"depot": dc, "date": tc, "demand": yc, "holiday": hc, "week_date": week_date},
                      repairs=repairs, first_line=first_line)
    if country is None:
        return history
    history = history.with_countries(country)
    if history.holiday is None and use_holiday:  # no flag column: each depot's country's public holidays


        flags = public_holiday_flags(history.week_start, history.country_of_depots())
        flags[~np.isfinite(Y)] = 0.0
        history = replace(history, holiday=flags, columns={**history.columns, "holiday": "holidays library (by country)"})
    return history


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Half-open [a, b) index runs where ``mask`` is True."""
    m = np.concatenate([[False], mask, [False]]).astype(int)
    edges = np.flatnonzero(np.diff(m))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _natural_key(s: str):
    """Sort depot ids numerically when they are numbers (2 before 10), else as text."""
    try:
        return (0, float(s), s)
    except ValueError:
        return (1, 0.0, s)
