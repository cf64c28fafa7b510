"""The state at the start of week k from what the logs say happened (issue #29 part 1).

``state_from_logs`` builds the re-planning state (optplan.planning.replan.State, docs/replan.md)
that a planner would otherwise type by hand:

* **drivers** (drivers active in week k-1, the stock the re-plan starts from): a driver who
  worked (a row with blocks > 0) in week k-1 is active; one whose last row is j >= 1 weeks
  earlier is active with the probability that j silent weeks leave, by the instance's weekly
  retention r of the depot and the log's share z of active weeks without a row (weeks off,
  counted in the weeks strictly between each driver's first and last row, per depot):

      P(active | j silent weeks) = (r z)^j / ((r z)^j + (1 - r) (1 - (r z)^j) / (1 - r z))

  (each week after the last row the driver churns with 1 - r, else takes the week off with z).
  The sum over drivers is the expected stock; a count of "worked in the last 4 weeks" would be
  off by the drivers who churned after working and those on a long break (tests/test_logstate.py
  compares both with a simulated truth). The drivers who worked in week k-1 are reported beside it.
* **pipeline** (drivers/week, weeks k..T): the expected arrivals of everyone in the applicant
  log who applied before week k and had not had a first block by then, by the instance's own
  yield kernel (the model's: yield[c, l] = P(an applicant of channel c has a first block l
  weeks after the week they applied)), conditioned on not having arrived in the weeks already
  seen:

      E[arrivals in week t] = sum over applicants i of  y[c_i, t - s_i] / (1 - sum_{l < k - s_i} y[c_i, l])

  with s_i the week applied (week numbers of the instance; <= 0 before its start). Applicants
  the kernel gives no chance any more (the denominator <= KERNEL_EXHAUSTED) add nothing (they
  have dropped out). This table replaces the instance's pipeline and the kernel's yield of
  recruited.csv in the re-plan (docs/replan.md), so applicants from before the horizon are
  counted once, from the log.
* **recruited** (applicants per depot, channel and week 1..k-1): the log's applicants, a record
  (their arrivals are in the pipeline above).
* **spend so far** (instance currency; per region and country in its budget's currency):
  the ``--spend`` table's (depot, week, spend) rows of weeks 1..k-1; without it the recruiting
  cost of the log's applicants (applicants x cost_per_applicant) and no incentive spend, which
  is reported.

A week of a log is the instance week that contains its date: week = floor((date -
start_date) / 7 days) + 1. What the logs do not hold is reported, never guessed silently: a
depot without a row in the activity log before week k (its drivers
are then the instance's expectation, the plan's expected state, and the note says so; the
caller passes that state as ``fallback``), applicants of depots or channels the instance does
not have (left out, counted), logs that end before week k-1. A log that does not reach week
k-1 at all is refused (InstanceError, one line naming the file).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from formulations.two_stage.bonus import variant_name
from optplan.errors import InstanceError, OptionError, Problem
from optplan.estimate.funnel import BONUS_COLUMN, DEFAULT_STAGES
from optplan.estimate.logs import (
    MAX_LINES_PER_CHECK,
    parse_dates,
    read_activity_log,
    read_applicant_log,
    read_text_csv,
)
from optplan.io.atomic import atomic_write_text, json_text
from optplan.io.instance import Instance
from optplan.planning.replan import State, model_channels, refuse_periods

#: An applicant whose remaining chance of a first block (1 - the kernel's mass already passed)
#: is at most this adds nothing to the pipeline (dropped out by the kernel's account).
KERNEL_EXHAUSTED = 1e-9


@dataclass
class LogState:
    """The state, with what was found and what was not."""

    state: State
    notes: list[str] = field(default_factory=list)  # what the logs did not hold, what was left out
    counts: dict[str, object] = field(default_factory=dict)  # numbers behind the state

    def summary(self) -> dict:
        return {"week": int(self.state.week), "counts": self.counts, "notes": list(self.notes)}


def still_active(silent_weeks: np.ndarray, retention: np.ndarray, off_share: np.ndarray) -> np.ndarray:
    """P(a driver is active | ``silent_weeks`` j weeks without a row since the last one worked)
    (module docstring): (r z)^j / ((r z)^j + (1 - r) (1 - (r z)^j) / (1 - r z)); 1 at j = 0."""
    rz = np.clip(retention * off_share, 0.0, 1.0 - 1e-12)
    stay = rz ** silent_weeks
    churned = (1.0 - retention) * (1.0 - stay) / (1.0 - rz)
    return np.where(silent_weeks <= 0, 1.0, stay / np.maximum(stay + churned, 1e-300))


def log_rows_to_model(data, depots: pd.Index, app: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each log row's depot index in ``depots`` and model channel index (``replan.model_channels``);
    a row whose depot the instance does not have gets ``known`` False (and depot index 0), one
    whose channel it does not have channel -1. With a bonus menu and a ``bonus`` column, a row
    offered a bonus the menu has for its channel maps to that level's model channel (its kernel:
    the raised conversion); another bonus, to the channel itself. Returns (known depot, depot
    index, channel index)."""
    known = app["depot"].isin(list(depots)).to_numpy()
    rows = depots.get_indexer(app["depot"].where(known, depots[0]))
    chan = model_channels(data, rows, app["channel"].astype(str))
    if data.signon_bonus is not None and BONUS_COLUMN in app.columns:
        chan = bonus_channels(data, chan, app[BONUS_COLUMN])
    return known, rows, np.where(known, chan, -1)


