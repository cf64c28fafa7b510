"""Mutations of input files, and the invariant every reader must keep on them (issue #16).

A mutation takes a ``random.Random`` and the files of one valid input (name -> bytes) and
returns mutated files; its class (cell, header, row, bytes, manifest) is its name's prefix.
Driven by hypothesis in tests/test_property_inputs.py (a few hundred per reader per CI run,
shrinking to a minimal failing mutation) and by a plain seeded loop in
benchmarks/bench_mutations.py (>= 10,000, tallied by class).

The invariant (``check_*``): the reader either refuses cleanly (an InputError whose problems
each print as one line naming the file) or accepts, and then what it produced is sound: for
an instance, the solve either proves infeasibility or gives a plan whose independent
evaluator agrees with the LP objective, every number finite; for a history, finite
non-negative demand; for logs, dates in range and finite blocks. Anything else (another
exception, a NaN, a disagreement) is a bug.
"""

from __future__ import annotations

import io
import json
import math
import random
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

#: The LP objective and the evaluator's expected cost agree to this relative tolerance.
EVALUATOR_RTOL = 1e-6

# ------------------------------------------------------------------ values a cell can become

NASTY_CELLS = [
    "", " ", "nan", "NaN", "NA", "null", "None", "inf", "-inf", "Infinity", "1e308", "-1e308", "1e-320",
    "-1", "-0", "0", "1", "0.5", "2", "1.5", "99999999999999999999", "-99999999999999999999",
    "9223372036854775808", "1e9", "1e15", "abc", "1,5", "1_000", "0x10", "١٢", "½", "\u00a01", "1 ",
    "2027-02-29", "2262-03-01", "1600-01-01", "2026-01-05T00:00:00+02:00", "\x00", "2\x0027", "é", "D001",
    "S001", "R01", "x" * 300, "7" * 5000, '"', "'", ",", "\t", "D001,D002", "true", "-", "1e",
]
NASTY_YAML = [
    ".inf", "-.inf", ".nan", "-1", "0", "1e308", "1e-300", "2027-02-29", "'2027-02-30'", "2262-03-01", "null", "[]",
    "{}", "[1, 2]", "abc", "''", "true", "99999999999999999999", "1000", "0.5", "3", "'USD'", "usd", "EURO",
]


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def _table_names(files: dict[str, bytes]) -> list[str]:
    return sorted(n for n in files if n.endswith(".csv"))


def cell_replace(rng: random.Random, files: dict[str, bytes]) -> dict[str, bytes]:
    """One cell of one table becomes a nasty value."""
    name = rng.choice(_table_names(files))
    df = pd.read_csv(io.BytesIO(files[name]), dtype=str, keep_default_na=False)
    if df.empty:
        return files
    df.iloc[rng.randrange(len(df)), rng.randrange(len(df.columns))] = rng.choice(NASTY_CELLS)
    return {**files, name: df.to_csv(index=False).encode("utf-8", "surrogatepass")}


def cell_perturb(rng: random.Random, files: dict[str, bytes]) -> dict[str, bytes]:
    """One numeric cell scaled or shifted (plausible values: these usually stay valid and
    exercise the solve rather than the reader)."""
    name = rng.choice(_table_names(files))
    df = pd.read_csv(io.BytesIO(files[name]), dtype=str, keep_default_na=False)
    numeric = [c for c in df.columns if pd.to_numeric(df[c], errors="coerce").notna().all() and len(df)]
    if not numeric:
        return files
    col = rng.choice(numeric)
    i = rng.randrange(len(df))
    x = float(df.at[i, col])
    x = float(rng.choice([x * rng.choice([0, 0.5, 2, 10, 1000]), x + rng.choice([-1, 1, 0.001]), round(x)]))
    df.at[i, col] = repr(x) if not x.is_integer() else str(int(x))
    return {**files, name: df.to_csv(index=False).encode()}


