"""CVaR of a scenario's total cost: the kernel against hand-worked values, the model against
a hand-worked instance, against the evaluator, against mpi-sppy's CVaR wrapper of our
scenario_creator, and its special cases (lambda = 0, alpha = 0); both statements (the
extensive form's excess rows and the risk-envelope cuts on the aggregated recourse) against
each other, with the same budget duals."""

from __future__ import annotations

import pytest
from conftest import OBJ_RTOL, build

import optplan
from formulations.two_stage import scenario_creator
from formulations.two_stage.risk import cvar, cvar_vertex, value_at_risk
from optplan.errors import OptionError


def test_kernel_on_hand_worked_distributions():
    # costs 10, 20, 30, 40 equally likely, alpha 0.6: the worst 40% are 30 (10% of it) and 40
    # (the rest): (0.15 * 30 + 0.25 * 40) / 0.4 ... = 30 + (1/0.4) * 0.25 * (40 - 30) = 36.25
    assert cvar([10, 20, 30, 40], [0.25] * 4, 0.6) == pytest.approx(36.25)
    assert value_at_risk([10, 20, 30, 40], [0.25] * 4, 0.6) == 30
    # 100 (p 0.5), 200 (p 0.3), 400 (p 0.2), alpha 0.75: the worst 25% are 400 (0.2) and 200 (0.05)
    assert cvar([100, 200, 400], [0.5, 0.3, 0.2], 0.75) == pytest.approx((0.2 * 400 + 0.05 * 200) / 0.25)
    assert cvar([100, 200, 400], [0.5, 0.3, 0.2], 0.0) == pytest.approx(0.5 * 100 + 0.3 * 200 + 0.2 * 400)
    assert cvar([100, 200, 400], [0.5, 0.3, 0.2], 0.95) == pytest.approx(400)
    with pytest.raises(ValueError):
        cvar([1.0], [1.0], 1.0)


@pytest.mark.parametrize("seed", range(20))
def test_worst_vertex_gives_cvar(seed):
    """w = cvar_vertex(x) lies in the risk envelope and w @ x is the Rockafellar-Uryasev CVaR."""
    import numpy as np

    rng = np.random.default_rng(seed)
    S = int(rng.integers(1, 12))
    x = rng.normal(size=S).round(1)  # ties too
    p = rng.dirichlet(np.ones(S))
    alpha = float(rng.choice([0.0, 0.5, 0.9, 0.99, rng.random()]))
    w = cvar_vertex(x, p, alpha)
    assert w.sum() == pytest.approx(1.0, abs=1e-12)
    assert (w >= 0).all() and (w <= p / (1 - alpha) + 1e-15).all()
    assert w @ x == pytest.approx(cvar(x, p, alpha), abs=1e-12)
    # no other vertex is worse: any w' in the envelope has w' @ x <= w @ x (here: 200 random ones)
    for _ in range(200):
        v = rng.random(S) * p / (1 - alpha)
        if v.sum() >= 1:
            v = v / v.sum()
            if (v <= p / (1 - alpha) + 1e-12).all():
                assert v @ x <= w @ x + 1e-12


