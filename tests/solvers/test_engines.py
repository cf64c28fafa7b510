"""The engine contract: one time budget for every engine and for auto's chain, status that
says why an engine stopped, and no fallback from an infeasible instance.

No test here depends on the machine's speed: deadlines run on a fake clock that advances
one "second" each time an engine looks at it (so an engine stops after a fixed amount of
work), or use a limit no engine can meet (1e-6 s, less than building any model takes).
Wall-clock behaviour is measured in benchmarks/bench_time_limit.py."""

from __future__ import annotations

import pytest
from conftest import OBJ_RTOL, FakeClock, StubEngine, build
from pyomo.contrib.solver.common.results import SolutionStatus, TerminationCondition

import optplan
from optplan.errors import InfeasibleError, NoSolutionError, SolverError
from optplan.evaluation.evaluator import check_feasibility, evaluate_decisions
from optplan.solvers import Deadline, SolveOptions, SolverStatus, solve_data
from optplan.solvers.auto import AutoEngine
from optplan.solvers.dp import DPEngine, DPOptions, solve_dp


@pytest.fixture(scope="module")
def demo_data(demo_path):
    return optplan.load_instance(demo_path).model_data()


@pytest.fixture(scope="module")
def full_dp(demo_data):
    """The DP run to the end on the demo (51 states per week)."""
    return solve_dp(demo_data, DPOptions(grid_points=51))


def test_dp_stops_at_the_deadline_with_its_best_plan_so_far(demo_data, full_dp):
    """On a fake clock the DP gets 40 looks at the clock: it returns a feasible plan from an
    early stage, says it stopped at the time limit, and costs no less than the full run."""
    full = full_dp
    assert full.complete and full.stage in ("priced", "polished", "first pass")
    clock = FakeClock()
    result = DPEngine(DPOptions(grid_points=51)).solve(demo_data, SolveOptions(), Deadline(40.0, clock))
    dp = result.extra["dp"]
    assert not dp.complete
    assert result.status.termination == TerminationCondition.maxTimeLimit
    assert result.status.solution == SolutionStatus.feasible and not result.status.complete
    assert "time limit" in result.status.describe()
    assert check_feasibility(demo_data, result.decisions) == {}
    assert dp.evaluated == pytest.approx(evaluate_decisions(demo_data, result.decisions).expected_cost, rel=OBJ_RTOL)
    assert dp.evaluated >= full.evaluated * (1 - OBJ_RTOL)
    assert clock.now <= 40.0 + 64 + 10  # stopped within a polish check interval of the budget


def test_dp_without_time_for_its_first_pass_has_no_plan(demo_data):
    with pytest.raises(NoSolutionError, match="before the DP finished its first pass") as err:
        DPEngine().solve(demo_data, SolveOptions(), Deadline(1.0, FakeClock(step=5.0)))
    assert err.value.status.termination == TerminationCondition.maxTimeLimit


def test_dp_given_all_the_time_finishes_and_says_so(demo_data, full_dp):
    result = DPEngine(DPOptions(grid_points=51)).solve(demo_data, SolveOptions(), Deadline(None))
    assert result.status.complete and result.status.termination == TerminationCondition.convergenceCriteriaSatisfied
    assert result.extra["dp"].evaluated == pytest.approx(full_dp.evaluated, rel=OBJ_RTOL)
    assert result.extra["dp"].stage == full_dp.stage


def test_auto_falls_back_with_what_is_left_of_one_budget(demo_data):
    """HiGHS (stubbed) spends 30 of 100 fake seconds and stops with no plan; it ran under a
    budget ending 10 s early (kept for the DP); the DP gets what is left of the same budget,
    not a new one, and the status names the fallback and why."""
    highs = StubEngine("highs", NoSolutionError("no plan: the time limit passed"), cost=30.0)
    clock = FakeClock()
    auto = AutoEngine(chain=("highs", "dp"), engines={"highs": highs, "dp": DPEngine(DPOptions(grid_points=51))})
    deadline = Deadline(100.0, clock)
    result = auto.solve(demo_data, SolveOptions(), deadline)
    assert highs.calls == 1 and highs.budgets == [90.0]
    assert result.engine.startswith("dp")
    assert "highs gave no plan" in result.status.fallback
    assert not result.status.complete  # a fallback plan is never "complete": exit 3
    assert clock.now <= 100.0 + 64 + 10