def bonus_channels(data, chan: np.ndarray, bonus) -> np.ndarray:
    """Model channel indices ``chan`` moved to the bonus level each row was offered (``bonus``:
    currency per converted driver; empty or 0: none) where the menu has that level for the
    channel (formulations.two_stage.bonus.variant_name); unchanged otherwise."""
    amount = pd.to_numeric(pd.Series(bonus).reset_index(drop=True), errors="coerce").to_numpy(float)
    index = pd.Index(list(data.channels))
    out = np.asarray(chan).copy()
    offered = (out >= 0) & (amount > 0)
    for c, b in set(zip(out[offered].tolist(), amount[offered].tolist(), strict=True)):
        level = index.get_indexer([variant_name(data.channels[c], b)])[0]
        if level >= 0:
            out[offered & (out == c) & (amount == b)] = level
    return out


def instance_week(instance: Instance, dates: pd.Series) -> np.ndarray:
    """The instance week (1-based; <= 0 before its start) that contains each date."""
    start = pd.Timestamp(instance.manifest.horizon.start_date)
    days = (pd.to_datetime(dates) - start).dt.days.to_numpy(dtype=float)
    return np.floor(days / 7.0).astype(np.int64) + 1


def read_table(path, what: str, required: tuple[str, ...]) -> tuple[pd.DataFrame, str, np.ndarray]:
    """A CSV table as text cells with its required columns: (the table, the file's name, the
    file line of each row); a missing column is one line each (InstanceError)."""
    path = Path(path)
    raw = read_text_csv(path, what)
    missing = [c for c in required if c not in raw.columns]
    if missing:
        raise InstanceError([Problem(path.name, 1, c, f"a column named '{c}'", f"columns {list(raw.columns)}")
                             for c in missing])
    return raw, path.name, np.arange(len(raw)) + 2


def row_problems(name: str, lines: np.ndarray, checks) -> list[Problem]:
    """One Problem per bad row of each check (mask, column, expected, values), at most
    MAX_LINES_PER_CHECK each, then one line counting the rest."""
    problems = []
    for mask, column, expected, values in checks:
        for i in np.flatnonzero(mask)[:MAX_LINES_PER_CHECK]:
            problems.append(Problem(name, int(lines[i]), column, expected, repr(values.iloc[i])))
        if mask.sum() > MAX_LINES_PER_CHECK:
            problems.append(Problem(name, None, column, expected,
                                    f"{int(mask.sum()) - MAX_LINES_PER_CHECK} more rows like the above"))
    return problems


