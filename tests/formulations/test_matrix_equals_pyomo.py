"""The array build of the aggregated program (formulations/two_stage/matrix.py) is the same
LP as Pyomo's model compiled to standard form: same columns and rows in the same order,
same coefficients, bounds and objective, entry by entry; and the same optimum, primal
values and duals through HiGHS."""

from __future__ import annotations

import numpy as np
import pytest
from test_kernels_equal_rows import random_case

import optplan
from formulations import two_stage
from formulations.two_stage.matrix import aggregated_standard_form
from optplan.solvers.standard_form import standard_form

COEF_RTOL = 1e-12


@pytest.mark.parametrize("seed", range(12))
def test_array_build_is_the_pyomo_lp(seed):
    data, _ = random_case(seed)
    assert_same_lp(aggregated_standard_form(data), standard_form(two_stage.build_model(data, recourse="aggregated")))


def assert_same_lp(arrays, pyomo) -> None:
    """The same columns and rows in the same order, coefficients, bounds and objective."""
    assert arrays.columns.keys() == pyomo.columns.keys()
    for name in pyomo.columns:
        np.testing.assert_array_equal(arrays.columns[name], pyomo.columns[name], err_msg=name)
    assert arrays.rows == pyomo.rows
    a, b = arrays.A.tocsr(), pyomo.A.tocsr()
    a.eliminate_zeros()
    b.eliminate_zeros()
    assert a.shape == b.shape
    assert abs(a - b).max() <= COEF_RTOL * max(1.0, abs(b).max())
    for field in ("c", "col_lower", "col_upper", "row_lower", "row_upper"):
        np.testing.assert_allclose(getattr(arrays, field), getattr(pyomo, field), rtol=COEF_RTOL, err_msg=field)
    assert arrays.offset == pytest.approx(pyomo.offset, rel=COEF_RTOL, abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_array_build_solves_to_the_pyomo_optimum_with_the_same_duals(seed):
    inst = optplan.generate_instance(depots=3, weeks=8, scenarios=4, seed=seed, budget_tightness=0.7)
    pyomo = optplan.solve(inst, build="pyomo")
    arrays = optplan.solve(inst, build="arrays")
    assert arrays.status.objective == pytest.approx(pyomo.status.objective, rel=1e-9)
    np.testing.assert_allclose(arrays.decisions.applicants, pyomo.decisions.applicants, atol=1e-7)
    np.testing.assert_allclose(arrays.budgets["shadow_price"], pyomo.budgets["shadow_price"], rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("seed", range(6))
def test_array_build_is_the_pyomo_lp_with_targets(seed):
    """The service and utilisation target rows (service.py) too."""
    from dataclasses import replace

    data, _ = random_case(seed)
    D = len(data.depots)
    tau = np.full(D, np.nan)
    tau[0] = 0.6
    regions = sorted(set(data.regions))
    data = replace(data, service_target=tau, network_service_target=0.5, utilisation_floor=np.full(D, 0.4),
                   region_service_target={regions[-1]: 0.7, regions[0]: 0.55})
    pyomo = standard_form(two_stage.build_model(data, recourse="aggregated"))
    arrays = aggregated_standard_form(data)
    assert arrays.rows == pyomo.rows
    assert arrays.rows["service_target"].stop - arrays.rows["service_target"].start == 1
    assert arrays.rows["utilisation_floor"].stop - arrays.rows["utilisation_floor"].start == D
    a, b = arrays.A.tocsr(), pyomo.A.tocsr()
    a.eliminate_zeros()
    b.eliminate_zeros()
    assert a.shape == b.shape
    assert abs(a - b).max() <= COEF_RTOL * max(1.0, abs(b).max())
    for field in ("row_lower", "row_upper"):
        np.testing.assert_allclose(getattr(arrays, field), getattr(pyomo, field), rtol=COEF_RTOL, err_msg=field)


@pytest.mark.parametrize("seed", range(6))
def test_array_build_is_the_pyomo_lp_with_cvar_cuts(seed):
    """CVaR's risk-envelope cuts (risk.define_cvar_cuts against matrix.cvar_cut_block): theta,
    each cut's segment columns, the link rows and the cut rows, and the objective's weights."""
    from dataclasses import replace

    from formulations.two_stage.risk import cvar_vertex

    data, _ = random_case(seed)
    data = replace(data, cvar_weight=[0.4, 1.0, 0.7][seed % 3], cvar_alpha=[0.7, 0.9, 0.0][seed % 3])
    rng = np.random.default_rng(seed)
    vertices = [cvar_vertex(rng.random(len(data.scenarios)), data.probability, data.cvar_alpha) for _ in range(seed % 3)]
    assert_same_lp(aggregated_standard_form(data, cvar_vertices=vertices),
                   standard_form(two_stage.build_model(data, recourse="aggregated", cvar_vertices=vertices)))


@pytest.mark.parametrize("seed", range(6))
def test_array_build_is_the_pyomo_lp_with_planner_decisions(seed):
    """The planner's decisions (decisions.py) as column bounds, the same in both builds: random
    minimums, maximums and fixed cells of applicants and of incentive spend."""
    from dataclasses import replace

    data, _ = random_case(seed)
    rng = np.random.default_rng(seed)
    D, C, T, _ = data.shape
    x_cap = np.where(np.isfinite(data.applicant_cap), data.applicant_cap, 50.0)[:, :, None] * np.ones(T)
    low = np.where(rng.random((D, C, T)) < 0.2, rng.uniform(0, 0.5, (D, C, T)) * x_cap, 0.0)
    high = np.where(rng.random((D, C, T)) < 0.2, low + rng.uniform(0, 0.3, (D, C, T)) * x_cap, np.inf)
    most = data.incentive_width.sum(axis=1)[:, None] * np.ones(T)
    z_low = np.where(rng.random((D, T)) < 0.3, rng.uniform(0, 0.6, (D, T)) * most, 0.0)
    z_high = np.where(rng.random((D, T)) < 0.3, z_low + rng.uniform(0, 0.3, (D, T)) * most, np.inf)
    data = replace(data, applicants_min=low, applicants_max=high, incentive_min=z_low, incentive_max=z_high)
    arrays = aggregated_standard_form(data)
    assert_same_lp(arrays, standard_form(two_stage.build_model(data, recourse="aggregated")))
    assert (arrays.col_lower[arrays.columns["applicants"]] > 0).any()  # the decisions reached the columns