def test_auto_never_falls_back_from_an_infeasible_instance(demo_data):
    dp = StubEngine("dp")
    highs = StubEngine("highs", InfeasibleError("infeasible because of onboarding_cap", ["onboarding_cap"]))
    with pytest.raises(InfeasibleError):
        AutoEngine(chain=("highs", "dp"), engines={"highs": highs, "dp": dp}).solve(demo_data, SolveOptions(), Deadline(None))
    assert dp.calls == 0


def test_auto_stops_when_the_budget_is_spent(demo_data):
    """HiGHS uses the whole budget without a plan: no engine after it runs; exit-4 error."""
    highs = StubEngine("highs", NoSolutionError("no plan: the time limit passed"), cost=200.0)
    dp = StubEngine("dp")
    dp.capabilities = DPEngine.capabilities
    auto = AutoEngine(chain=("highs", "dp"), engines={"highs": highs, "dp": dp})
    with pytest.raises(NoSolutionError, match="no plan within the time limit") as err:
        auto.solve(demo_data, SolveOptions(), Deadline(100.0, FakeClock()))
    assert dp.calls == 0 and err.value.exit_status == 4


def test_auto_skips_an_engine_that_is_not_installed(demo_data):
    highs = StubEngine("highs", unavailable="cannot import highspy")
    dp = StubEngine("dp")
    result = AutoEngine(chain=("highs", "dp"), engines={"highs": highs, "dp": dp}).solve(
        demo_data, SolveOptions(), Deadline(None))
    assert highs.calls == 0 and dp.calls == 1
    assert "highs is not available (cannot import highspy)" in result.status.fallback


def test_auto_moves_on_after_a_solver_error(demo_data):
    highs = StubEngine("highs", SolverError("HiGHS failed"))
    dp = StubEngine("dp")
    result = AutoEngine(chain=("highs", "dp"), engines={"highs": highs, "dp": dp}).solve(
        demo_data, SolveOptions(), Deadline(None))
    assert dp.calls == 1 and "HiGHS failed" in result.status.fallback


@pytest.mark.parametrize("engine", ["highs", "glop", "dp", "auto"])
def test_a_limit_no_engine_can_meet_gives_no_plan(demo_data, engine):
    """1e-6 s: less than building any model takes, so every engine (and auto) says no plan."""
    with pytest.raises(NoSolutionError) as err:
        solve_data(demo_data, SolveOptions(time_limit=1e-6), engine)
    assert "time limit" in str(err.value)


def test_highs_stopped_with_an_incumbent_says_so(demo_data):
    """A MIP stopped by a solution limit (deterministic, unlike a short time limit) returns
    its incumbent, not proven optimal, with the gap to HiGHS's bound."""
    from dataclasses import replace

    data = replace(demo_data, integer_applicants=True)
    opts = SolveOptions(integer=True, highs_options={"mip_max_improving_sols": 1, "presolve": "off"})
    result = solve_data(data, opts, "highs")
    assert result.status.termination == TerminationCondition.iterationLimit
    assert result.status.solution == SolutionStatus.feasible and not result.status.complete
    assert result.status.gap is not None and result.status.gap > 0
    assert "with a feasible plan, gap" in result.status.describe()


def test_infeasible_instance_names_family_and_row_in_every_engine(spec):
    """4 pipeline drivers must arrive in week 2 but the depot can onboard only 3 a week."""
    spec["depots"][0]["onboarding_cap"] = 3.0
    spec["pipeline"] = [{"depot": "A", "week": 2, "new_drivers": 4.0}]
    data = build(spec).model_data()
    for engine in ("highs", "glop", "dp", "auto"):
        with pytest.raises(InfeasibleError) as err:
            solve_data(data, SolveOptions(), engine)
        assert err.value.families == ["onboarding_cap"], engine
        assert "depot A week 2: pipeline 4 > cap 3 drivers/week" in str(err.value), engine


def test_status_in_planner_words():
    TC, SS = TerminationCondition, SolutionStatus
    assert SolverStatus(TC.convergenceCriteriaSatisfied, SS.optimal, "highs", "Optimal", 10.0, 10.0).describe() == "optimal"
    s = SolverStatus(TC.maxTimeLimit, SS.feasible, "highs", "Time limit reached", 101.0, 100.0)
    assert s.describe() == "NOT PROVEN OPTIMAL: stopped at the time limit with a feasible plan, gap 0.99 %"
    s = SolverStatus(TC.maxTimeLimit, SS.feasible, "dp", "time limit", 101.0, None)
    assert s.describe() == "NOT PROVEN OPTIMAL: stopped at the time limit with a feasible plan, gap to the optimum unknown"
    s = SolverStatus(TC.convergenceCriteriaSatisfied, SS.feasible, "dp", "finished", 101.0, None, fallback="highs failed")
    assert s.describe() == ("feasible plan from a heuristic (no bound, so not proven optimal); made by the fallback engine "
                            "because highs failed")
    assert not s.complete