def risky_spec(spec):
    """tiny_spec with two scenarios for week 2: low 30 blocks (p 0.9), high 40 (p 0.1).

    Week 1: 0.9 x 10 = 9 drivers, 18 blocks against 20: 2 unserved, 200 USD in both scenarios,
    whatever the plan (applicants arrive a week later). Week 2: q = 2 (0.9 x 9 + 0.5 x) =
    16.2 + x blocks for x applicants of week 1 (10 USD each, so 10 USD per block).
    Scenario costs for 30 <= q <= 40:
        X_low(q)  = 200 + 10 (q - 16.2) + 5 (q - 30)   = 15 q - 112
        X_high(q) = 200 + 10 (q - 16.2) + 100 (40 - q) = 4038 - 90 q
    E(q) = 0.9 X_low + 0.1 X_high = 4.5 q + 303 rises, and below q = 30 one more block saves
    100 - 10: the expected-cost optimum is q = 30 (x = 13.8), E = 438; there X_high = 1,338.
    CVaR_0.9 is the worst 10%, here max(X_low, X_high): least where they cross, at
    q* = 4150 / 105 = 39.5238 (x* = q* - 16.2), CVaR = 15 q* - 112 = 480.857.
    (1 - l) E + l CVaR has slope (1 - l) 4.5 - l 90 on [30, q*]: the optimum moves from
    q = 30 to q* when l passes 4.5 / 94.5 = 1/21."""
    spec["scenarios"] = [{"scenario": "low", "probability": 0.9}, {"scenario": "high", "probability": 0.1}]
    spec["demand"] = {("A", 1, "low"): 20.0, ("A", 2, "low"): 30.0, ("A", 1, "high"): 20.0, ("A", 2, "high"): 40.0}
    return build(spec)


Q_STAR = 4150 / 105


@pytest.mark.parametrize(("weight", "alpha", "applicants", "objective"), [
    (0.0, 0.9, 13.8, 438.0),                      # today's model
    (1.0, 0.0, 13.8, 438.0),                      # CVaR at alpha 0 is the expectation
    (1.0, 0.9, Q_STAR - 16.2, 15 * Q_STAR - 112),  # pure CVaR
    (0.5, 0.9, Q_STAR - 16.2, 15 * Q_STAR - 112),  # at q* E = CVaR (X_low = X_high)
    (0.04, 0.9, 13.8, 0.96 * 438 + 0.04 * 1338),  # below 1/21: still q = 30
    (0.06, 0.9, Q_STAR - 16.2, 15 * Q_STAR - 112),  # above 1/21: q*
])
@pytest.mark.parametrize("formulation", ["auto", "extensive"])  # risk-envelope cuts, excess rows
def test_hand_worked_cvar_plan(spec, weight, alpha, applicants, objective, formulation):
    inst = risky_spec(spec)
    plan = optplan.solve(inst, cvar_weight=weight, cvar_alpha=alpha, formulation=formulation)
    assert plan.decisions.applicants.sum() == pytest.approx(applicants, rel=1e-7)
    assert plan.status.objective == pytest.approx(objective, rel=1e-7)
    # the evaluator (numpy kernel) gives the same mix for the plan
    k = plan.kpis
    assert (1 - weight) * k["expected_cost"] + weight * k["cvar_cost"] == pytest.approx(objective, rel=1e-7)


def test_evaluator_reports_cvar_for_any_plan(spec):
    plan = optplan.solve(risky_spec(spec))  # the expected-cost plan: q = 30
    assert plan.kpis["cvar_alpha"] == 0.9
    assert plan.kpis["cvar_cost"] == pytest.approx(1338.0, rel=1e-9)
    assert plan.kpis["worst_scenario_cost"] == pytest.approx(1338.0, rel=1e-9)


@pytest.mark.parametrize("formulation", ["auto", "extensive"])
@pytest.mark.parametrize(("weight", "alpha"), [(0.3, 0.8), (1.0, 0.9), (0.7, 0.5)])
def test_our_cvar_equals_mpisppy_cvar_wrapper(weight, alpha, formulation):
    """mpi-sppy's cvar_scenario_creator wraps our scenario_creator (mean weight 1 - lambda,
    CVaR weight lambda); its extensive form, solved by HiGHS, has our optimum."""
    import pyomo.environ as pyo
    from mpisppy.utils import sputils
    from mpisppy.utils.cvar import cvar_scenario_creator

    inst = optplan.generate_instance(depots=2, weeks=6, scenarios=4, seed=5)
    data = inst.model_data()
    wrapped = cvar_scenario_creator(scenario_creator, cvar_weight=weight, cvar_alpha=alpha, cvar_mean_weight=1 - weight)
    ef = sputils.create_EF(list(data.scenarios), wrapped, scenario_creator_kwargs={"data": data}, suppress_warnings=True)
    pyo.SolverFactory("appsi_highs").solve(ef)
    ours = optplan.solve(inst, cvar_weight=weight, cvar_alpha=alpha, formulation=formulation).status.objective
    assert pyo.value(ef.EF_Obj) == pytest.approx(ours, rel=1e-6)


