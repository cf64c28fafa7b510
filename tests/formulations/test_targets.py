"""Service and utilisation targets (formulations/two_stage/service.py): worked by hand on a
one-depot instance, held by the plan in the evaluator (not only in the LP), monotone in the
target, refused where they cannot be stated."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import build

import optplan
from optplan.errors import InfeasibleError, InstanceError, OptionError

TARGET_ATOL = 1e-9


def two_scenario(spec, targets=None):
    """tiny_spec with week 2 demand 30 (p 0.9) or 40 (p 0.1); see test_risk.risky_spec.

    E[demand] = 20 + 31 = 51 blocks; week 1 leaves 2 unserved whatever the plan; week 2 with
    q = 16.2 + x blocks in [30, 40] leaves 0.1 (40 - q) unserved and 0.9 (q - 30) idle.
    Expected-cost optimum q = 30: service 1 - 3/51 = 0.941176. A 0.95 target allows
    2.55 unserved: 0.1 (40 - q) <= 0.55, q >= 34.5, x = 18.3 applicants, expected cost
    E(q) = 4.5 q + 303 = 458.25 USD; its drivers' utilisation is 1 - 0.9 x 4.5 / (18 + 34.5)
    = 0.922857. A utilisation floor of 0.93 on top needs q <= 33.72...: infeasible."""
    spec["scenarios"] = [{"scenario": "low", "probability": 0.9}, {"scenario": "high", "probability": 0.1}]
    spec["demand"] = {("A", 1, "low"): 20.0, ("A", 2, "low"): 30.0, ("A", 1, "high"): 20.0, ("A", 2, "high"): 40.0}
    if targets:
        spec["manifest"]["targets"] = targets
    return build(spec)


def test_hand_worked_service_target(spec):
    base = optplan.solve(two_scenario(spec))
    assert base.kpis["service_level"] == pytest.approx(1 - 3 / 51)
    plan = optplan.solve(two_scenario(spec, {"service_level": 0.95}))
    assert plan.decisions.applicants.sum() == pytest.approx(18.3, rel=1e-7)
    assert plan.cost["total"] == pytest.approx(458.25, rel=1e-7)
    assert plan.kpis["service_level"] == pytest.approx(0.95, abs=TARGET_ATOL)
    assert plan.kpis["driver_utilisation"] == pytest.approx(1 - 0.9 * 4.5 / 52.5, rel=1e-9)


def test_conflicting_targets_are_infeasible_and_named(spec):
    with pytest.raises(InfeasibleError) as err:
        optplan.solve(two_scenario(spec, {"service_level": 0.95, "driver_utilisation": 0.93}))
    assert "service_target" in str(err.value) or "utilisation_floor" in str(err.value)


@pytest.fixture(scope="module")
def inst():
    generated = optplan.generate_instance(depots=4, weeks=10, scenarios=6, seed=3)
    return generated.with_changes({"budgets.total": None, "budgets.weekly": None})  # targets, not money, bind


def _sweep(inst, path: str, column: str, start: float, points: int) -> None:
    """Tighten the target at ``path`` from ``start`` 30 % of the way to 1: every plan keeps it
    in the evaluator (``column`` of plan.service) and the cost never falls."""
    costs = []
    for value in np.linspace(start, start + 0.3 * (1 - start), points):
        plan = optplan.solve(inst.with_changes({path: float(value)}))
        assert (plan.service[column] >= value - TARGET_ATOL).all()
        costs.append(plan.cost["total"])
    assert np.all(np.diff(costs) >= -1e-7 * costs[0])


def test_targets_hold_in_the_evaluator_and_cost_rises_with_them(inst):
    base = optplan.solve(inst)
    _sweep(inst, "targets.service_level", "service_level", float(base.service["service_level"].min()), 4)
    _sweep(inst, "targets.driver_utilisation", "driver_utilisation", float(base.service["driver_utilisation"].min()), 3)
    net = base.kpis["service_level"] + 0.3 * (1 - base.kpis["service_level"])
    plan = optplan.solve(inst.with_changes({"targets.network_service_level": float(net)}))
    assert plan.kpis["service_level"] >= net - TARGET_ATOL
    by_depot = optplan.solve(inst.with_changes({"targets.service_level_by_depot": {inst.depots[0]: 0.999}}))
    assert by_depot.service["service_level"].iloc[0] >= 0.999 - TARGET_ATOL


def test_targets_combine_with_cvar(inst):
    """Service targets and CVaR together (HiGHS: the cuts sit on the aggregated recourse
    beside the target rows): the targets hold in the evaluator, the objective is the
    evaluator's mix, no lower than the optimum of CVaR alone and no higher than the mix of
    the targets-only plan (which keeps the targets too)."""
    base = optplan.solve(inst)
    level = float(base.service["service_level"].min()) + 0.2 * (1 - float(base.service["service_level"].min()))
    with_target = inst.with_changes({"targets.service_level": level})
    both = optplan.solve(with_target, cvar_weight=0.5, cvar_alpha=0.8)
    assert (both.service["service_level"] >= level - TARGET_ATOL).all()
    mix = 0.5 * both.kpis["expected_cost"] + 0.5 * both.kpis["cvar_cost"]
    assert both.status.objective == pytest.approx(mix, rel=1e-7)
    risk_only = optplan.solve(inst, cvar_weight=0.5, cvar_alpha=0.8).status.objective
    target_only = optplan.solve(with_target)
    assert both.status.objective >= risk_only * (1 - 1e-9)
    # the targets-only plan keeps the targets too, so its mix is no better than the optimum
    target_mix = 0.5 * target_only.kpis["expected_cost"] + 0.5 * target_only.kpis["cvar_cost"]
    assert both.status.objective <= target_mix * (1 + 1e-9)


def test_targets_are_refused_where_they_cannot_be_stated(inst):
    with_target = inst.with_changes({"targets.service_level": 0.9})
    with pytest.raises(OptionError):
        optplan.solve(with_target, cvar_weight=0.5, engine="glop")  # GLOP states CVaR by the extensive form
    with pytest.raises(OptionError):
        optplan.solve(with_target, formulation="extensive")
    with pytest.raises(OptionError):
        optplan.solve(with_target, engine="dp")
    with pytest.raises(InstanceError):
        inst.with_changes({"targets.service_level_by_depot": {"nowhere": 0.9}})
    with pytest.raises(InstanceError):
        inst.with_changes({"targets.service_level": 1.5})


@pytest.mark.parametrize(("path", "value"), [("targets.service_level", 0.9995), ("targets.driver_utilisation", 0.93),
                                             ("targets.network_service_level", 0.9998)])
def test_cost_of_a_target_is_the_slope_of_the_cost(path, value):
    """targets.csv's cost per percentage point, summed over the binding rows a target moves,
    equals a central finite difference of the optimal cost in that target (demo)."""
    demo = optplan.load_instance(__import__("conftest").REPO / "instances" / "demo")
    h = 1e-5
    plan = optplan.solve(demo.with_changes({path: value}))
    up = optplan.solve(demo.with_changes({path: value + h})).cost["total"]
    down = optplan.solve(demo.with_changes({path: value - h})).cost["total"]
    t = plan.targets
    assert t["binding"].any()
    slope_per_point = (up - down) / (2 * h) / 100
    assert t.loc[t["binding"], "cost_per_point"].sum() == pytest.approx(slope_per_point, rel=1e-4)
    assert (t["achieved_share"] >= t["target_share"] - TARGET_ATOL).all()


def test_an_infeasible_target_names_its_depot():
    """No money at all: D001 cannot reach 99.9 % (it reaches 98.0 % without spending) while
    D003's 50 % is met; the message names D001's target row, not D003's."""
    inst = optplan.generate_instance(depots=3, weeks=8, scenarios=4, seed=1)
    with pytest.raises(InfeasibleError) as err:
        optplan.solve(inst.with_changes({"budgets.total": 0.0,
                                         "targets.service_level_by_depot": {"D001": 0.999, "D003": 0.5}}))
    assert "service_target (depots D001)" in str(err.value)