@pytest.mark.parametrize("seed", range(4))
def test_glop_and_highs_find_the_same_optimum_and_budget_prices(seed):
    """Two exact engines, one LP: the same optimal cost (1e-6) and the same binding-budget
    shadow prices where the dual is unique (both engines agree on the sign convention)."""
    inst = optplan.generate_instance(depots=3, weeks=8, scenarios=4, seed=seed, budget_tightness=0.7)
    a, b = optplan.solve(inst, engine="highs"), optplan.solve(inst, engine="glop")
    assert b.status.optimal and b.engine.startswith("glop")
    assert b.status.objective == pytest.approx(a.status.objective, rel=OBJ_RTOL)
    assert b.cost["total"] == pytest.approx(a.cost["total"], rel=OBJ_RTOL)
    total_a = a.budgets.set_index(["scope", "key"]).loc[("total", "total"), "shadow_price"]
    total_b = b.budgets.set_index(["scope", "key"]).loc[("total", "total"), "shadow_price"]
    assert total_b == pytest.approx(total_a, rel=1e-5, abs=1e-7)


def test_glop_refuses_integer_applicants_and_auto_skips_it(demo_data):
    from dataclasses import replace

    with pytest.raises(SolverError, match="LPs only"):
        solve_data(replace(demo_data, integer_applicants=True), SolveOptions(integer=True), "glop")
    highs = StubEngine("highs", SolverError("HiGHS failed"))
    dp = StubEngine("dp")
    result = AutoEngine(chain=("highs", "glop", "dp"), engines={"highs": highs, "dp": dp}).solve(
        replace(demo_data, integer_applicants=True), SolveOptions(integer=True), Deadline(None))
    assert dp.calls == 1 and "glop skipped (no integer applicants)" in result.status.fallback


def test_after_a_time_out_auto_goes_to_the_heuristic_not_another_exact_engine(demo_data):
    highs = StubEngine("highs", NoSolutionError("no plan: the time limit passed"), cost=30.0)
    glop = StubEngine("glop")
    dp = StubEngine("dp")
    dp.capabilities = DPEngine.capabilities
    result = AutoEngine(chain=("highs", "glop", "dp"), engines={"highs": highs, "glop": glop, "dp": dp}).solve(
        demo_data, SolveOptions(), Deadline(100.0, FakeClock()))
    assert glop.calls == 0 and dp.calls == 1
    assert "glop skipped (exact, and the engine before ran out of time)" in result.status.fallback


class _UnknownOnce:
    """A HiGHS whose first run() stops with status Unknown and no plan (numerical trouble,
    as HiGHS 1.16's dual simplex did on a nearly infeasible target LP); every later run is real."""

    def __init__(self, h):
        self._h, self.runs, self.presolve = h, 0, []

    def __getattr__(self, name):
        return getattr(self._h, name)

    def run(self):
        self.runs += 1
        self.presolve.append(self._h.getOptionValue("presolve")[1])
        return self._h.run() if self.runs > 1 else None

    def getModelStatus(self):
        import highspy

        return self._h.getModelStatus() if self.runs > 1 else highspy.HighsModelStatus.kUnknown

    def getInfo(self):
        info = self._h.getInfo()
        if self.runs == 1:
            info.primal_solution_status = 0
        return info


def test_status_unknown_without_a_plan_is_solved_again_without_presolve_and_says_so(demo_path):
    from formulations.two_stage.matrix import aggregated_standard_form
    from optplan.solvers.highs import highs_from_standard_form, run_compiled

    data = optplan.load_instance(demo_path).model_data()
    options = SolveOptions(method="simplex")
    compiled = highs_from_standard_form(aggregated_standard_form(data), options)
    compiled.highs = stub = _UnknownOnce(compiled.highs)  # its first run() ends Unknown
    result = run_compiled(data, compiled, options)
    assert stub.runs == 1  # the retry runs in a new HiGHS: the caller's is left as it was
    assert result.status.optimal and "ipm without presolve after simplex stopped with status Unknown" in \
        result.status.engine
    assert result.status.objective == pytest.approx(optplan.solve(optplan.load_instance(demo_path)).status.objective,
                                                    rel=1e-7)
    assert stub.getOptionValue("presolve")[1] == "on" and stub.getOptionValue("solver")[1] == "simplex"


