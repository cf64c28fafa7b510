"""The planner's committed decisions (decisions.csv, issue #29 part 5): every engine that can
state them plans within them, the DP refuses them, their cost is the difference of two solves,
and a commitment no plan can keep is refused with a line naming it."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import optplan
from optplan.errors import InstanceError, OptionError
from optplan.io.instance import load_instance
from optplan.planning.replan import initial_state, remaining_instance

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "instances" / "demo"
#: Objectives of two solves of the same LP agree to this share (HiGHS's optimality tolerance is 1e-7).
COST_RTOL = 1e-6
#: A committed value holds in the plan to this (applicants or currency).
HOLD_ATOL = 1e-6

HEADER = "depot,channel,week,lever,rule,value,currency,note\n"
#: A fixed campaign, a channel paused everywhere, a promotion's minimum spend.
ROWS = ("D001,job_board,1,applicants,fixed,10,,campaign committed\n"
        "*,referral,2,applicants,max,1,,referral freeze\n"
        "D002,,1,incentive_spend,min,200,,promotion announced\n")


def demo_with(tmp_path: Path, rows: str = ROWS, name: str = "inst") -> Path:
    folder = tmp_path / name
    shutil.copytree(DEMO, folder)
    (folder / "decisions.csv").write_text(HEADER + rows)
    return folder


def without_decisions(inst):
    return dataclasses.replace(inst, tables={**inst.tables, "decisions": inst.tables["decisions"].iloc[0:0]})


def assert_decisions_hold(plan) -> None:
    x = plan.decisions.applicants
    d = plan.data
    assert x[d.depots.index("D001"), d.channels.index("job_board"), 0] == pytest.approx(10.0, abs=HOLD_ATOL)
    assert (x[:, d.channels.index("referral"), 1] <= 1.0 + HOLD_ATOL).all()
    assert plan.decisions.incentive_spend[d.depots.index("D002"), 0].sum() >= 200.0 - HOLD_ATOL
    assert not plan.evaluation.violations


@pytest.mark.parametrize("engine", ["highs", "glop", "decompose", "auto"])
def test_every_lp_engine_plans_within_the_decisions(tmp_path, engine):
    inst = load_instance(demo_with(tmp_path))
    free = optplan.solve(without_decisions(inst), engine="highs")
    # the decisions change the plan: without them it recruits more referrals in week 2 and spends less at D002
    assert free.decisions.applicants[:, free.data.channels.index("referral"), 1].max() > 1.0 + 1e-3
    plan = optplan.solve(inst, engine=engine, backend="serial", override_costs="none")
    assert plan.status.complete
    assert_decisions_hold(plan)


@pytest.mark.slow  # CI's second step: keeps the README's test command within its time
def test_whole_applicants_keep_the_decisions(tmp_path):
    plan = optplan.solve(load_instance(demo_with(tmp_path)), engine="highs", integer=True, override_costs="none")
    assert_decisions_hold(plan)
    np.testing.assert_array_equal(plan.decisions.applicants, np.round(plan.decisions.applicants))


def test_the_dp_refuses_decisions_and_names_the_engines_that_state_them(tmp_path):
    with pytest.raises(OptionError) as err:
        optplan.solve(load_instance(demo_with(tmp_path)), engine="dp")
    assert "committed decisions (decisions.csv)" in str(err.value) and "highs" in str(err.value)


def test_the_decisions_cost_is_the_difference_of_two_solves(tmp_path):
    inst = load_instance(demo_with(tmp_path))
    plan = optplan.solve(inst, engine="highs", override_costs="each")
    free = optplan.solve(without_decisions(inst), engine="highs")
    assert plan.override_cost.total == pytest.approx(plan.status.objective - free.status.objective, rel=COST_RTOL)
    assert plan.override_cost.total > 1.0  # they bind: the plan pays for them
    table = plan.overrides
    assert list(table["line"]) == [2, 3, 4] and table["binding"].all()
    for pos, line in enumerate(table["line"]):
        dropped = inst.tables["decisions"].drop(inst.tables["decisions"].index[pos])
        other = optplan.solve(dataclasses.replace(inst, tables={**inst.tables, "decisions": dropped}), engine="highs")
        want = plan.status.objective - other.status.objective
        assert table.loc[table["line"] == line, "cost"].item() == pytest.approx(want, rel=COST_RTOL, abs=1e-6)
    # the plan's own numbers: the fixed one as committed, the * row summed over the depots
    assert table.loc[0, "planned"] == pytest.approx(10.0, abs=HOLD_ATOL)
    assert table.loc[1, "planned"] == pytest.approx(
        plan.decisions.applicants[:, plan.data.channels.index("referral"), 1].sum(), abs=HOLD_ATOL)


def test_the_plan_marks_what_the_planner_set(tmp_path):
    plan = optplan.solve(load_instance(demo_with(tmp_path)), engine="highs")
    a = plan.applicants
    row = a[(a["depot"] == "D001") & (a["channel"] == "job_board") & (a["week"] == 1)]
    assert row["planner"].item() == "fixed at 10"
    assert set(a.loc[(a["channel"] == "referral") & (a["week"] == 2), "planner"]) == {"at most 1"}
    assert (a.loc[a["week"] > 2, "planner"] == "").all()
    inc = plan.incentives
    assert set(inc.loc[(inc["depot"] == "D002") & (inc["week"] == 1), "planner"]) == {"at least 200"}
    files = plan.render()
    assert "decisions.csv" in files and "campaign committed" in files["decisions.csv"]
    summary = plan.summary()["planner_decisions"]
    assert summary["rows"] == 3 and summary["binding"] == 3 and summary["cost"] > 0
    assert "planner's decisions (decisions.csv): 3 rows, 3 binding" in plan.text_summary()


def test_a_plan_without_decisions_has_no_planner_column():
    plan = optplan.solve(load_instance(DEMO), engine="highs")
    assert "planner" not in plan.applicants.columns and plan.overrides is None
    assert "decisions.csv" not in plan.render() and "planner_decisions" not in plan.summary()


def test_a_local_currency_value_is_converted_at_the_depots_rate(tmp_path):
    world = ROOT / "instances" / "world"
    inst0 = load_instance(world)
    dep = inst0.tables["depots"]
    co = inst0.tables["countries"].set_index("country")
    foreign = dep[dep["country"].map(co["currency"]) != inst0.currency].iloc[0]
    local, fx = co.at[foreign["country"], "currency"], float(co.at[foreign["country"], "fx_rate"])
    folder = tmp_path / "world"
    shutil.copytree(world, folder)
    (folder / "decisions.csv").write_text(HEADER + f"{foreign['depot']},,1,incentive_spend,fixed,100,{local},\n")
    inst = load_instance(folder)
    d = inst.model_data()
    i = d.depots.index(foreign["depot"])
    assert d.incentive_min[i, 0] == pytest.approx(100 * fx) and d.incentive_max[i, 0] == pytest.approx(100 * fx)
    plan = optplan.solve(inst, engine="highs", override_costs="none")
    assert plan.decisions.incentive_spend[i, 0].sum() == pytest.approx(100 * fx, abs=HOLD_ATOL)


def test_a_re_plan_keeps_the_decisions_of_the_weeks_ahead(tmp_path):
    rows = "D001,job_board,3,applicants,fixed,7,,\nD001,job_board,1,applicants,fixed,2,,\n"
    inst = load_instance(demo_with(tmp_path, rows))
    state = initial_state(inst)
    state.week = 2
    rest = remaining_instance(inst, state)
    dec = rest.tables["decisions"]
    assert dec[["depot", "channel", "week", "value"]].values.tolist() == [["D001", "job_board", 2, 7.0]]
    plan = optplan.solve(rest, engine="highs", override_costs="none")
    d = plan.data
    assert plan.decisions.applicants[d.depots.index("D001"), d.channels.index("job_board"), 1] == pytest.approx(7.0)


def test_the_simulation_holds_every_policy_to_the_decisions(tmp_path):
    from optplan.evaluation.policy import simulate

    rows = "*,*,1,applicants,max,0,,hiring freeze in week 1\n"
    data = load_instance(demo_with(tmp_path, rows)).model_data()
    free = load_instance(DEMO).model_data()
    static = optplan.solve(load_instance(DEMO), engine="highs").decisions  # recruits in week 1: the freeze must cut it
    assert static.applicants[:, :, 0].sum() > 1.0
    kept = simulate(data, static, n_paths=20, seed=1, policies=("static", "basestock"), stochastic_drivers=False)
    loose = simulate(free, static, n_paths=20, seed=1, policies=("static", "basestock"), stochastic_drivers=False)
    spent_kept = kept.groupby("policy")["spend"].mean()
    spent_loose = loose.groupby("policy")["spend"].mean()
    week1 = float((static.applicants[:, :, 0] * data.cost_per_applicant[None, :]).sum())
    assert spent_loose["static"] - spent_kept["static"] == pytest.approx(week1, rel=1e-9)


# ------------------------------------------------------------------ refusals


@pytest.mark.parametrize(("rows", "line", "field", "words"), [
    ("D001,job_board,1,applicants,fixed,30,,\n", 2, "value", "applicant_cap at depot D001, 25 applicants"),
    ("D001,referral,1,applicants,min,3,,\nD001,referral,1,applicants,max,2,,\n", 2, "value", "line 3 cap it at 2"),
    ("D001,,1,incentive_spend,min,1e9,,\n", 2, "value", "incentive segments' total max_spend"),
    ("*,job_board,1,applicants,fixed,20,,\n", 2, "value", "budgets.weekly (week 1), 1,756.00 USD"),
    ("".join(f"D002,job_board,{w},applicants,min,25,,\n" for w in range(1, 13)), 2, "value",
     "budgets.total, 7,025.00 USD (total budget) 7,500.00 USD committed by lines 2, 3, 4, 5, 6, 7, ..."),
    ("D001,job_board,1,applicants,hold,3,,\n", 2, "rule", "one of fixed, min, max"),
    ("D001,job_board,1,recruits,min,3,,\n", 2, "lever", "one of applicants, incentive_spend"),
    ("D001,,1,applicants,min,3,,\n", 2, "channel", "a channel id (or *) for applicants"),
    ("D001,tiktok,1,applicants,min,3,,\n", 2, "channel", "unknown channel 'tiktok'"),
    ("D999,referral,1,applicants,min,3,,\n", 2, "depot", "unknown depot 'D999'"),
    ("D001,referral,1,incentive_spend,min,3,,\n", 2, "channel", "an empty cell for incentive_spend"),
    ("D001,referral,1,applicants,min,3,EUR,\n", 2, "currency", "applicants are counted, not paid"),
    ("D001,,1,incentive_spend,min,3,EUR,\n", 2, "currency", "USD (horizon.currency)"),
    ("D001,referral,13,applicants,min,3,,\n", 2, "week", "a week in 1..12"),
    ("D001,referral,1,applicants,min,-3,,\n", 2, "value", "-3"),
])
def test_a_commitment_no_plan_can_keep_is_refused_with_its_line(tmp_path, rows, line, field, words):
    folder = demo_with(tmp_path, rows)
    with pytest.raises(InstanceError) as err:
        load_instance(folder)
    hits = [p for p in err.value.problems if p.file == "decisions.csv" and p.line == line and p.field == field]
    assert hits, [str(p) for p in err.value.problems]
    assert any(words in f"{p.expected} {p.found}" for p in hits), [str(p) for p in hits]


def test_onboarding_cap_broken_by_committed_recruits_is_refused(tmp_path):
    inst = load_instance(DEMO)
    cap = float(inst.tables["depots"].set_index("depot").at["D001", "onboarding_cap"])
    k = inst.tables["yield_kernel"]
    peak = k[k["channel"] == "job_board"]["probability"].max()
    lag = int(k.loc[k[k["channel"] == "job_board"]["probability"].idxmax(), "lag"])
    n = int(np.ceil(1.5 * cap / peak))  # their drivers in the peak week alone: 1.5 x the cap
    folder = demo_with(tmp_path, "")
    (folder / "instance.yaml").write_text((folder / "instance.yaml").read_text().replace(
        "total: 7025.0", "total: 700000.0").replace("weekly: 1756.0", "weekly: 100000.0"))
    (folder / "channels.csv").write_text((folder / "channels.csv").read_text().replace(
        "job_board,25.0,25.0", "job_board,25.0,1000.0"))
    (folder / "decisions.csv").write_text(HEADER + f"D001,job_board,1,applicants,min,{n},,\n")
    with pytest.raises(InstanceError) as err:
        load_instance(folder)
    text = "\n".join(map(str, err.value.problems))
    assert f"onboarding_cap, {cap:g} drivers in week {1 + lag}" in text, text


def test_the_cli_refuses_a_broken_commitment_with_exit_2_and_no_traceback(tmp_path):
    folder = demo_with(tmp_path, "D001,job_board,1,applicants,fixed,30,,\n")
    out = subprocess.run([sys.executable, "-m", "optplan", "solve", str(folder), "--out", str(tmp_path / "plan")],
                         capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    assert "decisions.csv:2" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "plan").exists()


def test_the_cli_writes_the_decisions_beside_the_plan(tmp_path):
    folder = demo_with(tmp_path)
    out = subprocess.run([sys.executable, "-m", "optplan", "solve", str(folder), "--out", str(tmp_path / "plan"),
                          "--engine", "highs", "--quiet"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "planner's decisions (decisions.csv): 3 rows, 3 binding; together they cost" in out.stdout
    table = pd.read_csv(tmp_path / "plan" / "decisions.csv")
    assert list(table["line"]) == [2, 3, 4] and table["binding"].all()
