"""Warm what-ifs (issue #34 part 2): a persistent HiGHS model updated in place gives the cold
solve's plan after each kind of change, on 6 generated instances, and starts warm.

The independent route is a cold solve of the changed instance by the HiGHS engine (a new
model built from the changed files). Each instance has a total, a weekly and a regional
budget, so every budget kind is a row whose price can be compared; the changes are applied
one after another to the same warm model (each from the previous change's basis)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import optplan
from optplan.io.whatif import Scale
from optplan.solvers import SolveOptions, get_engine, solve_data
from optplan.solvers.warm import WarmModel, warm_route_refusal

#: Issue #34: the same optimum (relative) and the same budget prices (absolute, currency per currency).
OBJECTIVE_RTOL = 1e-7
DUAL_ATOL = 1e-6
BUDGET_FAMILIES = ("budget_total", "budget_week", "budget_region")

INSTANCES = [(3, 8, 4, 1), (4, 10, 5, 2), (5, 12, 5, 3), (6, 8, 6, 4), (4, 12, 3, 5), (7, 10, 4, 6)]
CHANGES = [
    ("budgets.total", Scale(0.9)),
    ("budgets.weekly", Scale(0.8)),
    ("budgets.regions.R01", Scale(0.85)),
    ("channels.cost_per_applicant", Scale(1.2)),
    ("penalties.unserved_cost_per_block", Scale(1.5)),
    ("demand.blocks", Scale(1.1)),
]


def base_instance(depots, weeks, scenarios, seed):
    inst = optplan.generate_instance(depots=depots, weeks=weeks, scenarios=scenarios, seed=seed, budget_tightness=0.8)
    total = inst.manifest.budgets.total
    # a weekly cap at 1.5 x the even share of the total and a cap on region R01 at half the total: rows of every kind
    return inst.with_changes({"budgets.weekly": round(1.5 * total / weeks, 2), "budgets.regions.R01": round(0.5 * total, 2)})


def cold(inst):
    return solve_data(inst.model_data(), SolveOptions(), get_engine("highs"))


@pytest.mark.parametrize("size", INSTANCES, ids=lambda s: "x".join(map(str, s)))
def test_a_warm_resolve_is_the_cold_solve_after_each_kind_of_change(size):
    inst = base_instance(*size)
    warm = WarmModel()
    first = warm.solve(inst.model_data())
    assert not warm.last_start.warm and warm.last_start.reason == "the first solve of this model"
    assert first.status.objective == pytest.approx(cold(inst).status.objective, rel=OBJECTIVE_RTOL)
    binding = set()
    for path, value in CHANGES:
        inst = inst.with_changes({path: value})
        w = warm.solve(inst.model_data())
        assert warm.last_start.warm, (path, warm.last_start.reason)
        c = cold(inst)
        assert w.status.optimal and c.status.optimal
        assert w.status.objective == pytest.approx(c.status.objective, rel=OBJECTIVE_RTOL), path
        for family in BUDGET_FAMILIES:
            np.testing.assert_allclose(w.duals[family], c.duals[family], rtol=0, atol=DUAL_ATOL, err_msg=f"{path} {family}")
            if np.any(np.abs(c.duals[family]) > 1e-9):
                binding.add(family)
        np.testing.assert_allclose(w.values["applicants"], c.values["applicants"], rtol=1e-6, atol=1e-5)
    # what each change pushed: a cost change touches costs only, a budget change row bounds only
    assert warm.solves == len(CHANGES) + 1
    assert binding, "no budget bound anywhere: the prices compared nothing"


def test_what_changed_is_what_is_pushed_and_a_new_row_rebuilds():
    inst = base_instance(4, 10, 5, 2)
    warm = WarmModel()
    warm.solve(inst.model_data())
    warm.solve(inst.with_changes({"budgets.total": Scale(0.9)}).model_data())
    s = warm.last_start
    assert s.warm and (s.costs_changed, s.column_bounds_changed, s.row_bounds_changed, s.coefficients_changed) == (0, 0, 1, 0)
    assert s.build_s == 0.0  # a budget cap alone: no build, the new right-hand side from budget_caps
    warm.solve(inst.with_changes({"budgets.regions.R01": Scale(0.5), "budgets.weekly": Scale(0.9)}).model_data())
    # by hand: the total back to the base (1 row), region R01 (1 row), the 10 weeks (10 rows)
    assert warm.last_start.warm and warm.last_start.build_s == 0.0 and warm.last_start.row_bounds_changed == 1 + 1 + 10
    inst2 = inst.with_changes({"budgets.total": Scale(0.9), "penalties.unserved_cost_per_block": Scale(2.0)})
    warm.solve(inst2.model_data())
    # costs, and the 12 budget rows back from the previous call's (each call is against the model's last LP)
    assert warm.last_start.warm and warm.last_start.costs_changed > 0 and warm.last_start.row_bounds_changed == 12
    # the weekly caps removed: rows gone, so the model is rebuilt and says why
    no_weekly = inst2.with_changes({"budgets.weekly": None})
    r = warm.solve(no_weekly.model_data())
    assert not warm.last_start.warm and "shape changed" in warm.last_start.reason
    assert r.status.objective == pytest.approx(cold(no_weekly).status.objective, rel=OBJECTIVE_RTOL)


def test_programs_the_warm_route_does_not_hold_are_refused_with_the_reason():
    inst = base_instance(3, 8, 4, 1)
    assert warm_route_refusal(inst.model_data(), SolveOptions()) == ""
    assert "basis" in warm_route_refusal(inst.model_data(), SolveOptions(integer=True))
    risky = replace(inst.model_data(), cvar_weight=0.5)
    assert "cut loop" in warm_route_refusal(risky, SolveOptions())
    with pytest.raises(ValueError, match="does not cover this program"):
        WarmModel().solve(risky)


def test_the_warm_model_is_an_engine_that_says_how_it_started():
    """Through solve_data like any engine: the status's engine names the start."""
    inst = base_instance(3, 8, 4, 1)
    warm = WarmModel()
    a = solve_data(inst.model_data(), SolveOptions(), warm)
    assert a.status.engine.endswith("rebuilt: the first solve of this model")
    b = solve_data(inst.with_changes({"budgets.total": Scale(0.95)}).model_data(), SolveOptions(), warm)
    assert b.status.engine.endswith("warm from the previous solve's basis") and b.status.optimal
    c = solve_data(inst.model_data(), SolveOptions(presolve=False), warm)
    assert c.status.engine.endswith("rebuilt: the solver options changed")
    assert c.status.objective == pytest.approx(a.status.objective, rel=OBJECTIVE_RTOL)