def header_mutate(rng: random.Random, files: dict[str, bytes]) -> dict[str, bytes]:
    """The header: a name padded, duplicated, renamed, dropped, or a column added."""
    name = rng.choice(_table_names(files))
    lines = _lines(files[name])
    cols = lines[0].split(b",")
    j = rng.randrange(len(cols))
    how = rng.choice(["pad", "dup", "rename", "drop", "add", "case"])
    if how == "pad":
        cols[j] = b" " + cols[j] + b" "
    elif how == "dup":
        cols.append(b" " + cols[j])
        lines = [lines[0]] + [line + b",1" if line else line for line in lines[1:]]
    elif how == "rename":
        cols[j] = cols[j][:-1] if len(cols[j]) > 1 else b"x"
    elif how == "drop":
        cols.pop(j)
        lines = [lines[0]] + [b",".join(line.split(b",")[:j] + line.split(b",")[j + 1:]) for line in lines[1:]]
    elif how == "add":
        cols.append(b"extra")
    else:
        cols[j] = cols[j].upper()
    lines[0] = b",".join(cols)
    return {**files, name: b"\n".join(lines)}


def row_mutate(rng: random.Random, files: dict[str, bytes]) -> dict[str, bytes]:
    """Rows: one deleted, duplicated, cut short, given an extra cell, blank lines, or all
    rows dropped (header only)."""
    name = rng.choice(_table_names(files))
    lines = _lines(files[name])
    body = [line for line in lines[1:] if line]
    how = rng.choice(["delete", "duplicate", "truncate", "extra_cell", "blank", "header_only", "many_duplicates"])
    if not body and how != "blank":
        how = "blank"
    i = rng.randrange(len(body)) if body else 0
    if how == "delete":
        body.pop(i)
    elif how == "duplicate":
        body.insert(rng.randrange(len(body) + 1), body[i])
    elif how == "truncate":
        body[i] = body[i][: rng.randrange(len(body[i]) + 1)]
    elif how == "extra_cell":
        body[i] += b",1"
    elif how == "blank":
        body.insert(rng.randrange(len(body) + 1) if body else 0, b"")
    elif how == "header_only":
        body = []
    else:  # many repeats, capped so that repeated rounds do not grow a file without bound
        body = (body * 50)[:20_000]
    return {**files, name: b"\n".join([lines[0], *body]) + b"\n"}


def bytes_mutate(rng: random.Random, files: dict[str, bytes]) -> dict[str, bytes]:
    """Bytes: a random byte inserted or flipped, invalid UTF-8, CR or CRLF line endings, a
    BOM, the file emptied or cut mid-way."""
    name = rng.choice(sorted(files))
    data = files[name]
    how = rng.choice(["insert", "flip", "latin1", "cr", "crlf", "bom", "empty", "cut", "nul"])
    pos = rng.randrange(len(data) + 1)
    if how == "insert":
        data = data[:pos] + bytes([rng.randrange(256)]) + data[pos:]
    elif how == "flip" and data:
        pos = min(pos, len(data) - 1)
        data = data[:pos] + bytes([data[pos] ^ (1 << rng.randrange(8))]) + data[pos + 1:]
    elif how == "latin1":
        data = data[:pos] + b"\xe9" + data[pos:]
    elif how == "cr":
        data = data.replace(b"\n", b"\r")
    elif how == "crlf":
        data = data.replace(b"\n", b"\r\n")
    elif how == "bom":
        data = b"\xef\xbb\xbf" + data
    elif how == "empty":
        data = b""
    elif how == "cut":
        data = data[:pos]
    else:
        data = data[:pos] + b"\x00" + data[pos:]
    return {**files, name: data}