def test_an_unreachable_service_target_names_its_reach_and_weeks():
    """The same case: with no money the plan is forced (nothing recruited, nothing spent),
    so D001's reach is the forced plan's service level and its least-served weeks are the
    forced plan's, worked out by the evaluator on a solve without the target."""
    inst = optplan.generate_instance(depots=3, weeks=8, scenarios=4, seed=1).with_changes({"budgets.total": 0.0})
    forced = optplan.solve(inst)
    level = float(forced.service["service_level"].iloc[0])
    data = inst.model_data()
    demand = np.einsum("dts,s->dt", data.demand, data.probability)[0]
    weekly = 1 - np.einsum("ts,s->t", forced.evaluation.unserved_blocks[0], data.probability) / demand
    worst = np.argsort(weekly, kind="stable")[:3]
    with pytest.raises(InfeasibleError) as err:
        optplan.solve(inst.with_changes({"targets.service_level_by_depot": {"D001": 0.999}}))
    text = str(err.value)
    assert f"D001 reaches at most {level:.1%} (target 99.9%)" in text
    assert "least served at that plan: " + ", ".join(f"week {t + 1} {weekly[t]:.1%}" for t in worst) in text


def test_an_unreachable_network_target_is_named_alone_with_its_reach():
    """No money: the network's reach is the forced plan's service level. The diagnosis names
    the network target (tried first) and not the rows that only define drivers or capacity
    (removing one of those 'explains' any infeasibility)."""
    inst = optplan.generate_instance(depots=3, weeks=8, scenarios=4, seed=1).with_changes({"budgets.total": 0.0})
    level = optplan.solve(inst).kpis["service_level"]
    with pytest.raises(InfeasibleError) as err:
        optplan.solve(inst.with_changes({"targets.network_service_level": 0.999}))
    families = err.value.families
    assert families[0].startswith(f"network_service_target: the network reaches at most {level:.1%} (target 99.9%)")
    assert not any(f.split(" ")[0].split(":")[0] in ("arrivals_definition", "driver_stock", "capacity_definition",
                                                     "recourse_link") for f in families)


