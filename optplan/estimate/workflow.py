"""Logs -> parameter tables -> instance: the scripted path behind the CLI.

estimate_funnel_files     applicant log -> yield.csv, channel_summary.csv, calibration.csv,
                          funnel_summary.json, funnel_report.html
estimate_retention_files  activity log  -> retention.csv, tenure_curves.csv,
                          retention_summary.json, retention_report.html
build_instance            yield.csv + retention.csv + depots/channels tables + demand
                          scenarios + settings.yaml -> a validated instance folder
Every output is rendered in memory first and written atomically.
"""

from __future__ import annotations

import io
import logging
import re
import warnings
from dataclasses import replace
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd

from optplan.errors import InstanceError, Problem
from optplan.estimate.funnel import (
    BONUS_COLUMN,
    DEFAULT_STAGES,
    FunnelModel,
    bonus_levels,
    bonus_response,
    bootstrap,
    bootstrap_with_response,
    calibration,
    conversion_check,
    naive_conversion,
)
from optplan.estimate.logs import read_activity_log, read_applicant_log
from optplan.estimate.retention import ESTABLISHED_WEEKS, RetentionModel, bootstrap_retention
from optplan.estimate.supply import supply_indices, supply_table
from optplan.io.atomic import csv_text, json_text, write_files
from optplan.io.inputs import parse_date_option, read_csv_strings, read_yaml_mapping
from optplan.io.instance import MANIFEST_NAME, from_tables
from optplan.io.periods import period_lengths, regroup_weekly

#: Progress lines ("[optplan] funnel: ..." on stderr in the CLI).
log_progress = logging.getLogger("optplan")


def _csv(df: pd.DataFrame) -> str:
    return csv_text(df)


def _svg_lines(series: dict[str, tuple[np.ndarray, np.ndarray]], xlabel: str, ylabel: str, title: str) -> str:
    import matplotlib

    matplotlib.use("Agg")

    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "optplan", "svg.fonttype": "none", "font.size": 9})
    fig, ax = plt.subplots(figsize=(7, 3))
    for label, (x, y) in series.items():
        ax.plot(x, y, marker=".", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    text = buf.getvalue()
    return re.sub(r"<metadata>.*?</metadata>", "", text[text.index("<svg"):], flags=re.S)


def _page(title: str, parts: list[str]) -> str:
    body = "\n".join(parts)
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
            "<style>body{font-family:system-ui,Arial,sans-serif;max-width:1000px;margin:2em auto}"
            "table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #ddd;padding:2px 6px}</style>"
            f"</head><body><h1>{escape(title)}</h1>{body}</body></html>\n")