def test_weight_zero_is_todays_optimum_and_risk_raises_the_expected_cost():
    inst = optplan.generate_instance(depots=3, weeks=8, scenarios=6, seed=2)
    base = optplan.solve(inst)
    zero = optplan.solve(inst, cvar_weight=0.0, formulation="extensive")
    assert zero.status.objective == pytest.approx(base.status.objective, rel=OBJ_RTOL)
    risky = optplan.solve(inst, cvar_weight=1.0, cvar_alpha=0.9)
    assert risky.kpis["cvar_cost"] <= base.kpis["cvar_cost"] * (1 + 1e-9)  # it minimises CVaR
    assert risky.kpis["expected_cost"] >= base.kpis["expected_cost"] * (1 - 1e-9)  # at a price in expectation


def test_bad_risk_options_are_refused():
    inst = optplan.generate_instance(depots=1, weeks=4, scenarios=2, seed=1)
    for kwargs in ({"cvar_weight": 1.5}, {"cvar_weight": -0.1}, {"cvar_alpha": 1.0}, {"cvar_alpha": -0.2},
                   {"cvar_weight": 0.5, "formulation": "aggregated", "engine": "glop"}):
        with pytest.raises(OptionError):
            optplan.solve(inst, **kwargs)
    for engine in ("dp", "decompose"):
        with pytest.raises(OptionError):
            optplan.solve(inst, engine=engine, cvar_weight=0.5)


#: Cuts against excess rows: the same optimum (relative) and budget duals (currency per currency).
CUTS_RTOL = 1e-6


@pytest.mark.parametrize(("seed", "weight", "alpha"), [(0, 0.5, 0.9), (1, 1.0, 0.9), (2, 0.3, 0.75), (3, 0.8, 0.95),
                                                       (4, 1.0, 0.0), (5, 0.6, 0.6)])
def test_cuts_equal_the_extensive_form(seed, weight, alpha):
    """The risk-envelope cuts on the aggregated recourse reach the extensive form's optimum,
    with the plan's CVaR by the evaluator, and the same budget shadow prices."""
    inst = optplan.generate_instance(depots=3, weeks=10, scenarios=7, seed=seed, budget_tightness=0.7)
    cuts = optplan.solve(inst, cvar_weight=weight, cvar_alpha=alpha)
    ext = optplan.solve(inst, cvar_weight=weight, cvar_alpha=alpha, formulation="extensive")
    assert "CVaR cuts" in cuts.engine and cuts.status.optimal
    assert cuts.status.objective == pytest.approx(ext.status.objective, rel=CUTS_RTOL)
    k = cuts.kpis
    assert (1 - weight) * k["expected_cost"] + weight * k["cvar_cost"] == pytest.approx(cuts.status.objective,
                                                                                         rel=CUTS_RTOL)
    import numpy as np

    np.testing.assert_allclose(cuts.budgets["shadow_price"], ext.budgets["shadow_price"], rtol=CUTS_RTOL, atol=1e-7)


