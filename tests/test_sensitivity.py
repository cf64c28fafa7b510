"""Sensitivity: shadow prices against finite differences of the frontier, channel-cost
ranging checked by cold re-solves, warm-started frontier against cold solves, tornado."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import OBJ_RTOL, REPO, build

import optplan
from optplan.explain.sensitivity import SensitivityModel, perturb, tornado
from optplan.io.instance import from_tables

#: Shadow price vs a central finite difference of the frontier (step 1e-4 of the budget,
#: no breakpoint in between): agreement to this relative tolerance.
SLOPE_RTOL = 1e-4


@pytest.fixture(scope="module")
def tight():
    """A generated instance whose total budget binds."""
    return optplan.generate_instance(depots=4, weeks=10, scenarios=6, seed=2, budget_tightness=0.5)


def _total_budget_row(sm):
    """The total budget's row of the marginal-value table (a Series), on pandas 2 and 3 alike."""
    mv = sm.marginal_values()
    rows = mv[(mv["kind"] == "budget") & (mv["scope"] == "total")]
    assert len(rows) == 1
    return rows.iloc[0]


def test_shadow_price_equals_the_frontier_slope(tight):
    sm = SensitivityModel(tight.model_data())
    cap = tight.model_data().budget_total
    h = 1e-4 * cap
    frontier = sm.budget_frontier(budgets=np.array([cap - h, cap, cap + h]))
    slope = -(frontier["expected_cost"].iloc[2] - frontier["expected_cost"].iloc[0]) / (2 * h)
    shadow = frontier["shadow_price"].iloc[1]
    assert shadow > 0
    assert slope == pytest.approx(shadow, rel=SLOPE_RTOL)
    row = _total_budget_row(sm)
    assert row["shadow_price"] == pytest.approx(shadow, rel=1e-9)
    lo, hi = row["holds_from"], row["holds_to"]
    assert lo <= cap <= hi


def test_budget_shadow_price_holds_over_its_reported_range(tight):
    """Inside HiGHS's reported cap range the shadow price is constant; beyond it, it changes."""
    sm = SensitivityModel(tight.model_data())
    row = _total_budget_row(sm)
    lo, hi, price = row["holds_from"], row["holds_to"], row["shadow_price"]
    inside = [lo + 0.1 * (hi - lo), hi - 0.1 * (hi - lo)]
    outside = [hi + 0.05 * (hi - lo)]
    f = sm.budget_frontier(budgets=np.array(inside + outside))
    np.testing.assert_allclose(f["shadow_price"].iloc[:2], price, rtol=1e-6)
    assert abs(f["shadow_price"].iloc[2] - price) > 1e-6 * max(1.0, price)


def test_frontier_is_monotone_and_ends_where_the_budget_stops_binding(tight):
    sm = SensitivityModel(tight.model_data())
    f = sm.budget_frontier(points=6)
    assert f["budget_total"].iloc[0] == 0.0
    assert np.all(np.diff(f["expected_cost"]) <= 1e-6 * f["expected_cost"].iloc[0])
    assert np.all(np.diff(f["service_level"]) >= -1e-9)
    # at budget 0 nothing is spent on recruiting or incentives
    spend_cols = [c for c in f.columns if c.startswith("recruiting_")] + ["incentive_spend"]
    assert f.loc[0, spend_cols].sum() == pytest.approx(0.0, abs=1e-6)
    # the last point is the unconstrained optimum
    free = tight.manifest.model_copy(deep=True)
    free.budgets.total = None
    unconstrained = optplan.solve(from_tables(free, {k: v.copy() for k, v in tight.tables.items()}))
    assert f["expected_cost"].iloc[-1] == pytest.approx(unconstrained.status.objective, rel=OBJ_RTOL)


def test_warm_and_cold_frontiers_agree(tight):
    sm = SensitivityModel(tight.model_data())
    warm = sm.budget_frontier(points=5)
    cold = sm.budget_frontier(points=5, warm=False)
    np.testing.assert_allclose(warm["expected_cost"], cold["expected_cost"], rtol=OBJ_RTOL)


