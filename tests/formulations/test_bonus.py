"""Sign-on bonuses (issue #31 lever 1; formulations/two_stage/bonus.py): a channel's bonus levels
are variant channels (conversion raised, the expected bonus in the cost per applicant) pooled
under the channel's applicant cap. By hand, LP against the evaluator, the pool rows against their
kernel and against the array build, the marginal value against a finite difference, every
engine, and the checks of bonuses.csv."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from conftest import OBJ_RTOL, X_ATOL, build, tiny_spec
from test_kernels_equal_rows import ROW_ATOL, random_case, residuals
from test_matrix_equals_pyomo import assert_same_lp

import optplan
from formulations import two_stage
from formulations.data import Decisions
from formulations.two_stage.bonus import pool_excess, pool_rows, signon_cost, with_signon_bonuses
from formulations.two_stage.budgets import recruiting_spend
from formulations.two_stage.matrix import aggregated_standard_form
from optplan.errors import InstanceError, OptionError
from optplan.evaluation.evaluator import evaluate_decisions
from optplan.solvers import solve_data
from optplan.solvers.standard_form import standard_form

#: A marginal value against a central finite difference of the re-solved optimum (relative; the
#: step is FD_STEP of the bonus: small enough to stay inside one LP basis, large enough that the
#: solver's 1e-9 relative noise on the optimum stays below the tolerance).
FD_RTOL = 1e-3
FD_STEP = 1e-4
COLUMNS = ["channel", "bonus_per_driver", "conversion_uplift", "applicant_uplift"]


def with_bonuses(inst, rows, cap="keep"):
    """``inst`` with a bonus menu of (channel, bonus, uplift) rows (and every channel's applicant cap
    set to ``cap`` unless "keep"), validated as files would be."""
    tables = dict(inst.tables)
    if cap != "keep":
        ch = tables["channels"].copy()
        ch["applicant_cap"] = cap
        tables["channels"] = ch
    tables["bonuses"] = pd.DataFrame([(*r, 0.0)[:4] for r in rows], columns=COLUMNS)
    return optplan.from_tables(inst.manifest, tables)


def test_hand_worked_worth_it_and_not():
    """tiny_spec: week 2 needs 2 (8.1 + p x) = 30 blocks from x applicants of week 1 (10 USD each,
    conversion p = 0.5): x = 13.8, 138 USD, plus 200 USD unserved in week 1: 338 USD.
    A bonus of 2 USD per driver raising conversion by half (p = 0.75) costs 10 + 2 x 0.75 = 11.5 USD
    per applicant, 15.33 per driver (< 20 without): x = 9.2 with the bonus, 105.8 USD, of which
    13.8 bonuses (6.9 drivers x 2): 305.8 USD. A bonus of 5 USD raising it by a fifth (p = 0.6):
    13 USD per applicant, 21.67 per driver (> 20): not offered, 338 USD."""
    base = build(tiny_spec())
    worth = optplan.solve(with_bonuses(base, [("ads", 2.0, 0.5)]))
    assert worth.status.objective == pytest.approx(305.8, rel=OBJ_RTOL)
    assert worth.evaluation.expected_cost == pytest.approx(305.8, rel=OBJ_RTOL)
    assert worth.data.channels == ("ads", "ads+bonus2")
    np.testing.assert_allclose(worth.decisions.applicants[0], [[0.0, 0.0], [9.2, 0.0]], atol=X_ATOL)
    row = worth.bonuses.iloc[0]
    assert (row.applicants, row.expected_drivers, row.expected_bonus_paid) == pytest.approx((9.2, 6.9, 13.8))
    assert float(signon_cost(worth.data, worth.decisions.applicants).sum()) == pytest.approx(13.8)
    assert "sign-on bonus 2.00 USD/driver on ads: 9.2 applicants" in worth.text_summary()
    not_worth = optplan.solve(with_bonuses(base, [("ads", 5.0, 0.2)]))
    assert not_worth.status.objective == pytest.approx(338.0, rel=OBJ_RTOL)
    np.testing.assert_allclose(not_worth.decisions.applicants[0], [[13.8, 0.0], [0.0, 0.0]], atol=X_ATOL)
    assert "not offered" in not_worth.text_summary()
    # a menu with both levels: the cheaper per driver is taken, the other left
    both = optplan.solve(with_bonuses(base, [("ads", 5.0, 0.2), ("ads", 2.0, 0.5)]))
    assert both.status.objective == pytest.approx(305.8, rel=OBJ_RTOL)


def test_hand_worked_capped_channel_shares_its_cap():
    """The same channel capped at 10 applicants a week: without a bonus 10 applicants bring 5
    drivers, week 2 offers 2 x 13.1 = 26.2 blocks, 3.8 unserved: 100 + 380 + 200 = 680 USD. With the
    5 USD / +20 % bonus (dearer per driver) every applicant switched to it brings 0.1 more driver
    (0.2 blocks, 20 USD of unserved work) for 3 USD: all 10 get it, 6 drivers, 28.2 blocks, 1.8
    unserved: 130 + 180 + 200 = 510 USD. Without the pool row the bonus variant would bring 10
    applicants of its own (the cap broken: the program would pay less)."""
    base = build(tiny_spec())
    plain = optplan.solve(with_bonuses(base, [], cap=10.0))
    assert plain.status.objective == pytest.approx(680.0, rel=OBJ_RTOL)
    plan = optplan.solve(with_bonuses(base, [("ads", 5.0, 0.2)], cap=10.0))
    assert plan.status.objective == pytest.approx(510.0, rel=OBJ_RTOL)
    assert plan.evaluation.expected_cost == pytest.approx(510.0, rel=OBJ_RTOL)
    np.testing.assert_allclose(plan.decisions.applicants[0], [[0.0, 0.0], [10.0, 0.0]], atol=X_ATOL)
    unpooled = replace(plan.data, applicant_pool=None)  # each variant its own cap of 10
    assert solve_data(unpooled).status.objective < 510.0 - 1.0
    # the evaluator catches a plan that breaks the pool's cap
    x = np.zeros_like(plan.decisions.applicants)
    x[0, :, 0] = 10.0
    ev = evaluate_decisions(plan.data, Decisions(x, plan.decisions.incentive_spend))
    assert ev.violations["applicant_pool"] == pytest.approx(10.0)


def test_hand_worked_referral_bonus_raises_the_volume():
    """tiny_spec with the channel capped at 10 applicants a week (680 USD, above). A referral bonus
    of 4 USD per converted driver bringing half as many applicants again (cap 15): 12 USD per
    applicant, 24 per driver, against 200 USD of unserved work a driver saves (2 blocks). Week 2
    needs 13.8 applicants. Offering the bonus a share theta of the week: x0 <= 10 (1 - theta),
    x1 <= 15 theta; the cheapest mix meeting x0 + x1 = 13.8 is theta = 0.76: x0 = 2.4 at 10 USD,
    x1 = 11.4 at 12 USD, 160.8 USD (offering it to all, 13.8 x 12 = 165.6, is dearer: the hull
    mixes), plus 200 USD unserved in week 1: 360.8 USD. A referral bonus of 200 USD (110 USD per
    applicant, 220 per driver > 200) is not offered: 680 USD."""
    base = build(tiny_spec())
    plan = optplan.solve(with_bonuses(base, [("ads", 4.0, 0.0, 0.5)], cap=10.0))
    assert plan.status.objective == pytest.approx(360.8, rel=OBJ_RTOL)
    assert plan.evaluation.expected_cost == pytest.approx(360.8, rel=OBJ_RTOL)
    np.testing.assert_allclose(plan.decisions.applicants[0], [[2.4, 0.0], [11.4, 0.0]], atol=X_ATOL)
    row = plan.bonuses.iloc[0]
    assert (row.applicant_uplift, row.conversion_uplift, row.expected_bonus_paid) == pytest.approx((0.5, 0.0, 22.8))
    dear = optplan.solve(with_bonuses(base, [("ads", 200.0, 0.0, 0.5)], cap=10.0))
    assert dear.status.objective == pytest.approx(680.0, rel=OBJ_RTOL)
    # a bonus that does both: +50 % volume and +20 % conversion at 4 USD (12.4 USD per applicant)
    both = optplan.solve(with_bonuses(base, [("ads", 4.0, 0.2, 0.5)], cap=10.0))
    assert both.evaluation.expected_cost == pytest.approx(both.status.objective, rel=OBJ_RTOL)
    assert both.status.objective < 360.8


def _pooled_case(seed):
    """A random small case with a bonus menu on every channel (two levels on the first) and its
    random decisions extended to the variants."""
    data, dec = random_case(seed)
    C = len(data.channels)
    menu = [(c, 20.0 + 10 * c, 0.1 + 0.05 * c, 0.0) for c in range(C)] + [(0, 60.0, 0.25, 0.4), (0, 30.0, 0.0, 0.8)]
    conv = data.conversion()
    menu = [(c, b, min(u, 1.0 / max(conv[c], 1e-9) - 1.0), g) for c, b, u, g in menu]
    pooled = with_signon_bonuses(data, menu)
    rng = np.random.default_rng(seed)
    mask = pooled.recruit_mask()
    cap = np.where(np.isfinite(pooled.applicant_cap), pooled.applicant_cap, 50.0)[:, :, None]
    x = rng.uniform(0, 0.7, mask.shape) * cap * mask
    return pooled, Decisions(x, dec.incentive_spend)


@pytest.mark.parametrize("seed", range(8))
def test_pool_rows_equal_their_kernel(seed):
    """Each applicant_pool row's slack, evaluated by Pyomo at random decisions, is the kernel's
    pool excess; the variants' cost per applicant is the expected bonus on top."""
    data, dec = _pooled_case(seed)
    rows = pool_rows(data)
    if not rows:
        pytest.skip("no channel with a finite cap in this case")
    m = two_stage.build_model(data)
    layout_x = two_stage.Layout(data).columns(dec)[0]
    for var, value in zip(m.applicants.values(), layout_x, strict=True):
        var.set_value(float(value), skip_validation=True)
    excess = pool_excess(data, dec.applicants)
    np.testing.assert_allclose(residuals(m.applicant_pool), [excess[d, p, t] for d, p, t in rows], atol=ROW_ATOL)
    C0 = len(data.channels) - len(data.signon_bonus[data.signon_bonus > 0])
    base_cost = data.cost_per_applicant[:C0][data.applicant_pool[C0:]]
    np.testing.assert_allclose(data.cost_per_applicant[C0:] - base_cost, data.signon_bonus[C0:] * data.conversion()[C0:])
    assert signon_cost(data, dec.applicants).sum() <= recruiting_spend(data, dec.applicants).sum()


