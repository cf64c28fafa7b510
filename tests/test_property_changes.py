"""What-if changes (``--set``, the workspace's form, ``Instance.with_changes``) under any value
(issue #33, part 5): hypothesis draws a path an instance has and a value a careless user might
type; the change is refused cleanly (one line per problem naming the change or the file, no
library words) or gives an instance that plans soundly (or is proven infeasible)."""

from __future__ import annotations

import math
import os

import mutations as mut
import pytest
from conftest import REPO
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import optplan
from optplan.errors import InfeasibleError, InputError
from optplan.io.whatif import parse_assignment

#: 60 on a newcomer's run; 200 in CI (issue #33: 200 mutations per kind in CI); MUTATION_EXAMPLES overrides both.
EXAMPLES = int(os.environ.get("MUTATION_EXAMPLES", "200" if os.environ.get("CI") else "60"))
PATHS = ["budgets.total", "budgets.weekly", "budgets.regions.R01", "targets.service_level",
         "targets.driver_utilisation", "targets.blocks_per_driver", "targets.scenario_service_level",
         "penalties.unserved_cost_per_block", "penalties.idle_cost_per_block", "recourse.surge_cap_share",
         "recourse.surge_cost_per_block", "channels.cost_per_applicant", "channels[referral].applicant_cap",
         "demand.blocks", "demand[D001].blocks", "demand[D001,3].blocks", "depots[D002].retention",
         "depots.active_drivers", "depots[D003].onboarding_cap", "incentives.max_spend", "horizon.start_date",
         "horizon.currency", "guards.jump_factor", "yield.probability", "scenarios[S01].probability",
         "terminal.value_per_driver", "nope.field", "channels[nope].cost_per_applicant"]
VALUES = ["0", "-1", "1e308", "-1e308", "nan", "inf", "-inf", "null", "abc", "1.5", "0.999", "2", "true", "[1, 2]",
          "*0", "*1.1", "*-1", "*1e308", "*0.5", "*abc", "2027-02-29", "usd", "EUR", "''", "1e-300", "99999999999999"]


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(changes=st.lists(st.tuples(st.sampled_from(PATHS), st.sampled_from(VALUES)), min_size=1, max_size=3))
def test_any_change_is_refused_cleanly_or_planned_soundly(changes):
    demo = _demo()
    try:
        parsed = dict(parse_assignment(f"{path}={value}") for path, value in changes)
        changed = demo.with_changes(parsed)
    except InputError as exc:
        mut._assert_clean_refusal(exc, {})
        return
    try:
        plan = optplan.solve(changed)
    except InfeasibleError:
        return
    except InputError as exc:  # validate (with_changes) said ok: solve may not refuse
        raise AssertionError(f"the changed instance validated, solve refused it: {exc}") from None
    assert plan.status.objective is not None and math.isfinite(plan.status.objective)
    ev = optplan.evaluate(plan, changed)
    assert math.isclose(ev.expected_cost, plan.status.objective, rel_tol=mut.EVALUATOR_RTOL, abs_tol=1e-6)


_cache = {}


def _demo():
    if "demo" not in _cache:
        _cache["demo"] = optplan.load_instance(REPO / "instances" / "demo")
    return _cache["demo"]


@pytest.mark.parametrize("path,value,words", [
    ("budgets.total", "-1", "budgets.total"),
    ("budgets.total", "2027-02-29", "'2027-02-29'"),  # was a traceback: YAML's date constructor raised
    ("channels.cost_per_applicant", "[1, 2]", "one value for the cells"),  # was a traceback from pandas
])
def test_refusals_found_by_the_property_test_by_hand(path, value, words):
    with pytest.raises(InputError) as err:
        _demo().with_changes(dict([parse_assignment(f"{path}={value}")]))
    assert words in str(err.value)


#: solve's numeric options and the values a careless user might type.
OPTIONS = ["--time-limit", "--mip-gap", "--threads", "--seed", "--grid", "--cvar-weight", "--cvar-alpha", "--workers"]
NUMBERS = ["0", "-1", "1", "0.5", "1e308", "nan", "inf", "1e-300", "3", "abc", "99999999999", "2.5"]
#: Exit statuses a command may end with: 0 a plan, 2 bad input, 3 a plan not proven optimal,
#: 4 infeasible, 5 a service error, 6 no plan in the time (never 1: an internal error).
CLEAN_EXITS = {0, 2, 3, 4, 6}


@settings(max_examples=max(6, EXAMPLES // 8) if EXAMPLES < 200 else EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(options=st.lists(st.tuples(st.sampled_from(OPTIONS), st.sampled_from(NUMBERS)), min_size=1, max_size=3,
                        unique_by=lambda o: o[0]),
       engine=st.sampled_from(["auto", "highs", "dp"]))
def test_any_numeric_option_is_refused_in_one_line_or_used(options, engine, tmp_path_factory):
    from click.testing import CliRunner

    from optplan.cli import main

    out = tmp_path_factory.mktemp("o") / "plan"
    args = ["solve", str(REPO / "instances" / "demo"), "--out", str(out), "--quiet", "--engine", engine]
    for name, value in options:
        args += [name, value]
    r = CliRunner().invoke(main, args)
    assert r.exit_code in CLEAN_EXITS, (args, r.exit_code, r.output[-500:])
    assert "internal error" not in r.output and "Traceback" not in r.output, r.output[-500:]
    if r.exit_code == 2:
        assert not out.exists() and len([x for x in r.output.splitlines() if x.strip()]) <= 5, r.output
        assert not any(w in r.output for w in mut.LIBRARY_WORDS + ("mip_rel_gap", "time_limit")), r.output
