"""The command line end to end: README demo command, generate -> validate -> solve,
infeasible and time-limited solves, schema, MPS export."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner
from conftest import REPO, build

import optplan
from optplan.cli import main


def cli(*args):
    return CliRunner().invoke(main, list(map(str, args)))


def readme_commands() -> list[str]:
    """The shell commands in the README's first code block (the fresh-machine commands)."""
    text = (REPO / "README.md").read_text()
    block = re.search(r"```(?:bash|sh)?\n(.*?)```", text, re.S).group(1)
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_readme_demo_command_runs_end_to_end(tmp_path):
    """The README's first command installs and solves the demo; run its optplan part as a
    real subprocess (the package is installed), writing to a temporary folder."""
    first = readme_commands()[0]
    assert first.startswith("pip install") and "optplan solve" in first
    command = first.split("&&", 1)[1].strip()
    args = shlex.split(command)
    out_index = args.index("--out") + 1
    args[out_index] = str(tmp_path / "out")
    exe = shutil.which("optplan") or None
    argv = [exe, *args[1:]] if exe else [sys.executable, "-m", "optplan", *args[1:]]
    started = time.perf_counter()
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    assert "optimal" in result.stdout
    # where the time went (issue #34 part 4): one line on stderr, phases in order, within the wall clock
    line = next(x for x in result.stderr.splitlines() if x.startswith("time by phase: "))
    phases = dict(re.findall(r"([a-z][a-z -]*?) (\d+\.\d\d) s", line.split(" (")[0].removeprefix("time by phase: ")))
    assert list(phases)[0] == "read and check" and list(phases)[-1] == "write" and "orders" in phases, line
    total = float(re.search(r"\((\d+\.\d\d) s in all", line).group(1))
    assert total == pytest.approx(sum(map(float, phases.values())), abs=0.01 * len(phases) + 0.01)
    assert total <= wall, (line, wall)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["status"]["solution"] == "optimal"
    assert summary["status"]["termination"] == "convergenceCriteriaSatisfied"
    assert {"applicants.csv", "capacity.csv", "budgets.csv", "drivers.csv"} <= {p.name for p in (tmp_path / "out").iterdir()}


def test_readme_second_command_runs_the_ci_script():
    assert readme_commands()[1].endswith("bash .ci/run") or "pytest" in readme_commands()[1]


def test_generate_validate_solve(tmp_path):
    inst_dir = tmp_path / "gen"
    r = cli("generate", "--depots", 7, "--weeks", 9, "--scenarios", 4, "--seed", 3, "--out", inst_dir)
    assert r.exit_code == 0, r.output
    assert cli("validate", inst_dir).exit_code == 0
    r = cli("solve", inst_dir, "--out", tmp_path / "plan", "--time-limit", 60, "--save-mps", tmp_path / "m.mps")
    assert r.exit_code == 0, r.output
    assert "expected cost" in r.output and "USD" in r.output
    mps = (tmp_path / "m.mps").read_text()
    assert "recourse_link" in mps and "budget_total" in mps  # the aggregated model (the default formulation)


def test_generated_instances_are_byte_identical_for_a_seed(tmp_path):
    for name in ("a", "b"):
        assert cli("generate", "--depots", 4, "--weeks", 6, "--scenarios", 3, "--seed", 5, "--out", tmp_path / name).exit_code == 0
    for f in (tmp_path / "a").iterdir():
        assert f.read_bytes() == (tmp_path / "b" / f.name).read_bytes(), f.name


def test_infeasible_instance_names_the_constraint_family(tmp_path, spec):
    """4 pipeline drivers must arrive in week 2 but the depot can onboard only 3 a week."""
    spec["depots"][0]["onboarding_cap"] = 3.0
    spec["pipeline"] = [{"depot": "A", "week": 2, "new_drivers": 4.0}]
    inst = build(spec)
    with pytest.raises(optplan.InfeasibleError) as err:
        optplan.solve(inst)
    assert err.value.families == ["onboarding_cap"]
    folder = inst.write(tmp_path / "inf")
    r = cli("solve", folder, "--out", tmp_path / "out")
    assert r.exit_code == 5 and "onboarding_cap" in r.output and "Traceback" not in r.output
    assert "depot A week 2" in r.output
    assert "fall" not in r.output and "dp" not in r.output  # never falls back to another engine
    assert not (tmp_path / "out").exists()


def test_time_limit_without_a_plan_says_so_and_writes_nothing(tmp_path):
    folder = optplan.generate_instance(depots=30, weeks=26, scenarios=10, seed=1).write(tmp_path / "big")
    r = cli("solve", folder, "--out", tmp_path / "out", "--time-limit", 1e-6, "--engine", "highs")  # less than any build
    assert r.exit_code == 4, r.output
    assert "time limit" in r.output and "no plan" in r.output
    assert not (tmp_path / "out").exists()


def test_a_limit_no_engine_can_meet_exits_4_under_auto(tmp_path):
    """One budget for the whole chain: 1e-6 s is spent before HiGHS runs, so auto stops
    there (no DP run on a spent budget), says why and writes nothing."""
    folder = optplan.generate_instance(depots=2, weeks=6, scenarios=3, seed=1).write(tmp_path / "small")
    r = cli("solve", folder, "--out", tmp_path / "out", "--time-limit", 1e-6)
    assert r.exit_code == 4, r.output
    assert "no plan within the time limit" in r.output and "Traceback" not in r.output
    assert "dp gave" not in r.output
    assert not (tmp_path / "out").exists()


