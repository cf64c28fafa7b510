"""Instance tables as Parquet (issue #34 part 1): read column-wise by pyarrow and validated as
the CSV would be, so the same instance gives the same plan files and a bad cell the same
one-line problem (the line the CSV would have: row + 1, the header being line 1)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from optplan.cli import main

pytest.importorskip("pyarrow")

DEMO = Path(__file__).resolve().parents[1] / "instances" / "demo"
TABLES = ("depots", "scenarios", "demand", "channels", "yield")


def as_parquet(folder: Path) -> Path:
    """The demo with its main tables as Parquet (typed columns, as a data pipeline writes them)."""
    pq = folder / "pq"
    shutil.copytree(DEMO, pq)
    text = (pq / "instance.yaml").read_text()
    for name in TABLES:
        df = pd.read_csv(pq / f"{name}.csv")  # numbers as numbers, ids as text
        df.to_parquet(pq / f"{name}.parquet", index=False)
        (pq / f"{name}.csv").unlink()
        assert f"{name}.csv" in text, name
        text = text.replace(f"{name}.csv", f"{name}.parquet")
    (pq / "instance.yaml").write_text(text)
    return pq


def solve(inst: Path, out: Path):
    r = CliRunner().invoke(main, ["solve", str(inst), "--out", str(out)])
    return r.exit_code, r.output


def test_a_parquet_instance_is_the_csv_instance(tmp_path):
    pq = as_parquet(tmp_path)
    code, out = solve(pq, tmp_path / "a")
    assert code == 0, out
    code, out = solve(DEMO, tmp_path / "b")
    assert code == 0, out
    for name in ("applicants.csv", "incentives.csv", "drivers.csv", "service.csv"):
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text(), name


def test_a_bad_parquet_cell_gets_the_csvs_one_line_problem(tmp_path):
    pq = as_parquet(tmp_path)
    csv = tmp_path / "csv"
    shutil.copytree(DEMO, csv)
    demand = pd.read_parquet(pq / "demand.parquet")
    demand.loc[6, "blocks"] = -3.5  # line 8 of the CSV
    demand.to_parquet(pq / "demand.parquet", index=False)
    text = pd.read_csv(csv / "demand.csv", dtype=str, keep_default_na=False)
    text.loc[6, "blocks"] = "-3.5"
    text.to_csv(csv / "demand.csv", index=False)
    r_pq = CliRunner().invoke(main, ["validate", str(pq)])
    r_csv = CliRunner().invoke(main, ["validate", str(csv)])
    assert r_pq.exit_code == r_csv.exit_code == 2
    lines_pq = [x for x in r_pq.output.splitlines() if x.startswith("error:")]
    lines_csv = [x for x in r_csv.output.splitlines() if x.startswith("error:")]
    assert len(lines_pq) == 1 and lines_pq[0].startswith("error: demand.parquet:8: field 'blocks'"), lines_pq
    assert lines_pq[0].replace("demand.parquet", "demand.csv") == lines_csv[0]


def test_a_file_that_is_not_parquet_is_one_line(tmp_path):
    pq = as_parquet(tmp_path)
    (pq / "channels.parquet").write_text("channel,cost\nreferral,40\n")
    r = CliRunner().invoke(main, ["validate", str(pq)])
    lines = [x for x in r.output.splitlines() if x.startswith("error:")]
    assert r.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: channels.parquet:"), r.output
    assert "Traceback" not in r.output
