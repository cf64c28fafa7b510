"""Reading applicant and activity logs, with every problem reported by file and line.

Applicant logs come wide (one row per applicant: applicant_id, depot, channel, one date
column per stage, empty where not reached, then covariate columns) or long (applicant_id,
stage, date, with depot, channel and covariates repeated on each row). Dates may be ISO
(2026-03-02) or any format pandas can read element by element; 03/02/2026 is read in the order
the column shows (day first if some cell has a day above 12, like 19/02/2026; an ambiguous
column is refused, naming an example: give ``date_format``); cells reading NA, N/A, null,
none, nan or empty count as "not reached".

Fatal problems (reported one line each, exit status 2 in the CLI): a missing column,
an unparseable date, a stage date after ``observed_until``, a duplicate applicant id (wide),
an unknown stage name (long), stage dates out of order unless ``on_out_of_order`` is
"drop" (drop those applicants) or "reorder" (sort each applicant's dates). Everything that
was dropped, reordered or reinterpreted is counted in the returned notes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from optplan.errors import InstanceError, OptionError, Problem
from optplan.estimate.columns import BONUS_COLUMN, DEFAULT_STAGES, WINDOW_COLUMN
from optplan.io.inputs import long_id_problems, parse_date_option, read_csv_strings
from optplan.io.instance import MAX_LINES_PER_CHECK
from optplan.io.schema import MAX_BLOCKS_PER_DRIVER

NA_WORDS = {"", "na", "n/a", "null", "none", "nan", "nat", "-"}


def read_text_csv(path: Path, what: str = "a CSV log file") -> pd.DataFrame:
    """A messy CSV as stripped strings: BOM, CRLF/CR line endings and blank lines tolerated;
    a missing, unreadable or malformed file is an InstanceError naming it (``what`` says what
    was expected; see :mod:`optplan.io.inputs`)."""
    return read_csv_strings(Path(path), what, Path(path).name)


#: A time of day followed by a zone ('2010-02-05T00:00:00+02:00', '... 10:00Z'): the logs hold
#: local calendar dates, and a zone would shift some of them to another day.
_ZONED = r"\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|UTC|[+-]\d{2}:?\d{2})$"
#: Dates outside these are refused (pandas' own range ends in 1677 and 2262).
EARLIEST_DATE, LATEST_DATE = pd.Timestamp("1900-01-01"), pd.Timestamp("2200-12-31")


#: A covariate whose non-empty cells are numbers except at most this share of text cells is read
#: as categories with a note naming the text (a typo, or a real category); more text: no note.
NUMERIC_STRAY_SHARE = 0.05


def _refuse_empty_and_long_ids(raw: pd.DataFrame, name: str, id_columns: list[str], what: str) -> None:
    """A log with no rows, or ids too long to be ids, is refused (exit 2) before any fit."""
    if raw.empty:
        raise InstanceError([Problem(name, None, None, f"at least one {what} row below the header", "no rows")])
    problems = []
    for col in id_columns:
        problems += long_id_problems(raw[col], np.arange(len(raw)) + 2, name, col, MAX_LINES_PER_CHECK)
        empty = raw[col].isna() | (raw[col].astype(str).str.strip() == "")
        problems += [Problem(name, int(i) + 2, col, f"a {col} (the {what} row names one)", "an empty cell")
                     for i in np.flatnonzero(empty.to_numpy())[:MAX_LINES_PER_CHECK]]
    if problems:
        raise InstanceError(problems)


def _post_stage_columns(log: pd.DataFrame, columns: list[str], stages: list[str]) -> dict[str, str]:
    """Columns filled (almost) only for applicants who reached some later stage: {column:
    stage} (POST_STAGE_FILLED / POST_STAGE_OTHERS), like a vehicle model known only once
    the vehicle check is done."""
    out = {}
    for col in columns:
        filled = ~log[col].astype(str).str.strip().str.lower().isin(NA_WORDS)
        if filled.all() or not filled.any():
            continue
        for stage in stages[1:]:
            reached = log[stage].notna()
            if reached[filled].mean() >= POST_STAGE_FILLED and reached[~filled].mean() <= POST_STAGE_OTHERS:
                out[col] = stage
                break
    return out


#: A date written as two numbers and a year (05-02-2010, 5/2/2010, 05.02.2010): day and month
#: in an order the cell alone does not tell.
_NUMERIC_DATE = r"^(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})$"


def numeric_date_order(text: pd.Series) -> tuple[str | None, int | None]:
    """The order of day and month in cells like 05-02-2010: ('dayfirst' | 'monthfirst' | None
    when no such cell, 'ambiguous' when every such cell reads both ways, 'mixed' when some read
    only one way and some only the other; the position of an example cell)."""
    parts = text.str.extract(_NUMERIC_DATE)
    found = parts[0].notna().to_numpy()
    if not found.any():
        return None, None
    a = pd.to_numeric(parts[0], errors="coerce").to_numpy(float)
    b = pd.to_numeric(parts[1], errors="coerce").to_numpy(float)
    day_first = found & (a > 12) & (b <= 12)  # only a day can be above 12
    month_first = found & (b > 12) & (a <= 12)
    if day_first.any() and month_first.any():
        return "mixed", int(np.flatnonzero(month_first)[0])
    if day_first.any():
        return "dayfirst", int(np.flatnonzero(day_first)[0])
    if month_first.any():
        return "monthfirst", int(np.flatnonzero(month_first)[0])
    two_ways = found & (a != b)
    if two_ways.any():
        return "ambiguous", int(np.flatnonzero(two_ways)[0])
    return "monthfirst", None  # 05-05-2010 and the like: either order gives the same date


def parse_dates(values: pd.Series, date_format: str | None = None, file: str = "input",
                column: str | None = None) -> tuple[pd.Series, pd.Series, int]:
    """(dates, unparseable mask, count of non-ISO cells that were parsed). Cells with a time
    zone, or outside 1900-2200, are unparseable.

    ``date_format``: a strftime format every cell is read with (e.g. %d-%m-%Y; --date-format).
    Without it, ISO dates are read as such and other cells element by element, except cells
    like 05-02-2010, whose order of day and month the column decides: day first when some cell
    has a first number above 12 (19-02-2010), month first when some has a second above 12; a
    column where every such cell reads both ways, or some only one way and some only the
    other, is refused (InstanceError naming ``file``, the line and ``column``: give
    --date-format)."""
    text = values.astype(str).str.strip()
    zoned = text.str.contains(_ZONED, regex=True)
    missing = text.str.lower().isin(NA_WORDS)
    if zoned.any():
        text = text.where(~zoned, "\x00zoned")  # parses as nothing: reported as bad
    if date_format is not None:
        dates = pd.to_datetime(text.where(~missing), format=date_format, errors="coerce")
        dates = dates.where((dates >= EARLIEST_DATE) & (dates <= LATEST_DATE))
        bad = dates.isna() & ~missing
        return dates.dt.normalize(), bad, int((~missing & ~bad).sum())
    iso = pd.to_datetime(text.where(~missing), format="ISO8601", errors="coerce")
    retry = iso.isna() & ~missing
    other = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    if retry.any():
        order, example = numeric_date_order(text[retry])
        if order in ("ambiguous", "mixed"):
            cell = text[retry].iloc[example]
            line = int(np.flatnonzero(retry.to_numpy())[example]) + 2
            how = ("dates whose day and month can be read either way, e.g." if order == "ambiguous" else
                   "dates with the day first in some rows and the month first in others, e.g.")
            raise InstanceError([Problem(file, line, column, "dates in one order the column shows (a day above 12 "
                                         "somewhere), or --date-format (e.g. %d-%m-%Y)", f"{how} {cell!r}")])
        other[retry] = pd.to_datetime(text[retry], format="mixed", dayfirst=order == "dayfirst", errors="coerce")
    dates = pd.to_datetime(iso.fillna(other), errors="coerce")
    dates = dates.where((dates >= EARLIEST_DATE) & (dates <= LATEST_DATE))
    bad = dates.isna() & ~missing
    return dates.dt.normalize(), bad, int((retry & ~bad).sum())


#: A covariate counts as known only after a stage (and is refused: it would leak the outcome)
#: when at least this share of the applicants who have it filled reached that stage, against
#: at most POST_STAGE_OTHERS of those who left it empty.
POST_STAGE_FILLED = 0.99
POST_STAGE_OTHERS = 0.5


def parse_column_map(text: str | None, allowed) -> dict[str, str]:
    """'applied=signup_date,depot=site' -> {source column: our name}; OptionError if bad."""
    if not text:
        return {}
    out = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        ours, eq, theirs = part.partition("=")
        ours, theirs = ours.strip(), theirs.strip()
        if not eq or not ours or not theirs:
            raise OptionError("--map", "OURS=THEIRS pairs separated by commas, e.g. applied=signup_date", part)
        if ours not in allowed:
            raise OptionError("--map", f"a name among {', '.join(allowed)} on the left", ours)
        out[theirs] = ours
    return out


def read_applicant_log(
    path: str | Path,
    stages=DEFAULT_STAGES,
    fmt: str = "auto",
    observed_until=None,
    on_out_of_order: str = "error",
    column_map: dict[str, str] | None = None,
    covariates: list[str] | None = None,
    window_days: int | None = None,
    date_format: str | None = None,
) -> tuple[pd.DataFrame, pd.Timestamp, dict[str, int]]:
    """Read and check an applicant log; returns (wide log with datetime stage columns,
    observed_until, notes of what was dropped/reordered/reinterpreted/filled).

    ``column_map`` renames the file's columns ({theirs: ours}) before anything else.
    ``covariates``: the columns to use as covariates (None: every other column, less those
    found to be known only after a stage, which are dropped with a note; listed explicitly,
    such a column is refused). A later stage reached with an earlier one empty means the
    earlier stage was passed on the later one's date (a first trip implies the checks
    happened): the gap is filled, not treated as out of order.

    Observation windows: a column ``observed_until`` (a date per applicant; empty: the log's)
    and/or ``window_days`` (each applicant followed for that many days after applying) give
    each applicant their own end of observation; what happens after it is censored, not a
    drop-out (optplan.estimate.funnel.observation_ends)."""
    if on_out_of_order not in ("error", "drop", "reorder"):
        raise OptionError("--on-out-of-order", "error, drop or reorder", on_out_of_order)
    path = Path(path)
    raw = read_text_csv(path)
    name = path.name
    if column_map:
        absent = [theirs for theirs in column_map if theirs not in raw.columns]
        if absent:
            raise InstanceError([Problem(name, 1, None, f"the columns named in --map ({', '.join(absent)})",
                                         f"columns {list(raw.columns)}")])
        raw = raw.rename(columns=column_map)
    stages = list(stages)
    if fmt == "auto":
        fmt = "long" if {"stage", "date"} <= set(raw.columns) else "wide"
    problems: list[Problem] = []
    notes: dict[str, int] = {}
    lines = pd.Series(np.arange(len(raw)) + 2, index=raw.index)

    def add(mask: pd.Series, field: str, expected: str, found) -> None:
        idx = list(raw.index[mask])
        found = list(found)
        for i, f in zip(idx[:MAX_LINES_PER_CHECK], found[:MAX_LINES_PER_CHECK], strict=False):
            problems.append(Problem(name, int(lines[i]), field, expected, str(f)))
        if len(idx) > MAX_LINES_PER_CHECK:
            problems.append(Problem(name, None, field, expected, f"{len(idx) - MAX_LINES_PER_CHECK} more rows like the above"))

    need = ["applicant_id", "depot", "channel"] + (["stage", "date"] if fmt == "long" else stages)
    missing = [c for c in need if c not in raw.columns]
    if missing:  # one line: the whole column list once, not once per missing column
        raise InstanceError([Problem(name, 1, ", ".join(missing), f"columns named {', '.join(missing)} (or --map them)",
                                     f"columns {list(raw.columns)}")])
    _refuse_empty_and_long_ids(raw, name, ["applicant_id", "depot", "channel"], "applicant")
    observed_until = parse_date_option("--observed-until", observed_until)

    if fmt == "long":
        unknown = ~raw["stage"].isin(stages)
        add(unknown, "stage", f"one of the stages {stages}", raw.loc[unknown, "stage"].map(lambda s: f"unknown stage '{s}'"))
        dates, bad, non_iso = parse_dates(raw["date"], date_format, name, "date")
        add(bad & ~unknown, "date", "a date (ISO 8601 like 2026-03-02)", raw.loc[bad & ~unknown, "date"].map(repr))
        if problems:
            raise InstanceError(problems)
        notes["non_iso_dates_parsed"] = non_iso
        raw = raw.assign(_date=dates)
        dup = raw.duplicated(["applicant_id", "stage"], keep=False)
        if dup.any():
            add(dup, "stage", "one date per applicant and stage",
                raw.loc[dup, "applicant_id"].map(lambda a: f"repeated for {a}"))
            raise InstanceError(problems)
        wide = raw.pivot(index="applicant_id", columns="stage", values="_date").reindex(columns=stages)
        static = raw.drop(columns=["stage", "date", "_date"]).groupby("applicant_id", sort=False).first()
        log = static.join(wide).reset_index()
        line_of = lines.groupby(raw["applicant_id"], sort=False).min()  # each applicant's first line
        log_lines = log["applicant_id"].map(line_of)
    else:
        dup = raw["applicant_id"].duplicated(keep="first")
        # each id's first line, vectorised (a per-group lambda took 13 s on 30,000 applicants)
        first_line = lines.groupby(raw["applicant_id"]).transform("min")
        add(dup, "applicant_id", "a unique applicant_id",
            [f"a duplicate of line {first_line[i]}: {raw.at[i, 'applicant_id']!r}" for i in raw.index[dup]])
        log = raw.copy()
        non_iso = 0
        for s in stages:
            dates, bad, n = parse_dates(raw[s], date_format, name, s)
            non_iso += n
            add(bad, s, "a date (ISO 8601 like 2026-03-02) or an empty cell", raw.loc[bad, s].map(repr))
            log[s] = dates
        notes["non_iso_dates_parsed"] = non_iso
        log_lines = lines
        if problems:
            raise InstanceError(problems)

    # Empty application date: the row cannot be used.
    no_applied = log[stages[0]].isna()
    if no_applied.any():
        mask = pd.Series(no_applied.to_numpy(), index=log.index)
        problems.extend(Problem(name, int(log_lines[i]), stages[0], "the application date", "an empty cell")
                        for i in log.index[mask][:MAX_LINES_PER_CHECK])
    observed = pd.Timestamp(observed_until).normalize() if observed_until is not None else log[stages].max().max()
    late = log[stages].gt(observed).any(axis=1)
    for i in log.index[late][:MAX_LINES_PER_CHECK]:
        col = next(s for s in stages if pd.notna(log.at[i, s]) and log.at[i, s] > observed)
        problems.append(Problem(name, int(log_lines[i]), col, f"a date on or before observed_until {observed.date()}",
                                str(log.at[i, col].date())))
    # Stage dates out of order (comparing reached stages in the given order).
    values = log[stages].to_numpy("datetime64[ns]")
    filled = np.where(np.isnat(values), np.datetime64("NaT"), values)
    order_bad = np.zeros(len(log), dtype=bool)
    prev = filled[:, 0]
    for j in range(1, len(stages)):
        cur = filled[:, j]
        both = ~np.isnat(prev) & ~np.isnat(cur)
        order_bad |= both & (cur < prev)
        prev = np.where(np.isnat(cur), prev, cur)
    # a later stage reached while an earlier one is empty: the earlier stage was passed on the
    # next reached stage's date (backward fill), so converters are kept, not dropped
    reached = ~np.isnat(filled)
    later = np.flip(np.maximum.accumulate(np.flip(reached, axis=1), axis=1), axis=1)  # some stage >= j reached
    gaps = later & ~reached
    if gaps.any():
        back = pd.DataFrame(values).bfill(axis=1).to_numpy("datetime64[ns]")
        values = np.where(gaps, back, values)
        log[stages] = pd.DataFrame(values, columns=stages, index=log.index)
        notes["skipped_stages_filled"] = int(gaps.any(axis=1).sum())
    if order_bad.any():
        if on_out_of_order == "error":
            for i in np.flatnonzero(order_bad)[:MAX_LINES_PER_CHECK]:
                shown = ", ".join(f"{s}={log.iloc[i][s].date() if pd.notna(log.iloc[i][s]) else ''}" for s in stages)
                problems.append(Problem(name, int(log_lines.iloc[i]), "stages", "stage dates in stage order, no stage skipped "
                                        "(or --on-out-of-order drop|reorder)", shown))
            if order_bad.sum() > MAX_LINES_PER_CHECK:
                more = int(order_bad.sum()) - MAX_LINES_PER_CHECK
                problems.append(Problem(name, None, "stages", "stage dates in stage order", f"{more} more rows"))
        elif on_out_of_order == "drop":
            notes["out_of_order_dropped"] = int(order_bad.sum())
            log = log.loc[~order_bad].reset_index(drop=True)
        else:
            notes["out_of_order_reordered"] = int(order_bad.sum())
            sorted_vals = np.sort(values[order_bad], axis=1)  # NaT sorts last: reached stages first
            log.loc[order_bad, stages] = pd.DataFrame(sorted_vals, columns=stages).to_numpy()
    if problems:
        raise InstanceError(problems)
    if WINDOW_COLUMN in log.columns:
        own, bad, _ = parse_dates(log[WINDOW_COLUMN], date_format, name, WINDOW_COLUMN)
        if bad.any():
            raise InstanceError([Problem(name, None, WINDOW_COLUMN, "a date or an empty cell (the applicant's end of "
                                         "observation)", f"{log['applicant_id'].iloc[i]}: {log[WINDOW_COLUMN].iloc[i]!r}")
                                 for i in np.flatnonzero(bad.to_numpy())[:MAX_LINES_PER_CHECK]])
        log[WINDOW_COLUMN] = own
    if window_days is not None:
        if not (isinstance(window_days, int) and window_days >= 1):
            raise OptionError("--window-days", "a whole number of days >= 1", window_days)
        window = log[stages[0]] + pd.Timedelta(days=int(window_days))
        given = log[WINDOW_COLUMN] if WINDOW_COLUMN in log.columns else pd.Series(pd.NaT, index=log.index)
        log[WINDOW_COLUMN] = given.where(given.notna() & (given < window), window)
    if WINDOW_COLUMN in log.columns:
        notes["applicants_with_own_window"] = int(log[WINDOW_COLUMN].notna().sum())
    extra = [c for c in log.columns if c not in ("applicant_id", "depot", "channel", WINDOW_COLUMN, *stages)]
    if covariates is not None:
        unknown = [c for c in covariates if c not in extra]
        if unknown:
            raise InstanceError([Problem(name, 1, ", ".join(unknown), f"covariate columns of the log ({', '.join(extra)})",
                                         f"unknown column(s) {', '.join(unknown)}")])
    leaky = _post_stage_columns(log, extra, stages)
    if covariates is not None:
        bad = [c for c in covariates if c in leaky]
        if bad:
            raise InstanceError([Problem(name, 1, c, "a covariate known when the applicant applies",
                                         f"a column filled almost only for applicants who reached {leaky[c]} "
                                         "(it would leak the outcome)") for c in bad])
        keep = list(covariates)
    else:
        keep = [c for c in extra if c not in leaky]
        for c in leaky:
            notes[f"covariate_{c}_dropped_known_only_after_{leaky[c]}"] = 1
    log = log.drop(columns=[c for c in extra if c not in keep])
    notes["covariates_used"] = len(keep)
    # covariates whose non-empty cells are numbers are numeric (e.g. age), else categorical. An
    # infinite number among them is an error (no covariate value is infinite); a few text cells
    # in a column of numbers may be a typo ('abc' among ages) or a real category (a foreign
    # postcode): the column is read as categories, and a note says so
    if BONUS_COLUMN in keep:  # money offered, not a trait: empty is no bonus, and only numbers >= 0
        text = log[BONUS_COLUMN].astype(str).str.strip()
        empty = text.str.lower().isin(NA_WORDS).to_numpy()
        number = pd.to_numeric(text.where(~empty), errors="coerce").to_numpy(float)
        bad = np.flatnonzero(~empty & ~(np.isfinite(number) & (number >= 0)))
        expected = "a sign-on bonus offered: a number >= 0 (currency per converted driver) or an empty cell (none)"
        problems += [Problem(name, None, BONUS_COLUMN, expected, f"{log['applicant_id'].iloc[i]}: "
                             f"{log[BONUS_COLUMN].iloc[i]!r}") for i in bad[:MAX_LINES_PER_CHECK]]
        if len(bad) > MAX_LINES_PER_CHECK:
            problems.append(Problem(name, None, BONUS_COLUMN, expected, f"{len(bad) - MAX_LINES_PER_CHECK} more rows "
                                    "like the above"))
        log[BONUS_COLUMN] = np.where(empty | ~np.isfinite(number), 0.0, number)
        notes["applicants_offered_a_bonus"] = int((log[BONUS_COLUMN] > 0).sum())
    for col in keep:
        if col == BONUS_COLUMN:
            continue
        text = log[col].astype(str).str.strip()
        empty = text.str.lower().isin(NA_WORDS)
        number = pd.to_numeric(text.where(~empty), errors="coerce").to_numpy(float)
        finite, infinite = np.isfinite(number), np.isinf(number)
        stray = ~empty.to_numpy() & np.isnan(number)  # text
        idx = np.flatnonzero(infinite)
        problems += [Problem(name, None, col, "a finite number or an empty cell", f"{log['applicant_id'].iloc[i]}: "
                             f"{log[col].iloc[i]!r}") for i in idx[:MAX_LINES_PER_CHECK]]
        if len(idx) > MAX_LINES_PER_CHECK:
            problems.append(Problem(name, None, col, "a finite number or an empty cell",
                                    f"{len(idx) - MAX_LINES_PER_CHECK} more rows like the above"))
        if finite.any() and not stray.any():
            log[col] = np.where(finite, number, np.median(number[finite]))
            notes[f"numeric_covariate_{col}_empty_filled"] = int(empty.sum())
        elif stray.any() and finite.sum() >= (1 - NUMERIC_STRAY_SHARE) * (finite.sum() + stray.sum()):
            first = log[col].to_numpy()[stray][0]
            notes[f"covariate_{col}_read_as_categories_for_{int(stray.sum())}_cells_that_are_not_numbers_like_"
                  f"{str(first)[:20]}"] = 1
    if problems:
        raise InstanceError(problems)
    notes["applicants"] = int(len(log))
    return log, observed, notes


def read_activity_log(path: str | Path, date_format: str | None = None) -> tuple[pd.DataFrame, dict[str, int]]:
    """Read and check a driver activity log (driver_id, depot, week, blocks); ``date_format``
    as for parse_dates."""
    path = Path(path)
    raw = read_text_csv(path)
    name = path.name
    problems = []
    missing = [c for c in ("driver_id", "depot", "week", "blocks") if c not in raw.columns]
    if missing:
        raise InstanceError([Problem(name, 1, c, f"a column named '{c}'", f"columns {list(raw.columns)}") for c in missing])
    _refuse_empty_and_long_ids(raw, name, ["driver_id", "depot"], "driver-week")
    lines = np.arange(len(raw)) + 2
    weeks, bad, non_iso = parse_dates(raw["week"], date_format, name, "week")
    bad = bad | weeks.isna()
    for i in np.flatnonzero(bad.to_numpy())[:MAX_LINES_PER_CHECK]:
        problems.append(Problem(name, int(lines[i]), "week", "the week's first day as a date (e.g. its Monday)",
                                repr(raw["week"].iloc[i])))
    # whole weeks are counted between rows, so every row must name its week by the same weekday
    # (the log's most common one: Mondays usually, Sundays for retail weeks)
    day = weeks.dt.dayofweek
    usual = int(day[~bad].mode().min()) if (~bad).any() else 0
    off_day = (~bad & (day != usual)).to_numpy()
    usual_name = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")[usual]
    for i in np.flatnonzero(off_day)[:MAX_LINES_PER_CHECK]:
        problems.append(Problem(name, int(lines[i]), "week", f"the week's first day, a {usual_name} like the log's "
                                "other weeks", f"{raw['week'].iloc[i]!r} (a {weeks.iloc[i].day_name()})"))
    if off_day.sum() > MAX_LINES_PER_CHECK:
        problems.append(Problem(name, None, "week", f"the week's first day, a {usual_name}",
                                f"{int(off_day.sum()) - MAX_LINES_PER_CHECK} more rows like the above"))
    blocks = pd.to_numeric(raw["blocks"], errors="coerce")
    bad_blocks = ~blocks.between(0, MAX_BLOCKS_PER_DRIVER)  # NaN and inf included
    for i in np.flatnonzero(bad_blocks.to_numpy())[:MAX_LINES_PER_CHECK]:
        problems.append(Problem(name, int(lines[i]), "blocks", f"a number in [0, {MAX_BLOCKS_PER_DRIVER:g}] (blocks the "
                                "driver worked that week)", repr(raw["blocks"].iloc[i])))
    dup = raw.duplicated(["driver_id", "week"], keep="first").to_numpy()
    for i in np.flatnonzero(dup)[:MAX_LINES_PER_CHECK]:
        problems.append(Problem(name, int(lines[i]), "week", "one row per driver and week",
                                f"a repeat for driver {raw['driver_id'].iloc[i]!r}"))
    if problems:
        raise InstanceError(problems)
    log = raw.assign(week=weeks, blocks=blocks)
    return log, {"rows": int(len(log)), "non_iso_dates_parsed": non_iso}