def manifest_mutate(rng: random.Random, files: dict[str, bytes]) -> dict[str, bytes]:
    """instance.yaml: a value replaced by a nasty one, a field removed, an unknown field added."""
    if "instance.yaml" not in files:
        return bytes_mutate(rng, files)
    lines = files["instance.yaml"].decode("utf-8", "replace").split("\n")
    fields = [i for i, line in enumerate(lines) if ":" in line and not line.rstrip().endswith(":")]
    i = rng.choice(fields)
    how = rng.choice(["value", "value", "remove", "unknown"])
    key = lines[i].split(":", 1)[0]
    if how == "value":
        lines[i] = f"{key}: {rng.choice(NASTY_YAML)}"
    elif how == "remove":
        lines.pop(i)
    else:
        lines.insert(i, f"{key.split(key.strip())[0]}surprise: 1")
    return {**files, "instance.yaml": "\n".join(lines).encode()}


MUTATIONS: dict[str, Callable[[random.Random, dict[str, bytes]], dict[str, bytes]]] = {
    "cell": cell_replace,
    "cell_plausible": cell_perturb,
    "header": header_mutate,
    "row": row_mutate,
    "bytes": bytes_mutate,
    "manifest": manifest_mutate,
}


def mutate(rng: random.Random, files: dict[str, bytes], kind: str | None = None, rounds: int = 1) -> tuple[str, dict]:
    kind = kind or rng.choice(sorted(MUTATIONS))
    for _ in range(rounds):
        files = MUTATIONS[kind](rng, files)
    return kind, files


# ------------------------------------------------------------------ base inputs


def folder_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def history_files() -> dict[str, bytes]:
    """Two depots, 60 weeks, with a holiday column."""
    rows = ["depot,week_start,blocks,holiday"]
    for d in ("D1", "D2"):
        for i, day in enumerate(pd.date_range("2024-01-01", periods=60, freq="7D")):
            rows.append(f"{d},{day.date()},{100 + 10 * math.sin(i / 4) + (5 if d == 'D2' else 0):.1f},{int(i % 13 == 0)}")
    return {"history.csv": ("\n".join(rows) + "\n").encode()}


def log_files() -> dict[str, bytes]:
    from optplan.estimate.synthetic import generate_activity_log, generate_applicant_log

    apps, _, _ = generate_applicant_log(300, seed=1, depots=2, weeks=52, censored_share=0.3)
    act, _ = generate_activity_log(60, seed=1, depots=2, weeks=52)
    return {"applicants.csv": apps.to_csv(index=False, lineterminator="\n").encode(),
            "activity.csv": act.to_csv(index=False, lineterminator="\n").encode()}


def write(folder: Path, files: dict[str, bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)


# ------------------------------------------------------------------ invariants


#: Words of the libraries underneath (pydantic, Python) that no message may show (issue #33).
LIBRARY_WORDS = ("Input should", "String should match", "NoneType", "datetime.date(", "expected expected",
                 "Value error,", "list[float]", "function-after")


def _assert_clean_refusal(exc, files: dict[str, bytes]) -> None:
    from optplan.errors import InputError

    assert isinstance(exc, InputError), f"{type(exc).__name__}: {exc}"
    assert exc.problems, "a refusal must name at least one problem"
    for p in exc.problems:
        text = str(p)
        assert "\n" not in text and len(text) < 1000, text
        assert p.file, text
        assert not any(w in text for w in LIBRARY_WORDS), f"library words in a message: {text}"
        assert str(p.expected).count(", found ") == 0, f"a message nested in a message: {text}"


def _refuse_constant(token: str):
    raise AssertionError(f"a non-finite number in JSON output: {token}")


def check_instance(files: dict[str, bytes], tmp: Path) -> str:
    """'refused', 'infeasible' or 'solved' (after checking the plan against the evaluator); an
    instance that reads (validate's ok) and that solve refuses is a failure: the two agree."""
    import optplan
    from optplan.errors import InfeasibleError, InputError

    write(tmp, files)
    try:
        inst = optplan.load_instance(tmp)
    except InputError as exc:
        _assert_clean_refusal(exc, files)
        return "refused"
    try:
        plan = optplan.solve(inst)
    except InfeasibleError:
        return "infeasible"
    except InputError as exc:  # validate said ok: solve (with its defaults) may not refuse (issue #33)
        raise AssertionError(f"validate accepted the instance, solve refused it: {exc}") from None
    assert plan.status.objective is not None and math.isfinite(plan.status.objective)
    ev = optplan.evaluate(plan, inst)
    assert math.isclose(ev.expected_cost, plan.status.objective, rel_tol=EVALUATOR_RTOL, abs_tol=1e-6), \
        (ev.expected_cost, plan.status.objective)
    for name, text in plan.render().items():  # what `solve` writes: no non-finite number, valid JSON
        if name.endswith(".json"):
            json.loads(text, parse_constant=_refuse_constant)
        elif name.endswith(".csv"):
            cells = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False).to_numpy().ravel()
            assert not any(c.lower() in ("nan", "inf", "-inf", "infinity") for c in cells), name
    return "solved"