def estimate_funnel_files(applicants, out, observed_until=None, fmt="auto", stages=None, on_out_of_order="error",
                          max_weeks_in_stage=26, n_boot=50, holdout=0.2, seed=0, by_depot=False,
                          min_group_applicants=500, column_map=None, covariates=None, window_days=None,
                          latent_classes=2, show_progress=True, date_format=None, class_shares_by="channel") -> list[str]:

    stages = list(stages or DEFAULT_STAGES)
    log_progress.info("funnel: reading the applicant log %s", Path(applicants).name)
    log, observed, notes = read_applicant_log(applicants, stages=stages, fmt=fmt, observed_until=observed_until,
                                              on_out_of_order=on_out_of_order, column_map=column_map,
                                              covariates=covariates, window_days=window_days, date_format=date_format)
    rng = np.random.default_rng(seed)
    test = rng.random(len(log)) < holdout
    model = FunnelModel(stages=tuple(stages), max_weeks_in_stage=max_weeks_in_stage, depot_effects=by_depot,
                        latent_classes=latent_classes, class_shares_by=class_shares_by, verbose=show_progress)
    log_progress.info("funnel: fitting %d stage transitions on %s applicants (%s held back for the calibration "
                      "check)%s", len(stages) - 1, f"{int((~test).sum()):,}", f"{int(test.sum()):,}",
                      f", then up to {latent_classes} latent speed classes" if latent_classes > 1 else "")
    with warnings.catch_warnings(record=True) as caught:  # the library's warnings, said once in our words
        warnings.simplefilter("always")
        model.fit(log.loc[~test], observed_until=observed)
        # the sign-on bonus offered, where the log has it: its fitted effect as the conversion response,
        # and each channel's own yield (yield.csv, the summary) without a bonus, which the menu raises
        levels = bonus_levels(log.loc[~test]) if BONUS_COLUMN in model.numeric_ else {}
        at = {BONUS_COLUMN: 0.0} if levels else None
        summary = model.channel_summary(at)
        response = None
        if n_boot and levels:
            intervals, response = bootstrap_with_response(model, log.loc[~test], levels, n=n_boot, seed=seed,
                                                          observed_until=observed, show_progress=show_progress)
        elif n_boot:
            intervals = bootstrap(model, log.loc[~test], n=n_boot, seed=seed, observed_until=observed,
                                  show_progress=show_progress, at=at)
        elif levels:
            response = bonus_response(model, levels)
        if n_boot:
            summary = summary.merge(intervals, on="channel", how="left")
    converge = [w for w in caught if w.category.__name__ == "ConvergenceWarning"]
    if converge:  # sklearn's own text is about lbfgs iterations; say what it means here
        notes["stage_regressions_stopped_before_converging"] = len(converge)
    for w in caught:
        if w.category.__name__ != "ConvergenceWarning":
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    summary["naive_conversion"] = summary["channel"].map(naive_conversion(log, stages))
    check = conversion_check(model, log.loc[~test], observed, stages)
    summary = summary.merge(check.rename(columns={"weeks": "check_weeks", "low": "raw_share_low",
                                                  "high": "raw_share_high", "ok": "check_ok"}),
                            on="channel", how="left")
    summary["applicants"] = summary["channel"].map(log["channel"].value_counts())
    kernels = model.yield_kernels(at=at)
    brier, reliability = calibration(model, log.loc[test], observed_until=observed) if test.any() else (float("nan"), pd.DataFrame())
    plot = _svg_lines(
        {c: (g["lag"].to_numpy(), np.cumsum(g["probability"].to_numpy())) for c, g in kernels.groupby("channel")},
        "weeks after applying", "share first active by then", "Yield kernels (cumulative)")
    meta = {"observed_until": str(observed.date()), "stages": stages,
            "weeks_in_stage_seen_if_short": model.unsupported_weeks(), "applicants_fitted": int((~test).sum()),
            "applicants_held_back": int(test.sum()), "brier_score_held_back": brier, "notes": notes,
            "bootstrap_resamples": n_boot, "stage_dependence": model.mixture_,
            "bonus_levels": levels}
    bonus_parts = [] if response is None else [
        "<h2>Sign-on bonus: conversion response (bonus_response.csv; build-instance --bonuses)</h2>",
        response.to_html(index=False, float_format=lambda v: f"{v:.4g}")]
    files = {
        "yield.csv": _csv(kernels),
        **({"yield_by_depot.csv": _csv(model.yield_kernels(by="depot", min_applicants=min_group_applicants, at=at))}
           if by_depot else {}),
        "channel_summary.csv": _csv(summary),
        "calibration.csv": _csv(reliability),
        "funnel_summary.json": json_text(meta, default=float),
        "funnel_report.html": _page("Onboarding funnel", [
            f"<p>{meta['applicants_fitted']} applicants fitted, {meta['applicants_held_back']} held back; observed until "
            f"{meta['observed_until']}; Brier score on held-back applicant-weeks {brier:.4f}.</p>",
            f"<figure>{plot}</figure>", summary.to_html(index=False, float_format=lambda v: f"{v:.4g}"),
            *bonus_parts,
            "<h2>Calibration (held-back applicants)</h2>", reliability.to_html(index=False, float_format=lambda v: f"{v:.4g}")]),
        **({"bonus_response.csv": _csv(response)} if response is not None else {}),
    }
    write_files(out, files)
    if response is None:  # an earlier run's response, on a log with bonuses, is not this log's
        (Path(out) / "bonus_response.csv").unlink(missing_ok=True)
    lines = [f"{row.channel}: conversion {row.conversion:.1%}, mean {row.mean_weeks_to_first_block:.1f} weeks to first block"
             + (" (without a sign-on bonus)" if at else "") for row in summary.itertuples()]
    lines.append(_dependence_line(model.mixture_))
    lines += [] if response is None else _bonus_lines(response)
    for r in check[~check["ok"]].itertuples():
        lines.append(f"warning: channel {r.channel}: the model has {r.model_share:.1%} of applicants with a first block "
                     f"within {r.weeks} weeks, but {r.raw_share:.1%} (95% interval {r.low:.1%}-{r.high:.1%}) of the "
                     f"{r.applicants_followed:,} applicants the log follows that long did: the fit misses this channel's "
                     "conversion (compare --latent-classes 1 and 2)")
    for transition, weeks in model.unsupported_weeks().items():
        lines.append(f"warning: stage {transition} is seen for only {weeks} week(s) in stage in this log; what happens "
                     "later cannot be told from it, so later hazards are taken as 0: conversion and yields are lower "
                     "bounds (a longer log tells more)")
    for transition, p in model.constant_stages_.items():
        lines.append(f"warning: stage {transition}: every applicant-week in the log has the same outcome, so no "
                     f"regression was fitted; weekly hazard taken as {p:.3g} for everyone (check the log)")
    lines.append(f"Brier score on held-back applicant-weeks: {brier:.4f}" if np.isfinite(brier)
                 else "Brier score: none (no applicant held back)")
    lines += [f"note: {k} = {v}" for k, v in notes.items() if k != "applicants" and v]
    lines.append(f"wrote {len(files)} files to {out}")
    return lines


