"""The DP engine (optplan/solvers/dp/) against HiGHS: the same instance solved two ways.

The DP's plans are scored by the independent evaluator (optplan.evaluation.evaluator), so the DP's
own estimate never enters a comparison with HiGHS."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from conftest import OBJ_RTOL, build

from optplan import load_instance
from optplan.evaluation.evaluator import check_feasibility, evaluate_decisions
from optplan.solvers import SolveOptions, solve_data
from optplan.solvers.dp import DPOptions, solve_dp

#: The DP plan's expected cost may exceed the HiGHS optimum by at most this share (issue #5).
DP_GAP_RTOL = 0.02
#: Below the HiGHS optimum by more than this share would mean the evaluator or the LP is wrong.
BOUND_RTOL = 1e-7


def _both(data, options=None):
    lp = solve_data(data, SolveOptions(), "highs").status.objective
    result = solve_dp(data, options)
    ev = evaluate_decisions(data, result.decisions).expected_cost
    assert ev == pytest.approx(result.evaluated, rel=1e-12)
    assert check_feasibility(data, result.decisions) == {}
    return lp, result


def _variant(spec, kind):
    if kind == "two_scenarios":
        spec["scenarios"] = [{"scenario": "low", "probability": 0.5}, {"scenario": "high", "probability": 0.5}]
        spec["demand"] = {("A", 1, "low"): 20.0, ("A", 2, "low"): 24.0, ("A", 1, "high"): 20.0, ("A", 2, "high"): 36.0}
    elif kind == "surge":
        spec["manifest"]["recourse"] = {"surge_cost_per_block": 40.0, "surge_cap_share": 0.1}
    elif kind == "incentives":
        spec["incentives"] = [{"depot": "A", "segment": 1, "max_spend": 20.0, "blocks_per_currency": 0.2},
                              {"depot": "A", "segment": 2, "max_spend": 50.0, "blocks_per_currency": 0.05}]
    elif kind == "three_weeks":
        spec["manifest"]["horizon"]["weeks"] = 3
        spec["demand"][("A", 3, "base")] = 26.0
    elif kind == "onboarding_cap":
        spec["depots"][0]["onboarding_cap"] = 4.0
    return spec


@pytest.mark.parametrize("kind", ["base", "two_scenarios", "surge", "incentives", "three_weeks", "onboarding_cap"])
def test_dp_is_exact_on_single_lag_instances(spec, kind):
    """Single-lag kernels make the arrival-time relaxation exact and the optimal driver
    counts lie on the grid's kink states: the DP plan costs what HiGHS's optimum costs."""
    data = build(_variant(spec, kind)).model_data()
    lp, result = _both(data)
    assert result.evaluated == pytest.approx(lp, rel=OBJ_RTOL)
    assert result.dp_value == pytest.approx(lp, rel=OBJ_RTOL)


@pytest.mark.slow
def test_dp_on_the_demo_is_within_two_percent_of_highs(demo_path):
    data = load_instance(demo_path).model_data()
    lp, result = _both(data)
    assert result.evaluated >= lp * (1 - BOUND_RTOL)
    assert result.evaluated <= lp * (1 + DP_GAP_RTOL)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 11])
def test_dp_within_two_percent_when_weekly_budgets_bind(seed):
    """Generated instances whose weekly budgets bind (the hardest of benchmarks/bench_dp.py's
    20: 1.3% and 0.9% there): the DP plan is within 2% of HiGHS and never below it."""
    from optplan.io.generate import generate_instance

    data = generate_instance(depots=3, weeks=10, scenarios=5, seed=seed, budget_tightness=0.8).model_data()
    lp, result = _both(data)
    assert any(m > 0 for m in result.prices["weekly"])  # the weekly prices were needed
    assert lp * (1 - BOUND_RTOL) <= result.evaluated <= lp * (1 + DP_GAP_RTOL)


@pytest.mark.parametrize("kind", ["base", "two_scenarios", "incentives", "onboarding_cap"])
def test_dp_is_exact_with_supply_by_week_on_single_lag_instances(spec, kind):
    """Supply b[d,t] that differs by week (2 and 3 blocks per driver): still exact where the
    weekly-supply-free DP is, so b[d,t] enters its week costs and kinks week by week."""
    data = build(_variant(spec, kind)).model_data()
    data = replace(data, supply_by_week=np.array([[2.0, 3.0] + [2.5] * (data.n_weeks - 2)]))
    assert data.has_weekly_supply
    lp, result = _both(data)
    assert result.evaluated == pytest.approx(lp, rel=OBJ_RTOL)


@pytest.mark.parametrize("seed", range(3))
def test_dp_within_two_percent_with_supply_by_week(seed):
    """Generated instances with +-30 % weekly supply (issue #26's acceptance): the DP plan is
    within 2 % of HiGHS and never below it; the flat-supply optimum is far off, so a DP that
    ignored b[d,t] would be caught."""
    from optplan.io.generate import generate_instance

    data = generate_instance(depots=3, weeks=12, scenarios=5, seed=seed).model_data()
    rng = np.random.default_rng(seed)
    season = 1.0 + 0.3 * np.sin(np.arange(data.n_weeks) / 2.0)
    supply = data.blocks_per_driver[:, None] * season[None, :] * rng.uniform(0.9, 1.1, (len(data.depots), 1))
    weekly = replace(data, supply_by_week=supply)
    lp, result = _both(weekly)
    assert lp * (1 - BOUND_RTOL) <= result.evaluated <= lp * (1 + DP_GAP_RTOL)
    flat = solve_data(data, SolveOptions(), "highs").status.objective
    assert abs(flat - lp) > 5 * DP_GAP_RTOL * lp


def test_dp_respects_a_binding_budget(spec):
    """With a total budget that binds, the DP spends it (up to rounding) and stays within 2%."""
    spec["manifest"]["budgets"] = {"total": 30.0}
    data = build(spec).model_data()
    lp, result = _both(data)
    spend = float(np.einsum("dct,c->", result.decisions.applicants, data.cost_per_applicant))
    assert spend <= 30.0 * (1 + 1e-9)
    assert result.evaluated == pytest.approx(lp, rel=DP_GAP_RTOL)
    assert result.evaluated >= lp * (1 - BOUND_RTOL)


def test_fixed_grid_option_is_used(spec):
    data = build(spec).model_data()
    result = solve_dp(data, DPOptions(grid_points=11))
    assert result.grid_points == 11
    assert np.isnan(result.grid_change)


def _run_cli(args, cwd, block: str = ""):
    """Run the CLI in a fresh interpreter in which the modules named in ``block`` cannot be imported."""
    import subprocess
    import sys

    prelude = "import sys; " + "".join(f"sys.modules[{m!r}] = None; " for m in block.split())
    code = prelude + "from optplan.cli import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_auto_falls_back_to_glop_then_the_dp_when_solvers_cannot_be_imported(tmp_path):
    """highspy made unimportable: `--engine auto` solves the LP with GLOP (the same optimum,
    exit 0, the fallback named); with ortools unimportable too it writes a DP plan, says so
    (stderr, exit 3, summary.json) and writes the same files as a HiGHS plan and as
    `--engine dp`."""
    import json

    from click.testing import CliRunner

    from optplan.cli import main

    inst = tmp_path / "inst"  # the steps that block nothing run in this interpreter (a fresh one costs seconds)
    assert CliRunner().invoke(main, ["generate", "--depots", "2", "--weeks", "6", "--scenarios", "3", "--seed", "3",
                                     "--out", str(inst)]).exit_code == 0
    highs = CliRunner().invoke(main, ["solve", str(inst), "--out", str(tmp_path / "highs"), "--engine", "highs"])
    assert highs.exit_code == 0, highs.output
    lp = json.loads((tmp_path / "highs" / "summary.json").read_text())["expected_cost"]["total"]
    glop = _run_cli(["solve", str(inst), "--out", str(tmp_path / "glop")], tmp_path, block="highspy")
    assert glop.returncode == 0, glop.stderr
    g = json.loads((tmp_path / "glop" / "summary.json").read_text())
    assert g["status"]["engine"].startswith("glop") and "highs is not available" in g["status"]["fallback"]
    assert g["expected_cost"]["total"] == pytest.approx(lp, rel=1e-6)
    fallback = _run_cli(["solve", str(inst), "--out", str(tmp_path / "auto")], tmp_path, block="highspy ortools")
    assert fallback.returncode == 3, fallback.stderr
    assert "fallback engine" in fallback.stderr and "highspy" in fallback.stderr
    assert "Traceback" not in fallback.stderr
    summary = json.loads((tmp_path / "auto" / "summary.json").read_text())
    assert summary["status"]["engine"].startswith("dp")
    assert "highs is not available (HiGHS is not available: cannot import highspy" in summary["status"]["fallback"]
    assert "glop is not available" in summary["status"]["fallback"]
    names = lambda p: sorted(f.name for f in p.iterdir())  # noqa: E731
    assert names(tmp_path / "auto") == names(tmp_path / "highs")
    # the same plan as asking for the DP directly (only the status text differs)
    direct = _run_cli(["solve", str(inst), "--out", str(tmp_path / "dp"), "--engine", "dp"], tmp_path, block="highspy")
    assert direct.returncode == 0, direct.stderr
    for path in sorted((tmp_path / "dp").rglob("*")):  # the orders too: rounded and repaired without a MIP solver
        name = path.relative_to(tmp_path / "dp")
        if path.is_file() and name.name != "summary.json":
            assert path.read_bytes() == (tmp_path / "auto" / name).read_bytes(), name
    orders = json.loads((tmp_path / "auto" / "orders" / "orders.json").read_text())
    assert "rounded" in orders["method"] and "cannot import highspy" in orders["status"]["message"]
    assert summary["expected_cost"]["total"] >= lp * (1 - BOUND_RTOL)  # a feasible plan never beats the optimum


def test_engine_highs_does_not_fall_back(tmp_path):
    inst = tmp_path / "inst"
    _run_cli(["generate", "--depots", "1", "--weeks", "4", "--scenarios", "2", "--out", str(inst)], tmp_path)
    r = _run_cli(["solve", str(inst), "--out", str(tmp_path / "o"), "--engine", "highs"], tmp_path, block="highspy")
    assert r.returncode == 6
    assert "cannot import highspy" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o").exists()


def test_a_batch_of_depots_solves_each_as_if_alone():
    """DepotBatch stacks depots with different grids, caps and kink states into one array per
    week; each depot's DP value and plan are those of its own DP (offsets keep them apart)."""
    from optplan.io.generate import generate_instance
    from optplan.solvers.dp.depot import DepotModel
    from optplan.solvers.dp.recursion import DepotBatch, solve_depot, solve_depots

    data = generate_instance(depots=4, weeks=12, scenarios=4, seed=3).model_data()
    deps = [DepotModel(data, d) for d in range(4)]
    price = np.linspace(1.0, 3.0, data.n_weeks)
    together = solve_depots(DepotBatch(deps, 51), price)
    for dep, sol in zip(deps, together, strict=True):
        alone = solve_depot(dep, price, 51)
        assert sol.priced_value == pytest.approx(alone.priced_value, rel=1e-9)
        assert sol.value == pytest.approx(alone.value, rel=1e-9)
        np.testing.assert_allclose(sol.arrivals, alone.arrivals, atol=1e-9)
