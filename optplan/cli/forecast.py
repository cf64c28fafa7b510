"""The ``optplan forecast`` and ``optplan backtest`` commands.

Plain click commands, registered by ``optplan/cli/__init__.py``; errors go through
``optplan.cli.common.guarded`` like every other command. Heavy libraries load only when a
command runs.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from optplan.cli.common import guarded

MODELS = ("global", "ets", "seasonal_naive", "combined", "rnn")  # rnn: with the deep extra (PyTorch)


def _history_options(func):
    """Options shared by both commands: the history's columns, units and repairs."""
    options = [
        click.option("--money-per-block", "--usd-per-block", "money_per_block",
                     type=click.FloatRange(min=0, min_open=True), default=None,
                     help="Demand is money: this many units of the history's currency make one block of work "
                          "(Walmart sales in USD: 2000). --usd-per-block is the old name of the same option."),
        click.option("--unit-factor", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="Blocks per demand unit: blocks = demand x factor. Default 1: demand is already in blocks."),
        click.option("--depot-col", default=None, help="Depot column (default: detect depot/store/...)."),
        click.option("--date-col", default=None, help="Week date column (default: detect week_start/week/date/...)."),
        click.option("--date-format", default=None, metavar="FORMAT",
                     help="How the dates are written, e.g. %d-%m-%Y (default: ISO, or the order of day and month the "
                          "column shows; an ambiguous column is refused with an example)."),
        click.option("--demand-col", default=None, help="Demand column (default: detect demand/blocks/Weekly_Sales/...)."),
        click.option("--holiday-col", default=None, help="0/1 holiday flag column (default: detect holiday/Holiday_Flag)."),
        click.option("--no-holiday", is_flag=True, help="Ignore any holiday column."),
        click.option("--country", default=None, metavar="CODE|DEPOT=CODE,...",
                     help="Holiday calendar the forecasts align on (holidays library, ISO 3166): one code for every "
                          "depot, or depot=code pairs (others: US). Default: US."),
        click.option("--week-date", type=click.Choice(["auto", "start", "end"]), default="auto", show_default=True,
                     help="The date marks the first or the last day of the week (auto: 'end' for the Walmart "
                          "layout Date/Weekly_Sales, else 'start')."),
        click.option("--fill-gaps", type=click.IntRange(min=0), default=2, show_default=True,
                     help="Fill runs of at most this many missing/empty weeks by linear interpolation (reported); "
                          "longer runs are errors."),
        click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Processes for the statsforecast models."),
        click.option("--boosting-rounds", type=click.IntRange(min=10), default=200, show_default=True,
                     help="Boosting iterations of each global-model fit (fewer: faster, coarser)."),
        click.option("--quiet", is_flag=True, help="No progress lines on stderr."),
    ]
    for opt in reversed(options):
        func = opt(func)
    return func


def _read_options(money_per_block, unit_factor, depot_col, date_col, demand_col, holiday_col, no_holiday, week_date, fill_gaps,
                  country=None, date_format=None):
    from optplan.forecast.workflow import unit_factor_from

    return {"unit_factor": unit_factor_from(money_per_block, unit_factor), "depot_col": depot_col, "date_col": date_col,
            "demand_col": demand_col, "holiday_col": holiday_col, "use_holiday": not no_holiday, "week_date": week_date,
            "fill_gaps": fill_gaps, "country": parse_country(country), "date_format": date_format}


def parse_country(text: str | None):
    """--country: None, one code ("DE"), or depot=code pairs ({"D001": "US", "D002": "DE"})."""
    from optplan.errors import OptionError

    if text is None or "=" not in text:
        return text
    out = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        depot, sep, code = part.partition("=")
        if not sep or not depot.strip() or not code.strip():
            raise OptionError("--country", "a code, or depot=code pairs separated by commas", part)
        out[depot.strip()] = code.strip()
    return out


def _progress(quiet: bool):
    start = time.perf_counter()

    def say(msg: str) -> None:
        click.echo(f"[forecast {time.perf_counter() - start:6.1f}s] {msg}", err=True)

    return None if quiet else say


