"""The shipped instances load, solve to optimality, and agree with the evaluator; the
Walmart-derived instance is rebuilt byte for byte by its script."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import OBJ_RTOL, REPO, WALMART_CSV

import optplan

SHARED_DATA = WALMART_CSV


@pytest.mark.parametrize("name", ["demo", "walmart30", "world", "longlead"])
def test_shipped_instance_solves_and_matches_the_evaluator(name):
    inst = optplan.load_instance(REPO / "instances" / name)
    plan = optplan.solve(inst)
    assert plan.status.optimal
    ev = optplan.evaluate(plan, inst)
    assert ev.expected_cost == pytest.approx(plan.status.objective, rel=OBJ_RTOL)
    assert ev.violations == {}
    assert plan.budgets["binding"].any(), "shipped instances are meant to show a binding budget"


def test_demo_instance_is_the_generator_output(tmp_path):
    """instances/demo is `optplan generate --depots 5 --weeks 12 --scenarios 10 --seed 7
    --budget-tightness 0.8 --name demo`: the shipped files equal a fresh generation."""
    folder = optplan.generate_instance(depots=5, weeks=12, scenarios=10, seed=7, budget_tightness=0.8, name="demo").write(tmp_path / "d")
    for f in folder.iterdir():
        assert f.read_bytes() == (REPO / "instances" / "demo" / f.name).read_bytes(), f.name
    fresh = optplan.load_instance(folder)
    shipped = optplan.load_instance(REPO / "instances" / "demo")
    for name, table in fresh.tables.items():
        assert table.reset_index(drop=True).equals(shipped.tables[name].reset_index(drop=True)), name


def test_world_instance_is_the_generator_output(tmp_path):
    """instances/world is `optplan generate --depots 6 --weeks 26 --scenarios 10 --seed 7
    --budget-tightness 0.8 --countries US,DE --name world` (two countries, USD and EUR)."""
    folder = optplan.generate_instance(depots=6, weeks=26, scenarios=10, seed=7, budget_tightness=0.8,
                                       countries=("US", "DE"), name="world").write(tmp_path / "w")
    assert sorted(f.name for f in folder.iterdir()) == sorted(f.name for f in (REPO / "instances" / "world").iterdir())
    for f in folder.iterdir():
        assert f.read_bytes() == (REPO / "instances" / "world" / f.name).read_bytes(), f.name


def test_walmart_script_rebuilds_the_shipped_instance(tmp_path):
    out = tmp_path / "walmart30"
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "build_walmart_instance.py"), "--data", str(SHARED_DATA), "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    shipped = REPO / "instances" / "walmart30"
    for f in sorted(out.iterdir()):
        assert f.read_bytes() == (shipped / f.name).read_bytes(), f.name


def test_walmart_script_reports_missing_data_cleanly(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "build_walmart_instance.py"), "--data", str(tmp_path / "none.csv"),
         "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr and "none.csv" in result.stderr