def _support(plan) -> tuple:
    """The plan's shape: which recruiting decisions are used and which budgets bind."""
    x = plan.decisions.applicants
    used = tuple(map(tuple, np.argwhere(x > 1e-6 * max(1.0, x.max()))))
    binding = tuple(plan.budgets.loc[plan.budgets["binding"], ["scope", "key"]].itertuples(index=False))
    return used, binding


def _with_channel_cost(inst, channel: str, cost: float):
    tables = {k: v.copy() for k, v in inst.tables.items()}
    ch = tables["channels"]
    ch.loc[ch["channel"] == channel, "cost_per_applicant"] = cost
    return from_tables(inst.manifest, tables)


def test_channel_cost_ranging_inside_keeps_the_plan_and_outside_changes_it():
    """Cold re-solves of perturbed instances: inside the reported range the plan keeps its
    shape (same decisions used, same budgets binding); just outside it does not."""
    inst = optplan.load_instance(REPO / "instances" / "demo")
    base = optplan.solve(inst)
    ranges = SensitivityModel(inst.model_data()).channel_cost_ranges().set_index("channel")
    checked = 0
    for channel, r in ranges.iterrows():
        cost = r["cost_per_applicant"]
        lo, hi = r["basis_same_from"], r["basis_same_to"]
        assert lo <= cost <= hi
        for inside in (cost + 0.5 * (lo - cost), cost + 0.5 * (min(hi, 2 * cost) - cost)):
            assert _support(optplan.solve(_with_channel_cost(inst, channel, inside))) == _support(base), (channel, inside)
        for edge, outside in ((lo, lo - 0.02 * cost), (hi, hi + 0.02 * cost)):
            if np.isfinite(edge) and outside > 0:
                assert _support(optplan.solve(_with_channel_cost(inst, channel, outside))) != _support(base), (channel, outside)
                checked += 1
    assert checked >= 3


def test_hand_worked_marginal_values(spec):
    """Tiny instance with a 100 USD budget (see test_hand_worked): shadow price 9 USD/USD; the
    channel is used, so it needs to be no cheaper to be used more."""
    spec["scenarios"] = [{"scenario": "low", "probability": 0.5}, {"scenario": "high", "probability": 0.5}]
    spec["demand"] = {("A", 1, "low"): 20.0, ("A", 2, "low"): 30.0, ("A", 1, "high"): 20.0, ("A", 2, "high"): 40.0}
    spec["manifest"]["budgets"] = {"total": 100.0}
    sm = SensitivityModel(build(spec).model_data())
    mv = sm.marginal_values()
    assert mv.loc[mv["scope"] == "total", "shadow_price"].iloc[0] == pytest.approx(9.0, rel=OBJ_RTOL)
    rc = sm.channel_reduced_costs()
    assert rc["applicants"].iloc[0] == pytest.approx(10.0, rel=OBJ_RTOL)


def test_tornado_directions_make_sense():
    data = optplan.generate_instance(depots=3, weeks=8, scenarios=4, seed=1).model_data()
    result = tornado(data, change=0.1, workers=2)
    t = result.table.set_index(["parameter", "change"])["cost_change"]
    assert len(result.table) == 12
    assert t[("demand_level", 0.1)] > 0 > t[("demand_level", -0.1)]
    assert t[("churn", 0.1)] > 0 > t[("churn", -0.1)]
    assert t[("cost_per_applicant", 0.1)] >= 0 >= t[("cost_per_applicant", -0.1)]
    # the parallel result equals a direct solve of the perturbed data
    from optplan.solvers import SolveOptions, solve_data

    expect = solve_data(perturb(data, "blocks_per_driver", 1.1), SolveOptions(), "highs").status.objective
    assert result.base_cost + t[("blocks_per_driver", 0.1)] == pytest.approx(expect, rel=OBJ_RTOL)