@click.command("forecast")
@click.argument("history", type=click.Path(path_type=Path))
@click.option("--out", "out", type=click.Path(path_type=Path), required=True, help="Folder for the forecast files.")
@click.option("--horizon", type=click.IntRange(min=1), default=13, show_default=True,
              help="Periods ahead: weeks (1-52; up to 156 with --periods), or months (1-36) / quarters (1-12) with "
                   "--resolution.")
@click.option("--resolution", type=click.Choice(["week", "month", "quarter"]), default="week", show_default=True,
              help="week: quantiles and demand scenarios for an instance; month/quarter: long-lead quantiles only.")
@click.option("--scenarios", "n_scenarios", type=click.IntRange(min=1, max=1_000), default=20, show_default=True,
              help="Demand scenarios S written to demand.csv/scenarios.csv.")
@click.option("--paths", "n_paths", type=click.IntRange(min=10, max=200_000), default=2000, show_default=True,
              help="Joint demand paths sampled before the reduction to S scenarios.")
@click.option("--model", type=click.Choice(MODELS), default="global", show_default=True,
              help="Model behind the quantiles and scenarios (weekly resolution). combined: the global model and "
                   "AutoETS averaged, the weight and interval width chosen by its own backtest on the history's last "
                   "4 origins (about 5x the time of the global model). rnn: EXPERIMENTAL, an LSTM (needs the deep "
                   "extra) less accurate than seasonal naive and AutoETS on the shipped stores' backtest.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the models, the sampling and k-means.")
@click.option("--periods", default=None, metavar="long-lead|COUNTxWEEKS,...",
              help="Demand scenarios over long-lead periods adding up to --horizon weeks (up to 156): 'long-lead' "
                   "(weekly for 13 weeks, 4-4-5 months to week 52, then 13-week quarters) or runs such as "
                   "13x1,9x4,8x13; --model for the first 52 weeks, the long-lead monthly model after.")
@click.option("--no-plots", is_flag=True, help="Skip the fan charts.")
@_history_options
@guarded
def forecast(history, out, horizon, resolution, n_scenarios, n_paths, model, seed, periods, no_plots, money_per_block,
             unit_factor, depot_col, date_col, date_format, demand_col, holiday_col, no_holiday, country, week_date,
             fill_gaps, jobs, boosting_rounds, quiet) -> None:
    """Forecast weekly demand per depot from HISTORY.csv and write demand scenarios for an instance.

    Writes to --out: demand.csv and scenarios.csv (instance format: give them to
    `optplan build-instance --demand ... --scenarios ...`), quantiles.csv (P10..P90,
    blocks/week), fan/<depot>.svg and forecast_summary.json. Example (Walmart sales in USD):

    \b
        optplan forecast walmart.csv --money-per-block 2000 --horizon 13 --scenarios 20 --out fc
    """
    from optplan.errors import OptionError
    from optplan.forecast.models import GlobalConfig
    from optplan.forecast.workflow import forecast_files

    if resolution != "week":  # long-lead output is quantiles only: say so rather than ignore the weekly options
        ctx = click.get_current_context()
        given = [f"--{name}" for name, param in (("scenarios", "n_scenarios"), ("paths", "n_paths"), ("model", "model"))
                 if ctx.get_parameter_source(param) == click.core.ParameterSource.COMMANDLINE]
        if given:
            raise OptionError(", ".join(given), f"no {', '.join(given)} with --resolution {resolution}: long-lead "
                              "forecasts are quantiles only (AutoETS with growth uncertainty); demand scenarios are "
                              "weekly, as instances are (use --resolution week)", f"--resolution {resolution}")
    options = _read_options(money_per_block, unit_factor, depot_col, date_col, demand_col, holiday_col, no_holiday, week_date,
                            fill_gaps, country, date_format)
    say = _progress(quiet)
    lines = forecast_files(history, out, horizon=horizon, n_scenarios=n_scenarios, resolution=resolution, model=model,
                           seed=seed, n_paths=n_paths, n_jobs=jobs, plots=not no_plots, progress=say,
                           config=GlobalConfig(max_iter=boosting_rounds, seed=seed), periods=periods, **options)
    for line in lines:
        click.echo(line)
    if options["unit_factor"] == 1.0 and any(w in lines[0].lower() for w in ("sales", "usd", "revenue")):
        click.secho("note: the demand column looks like money but was read as blocks; for sales at 2,000 currency units "
                    "per block add --money-per-block 2000", fg="yellow", err=True)