@pytest.mark.slow  # CI's second step: keeps the README's test command within its time
def test_the_long_lead_frontier_lp_that_ends_unknown_is_proven_infeasible():
    """A real case: the service-frontier LP of the long-lead instance stated with period totals
    (`generate --periods long-lead` before demand stayed weekly) at its last point (every
    depot's service >= 99.81% and utilisation >= 97.36%) ends Unknown in HiGHS 1.16 by the
    dual simplex and by ipm after presolve (a NoSolutionError without the retries); the
    retries prove it infeasible (exit 5, with the diagnosis)."""
    from dataclasses import replace

    import numpy as np

    from optplan.io.periods import in_periods, long_lead_runs
    from optplan.planning.plan import Plan

    weekly = optplan.generate_instance(depots=8, weeks=156, scenarios=10, seed=11, budget_tightness=0.8)
    data = in_periods(weekly, long_lead_runs(156), week_profile=False).model_data()
    base = Plan.from_result(solve_data(data, SolveOptions(), "highs"), "base", "2000-01-03")
    low = float(base.service["service_level"].min())
    tau, floor = low + 0.5 * (1.0 - low), float(base.service["driver_utilisation"].max())
    D = len(data.depots)
    hard = replace(data, service_target=np.full(D, tau), utilisation_floor=np.full(D, floor))
    with pytest.raises(InfeasibleError):
        solve_data(hard, SolveOptions(), "highs")


def test_a_mip_stopped_at_the_requested_gap_is_complete_not_optimal_and_reports_the_plans_cost():
    """--mip-gap 1e9: HiGHS stops at its first incumbent and calls it Optimal. The plan is what
    was asked for (complete: exit 0, no warning) but not a proven optimum: one status phrase
    says so with the gap, never "optimal" beside "not proven optimal"; the objective is the
    plan's cost with its recourse re-optimised (the evaluator's), never above the incumbent's."""
    import warnings

    from conftest import REPO

    inst = optplan.load_instance(REPO / "instances" / "demo")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "not proven optimal" warning: the gap was asked for
        plan = optplan.solve(inst, integer=True, mip_rel_gap=1e9)
    st = plan.status
    assert not st.optimal and st.complete and st.has_solution
    assert st.requested_gap == 1e9
    assert st.describe().startswith("optimal within the requested gap: at most ")
    assert "NOT PROVEN" not in plan.text_summary() and "its status" not in plan.text_summary()
    assert "requested MIP gap" in st.message
    ev = evaluate_decisions(inst.model_data(integer_applicants=True), plan.decisions)
    assert st.objective == pytest.approx(ev.expected_cost, rel=1e-9)
    assert st.bound <= st.objective
    exact = optplan.solve(inst, integer=True)
    assert exact.status.optimal and exact.status.complete
    assert exact.status.objective <= st.objective * (1 + 1e-9)


def test_a_gap_wider_than_the_tolerance_without_a_request_is_not_complete():
    """The same stop without a requested gap (an engine that ends early) is NOT PROVEN OPTIMAL."""
    from pyomo.contrib.solver.common.results import SolutionStatus, TerminationCondition

    from optplan.solvers.base import SolverStatus

    ok = TerminationCondition.convergenceCriteriaSatisfied
    asked = SolverStatus(ok, SolutionStatus.feasible, "highs 1.16.0 (choose)", "Optimal", 101.0, 100.0, requested_gap=0.02)
    unasked = SolverStatus(ok, SolutionStatus.feasible, "highs 1.16.0 (choose)", "Optimal", 101.0, 100.0)
    tight = SolverStatus(ok, SolutionStatus.feasible, "decompose (local, 2 workers)", "converged", 100.005, 100.0)
    assert asked.complete and not unasked.complete and tight.complete
    assert asked.describe() == ("optimal within the requested gap: at most 1 % above the best possible cost "
                                "(allowed gap 2 %)")  # 101 against a bound of 100: 1 % above it, a gap of 0.99 %
    assert unasked.describe() == "NOT PROVEN OPTIMAL: finished with a feasible plan, gap 0.99 %"
    assert tight.describe() == "optimal within the engine's tolerance of 0.01 % (gap 0.005 %)"