def test_tornado_on_any_backend_gives_the_same_table():
    """The tornado's 13 solves are backend tasks: in this process and on local processes
    the table is the same."""
    from optplan.solvers.backends import SerialBackend

    data = optplan.generate_instance(depots=2, weeks=6, scenarios=3, seed=4).model_data()
    serial = tornado(data, backend=SerialBackend())
    local = tornado(data, workers=2)
    pd.testing.assert_frame_equal(serial.table, local.table, rtol=1e-9)


def test_large_models_get_one_column_cost_ranging_only(demo_path):
    """Above RANGING_MAX_COLUMNS the same-basis bisection is skipped (its re-solves take
    minutes at national scale): the same HiGHS one-column ranges, the bisection columns
    empty (NaN, written as empty cells)."""
    sm = SensitivityModel(optplan.load_instance(demo_path).model_data())
    full = sm.channel_cost_ranges()
    quick = sm.channel_cost_ranges(bisection=False)
    assert quick["basis_same_from"].isna().all() and quick["basis_same_to"].isna().all()
    cols = ["channel", "highs_one_column_from", "highs_one_column_to"]
    pd.testing.assert_frame_equal(quick[cols], full[cols])
    assert full["basis_same_from"].notna().all()


@pytest.mark.slow  # CI's second step: keeps the README's test command within its time
def test_frontier_chains_on_two_workers_match_the_single_chain(demo_path):
    """Split into one warm-started chain per worker, the frontier has the same points:
    expected cost (an optimum: unique) to 1e-9 and the total budget's shadow price to 1e-6,
    except at the last point: there the budget is exactly where it stops binding, a kink of
    the cost, where any price between the slopes on either side is a valid dual."""
    from optplan.solvers.backends import LocalBackend

    sm = SensitivityModel(optplan.load_instance(demo_path).model_data())
    single = sm.budget_frontier(points=6)
    backend = LocalBackend(2)
    try:
        split = sm.budget_frontier(points=6, backend=backend)
    finally:
        backend.close()
    np.testing.assert_allclose(split["budget_total"], single["budget_total"], rtol=0)
    np.testing.assert_allclose(split["expected_cost"], single["expected_cost"], rtol=1e-9)
    np.testing.assert_allclose(split["shadow_price"][:-1], single["shadow_price"][:-1], rtol=1e-6, atol=1e-9)
    left_slope = single["shadow_price"].iloc[-2]
    for price in (split["shadow_price"].iloc[-1], single["shadow_price"].iloc[-1]):
        assert -1e-9 <= price <= left_slope + 1e-9


def _solve(data):
    from optplan.solvers import SolveOptions, solve_data

    return solve_data(data, SolveOptions(), "highs")


def test_a_budget_that_does_not_bind_holds_its_zero_price_down_to_what_the_plan_spends(tight):
    """Non-binding weekly budgets: the reported range is [the week's spend, no limit). A cap
    just above its start keeps the optimum (price 0); a cap 5% below it raises the cost."""
    from dataclasses import replace

    data = tight.model_data()
    mv = SensitivityModel(data).marginal_values()
    weeks = mv[(mv["scope"] == "week") & (mv["shadow_price"] == 0) & (mv["holds_from"] > 1.0)]
    assert len(weeks) >= 3
    base = _solve(data).status.objective
    for row in weeks.head(3).itertuples(index=False):
        t = int(row.key) - 1
        assert np.isinf(row.holds_to) and row.holds_from <= data.budget_weekly[t]
        for cap, raises in ((row.holds_from * (1 + 1e-6) + 1e-6, False), (row.holds_from * 0.95, True)):
            caps = data.budget_weekly.copy()
            caps[t] = cap
            cost = _solve(replace(data, budget_weekly=caps)).status.objective
            if raises:
                assert cost > base * (1 + 1e-9), (row.key, cap)
            else:
                assert cost == pytest.approx(base, rel=OBJ_RTOL), (row.key, cap)