def read_spend_table(path, instance: Instance) -> pd.DataFrame:
    """A spend table: depot, week (the week's first day as a date), spend (instance currency,
    recruiting and incentives paid that week at that depot); optional currency column (must be
    the instance's). Every problem one line (InstanceError)."""
    raw, name, lines = read_table(path, "a CSV spend table", ("depot", "week", "spend"))
    weeks, bad, _ = parse_dates(raw["week"], file=name, column="week")
    bad = (bad | weeks.isna()).to_numpy()
    spend = pd.to_numeric(raw["spend"], errors="coerce")
    bad_spend = ~(np.isfinite(spend.to_numpy(dtype=float)) & (spend.to_numpy(dtype=float) >= 0))
    unknown = ~raw["depot"].isin(list(instance.depots)).to_numpy()
    checks = [
        (bad, "week", "the week's first day as a date", raw["week"]),
        (bad_spend, "spend", f"a finite amount >= 0 ({instance.currency})", raw["spend"]),
        (unknown, "depot", "a depot of the instance", raw["depot"]),
    ]
    if "currency" in raw.columns:
        checks.append(((raw["currency"] != instance.currency).to_numpy(), "currency",
                       f"the instance's currency {instance.currency}", raw["currency"]))
    problems = row_problems(name, lines, checks)
    if problems:
        raise InstanceError(problems)
    return pd.DataFrame({"depot": raw["depot"].to_numpy(), "week": weeks, "spend": spend.to_numpy(dtype=float)})


