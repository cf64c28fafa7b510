"""No non-finite number reaches an output file: every CSV cell and every JSON value written
by solve (LP, DP and MIP plans, whose shadow prices do not exist) and report is finite or
empty/null, and every JSON file is valid JSON (no 'Infinity', no 'NaN')."""

from __future__ import annotations

import csv
import json
import math

import pytest
from click.testing import CliRunner
from conftest import REPO

from optplan.cli import main
from optplan.io.atomic import csv_text, json_text

NON_FINITE = {"inf", "+inf", "-inf", "nan", "-nan", "infinity", "-infinity", "+infinity"}


def _refuse(constant):
    raise ValueError(f"non-finite JSON constant {constant}")


def non_finite_cells(folder) -> list[str]:
    """'file:line:column' of every non-finite CSV cell or JSON value under ``folder``."""
    bad = []
    for path in sorted(folder.rglob("*")):
        if path.suffix == ".csv":
            with path.open(newline="") as fh:
                for i, row in enumerate(csv.reader(fh), start=1):
                    bad += [f"{path.name}:{i}:{j}" for j, cell in enumerate(row, start=1) if cell.strip().lower() in NON_FINITE]
        elif path.suffix == ".json":
            try:
                json.loads(path.read_text(), parse_constant=_refuse)
            except ValueError as exc:
                bad.append(f"{path.name}: {exc}")
    return bad


def test_the_renderers_write_empty_cells_and_null():
    import numpy as np
    import pandas as pd

    df = pd.DataFrame({"a": [1.5, np.inf, -np.inf, np.nan], "b": ["x", "inf", "y", "z"]})
    assert csv_text(df).splitlines() == ["a,b", "1.5,x", ",inf", ",y", ",z"]  # strings are left alone
    assert json.loads(json_text({"x": [math.inf, np.float64("nan"), np.float32(2.0), 3]})) == {"x": [None, None, 2.0, 3]}


@pytest.mark.parametrize("extra", [[], ["--engine", "dp"], ["--integer"]], ids=["lp", "dp", "mip"])
def test_solve_writes_only_finite_numbers(tmp_path, extra):
    result = CliRunner().invoke(main, ["solve", str(REPO / "instances" / "demo"), "--out", str(tmp_path), *extra])
    assert result.exit_code == 0, result.output
    assert non_finite_cells(tmp_path) == []


@pytest.mark.slow
def test_report_writes_only_finite_numbers(tmp_path):
    result = CliRunner().invoke(main, ["report", str(REPO / "instances" / "demo"), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "marginal_values.csv").exists()
    assert non_finite_cells(tmp_path) == []


@pytest.mark.parametrize("where", ["the instance folder", "its parent"])
def test_out_may_not_be_or_contain_an_input(tmp_path, where):
    """Writing a plan into the instance's own folder would replace its CSVs (inputs are never
    modified): refused with exit 2, the instance's files byte for byte unchanged."""
    import optplan

    inst = tmp_path / "inst"
    optplan.load_instance(REPO / "instances" / "demo").write(inst)
    before = {p.name: p.read_bytes() for p in inst.iterdir()}
    out = inst if where == "the instance folder" else tmp_path
    result = CliRunner().invoke(main, ["solve", str(inst), "--out", str(out)])
    assert result.exit_code == 2
    assert "--out" in result.output and "input" in result.output
    assert {p.name: p.read_bytes() for p in inst.iterdir()} == before
