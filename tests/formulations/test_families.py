"""One list of constraint families (issue #26): formulations.two_stage.CONSTRAINT_FAMILIES.
The Pyomo build declares its constraints in that order, the array build orders its row
blocks by it, and the infeasibility diagnosis tries every family of it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyomo.environ as pyo
import pytest

import optplan
from formulations import two_stage
from formulations.two_stage.bonus import with_signon_bonuses
from formulations.two_stage.families import CONSTRAINT_FAMILIES, DEFINITIONAL_FAMILIES
from formulations.two_stage.matrix import aggregated_standard_form
from formulations.two_stage.service import TARGET_FAMILIES
from optplan.solvers.highs import diagnosis_order


@pytest.fixture(scope="module")
def demo():
    from conftest import REPO

    return optplan.load_instance(REPO / "instances" / "demo").model_data()


def _variants(data):
    D = len(data.depots)
    targets = replace(data, service_target=np.full(D, 0.9), utilisation_floor=np.full(D, 0.5),
                      earnings_floor=np.full(D, 1.0), network_service_target=0.9)
    cvar = replace(data, cvar_weight=0.5, cvar_alpha=0.9)
    bad_cvar = replace(data, scenario_service_level=np.full(D, 0.95), scenario_service_share=0.8)
    bonus = with_signon_bonuses(targets, [(1, 50.0, 0.3), (1, 90.0, 0.5)])  # the job board's pool: applicant_pool
    return [
        ("aggregated", bonus, {}),
        ("extensive", data, {}),
        ("aggregated", data, {}),
        ("aggregated", targets, {}),
        ("aggregated", cvar, {"cvar_vertices": [np.full(len(data.scenarios), 1.0 / len(data.scenarios))]}),
        ("extensive", cvar, {}),
        ("extensive", bad_cvar, {}),
        ("extensive", replace(bad_cvar, scenario_service_form="chance"), {}),
    ]


def test_the_pyomo_build_declares_the_families_in_the_lists_order(demo):
    seen = set()
    for recourse, data, kwargs in _variants(demo):
        model = two_stage.build_model(data, recourse=recourse, **kwargs)
        names = [c.local_name for c in model.component_objects(pyo.Constraint, descend_into=True)]
        assert set(names) <= set(CONSTRAINT_FAMILIES), (recourse, sorted(set(names) - set(CONSTRAINT_FAMILIES)))
        assert names == [f for f in CONSTRAINT_FAMILIES if f in names], recourse
        seen |= set(names)
    assert seen == set(CONSTRAINT_FAMILIES)  # every family of the list is stated by some model


def test_the_array_build_orders_its_rows_by_the_list(demo):
    for recourse, data, kwargs in _variants(demo):
        if recourse != "aggregated":
            continue
        rows = list(aggregated_standard_form(data, **kwargs).rows)
        model = two_stage.build_model(data, recourse="aggregated", **kwargs)
        pyomo_rows = [c.local_name for c in model.component_objects(pyo.Constraint, descend_into=True)]
        assert rows == [f for f in CONSTRAINT_FAMILIES if f in rows] == pyomo_rows


def test_the_diagnosis_tries_every_family_definitional_last():
    order = diagnosis_order()
    assert sorted(order) == sorted(CONSTRAINT_FAMILIES) and "recourse_link" in order
    k = len(CONSTRAINT_FAMILIES) - len(DEFINITIONAL_FAMILIES)
    assert set(order[k:]) == DEFINITIONAL_FAMILIES
    assert set(order[:len(TARGET_FAMILIES) + 1]) == {*TARGET_FAMILIES, "service_chance_share"}
    assert set(TARGET_FAMILIES) | DEFINITIONAL_FAMILIES <= set(CONSTRAINT_FAMILIES)
