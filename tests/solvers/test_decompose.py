"""Depot decomposition (Dantzig-Wolfe over depots): within 0.1 % of the monolithic optimum
with a valid bound, feasible for every budget, locally and through a real Dask scheduler
with two worker processes."""

from __future__ import annotations

import json
import socket
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import FakeClock
from pyomo.contrib.solver.common.results import TerminationCondition

import optplan
from optplan.cli import main
from optplan.evaluation.evaluator import check_feasibility, evaluate_decisions
from optplan.solvers import Deadline, SolveOptions, solve_data
from optplan.solvers.decompose import DecomposeEngine

#: The issue's target: within 0.1 % of the monolithic optimum.
WITHIN = 1e-3
#: Budget prices: the decomposition's against the LP's (issue #34 asks 1e-4 relative).
PRICE_RTOL = 1e-6


def budgeted(seed: int, depots: int = 6):
    """A generated instance with binding total, weekly and regional budgets."""
    inst = optplan.generate_instance(depots=depots, weeks=10, scenarios=5, seed=seed, budget_tightness=0.6)
    data = inst.model_data()
    regions = tuple(("north", "south")[d % 2] for d in range(depots))
    return replace(data, regions=regions, budget_region={"north": 0.3 * data.budget_total})


def check(data, result, reference):
    """Feasible, within 0.1 % with a valid bound, and the budget prices the LP's."""
    assert check_feasibility(data, result.decisions) == {}
    for family in ("budget_total", "budget_week", "budget_region"):
        want = np.asarray(reference.duals.get(family, []))
        np.testing.assert_allclose(result.duals.get(family, []), want, rtol=PRICE_RTOL,
                                   atol=1e-9 * max(1.0, np.abs(want).max(initial=0)))
    opt = reference.status.objective
    assert result.status.objective == pytest.approx(evaluate_decisions(data, result.decisions).expected_cost, rel=1e-9)
    assert abs(result.status.objective - opt) <= WITHIN * opt
    assert result.status.bound <= opt * (1 + 1e-7)  # a valid lower bound
    assert result.status.gap <= WITHIN


@pytest.mark.parametrize("seed", range(4))
def test_decomposition_within_a_tenth_of_a_percent_serially(seed):
    data = budgeted(seed)
    reference = solve_data(data, SolveOptions(), "highs")
    binding = reference.duals
    assert any(np.any(np.abs(v) > 1e-9) for v in binding.values()), "some budget should bind"
    result = DecomposeEngine(backend="serial").solve(data, SolveOptions(), Deadline(None))
    check(data, result, reference)
    assert result.status.termination == TerminationCondition.convergenceCriteriaSatisfied and result.status.complete


@pytest.mark.parametrize("seed", range(3))
def test_decomposition_plans_supply_by_week_within_a_tenth_of_a_percent(seed):
    """Driver supply b[d,t] that varies by week (supply.csv): each depot's subproblem is the
    aggregated program of its own data, which states b[d,t]; the engine no longer refuses it
    (solve_data asks the capabilities) and matches HiGHS within 0.1 %."""
    data = budgeted(seed)
    rng = np.random.default_rng(seed)
    season = 1.0 + 0.3 * np.sin(np.arange(data.n_weeks) / 2.0)  # +-30 % over the weeks
    supply = data.blocks_per_driver[:, None] * season[None, :] * rng.uniform(0.9, 1.1, (len(data.depots), 1))
    data = replace(data, supply_by_week=supply)
    assert data.has_weekly_supply
    reference = solve_data(data, SolveOptions(), "highs")
    flat = solve_data(replace(data, supply_by_week=None), SolveOptions(), "highs")
    assert abs(flat.status.objective - reference.status.objective) > 10 * WITHIN * reference.status.objective
    result = solve_data(data, SolveOptions(), DecomposeEngine(backend="serial"))
    check(data, result, reference)


def test_decomposition_on_local_processes():
    data = budgeted(7, depots=8)
    reference = solve_data(data, SolveOptions(), "highs")
    result = DecomposeEngine(backend="local", workers=2).solve(data, SolveOptions(), Deadline(None))
    check(data, result, reference)


