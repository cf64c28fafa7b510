"""The commands of ``optplan`` other than forecasting (``optplan/cli/forecast.py``).

Each is a thin layer over the Python API; ``optplan/cli/__init__.py`` registers them.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import click

from optplan.cli.common import (
    EXIT_NOT_OPTIMAL,
    MAX_NOISE_SD,
    EngineChoice,
    flush_progress,
    guarded,
    load_instance_with,
    progress_to_stderr,
    set_option,
)


@click.command()
@click.argument("instance", type=click.Path(path_type=Path))
@guarded
def validate(instance: Path) -> None:
    """Check an instance folder (or its instance.yaml) and list every problem found."""
    from optplan import load_instance

    inst = load_instance(instance)
    click.echo(f"ok: {inst.summary()}")


@click.command()
@click.argument("instance", type=click.Path(path_type=Path))
@click.option("--out", "out", type=click.Path(path_type=Path), required=True, help="Folder for the plan's files.")
@click.option("--time-limit", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Wall-clock seconds for the whole solve: model building and every engine auto tries included.")
@click.option("--integer", is_flag=True, help="Whole applicants (solves a MIP).")
@click.option("--mip-gap", type=click.FloatRange(min=0, max=1), default=None,
              help="Relative MIP gap to stop at (with --integer), from 0 to 1.")
@click.option("--threads", type=click.IntRange(min=1, max=256), default=None, help="HiGHS threads.")
@click.option("--method", type=click.Choice(["choose", "simplex", "ipm", "pdlp"]), default="choose", show_default=True,
              help="LP algorithm.")
@click.option("--seed", type=int, default=0, show_default=True, help="HiGHS random seed.")
@click.option("--save-mps", type=click.Path(path_type=Path), default=None,
              help="Also write the model as MPS (readable names) to this file.")
@click.option("--log", "show_log", is_flag=True, help="Show the HiGHS log.")
@click.option("--quiet", is_flag=True, help="No progress lines on stderr.")
@click.option("--engine", type=EngineChoice(), default="auto", show_default=True,
              help="highs: the LP/MIP by HiGHS; glop: the LP by OR-tools GLOP; dp: the numpy dynamic program "
                   "(docs/dp.md); decompose: Dantzig-Wolfe over depots, subproblems on --backend (docs/scale.md); "
                   "auto: HiGHS, then GLOP, then the DP when the one before is missing, fails, or stops with no plan "
                   "while time is left. One --time-limit covers them all.")
@click.option("--backend", type=click.Choice(["serial", "local", "dask"]), default="local", show_default=True,
              help="Where --engine decompose runs its depot subproblems: this process, local processes, or Dask.")
@click.option("--scheduler", default=None, help="Dask scheduler address (tcp://host:8786) for --backend dask "
                                                 "(default: start a local cluster).")
@click.option("--workers", type=click.IntRange(min=1, max=256), default=None,
              help="Processes for --backend local, or for the local Dask cluster (default: cores).")
@click.option("--grid", "grid_points", type=click.IntRange(min=2, max=100_000), default=None,
              help="DP states per week (default: adaptive, doubling from 101 until the value settles).")
@click.option("--formulation", type=click.Choice(["auto", "extensive", "aggregated"]), default="auto", show_default=True,
              help="How LP engines state the second stage: per scenario (extensive) or its expectation per depot-week "
                   "(aggregated: the same optimum, far smaller); auto: aggregated.")
@click.option("--cvar-weight", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Risk: minimise (1 - w) x expected cost + w x CVaR of a scenario's total cost (0: expected cost "
                   "only). HiGHS adds risk-envelope cuts to the aggregated model; GLOP states it in the extensive form "
                   "(docs/formulation.md, 'Risk').")
@click.option("--cvar-alpha", type=click.FloatRange(0, 1, max_open=True), default=0.9, show_default=True,
              help="CVaR level: the mean cost of the worst 1 - alpha of scenarios; every plan reports its CVaR at it.")
@click.option("--orders-weeks", type=click.IntRange(min=0, max=52), default=2, show_default=True,
              help="Write orders/: the first N weeks as whole applicants per depot, channel and week and whole "
                   "incentive spend, within every budget (the MIP on those weeks with the rest fixed; "
                   "docs/plan-output.md, 'Orders'); 0: none.")
@click.option("--override-costs", type=click.Choice(["total", "each", "none"]), default="total", show_default=True,
              help="With committed decisions (decisions.csv): measure what they cost together by one more solve "
                   "without them (total), also each row by one solve without it (each), or not (none); within "
                   "--time-limit.")
@set_option
@guarded
def solve(instance: Path, out: Path, time_limit, integer, mip_gap, threads, method, seed, save_mps, show_log, quiet,
          engine, backend, scheduler, workers, grid_points, formulation, cvar_weight, cvar_alpha, sets, decisions,
          override_costs, orders_weeks) -> None:
    """Solve INSTANCE and write the plan's CSV tables and summary.json to --out.

    Progress (build, hand-off, solve) is printed to stderr, and at the end one line of where
    the time went, by phase; --log adds the solver's own log.
    Exit 0 for the plan asked for: a proven optimum, a MIP within the --mip-gap allowed, or a
    finished DP plan asked for with --engine dp; exit 3 when the plan is NOT PROVEN OPTIMAL: a
    time or iteration limit stopped the engine, or auto fell back to the DP heuristic
    (summary.json's status says why, and which engine made it); 4 no plan; 5 infeasible;
    6 solver failure."""
    import optplan
    from optplan.solvers import Deadline
    from optplan.solvers.dp import DPOptions

    deadline = Deadline(time_limit)  # the budget counts from the command's start, loading included
    progress_to_stderr(quiet)
    t0 = time.perf_counter()
    inst = load_instance_with(instance, sets, decisions)
    read_s = time.perf_counter() - t0
    click.echo(f"instance {inst.summary()}")
    if save_mps is not None:
        _save_mps(inst, save_mps, integer, "extensive" if formulation == "extensive" else "aggregated")
        click.echo(f"model written to {save_mps}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        plan = optplan.solve(
            inst, engine=engine, dp_options=DPOptions(grid_points=grid_points), deadline=deadline, backend=backend,
            scheduler=scheduler, workers=workers,
            time_limit=time_limit, integer=integer, formulation=formulation,
            mip_rel_gap=mip_gap, threads=threads, method=method, seed=seed, log=show_log,
            cvar_weight=cvar_weight, cvar_alpha=cvar_alpha, override_costs=override_costs,
            orders_weeks=orders_weeks,
        )
    t1 = time.perf_counter()
    paths = plan.write(out)
    phases = {"read and check": read_s, **plan.phases, "write": time.perf_counter() - t1}
    flush_progress()  # what the progress handler folded, before the summary and any warning
    click.echo(plan.text_summary())
    click.echo(f"wrote {len(paths)} files to {out}")
    if not quiet:
        click.echo(phase_line(phases), err=True)
    for w in caught:
        if "not proven optimal" not in str(w.message):  # said once below, in the status's words
            click.secho(f"warning: {w.message}", fg="yellow", err=True)
    if not plan.status.complete:
        click.secho(f"warning: {plan.status.describe()} (engine {plan.engine}; see summary.json: status)",
                    fg="yellow", err=True)
        sys.exit(EXIT_NOT_OPTIMAL)


def phase_line(phases: dict[str, float]) -> str:
    """'time by phase: read and check 0.42 s, ..., write 0.12 s (2.37 s in all; start-up and
    imports before them not counted)': where a command's wall clock went (parts under 5 ms left out)."""
    shown = ", ".join(f"{name} {s:.2f} s" for name, s in phases.items() if s >= 0.005)
    return f"time by phase: {shown} ({sum(phases.values()):.2f} s in all; start-up and imports before them not counted)"


def _save_mps(inst, path: Path, integer: bool, recourse: str) -> None:
    from formulations.two_stage import build_model

    model = build_model(inst.model_data(integer_applicants=integer), recourse=recourse)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".mps", dir=path.parent)
    os.close(fd)
    try:
        model.write(tmp, format="mps", io_options={"symbolic_solver_labels": True})
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


@click.command()
@click.argument("instance", type=click.Path(path_type=Path))
@click.option("--out", "out", type=click.Path(path_type=Path), required=True, help="Folder for report.html and its tables.")
@click.option("--frontier-points", type=click.IntRange(min=2), default=10, show_default=True,
              help="Total budgets on the frontier, from 0 to where the budget stops binding.")
@click.option("--service-points", type=click.IntRange(min=0), default=5, show_default=True,
              help="Service levels on the customers-against-drivers frontier (x 3 utilisation floors, one LP each); "
                   "0 (or 1) leaves it out.")
@click.option("--tornado-change", type=click.FloatRange(min=0, max=1, min_open=True, max_open=True), default=0.10,
              show_default=True, help="One-at-a-time change for the tornado, as a share.")
@click.option("--oos-paths", type=click.IntRange(min=2), default=500, show_default=True,
              help="Freshly sampled demand paths for the out-of-sample evaluation.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workers", type=click.IntRange(min=1, max=256), default=None,
              help="Processes for the tornado's solves, or the local Dask cluster's (default: cores).")
@click.option("--backend", type=click.Choice(["serial", "local", "dask"]), default="local", show_default=True,
              help="Where the tornado's solves run: this process, local processes, or Dask (docs/scale.md).")
@click.option("--scheduler", default=None, help="Dask scheduler address for --backend dask (default: a local cluster).")
@click.option("--demand-seen", "demand_seen", type=click.Path(path_type=Path), default=None,
              help="Demand seen so far (depot, week, blocks): adds the watch of optplan monitor as a section.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@set_option
@guarded
def report(instance: Path, out: Path, frontier_points, service_points, tornado_change, oos_paths, seed, workers, backend,
           scheduler, demand_seen, quiet, sets, decisions) -> None:
    """Sensitivity report: shadow prices, ranging, budget frontier, tornado, VSS, as one
    self-contained HTML file plus CSV/JSON."""
    from optplan.explain.report import build_report, write_report

    progress_to_stderr(quiet)
    inst = load_instance_with(instance, sets, decisions)
    click.echo(f"instance {inst.summary()}")
    from optplan.solvers.backends import get_backend

    watch = None
    if demand_seen is not None:  # checked before the long part
        from optplan.planning.monitor import load_monitor

        watch = load_monitor(inst, demand_seen)
    runner = get_backend(backend, scheduler, workers)
    try:
        r = build_report(inst, frontier_points=frontier_points, service_points=service_points,
                         tornado_change=tornado_change, oos_paths=oos_paths,
                         seed=seed, workers=workers, progress=not quiet, backend=runner)
    finally:
        runner.close()
    r.monitor = watch
    files = write_report(r, out)
    v = r.stochastic_values
    oos = r.out_of_sample
    click.echo(f"expected cost over the plan's {len(r.plan.data.scenarios)} scenarios (in-sample) "
               f"{r.plan.cost['total']:,.2f} {r.currency}; over {oos['paths']:,} new simulated demand paths "
               f"(out of sample) {oos['expected_cost']:,.2f} {r.currency}")
    click.echo(f"value of planning for uncertainty (VSS) {v['vss']:,.2f} {r.currency}; value of perfect foresight "
               f"(EVPI) {v['evpi']:,.2f} {r.currency}")
    click.echo(f"wrote {len(files)} files to {out} (open {out / 'report.html'})")


@click.group()
def estimate() -> None:
    """Estimate funnel yields, retention and blocks per driver from event logs."""


@estimate.command("funnel")
@click.argument("applicants", type=click.Path(path_type=Path))
@click.option("--out", "out", type=click.Path(path_type=Path), required=True)
@click.option("--observed-until", default=None, help="Date the log was taken (default: its latest date).")
@click.option("--format", "fmt", type=click.Choice(["auto", "wide", "long"]), default="auto", show_default=True)
@click.option("--stages", default=",".join(("applied", "background_check", "onboarding", "first_block")), show_default=True,
              help="Stage columns (wide) or names (long), in order.")
@click.option("--on-out-of-order", type=click.Choice(["error", "drop", "reorder"]), default="error", show_default=True,
              help="What to do with applicants whose stage dates are out of order.")
@click.option("--max-weeks-in-stage", type=click.IntRange(min=1), default=26, show_default=True)
@click.option("--bootstrap", "n_boot", type=click.IntRange(min=0, max=10_000), default=50, show_default=True,
              help="Bootstrap resamples for the confidence intervals (0: none).")
@click.option("--holdout", type=click.FloatRange(min=0, max=0.9), default=0.2, show_default=True,
              help="Share of applicants held back for the calibration check.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--by-depot", is_flag=True, help="Depot effects in the hazards; also write yield_by_depot.csv.")
@click.option("--min-group-applicants", type=click.IntRange(min=1), default=500, show_default=True,
              help="Depot-channel groups with fewer applicants get no kernel of their own.")
@click.option("--map", "column_map", default=None, metavar="OURS=THEIRS,...",
              help="The log's own column names: applied=signup_date,first_block=first_trip_date,applicant_id=id "
                   "(ours: applicant_id, depot, channel, the stages; long format: stage, date too).")
@click.option("--covariates", default=None, metavar="COL,...",
              help="Covariate columns to use (default: every other column, less those known only after a stage, "
                   "which are dropped with a note; listed here, such a column is refused). '' for none.")
@click.option("--window-days", type=click.IntRange(min=1), default=None,
              help="Each applicant is followed for this many days after applying (later events censored); a log "
                   "column observed_until gives per-applicant ends instead or as well (the earlier wins).")
@click.option("--latent-classes", type=click.IntRange(min=1, max=4), default=2, show_default=True,
              help="At most this many latent speed classes shared by every stage, so that stage durations can be "
                   "dependent (fast applicants are fast throughout); the number is chosen by held-out likelihood. "
                   "1: independent stages.")
@click.option("--class-shares", "class_shares", type=click.Choice(["channel", "common"]), default="channel",
              show_default=True, help="Each channel its own share of each latent class (channels bring different "
                                      "applicants), or one set of shares for every channel.")
@click.option("--date-format", default=None, metavar="FORMAT",
              help="How the log's dates are written, e.g. %d/%m/%Y (default: ISO, or the order of day and month each "
                   "column shows; an ambiguous column is refused with an example).")
@click.option("--quiet", is_flag=True, help="No progress lines or bars on stderr.")
@guarded
def estimate_funnel(applicants, out, observed_until, fmt, stages, on_out_of_order, max_weeks_in_stage, n_boot, holdout, seed,
                    by_depot, min_group_applicants, column_map, covariates, window_days, latent_classes, class_shares,
                    date_format, quiet):
    """Fit the funnel and write yield.csv (instance format), channel summaries with intervals
    and a calibration table."""
    from optplan.errors import OptionError
    from optplan.estimate.logs import parse_column_map
    from optplan.estimate.workflow import estimate_funnel_files

    progress_to_stderr(quiet)

    stage_names = [s.strip() for s in stages.split(",") if s.strip()]
    if len(stage_names) < 2 or len(set(stage_names)) < len(stage_names):
        raise OptionError("--stages", "two or more different stages in funnel order, e.g. "
                          "applied,background_check,onboarding,first_block", stages)
    mapping = parse_column_map(column_map, ["applicant_id", "depot", "channel", "stage", "date", *stage_names])
    chosen = None if covariates is None else [c.strip() for c in covariates.split(",") if c.strip()]
    notes = estimate_funnel_files(applicants, out, observed_until=observed_until, fmt=fmt, stages=stage_names,
                                  on_out_of_order=on_out_of_order, max_weeks_in_stage=max_weeks_in_stage,
                                  n_boot=n_boot, holdout=holdout, seed=seed, by_depot=by_depot,
                                  min_group_applicants=min_group_applicants, column_map=mapping, covariates=chosen,
                                  window_days=window_days, latent_classes=latent_classes, show_progress=not quiet,
                                  date_format=date_format, class_shares_by=None if class_shares == "common" else "channel")
    for line in notes:
        click.echo(line)


@estimate.command("retention")
@click.argument("activity", type=click.Path(path_type=Path))
@click.option("--out", "out", type=click.Path(path_type=Path), required=True)
@click.option("--gap", type=click.IntRange(min=1), default=4, show_default=True,
              help="Weeks without work after which a driver counts as churned.")
@click.option("--observed-until", default=None, help="Date the log was taken (default: its latest week).")
@click.option("--bootstrap", "n_boot", type=click.IntRange(min=0, max=10_000), default=50, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--date-format", default=None, metavar="FORMAT",
              help="How the log's dates are written, e.g. %d/%m/%Y (default: ISO, or the order of day and month each "
                   "column shows; an ambiguous column is refused with an example).")
@click.option("--quiet", is_flag=True, help="No progress lines or bars on stderr.")
@guarded
def estimate_retention(activity, out, gap, observed_until, n_boot, seed, date_format, quiet):
    """Fit weekly churn on tenure and write retention, blocks per driver and tenure curves."""
    from optplan.estimate.workflow import estimate_retention_files

    progress_to_stderr(quiet)
    for line in estimate_retention_files(activity, out, gap=gap, observed_until=observed_until, n_boot=n_boot, seed=seed,
                                         show_progress=not quiet, date_format=date_format):
        click.echo(line)


@click.command("generate-logs")
@click.option("--applicants", "n_applicants", type=click.IntRange(min=1, max=10_000_000), default=5000, show_default=True)
@click.option("--drivers", "n_drivers", type=click.IntRange(min=1, max=10_000_000), default=2000, show_default=True)
@click.option("--depots", type=click.IntRange(min=1, max=10_000), default=5, show_default=True)
@click.option("--weeks", type=click.IntRange(min=4), default=52, show_default=True)
@click.option("--censored-share", type=click.FloatRange(min=0, max=0.9, min_open=True), default=0.3, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--start", type=click.DateTime(formats=["%Y-%m-%d"]), default="2026-01-05", show_default=True,
              help="A date in the logs' first week (YYYY-MM-DD).")
@click.option("--out", "out", type=click.Path(path_type=Path), required=True)
@guarded
def generate_logs(n_applicants, n_drivers, depots, weeks, censored_share, seed, start, out):
    """Write synthetic applicant and activity logs from known parameters, with the truth."""

    from optplan.estimate.synthetic import generate_activity_log, generate_applicant_log
    from optplan.io.atomic import json_text, write_files

    apps, truth, observed = generate_applicant_log(n_applicants, seed=seed, depots=depots, censored_share=censored_share,
                                                   weeks=weeks, start=start.date())
    act, atruth = generate_activity_log(n_drivers, seed=seed, depots=depots, weeks=weeks, start=start.date())
    truth_json = {
        "observed_until": str(observed),
        "conversion": truth.conversion, "mean_weeks_to_first_block": truth.mean_weeks_to_first_block,
        "kernel": {c: [float(x) for x in k] for c, k in truth.kernel.items()},
        "retention": atruth.retention, "blocks_per_driver": atruth.blocks_per_driver,
    }
    write_files(out, {"applicants.csv": apps.to_csv(index=False, lineterminator="\n"),
                      "activity.csv": act.to_csv(index=False, lineterminator="\n"),
                      "truth.json": json_text(truth_json, default=float)})
    click.echo(f"wrote {len(apps)} applicants, {act['driver_id'].nunique()} drivers and the true parameters to {out}")


@click.command("build-instance")
@click.option("--yield", "yield_csv", type=click.Path(path_type=Path, exists=True), required=True,
              help="yield.csv from `optplan estimate funnel`.")
@click.option("--retention", "retention_csv", type=click.Path(path_type=Path, exists=True), required=True,
              help="retention.csv from `optplan estimate retention`.")
@click.option("--depots", "depots_csv", type=click.Path(path_type=Path, exists=True), required=True,
              help="depot, region[, onboarding_cap][, active_drivers].")
@click.option("--channels", "channels_csv", type=click.Path(path_type=Path, exists=True), required=True,
              help="channel, cost_per_applicant[, applicant_cap].")
@click.option("--demand", "demand_csv", type=click.Path(path_type=Path, exists=True), required=True)
@click.option("--scenarios", "scenarios_csv", type=click.Path(path_type=Path, exists=True), required=True)
@click.option("--settings", "settings_yaml", type=click.Path(path_type=Path, exists=True), required=True,
              help="YAML with name, horizon, recourse, penalties and budgets (as in instance.yaml).")
@click.option("--pipeline", "pipeline_csv", type=click.Path(path_type=Path, exists=True), default=None)
@click.option("--incentives", "incentives_csv", type=click.Path(path_type=Path, exists=True), default=None)
@click.option("--supply", "supply_csv", type=click.Path(path_type=Path, exists=True), default=None,
              help="supply_season.csv from `optplan estimate retention`: driver supply by week of year (supply.csv).")
@click.option("--bonuses", "bonuses_csv", type=click.Path(path_type=Path, exists=True), default=None,
              help="bonus_response.csv from `optplan estimate funnel` on a log with a bonus column (or a bonuses.csv): "
                   "the sign-on bonus menu (bonuses.csv).")
@click.option("--out", "out", type=click.Path(path_type=Path), required=True)
@guarded
def build_instance_cmd(yield_csv, retention_csv, depots_csv, channels_csv, demand_csv, scenarios_csv, settings_yaml,
                       pipeline_csv, incentives_csv, supply_csv, bonuses_csv, out):
    """Assemble an instance from estimated parameters, demand scenarios and settings."""
    from optplan.estimate.workflow import build_instance

    notes: list[str] = []
    inst = build_instance(yield_csv, retention_csv, depots_csv, channels_csv, demand_csv, scenarios_csv, settings_yaml,
                          out, pipeline_csv, incentives_csv, notes=notes, supply_csv=supply_csv, bonuses_csv=bonuses_csv)
    for note in notes:
        click.echo(f"note: {note}")
    click.echo(f"wrote {inst.summary()} to {out}")


@click.command()
@click.option("--depots", type=click.IntRange(min=1, max=10_000), default=5, show_default=True)
@click.option("--weeks", type=click.IntRange(min=1, max=520), default=12, show_default=True)
@click.option("--scenarios", type=click.IntRange(min=1, max=1_000), default=10, show_default=True)
@click.option("--channels", type=click.IntRange(min=1, max=100), default=3, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--budget-tightness", type=click.FloatRange(min=0, max=1_000), default=1.0, show_default=True,
              help="Total budget as a share of the rough cost of keeping drivers at mean demand (below ~1 it binds).")
@click.option("--name", default=None, help="Instance name (default: synthetic_DxTxS_seedK).")
@click.option("--countries", default=None, metavar="US,DE,...",
              help="Several countries: depots split over them, each with its holiday peaks, currency and exchange "
                   "rate (the money of each in its own currency; USD reports). Known: US, CA, MX, GB, DE, FR, ES, NL.")
@click.option("--periods", default=None, metavar="long-lead|COUNTxWEEKS,...",
              help="Long-lead periods: 'long-lead' (weekly for 13 weeks, 4-4-5 months to week 52, then 13-week "
                   "quarters) or runs such as 13x1,9x4,8x13 adding up to --weeks; demand stays weekly, so each period's "
                   "recourse is settled week by week (docs/formulation.md, \"Long-lead periods\").")
@click.option("--out", "out", type=click.Path(path_type=Path), required=True, help="Folder to write the instance to.")
@guarded
def generate(depots, weeks, scenarios, channels, seed, budget_tightness, name, countries, periods, out: Path) -> None:
    """Write a valid, realistic synthetic instance of any size."""
    from optplan import generate_instance
    from optplan.errors import OptionError
    from optplan.io.periods import in_periods, parse_periods

    if name is not None and not 1 <= len(name) <= 200:
        raise OptionError("--name", "an instance name of 1 to 200 characters", f"{len(name)} characters")
    codes = None if countries is None else tuple(c.strip().upper() for c in countries.split(",") if c.strip())
    runs = None if periods is None else parse_periods(periods, weeks)
    try:
        inst = generate_instance(depots=depots, weeks=weeks, scenarios=scenarios, channels=channels, seed=seed,
                                 budget_tightness=budget_tightness, name=name, countries=codes)
    except ValueError as exc:
        if not str(exc).startswith("countries: "):
            raise
        raise OptionError("--countries", str(exc).split(": ", 1)[1].split("; got")[0], countries) from None
    if runs is not None:
        inst = in_periods(inst, runs)
    inst.write(out)
    click.echo(f"wrote {inst.summary()} to {out}")


@click.command()
@click.option("--out", "out", type=click.Path(path_type=Path), default=None, help="File to write (default: stdout).")
@click.option("--markdown", is_flag=True, help="The field tables of docs/instance-format.md instead.")
@guarded
def schema(out: Path | None, markdown: bool) -> None:
    """Print the JSON Schema of the instance format (generated from the validator's models)."""
    from optplan.io.atomic import atomic_write_text
    from optplan.io.schema import json_schema, markdown_tables

    text = markdown_tables() + "\n" if markdown else json.dumps(json_schema(), indent=2) + "\n"
    if out is None:
        click.echo(text, nl=False)
    else:
        atomic_write_text(out, text)
        click.echo(f"wrote {out}")


@click.command()
@click.argument("instance", type=click.Path(path_type=Path))
@click.option("--depot", required=True, help="Depot id (as in depots.csv).")
@click.option("--out", "out", type=click.Path(path_type=Path), required=True, help="Folder for policy.csv and policy.svg.")
@click.option("--grid", "grid_points", type=click.IntRange(min=2, max=100_000), default=None,
              help="DP states per week (default: adaptive).")
@guarded
def policy(instance: Path, depot: str, out: Path, grid_points) -> None:
    """The DP's recruiting rule for one depot: new drivers (and applicants per channel) to
    bring in for each arrival week as a function of the projected driver count."""

    import optplan
    from optplan.errors import OptionError
    from optplan.evaluation.policy import depot_policy, policy_plot
    from optplan.io.atomic import csv_text, write_files
    from optplan.solvers.dp import DPOptions

    inst = optplan.load_instance(instance)
    data = inst.model_data()
    if depot not in data.depots:
        raise OptionError("--depot", f"one of {', '.join(data.depots)}", depot)
    click.echo(f"[optplan] policy: solving the DP of depot {depot} over {data.n_weeks} weeks", err=True)
    table = depot_policy(data, depot, DPOptions(grid_points=grid_points))
    out.mkdir(parents=True, exist_ok=True)
    policy_plot(table, out / "policy.svg", data.currency)
    write_files(out, {"policy.csv": csv_text(table.table)})
    click.echo(f"wrote the DP rule of depot {depot} ({len(table.table)} rows) to {out / 'policy.csv'} and policy.svg")


@click.command()
@click.argument("instance", type=click.Path(path_type=Path))
@click.option("--out", "out", type=click.Path(path_type=Path), required=True, help="Folder for simulation.csv and paths.csv.")
@click.option("--paths", "n_paths", type=click.IntRange(min=2, max=100_000), default=200, show_default=True, help="Fresh demand paths.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--noise", "sigma", type=click.FloatRange(min=0, max=MAX_NOISE_SD), default=0.05, show_default=True,
              help="Log-sd of the weekly demand noise on top of a drawn scenario (optplan.evaluation.sampling, the one "
                   "out-of-sample definition; report uses the same).")
@click.option("--noise-ar", type=click.FloatRange(min=0, max=1, max_open=True), default=0.5, show_default=True,
              help="Week-to-week correlation of that noise.")
@click.option("--drivers", "drivers", type=click.Choice(["random", "expected"]), default="random", show_default=True,
              help="random: whole drivers (binomial stayers, Poisson arrivals), so the reacting policies see luck; "
                   "expected: the model's expected counts (as report scores plans).")
@click.option("--grid", "grid_points", type=click.IntRange(min=2, max=100_000), default=None,
              help="DP states per week (default: adaptive).")
@click.option("--policies", default="static,dp,rolling,rolling_bayes,rolling_reforecast,basestock", show_default=True,
              help="Comma-separated, of: static (the LP plan as it stands), dp (the DP rule), rolling (the LP "
                   "re-solved on each path's realised state), rolling_mean (the mean-demand plan re-solved so), "
                   "rolling_bayes (rolling with the scenarios weighted by the demand seen so far on the path), "
                   "rolling_reforecast (rolling_bayes until the demand seen shows a new level no scenario holds, then "
                   "the scenarios re-levelled by each depot's recent demand), "
                   "basestock (an order-up-to rule per depot tuned on separate paths), basestock_bayes (the same rule "
                   "on the weighted scenarios' mean), myopic (the old strawman).")
@click.option("--replan-every", type=click.IntRange(min=1), default=1, show_default=True,
              help="Weeks between re-solves of the rolling policies.")
@click.option("--tune-paths", type=click.IntRange(min=2, max=100_000), default=200, show_default=True,
              help="Separate paths on which the base-stock levels are chosen.")
@click.option("--worlds", default=None, metavar="WORLD,...",
              help="Stress worlds, each scored with every policy on the same paths: nominal, noise:K (noise K times "
                   "as wide), fat:K (fat tails), shift:P@W[:D1+D2] (demand x (1 + P) from week W at every other depot "
                   "or those named), probabilities:C (scenario probabilities drawn around the instance's), "
                   "history:PATH (real forecast errors of a weekly history CSV in place of the noise), or all (the "
                   "first five; docs/replan.md, 'Stress worlds'). The policies keep planning with the instance.")
@click.option("--reference", default=None,
              help="With --worlds: the policy every other is compared with, path by path (default: basestock when "
                   "simulated, else static).")
@guarded
def simulate(instance: Path, out: Path, n_paths, seed, sigma, noise_ar, drivers, grid_points, policies, replan_every,
             tune_paths, worlds, reference) -> None:
    """Compare policies on fresh demand paths (the LP plan as it stands, the DP rule, the LP
    re-planned on the realised state, the mean-demand plan re-planned, a tuned base-stock
    rule) with common random numbers; 95% CIs and paired differences to the static plan.
    With --worlds, on each stress world too, and which policy holds up best across them."""

    import optplan
    from optplan.errors import OptionError
    from optplan.evaluation.policy import POLICIES, summarize
    from optplan.evaluation.policy import simulate as run_simulation
    from optplan.evaluation.sampling import OutOfSample
    from optplan.io.atomic import csv_text, json_text, write_files
    from optplan.solvers.dp import DPOptions

    chosen = tuple(p.strip() for p in policies.split(",") if p.strip())
    unknown = [p for p in chosen if p not in POLICIES]
    if not chosen or unknown:
        raise OptionError("--policies", f"a comma-separated list of {', '.join(POLICIES)}", policies.strip() or "nothing")
    stress = None
    if worlds is not None:
        from optplan.evaluation.worlds import parse_worlds

        stress = parse_worlds(worlds)
        reference = reference or ("basestock" if "basestock" in chosen else "static")
        if reference not in chosen:
            raise OptionError("--reference", f"one of the simulated policies ({', '.join(chosen)})", reference)
    elif reference is not None:
        raise OptionError("--reference", "--worlds with it (the reference is for comparing across worlds)", reference)
    inst = optplan.load_instance(instance)
    data = inst.model_data()
    if stress is not None:  # a world the instance cannot have is refused before the solves
        from optplan.evaluation.worlds import check_worlds

        check_worlds(data, stress)
    click.echo("[optplan] simulate: solving the static plan (HiGHS), then the DP rule", err=True)
    plan = optplan.solve(inst, engine="highs")
    sampler = OutOfSample(paths=n_paths, seed=seed, noise_sd=sigma, noise_ar=noise_ar, random_drivers=drivers == "random")
    click.echo(f"[optplan] simulate: sampling {sampler.describe()}", err=True)
    if data.has_country_budgets and "dp" in chosen:
        click.secho("warning: the dp policy is left out: the DP holds each depot to one capped budget group and this "
                    "instance has country budgets", fg="yellow", err=True)
        chosen = tuple(p for p in chosen if p != "dp")
    world_paths = None
    if stress is not None:
        from optplan.evaluation.worlds import sample_world

        world_paths = {w.name: sample_world(data, w, n_paths, seed, sigma, noise_ar) for w in stress}
    paths = run_simulation(data, plan.decisions, n_paths=n_paths, seed=seed, sigma=sigma, noise_ar=noise_ar,
                           options=DPOptions(grid_points=grid_points), show_progress=True,
                           stochastic_drivers=sampler.random_drivers,
                           policies=chosen,
                           replan_every=replan_every, tune_paths=tune_paths, worlds=world_paths)
    if stress is not None:
        _write_worlds(out, paths, stress, reference, sampler, data.currency, n_paths)
        return
    summary = summarize(paths, data.currency)
    files = {}
    for name, df in (("simulation.csv", summary), ("paths.csv", paths)):
        files[name] = csv_text(df)
    files["sampling.json"] = json_text(sampler.to_dict())
    write_files(out, files)
    from optplan.explain.presentation import policy_words

    click.echo(f"expected cost of each policy over the same {n_paths:,} simulated demand paths (out of sample; the "
               f"plan's own {len(data.scenarios)} scenarios give {plan.cost['total']:,.2f} {data.currency}, in-sample), "
               "with 95 % intervals; 'vs static' is the paired difference to following today's plan:")
    for row in summary.itertuples(index=False):
        click.echo(f"{row.policy:15s} expected cost {row.cost:12,.2f} +- {row.cost_ci95:10,.2f} {data.currency}; "
                   f"vs static {row.cost_minus_static:+12,.2f} +- {row.cost_minus_static_ci95:10,.2f}; "
                   f"unserved {row.unserved_blocks:8,.1f} idle {row.idle_blocks:8,.1f} blocks")
    click.echo("the policies:")
    for name in summary["policy"]:
        click.echo(f"  {policy_words(name)}")
    click.echo(f"sampled: {sampler.describe()}")
    click.echo(f"wrote simulation.csv, paths.csv and sampling.json to {out}")


def _write_worlds(out: Path, paths, stress, reference: str, sampler, currency: str, n_paths: int) -> None:
    """simulate --worlds: simulation.csv (per world and policy), paths.csv, sampling.json, and the lines."""
    from optplan.evaluation.policy import most_robust, summarize_worlds
    from optplan.explain.presentation import policy_words
    from optplan.io.atomic import csv_text, json_text, write_files

    table = summarize_worlds(paths, currency, reference)
    best, regret = most_robust(table)
    write_files(out, {"simulation.csv": csv_text(table), "paths.csv": csv_text(paths),
                      "sampling.json": json_text({**sampler.to_dict(), "reference": reference, "most_robust": best,
                                                  "worst_regret": regret,
                                                  "worlds": [{"name": w.name, "description": w.describe()}
                                                             for w in stress]})})
    click.echo(f"expected cost of each policy in each world over the same {n_paths:,} paths (out of sample), with 95 % "
               f"intervals; 'vs {reference}' is the paired difference, path by path; regret: above the world's best "
               "policy. The policies plan with the instance's scenarios and noise in every world.")
    for w in stress:
        click.echo(f"world {w.name}: {w.describe()}")
        for row in table[table["world"] == w.name].itertuples(index=False):
            click.echo(f"  {row.policy:15s} {row.cost:12,.2f} +- {row.cost_ci95:10,.2f} {currency}; vs {reference} "
                       f"{row.cost_minus_reference:+12,.2f} +- {row.cost_minus_reference_ci95:10,.2f}; "
                       f"regret {row.regret:+.1%}")
    click.echo(f"most robust over these worlds: {best} (its worst regret {regret:+.1%}; the smallest worst regret of "
               "the policies)")
    click.echo("the policies:")
    for name in table["policy"].unique():
        click.echo(f"  {policy_words(name)}")
    click.echo(f"sampled: {sampler.describe()}; the worlds change the demand only")
    click.echo(f"wrote simulation.csv, paths.csv and sampling.json to {out}")


@click.command()
@click.argument("instance", type=click.Path(path_type=Path))
@click.option("--plan", "plan_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="A plan folder of this instance (optplan solve --out): its applicants.csv and incentives.csv are "
                   "the plan to order from; without it the instance is solved first.")
@click.option("--weeks", type=click.IntRange(min=1, max=52), default=2, show_default=True,
              help="Weeks of orders, from week 1.")
@click.option("--out", "out", type=click.Path(path_type=Path), required=True,
              help="Folder for orders.csv, incentives.csv, by_channel/CHANNEL.csv and orders.json.")
@click.option("--engine", type=EngineChoice(), default="auto", show_default=True,
              help="The engine of the plan when --plan is not given (the orders are a HiGHS MIP).")
@click.option("--time-limit", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds for the whole command (loading and any plan included).")
@click.option("--quiet", is_flag=True, help="No progress lines on stderr.")
@set_option
@guarded
def orders(instance: Path, plan_dir: Path | None, weeks: int, out: Path, engine, time_limit, quiet, sets,
           decisions) -> None:
    """Whole orders for the first --weeks weeks of a plan of INSTANCE: applicants per depot,
    channel and week, and incentive spend in whole currency units, within every budget, at
    the least extra expected cost (the MIP on those weeks with the rest of the plan fixed).

    Prints what rounding costs; writes orders.csv, incentives.csv, a CSV per channel
    (by_channel/) for the teams and systems that post jobs and buy ads, and orders.json.
    Exit statuses as for solve (4: no orders within the time limit)."""
    import optplan
    from optplan.planning.orders import make_orders, read_plan
    from optplan.solvers import Deadline, SolveOptions

    deadline = Deadline(time_limit)
    progress_to_stderr(quiet)
    inst = load_instance_with(instance, sets, decisions)
    click.echo(f"instance {inst.summary()}")
    data = inst.model_data()
    if plan_dir is not None:
        plan = read_plan(plan_dir, data)
        click.echo(f"plan: {plan_dir}")
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            solved = optplan.solve(inst, engine=engine, deadline=deadline, time_limit=time_limit, override_costs="none")
        click.echo(f"plan: solved now ({solved.status.describe()}, {solved.engine})")
        data, plan = solved.data, solved.decisions
    result = make_orders(data, plan, inst.manifest.horizon.start_date, min(weeks, data.n_weeks), deadline=deadline,
                         options=SolveOptions(time_limit=time_limit))
    paths = result.write(out)
    flush_progress()
    click.echo(result.text().strip())
    click.echo(f"wrote {len(paths)} files to {out}")


@click.command()
@click.argument("instance", type=click.Path(path_type=Path))
@click.option("--state", "state", type=click.Path(path_type=Path), required=True,
              help="State folder (state.yaml, drivers.csv[, recruited.csv, pipeline.csv]): what is known at the start "
                   "of the week to plan (docs/replan.md). `optplan state` writes a template.")
@click.option("--out", "out", type=click.Path(path_type=Path), required=True,
              help="Folder for this_week.csv, the plan of the remaining weeks and that instance (instance/).")
@click.option("--engine", type=EngineChoice(), default="auto", show_default=True, help="As for solve.")
@click.option("--time-limit", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds for the whole command (loading included); as for solve.")
@click.option("--reforecast/--no-reforecast", default=True, show_default=True,
              help="When the demand seen (state demand_seen.csv) shows a new level no scenario holds, plan the weeks "
                   "ahead on every scenario times each depot's level over its last 4 weeks seen, with the instance's "
                   "probabilities; otherwise the scenarios weighted by the demand seen (simulate's rolling_reforecast, "
                   "the most robust policy of the stress-world study: docs/replan.md, 'Stress worlds'). "
                   "--no-reforecast: always the weighted scenarios (rolling_bayes).")
@click.option("--quiet", is_flag=True, help="No progress lines on stderr.")
@set_option
@guarded
def replan(instance: Path, state: Path, out: Path, engine, time_limit, reforecast, quiet, sets, decisions) -> None:
    """Re-plan INSTANCE from --state: solve weeks k..T again from the drivers, recruits and
    spend actually seen, and say what to do in week k.

    The window shrinks (the horizon end stays); week 1 of the written plan is week k of the
    instance. Exit statuses as for solve."""
    from optplan.planning.replan import load_state
    from optplan.planning.replan import replan as run_replan
    from optplan.solvers import Deadline

    deadline = Deadline(time_limit)
    progress_to_stderr(quiet)
    inst = load_instance_with(instance, sets, decisions)
    st = load_state(state, inst)
    click.echo(f"instance {inst.summary()}; re-planning weeks {st.week}..{inst.n_weeks} from {state}")
    if st.demand_seen is not None and len(st.demand_seen):
        import numpy as np

        from optplan.planning.replan import scenario_probabilities

        notes: list[str] = []
        prob = scenario_probabilities(inst, st, notes)
        for note in notes:
            click.secho(f"warning: {note}", fg="yellow", err=True)
        top = np.argsort(-prob, kind="stable")[:5]
        from optplan.planning.replan import reforecast_levels

        levels = reforecast_levels(inst, st) if reforecast else None
        if levels is None:
            click.echo(f"scenarios given the demand seen in weeks before {st.week} (noise sd {st.noise_sd:g}, AR "
                       f"{st.noise_ar:g}): " + ", ".join(f"{inst.scenarios[i]} {prob[i]:.3f}" for i in top)
                       + (f" (of {len(prob)}; was {', '.join(f'{p:.3f}' for p in inst.model_data().probability[top])})"))
        else:
            click.echo("re-forecast (no scenario explains the demand seen, and it shows a new level): the weeks ahead "
                       "are every scenario times "
                       "each depot's level over its last weeks seen, with the instance's probabilities: "
                       + ", ".join(f"{d} x{v:.3f}" for d, v in levels.items()))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        result = run_replan(inst, st, reforecast=reforecast, engine=engine, deadline=deadline, time_limit=time_limit)
    result.write(out)
    week = result.this_week
    cur = inst.currency
    if week.empty:
        click.echo(f"week {st.week}: recruit nobody and spend nothing on incentives")
    for row in week.itertuples(index=False):
        what = (f"recruit {row.applicants:,.1f} applicants through {row.channel}" if row.action == "recruit"
                else "spend on incentives")
        click.echo(f"week {st.week}, depot {row.depot}: {what} ({row.spend:,.2f} {cur})")
    flush_progress()
    click.echo(result.plan.text_summary())
    click.echo(f"wrote this_week.csv, the plan of weeks {st.week}..{inst.n_weeks} and instance/ to {out}")
    for w in caught:
        if "not proven optimal" not in str(w.message):
            click.secho(f"warning: {w.message}", fg="yellow", err=True)
    if not result.plan.status.complete:
        click.secho(f"warning: {result.plan.status.describe()} (engine {result.plan.engine})", fg="yellow", err=True)
        sys.exit(EXIT_NOT_OPTIMAL)


@click.command("state")
@click.argument("instance", type=click.Path(path_type=Path))
@click.option("--week", type=click.IntRange(min=1), required=True, help="The week the state is for (1..weeks).")
@click.option("--out", "out", type=click.Path(path_type=Path), required=True, help="Folder for the state files.")
@click.option("--applicants", "applicants", type=click.Path(path_type=Path), default=None,
              help="Applicant log (as `optplan estimate funnel` reads it): the state's recruits and pipeline from it.")
@click.option("--activity", "activity", type=click.Path(path_type=Path), default=None,
              help="Driver activity log (driver_id, depot, week, blocks): the state's drivers from it.")
@click.option("--spend", "spend", type=click.Path(path_type=Path), default=None,
              help="Spend table (depot, week, spend in the instance currency): the spend so far from it; "
                   "without it, the log's applicants at each channel's cost, no incentives.")
@click.option("--date-format", default=None, metavar="FORMAT",
              help="How the logs' dates are written, e.g. %d/%m/%Y (default: ISO, or as each column shows).")
@click.option("--quiet", is_flag=True, help="No progress lines on stderr.")
@set_option
@guarded
def state_template(instance: Path, week: int, out: Path, applicants, activity, spend, date_format, quiet, sets,
                   decisions) -> None:
    """Write the state at the start of --week. With --applicants and --activity: built from the
    logs (drivers active by their silence since their last block, applicants still in the funnel with their expected arrivals by
    the instance's yield kernel, spend so far), saying what the logs did not hold. Without: the
    state INSTANCE's optimal plan expects, a template to overwrite with what happened. Then
    `optplan replan INSTANCE --state OUT`."""
    import optplan
    from optplan.errors import OptionError
    from optplan.planning.replan import expected_state, initial_state

    progress_to_stderr(quiet)
    inst = load_instance_with(instance, sets, decisions)
    if week > inst.n_weeks:  # before the solve
        raise OptionError("--week", f"a week in 1..{inst.n_weeks}", week)
    if (applicants is None) != (activity is None):
        raise OptionError("--applicants/--activity", "both logs (or neither, for the plan's expected state)",
                          f"only {'--applicants' if activity is None else '--activity'}")
    if spend is not None and applicants is None:
        raise OptionError("--spend", "--applicants and --activity with it (the state from the logs)", "--spend alone")

    def expected():
        return initial_state(inst) if week == 1 else expected_state(inst, optplan.solve(inst), week)

    if applicants is None:
        expected().write(out)
        click.echo(f"wrote the expected state at the start of week {week} to {out} (state.yaml, drivers.csv, "
                   "recruited.csv)")
        return
    from optplan.planning.logstate import write_state_from_logs

    result = write_state_from_logs(inst, week, applicants, activity, spend, out, fallback=expected,
                                   date_format=date_format)
    c = result.counts
    drivers = sum(c["drivers_active"].values())
    click.echo(f"week {week}: {drivers:,.1f} active drivers expected at {len(c['drivers_active'])} depots "
               f"({sum(c['drivers_worked_last_week'].values()):,} worked in week {week - 1}); "
               f"{c['applicants_in_funnel']:,} applicants still in the funnel, {c['expected_arrivals']:,.1f} expected "
               f"to start in weeks {week}..{inst.n_weeks}; spend so far {c['spend_to_date']:,.2f} {c['currency']}")
    for note in result.notes:
        click.secho(f"note: {note}", fg="yellow", err=True)
    click.echo(f"wrote the state at the start of week {week} from the logs to {out} (state.yaml, drivers.csv, "
               "recruited.csv, pipeline.csv, from_logs.json)")


@click.command("pipeline")
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Run every step, even those whose inputs did not change.")
@click.option("--out", "out", type=click.Path(path_type=Path), default=None,
              help="Output folder (default: the config's out, relative to the config file).")
@click.option("--quiet", is_flag=True, help="No progress lines on stderr.")
@click.option("--check", is_flag=True, help="Check the config and every input it names as a run would before its "
                                            "first write, print the steps it would take, write nothing.")
@guarded
def pipeline(config: Path, force: bool, out: Path | None, quiet: bool, check: bool) -> None:
    """Run CONFIG (YAML) from raw data to report: estimate the funnel and retention, forecast
    demand, build the instance, solve, report; each step into its own folder, with
    pipeline.json recording what it read and wrote. A re-run skips the steps whose inputs and
    settings did not change (docs/pipeline.md)."""
    from optplan.planning.pipeline import check_pipeline, run_pipeline

    if check:
        for line in check_pipeline(config, out=out):
            click.echo(line)
        return
    progress_to_stderr(quiet)
    result = run_pipeline(config, say=(lambda line: None) if quiet else click.echo, force=force, out=out, quiet=quiet)
    click.echo(f"ran {', '.join(result.ran) or 'nothing'}; skipped {', '.join(result.skipped) or 'nothing'}; "
               f"outputs in {result.out} (manifest: {result.out / 'pipeline.json'})")


@click.command("monitor")
@click.argument("instance", type=click.Path(path_type=Path))
@click.option("--demand", "demand", type=click.Path(path_type=Path), required=True,
              help="Demand seen: depot, week (the instance's 1..T), blocks (blocks/week).")
@click.option("--quantiles", "quantiles", type=click.Path(path_type=Path), default=None,
              help="The forecast's quantiles.csv (depot, week, p10, p50, p90); default: the instance's scenarios.")
@click.option("--history", "history", type=click.Path(path_type=Path), default=None,
              help="The demand history the forecast was made from (as optplan forecast reads it): the MASE scale.")
@click.option("--plan", "plan_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="A plan folder of this instance: recruiting against its applicants and new drivers.")
@click.option("--applicants", "applicants", type=click.Path(path_type=Path), default=None,
              help="Applicant log: recruiting against the plan, conversion against the instance's kernel.")
@click.option("--band", default="0.6,0.95", show_default=True,
              help="LOW,HIGH: the pooled P10-P90 coverage of the last --band-weeks weeks outside it (and "
                   "significantly away from 0.8) is an alert.")
@click.option("--band-weeks", type=click.IntRange(min=1), default=3, show_default=True,
              help="Weeks pooled for the coverage alert, ending with the last week seen.")
@click.option("--mase-max", type=click.FloatRange(min=0, min_open=True), default=1.5, show_default=True,
              help="A depot's MASE above this is an alert (with --history).")
@click.option("--wape-max", type=click.FloatRange(min=0, min_open=True), default=0.25, show_default=True,
              help="A depot's WAPE above this is an alert (without --history).")
@click.option("--out", "out", type=click.Path(path_type=Path), required=True,
              help="Folder for monitor.txt, monitor.json, alerts.csv and the tables.")
@click.option("--date-format", default=None, metavar="FORMAT",
              help="How the logs' dates are written, e.g. %d/%m/%Y (default: ISO, or as each column shows).")
@set_option
@guarded
def monitor_cmd(instance: Path, demand, quantiles, history, plan_dir, applicants, band, band_weeks, mase_max,
                wape_max, out, date_format, sets, decisions) -> None:
    """Watch forecasts, recruiting and conversion: each week seen against the forecast's
    P10/P50/P90 (coverage, WAPE, MASE by depot and overall), applicants and new drivers against
    the plan, conversion against the estimate; alerts when coverage leaves its band for
    --band-weeks weeks, a depot's error passes its threshold, conversion leaves its interval
    or recruiting falls behind (docs/replan.md, "Monitoring")."""
    from optplan.errors import OptionError
    from optplan.planning.monitor import Thresholds, monitor_files

    try:
        low, high = (float(x) for x in band.split(","))
        if not 0 <= low < high <= 1:
            raise ValueError
    except ValueError:
        raise OptionError("--band", "LOW,HIGH with 0 <= LOW < HIGH <= 1", band) from None
    inst = load_instance_with(instance, sets, decisions)
    th = Thresholds(band_low=low, band_high=high, band_weeks=band_weeks, mase_max=mase_max, wape_max=wape_max)
    result = monitor_files(inst, demand, out, quantiles, history, plan_dir, applicants, th, date_format)
    click.echo(result.text())
    click.echo(f"wrote monitor.txt, monitor.json, alerts.csv and the tables to {out}")