def _bonus_lines(response: pd.DataFrame) -> list[str]:
    """One line per channel and bonus level of the fitted conversion response."""
    lines = []
    for r in response.itertuples():
        interval = (f", 95% interval {r.uplift_low:+.1%} to {r.uplift_high:+.1%}" if "uplift_low" in response.columns
                    and np.isfinite(r.uplift_low) else "")
        lines.append(f"{r.channel}: a sign-on bonus of {r.bonus_per_driver:,.2f} per converted driver (the log's "
                     f"currency) raises conversion {r.conversion_without:.1%} -> {r.conversion:.1%} "
                     f"({r.conversion_uplift:+.1%}{interval}); bonus_response.csv, for build-instance --bonuses")
    return lines


def _dependence_line(mixture: dict) -> str:
    """One line on whether stage durations were found dependent (the latent-class fit) and why."""
    held = ""
    if mixture.get("comparisons"):
        last = mixture["comparisons"][-1] if mixture["classes"] == 1 else next(
            c for c in mixture["comparisons"] if c["classes"] == mixture["classes"])
        held = (f"; held-out log-likelihood {last['held_out_gain']:+.1f} for {last['classes']} classes against "
                f"{last['against']} (standard error {last['standard_error']:.1f}, {mixture['held_out_applicants']:,} "
                f"applicants held out; {mixture['selection_z']:g} standard errors needed)")
    if mixture["classes"] > 1:
        shares = ", ".join(f"{c} {s[0]:.0%}" for c, s in mixture["class_shares"].items())
        shifts = ", ".join(f"{row[-1]:+.2f}" for row in mixture["class_logit_shifts"])
        return (f"stage durations: dependent; {mixture['classes']} latent speed classes, fast share {shares}, "
                f"the slowest class's logit shift by stage {shifts}{held}"
                + ("" if mixture["converged"] else f"; warning: the fit stopped before converging ({mixture['message']})"))
    return f"stage durations: independent given the covariates ({mixture['reason']}{held})"