@pytest.mark.slow
def test_decomposition_through_a_real_dask_scheduler_with_two_workers(tmp_path):
    """A dask.distributed scheduler and two worker processes on this machine; the CLI sends
    the depot subproblems to it by address, as it would to a remote cluster."""
    distributed = pytest.importorskip("distributed")
    data = budgeted(3, depots=8)
    reference = solve_data(data, SolveOptions(), "highs")
    from optplan.solvers.backends import QUIET_CLUSTER

    # Another cluster on the machine holds distributed's default HTTP port (CI failed so once):
    # ours must start quietly on a free one.
    holder = socket.socket()
    try:
        holder.bind(("", 8787))
        holder.listen()
    except OSError:
        pass  # already held by someone else: the same situation
    with holder, distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, **QUIET_CLUSTER) as cluster:
        result = DecomposeEngine(backend="dask", scheduler=cluster.scheduler_address).solve(
            data, SolveOptions(), Deadline(None))
        check(data, result, reference)
        assert "dask, 2 workers" in result.engine
        inst = optplan.generate_instance(depots=4, weeks=8, scenarios=3, seed=2, budget_tightness=0.6)
        folder = inst.write(tmp_path / "inst")
        r = CliRunner().invoke(main, ["solve", str(folder), "--out", str(tmp_path / "plan"), "--engine", "decompose",
                                      "--backend", "dask", "--scheduler", cluster.scheduler_address, "--quiet"])
        assert r.exit_code == 0, r.output
        summary = json.loads((tmp_path / "plan" / "summary.json").read_text())
        assert summary["status"]["engine"].startswith("decompose (dask")
        lp = optplan.solve(inst).status.objective
        assert abs(summary["expected_cost"]["total"] - lp) <= WITHIN * lp


def test_decomposition_stops_at_the_deadline_with_a_feasible_plan():
    data = budgeted(1)
    result = DecomposeEngine(backend="serial").solve(data, SolveOptions(), Deadline(1.5, FakeClock()))
    assert result.status.termination == TerminationCondition.maxTimeLimit
    assert check_feasibility(data, result.decisions) == {}
    assert result.status.bound <= result.status.objective


@pytest.mark.slow  # CI's second step: keeps the README's test command within its time
def test_an_unreachable_scheduler_is_an_option_error(monkeypatch):
    from optplan.solvers import backends

    monkeypatch.setattr(backends, "CONNECT_TIMEOUT", "2s")  # nothing listens there: no need to wait 20 s
    with pytest.raises(optplan.OptionError, match="--scheduler"):
        DecomposeEngine(backend="dask", scheduler="tcp://127.0.0.1:9").solve(
            budgeted(0), SolveOptions(), Deadline(None))


def test_a_worker_without_the_depot_model_gets_the_data_again():
    """Rounds after the first send no data; a worker that lost its models (restarted, or a
    new one) says so and the round is resent with the data: same result."""
    from optplan.solvers import decompose

    data = budgeted(2)
    reference = DecomposeEngine(backend="serial").solve(data, SolveOptions(), Deadline(None))
    original = decompose.solve_depot_group
    calls = {"n": 0}

    def forgetful(tasks):
        calls["n"] += 1
        if calls["n"] == 3:
            decompose._MODELS.clear()  # the worker restarted between rounds
        return original(tasks)

    decompose.solve_depot_group = forgetful
    try:
        again = DecomposeEngine(backend="serial").solve(replace(data, idle_cost=data.idle_cost), SolveOptions(),
                                                        Deadline(None))
    finally:
        decompose.solve_depot_group = original
    assert again.status.objective == pytest.approx(reference.status.objective, rel=1e-9)
    assert calls["n"] >= 4


def test_a_subproblem_that_ends_unknown_is_retried_and_the_run_finishes_optimal(monkeypatch):
    """Issue #34: a depot's subproblem that stops with status Unknown once is solved again (a
    fresh HiGHS without presolve, as the HiGHS engine does): the run converges to the same plan."""
    from optplan.solvers import decompose

    data = budgeted(1)
    reference = DecomposeEngine(backend="serial").solve(data, SolveOptions(), Deadline(None))
    real, calls = decompose.model_status, {"n": 0}

    def once_unknown(highspy, h):
        calls["n"] += 1
        return highspy.HighsModelStatus.kUnknown if calls["n"] == 8 else real(highspy, h)  # round 2, a depot

    monkeypatch.setattr(decompose, "model_status", once_unknown)
    again = DecomposeEngine(backend="serial").solve(replace(data, idle_cost=data.idle_cost), SolveOptions(),
                                                    Deadline(None))
    assert calls["n"] > 8
    assert again.status.objective == pytest.approx(reference.status.objective, rel=1e-9) and again.status.complete


def test_a_subproblem_that_stays_unknown_returns_the_plan_so_far_as_feasible_not_nothing(monkeypatch, tmp_path):
    """Issue #34: at 1000 depots a subproblem Unknown after 10 rounds lost six minutes of work
    (exit 6, no plan). Now the master's plan of the last full round is returned, feasible for
    every budget, with its gap and the reason, and the CLI says so with exit 3."""
    from optplan.solvers import decompose

    data = budgeted(1)
    reference = solve_data(data, SolveOptions(), "highs")
    real, calls = decompose.model_status, {"n": 0}
    D = len(data.depots)

    def unknown_from_round_three(highspy, h):
        calls["n"] += 1
        return highspy.HighsModelStatus.kUnknown if calls["n"] > 2 * D else real(highspy, h)

    monkeypatch.setattr(decompose, "model_status", unknown_from_round_three)
    result = DecomposeEngine(backend="serial").solve(replace(data, idle_cost=data.idle_cost), SolveOptions(),
                                                     Deadline(None))
    st = result.status
    assert st.has_solution and not st.complete and st.termination == TerminationCondition.error
    assert "stopped early" in st.message and "subproblem" in st.message and "without presolve" in st.message
    assert check_feasibility(data, result.decisions) == {}
    assert st.bound <= reference.status.objective * (1 + 1e-7) <= st.objective * (1 + 1e-7)
    assert result.extra["gap"] >= 0


