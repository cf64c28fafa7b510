"""One list of engines (issue #26): the registry. An engine registered with
``optplan.solvers.register_engine`` is chosen like a shipped one from the API, the CLI
(solve and replan) and a pipeline config; every name the CLI accepts is the registry's."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import StubEngine

import optplan
from optplan.cli import commands, main
from optplan.cli.common import EngineChoice
from optplan.solvers import engine_names, register_engine, unregister_engine


@pytest.fixture
def stub():
    engine = StubEngine("stub")  # a feasible plan that recruits nothing, stopped at the time limit
    register_engine("stub", lambda: engine, StubEngine.capabilities)
    yield engine
    unregister_engine("stub")
    assert "stub" not in engine_names()


def test_a_registered_engine_is_chosen_from_the_api(stub, demo_path):
    inst = optplan.load_instance(demo_path)
    with pytest.warns(RuntimeWarning, match="not proven optimal"):
        plan = optplan.solve(inst, engine="stub")
    assert stub.calls == 1 and plan.engine == "stub"
    assert plan.kpis["applicants_total"] == 0.0


def test_a_registered_engine_is_chosen_from_the_cli(stub, demo_path, tmp_path):
    r = CliRunner().invoke(main, ["solve", str(demo_path), "--out", str(tmp_path / "o"), "--engine", "stub"])
    assert r.exit_code == 3, r.output  # stopped at the time limit: not proven optimal
    assert stub.calls == 1
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["status"]["engine"] == "stub" and summary["status"]["native_status"] == "stub: time limit"


def test_every_engine_the_cli_accepts_is_the_registrys(demo_path, tmp_path):
    for command in (commands.solve, commands.replan):
        option = next(p for p in command.params if p.name == "engine")
        assert isinstance(option.type, EngineChoice), command.name
        assert option.type.get_metavar(option) == "ENGINE"
        completions = [c.value for c in option.type.shell_complete(None, option, "")]
        assert completions == list(engine_names())
    assert set(engine_names()) == {"auto", "highs", "glop", "dp", "decompose"}
    r = CliRunner().invoke(main, ["solve", str(demo_path), "--out", str(tmp_path / "o"), "--engine", "gurobi"])
    assert r.exit_code == 2 and "'gurobi' is not an engine: one of auto, highs, glop, dp, decompose" in r.output
    assert not (tmp_path / "o").exists()


def test_a_pipeline_config_names_an_engine_of_the_registry(stub):
    from pydantic import ValidationError

    from optplan.planning.pipeline import SolveStep

    assert SolveStep(engine="stub").engine == "stub"
    with pytest.raises(ValidationError, match="one of auto, highs, glop, dp, decompose, stub, not 'gurobi'"):
        SolveStep(engine="gurobi")


def test_the_evaluator_runs_once_per_solve(stub, demo_path, monkeypatch):
    """A plan that is not optimal is costed by the evaluator in solve_data; the Plan reuses
    that evaluation instead of running the evaluator again (issue #26, part 4)."""
    import optplan.planning.plan as plan_module
    import optplan.solvers as solvers

    calls = []
    real = solvers.evaluate_decisions

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(solvers, "evaluate_decisions", counting)
    monkeypatch.setattr(plan_module, "evaluate_decisions", counting)
    with pytest.warns(RuntimeWarning, match="not proven optimal"):
        plan = optplan.solve(optplan.load_instance(demo_path), engine="stub")
    assert len(calls) == 1
    assert plan.kpis["applicants_total"] == 0.0 and plan.evaluation.expected_cost > 0