def _int_list(ctx, param, value):
    if value is None:
        return None
    try:
        return [int(x) for x in value.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated whole numbers of weeks, got {value!r}") from None


def _model_list(ctx, param, value):
    models = [m.strip() for m in value.split(",") if m.strip()]
    bad = [m for m in models if m not in MODELS]
    if bad or not models:
        raise click.BadParameter(f"expected a comma-separated list of {', '.join(MODELS)}, got {value!r}")
    return models


@click.command("backtest")
@click.argument("history", type=click.Path(path_type=Path))
@click.option("--horizon", type=click.IntRange(min=1, max=52), default=13, show_default=True, help="Weeks ahead.")
@click.option("--step", type=click.IntRange(min=1), default=13, show_default=True, help="Weeks between origins.")
@click.option("--origins", "n_origins", type=click.IntRange(min=1), default=3, show_default=True,
              help="Number of origins; the last forecast ends with the history.")
@click.option("--at", "at", default=None, callback=_int_list,
              help="Origins as weeks of history, comma-separated (instead of --step/--origins), e.g. 104,117,130.")
@click.option("--models", default="global,ets,seasonal_naive", show_default=True, callback=_model_list,
              help="Comma-separated models to compare (rnn: experimental, with the deep extra, PyTorch).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out", type=click.Path(path_type=Path), default=None,
              help="Also write backtest_rows.csv, backtest_by_depot.csv, backtest_overall.csv, backtest_summary.json here.")
@click.option("--overall-only", is_flag=True, help="Print only the overall table.")
@click.option("--backend", type=click.Choice(["serial", "local", "dask"]), default="serial", show_default=True,
              help="Where the fits (origins x models) run: this process, local processes, or Dask (docs/scale.md).")
@click.option("--scheduler", default=None, help="Dask scheduler address for --backend dask (default: a local cluster).")
@click.option("--workers", type=click.IntRange(min=1, max=256), default=None, help="Processes for --backend local or a local Dask cluster.")
@_history_options
@guarded
def backtest(history, horizon, step, n_origins, at, models, seed, out, overall_only, backend, scheduler, workers,
             money_per_block, unit_factor, depot_col, date_col, date_format, demand_col, holiday_col, no_holiday, country,
             week_date, fill_gaps, jobs, boosting_rounds, quiet) -> None:
    """Rolling-origin backtest of the global model and the baselines on HISTORY.csv.

    Prints MASE of the P50 (scaled by the in-sample seasonal-naive error), weighted quantile
    loss and P10-P90 coverage, per depot and overall, side by side for every model."""
    from optplan.forecast.models import GlobalConfig
    from optplan.forecast.workflow import backtest_files, render_backtest

    options = _read_options(money_per_block, unit_factor, depot_col, date_col, demand_col, holiday_col, no_holiday, week_date,
                            fill_gaps, country, date_format)
    from optplan.solvers.backends import get_backend

    t0 = time.perf_counter()
    runner = get_backend(backend, scheduler, workers)
    try:
        result, lines = backtest_files(history, out, horizon=horizon, step=step, n_origins=n_origins, origins=at,
                                       models=models, seed=seed, n_jobs=jobs, progress=_progress(quiet),
                                       config=GlobalConfig(max_iter=boosting_rounds, seed=seed), backend=runner, **options)
    finally:
        runner.close()
    if overall_only:
        lines = render_backtest(result, per_depot=False) + [x for x in lines if x.startswith(("wrote", "repaired"))]
    for line in lines:
        click.echo(line)
    fit = ", ".join(f"{m} {s:.1f}s" for m, s in result.seconds.items())
    click.echo(f"time: {time.perf_counter() - t0:.1f}s ({fit})", err=True)