def test_a_subproblem_unknown_in_the_first_round_is_an_error_with_the_depot_named(monkeypatch):
    from optplan.errors import SolverError
    from optplan.solvers import decompose

    monkeypatch.setattr(decompose, "model_status", lambda highspy, h: highspy.HighsModelStatus.kUnknown)
    with pytest.raises(SolverError, match=r"depot \S+: subproblem Unknown, also by ipm and by the primal simplex"):
        DecomposeEngine(backend="serial").solve(budgeted(1), SolveOptions(), Deadline(None))


@pytest.mark.parametrize("seed", range(4))
def test_the_decompositions_budget_prices_are_the_lps_and_a_finite_difference(seed):
    """Issue #34: at the plan's gap the master's duals were a few % off the LP's (0.250 against
    0.0128 at 1000 depots); the loop now goes on until they settle. Checked against HiGHS and
    against a finite difference of the optimum in the binding budget (an independent route)."""
    data = budgeted(seed)
    reference = solve_data(data, SolveOptions(), "highs")
    result = DecomposeEngine(backend="serial").solve(data, SolveOptions(), Deadline(None))
    assert result.extra["prices"] == "the LP's"
    binding = 0
    for family in ("budget_total", "budget_week", "budget_region"):
        want, got = np.asarray(reference.duals.get(family, [])), np.asarray(result.duals.get(family, []))
        assert got.shape == want.shape, family
        np.testing.assert_allclose(got, want, rtol=PRICE_RTOL, atol=1e-9 * max(1.0, np.abs(want).max(initial=0)))
        binding += int((np.abs(want) > 1e-6).sum())
    assert binding >= 1
    family, price = next((f, float(v[0])) for f, v in result.duals.items()
                         if f.startswith("budget") and abs(float(v[0])) > 1e-6)
    step = 1e-5 * (data.budget_total if family == "budget_total" else
                   data.budget_weekly[0] if family == "budget_week" else next(iter(data.budget_region.values())))

    def optimum(delta):
        changed = (replace(data, budget_total=data.budget_total + delta) if family == "budget_total" else
                   replace(data, budget_weekly=np.where(np.arange(data.n_weeks) == 0, data.budget_weekly + delta,
                                                        data.budget_weekly)) if family == "budget_week" else
                   replace(data, budget_region={k: v + delta for k, v in data.budget_region.items()}))
        return solve_data(changed, SolveOptions(), "highs").status.objective

    up, down = (optimum(step) - reference.status.objective) / step, (reference.status.objective - optimum(-step)) / step
    # the optimum is piecewise linear in the budget: its price lies between the one-sided slopes
    assert min(up, down) - 1e-2 * abs(price) <= price <= max(up, down) + 1e-2 * abs(price), (up, down, price)


def test_prices_that_have_not_settled_are_not_reported_and_the_status_says_why(monkeypatch):
    from optplan.solvers import decompose

    monkeypatch.setattr(decompose, "PRICE_ROUNDS", 0)
    data = budgeted(0)
    result = DecomposeEngine(backend="serial", gap=1e-2).solve(data, SolveOptions(), Deadline(None))
    if result.extra["gap"] <= decompose.PRICE_GAP:
        pytest.skip("this instance converged exactly at once: nothing to withhold")
    assert result.duals == {} and result.status.has_solution
    assert "budget shadow prices not reported" in result.status.message and "--engine highs" in result.status.message


def test_auto_tries_the_decomposition_first_from_its_size_on_and_says_why(monkeypatch):
    """At 1000 x 104 x 100 one LP gave HiGHS no feasible plan in 741 s and auto fell back to the
    DP (18 minutes, not optimal); the decomposition's plan was optimal in 435 s. From
    DECOMPOSE_SIZE depot-week-scenarios on, auto puts it first and the status says why (here the
    threshold is lowered to a small instance's size); integer applicants keep HiGHS (a MIP)."""
    import optplan.solvers.auto as auto

    inst = optplan.generate_instance(depots=3, weeks=6, scenarios=4, seed=2, budget_tightness=0.7)
    below = optplan.solve(inst)
    assert "decompose" not in below.status.engine
    monkeypatch.setattr(auto, "DECOMPOSE_SIZE", 3 * 6 * 4)
    plan = optplan.solve(inst)
    assert plan.status.engine.startswith("decompose"), plan.status.engine
    assert "auto: decompose first: 3 depots x 6 weeks x 4 scenarios = 72" in plan.status.message
    assert plan.status.complete and plan.status.fallback is None
    assert plan.status.objective == pytest.approx(below.status.objective, rel=1e-6)
    assert "decompose" not in optplan.solve(inst, integer=True).status.engine