@pytest.mark.parametrize("seed", range(8))
def test_array_build_is_the_pyomo_lp_with_bonus_pools(seed):
    data, _ = _pooled_case(seed)
    sf = aggregated_standard_form(data)
    assert ("applicant_pool" in sf.rows) == bool(pool_rows(data))
    assert_same_lp(sf, standard_form(two_stage.build_model(data, recourse="aggregated")))


def test_marginal_value_is_the_finite_difference():
    """cost_per_unit = d optimum / d bonus, by re-solving with the bonus a little lower and higher
    (central difference), on the tiny case (no budget: the drivers converting under it, 6.9) and on
    a generated instance whose total and first weekly budgets bind (the drivers times 1 + the
    budgets' shadow prices: 62.25 where the drivers alone would say 16.5)."""
    base = build(tiny_spec())
    gen = optplan.generate_instance(depots=3, weeks=10, scenarios=5, seed=4, budget_tightness=0.7)
    for inst, rows in ((base, [("ads", 2.0, 0.5)]), (gen, [("job_board", 5.0, 0.5), ("referral", 8.0, 0.3, 0.4)])):
        plan = optplan.solve(with_bonuses(inst, rows))
        used = plan.bonuses[plan.bonuses["applicants"] > 1e-6]
        assert len(used), "the case must take a bonus"
        for row in used.itertuples(index=False):
            h = FD_STEP * row.signon_bonus

            def optimum(bonus, row=row, inst=inst, rows=rows):
                menu = [(c, bonus if (c, b) == (row.channel, row.signon_bonus) else b, *rest) for c, b, *rest in rows]
                return optplan.solve(with_bonuses(inst, menu)).status.objective

            fd = (optimum(row.signon_bonus + h) - optimum(row.signon_bonus - h)) / (2 * h)
            assert row.cost_per_unit == pytest.approx(fd, rel=FD_RTOL), row
    assert plan.budgets["binding"].any() and row.cost_per_unit > 2 * row.expected_drivers