def test_bad_option_is_a_clean_error(demo_path, tmp_path):
    r = cli("solve", demo_path, "--out", tmp_path / "o", "--time-limit", -1)
    assert r.exit_code == 2 and "--time-limit" in r.output and "Traceback" not in r.output  # named as typed


def test_schema_command_writes_json_schema(tmp_path):
    r = cli("schema", "--out", tmp_path / "schema.json")
    assert r.exit_code == 0
    schema = json.loads((tmp_path / "schema.json").read_text())
    depot = schema["properties"]["tables"]["properties"]["depots"]["items"]
    assert depot["properties"]["retention"]["maximum"] == 1
    assert depot["properties"]["retention"]["unit"] == "probability/week"


def test_schema_validates_a_real_instance_row(demo_path):
    """The generated JSON Schema accepts the demo's rows and rejects a bad one (checked with
    jsonschema, an independent validator)."""
    jsonschema = pytest.importorskip("jsonschema")
    from optplan.io.schema import json_schema

    item = json_schema()["properties"]["tables"]["properties"]["depots"]["items"]
    inst = optplan.load_instance(demo_path)
    row = inst.tables["depots"].iloc[0].to_dict()
    jsonschema.validate(row, item)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**row, "retention": 1.5}, item)


def test_docs_field_tables_match_the_schema():
    from optplan.io.schema import markdown_tables

    doc = (REPO / "docs" / "instance-format.md").read_text()
    assert markdown_tables().strip() in doc, "regenerate with: optplan schema --markdown"


def test_output_files_have_ordinary_permissions(tmp_path, demo_path):
    import os
    import stat

    assert cli("solve", demo_path, "--out", tmp_path / "out").exit_code == 0
    mask = os.umask(0)
    os.umask(mask)
    files = [f for f in (tmp_path / "out").rglob("*") if f.is_file()]
    assert any(f.parent.name == "orders" for f in files)  # the orders' folder too
    for f in (tmp_path / "out").rglob("*"):
        want = 0o666 & ~mask if f.is_file() else 0o777 & ~mask
        assert stat.S_IMODE(f.stat().st_mode) == want, f.name


def test_engine_stopped_at_the_time_limit_with_a_plan_writes_it_and_exits_3(tmp_path, demo_path, monkeypatch):
    """An engine (a stub standing in for HiGHS: a real solver's stopping point under a short
    limit depends on the machine) stops at the time limit with a feasible plan: the files
    are written, the status says so in a planner's words, exit status 3."""
    from conftest import StubEngine

    from optplan.solvers import base

    monkeypatch.setitem(base._REGISTRY, "highs", lambda: StubEngine("highs"))
    r = cli("solve", demo_path, "--out", tmp_path / "out", "--engine", "highs", "--time-limit", 60)
    assert r.exit_code == 3, r.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["status"]["termination"] == "maxTimeLimit"
    assert summary["status"]["solution"] == "feasible"
    assert summary["status"]["summary"].startswith("NOT PROVEN OPTIMAL: stopped at the time limit with a feasible plan")
    assert "stopped at the time limit" in r.output


def test_mip_stopped_with_an_incumbent_exits_3_without_a_fallback(tmp_path, demo_path):
    """A real HiGHS MIP stopped by a solution limit (deterministic): the incumbent is the
    plan, exit 3; auto does not fall back from a plan it has."""
    import optplan as op

    inst = op.load_instance(demo_path)
    with pytest.warns(RuntimeWarning, match="not proven optimal"):
        plan = op.solve(inst, integer=True, highs_options={"mip_max_improving_sols": 1, "presolve": "off"})
    assert plan.engine.startswith("highs") and plan.status.fallback is None
    assert not plan.status.optimal and plan.status.gap > 0
    assert (plan.decisions.applicants == plan.decisions.applicants.round()).all()


def test_option_errors_are_input_errors_and_bugs_are_exit_1(tmp_path, demo_path, monkeypatch):
    """An option optplan cannot use is exit 2 with one line naming it; an unexpected
    exception (a bug) is exit 1 with a one-line message and the --debug hint, never a
    traceback; a bad input path is exit 2 naming the path."""
    history = tmp_path / "h.csv"
    history.write_text("depot,week_start,demand\n" + "".join(f"A,2024-01-{d:02d},{d}\n" for d in (1, 8, 15)))
    r = cli("forecast", history, "--money-per-block", 2000, "--unit-factor", 0.5, "--out", tmp_path / "fc")
    assert r.exit_code == 2, r.output
    assert "--money-per-block/--unit-factor" in r.output and "Traceback" not in r.output
    r = cli("policy", demo_path, "--depot", "NOPE", "--out", tmp_path / "p")
    assert r.exit_code == 2 and "--depot: expected one of D001" in r.output

    def boom(*args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(optplan, "solve", boom)
    r = cli("solve", demo_path, "--out", tmp_path / "o")
    assert r.exit_code == 1 and "internal error: KeyError" in r.output and "--debug" in r.output
    assert "Traceback" not in r.output
    r = cli("validate", tmp_path / "no_such_folder")
    assert r.exit_code == 2 and "no_such_folder" in r.output