def test_the_planners_what_if_session_gives_optplan_solves_plans():
    """optplan.WhatIf: each call is the instance plus that call's changes (not cumulative), the
    plan optplan.solve gives for the changed instance, warm after the first; CVaR goes cold
    and says why."""
    inst = base_instance(4, 10, 5, 2)
    session = optplan.WhatIf(inst)
    first = session.solve()
    assert first.cost['total'] == pytest.approx(optplan.solve(inst, engine="highs").cost['total'], rel=OBJECTIVE_RTOL)
    for changes in ({"budgets.total": Scale(0.9)}, {"demand.blocks": Scale(1.1)}, {}):
        plan = session.solve(changes)
        assert plan.status.engine.endswith("warm from the previous solve's basis"), plan.status.engine
        expected = optplan.solve(inst.with_changes(changes) if changes else inst, engine="highs")
        assert plan.cost['total'] == pytest.approx(expected.cost['total'], rel=OBJECTIVE_RTOL), changes
    risky = optplan.WhatIf(inst, cvar_weight=0.3)
    plan = risky.solve({"budgets.total": Scale(0.9)})
    assert "cold: CVaR is solved by its own cut loop" in plan.status.engine
    assert plan.cost['total'] == pytest.approx(optplan.solve(inst.with_changes({"budgets.total": Scale(0.9)}),
                                                          engine="highs", cvar_weight=0.3).cost['total'], rel=1e-6)