def test_every_engine_takes_the_bonus_and_the_dp_refuses_a_shared_cap():
    base = build(tiny_spec())
    capped = with_bonuses(base, [("ads", 5.0, 0.2)], cap=10.0)
    for engine in ("glop", "decompose", "auto"):
        assert optplan.solve(capped, engine=engine).status.objective == pytest.approx(510.0, rel=OBJ_RTOL), engine
    with pytest.raises(OptionError, match="sign-on bonuses on a channel with an applicant cap"):
        optplan.solve(capped, engine="dp")
    uncapped = with_bonuses(base, [("ads", 2.0, 0.5)])  # no shared cap: the DP takes the variants as channels
    assert optplan.solve(uncapped, engine="dp").status.objective == pytest.approx(305.8, rel=1e-4)


def test_the_menu_round_trips_through_files_and_the_cli(tmp_path):
    from click.testing import CliRunner

    from optplan.cli import main

    inst = with_bonuses(build(tiny_spec()), [("ads", 2.0, 0.5), ("ads", 5.0, 0.2)])
    folder = inst.write(tmp_path / "inst")
    assert (folder / "bonuses.csv").exists()
    r = CliRunner().invoke(main, ["solve", str(folder), "--out", str(tmp_path / "plan"), "--quiet"])
    assert r.exit_code == 0, r.output
    table = pd.read_csv(tmp_path / "plan" / "bonuses.csv")
    assert table["signon_bonus"].tolist() == [2.0, 5.0]
    assert table["expected_drivers"].tolist() == pytest.approx([6.9, 0.0])
    applicants = pd.read_csv(tmp_path / "plan" / "applicants.csv")
    assert applicants["expected_bonus_paid"].sum() == pytest.approx(13.8)