def state_from_logs(instance: Instance, week: int, applicants: pd.DataFrame, activity: pd.DataFrame,
                    spend: pd.DataFrame | None = None, fallback=None,
                    names: tuple[str, str] = ("applicants.csv", "activity.csv"),
                    stages=DEFAULT_STAGES) -> LogState:
    """The state at the start of ``week`` from the logs (module docstring).

    ``applicants``: the wide log of optplan.estimate.logs.read_applicant_log (applicant_id,
    depot, channel, one datetime column per stage); ``activity``: read_activity_log's (driver_id,
    depot, week as a date, blocks); ``spend``: read_spend_table's or None; ``fallback``: the state
    (or a function making it, called only when needed) to take a depot's drivers from when the
    activity log has none for it (e.g. the plan's expected state); None: such a depot is refused."""
    refuse_periods(instance)
    T = instance.n_weeks
    if not 1 <= week <= T:
        raise OptionError("--week", f"a week in 1..{T}", week)
    data = instance.model_data()
    depots = pd.Index(list(instance.depots))
    notes: list[str] = []
    counts: dict[str, object] = {}
    start = pd.Timestamp(instance.manifest.horizon.start_date)
    week_start = (start + pd.Timedelta(weeks=week - 1)).date().isoformat()

    # ---- drivers: active in week k-1, in expectation given each driver's silence since the last row
    act_week = instance_week(instance, activity["week"])
    last_seen = int(act_week.max()) if len(act_week) else None
    if last_seen is None or last_seen < week - 1:
        ends = "is empty" if last_seen is None else f"ends in week {last_seen}"
        raise InstanceError([Problem(names[1], None, "week", f"driver activity up to week {week - 1} (the week before "
                                     f"week {week}, which starts {week_start})", f"a log that {ends}")])
    worked = (activity["blocks"].to_numpy(dtype=float) > 0) & (act_week <= week - 1)
    rows = pd.DataFrame({"driver_id": activity["driver_id"].to_numpy()[worked],
                         "depot": activity["depot"].to_numpy()[worked], "week": act_week[worked]})
    per = rows.groupby(["depot", "driver_id"])["week"].agg(["min", "max", "size"]).reset_index()
    per = per[per["depot"].isin(list(depots))]
    # z: weeks off among the weeks strictly between a driver's first and last row (active weeks
    # whose work is not what defines the span's ends)
    span = (per["max"] - per["min"] + 1).to_numpy(dtype=float)
    interior = np.maximum(span - 2, 0)
    silent = pd.Series(span - per["size"].to_numpy(dtype=float)).groupby(per["depot"].to_numpy()).sum()
    inside = pd.Series(interior).groupby(per["depot"].to_numpy()).sum()
    off_share = (silent / inside.replace(0, np.nan)).reindex(depots).fillna(0.0).to_numpy()  # z per depot
    r = data.retention
    d_idx = depots.get_indexer(per["depot"])
    j = (week - 1 - per["max"]).to_numpy(dtype=float)
    p_active = still_active(j, r[d_idx], off_share[d_idx])
    drivers = np.bincount(d_idx, weights=p_active, minlength=len(depots)).astype(float)
    last_week = rows[rows["week"] == week - 1].groupby("depot")["driver_id"].nunique()
    absent = [d for d in depots if d not in set(per["depot"])]
    if absent:
        if fallback is None:
            raise InstanceError([Problem(names[1], None, "depot", f"rows of depot {d} before week {week}", "none")
                                 for d in absent])
        fb = (fallback() if callable(fallback) else fallback).drivers.set_index("depot")["active_drivers"]
        for d in absent:
            drivers[depots.get_loc(d)] = float(fb[d])
            notes.append(f"depot {d}: no driver in the activity log before week {week}: "
                         f"its {float(fb[d]):.1f} drivers are the plan's expectation")
    extra = sorted(set(activity["depot"]) - set(depots))
    if extra:
        notes.append(f"{names[1]}: {int(activity['depot'].isin(extra).sum())} rows of depots the instance does not "
                     f"have ({', '.join(map(str, extra[:5]))}{', ...' if len(extra) > 5 else ''}) left out")
    counts["drivers_active"] = {d: float(v) for d, v in zip(depots, drivers, strict=True)}
    counts["weeks_off_share"] = {d: float(v) for d, v in zip(depots, off_share, strict=True)}
    counts["drivers_worked_last_week"] = {d: int(last_week.get(d, 0)) for d in depots}
    counts["activity_last_week"] = last_seen

    # ---- applicants: recruited before week k, and those still in the funnel
    applied_col, arrived_col = stages[0], stages[-1]
    app = applicants
    known, rows, chan = log_rows_to_model(data, depots, app)
    kept = known & (chan >= 0)
    for what, mask in (("depots", ~known), ("channels", known & (chan < 0))):
        if mask.any():
            values = sorted(map(str, set(app.loc[mask, "depot" if what == "depots" else "channel"])))
            notes.append(f"{names[0]}: {int(mask.sum())} applicants of {what} the instance does not have "
                         f"({', '.join(values[:5])}{', ...' if len(values) > 5 else ''}) left out")
    s = instance_week(instance, app[applied_col])
    before = kept & (s <= week - 1)
    first = app[arrived_col]
    arrived_before = before & first.notna().to_numpy() & (instance_week(instance, first.fillna(start)) <= week - 1)
    waiting = before & ~arrived_before
    applied_last = int(s.max()) if len(s) else None
    if applied_last is None or applied_last < week - 1:
        notes.append(f"{names[0]}: the last application is in week {applied_last}: no applicants for week "
                     f"{week - 1} (a log that stops early makes the pipeline too small)")

    # recruited: applicants of weeks 1..k-1 (instance ids, as the state's recruited.csv)
    rec = app.loc[before & (s >= 1), ["depot", "channel"]].assign(week=s[before & (s >= 1)])
    recruited = (rec.groupby(["depot", "channel", "week"]).size().rename("applicants").astype(float)
                 .reset_index().sort_values(["depot", "channel", "week"], kind="stable").reset_index(drop=True))

    # pipeline: conditional expected arrivals in weeks k..T by the kernel
    y = data.yield_kernel  # (C, L) P(first block l weeks after applying), l = 0..L-1
    L = y.shape[1]
    cum = np.concatenate([np.zeros((y.shape[0], 1)), np.cumsum(y, axis=1)], axis=1)  # cum[c, a] = sum_{l<a} y[c, l]
    arrivals = np.zeros((len(depots), T))
    idx = np.flatnonzero(waiting)
    if len(idx):
        cc, dd, ss = chan[idx], rows[idx], s[idx]
        age = np.minimum(week - ss, L)  # lags already passed: 0..age-1
        remaining = 1.0 - cum[cc, age]
        alive = remaining > KERNEL_EXHAUSTED
        for t in range(week, T + 1):  # instance weeks
            lag = t - ss
            ok = alive & (lag < L)
            if not ok.any():
                break
            p = np.where(ok, y[cc, np.clip(lag, 0, L - 1)] / np.where(alive, remaining, 1.0), 0.0)
            np.add.at(arrivals[:, t - 1], dd, p)
        counts["applicants_exhausted"] = int((~alive).sum())
    dd, tt = np.nonzero(arrivals > 0)
    pipeline = pd.DataFrame({"depot": depots[dd].to_numpy(), "week": tt + 1, "new_drivers": arrivals[dd, tt]})
    cap = data.onboarding_cap[:, None] * data.period_length[None, :]
    for d, t in zip(*np.nonzero(arrivals > cap + 1e-9), strict=True):
        notes.append(f"depot {depots[d]} week {t + 1}: {arrivals[d, t]:.1f} expected first blocks from the funnel exceed "
                     f"the onboarding cap of {cap[d, t]:.1f} drivers/week: a re-plan from this state is infeasible "
                     "(raise onboarding_cap or check the log)")
    counts["applicants_before_week"] = int(before.sum())
    counts["applicants_arrived"] = int(arrived_before.sum())
    counts["applicants_in_funnel"] = int(waiting.sum())
    counts["expected_arrivals"] = float(arrivals.sum())

    # ---- spend so far: the table's, else the log's recruiting cost
    per_depot = np.zeros(len(depots))  # instance currency
    if spend is not None:
        sw = instance_week(instance, spend["week"])
        use = (sw >= 1) & (sw <= week - 1)
        np.add.at(per_depot, depots.get_indexer(spend.loc[use, "depot"]), spend.loc[use, "spend"].to_numpy(float))
        counts["spend_rows_used"] = int(use.sum())
    else:
        r = before & (s >= 1)
        np.add.at(per_depot, rows[r], data.cost_per_applicant[chan[r]])
        if week > 1:
            notes.append("no spend table (--spend): the spend so far is the log's applicants at each channel's "
                         "cost_per_applicant, and no incentive spend")
    fx = data.depot_fx if data.depot_fx is not None else np.ones(len(depots))
    local = per_depot / fx
    by_region = pd.Series(local, index=list(data.regions)).groupby(level=0).sum()
    by_country = pd.Series(local, index=list(data.budget_groups("budget_country"))).groupby(level=0).sum()
    state = State(week=week, drivers=pd.DataFrame({"depot": list(depots), "active_drivers": drivers}),
                  recruited=recruited, pipeline=pipeline, spend_total=float(per_depot.sum()),
                  spend_regions={r: float(by_region[r]) for r in data.budget_region if r in by_region.index},
                  spend_countries={k: float(by_country[k]) for k in data.budget_country if k in by_country.index})
    counts["spend_to_date"] = float(per_depot.sum())
    counts["currency"] = instance.currency
    return LogState(state, notes, counts)


def write_state_from_logs(instance: Instance, week: int, applicants, activity, spend, out, fallback=None,
                          date_format: str | None = None, applicant_options: dict | None = None) -> LogState:
    """Read the logs (and spend table), build the state and write it to ``out`` with
    from_logs.json (what was found and what was not). Every input problem raises before
    anything is written."""
    app, _, _ = read_applicant_log(applicants, date_format=date_format, **(applicant_options or {}))
    act, _ = read_activity_log(activity, date_format)
    table = read_spend_table(spend, instance) if spend is not None else None
    result = state_from_logs(instance, week, app, act, table, fallback=fallback,
                             names=(Path(applicants).name, Path(activity).name))
    result.state.write(out)
    atomic_write_text(Path(out) / "from_logs.json", json_text(result.summary()))
    return result