def check_history(files: dict[str, bytes], tmp: Path) -> str:
    from optplan.errors import InputError
    from optplan.forecast.history import read_history

    write(tmp, files)
    try:
        h = read_history(tmp / "history.csv")
    except InputError as exc:
        _assert_clean_refusal(exc, files)
        return "refused"
    y = h.blocks[np.isfinite(h.blocks)]
    assert (y >= 0).all() and y.size > 0
    return "read"


def check_applicant_log(files: dict[str, bytes], tmp: Path) -> str:
    from optplan.errors import InputError
    from optplan.estimate.logs import read_applicant_log

    write(tmp, files)
    try:
        log, observed, _ = read_applicant_log(tmp / "applicants.csv", on_out_of_order="reorder")
    except InputError as exc:
        _assert_clean_refusal(exc, files)
        return "refused"
    assert pd.Timestamp("1900-01-01") <= observed <= pd.Timestamp("2201-01-01")
    assert len(log) > 0
    return "read"


def check_activity_log(files: dict[str, bytes], tmp: Path) -> str:
    from optplan.errors import InputError
    from optplan.estimate.logs import read_activity_log

    write(tmp, files)
    try:
        log, _ = read_activity_log(tmp / "activity.csv")
    except InputError as exc:
        _assert_clean_refusal(exc, files)
        return "refused"
    assert np.isfinite(log["blocks"].to_numpy(float)).all() and len(log) > 0
    return "read"


def fresh_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="optplan-mutation-"))


# ------------------------------------------------------------------ the loop's inputs (issue #29)
#: The demo instance the loop's tables are read against (never mutated here).
DEMO = Path(__file__).resolve().parents[1] / "instances" / "demo"


def decision_files() -> dict[str, bytes]:
    """The demo with a decisions.csv: a fixed, a min and a max row (applicants and spend)."""
    files = folder_files(DEMO)
    files["decisions.csv"] = (b"depot,channel,week,lever,rule,value,currency,note\n"
                              b"D001,referral,1,applicants,fixed,2,,campaign\n"
                              b"D002,*,2,applicants,min,1,,\n"
                              b"D003,,3,incentive_spend,max,100,USD,\n")
    return files


def loop_files() -> dict[str, bytes]:
    """Logs of the demo's weeks -3..2, a spend table and the demand seen in weeks 1..2."""
    apps = ["applicant_id,depot,channel,applied,background_check,onboarding,first_block"]
    act = ["driver_id,depot,week,blocks"]
    for i, d in enumerate(("D001", "D002", "D003", "D004", "D005")):
        for j, ch in enumerate(("referral", "job_board", "agency")):
            apps.append(f"A{i}{j}1,{d},{ch},2026-12-14,2026-12-21,,2027-01-04")
            apps.append(f"A{i}{j}2,{d},{ch},2027-01-05,,,")
        for k in range(4):
            for w in ("2026-12-21", "2026-12-28", "2027-01-04", "2027-01-11")[k % 2:]:
                act.append(f"R{i}{k},{d},{w},{1 + k}")
    spend = ["depot,week,spend"] + [f"D00{i},2027-01-04,{100 + i}" for i in range(1, 6)]
    seen = ["depot,week,blocks"] + [f"D00{i},{w},{150 + 10 * i + w}" for i in range(1, 6) for w in (1, 2)]
    return {name: ("\n".join(rows) + "\n").encode() for name, rows in
            (("applicants.csv", apps), ("activity.csv", act), ("spend.csv", spend), ("seen.csv", seen))}


