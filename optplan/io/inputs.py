"""Reading input files safely: the one place every reader (instance tables and manifest,
demand history, applicant and activity logs, replan state) opens a file.

What is refused here, each as one ``Problem`` naming the file (and line, field):

* a path that is not a regular file (a directory, a FIFO that would block forever, a
  device), does not exist, or has a name the operating system cannot hold;
* text that is not UTF-8, or holds a NUL byte (pandas would cut the cell at it silently);
* a header whose names repeat once surrounding spaces are trimmed (`` depot`` and ``depot``);
* a cell longer than ``MAX_CELL_CHARS`` (no field of ours needs one; the message shows its
  length, not its text).

Every line ending (CRLF, old-Mac CR) and a UTF-8 byte-order mark are accepted.
"""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from optplan.errors import InstanceError, OptionError, Problem

#: Longest cell any input table may hold, in characters (ids, dates and numbers are short).
MAX_CELL_CHARS = 1_000
#: Longest id (depot, region, channel, scenario, applicant, driver), in characters: ids end
#: up in file names and chart labels.
MAX_ID_CHARS = 100
#: Largest input file read, in bytes (a national instance is a few hundred MB at most).
MAX_FILE_BYTES = 4 * 1024**3


def file_problem(path: Path, what: str, shown: str | None = None) -> Problem | None:
    """Why ``path`` cannot be read as ``what`` (None when it can)."""
    shown = shown or str(path)
    too_long = [p for p in path.parts if len(os.fsencode(p)) > 255]
    if too_long:
        return Problem(_clip(shown), None, None, f"{what} whose name has at most 255 bytes per part",
                       f"a name part of {len(os.fsencode(too_long[0]))} bytes")
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return Problem(shown, None, None, what, "no such file")
    except OSError as exc:
        return Problem(_clip(shown), None, None, what, exc.strerror or type(exc).__name__)
    if stat.S_ISDIR(info.st_mode):
        return Problem(shown, None, None, what, "a directory")
    if not stat.S_ISREG(info.st_mode):
        kind = "a FIFO (named pipe)" if stat.S_ISFIFO(info.st_mode) else "not a regular file"
        return Problem(shown, None, None, what, kind)
    if info.st_size > MAX_FILE_BYTES:
        return Problem(shown, None, None, f"{what} of at most {MAX_FILE_BYTES // 1024**3} GiB",
                       f"{info.st_size / 1024**3:.1f} GiB")
    return None


def read_text(path: Path, what: str, shown: str | None = None) -> str:
    """The file's text, UTF-8 (a BOM dropped), line endings as ``\\n``; raises InstanceError."""
    shown = shown or str(path)
    problem = file_problem(path, what, shown)
    if problem is not None:
        raise InstanceError([problem])
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InstanceError([Problem(shown, None, None, what, exc.strerror or type(exc).__name__)]) from None
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise InstanceError([Problem(shown, line, None, "text without NUL bytes", f"a NUL byte at byte {nul}")])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InstanceError([Problem(shown, line, None, "UTF-8 text", f"byte 0x{data[exc.start]:02x} at byte {exc.start}")]) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def input_under(out: Path, inputs) -> Path | None:
    """The first of ``inputs`` that the output path ``out`` is or holds, else None: outputs
    may not be, or contain, an input (inputs are never modified or overwritten)."""
    target = Path(out).resolve()
    for source in inputs:
        src = Path(source).resolve()
        if src == target or target in src.parents:
            return Path(source)
    return None


