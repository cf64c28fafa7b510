"""The state at the start of week k from the logs (issue #29 part 1): drivers not churned,
applicants still in the funnel with their arrivals by the kernel conditioned on what the log
has seen, the spend so far; worked by hand on a small log, and against the unconditional kernel
by an independent route on a log drawn from the kernel itself."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from optplan.errors import InstanceError
from optplan.io.instance import load_instance
from optplan.planning.logstate import state_from_logs, write_state_from_logs
from optplan.planning.replan import initial_state, load_state, replan

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "instances" / "demo"
#: Sums of a few hand-worked probabilities agree to this (drivers).
EXACT = 1e-12
#: What a log drawn from the kernel may differ from the kernel's expectation by (relative).
SAMPLING_RTOL = 0.03
STAGES = ("applied", "background_check", "onboarding", "first_block")


@pytest.fixture
def small(tmp_path):
    """The demo instance (start 2027-01-04, a Monday) with a kernel simple enough to work by hand:
    referral 0.5 after 1 week and 0.3 after 2; job_board 0.2 after 1; agency 0.4 after 2."""
    folder = tmp_path / "inst"
    shutil.copytree(DEMO, folder)
    (folder / "yield.csv").write_text("channel,lag,probability\nreferral,1,0.5\nreferral,2,0.3\n"
                                      "job_board,1,0.2\nagency,2,0.4\n")
    return load_instance(folder)


def applicant_log(rows) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["applicant_id", "depot", "channel", "applied", "first_block"])
    df["background_check"] = pd.NaT
    df["onboarding"] = pd.NaT
    for c in STAGES:
        df[c] = pd.to_datetime(df[c])
    return df[["applicant_id", "depot", "channel", *STAGES]]


APPLICANTS = [
    ("A", "D001", "referral", "2027-01-05", None),         # week 1, waiting: 0.3 / (1 - 0.5) = 0.6 in week 3
    ("B", "D001", "referral", "2027-01-06", "2027-01-13"),  # week 1, started in week 2: a driver already
    ("C", "D001", "referral", "2027-01-12", None),         # week 2, waiting: 0.5 in week 3, 0.3 in week 4
    ("D", "D002", "agency", "2026-12-28", None),           # week 0, waiting, past the kernel's last lag: 0
    ("E", "D002", "job_board", "2027-01-18", None),        # week 3: not before week 3
    ("F", "D009", "referral", "2027-01-05", None),         # a depot the instance does not have
    ("G", "D001", "social_ads", "2027-01-05", None),       # a channel it does not have
    ("H", "D002", "job_board", "2026-12-30", "2027-01-19"),  # week 0, starts in week 3: not seen by week 2; 0 left
]
ACTIVITY = pd.DataFrame({
    "driver_id": ["d1", "d1", "d1", "d1", "d2", "d3", "d4", "d5", "d5", "d6"],
    "depot": ["D001"] * 7 + ["D002"] * 3,
    "week": pd.to_datetime(["2026-12-14", "2026-12-28", "2027-01-04", "2027-01-11", "2026-12-21", "2026-12-14",
                            "2027-01-04", "2027-01-04", "2027-01-11", "2027-01-18"]),
    "blocks": [1, 1, 2, 3, 1, 4, 0, 5, 5, 6],
})
# weeks -2, 0, 1, 2 for d1 (worked in week 2: active; its span -2..2 has one week off), d2 last in
# week -1 (3 silent weeks), d3 in week -2 (4), d4 worked no block; d5 at D002 worked in week 2,
# d6's row is week 3, not yet seen. D001's share of weeks off z = 1 / 3 (d1: one of the three weeks inside -2..2).


def p_active(j: int, r: float, z: float) -> float:
    """P(active | j silent weeks) by enumeration: active and silent j weeks, against churned in
    week i+1 after i silent active weeks (i < j)."""
    alive = (r * z) ** j
    churned = sum((r * z) ** i * (1 - r) for i in range(j))
    return alive / (alive + churned)


def test_a_hand_worked_state_from_logs(small):
    fallback = initial_state(small)
    res = state_from_logs(small, 3, applicant_log(APPLICANTS), ACTIVITY, fallback=fallback)
    st = res.state
    drivers = st.drivers.set_index("depot")["active_drivers"]
    r = small.model_data().retention
    assert drivers["D001"] == pytest.approx(1 + p_active(3, r[0], 1 / 3) + p_active(4, r[0], 1 / 3), abs=EXACT)
    assert drivers["D002"] == 1  # D002 has no week off in its spans: any silence is a churn
    assert res.counts["weeks_off_share"]["D001"] == pytest.approx(1 / 3, abs=EXACT)
    fb = fallback.drivers.set_index("depot")["active_drivers"]
    for d in ("D003", "D004", "D005"):  # no activity: the fallback's, and a note naming the depot
        assert drivers[d] == fb[d]
        assert any(n.startswith(f"depot {d}:") for n in res.notes)
    assert res.counts["drivers_worked_last_week"]["D001"] == 1
    p = st.pipeline.set_index(["depot", "week"])["new_drivers"]
    assert p[("D001", 3)] == pytest.approx(0.6 + 0.5, abs=EXACT)
    assert p[("D001", 4)] == pytest.approx(0.3, abs=EXACT)
    assert len(p) == 2  # D, H: past the kernel; nothing else waits
    assert res.counts["applicants_in_funnel"] == 4 and res.counts["applicants_arrived"] == 1  # A, C, D, H; B
    rec = st.recruited.set_index(["depot", "channel", "week"])["applicants"]
    assert rec.to_dict() == {("D001", "referral", 1): 2.0, ("D001", "referral", 2): 1.0}
    assert st.spend_total == pytest.approx(3 * 40.0)  # three referral applicants at 40 USD, no incentives
    assert any("social_ads" in n for n in res.notes) and any("D009" in n for n in res.notes)
    assert any("--spend" in n for n in res.notes)
    assert not any("onboarding cap" in n for n in res.notes)
    # a cap below what the funnel brings in week 3 (1.1 drivers): said, naming depot and week
    capped = small.with_changes({"depots[D001].onboarding_cap": 1.0})
    res = state_from_logs(capped, 3, applicant_log(APPLICANTS), ACTIVITY, fallback=fallback)
    assert [n for n in res.notes if "onboarding cap" in n] == [
        "depot D001 week 3: 1.1 expected first blocks from the funnel exceed the onboarding cap of 1.0 drivers/week: "
        "a re-plan from this state is infeasible (raise onboarding_cap or check the log)"]


def test_the_spend_table_counts_weeks_before_k_only(small):
    spend = pd.DataFrame({"depot": ["D001", "D002", "D001", "D001"],
                          "week": pd.to_datetime(["2027-01-04", "2027-01-11", "2027-01-18", "2026-12-28"]),
                          "spend": [100.0, 50.5, 999.0, 7.0]})
    res = state_from_logs(small, 3, applicant_log(APPLICANTS), ACTIVITY, spend, fallback=initial_state(small))
    assert res.state.spend_total == pytest.approx(150.5)
    assert not any("--spend" in n for n in res.notes)


def test_what_the_logs_do_not_hold_is_refused_or_reported(small):
    # a depot without drivers and no fallback: refused, one line per depot
    with pytest.raises(InstanceError) as exc:
        state_from_logs(small, 3, applicant_log(APPLICANTS), ACTIVITY)
    assert [p.found for p in exc.value.problems] == ["none"] * 3
    assert "rows of depot D003 before week 3" in str(exc.value.problems[0].expected)
    # an activity log that ends before week k-1: refused, naming the week and its date
    with pytest.raises(InstanceError) as exc:
        state_from_logs(small, 5, applicant_log(APPLICANTS), ACTIVITY, fallback=initial_state(small))
    (problem,) = exc.value.problems
    assert "up to week 4" in problem.expected and "2027-02-01" in problem.expected and "week 3" in problem.found


def test_the_conditional_pipeline_equals_the_kernels_arrivals_on_a_log_drawn_from_it():
    """Applicants drawn from the instance's own kernel: what the state expects from those still
    waiting (conditioned on the log) matches, up to sampling error, what the kernel expects from
    all of them unconditionally (optplan's recruited_arrivals, the model's own kernel)."""
    from formulations.two_stage.drivers import recruited_arrivals

    inst = load_instance(DEMO)
    data = inst.model_data()
    rng = np.random.default_rng(5)
    y = data.yield_kernel  # (C, L)
    k, T, per_week = 5, inst.n_weeks, 3000  # applicants per channel and week, weeks 1..k-1 at D001
    start = pd.Timestamp("2027-01-04")
    parts = []
    for c, channel in enumerate(data.channels):
        probs = np.append(y[c], 1 - y[c].sum())  # a lag, or never
        for s in range(1, k):
            lags = rng.choice(len(probs), size=per_week, p=probs)
            applied = start + pd.to_timedelta(7 * (s - 1) + np.arange(per_week) % 7, unit="D")
            first = pd.Series(start + pd.to_timedelta(7 * (s - 1 + lags), unit="D")).where(lags < len(y[c]))
            parts.append(pd.DataFrame({"applicant_id": [f"{channel}{s}-{i}" for i in range(per_week)], "depot": "D001",
                                       "channel": channel, "applied": applied, "first_block": first}))
    rows = pd.concat(parts, ignore_index=True).to_numpy().tolist()
    x = np.zeros((len(data.depots), len(data.channels), T))
    x[0, :, : k - 1] = per_week
    unconditional = recruited_arrivals(data, x)[0, k - 1:]  # weeks k..T
    act = pd.DataFrame({"driver_id": "d", "depot": list(data.depots), "week": start + pd.Timedelta(weeks=k - 2),
                        "blocks": 1})
    act["driver_id"] = act["driver_id"] + act["depot"]
    res = state_from_logs(inst, k, applicant_log(rows), act)
    p = res.state.pipeline
    got = np.zeros(T - k + 1)
    got[p["week"].to_numpy() - k] = p["new_drivers"].to_numpy()
    # about 7,450 arrivals expected after week k-1 (4,500 in week k): a count with a relative sd
    # near 1/sqrt(7450) = 1.2 % (1.5 % in week k), and the conditioning removes part of it; 3 %.
    # Without the conditioning (the kernel's unconditional share for the waiting applicants) the
    # sum comes out 8 % low (13 % in week k).
    assert got.sum() == pytest.approx(unconditional.sum(), rel=SAMPLING_RTOL)
    assert got[0] == pytest.approx(unconditional[0], rel=SAMPLING_RTOL)
    assert got.sum() > 0


def test_the_cli_builds_the_state_and_replan_plans_from_it(small, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    app = applicant_log(APPLICANTS)
    for c in STAGES:
        app[c] = app[c].dt.strftime("%Y-%m-%d")
    app.to_csv(logs / "applicants.csv", index=False)
    act = ACTIVITY.assign(week=ACTIVITY["week"].dt.strftime("%Y-%m-%d"))
    extra = pd.DataFrame({"driver_id": ["d7", "d8", "d9"], "depot": ["D003", "D004", "D005"],
                          "week": "2027-01-11", "blocks": 1})
    pd.concat([act, extra]).to_csv(logs / "activity.csv", index=False)
    out = tmp_path / "st"
    cmd = [sys.executable, "-m", "optplan", "state", str(small.path), "--week", "3", "--applicants",
           str(logs / "applicants.csv"), "--activity", str(logs / "activity.csv"), "--out", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "4 applicants still in the funnel" in r.stdout and "note: " in r.stderr
    st = load_state(out, small)
    r = small.model_data().retention
    assert st.week == 3
    assert st.drivers["active_drivers"].sum() == pytest.approx(
        1 + p_active(3, r[0], 1 / 3) + p_active(4, r[0], 1 / 3) + 1 + 3, abs=1e-9)
    assert st.pipeline["new_drivers"].sum() == pytest.approx(1.4, abs=EXACT)
    # the same state through the Python API, and a re-plan from it
    again = write_state_from_logs(small, 3, logs / "applicants.csv", logs / "activity.csv", None, tmp_path / "st2")
    assert again.state.spend_total == st.spend_total == pytest.approx(120.0)
    result = replan(small, st)
    assert result.plan.status.has_solution
    # bad input: one line, exit 2, nothing written
    (logs / "bad.csv").write_text("driver_id,depot,week,blocks\nd1,D001,not a date,3\n")
    bad = subprocess.run([*cmd[:-4], "--activity", str(logs / "bad.csv"), "--out", str(tmp_path / "no")],
                         capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 2 and "bad.csv:2: field 'week'" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "no").exists()
    one = subprocess.run([*cmd[:7], "--applicants", str(logs / "applicants.csv"), "--out", str(tmp_path / "no")],
                         capture_output=True, text=True, cwd=tmp_path)
    assert one.returncode == 2 and "--applicants/--activity" in one.stderr


#: The acceptance bounds (issue #29): the state from the logs against the simulated true state.
DRIVERS_RTOL = 0.01
PIPELINE_RTOL = 0.02
REPLAN_COST_RTOL = 0.005


def simulate_world(inst, k: int, rng, drivers_per_depot: int, applicants_per_cell: int, off_share: float = 0.25):
    """A world drawn from the instance's own assumptions, with its truth: drivers who churn
    with the depot's weekly retention and take a week off with ``off_share`` (from week -40 on,
    joined by new drivers every week), and applicants of weeks k-6..k-1 whose first blocks
    follow the instance's kernel. Returns (applicant log, activity log, true drivers active in
    week k-1 per depot, true first blocks in weeks k..T per depot and week (D, T))."""
    data = inst.model_data()
    D, T = len(data.depots), inst.n_weeks
    start = pd.Timestamp(str(inst.manifest.horizon.start_date))
    first_week = -40
    acts, alive_true = [], np.zeros(D)
    for d in range(D):
        r = data.retention[d]
        n0 = drivers_per_depot
        joins = np.concatenate([np.full(n0, first_week),
                                rng.integers(first_week, k, size=int(n0 * (1 - r) * (k - first_week)))])
        stay = rng.geometric(1 - r, size=len(joins))  # weeks active, churning at the end of the last
        last = joins + stay - 1
        alive_true[d] = np.sum((joins <= k - 1) & (last >= k - 1))
        end = np.minimum(last, k - 1)
        n_weeks = np.maximum(end - joins + 1, 0)
        drv = np.repeat(np.arange(len(joins)), n_weeks)
        wk = joins[drv] + (np.arange(n_weeks.sum()) - np.repeat(np.cumsum(n_weeks) - n_weeks, n_weeks))
        works = (rng.random(len(drv)) >= off_share) | (wk == joins[drv])  # a first week is worked
        acts.append(pd.DataFrame({"driver_id": [f"{data.depots[d]}-{i}" for i in drv[works]], "depot": data.depots[d],
                                  "week": start + pd.to_timedelta(7 * (wk[works] - 1), unit="D"), "blocks": 3}))
    y = data.yield_kernel
    parts, arrivals_true = [], np.zeros((D, T))
    for d in range(D):
        for c, channel in enumerate(data.channels):
            probs = np.append(y[c], 1 - y[c].sum())
            for s in range(k - 6, k):
                lags = rng.choice(len(probs), size=applicants_per_cell, p=probs)
                converts = lags < len(y[c])
                arrive = s + lags
                later = converts & (arrive >= k) & (arrive <= T)
                np.add.at(arrivals_true[d], arrive[later] - 1, 1.0)
                first = pd.Series(start + pd.to_timedelta(7 * (arrive - 1), unit="D")).where(converts)
                parts.append(pd.DataFrame({
                    "applicant_id": [f"{d}{channel}{s}-{i}" for i in range(applicants_per_cell)],
                    "depot": data.depots[d], "channel": channel,
                    "applied": start + pd.Timedelta(weeks=s - 1), "background_check": pd.NaT, "onboarding": pd.NaT,
                    "first_block": first}))
    return pd.concat(parts, ignore_index=True), pd.concat(acts, ignore_index=True), alive_true, arrivals_true


def test_the_state_from_the_logs_of_a_simulated_world_is_its_true_state():
    """Issue #29's acceptance: on logs where the truth is known, drivers within 1 %, pipeline
    arrivals within 2 %, and re-planning from the state equals re-planning from the true state
    (cost within 0.5 %: the plan made from the logs costs, in the true world, at most 0.5 % more
    than the true world's own re-plan). The demo scaled 40x (a depot of thousands of drivers: the law of large
    numbers makes 1 % a statement about the estimator, not about luck), onboarding uncapped."""
    from optplan import Scale
    from optplan.evaluation.evaluator import evaluate_decisions
    from optplan.planning.replan import State, remaining_instance

    F = 40.0
    inst = load_instance(DEMO).with_changes({
        "demand.blocks": Scale(F), "depots.active_drivers": Scale(F), "depots.onboarding_cap": None,
        "channels.applicant_cap": Scale(F), "pipeline.new_drivers": Scale(F), "incentives.max_spend": Scale(F),
        "budgets.total": Scale(F), "budgets.weekly": Scale(F)})
    k, T = 5, inst.n_weeks
    app, act, alive_true, arrivals_true = simulate_world(inst, k, np.random.default_rng(11), 2500, 1500)
    res = state_from_logs(inst, k, app, act)
    est = res.state.drivers["active_drivers"].to_numpy()
    assert est.sum() == pytest.approx(alive_true.sum(), rel=DRIVERS_RTOL)
    np.testing.assert_allclose(est, alive_true, rtol=2 * DRIVERS_RTOL)  # each depot too (fewer drivers, more noise)
    # the rule of thumb it replaces, "worked in the last 4 weeks", is not within 1 %
    weeks = ((act["week"] - pd.Timestamp("2027-01-04")).dt.days // 7 + 1).to_numpy()
    recent = act[(weeks >= k - 4) & (weeks <= k - 1)].groupby("depot")["driver_id"].nunique().sum()
    assert abs(recent / alive_true.sum() - 1) > DRIVERS_RTOL
    p = res.state.pipeline
    pipeline = np.zeros((len(inst.depots), T))
    pipeline[pd.Index(inst.depots).get_indexer(p["depot"]), p["week"].to_numpy() - 1] = p["new_drivers"].to_numpy()
    assert pipeline.sum() == pytest.approx(arrivals_true.sum(), rel=PIPELINE_RTOL)
    # re-planning from it against re-planning from the true state (same spend so far)
    dd, tt = np.nonzero(arrivals_true)
    truth = State(week=k, drivers=pd.DataFrame({"depot": list(inst.depots), "active_drivers": alive_true}),
                  pipeline=pd.DataFrame({"depot": np.asarray(inst.depots)[dd], "week": tt + 1,
                                         "new_drivers": arrivals_true[dd, tt]}),
                  spend_total=res.state.spend_total, spend_regions=res.state.spend_regions)
    ours, true = replan(inst, res.state, engine="highs"), replan(inst, truth, engine="highs")
    # the re-plan made from the logs, lived in the true world: what it costs there against the
    # true world's own optimum (the regret of planning from the estimated state)
    world = remaining_instance(inst, truth).model_data()
    lived = evaluate_decisions(world, ours.plan.decisions)
    assert not lived.violations
    best = true.plan.evaluation.expected_cost
    assert best * (1 - 1e-9) <= lived.expected_cost <= best * (1 + REPLAN_COST_RTOL)
    # and the two re-plans' own expected costs (each on its own state) within 1.5 %: the pipeline's sampling error
    assert ours.plan.evaluation.expected_cost == pytest.approx(best, rel=0.015)


def test_a_bad_spend_table_is_one_line_per_problem(small, tmp_path):
    from optplan.planning.logstate import read_spend_table

    (tmp_path / "spend.csv").write_text("depot,week,spend,currency\nD001,2027-01-04,100,USD\nD009,someday,-5,EUR\n")
    with pytest.raises(InstanceError) as exc:
        read_spend_table(tmp_path / "spend.csv", small)
    assert sorted((p.line, p.field) for p in exc.value.problems) == [
        (3, "currency"), (3, "depot"), (3, "spend"), (3, "week")]
    (tmp_path / "ok.csv").write_text("depot,week,spend\nD001,2027-01-04,100\nD002,2027-01-11,50.5\n")
    table = read_spend_table(tmp_path / "ok.csv", small)
    assert table["spend"].sum() == 150.5 and (table["week"].dt.dayofweek == 0).all()