def test_bad_menus_are_refused_one_line_each():
    base = build(tiny_spec())
    with pytest.raises(InstanceError) as err:
        with_bonuses(base, [("ads", 2.0, 1.5), ("nope", 1.0, 0.1), ("ads", -1.0, 0.1)])
    lines = str(err.value).splitlines()
    assert any("conversion_uplift" in line and "0.5 -> 1.25" in line for line in lines), lines
    assert any("unknown channel 'nope'" in line for line in lines), lines
    assert any("bonus_per_driver" in line and "found -1" in line for line in lines), lines
    with pytest.raises(InstanceError, match="duplicate|more than once"):
        with_bonuses(base, [("ads", 2.0, 0.5), ("ads", 2.0, 0.3)])
    with pytest.raises(InstanceError, match="applicant_uplift.*no cap"):
        with_bonuses(base, [("ads", 2.0, 0.0, 0.5)])  # a volume uplift on an uncapped channel
    decided = dict(with_bonuses(base, [("ads", 2.0, 0.5)]).tables)
    decided["decisions"] = pd.DataFrame([{"depot": "A", "channel": "ads", "week": 1, "lever": "applicants",
                                          "rule": "fixed", "value": 3.0, "currency": ""}])
    with pytest.raises(InstanceError, match="sign-on bonus menu"):
        optplan.from_tables(base.manifest, decided)


@pytest.fixture(scope="module")
def demo_with_bonuses():
    """The demo with a menu under which a bonus is cheaper than recruiting without it: a sign-on
    bonus on the job board (+40 % conversion for 20 USD a driver) and a referral bonus bringing
    half again as many referrals (the referral cap of 4 a week binds in the demo's plan)."""
    from conftest import REPO

    demo = optplan.load_instance(REPO / "instances" / "demo")
    return demo, with_bonuses(demo, [("job_board", 20.0, 0.4, 0.0), ("referral", 15.0, 0.0, 0.5)])


def test_on_the_demo_a_cheaper_lever_is_used_and_never_costs_more(demo_with_bonuses):
    """Issue #31's acceptance for these levers: the plan takes a bonus where it is cheaper than
    recruiting without it, and its expected cost is not above the plan without the menu (the
    menu only adds choices: the old plan is still feasible)."""
    demo, levers = demo_with_bonuses
    without, with_ = optplan.solve(demo), optplan.solve(levers)
    used = with_.bonuses[with_.bonuses["applicants"] > 1e-6]
    assert len(used) >= 1, with_.bonuses
    assert with_.status.objective <= without.status.objective * (1 + 1e-9)
    assert with_.status.objective < without.status.objective - 1.0  # strictly cheaper: the lever pays
    assert with_.evaluation.expected_cost == pytest.approx(with_.status.objective, rel=OBJ_RTOL)


def test_replanning_simulation_and_what_ifs_take_the_bonus_levels(demo_with_bonuses):
    """Issue #31 part 6: the re-plan from a state, the policy simulation and a warm what-if see the
    variants as channels (through the same kernels): the re-plan from the state the plan expects at
    week 5 keeps using a bonus; the fluid simulation of the static plan without noise costs what the
    evaluator says (scenarios sampled: within SAMPLING_RTOL); a what-if on a bonus channel's cost is
    the cold solve of the changed instance."""
    from optplan.evaluation.policy import simulate
    from optplan.planning.replan import expected_state, replan

    _, levers = demo_with_bonuses
    plan = optplan.solve(levers)
    state = expected_state(levers, plan, 5)
    again = replan(levers, state)
    assert again.plan.bonuses["applicants"].sum() > 1e-6
    assert again.plan.evaluation.violations == {}
    sims = simulate(plan.data, plan.decisions, n_paths=400, seed=3, sigma=0.0, stochastic_drivers=False,
                    policies=("static",))
    SAMPLING_RTOL = 0.03  # 400 scenario draws of ten: the mean within 3 % of the expectation
    assert sims["cost"].mean() == pytest.approx(plan.evaluation.expected_cost, rel=SAMPLING_RTOL)
    warm = optplan.WhatIf(levers)
    warm.solve()
    change = {"channels[job_board].cost_per_applicant": 30.0}
    assert warm.solve(change).status.objective == pytest.approx(
        optplan.solve(levers.with_changes(change)).status.objective, rel=1e-7)


