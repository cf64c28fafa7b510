"""End of horizon (issue #13 part 2): a terminal value credits the drivers still active at the
end of week T, so the plan stops letting the pool run down because later weeks are not
modelled. Checked by hand, between the Pyomo rows, the array build and the evaluator, by an
LP theorem (monotone in the credit), and by the refusals (too large a value; the DP)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import OBJ_RTOL, X_ATOL, build, tiny_spec
from test_kernels_equal_rows import random_case

import optplan
from formulations import two_stage
from formulations.two_stage.matrix import aggregated_standard_form
from optplan.errors import InstanceError, OptionError
from optplan.solvers.standard_form import standard_form


def tiny(value):
    spec = tiny_spec()
    if value is not None:
        spec["manifest"]["terminal"] = {"value_per_driver": value}
    return build(spec)


@pytest.mark.parametrize("formulation", ["aggregated", "extensive"])
@pytest.mark.parametrize("value,expected", [(None, 338.0), (10.0, 188.0), (20.0, 38.0), ("replacement", 38.0)])
def test_tiny_by_hand(formulation, value, expected):
    """conftest.tiny_spec: week 1 has 9 drivers (18 blocks against 20: 2 unserved x 100 USD);
    week 2 needs 30 blocks: 8.1 drivers left plus 0.5 x1 recruited, 2 blocks each, so x1 = 13.8
    applicants (138 USD) cover it exactly: 338 USD. A terminal value v credits the 15 drivers
    at the end: 338 - 15 v. More applicants would cost 10 USD + 5 USD idle per applicant and
    earn 0.5 v, a loss for v <= 20 USD = the replacement cost 10 / 0.5 ('replacement'), so
    x1 stays 13.8: 188 USD at v = 10, 38 USD at v = 20."""
    inst = tiny(value)
    plan = optplan.solve(inst, engine="highs", formulation=formulation)
    assert plan.status.objective == pytest.approx(expected, rel=OBJ_RTOL)
    assert plan.decisions.applicants.ravel() == pytest.approx([13.8, 0.0], abs=X_ATOL)
    assert optplan.evaluate(plan, inst).expected_cost == pytest.approx(expected, rel=OBJ_RTOL)
    credit = plan.cost.get("terminal_value", 0.0)
    assert credit == pytest.approx(-(338.0 - expected), abs=1e-6)


def test_a_value_above_the_cost_of_recruiting_a_driver_is_refused():
    with pytest.raises(InstanceError) as err:
        tiny(20.5)
    (problem,) = err.value.problems
    assert "terminal.value_per_driver" in str(problem) and "20.0000 USD" in str(problem) and "20.5" in str(problem)
    with pytest.raises(InstanceError):
        tiny(-1.0)


@pytest.mark.parametrize("seed", range(4))
def test_array_build_is_the_pyomo_lp_with_a_terminal_value(seed):
    data, _ = random_case(seed)
    data = dataclasses.replace(data, terminal_value=np.linspace(1.0, 3.0, len(data.depots)))
    pyomo = standard_form(two_stage.build_model(data, recourse="aggregated"))
    arrays = aggregated_standard_form(data)
    np.testing.assert_allclose(arrays.c, pyomo.c, rtol=1e-12)
    assert arrays.offset == pytest.approx(pyomo.offset, rel=1e-12)


def test_drivers_at_the_end_grow_with_the_credit():
    """LP theorem: for optima x1, x2 of costs c1, c2, (c1 - c2)'(x1 - x2) <= 0. Raising the
    credit on every a[d,T] by delta gives delta * (sum a2[T] - sum a1[T]) >= 0: the drivers
    left at the end never fall as the terminal value rises (0, half, all of the replacement
    cost) on a generated 52-week instance; and the plan recruits more in its last weeks."""
    from optplan.io.generate import generate_instance

    inst = generate_instance(depots=4, weeks=30, scenarios=5, seed=2)
    from optplan.io.instance import replacement_cost

    full = replacement_cost(inst.model_data().yield_kernel, inst.model_data().cost_per_applicant)
    ends, late = [], []
    for v in (None, 0.5 * full, full):
        plan = optplan.solve(inst.with_changes({"terminal.value_per_driver": v}) if v else inst, engine="highs")
        ends.append(plan.evaluation.active_drivers[:, -1].sum())
        late.append(plan.decisions.applicants[:, :, -8:].sum())
    assert ends[0] <= ends[1] + 1e-6 <= ends[2] + 2e-6
    assert ends[2] > ends[0] + 1e-3  # the credit does move the plan
    assert late[2] > late[0]


def test_engines_that_cannot_state_it_are_refused_or_skipped():
    inst = tiny(20.0)
    with pytest.raises(OptionError, match="terminal value"):
        optplan.solve(inst, engine="dp")
    assert optplan.solve(inst, engine="auto").engine.startswith("highs")


def test_replan_keeps_the_terminal_value():
    from optplan.planning.replan import initial_state, replan

    inst = tiny(10.0)
    r = replan(inst, initial_state(inst))
    assert r.remaining.manifest.terminal.value_per_driver == 10.0
    assert r.plan.status.objective == pytest.approx(188.0, rel=OBJ_RTOL)


def test_instance_files_round_trip(tmp_path):
    inst = tiny("replacement")
    back = optplan.load_instance(inst.write(tmp_path / "t"))
    assert back.manifest.terminal.value_per_driver == "replacement"
    assert "terminal" not in (tiny(None).write(tmp_path / "u") / "instance.yaml").read_text()
