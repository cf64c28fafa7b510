"""Tiny instances whose optimum is worked out by hand in each docstring (tolerance OBJ_RTOL).

Base (conftest.tiny_spec): week-1 capacity is 0.9 * 10 drivers * 2 blocks = 18 blocks;
applicants of week 1 (x) arrive in week 2 with probability 0.5, so week-2 capacity is
2 * (0.9 * 9 + 0.5 x) = 16.2 + x blocks: one applicant buys one block for 10 USD.
Week-2 applicants would arrive in week 3, outside the horizon, so they are not modelled.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import OBJ_RTOL, X_ATOL, build

import optplan


def applicants_week1(plan) -> float:
    return float(plan.decisions.applicants[0, 0, 0])


def test_one_scenario_recruits_to_cover_week_two(spec):
    """Week 1: 2 blocks short whatever we do -> 2 * 100 = 200 USD unserved.
    Week 2: cover 30 - 16.2 = 13.8 blocks with 13.8 applicants at 10 USD (< 100 USD a block
    unserved) -> 138 USD. Optimum 338 USD, x = 13.8."""
    plan = optplan.solve(build(spec))
    assert plan.status.optimal
    assert plan.status.objective == pytest.approx(338.0, rel=OBJ_RTOL)
    assert applicants_week1(plan) == pytest.approx(13.8, abs=X_ATOL)
    assert plan.kpis["expected_unserved_blocks"] == pytest.approx(2.0, rel=OBJ_RTOL)


def test_two_scenarios_hedge_to_the_high_scenario(spec):
    """Week-2 demand 30 or 40 with probability 1/2 each. A block beyond 30 costs 10 USD and
    earns 0.5 * 100 = 50 USD in the high scenario against 0.5 * 5 = 2.5 USD idle in the low
    one, so cover 40: x = 23.8 (238 USD), idle 10 blocks in the low scenario (0.5 * 10 * 5 =
    25 USD), week-1 unserved 200 USD. Optimum 463 USD."""
    spec["scenarios"] = [{"scenario": "low", "probability": 0.5}, {"scenario": "high", "probability": 0.5}]
    spec["demand"] = {("A", 1, "low"): 20.0, ("A", 2, "low"): 30.0, ("A", 1, "high"): 20.0, ("A", 2, "high"): 40.0}
    plan = optplan.solve(build(spec))
    assert plan.status.objective == pytest.approx(463.0, rel=OBJ_RTOL)
    assert applicants_week1(plan) == pytest.approx(23.8, abs=X_ATOL)
    assert plan.kpis["expected_idle_blocks"] == pytest.approx(5.0, rel=OBJ_RTOL)


def test_binding_budget_and_its_shadow_price(spec):
    """As the two-scenario case with a total budget of 100 USD: x = 10, week-2 capacity 26.2,
    unserved 3.8 (low) and 13.8 (high) blocks: 0.5 * (3.8 + 13.8) * 100 = 880 USD; plus
    100 USD recruiting and 200 USD week-1 unserved = 1180 USD. One more USD of budget buys
    0.1 applicant = 0.1 block in both scenarios, saving 10 USD of penalty for 1 USD spent:
    shadow price 9 USD per USD."""
    spec["scenarios"] = [{"scenario": "low", "probability": 0.5}, {"scenario": "high", "probability": 0.5}]
    spec["demand"] = {("A", 1, "low"): 20.0, ("A", 2, "low"): 30.0, ("A", 1, "high"): 20.0, ("A", 2, "high"): 40.0}
    spec["manifest"]["budgets"] = {"total": 100.0}
    plan = optplan.solve(build(spec))
    assert plan.status.objective == pytest.approx(1180.0, rel=OBJ_RTOL)
    budgets = plan.budgets.set_index("scope")
    assert bool(budgets.loc["total", "binding"])
    assert budgets.loc["total", "shadow_price"] == pytest.approx(9.0, rel=OBJ_RTOL)
    assert plan.summary()["binding_budgets"][0]["shadow_price"] == pytest.approx(9.0, rel=OBJ_RTOL)


def test_surge_covers_shortfall_up_to_its_cap(spec):
    """Surge at 50 USD/block (< 100 unserved), capped at 10% of planned capacity.
    Week 1: capacity 18, short 2: surge 1.8 (90 USD) + unserved 0.2 (20 USD).
    Week 2: an applicant (10 USD/block) beats surge, so x = 13.8 (138 USD), no surge.
    Optimum 248 USD."""
    spec["manifest"]["recourse"] = {"surge_cost_per_block": 50.0, "surge_cap_share": 0.1}
    plan = optplan.solve(build(spec))
    assert plan.status.objective == pytest.approx(248.0, rel=OBJ_RTOL)
    assert plan.kpis["expected_surge_blocks"] == pytest.approx(1.8, rel=OBJ_RTOL)


def test_concave_incentives_fill_the_cheap_segment_first(spec):
    """Segment 1: up to 100 USD/week at 0.05 blocks/USD (20 USD a block); segment 2: 100
    USD/week at 0.01 blocks/USD (100 USD a block). Week 1 is 2 blocks short: 40 USD of
    segment 1 (cheaper than 100 USD unserved). Week 2: recruiting at 10 USD a block beats
    20 USD a block. Optimum 40 + 138 = 178 USD."""
    spec["incentives"] = [
        {"depot": "A", "segment": 1, "max_spend": 100.0, "blocks_per_currency": 0.05},
        {"depot": "A", "segment": 2, "max_spend": 100.0, "blocks_per_currency": 0.01},
    ]
    plan = optplan.solve(build(spec))
    assert plan.status.objective == pytest.approx(178.0, rel=OBJ_RTOL)
    z = plan.decisions.incentive_spend
    assert z[0, 0, 0] == pytest.approx(40.0, abs=X_ATOL)
    assert z[0, :, 1].sum() == pytest.approx(0.0, abs=X_ATOL)
    assert plan.incentives["extra_blocks"].sum() == pytest.approx(2.0, rel=OBJ_RTOL)


def test_onboarding_cap_limits_arrivals(spec):
    """At most 3 new drivers a week: 0.5 x <= 3, x = 6, week-2 capacity 22.2, unserved 7.8.
    Cost 200 (week 1) + 60 + 780 = 1040 USD."""
    spec["depots"][0]["onboarding_cap"] = 3.0
    plan = optplan.solve(build(spec))
    assert plan.status.objective == pytest.approx(1040.0, rel=OBJ_RTOL)
    assert applicants_week1(plan) == pytest.approx(6.0, abs=X_ATOL)


def test_pipeline_and_three_weeks(spec):
    """Three weeks, demand 20/30/30, 4 pipeline drivers arriving in week 2.
    Week 2: capacity 2 * (8.1 + 4 + 0.5 x1) = 24.2 + x1; cover 30: x1 = 5.8 (58 USD).
    Week 3: drivers 0.9 * 15 + 0.5 x2 = 13.5 + 0.5 x2 -> capacity 27 + x2; cover 30 with
    x2 = 3 (30 USD). Week-1 unserved 200 USD. Optimum 288 USD."""
    spec["manifest"]["horizon"]["weeks"] = 3
    spec["demand"][("A", 3, "base")] = 30.0
    spec["pipeline"] = [{"depot": "A", "week": 2, "new_drivers": 4.0}]
    plan = optplan.solve(build(spec))
    assert plan.status.objective == pytest.approx(288.0, rel=OBJ_RTOL)
    np.testing.assert_allclose(plan.decisions.applicants[0, 0, :2], [5.8, 3.0], atol=X_ATOL)


def test_weekly_and_regional_budgets_bind(spec):
    """Weekly cap 50 USD binds before the total: x = 5, week-2 capacity 21.2, unserved 8.8:
    cost 200 + 50 + 880 = 1130 USD; a regional cap of 30 USD on 'north' binds harder:
    x = 3, unserved 10.8 -> 200 + 30 + 1080 = 1310 USD."""
    spec["manifest"]["budgets"] = {"weekly": 50.0}
    plan = optplan.solve(build(spec))
    assert plan.status.objective == pytest.approx(1130.0, rel=OBJ_RTOL)
    spec["manifest"]["budgets"] = {"weekly": 50.0, "regions": {"north": 30.0}}
    plan = optplan.solve(build(spec))
    assert plan.status.objective == pytest.approx(1310.0, rel=OBJ_RTOL)
    b = plan.budgets.set_index(["scope", "key"])
    assert bool(b.loc[("region", "north"), "binding"])
    assert b.loc[("region", "north"), "shadow_price"] == pytest.approx(9.0, rel=OBJ_RTOL)


def test_integer_applicants_round_up_when_it_pays(spec):
    """With whole applicants, x in {13, 14}: x = 13 leaves 0.8 blocks unserved (80 USD) ->
    130 + 80 = 210; x = 14 leaves 0.2 idle (1 USD) -> 140 + 1 = 141. Optimum 200 + 141 = 341."""
    plan = optplan.solve(build(spec), integer=True)
    assert plan.status.objective == pytest.approx(341.0, rel=OBJ_RTOL)
    assert applicants_week1(plan) == pytest.approx(14.0, abs=X_ATOL)
    assert "mip" in plan.engine
