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


def test_a_fast_exit_keeps_the_output_the_files_and_the_exit_status(demo_path, tmp_path):
    """`optplan solve` and `validate` end with os._exit after flushing (optplan.cli.run): what
    they print (stdout and stderr, piped, so buffered), the files they write and their exit
    statuses are the same as through click alone; another command exits the ordinary way."""
    from click.testing import CliRunner

    from optplan.cli import FAST_EXIT, main

    def run(*args):
        return subprocess.run([sys.executable, "-m", "optplan", *args], capture_output=True, text=True)

    r = run("solve", str(demo_path), "--out", str(tmp_path / "plan"))
    assert r.returncode == 0, r.stderr
    assert "plan for demo" in r.stdout and f"wrote 16 files to {tmp_path / 'plan'}" in r.stdout
    assert "time by phase:" in r.stderr  # the last line of stderr, flushed before the exit
    same = CliRunner().invoke(main, ["solve", str(demo_path), "--out", str(tmp_path / "plan2")])
    assert same.exit_code == 0, same.output
    for name in ("applicants.csv", "summary.json", "orders/orders.csv"):
        assert (tmp_path / "plan" / name).read_bytes() == (tmp_path / "plan2" / name).read_bytes()
    (tmp_path / "bad").mkdir()
    r = run("validate", str(tmp_path / "bad"))  # no instance there: the input error's status
    assert r.returncode == 2 and "instance.yaml" in (r.stdout + r.stderr)
    assert run("solve", "--no-such-option").returncode == 2  # click's usage error
    assert run("validate", str(demo_path)).returncode == 0
    assert "schema" not in FAST_EXIT and run("schema", "--out", str(tmp_path / "s.json")).returncode == 0