def test_cuts_stopped_by_the_time_limit_return_a_feasible_plan_with_its_gap(monkeypatch):
    """A budget that runs out after the first round (a stub deadline: no race with the
    clock) gives that round's plan, feasible and not optimal, with the round's objective as
    the bound and the plan's true objective above it."""
    import optplan.solvers.cvar_cuts as cut_loop
    from optplan.solvers import Deadline

    rounds = []
    real = cut_loop.run_compiled  # the HiGHS run the cut loop calls (optplan.solvers.highs.run_compiled)

    def counting(*args, **kwargs):
        rounds.append(1)
        return real(*args, **kwargs)

    class AfterOneRound(Deadline):
        def expired(self):
            return len(rounds) >= 1

        def remaining(self):
            return 1e9

    monkeypatch.setattr(cut_loop, "run_compiled", counting)
    inst = optplan.generate_instance(depots=3, weeks=10, scenarios=7, seed=1, budget_tightness=0.7)
    with pytest.warns(RuntimeWarning, match="not proven optimal"):
        plan = optplan.solve(inst, cvar_weight=1.0, cvar_alpha=0.9, deadline=AfterOneRound(None))
    assert len(rounds) == 1
    assert not plan.status.optimal and plan.status.has_solution
    assert plan.status.termination.name == "maxTimeLimit"
    assert plan.status.bound < plan.status.objective
    assert plan.status.objective == pytest.approx(plan.kpis["cvar_cost"], rel=1e-9)  # lambda 1: the plan's CVaR
    monkeypatch.undo()
    best = optplan.solve(inst, cvar_weight=1.0, cvar_alpha=0.9).status.objective
    assert plan.status.bound <= best * (1 + 1e-9) and best <= plan.status.objective * (1 + 1e-9)


def test_cuts_that_do_not_reproduce_the_kernel_stall_and_are_not_called_optimal(monkeypatch):
    """If the kernel's recourse costs (what the plan really costs) exceed what the cut rows
    can express, the worst-case weights repeat with a gap: the loop must say it stalled and
    return the plan as feasible, not optimal (a stub: the loop's kernel costs inflated by 50% +
    1,000 currency per scenario; the status then reports the plan's cost by the real kernel)."""
    import optplan.solvers.cvar_cuts as cuts

    real = cuts.scenario_recourse
    monkeypatch.setattr(cuts, "scenario_recourse", lambda data, q: real(data, q) * 1.5 + 1000.0)
    inst = optplan.generate_instance(depots=3, weeks=10, scenarios=7, seed=1, budget_tightness=0.7)
    with pytest.warns(RuntimeWarning, match="not proven optimal"):
        plan = optplan.solve(inst, cvar_weight=1.0, cvar_alpha=0.9)
    assert not plan.status.optimal and plan.status.has_solution
    assert "stalled" in plan.status.message
    # the stalled loop's objective came from the inflated kernel (at least +1,000 at lambda 1);
    # the status reports the plan's cost by the real kernel instead, and says so
    assert "incumbent" in plan.status.message
    assert plan.status.objective == pytest.approx(plan.kpis["cvar_cost"], rel=1e-9)


def test_integer_cvar_stopped_by_a_mip_gap_keeps_cutting_and_reports_the_plans_cvar_objective():
    """A MIP round stopped by its gap (--mip-gap 0.02) is an incumbent, not an optimum: the
    loop still adds cuts from it, and the objective reported is the plan's own
    (1 - lambda) E + lambda CVaR by the evaluator (it was the first round's, with theta = 0:
    about half the plan's cost), with a bound below it and the exact optimum in between.
    highs_options' mip_rel_gap (no SolveOptions gap) goes the same way."""
    import warnings

    inst = optplan.generate_instance(depots=2, weeks=6, scenarios=4, seed=2, budget_tightness=0.8)
    lam = 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        gapped = optplan.solve(inst, integer=True, mip_rel_gap=0.02, cvar_weight=lam, cvar_alpha=0.9)
        via_options = optplan.solve(inst, integer=True, highs_options={"mip_rel_gap": 0.5}, cvar_weight=lam,
                                    cvar_alpha=0.9)
    exact = optplan.solve(inst, integer=True, cvar_weight=lam, cvar_alpha=0.9)
    assert "0 CVaR cuts" not in gapped.engine
    k = gapped.kpis
    assert gapped.status.objective == pytest.approx((1 - lam) * k["expected_cost"] + lam * k["cvar_cost"], rel=1e-9)
    assert gapped.status.bound <= exact.status.objective * (1 + 1e-9) <= gapped.status.objective * (1 + 2e-9)
    assert via_options.status.has_solution