def state_files() -> dict[str, bytes]:
    """The state folder the demo's plan expects at week 5 (state.yaml, drivers.csv, recruited.csv):
    what a planner edits by hand before `optplan replan --state`."""
    import shutil

    import optplan
    from optplan.planning.replan import expected_state

    inst = optplan.load_instance(DEMO)
    folder = fresh_dir()
    try:
        expected_state(inst, optplan.solve(inst, orders_weeks=0), 5).write(folder)
        return folder_files(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def check_state(files: dict[str, bytes], tmp: Path) -> str:
    """A re-plan from the (mutated) state folder: a clean refusal, a proof of infeasibility, or a
    plan of the remaining weeks whose cost is finite and is the evaluator's."""
    import optplan
    from optplan.errors import InfeasibleError, InputError
    from optplan.planning.replan import load_state, replan

    write(tmp, files)
    inst = optplan.load_instance(DEMO)
    try:
        r = replan(inst, load_state(tmp, inst), orders_weeks=0)
    except InfeasibleError:
        return "solved"
    except InputError as exc:
        _assert_clean_refusal(exc, files)
        return "refused"
    assert r.plan.status.objective is not None and math.isfinite(r.plan.status.objective)
    ev = optplan.evaluate(r.plan, r.remaining)
    assert math.isclose(ev.expected_cost, r.plan.status.objective, rel_tol=EVALUATOR_RTOL, abs_tol=1e-6)
    return "solved"


def pipeline_files() -> dict[str, bytes]:
    """The shipped pipeline example (config, settings, depots, channels), the history named by
    its absolute path so that the folder can move."""
    folder = DEMO.parents[1] / "examples" / "pipeline"
    files = {n: (folder / n).read_bytes() for n in ("pipeline.yaml", "settings.yaml", "depots.csv", "channels.csv")}
    history = (DEMO.parents[1] / "examples" / "data" / "walmart_store_weekly_sales_30.csv").resolve()
    files["pipeline.yaml"] = files["pipeline.yaml"].replace(b"../data/walmart_store_weekly_sales_30.csv",
                                                            str(history).encode())
    return files


#: Lines a pipeline refusal may print: the capped problem lines, the summary, the "and N more".
MAX_PIPELINE_LINES = 60


def check_pipeline_config(files: dict[str, bytes], tmp: Path) -> str:
    """`optplan pipeline CONFIG --check` on the (mutated) example, through the CLI: exit 0 (the
    whole config and every input checked) or exit 2 with at most MAX_PIPELINE_LINES lines, each
    naming one of the user's files or an option, no library words; nothing written either way."""
    from click.testing import CliRunner

    from optplan.cli import main

    write(tmp / "cfg", files)
    out = tmp / "run"
    r = CliRunner().invoke(main, ["pipeline", str(tmp / "cfg" / "pipeline.yaml"), "--check", "--out", str(out)])
    assert r.exit_code in (0, 2), (r.exit_code, r.output[-800:])
    assert "internal error" not in r.output and "Traceback" not in r.output, r.output[-800:]
    assert not out.exists(), "--check writes nothing"
    if r.exit_code == 0:
        return "read"
    errors = [x for x in r.output.splitlines() if x.startswith("error:")]
    assert errors and len(r.output.splitlines()) <= MAX_PIPELINE_LINES, r.output[-800:]
    named = tuple(f"error: {n}" for n in files) + ("error: walmart_store_weekly_sales_30.csv", "error: ...",
                                                   "error: command line", "error: --")
    assert all(e.startswith(named) for e in errors), errors
    assert not any(w in r.output for w in LIBRARY_WORDS), r.output[-800:]
    return "refused"


def check_loop(files: dict[str, bytes], tmp: Path) -> str:
    """The state from the logs at week 3 and the monitor on the demand seen: a clean refusal, or
    a state that loads back and a watch whose JSON holds only finite numbers."""
    import optplan
    from optplan.errors import InputError
    from optplan.planning.logstate import write_state_from_logs
    from optplan.planning.monitor import monitor_files
    from optplan.planning.replan import initial_state, load_state

    write(tmp, files)
    inst = optplan.load_instance(DEMO)
    out = "read"
    try:
        write_state_from_logs(inst, 3, tmp / "applicants.csv", tmp / "activity.csv", tmp / "spend.csv", tmp / "state",
                              fallback=lambda: initial_state(inst))
        st = load_state(tmp / "state", inst)
        assert np.isfinite(st.drivers["active_drivers"].to_numpy(float)).all() and math.isfinite(st.spend_total)
    except InputError as exc:
        _assert_clean_refusal(exc, files)
        out = "refused"
    try:
        monitor_files(inst, tmp / "seen.csv", tmp / "watch", applicants=None)
        json.loads((tmp / "watch" / "monitor.json").read_text(), parse_constant=_refuse_constant)
    except InputError as exc:
        _assert_clean_refusal(exc, files)
        out = "refused"
    return out


# ------------------------------------------------------------------ every input kind

def _with_targets() -> dict[str, bytes]:
    """The demo with expected-value targets (service level, driver utilisation, blocks per driver)."""
    files = folder_files(DEMO)
    files["instance.yaml"] += b"targets:\n  service_level: 0.9\n  driver_utilisation: 0.5\n  blocks_per_driver: 1.0\n"
    return files


def _with_supply() -> dict[str, bytes]:
    """The demo with a supply.csv: blocks per driver by depot and week (a seasonal dip at D001,
    a peak at D002), overriding the depots' constants there; and a sign-on bonus menu (issue #31:
    two levels on the capped job board, one on the agency)."""
    files = folder_files(DEMO)
    files["supply.csv"] = (b"depot,week,blocks_per_driver\n" + b"".join(
        f"D001,{w},{3.5 + 0.1 * w:.2f}\n".encode() for w in range(1, 7)) + b"D002,4,3.1\nD002,5,3.3\n")
    files["bonuses.csv"] = (b"channel,bonus_per_driver,conversion_uplift,applicant_uplift\n"
                            b"job_board,40,0.25,\njob_board,90,0.5,0\nagency,60,0.2,\nreferral,30,0,0.5\n")
    return files


#: Every input kind: its valid base files and the invariant's check (tests/test_property_inputs.py
#: and benchmarks/bench_mutations.py both run them).
KINDS: dict[str, tuple[Callable[[], dict[str, bytes]], Callable[[dict[str, bytes], Path], str]]] = {
    "instance": (lambda: folder_files(DEMO), check_instance),
    "history": (history_files, check_history),
    "applicants": (lambda: {"applicants.csv": log_files()["applicants.csv"]}, check_applicant_log),
    "activity": (lambda: {"activity.csv": log_files()["activity.csv"]}, check_activity_log),
    # issue #33: multi-country, long-lead periods, targets, supply, re-plan states, pipeline configs
    "world": (lambda: folder_files(DEMO.parent / "world"), check_instance),
    "longlead": (lambda: folder_files(DEMO.parent / "longlead"), check_instance),
    "targets": (_with_targets, check_instance),
    "supply": (_with_supply, check_instance),
    "decisions": (decision_files, check_instance),  # issue #29: a planner's committed decisions
    "loop": (loop_files, check_loop),  # issue #29: logs, spend and demand seen -> the state and the monitor
    "state": (state_files, check_state),
    "pipeline": (pipeline_files, check_pipeline_config),
}
#: The kinds added after the first four (issue #29, #33): a plan (or a pipeline check) each.
NEW_KINDS = ("world", "longlead", "targets", "supply", "decisions", "loop", "state", "pipeline")