def test_the_report_shows_the_bonus_menu_as_the_plan_has_it(demo_with_bonuses, tmp_path):
    """The report on the demo with its menu: bonuses.csv is the plan's table, the page has the
    section and a sentence per level taken with the drivers the table says (a small report:
    2 frontier points, 20 out-of-sample paths)."""
    from optplan.explain.report import build_report, write_report

    _, levers = demo_with_bonuses
    r = build_report(levers, frontier_points=2, service_points=0, oos_paths=20, seed=0, workers=1, progress=False)
    files = write_report(r, tmp_path)
    assert "bonuses.csv" in files
    table = pd.read_csv(tmp_path / "bonuses.csv")
    plan = optplan.solve(levers).bonuses.reset_index(drop=True)
    assert list(table["channel"]) == list(plan["channel"])
    np.testing.assert_allclose(table["expected_drivers"], plan["expected_drivers"], rtol=1e-6, atol=1e-9)
    html = (tmp_path / "report.html").read_text()
    assert "Sign-on and referral bonuses" in html
    taken = table[table["applicants"] > 0]
    assert len(taken) >= 1  # the plan takes the sign-on bonus
    for row in taken.itertuples(index=False):
        assert (f"A bonus of {row.signon_bonus:,.4g} USD per driver on {row.channel} pays: "
                f"{row.expected_drivers:,.1f} drivers are expected to convert under it") in html


def test_the_monitor_reads_a_bonus_column_as_the_menu_levels(demo_with_bonuses, tmp_path):
    """optplan monitor with a bonus menu: applicants the log says were offered a level's bonus are
    that level's (its raised conversion), the rest the channel's own; the plan's levels count as
    the channel's applicants. Without the bonus column the pooled conversion is above the
    channel's own and the watch alerts."""
    from optplan.planning.monitor import forecast_quantiles, monitor

    _, levers = demo_with_bonuses
    data = levers.model_data()
    base, level = data.channels.index("job_board"), data.channels.index("job_board+bonus20")
    rng = np.random.default_rng(3)
    start = pd.Timestamp(str(levers.manifest.horizon.start_date))
    rows = []
    for c, bonus in ((base, ""), (level, 20)):
        probs = np.append(data.yield_kernel[c], 1 - data.yield_kernel[c].sum())
        for s in range(1, 7):
            lags = rng.choice(len(probs), size=600, p=probs)
            first = pd.Series(start + pd.to_timedelta(7 * (s - 1 + lags), unit="D")).where(lags < len(probs) - 1)
            rows.append(pd.DataFrame({"applicant_id": [f"{c}-{s}-{i}" for i in range(600)], "depot": "D001",
                                      "channel": "job_board", "applied": start + pd.Timedelta(weeks=s - 1),
                                      "background_check": pd.NaT, "onboarding": pd.NaT, "first_block": first,
                                      "bonus": bonus}))
    log = pd.concat(rows, ignore_index=True)
    q = forecast_quantiles(levers)
    demand = q[q["week"] <= 8][["depot", "week", "p50"]].rename(columns={"p50": "blocks"}).reset_index(drop=True)
    plan = optplan.solve(levers)
    plan.write(tmp_path / "plan")
    m = monitor(levers, demand, plan=tmp_path / "plan", applicants=log)
    conv = m.conversion.set_index("channel")
    assert conv.loc["job_board", "applicants"] == conv.loc["job_board+bonus20", "applicants"] > 0
    for ch in ("job_board", "job_board+bonus20"):
        assert conv.loc[ch, "low"] <= conv.loc[ch, "estimate"] <= conv.loc[ch, "high"], ch
    assert not [a for a in m.alerts if a["kind"] == "conversion"]
    rec = m.recruiting.groupby("channel")["plan_applicants"].sum()
    weeks = int(m.recruiting["week"].max())
    assert "job_board+bonus20" not in rec.index
    assert rec["job_board"] == pytest.approx(
        plan.decisions.applicants[:, [c for c, n in enumerate(data.channels) if n.startswith("job_board")], :weeks].sum(),
        rel=1e-6)
    pooled = monitor(levers, demand, applicants=log.drop(columns="bonus"))
    assert "job_board" in {a["where"] for a in pooled.alerts if a["kind"] == "conversion"}
