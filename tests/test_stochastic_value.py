"""RP, EV, EEV, WS, EVPI and VSS (optplan.explain.stochastic) against published values (the
Birge & Louveaux farmer), against mpi-sppy's own extensive form, and against the repo's
model (RP = optplan.solve's optimum; WS <= RP <= EEV)."""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
import pyomo.environ as pyo
import pytest
from conftest import FARMER_JSON

import optplan
from examples import farmer
from formulations import two_stage
from optplan.evaluation.evaluator import Decisions, evaluate_decisions
from optplan.explain.stochastic import build_extensive_form, optplan_values, value_of_stochastic_solution
from optplan.io.instance import from_tables

#: Relative tolerance against published values that are exact (RP, EV, EEV, VSS, acres are
#: whole numbers in the source and the LP optimum is exactly those numbers).
PUBLISHED_RTOL = 1e-6
#: WS and EVPI are published rounded to cents: the exact values are -1038650/9 =
#: -115405.5555... and 63140/9 = 7015.5555..., 0.0044 away from the printed -115405.56 and
#: 7015.56. So they are compared within one cent (the rounding unit), which still catches any
#: wrong scenario optimum (those differ by thousands of dollars).
PUBLISHED_CENT_ATOL = 0.01
#: Absolute tolerance on first-stage acres (the published optimum is a vertex: 170/80/250).
ACRES_ATOL = 1e-6
#: Relative tolerance between two routes to the same optimum (same LP, different build).
OBJ_RTOL = 1e-6


def _sanity_atol(value: float) -> float:
    """Slack for inequalities that hold exactly in theory (WS <= RP <= EEV): solver tolerance."""
    return OBJ_RTOL * max(1.0, abs(value))


@pytest.fixture(scope="module")
def farmer_data():
    return farmer.load_farmer_data(FARMER_JSON)


@pytest.fixture(scope="module")
def farmer_values(farmer_data):
    d = farmer_data
    return value_of_stochastic_solution(
        d.scenarios, farmer.scenario_creator, partial(farmer.mean_scenario_creator, d),
        creator_kwargs={"data": d}, first_stage=farmer.first_stage_variables,
    )


# ----------------------------------------------------------------------- 1. farmer, published


@pytest.mark.parametrize(
    "field,key", [("rp", "RP_extensive_form"), ("ev", "EV_expected_value_problem"), ("eev", "EEV"), ("vss", "VSS")]
)
def test_farmer_exact_published_values(farmer_values, farmer_data, field, key):
    published = float(farmer_data.published[key])
    assert getattr(farmer_values, field) == pytest.approx(published, rel=PUBLISHED_RTOL)


@pytest.mark.parametrize("field,key", [("ws", "WS_wait_and_see"), ("evpi", "EVPI")])
def test_farmer_cent_rounded_published_values(farmer_values, farmer_data, field, key):
    published = float(farmer_data.published[key])
    assert getattr(farmer_values, field) == pytest.approx(published, abs=PUBLISHED_CENT_ATOL)


def test_farmer_definitions_and_first_stage(farmer_values, farmer_data):
    v = farmer_values
    assert v.evpi == pytest.approx(v.rp - v.ws, rel=1e-12)
    assert v.vss == pytest.approx(v.eev - v.rp, rel=1e-12)
    acres = {f"acres[{crop}]": float(x) for crop, x in farmer_data.published["first_stage_x_acres"].items()}
    assert v.rp_first_stage.keys() == acres.keys()
    for name, x in acres.items():
        assert v.rp_first_stage[name] == pytest.approx(x, abs=ACRES_ATOL), name
    # the textbook's EV plan (Birge & Louveaux Sec. 1.1): 120 wheat, 80 corn, 300 beets
    assert [v.ev_first_stage[f"acres[{c}]"] for c in farmer.CROPS] == pytest.approx([120, 80, 300], abs=ACRES_ATOL)


def test_farmer_first_stage_from_mpisppy_root_node_gives_same_values(farmer_values, farmer_data):
    """first_stage=None reads mpi-sppy's _mpisppy_node_list (attached by the creator)."""
    pytest.importorskip("mpisppy")
    d = farmer_data
    v = value_of_stochastic_solution(
        d.scenarios, farmer.scenario_creator, partial(farmer.mean_scenario_creator, d), creator_kwargs={"data": d}
    )
    assert v.rp == pytest.approx(farmer_values.rp, rel=OBJ_RTOL)
    assert v.eev == pytest.approx(farmer_values.eev, rel=OBJ_RTOL)
    assert v.rp_first_stage == pytest.approx(farmer_values.rp_first_stage, abs=ACRES_ATOL)