def estimate_retention_files(activity, out, gap=4, observed_until=None, n_boot=50, seed=0, show_progress=True,
                             date_format=None) -> list[str]:
    log_progress.info("retention: reading the activity log %s", Path(activity).name)
    log, notes = read_activity_log(activity, date_format)
    observed_until = parse_date_option("--observed-until", observed_until)
    log_progress.info("retention: fitting weekly churn on %s activity rows", f"{len(log):,}")
    model = RetentionModel(gap=gap).fit(log, observed_until=observed_until)
    table = model.depot_summary_
    scored = np.isfinite(table[["retention", "retention_new", "blocks_per_driver"]].to_numpy(float)).all(axis=1)
    short = table[~scored]
    if len(short):  # nothing to estimate from at these depots: left out (all of them: refused), never NaN

        need = (f"drivers seen over more than {ESTABLISHED_WEEKS + gap} weeks before the observation end "
                f"(retention is scored on weeks at least {gap} weeks before it)")
        if not scored.any():
            raise InstanceError([Problem(Path(activity).name, None, "week", f"at depot {r.depot}, {need}",
                                         f"{r.drivers} driver(s), {r.churn_events} churned, too few weeks to score "
                                         "retention") for r in short.itertuples()])
        notes["depots_left_out_too_few_weeks"] = ", ".join(map(str, short["depot"]))
        table = table[scored].reset_index(drop=True)
    if n_boot:
        table = table.merge(bootstrap_retention(model, log, n=n_boot, seed=seed, observed_until=observed_until,
                                                show_progress=show_progress),
                            on="depot", how="left")

    season, tenure = supply_indices(log, gap=gap, observed_until=observed_until)
    curves = model.tenure_curves()
    plot = _svg_lines({d: (g["tenure_weeks"].to_numpy(), g["still_driving"].to_numpy()) for d, g in curves.groupby("depot")},
                      "weeks since first block", "share still driving", "Tenure curves")
    files = {
        "retention.csv": _csv(table),
        "tenure_curves.csv": _csv(curves),
        "supply_season.csv": _csv(season),
        "supply_tenure.csv": _csv(tenure),
        "retention_summary.json": json_text({"gap_weeks": gap, "driver_weeks_scored": model.n_driver_weeks_, "notes": notes}),
        "retention_report.html": _page("Driver retention", [f"<figure>{plot}</figure>",
                                                            table.to_html(index=False, float_format=lambda v: f"{v:.4g}")]),
    }
    write_files(out, files)
    lines = [f"{r.depot}: weekly retention {r.retention:.4f} (first 4 weeks {r.retention_new:.4f}), "
             f"{r.blocks_per_driver:.2f} blocks/driver/week, {r.active_drivers} active" for r in table.itertuples()]
    peak = season.loc[season["driver_weeks"] > 0].groupby("depot")["index"].agg(["min", "max"])
    lines += [f"{d}: blocks per active driver by week of year {r['min']:.2f}-{r['max']:.2f} x the average "
              "(supply_season.csv; build-instance --supply)" for d, r in peak.iterrows()]
    if "depots_left_out_too_few_weeks" in notes:
        lines.append(f"note: left out (too few weeks to score retention): {notes['depots_left_out_too_few_weeks']}")
    lines.append(f"wrote {len(files)} files to {out}")
    return lines


#: Columns each build-instance input must have, and those it may have (docs/estimation.md).
BUILD_INPUTS = {
    "yield": (("channel", "lag", "probability"), ()),
    "retention": (("depot", "retention", "blocks_per_driver", "active_drivers"), None),  # None: extra columns ignored
    "depots": (("depot", "region"), ("onboarding_cap", "active_drivers", "retention", "blocks_per_driver")),
    "channels": (("channel", "cost_per_applicant"), ("applicant_cap",)),
    "supply": (("depot", "week_of_year", "index"), None),
    "bonuses": (("channel", "bonus_per_driver", "conversion_uplift"), None),
}


def _read_input(path, role: str, problems: list) -> pd.DataFrame | None:
    """One build-instance input as strings, its columns checked against BUILD_INPUTS."""

    path = Path(path)
    try:
        df = read_csv_strings(path, f"the {role} table (CSV file)", path.name)
    except InstanceError as exc:
        problems.extend(exc.problems)
        return None
    required, optional = BUILD_INPUTS.get(role, ((), None))
    for col in required:
        if col not in df.columns:
            problems.append(Problem(path.name, 1, col, f"a column named '{col}'", f"columns {list(df.columns)}"))
    if optional is not None:
        for col in df.columns:
            if col not in (*required, *optional):
                problems.append(Problem(path.name, 1, col, f"only the columns {[*required, *optional]}",
                                        f"unknown column '{col}'"))
    return df