def test_a_region_holding_every_depot_is_the_network(inst):
    """Every depot of the generated instance is in region R01: a target on that region is
    the network target by another row (region_service_target), with the same optimum, the
    same cost per point, and the target held in the evaluator."""
    assert set(inst.tables["depots"]["region"]) == {"R01"}
    base = optplan.solve(inst)
    level = float(base.kpis["service_level"] + 0.3 * (1 - base.kpis["service_level"]))
    net = optplan.solve(inst.with_changes({"targets.network_service_level": level}))
    region = optplan.solve(inst.with_changes({"targets.service_level_by_region": {"R01": level}}))
    assert region.status.objective == pytest.approx(net.status.objective, rel=1e-9)
    assert region.status.objective > base.status.objective
    row = region.targets.iloc[0]
    assert (row["scope"], row["depot"], row["binding"]) == ("region", "R01", True)
    assert row["achieved_share"] == pytest.approx(net.kpis["service_level"], abs=TARGET_ATOL)
    assert row["achieved_share"] >= level - TARGET_ATOL
    assert row["cost_per_point"] == pytest.approx(net.targets.iloc[0]["cost_per_point"], rel=1e-6)


def test_region_targets_hold_and_name_their_region():
    """Two regions: each target holds in the evaluator over its own depots; an unknown
    region is refused; one that no money can reach is named with its reach."""
    inst = optplan.generate_instance(depots=4, weeks=8, scenarios=4, seed=2)
    depots = inst.tables["depots"].copy()
    depots["region"] = ["N", "N", "S", "S"]
    inst = optplan.from_tables(inst.manifest, {**inst.tables, "depots": depots})
    assert set(inst.tables["depots"]["region"]) == {"N", "S"}
    base = optplan.solve(inst)
    svc = base.service
    south = svc[svc["region"] == "S"]
    s_level = float((south["demand_blocks"] * south["service_level"]).sum() / south["demand_blocks"].sum())
    target = s_level + 0.3 * (1 - s_level)
    plan = optplan.solve(inst.with_changes({"targets.service_level_by_region": {"S": target}}))
    got = plan.service[plan.service["region"] == "S"]
    assert (got["demand_blocks"] * got["service_level"]).sum() / got["demand_blocks"].sum() >= target - TARGET_ATOL
    with pytest.raises(InstanceError, match="unknown region 'W'"):
        inst.with_changes({"targets.service_level_by_region": {"W": 0.9}})
    with pytest.raises(InfeasibleError, match=r"region_service_target: region S reaches at most"):
        optplan.solve(inst.with_changes({"budgets.total": 0.0, "targets.service_level_by_region": {"S": 0.9999}}))