# ----------------------------------------------------------------------- 2. farmer, mpi-sppy EF


def test_farmer_extensive_form_equals_mpisppy_create_ef(farmer_data):
    pytest.importorskip("mpisppy")
    from mpisppy.utils import sputils

    d = farmer_data
    ours = build_extensive_form(d.scenarios, farmer.scenario_creator, {"data": d}, farmer.first_stage_variables)
    theirs = sputils.create_EF(list(d.scenarios), farmer.scenario_creator, scenario_creator_kwargs={"data": d})
    values = []
    for model in (ours, theirs):
        results = pyo.SolverFactory("appsi_highs").solve(model)
        assert results.solver.termination_condition == pyo.TerminationCondition.optimal
        active = list(model.component_data_objects(pyo.Objective, active=True))
        assert len(active) == 1
        values.append(pyo.value(active[0]))
    assert values[0] == pytest.approx(values[1], rel=OBJ_RTOL)
    assert values[0] == pytest.approx(float(d.published["RP_extensive_form"]), rel=PUBLISHED_RTOL)


# ----------------------------------------------------------------------- 3. the repo's model


def test_optplan_rp_equals_solve_and_orderings_hold():
    inst = optplan.generate_instance(depots=3, weeks=8, scenarios=5, seed=1)
    v = optplan_values(inst.model_data(), route="scenario_models")
    assert v.rp == pytest.approx(optplan.solve(inst).status.objective, rel=OBJ_RTOL)
    tol = _sanity_atol(v.rp)
    assert v.ws <= v.rp + tol
    assert v.rp <= v.eev + tol
    assert v.evpi >= -tol
    assert v.vss >= -tol
    assert v.evpi == pytest.approx(v.rp - v.ws, rel=1e-12, abs=1e-9)
    assert v.vss == pytest.approx(v.eev - v.rp, rel=1e-12, abs=1e-9)
    # every scenario is at least as good alone as with the EV plan forced on it
    for s in v.ws_by_scenario:
        assert v.ws_by_scenario[s] <= v.eev_by_scenario[s] + _sanity_atol(v.eev_by_scenario[s])


def _with_demand(inst, demand: pd.DataFrame, scenarios: pd.DataFrame):
    tables = {k: v.copy() for k, v in inst.tables.items()}
    tables["demand"], tables["scenarios"] = demand, scenarios
    return from_tables(inst.manifest, tables)


def test_optplan_ev_eev_ws_by_independent_routes():
    """EV = optplan.solve on an instance whose one scenario is the probability-weighted mean
    demand (built from the tables, not ModelData); WS = sum_s p_s optplan.solve(scenario s
    alone); EEV = the solver-free evaluator run on the EV first stage (applicants and
    incentive spend, mapped back to arrays by the Pyomo index of each named variable)."""
    inst = optplan.generate_instance(depots=3, weeks=8, scenarios=5, seed=1)
    data = inst.model_data()
    v = optplan_values(data, route="scenario_models")
    demand, scen = inst.tables["demand"], inst.tables["scenarios"]
    p = scen.set_index("scenario")["probability"]

    weighted = demand.assign(blocks=demand["blocks"] * demand["scenario"].map(p))
    mean = weighted.groupby(["depot", "week"], as_index=False)["blocks"].sum().assign(scenario="mean")
    ev_inst = _with_demand(inst, mean[list(demand.columns)], pd.DataFrame({"scenario": ["mean"], "probability": [1.0]}))
    assert v.ev == pytest.approx(optplan.solve(ev_inst).status.objective, rel=OBJ_RTOL)

    ws = 0.0
    for s, ps in p.items():
        alone = _with_demand(inst, demand[demand["scenario"] == s], pd.DataFrame({"scenario": [s], "probability": [1.0]}))
        optimum = optplan.solve(alone).status.objective
        assert v.ws_by_scenario[s] == pytest.approx(optimum, rel=OBJ_RTOL), s
        ws += ps * optimum
    assert v.ws == pytest.approx(ws, rel=OBJ_RTOL)

    m = two_stage.build_model(data)  # only for the index of each named variable
    d_pos = {d: i for i, d in enumerate(data.depots)}
    c_pos = {c: i for i, c in enumerate(data.channels)}
    applicants = np.zeros((len(data.depots), len(data.channels), data.n_weeks))
    spend = np.zeros((len(data.depots), data.n_weeks, data.incentive_width.shape[1]))
    for (d, c, t), vd in m.applicants.items():
        applicants[d_pos[d], c_pos[c], t - 1] = v.ev_first_stage[vd.name]
    for (d, t, g), vd in m.incentive_spend.items():
        spend[d_pos[d], t - 1, g - 1] = v.ev_first_stage[vd.name]
    evaluation = evaluate_decisions(data, Decisions(applicants, spend))
    assert evaluation.violations == {}
    assert v.eev == pytest.approx(evaluation.expected_cost, rel=OBJ_RTOL)


