"""The aggregated recourse (formulations/two_stage/aggregated.py) is exact.

Kernel: the segment form of phi_dt equals the closed-form expected recourse at any
capacity. Model: the aggregated program and the extensive form have the same optimum
(1e-7) and the same budget shadow prices (1e-6) on the demo, walmart30 and generated
instances, including surge dearer than going unserved, no idle penalty, one scenario and
integer recruiting; the evaluator equals the aggregated objective (1e-6)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from conftest import REPO
from test_kernels_equal_rows import random_case

import optplan
from formulations.two_stage.aggregated import recourse_segments
from formulations.two_stage.recourse import expected_recourse
from optplan.evaluation.evaluator import evaluate_decisions
from optplan.planning.plan import Plan
from optplan.solvers import SolveOptions, solve_data

OBJ_RTOL = 1e-7
DUAL_ATOL = 1e-6
EVAL_RTOL = 1e-6


@pytest.mark.parametrize("seed", range(24))
def test_segment_form_equals_the_closed_form(seed):
    data, _ = random_case(seed)
    seg = recourse_segments(data)
    assert (np.diff(np.where(seg.used, seg.slope, np.nan), axis=2)[~np.isnan(np.diff(
        np.where(seg.used, seg.slope, np.nan), axis=2))] >= -1e-9).all()  # convex: slopes do not fall
    rng = np.random.default_rng(seed)
    top = data.demand.max(axis=2) * 1.6 + 1.0
    for _ in range(5):
        q = rng.uniform(0, 1, top.shape) * top
        exact = np.array([[expected_recourse(data, q[d, t], data.demand[d, t], data.probability)
                           for t in range(data.n_weeks)] for d in range(len(data.depots))])
        np.testing.assert_allclose(seg.value(q), exact, rtol=1e-9, atol=1e-7)


@pytest.mark.parametrize("seed", range(24))
def test_curve_equals_the_closed_form_and_its_slopes_the_differences(seed):
    """RecourseCurve (phi_dt as breakpoints, the DP's form) is the closed form everywhere,
    negative capacities included, and slopes_at gives its one-sided derivatives (finite
    differences of the closed form, at random points and exactly at the breakpoints)."""
    data, _ = random_case(seed)
    seg = recourse_segments(data)
    rng = np.random.default_rng(seed)
    T, h = data.n_weeks, 1e-6
    weeks = np.arange(T)
    for d in range(len(data.depots)):
        curve = seg.curve(d)
        top = data.demand[d].max() * 1.6 + 1.0
        q = rng.uniform(-0.1, 1, (20, T)) * top
        exact = lambda v, t, d=d: expected_recourse(data, v, data.demand[d, t], data.probability)  # noqa: E731
        closed = np.stack([exact(q[:, t], t) for t in range(T)], axis=1)
        np.testing.assert_allclose(curve(q, weeks[None, :]), closed, rtol=1e-9, atol=1e-7)
        left, right = curve.slopes_at(q, weeks[None, :])
        for t in range(T):
            pts = curve.kinks(t)
            qq = np.concatenate([q[:, t], pts])
            lft, rgt = curve.slopes_at(qq, t)
            np.testing.assert_allclose(lft, (exact(qq, t) - exact(qq - h, t)) / h, atol=1e-3)
            np.testing.assert_allclose(rgt, (exact(qq + h, t) - exact(qq, t)) / h, atol=1e-3)
        assert (right >= left - 1e-12).all()  # convex


@pytest.mark.parametrize("seed", range(12))
def test_unserved_and_idle_are_linear_on_the_segments(seed):
    """Filling the segments in order, the per-segment unserved and idle slopes give the
    closed form's expected unserved and idle blocks (the target rows rest on this)."""
    from formulations.two_stage.recourse import optimal_recourse

    data, _ = random_case(seed)
    seg = recourse_segments(data)
    rng = np.random.default_rng(seed)
    q = rng.uniform(0, 1.6, data.demand.shape[:2]) * data.demand.max(axis=2) + 0.1
    start = np.concatenate([np.zeros(q.shape + (1,)), np.cumsum(seg.length, axis=-1)[..., :-1]], axis=-1)
    fill = np.where(seg.used, np.clip(q[..., None] - start, 0.0, seg.length), 0.0)
    unserved = np.einsum("dts,s->dt", data.demand, data.probability) + (seg.unserved_slope * fill).sum(axis=-1)
    idle = (seg.idle_slope * fill).sum(axis=-1)
    _, v, w = optimal_recourse(data, q, data.demand)
    np.testing.assert_allclose(unserved, v @ data.probability, atol=1e-9)
    np.testing.assert_allclose(idle, w @ data.probability, atol=1e-9)
    assert (np.diff(np.where(seg.used, seg.unserved_slope, np.nan), axis=-1)[np.isfinite(
        np.diff(np.where(seg.used, seg.unserved_slope, np.nan), axis=-1))] >= -1e-12).all()


@pytest.mark.parametrize("seed", range(6))
def test_the_comparisons_by_chunks_of_depots_give_the_same_segments(seed, monkeypatch):
    """recourse_segments compares segment midpoints with scenario demands a chunk of depots at a
    time (at 1000 depots x 104 weeks x 100 scenarios the whole (D, T, K, S) block took over 24 GB
    and the solve was killed): one depot per chunk gives the same arrays, bit for bit."""
    import formulations.two_stage.aggregated as agg

    data, _ = random_case(seed)
    data = replace(data, surge_cap_share=0.2) if seed % 2 else data
    whole = recourse_segments(data)
    monkeypatch.setattr(agg, "COMPARE_CHUNK", 1)
    chunked = recourse_segments(data)
    for name in ("slope", "length", "used", "unserved_slope", "idle_slope", "value_at_zero"):
        np.testing.assert_array_equal(getattr(chunked, name), getattr(whole, name), err_msg=name)


@pytest.mark.slow  # CI's second step: keeps the README's test command within its time
def test_dp_week_cost_is_the_least_incentive_plus_recourse():
    """The DP's week cost (incentive segments bought best rate first up to the capacity where
    phi_t's slope stops paying for them) equals a brute-force minimum over 20,001 spends, and
    is never above it (it is exact; the brute force is on a grid)."""
    from optplan.solvers.dp.depot import DepotModel

    data = CASES["demo"]
    for d in range(2):
        dep = DepotModel(data, d)
        spends = np.linspace(0, dep.cum_z[-1], 20001)
        blocks = dep.curve.blocks(spends)
        for t in range(0, data.n_weeks, 3):
            a = np.linspace(0.5 * dep.lo[t], 1.5 * dep.hi[t], 40)
            for price in (1.0, 3.0, 40.0):
                cost, z = dep.week_cost(t, a, price)
                brute = (price * spends[None, :] + expected_recourse(
                    data, dep.b[t] * a[:, None] + blocks[None, :], data.demand[d, t], data.probability)).min(axis=1)
                assert (cost <= brute + 1e-6).all()
                np.testing.assert_allclose(cost, brute, atol=0.2)  # the grid's spacing costs at most this
                np.testing.assert_allclose(cost, price * z + expected_recourse(
                    data, dep.b[t] * a + dep.curve.blocks(z), data.demand[d, t], data.probability), rtol=1e-12)


def variants():
    demo = optplan.load_instance(REPO / "instances" / "demo").model_data()
    walmart = optplan.load_instance(REPO / "instances" / "walmart30").model_data()
    cases = {"demo": demo, "walmart30": walmart}
    for seed in range(6):
        cases[f"generated {seed}"] = optplan.generate_instance(
            depots=3, weeks=10, scenarios=5, seed=seed, budget_tightness=0.7).model_data()
    base = cases["generated 0"]
    cases["surge dearer than unserved"] = replace(base, surge_cost=base.unserved_cost * 1.2)
    cases["no idle penalty"] = replace(base, idle_cost=0.0)
    cases["one scenario"] = base.with_scenarios([2])
    cases["no surge"] = replace(base, surge_cap_share=0.0)
    return cases


CASES = variants()


@pytest.mark.parametrize("name", list(CASES))
def test_aggregated_equals_the_extensive_form(name):
    data = CASES[name]
    ef = solve_data(data, SolveOptions(formulation="extensive"), "highs")
    ag = solve_data(data, SolveOptions(formulation="aggregated"), "highs")
    assert ef.status.optimal and ag.status.optimal
    assert ag.status.objective == pytest.approx(ef.status.objective, rel=OBJ_RTOL)
    for family in ("budget_total", "budget_week", "budget_region"):
        np.testing.assert_allclose(ag.duals.get(family, []), ef.duals.get(family, []), atol=DUAL_ATOL, rtol=DUAL_ATOL,
                                   err_msg=family)
    assert evaluate_decisions(data, ag.decisions).expected_cost == pytest.approx(ag.status.objective, rel=EVAL_RTOL)
    # the plan recovers per-scenario surge, unserved and idle with the closed form: same cost as the EF's plan
    a, e = Plan.from_result(ag, name, "2027-01-04"), Plan.from_result(ef, name, "2027-01-04")
    assert a.cost["total"] == pytest.approx(e.cost["total"], rel=OBJ_RTOL)


def test_aggregated_with_integer_recruiting_equals_the_extensive_form():
    data = replace(CASES["generated 1"], integer_applicants=True)
    opts = dict(integer=True, mip_rel_gap=0.0)
    ef = solve_data(data, SolveOptions(formulation="extensive", **opts), "highs")
    ag = solve_data(data, SolveOptions(formulation="aggregated", **opts), "highs")
    assert ag.status.objective == pytest.approx(ef.status.objective, rel=1e-6)
    assert np.allclose(ag.decisions.applicants, np.round(ag.decisions.applicants), atol=1e-6)


def test_glop_solves_the_aggregated_program_too():
    data = CASES["generated 2"]
    ef = solve_data(data, SolveOptions(formulation="extensive"), "highs")
    ag = solve_data(data, SolveOptions(), "glop")
    assert ag.status.objective == pytest.approx(ef.status.objective, rel=OBJ_RTOL)


def test_the_formulation_option_is_checked():
    with pytest.raises(optplan.OptionError, match="formulation"):
        SolveOptions(formulation="magic")
    with pytest.raises(optplan.OptionError, match="build"):
        SolveOptions(formulation="extensive", build="arrays")
