"""A watch on forecasts, recruiting and conversion (issue #29 part 3): for each week seen, what
happened against what the instance and its plan expected, and alerts a planner acts on.

* **Demand against the forecast** (blocks/week): each depot-week seen against the forecast's
  P10, P50 and P90 (``quantiles.csv`` of ``optplan forecast``, or the instance's demand
  scenarios by their probabilities: optplan.forecast.metrics.weighted_quantile). Per depot and
  overall: coverage = share of weeks with P10 <= demand <= P90 (nominal 80 %); WAPE = sum |demand
  - P50| / sum demand; MASE = mean |demand - P50| / scale with the history's in-sample
  seasonal-naive error as the scale (optplan.forecast.metrics.mase_scale; only with a history).
* **Recruiting against the plan** (applicants/week, drivers/week): per channel and week, the
  applicant log's applicants against the plan's (``applicants.csv`` of the plan folder), and
  per depot and week the log's first blocks against the plan's expected new drivers (recruited
  plus pipeline, ``drivers.csv``).
* **Conversion against the estimate**: per channel, the applicants whose whole yield kernel
  has been seen (applied at least L weeks before the end of the last week seen, L the kernel's
  length), the share with a first block within L weeks, its 95 % Wilson interval, against the
  kernel's conversion sum_l yield[c, l] (the instance's).

Alerts (``Thresholds``):
  coverage    the P10-P90 coverage of the last ``band_weeks`` weeks, pooled over depots, outside
              [band_low, band_high] and away from the nominal 80 % by a two-sided binomial
              test at ``significance`` (a week of five depots covers all five by chance in a
              third of weeks); the alert names the depots outside the band in at least half
              of those weeks;
  depot       a depot's MASE above ``mase_max`` (with a history), else its WAPE above ``wape_max``;
  conversion  a channel's estimated conversion outside the 95 % interval of what was seen;
  recruiting  a channel's applicants over the weeks seen below ``recruiting_low`` x the plan's.

Weeks are the instance's (1..T; the log dates map to the week that contains them, as in
optplan.planning.logstate). Retention against its estimate is not watched yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from formulations.two_stage.bonus import base_channel
from optplan.errors import InstanceError, OptionError, Problem
from optplan.estimate.funnel import wilson_interval
from optplan.estimate.logs import MAX_LINES_PER_CHECK, read_applicant_log
from optplan.forecast.history import read_history
from optplan.forecast.metrics import SEASON, mase_scale, weighted_quantile
from optplan.io.atomic import csv_text, json_text, write_files
from optplan.io.instance import Instance, load_instance
from optplan.planning.logstate import instance_week, log_rows_to_model, read_table, row_problems

#: The share of weeks a P10-P90 band holds when the forecast is right.
NOMINAL_COVERAGE = 0.8


@dataclass(frozen=True)
class Thresholds:
    band_low: float = 0.6  # pooled P10-P90 coverage of a week below this ...
    band_high: float = 0.95  # ... or above this (nominal 0.8) ...
    band_weeks: int = 3  # ... over the last this many weeks, pooled ...
    significance: float = 0.01  # ... and a binomial test against 80 % below this: an alert
    mase_max: float = 1.5  # a depot's MASE above this (scaled by the history's seasonal-naive error)
    wape_max: float = 0.25  # a depot's WAPE above this (when there is no history for MASE)
    recruiting_low: float = 0.7  # a channel's applicants below this share of the plan's


@dataclass
class Monitor:
    weeks_seen: list[int]
    demand: pd.DataFrame  # depot, week, blocks, p10, p50, p90, inside, abs_error
    by_depot: pd.DataFrame  # depot, weeks, coverage, wape, mase
    by_week: pd.DataFrame  # week, depots, coverage
    overall: dict
    recruiting: pd.DataFrame | None = None  # channel, week, applicants, plan_applicants
    arrivals: pd.DataFrame | None = None  # depot, week, first_blocks, plan_new_drivers
    conversion: pd.DataFrame | None = None  # channel, applicants, converted, observed, low, high, estimate
    alerts: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        def num(x):
            return None if x is None or not np.isfinite(x) else float(f"{x:.10g}")
        return {
            "weeks_seen": self.weeks_seen, "overall": {k: num(v) if isinstance(v, float) else v for k, v in self.overall.items()},
            "by_depot": [{k: num(v) if isinstance(v, float) else v for k, v in r.items()}
                         for r in self.by_depot.to_dict("records")],
            "alerts": self.alerts, "notes": self.notes,
        }

    def text(self) -> str:
        o = self.overall
        mase = "" if o.get("mase") is None else f", MASE {o['mase']:.2f}"
        lines = [f"weeks {self.weeks_seen[0]}..{self.weeks_seen[-1]} seen: P10-P90 coverage {o['coverage']:.0%} of "
                 f"{o['depot_weeks']} depot-weeks (nominal 80%), WAPE {o['wape']:.1%}{mase}"]
        if self.recruiting is not None and len(self.recruiting):
            by = self.recruiting.groupby("channel")[["applicants", "plan_applicants"]].sum()
            lines.append("applicants against the plan: " + ", ".join(
                f"{c} {int(r.applicants)} of {r.plan_applicants:.1f}" for c, r in by.iterrows()))
        if self.conversion is not None and len(self.conversion):
            lines.append("conversion seen against the estimate: " + ", ".join(
                f"{r.channel} {r.observed:.1%} [{r.low:.1%}, {r.high:.1%}] vs {r.estimate:.1%}"
                for r in self.conversion.itertuples() if r.applicants > 0))
        lines += [f"ALERT {a['kind']}: {a['message']}" for a in self.alerts] or ["no alerts"]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def render(self) -> dict[str, str]:
        files = {"demand.csv": csv_text(self.demand), "by_depot.csv": csv_text(self.by_depot),
                 "by_week.csv": csv_text(self.by_week),
                 "alerts.csv": csv_text(pd.DataFrame(self.alerts, columns=["kind", "where", "week", "value", "message"])),
                 "monitor.json": json_text(self.summary()), "monitor.txt": self.text() + "\n"}
        for name in ("recruiting", "arrivals", "conversion"):
            if getattr(self, name) is not None:
                files[f"{name}.csv"] = csv_text(getattr(self, name))
        return files

    def write(self, folder) -> list[Path]:
        files = self.render()
        write_files(folder, files)
        return [Path(folder) / n for n in files]


def read_demand_seen(path, instance: Instance) -> pd.DataFrame:
    """depot, week (1..T, the instance's), blocks (blocks/week, finite, >= 0): one line per problem."""
    raw, name, lines = read_table(path, "a CSV demand table", ("depot", "week", "blocks"))
    week = pd.to_numeric(raw["week"], errors="coerce").to_numpy(dtype=float)
    blocks = pd.to_numeric(raw["blocks"], errors="coerce").to_numpy(dtype=float)
    T = instance.n_weeks
    checks = [
        (~raw["depot"].isin(list(instance.depots)).to_numpy(), "depot", "a depot of the instance", raw["depot"]),
        (~(np.isfinite(week) & (week == np.round(week)) & (week >= 1) & (week <= T)), "week",
         f"a week of the instance (1..{T})", raw["week"]),
        (~(np.isfinite(blocks) & (blocks >= 0)), "blocks", "blocks/week, a finite number >= 0", raw["blocks"]),
        (raw.duplicated(["depot", "week"]).to_numpy(), "week", "one row per depot and week", raw["week"]),
    ]
    problems = row_problems(name, lines, checks)
    if raw.empty:
        problems.append(Problem(name, None, None, "a row per depot and week seen (depot, week, blocks)", "no rows"))
    if problems:
        raise InstanceError(problems)
    return pd.DataFrame({"depot": raw["depot"].to_numpy(), "week": week.astype(int), "blocks": blocks})


def read_quantiles(path) -> pd.DataFrame:
    """A forecast's quantiles.csv: depot, week (1..), p10 <= p50 <= p90 (blocks/week); other
    columns ignored. One line per problem."""
    q, name, _ = read_table(path, "a forecast's quantiles.csv", ("depot", "week", "p10", "p50", "p90"))
    num = {c: pd.to_numeric(q[c], errors="coerce").to_numpy(dtype=float) for c in ("week", "p10", "p50", "p90")}
    bad = ~(np.isfinite(num["week"]) & (num["week"] >= 1) & (num["week"] == np.round(num["week"])))
    bad |= ~(np.isfinite(num["p10"]) & np.isfinite(num["p50"]) & np.isfinite(num["p90"]))
    bad |= ~((num["p10"] <= num["p50"]) & (num["p50"] <= num["p90"]))
    if bad.any():
        raise InstanceError([Problem(name, int(i) + 2, "p10..p90", "a week >= 1 and numbers p10 <= p50 <= p90",
                                     ", ".join(f"{c}={q[c].iloc[i]!r}" for c in ("week", "p10", "p50", "p90")))
                             for i in np.flatnonzero(bad)[:MAX_LINES_PER_CHECK]])
    return pd.DataFrame({"depot": q["depot"].astype(str).to_numpy(), "week": num["week"].astype(int),
                         "p10": num["p10"], "p50": num["p50"], "p90": num["p90"]})


def forecast_quantiles(instance: Instance, quantiles: pd.DataFrame | None = None) -> pd.DataFrame:
    """depot, week, p10, p50, p90 (blocks/week): the forecast's quantiles.csv rows when given,
    else the instance's scenarios weighted by their probabilities."""
    if quantiles is not None:
        return quantiles[["depot", "week", "p10", "p50", "p90"]].copy()
    data = instance.model_data()
    D, T, _ = data.demand.shape
    q = {f"p{int(round(100 * level))}": weighted_quantile(np.moveaxis(data.demand, 2, 0), data.probability, level)
         for level in (0.1, 0.5, 0.9)}  # (D, T) each
    dd, tt = np.meshgrid(np.arange(D), np.arange(T), indexing="ij")
    return pd.DataFrame({"depot": np.asarray(data.depots)[dd.ravel()], "week": tt.ravel() + 1,
                         **{k: v.ravel() for k, v in q.items()}})


def binomial_p_value(k: int, n: int, p: float) -> float:
    """Two-sided p-value of k successes in n trials of probability p: twice the smaller tail,
    at most 1."""
    from scipy.stats import binom

    return float(min(1.0, 2.0 * min(binom.cdf(k, n, p), binom.sf(k - 1, n, p))))


def monitor_files(instance_dir, demand, out, quantiles=None, history=None, plan=None, applicants=None,
                  thresholds: Thresholds = Thresholds(), date_format: str | None = None,
                  applicant_options: dict | None = None) -> Monitor:
    """Read the inputs (each checked, one line per problem), watch, write ``out``; the CLI's
    and the pipeline's route. ``history``: a CSV as optplan forecast reads it."""
    result = load_monitor(instance_dir, demand, quantiles, history, plan, applicants, thresholds, date_format,
                          applicant_options)
    result.write(out)
    return result


def load_monitor(instance_dir, demand, quantiles=None, history=None, plan=None, applicants=None,
                 thresholds: Thresholds = Thresholds(), date_format: str | None = None,
                 applicant_options: dict | None = None) -> Monitor:
    """Read the inputs (each checked) and watch, writing nothing (the report's route)."""
    inst = instance_dir if isinstance(instance_dir, Instance) else load_instance(instance_dir)
    seen = read_demand_seen(demand, inst)
    q = None if quantiles is None else read_quantiles(quantiles)
    hist = None
    if history is not None:
        hist = read_history(history).to_frame()
        hist["depot"] = hist["depot"].astype(str)
    app = None if applicants is None else read_applicant_log(applicants, date_format=date_format,
                                                             **(applicant_options or {}))[0]
    return monitor(inst, seen, q, hist, plan, app, thresholds)


def monitor(instance: Instance, demand: pd.DataFrame, quantiles: pd.DataFrame | None = None,
            history: pd.DataFrame | None = None, plan: str | Path | None = None,
            applicants: pd.DataFrame | None = None, thresholds: Thresholds = Thresholds(),
            stages=("applied", "first_block")) -> Monitor:
    """The watch (module docstring). ``demand``: read_demand_seen's table; ``quantiles``: a
    forecast's quantiles.csv (depot, week, p10, p50, p90) or None (the instance's scenarios);
    ``history``: depot, week_start, blocks (the forecast's history) for the MASE scale;
    ``plan``: a plan folder of this instance; ``applicants``: the wide applicant log."""
    if instance.period_weeks is not None:
        raise OptionError("instance", "a weekly instance to monitor (weeks seen are compared week by week; this one "
                          "has long-lead periods, horizon.periods)", "horizon.periods")
    notes: list[str] = []
    alerts: list[dict] = []
    th = thresholds
    q = forecast_quantiles(instance, quantiles)
    df = demand.merge(q, on=["depot", "week"], how="left", validate="one_to_one")
    if df[["p10", "p50", "p90"]].isna().any().any():
        lost = df[df["p50"].isna()]
        notes.append(f"{len(lost)} depot-weeks without a forecast quantile left out")
        df = df.dropna(subset=["p10", "p50", "p90"])
    if df.empty:
        raise InstanceError([Problem("demand seen", None, "week", "depot-weeks the forecast has quantiles for",
                                     "none of them")])
    df = df.sort_values(["depot", "week"], kind="stable").reset_index(drop=True)
    df["inside"] = (df["p10"] <= df["blocks"]) & (df["blocks"] <= df["p90"])
    df["abs_error"] = (df["blocks"] - df["p50"]).abs()
    scale = pd.Series(dtype=float)
    if history is not None:
        wide = history.pivot_table(index="week_start", columns="depot", values="blocks", aggfunc="sum").sort_index()
        season = SEASON if len(wide) > SEASON else 1
        scale = pd.Series(mase_scale(wide.to_numpy(dtype=float), season), index=wide.columns)
        if season == 1:
            notes.append(f"history shorter than {SEASON + 1} weeks: the MASE scale is the naive (lag 1) error")
    df["scaled_error"] = df["abs_error"] / df["depot"].map(scale).astype(float) if len(scale) else np.nan
    g = df.groupby("depot", sort=True)
    by_depot = pd.DataFrame({
        "weeks": g.size(), "coverage": g["inside"].mean(),
        "wape": g["abs_error"].sum() / g["blocks"].sum().replace(0, np.nan),
        "mase": g["scaled_error"].mean(),
    }).reset_index()
    gw = df.groupby("week", sort=True)
    by_week = pd.DataFrame({"depots": gw.size(), "coverage": gw["inside"].mean()}).reset_index()
    weeks_seen = [int(w) for w in by_week["week"]]
    overall = {"depot_weeks": int(len(df)), "coverage": float(df["inside"].mean()) if len(df) else float("nan"),
               "wape": float(df["abs_error"].sum() / df["blocks"].sum()) if df["blocks"].sum() > 0 else float("nan"),
               "mase": float(df["scaled_error"].mean()) if df["scaled_error"].notna().any() else None}

    # coverage of the last band_weeks weeks, pooled over depots, out of its band and significantly
    # away from the nominal 80 % (a binomial test: five depots cover all five in a third of
    # weeks by chance alone)
    if len(weeks_seen) >= th.band_weeks:
        window = weeks_seen[-th.band_weeks:]
        rows = df[df["week"].isin(window)]
        n, k = len(rows), int(rows["inside"].sum())
        c = k / n
        p = binomial_p_value(k, n, NOMINAL_COVERAGE)
        if (c < th.band_low or c > th.band_high) and p < th.significance:
            off = rows[~rows["inside"]].groupby("depot").size()
            named = sorted(off[off >= (th.band_weeks + 1) // 2].index) or sorted(off.index)
            above = rows.loc[~rows["inside"], "blocks"].gt(rows.loc[~rows["inside"], "p90"]).mean() if n > k else 0.0
            side = "above P90" if above >= 0.5 else "below P10"
            alerts.append({"kind": "coverage", "where": ",".join(named), "week": weeks_seen[-1], "value": c,
                           "message": f"P10-P90 coverage {c:.0%} in weeks {window[0]}..{window[-1]} ({k} of {n} "
                                      f"depot-weeks; band {th.band_low:.0%}-{th.band_high:.0%}, nominal 80%, binomial "
                                      f"p = {p:.2g}); mostly {side} at {', '.join(named)}: re-forecast"})
    for r in by_depot.itertuples():
        if np.isfinite(r.mase) and r.mase > th.mase_max:
            alerts.append({"kind": "depot", "where": r.depot, "week": weeks_seen[-1], "value": float(r.mase),
                           "message": f"depot {r.depot}: MASE {r.mase:.2f} over {r.weeks} weeks (above {th.mase_max:g})"})
        elif not np.isfinite(r.mase) and np.isfinite(r.wape) and r.wape > th.wape_max:
            alerts.append({"kind": "depot", "where": r.depot, "week": weeks_seen[-1], "value": float(r.wape),
                           "message": f"depot {r.depot}: WAPE {r.wape:.1%} over {r.weeks} weeks (above {th.wape_max:.0%})"})

    result = Monitor(weeks_seen, df, by_depot, by_week, overall, alerts=alerts, notes=notes)
    last_week = weeks_seen[-1] if weeks_seen else 0
    if applicants is not None:
        _recruiting(instance, result, applicants, plan, last_week, th, stages)
    return result


def _recruiting(instance: Instance, result: Monitor, app: pd.DataFrame, plan, last_week: int, th: Thresholds,
                stages) -> None:
    data = instance.model_data()
    depots = pd.Index(list(instance.depots))
    chan = log_rows_to_model(data, depots, app)[2]
    app = app.loc[chan >= 0].assign(_c=chan[chan >= 0])
    s = instance_week(instance, app[stages[0]])
    first = app[stages[-1]]
    f = np.where(first.notna(), instance_week(instance, first.fillna(app[stages[0]])), 10**9)
    seen = (s >= 1) & (s <= last_week)
    log_apps = (app.loc[seen].assign(week=s[seen]).groupby(["channel", "week"]).size().rename("applicants"))
    starts = (f >= 1) & (f <= last_week)
    log_starts = (app.loc[starts].assign(week=f[starts]).groupby(["depot", "week"]).size().rename("first_blocks"))
    if plan is not None:
        plan = Path(plan)
        pa = pd.read_csv(plan / "applicants.csv", dtype={"depot": str, "channel": str})
        # a channel's bonus levels (job_board+bonus20) are its applicants too: the log names the channel
        pa = pa.assign(channel=pa["channel"].map(base_channel))
        pa = pa[pa["week"] <= last_week].groupby(["channel", "week"])["applicants"].sum().rename("plan_applicants")
        grid = pd.MultiIndex.from_product([sorted({base_channel(str(c)) for c in data.channel_source or data.channels}),
                                           range(1, last_week + 1)], names=["channel", "week"])
        rec = pd.concat([log_apps, pa], axis=1).reindex(grid.union(pa.index).union(log_apps.index)).fillna(0.0)
        rec = rec.rename_axis(["channel", "week"]).reset_index()
        rec["applicants"] = rec["applicants"].astype(int)
        result.recruiting = rec.sort_values(["channel", "week"], kind="stable").reset_index(drop=True)
        pdv = pd.read_csv(plan / "drivers.csv", dtype={"depot": str})
        pdv = pdv[pdv["week"] <= last_week].assign(
            plan_new_drivers=lambda x: x["new_drivers_recruited"] + x["new_drivers_pipeline"])
        arr = pd.concat([log_starts, pdv.set_index(["depot", "week"])["plan_new_drivers"]], axis=1).fillna(0.0)
        arr["first_blocks"] = arr["first_blocks"].astype(int)
        result.arrivals = arr.reset_index().sort_values(["depot", "week"], kind="stable").reset_index(drop=True)
        by = result.recruiting.groupby("channel")[["applicants", "plan_applicants"]].sum()
        for channel, r in by.iterrows():
            if r.plan_applicants >= 1 and r.applicants < th.recruiting_low * r.plan_applicants:
                result.alerts.append({"kind": "recruiting", "where": channel, "week": last_week,
                                      "value": float(r.applicants / r.plan_applicants),
                                      "message": f"{channel}: {int(r.applicants)} applicants in weeks 1..{last_week} "
                                                 f"against the plan's {r.plan_applicants:.1f} "
                                                 f"({r.applicants / r.plan_applicants:.0%}, below "
                                                 f"{th.recruiting_low:.0%})"})
    # conversion: applicants whose whole kernel has been seen by the end of the last week seen
    L = data.yield_kernel.shape[1]
    full = s <= last_week - L + 1  # applied in week s: lags 0..L-1 end in week s + L - 1 <= last_week
    conv = []
    for c, channel in enumerate(data.channels):
        mine = full & (app["_c"].to_numpy() == c)
        n = int(mine.sum())
        k = int((mine & (f - s < L)).sum())
        lo, hi = wilson_interval(np.array([k]), np.array([n]))
        est = float(data.conversion()[c])
        conv.append({"channel": channel, "applicants": n, "converted": k, "observed": k / n if n else np.nan,
                     "low": float(lo[0]) if n else np.nan, "high": float(hi[0]) if n else np.nan, "estimate": est})
        if n and not lo[0] <= est <= hi[0]:
            result.alerts.append({"kind": "conversion", "where": channel, "week": last_week, "value": k / n,
                                  "message": f"{channel}: {k / n:.1%} of {n} applicants converted within {L} weeks "
                                             f"(95% interval {lo[0]:.1%}-{hi[0]:.1%}); the estimate is {est:.1%}: "
                                             "re-estimate the funnel"})
    result.conversion = pd.DataFrame(conv)
    if not full.any():
        result.notes.append(f"no applicant's whole yield kernel ({L} weeks) has been seen by week {last_week}: "
                            "conversion is not compared yet")