def test_onboarding_ranges_are_in_drivers_per_week_of_cap():
    """An onboarding row bounds recruited arrivals by cap - pipeline; its range is reported
    as caps (the pipeline added back). A depot cap at the largest reported start keeps the
    optimum; 3% below it raises the cost."""
    from dataclasses import replace

    data = optplan.load_instance(REPO / "instances" / "demo").model_data()
    mv = SensitivityModel(data).marginal_values()
    base = _solve(data).status.objective
    ob = mv[mv["kind"] == "onboarding_cap"]
    assert (ob["shadow_price"] == 0).all()
    depot = data.depots[1]
    start = float(ob.loc[ob["scope"] == depot, "holds_from"].max())
    d = data.depots.index(depot)
    assert start <= data.onboarding_cap[d]
    for cap, raises in ((start * (1 + 1e-6) + 1e-6, False), (start * 0.97, True)):
        caps = data.onboarding_cap.copy()
        caps[d] = cap
        cost = _solve(replace(data, onboarding_cap=caps)).status.objective
        assert (cost > base * (1 + 1e-9)) if raises else cost == pytest.approx(base, rel=OBJ_RTOL), cap


def test_an_unused_channel_is_used_just_past_its_reported_cut_when_a_budget_binds(tight):
    """The cut accounts for the binding budgets' prices (rc / (1 + sum of shadow prices)):
    10% short of it the channel stays unused, 10% past it the channel is used."""
    from dataclasses import replace

    data = tight.model_data()
    sm = SensitivityModel(data)
    assert (sm.marginal_values()["shadow_price"] > 0).any()
    rc = sm.channel_reduced_costs().set_index("channel")
    unused = rc[(rc["applicants"] <= 1e-9) & (rc["cheaper_by_to_recruit_more"] > 0)]
    assert len(unused) >= 1
    for channel, row in unused.iterrows():
        c = data.channels.index(channel)
        cut = row["cheaper_by_to_recruit_more"]
        assert cut < row["cost_per_applicant"]
        for share, used in ((0.9, False), (1.1, True)):
            costs = data.cost_per_applicant.copy()
            costs[c] -= share * cut
            x = _solve(replace(data, cost_per_applicant=costs)).decisions.applicants[:, c, :]
            assert (x.sum() > 1e-6) == used, (channel, share)


def test_service_frontier_cost_rises_with_service_and_with_the_utilisation_floor(demo_path):
    """Two-sided frontier on the demo: along each utilisation floor the cost never falls as
    the service target rises; at a given target a floor never makes the plan cheaper; every
    feasible point keeps its targets in the evaluator."""
    from optplan.explain.sensitivity import service_frontier

    f = service_frontier(optplan.load_instance(demo_path).model_data(), points=4)
    assert len(f) == 12 and f["feasible"].sum() >= 8
    for _floor, part in f.groupby(f["utilisation_floor"].fillna(-1.0)):
        ok = part[part["feasible"]].sort_values("service_target")
        assert np.all(np.diff(ok["expected_cost"]) >= -1e-7 * ok["expected_cost"].iloc[0])
        assert (ok["lowest_depot_utilisation"] >= ok["utilisation_floor"].fillna(0.0) - 1e-9).all()
    free = f[f["utilisation_floor"].isna()].set_index("service_target")["expected_cost"]
    for floor, part in f[f["utilisation_floor"].notna() & f["feasible"]].groupby("utilisation_floor"):
        floored = part.set_index("service_target")["expected_cost"]
        assert (floored >= free.loc[floored.index] * (1 - 1e-9)).all(), floor


def test_reduced_costs_without_a_total_budget(demo_path):
    """Without a total budget the model's total row is open (no dual): the cut of an unused
    channel is its reduced cost over 1 + the weekly budgets' prices, and nothing fails."""
    inst = optplan.load_instance(demo_path).with_changes({"budgets.total": None})
    rc = SensitivityModel(inst.model_data()).channel_reduced_costs()
    assert rc["cheaper_by_to_recruit_more"].notna().any()
    assert (rc["cheaper_by_to_recruit_more"].dropna() >= 0).all()