def _read_settings(path, problems: list) -> dict | None:
    path = Path(path)
    try:
        data = read_yaml_mapping(path, "a settings file (YAML)", path.name,
                                 "a mapping of manifest fields (name, horizon, penalties, ...)")
    except InstanceError as exc:
        problems.extend(exc.problems)
        return None
    if "files" in data:
        problems.append(Problem(path.name, None, "files", "no files section (build-instance names the files)",
                                "a files section"))
    return data


def build_instance(yield_csv, retention_csv, depots_csv, channels_csv, demand_csv, scenarios_csv, settings_yaml, out,
                   pipeline_csv=None, incentives_csv=None, notes: list | None = None, supply_csv=None,
                   bonuses_csv=None):
    """Assemble and validate an instance; returns the Instance written to ``out``.

    depots_csv: depot, region[, onboarding_cap][, active_drivers] (active drivers default to
    the retention table's count of drivers still active; given, they replace it and ``notes``
    says so). channels_csv: channel, cost_per_applicant[, applicant_cap]. settings_yaml: the
    manifest's name, description, horizon, recourse, penalties, budgets and targets.
    supply_csv: supply_season.csv from `optplan estimate retention` (depot, week_of_year,
    index): the instance gets supply.csv, each depot's blocks_per_driver times the index of
    each horizon week's ISO week of year (optplan.estimate.supply.supply_table).
    bonuses_csv: bonus_response.csv from `optplan estimate funnel` on a log with a bonus
    column (channel, bonus_per_driver, conversion_uplift; other columns ignored), or a
    bonuses.csv: the instance's sign-on bonus menu; a level whose estimated uplift is not
    above 0 is left out (never worth paying) and ``notes`` says so. Every problem in any input
    is an InstanceError (one line each, exit 2)."""

    notes = [] if notes is None else notes
    problems: list = []
    settings = _read_settings(settings_yaml, problems)
    retention = _read_input(retention_csv, "retention", problems)
    depots = _read_input(depots_csv, "depots", problems)
    yields = _read_input(yield_csv, "yield", problems)
    channels = _read_input(channels_csv, "channels", problems)
    demand = _read_input(demand_csv, "demand", problems)
    scenarios = _read_input(scenarios_csv, "scenarios", problems)
    pipeline = _read_input(pipeline_csv, "pipeline", problems) if pipeline_csv else None
    incentives = _read_input(incentives_csv, "incentives", problems) if incentives_csv else None
    season = _read_input(supply_csv, "supply", problems) if supply_csv else None
    bonuses = _read_input(bonuses_csv, "bonuses", problems) if bonuses_csv else None
    if season is not None and not problems:
        season = season.copy()
        for col in ("week_of_year", "index"):
            values = pd.to_numeric(season[col], errors="coerce")
            bad = ~np.isfinite(values) | (values <= 0) | ((col == "week_of_year") & ((values > 53) | (values % 1 != 0)))
            for i in np.flatnonzero(bad.to_numpy())[:5]:
                problems.append(Problem(Path(supply_csv).name, int(i) + 2, col,
                                        "an ISO week of year 1..53" if col == "week_of_year" else "an index > 0",
                                        f"'{season[col].iloc[i]}'"))
            season[col] = values
    if problems:
        raise InstanceError(problems)
    est = retention.drop_duplicates("depot").set_index("depot")
    for i, d in enumerate(depots["depot"]):
        if d not in est.index:
            problems.append(Problem(Path(depots_csv).name, i + 2, "depot", f"a depot estimated in {Path(retention_csv).name}",
                                    f"'{d}'"))
    known = set(channels["channel"])
    for i, c in enumerate(yields["channel"]):
        if c not in known:
            problems.append(Problem(Path(yield_csv).name, i + 2, "channel", f"a channel listed in {Path(channels_csv).name}",
                                    f"channel '{c}' absent from the instance"))
            break
    if problems:
        raise InstanceError(problems)
    depots = depots.copy()
    given = [c for c in ("active_drivers", "retention", "blocks_per_driver") if c in depots.columns]
    for col in ("active_drivers", "retention", "blocks_per_driver"):
        if col not in given:
            depots[col] = depots["depot"].map(est[col])
    if given:
        notes.append(f"{', '.join(c.replace('_', ' ') for c in given)} from {Path(depots_csv).name} replace the "
                     f"{Path(retention_csv).name} estimates")
    if "onboarding_cap" not in depots.columns:
        depots["onboarding_cap"] = ""
    tables = {
        "depots": depots[["depot", "region", "active_drivers", "blocks_per_driver", "retention", "onboarding_cap"]],
        "scenarios": scenarios,
        "demand": demand,
        "channels": channels,
        "yield_kernel": yields,
        "pipeline": pipeline if pipeline is not None else pd.DataFrame(columns=["depot", "week", "new_drivers"]),
        "incentives": incentives if incentives is not None else pd.DataFrame(
            columns=["depot", "segment", "max_spend", "blocks_per_currency"]),
    }
    files = {"pipeline": "pipeline.csv" if pipeline_csv else None, "incentives": "incentives.csv" if incentives_csv else None}
    if bonuses is not None:
        tables["bonuses"], files["bonuses"] = _bonus_menu(bonuses, Path(bonuses_csv).name, notes), "bonuses.csv"
    if season is not None:
        horizon = settings.get("horizon", {}) if isinstance(settings, dict) else {}
        try:  # a bad horizon is reported by the manifest's validation below, with the settings file's name
            start, weeks = pd.Timestamp(str(horizon.get("start_date"))), int(horizon.get("weeks"))
        except (TypeError, ValueError):
            start, weeks = None, 0
        if start is not None and not pd.isna(start) and 0 < weeks <= 520:
            tables["supply"] = supply_table(season, dict(zip(depots["depot"], depots["blocks_per_driver"], strict=True)),
                                            start, weeks)
            files["supply"] = "supply.csv"
            runs = horizon.get("periods")
            if runs:  # long-lead periods: one row per period, the mean of its weeks (blocks/driver/week)

                try:
                    lengths = period_lengths(runs)
                except (TypeError, KeyError, ValueError, AttributeError):
                    lengths = None  # malformed periods are reported by the manifest's validation below
                if lengths is not None and int(lengths.sum()) == weeks:  # else: the validation's one line
                    tables["supply"] = regroup_weekly(tables["supply"], lengths, ["depot", "week"],
                                                      "blocks_per_driver", "mean")
    manifest = {**settings, "files": files}
    try:
        instance = from_tables(manifest, tables)
    except InstanceError as exc:  # the manifest's fields come from the settings file: name it
        named = {MANIFEST_NAME: Path(settings_yaml).name, "depots.csv": Path(depots_csv).name,
                 **({"bonuses.csv": Path(bonuses_csv).name} if bonuses_csv else {}),
                 "channels.csv": Path(channels_csv).name, "demand.csv": Path(demand_csv).name,
                 "scenarios.csv": Path(scenarios_csv).name, "yield_kernel.csv": Path(yield_csv).name}
        raise InstanceError([replace(p, file=named.get(p.file, p.file)) for p in exc.problems], exc.omitted) from None
    instance.write(out)
    return instance


def _bonus_menu(table: pd.DataFrame, name: str, notes: list) -> pd.DataFrame:
    """The instance's bonuses table from a bonus response (or menu): its levels whose
    conversion uplift is above 0 (a bonus that does not raise conversion is never worth
    paying); the other cells are checked by the instance's validation, which names ``name``."""
    columns = ["channel", "bonus_per_driver", "conversion_uplift", *(
        ["applicant_uplift"] if "applicant_uplift" in table.columns else [])]
    uplift = pd.to_numeric(table["conversion_uplift"], errors="coerce")
    dropped = table.loc[uplift <= 0]
    if len(dropped):
        notes.append(f"{len(dropped)} bonus level(s) of {name} left out of the menu: their conversion uplift is not "
                     "above 0 (" + ", ".join(f"{r.channel} {r.bonus_per_driver}" for r in dropped.head(5).itertuples())
                     + ")")
    return table.loc[~(uplift <= 0), columns].reset_index(drop=True)
