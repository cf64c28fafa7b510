"""Start-up stays light: what a command imports, checked by module, not by the clock (the
seconds are measured in benchmarks/bench_startup.py)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("pandas", "numpy", "pyomo", "sklearn", "scipy", "highspy", "statsforecast", "ortools", "matplotlib")


def imported_after(code: str) -> list[str]:
    probe = code + f"; import sys, json; print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_cli_and_the_package_import_nothing_heavy():
    assert imported_after("import optplan, optplan.cli") == []


def test_version_and_help_load_nothing_heavy():
    assert imported_after("from click.testing import CliRunner; from optplan.cli import main; "
                          "CliRunner().invoke(main, ['--version']); CliRunner().invoke(main, ['--help'])") == []


def test_validate_loads_the_table_stack_but_no_solver_or_model(demo_path):
    loaded = imported_after(f"import optplan; optplan.load_instance({str(demo_path)!r})")
    assert {"pandas", "numpy"} <= set(loaded)
    assert not {"pyomo", "sklearn", "highspy", "statsforecast", "ortools", "matplotlib"} & set(loaded)


def test_a_solve_loads_no_statistics_or_integration_modules(demo_path):
    """Pyomo imports scipy.stats, scipy.integrate and scipy.spatial as soon as scipy is imported
    after it (0.6-0.7 s a command); optplan.solvers.base drops that hook. A solve uses
    scipy.sparse, never those: a Pyomo upgrade that brings the hook back fails here."""
    code = (f"import optplan; optplan.solve(optplan.load_instance({str(demo_path)!r}), orders_weeks=2); "
            "import sys; print('@' + ','.join(m for m in ('scipy.sparse', 'scipy.stats', 'scipy.integrate', "
            "'scipy.spatial') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = out.stdout.strip().splitlines()[-1].lstrip("@").split(",")
    assert loaded == ["scipy.sparse"], loaded