class _DatesAsText(yaml.SafeLoader):
    """YAML without implicit dates: ``start_date: 2027-02-29`` stays text, so the schema
    reports the field (PyYAML's own date constructor raises a bare 'day is out of range').
    A key given twice in one mapping is an error (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # '<<': merged keys may be overridden locally
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:
                continue  # the base constructor reports unhashable keys
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} given twice (first on line {seen[key] + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


_DatesAsText.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def read_yaml_mapping(path: Path, what: str, shown: str | None = None, mapping: str = "a mapping of fields") -> dict:
    """A YAML file (manifest, settings, state, pipeline config) that must hold a mapping,
    dates kept as text; InstanceError (one line) for a file, YAML or top-level problem."""
    shown = shown or Path(path).name
    try:
        data = yaml.load(read_text(Path(path), what, shown), Loader=_DatesAsText)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InstanceError([Problem(shown, mark.line + 1 if mark is not None else None, None, "valid YAML",
                                     str(getattr(exc, "problem", None) or exc).splitlines()[0])]) from None
    if not isinstance(data, dict):
        found = {type(None): "an empty file", list: "a list", str: "a single value"}.get(
            type(data), f"a single {type(data).__name__.replace('int', 'number').replace('float', 'number')}")
        raise InstanceError([Problem(shown, None, None, mapping, found)])
    return data


def read_csv_strings(path: Path, what: str, shown: str | None = None) -> pd.DataFrame:
    """A CSV as stripped strings (every cell; empty cells are ""), header names trimmed.

    Raises InstanceError for the file-level problems in the module docstring."""
    shown = shown or path.name
    text = read_text(path, what, shown)
    return csv_strings(text, shown)


def read_table_strings(path: Path, what: str, shown: str | None = None) -> pd.DataFrame:
    """A table as stripped strings: CSV (``read_csv_strings``) or, for a ``.parquet`` file,
    Parquet read column-wise by pyarrow and turned into the text the same table would have in
    CSV (``parquet_strings``), so that one validation gives the same one-line problems
    (line = row + 1, the header being line 1, as in the CSV)."""
    if Path(path).suffix.lower() == ".parquet":
        return parquet_strings(Path(path), what, shown)
    return read_csv_strings(path, what, shown)


def parquet_strings(path: Path, what: str, shown: str | None = None) -> pd.DataFrame:
    """A Parquet table as the strings CSV would hold: integers as digits, floats in their
    shortest round-trip form, dates as YYYY-MM-DD, nulls (and NaN) as empty cells; the same
    header and long-cell checks. Raises InstanceError naming the file."""
    shown = shown or path.name
    problem = file_problem(path, what, shown)
    if problem is not None:
        raise InstanceError([problem])
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq
    except ImportError:
        raise InstanceError([Problem(shown, None, None, f"{what}: pyarrow to read Parquet (pip install pyarrow), "
                                     "or the table as CSV", "no pyarrow")]) from None
    try:
        table = pq.read_table(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow's many error types: one line naming the file
        raise InstanceError([Problem(shown, None, None, f"{what} as a Parquet file",
                                     _clip(str(exc).strip() or type(exc).__name__))]) from None
    problems = header_problems(list(table.column_names), shown)
    if problems:
        raise InstanceError(problems)
    out = {}
    for name in table.column_names:  # column-wise, in Arrow's C++: the text CSV would hold
        col = table.column(name)
        if pa.types.is_floating(col.type):  # NaN is an empty cell, as pandas writes it to CSV
            col = pc.if_else(pc.is_nan(col), pa.scalar(None, col.type), col)
        if pa.types.is_timestamp(col.type) or pa.types.is_date(col.type):
            text = pc.strftime(col, format="%Y-%m-%d")
        else:
            text = pc.cast(col, pa.string())  # numbers in their shortest round-trip digits
        out[str(name).strip()] = pc.utf8_trim_whitespace(pc.fill_null(text, "")).to_pandas().astype(object)
    df = pd.DataFrame(out, index=pd.RangeIndex(table.num_rows), dtype=object)
    longest = int(max((df[c].str.len().max() for c in df.columns), default=0) or 0)
    if longest > MAX_CELL_CHARS:
        problems = long_cell_problems(df, shown)
        if problems:
            raise InstanceError(problems)
    df.attrs["stripped"] = True
    df.attrs["longest_line"] = longest
    return df


def csv_strings(text: str, shown: str) -> pd.DataFrame:
    """Parse CSV text as in :func:`read_csv_strings`."""
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skip_blank_lines=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InstanceError([Problem(shown, None, None, "a CSV table with a header row", _clip(str(exc).strip()))]) from None
    problems = header_problems(list(df.columns), shown)
    df.columns = [str(c).strip() for c in df.columns]
    if problems:
        raise InstanceError(problems)
    longest = max(map(len, text.split("\n")))
    if longest > MAX_CELL_CHARS:
        problems = long_cell_problems(df, shown)  # only a long line can hold a long cell
        if problems:
            raise InstanceError(problems)
    if len(df.columns) and (" " in text or "\t" in text):  # str.strip is the slow part of a big file
        df = df.apply(lambda s: s.str.strip())
    df.attrs["stripped"] = True
    df.attrs["longest_line"] = longest  # no cell is longer (lets callers skip length checks)
    return df


def header_problems(columns: list, shown: str) -> list[Problem]:
    """Header names that repeat after trimming (pandas renames the second 'x' to 'x.1', so a
    raw duplicate shows up that way too)."""
    raw = [str(c) for c in columns]
    names = [c.strip() for c in raw]
    out, seen = [], {}
    for i, (r, n) in enumerate(zip(raw, names, strict=True)):
        if len(n) > MAX_CELL_CHARS:
            out.append(Problem(shown, 1, None, f"column names of at most {MAX_CELL_CHARS} characters",
                               f"a name of {len(n)} characters"))
            continue
        if n == "":
            out.append(Problem(shown, 1, None, "a name for every column", f"column {i + 1} unnamed"))
            continue
        if n in seen:
            out.append(Problem(shown, 1, n, "each column name once (after trimming spaces)",
                               f"{_clip(repr(r))} as column {i + 1}, as {raw[seen[n]]!r} already as column {seen[n] + 1}"))
        else:
            seen[n] = i
    # pandas' own de-duplication: 'depot', 'depot.1'
    for i, n in enumerate(names):
        base, dot, num = n.rpartition(".")
        if dot and num.isdigit() and base in seen and seen[base] < i and n not in names[:i]:
            out.append(Problem(shown, 1, base, "each column name once", f"{base!r} again as column {i + 1}"))
    return out


def long_cell_problems(df: pd.DataFrame, shown: str, limit: int = 25) -> list[Problem]:
    """Cells longer than MAX_CELL_CHARS (lines counted with the header as line 1)."""
    out = []
    cells = df.to_numpy(dtype=object)
    # one pass over the cells, not a pandas call per column (200,000 columns took 58 s that way)
    lengths = np.fromiter((len(v) if isinstance(v, str) else 0 for v in cells.ravel()), dtype=np.int64,
                          count=cells.size).reshape(cells.shape)
    for j in np.flatnonzero((lengths > MAX_CELL_CHARS).any(axis=0)):
        for i in np.flatnonzero(lengths[:, j] > MAX_CELL_CHARS)[:limit]:
            out.append(Problem(shown, int(i) + 2, str(df.columns[j]), f"a cell of at most {MAX_CELL_CHARS} characters",
                               f"{int(lengths[i, j]):,} characters"))
    return out


def long_id_problems(values: pd.Series, lines, shown: str, field: str, limit: int = 25) -> list[Problem]:
    """Ids longer than MAX_ID_CHARS."""
    lengths = values.astype(str).str.len().to_numpy()
    lines = np.asarray(lines)
    return [
        Problem(shown, int(lines[i]), field, f"an id of at most {MAX_ID_CHARS} characters", f"{int(lengths[i])} characters")
        for i in np.flatnonzero(lengths > MAX_ID_CHARS)[:limit]
    ]


def _clip(text: str, n: int = 120) -> str:
    return text if len(text) <= n else f"{text[:n]}... ({len(text):,} characters)"


def parse_date_option(name: str, value) -> pd.Timestamp | None:
    """A date given on the command line (e.g. --observed-until), as a day; OptionError if not."""

    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError, pd.errors.OutOfBoundsDatetime):
        raise OptionError(name, "a date like 2026-03-02", _clip(str(value))) from None
    if ts is pd.NaT or pd.isna(ts):
        raise OptionError(name, "a date like 2026-03-02", str(value))
    if ts.tzinfo is not None:
        raise OptionError(name, "a date without a time zone", str(value))
    return ts.normalize()