def test_optplan_one_scenario_has_zero_evpi_and_vss():
    inst = optplan.generate_instance(depots=3, weeks=8, scenarios=1, seed=1)
    v = optplan_values(inst.model_data(), route="scenario_models")
    tol = _sanity_atol(v.rp)
    assert v.evpi == pytest.approx(0.0, abs=tol)
    assert v.vss == pytest.approx(0.0, abs=tol)
    assert v.ev == pytest.approx(v.rp, rel=OBJ_RTOL)


# ----------------------------------------------------------------------- errors, on a toy model

TOY_CAP = {"low": 2.0, "high": 8.0}  # mean 5: the EV plan x = 5 cannot be run in "low"


def _toy_creator(name: str, probability: dict | None = None) -> pyo.ConcreteModel:
    """min -x + y  s.t.  x <= cap_s (hard), x + y >= 4;  x first stage."""
    m = pyo.ConcreteModel()
    m.x = pyo.Var(bounds=(0, 10))
    m.y = pyo.Var(domain=pyo.NonNegativeReals)
    cap = TOY_CAP[name] if name in TOY_CAP else sum(TOY_CAP.values()) / len(TOY_CAP)
    m.cap = pyo.Constraint(expr=m.x <= cap)
    m.need = pyo.Constraint(expr=m.x + m.y >= 4)
    m.cost = pyo.Objective(expr=-m.x + m.y)
    if probability is not None:
        m._mpisppy_probability = probability[name]
    return m


def _toy_first_stage(m):
    return [m.x]


def test_infeasible_ev_first_stage_is_reported_by_scenario():
    with pytest.raises(ValueError, match="EV first stage is infeasible in scenario 'low'"):
        value_of_stochastic_solution(
            list(TOY_CAP), _toy_creator, partial(_toy_creator, "mean", {"mean": 1.0}), first_stage=_toy_first_stage
        )


def test_missing_probabilities_mean_equal_weights_and_bad_sums_are_rejected():
    ef = build_extensive_form(list(TOY_CAP), _toy_creator, first_stage=_toy_first_stage)
    assert ef._sp_probability == {"low": 0.5, "high": 0.5}
    with pytest.raises(ValueError, match="sum to 0.9"):
        build_extensive_form(
            list(TOY_CAP), _toy_creator, {"probability": {"low": 0.5, "high": 0.4}}, first_stage=_toy_first_stage
        )


@pytest.mark.parametrize("seed,scenarios", [(1, 5), (4, 3)])
def test_engine_route_equals_the_scenario_model_route(seed, scenarios):
    """The fast route (aggregated solves, the evaluator for EEV) gives the generic
    scenario-model route's six values and per-scenario WS and EEV."""
    data = optplan.generate_instance(depots=3, weeks=8, scenarios=scenarios, seed=seed).model_data()
    fast, slow = optplan_values(data), optplan_values(data, route="scenario_models")
    for key in ("rp", "ev", "eev", "ws", "evpi", "vss"):
        assert getattr(fast, key) == pytest.approx(getattr(slow, key), rel=OBJ_RTOL, abs=1e-6), key
    for s in data.scenarios:
        assert fast.ws_by_scenario[s] == pytest.approx(slow.ws_by_scenario[s], rel=OBJ_RTOL)
        assert fast.eev_by_scenario[s] == pytest.approx(slow.eev_by_scenario[s], rel=OBJ_RTOL)
