"""History CSV -> forecast files, and history CSV -> backtest tables: the path behind the CLI.

forecast_files  weekly: demand.csv + scenarios.csv (instance format), quantiles.csv,
                fan/<depot>.svg, forecast_summary.json;
                monthly/quarterly: quantiles.csv, fan/<depot>.svg, forecast_summary.json
backtest_files  per-depot and overall MASE, wQL and P10-P90 coverage of every model; with an
                output folder also backtest_rows.csv, backtest_by_depot.csv,
                backtest_overall.csv and backtest_summary.json

Everything is rendered in memory first and written atomically, only when all of it
succeeded; the same inputs and seed give byte-identical files (timings are printed, never
written). The history file is only read.
"""

from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd

from formulations.data import period_offsets
from optplan.errors import InstanceError, OptionError, Problem
from optplan.forecast.backtest import backtest, default_origins, demand_noise, margins
from optplan.forecast.calendar import WEEKS_PER_YEAR
from optplan.forecast.dispatch import forecast, min_history_weeks
from optplan.forecast.history import History, read_history
from optplan.forecast.longlead import MAX_PERIODS, long_lead_quantiles, long_lead_weekly_paths, monthly_totals
from optplan.forecast.models import (
    GROWTH_WEEKS,
    LEVELS,
    MAX_HORIZON,
    MODELS,
    OPTIONAL_MODELS,
    GlobalConfig,
    QuantileForecast,
)
from optplan.forecast.scenarios import BLOCKS_DECIMALS, reduce_paths, sample_paths, scenario_ids
from optplan.io.atomic import csv_text, json_text, write_files
from optplan.io.periods import parse_periods, period_lengths

QUANTILE_DECIMALS = 2  # blocks in quantiles.csv rounded to 0.01
HISTORY_WEEKS_PLOTTED = 104  # weeks of history drawn before the forecast in fan charts
DEFAULT_PATHS = 2000


def _csv(df: pd.DataFrame) -> str:
    return csv_text(df)


def _json(obj) -> str:
    return json_text(obj, default=_jsonable)


def _jsonable(x):
    if isinstance(x, np.integer | np.bool_):
        return x.item()
    if isinstance(x, np.floating):
        return round(float(x), 6)
    return str(x)


def _safe_name(depot: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", depot) or "_"


def unit_factor_from(money_per_block: float | None, unit_factor: float | None) -> float:
    """Blocks per demand unit from the CLI options (at most one given; default 1):
    ``money_per_block`` currency units of demand (sales) per block of work."""
    if money_per_block is not None and unit_factor is not None:
        raise OptionError("--money-per-block/--unit-factor", "at most one of the two",
                          f"--money-per-block {money_per_block} and --unit-factor {unit_factor}")
    if money_per_block is not None:
        return 1.0 / float(money_per_block)
    return 1.0 if unit_factor is None else float(unit_factor)


def load_history(path, *, model: str, horizon: int, resolution: str = "week", **read_options) -> History:
    """Read the history and check it is long enough for ``model`` at ``horizon`` (one
    problem per short depot; one for the whole file if the history is too short)."""
    per_depot = WEEKS_PER_YEAR + GROWTH_WEEKS
    history = read_history(path, min_weeks=per_depot, **read_options)
    need = min_history_weeks(model, horizon) if resolution == "week" else 2 * WEEKS_PER_YEAR
    if resolution == "long-lead":  # the weekly model for its weeks, the monthly one after
        need = max(min_history_weeks(model, horizon), 2 * WEEKS_PER_YEAR)
    if history.n_weeks < need:
        what = f"the {model} model at a {horizon}-week horizon" if resolution == "week" else (
            f"the {model} model and the long-lead model" if resolution == "long-lead" else f"{resolution}ly forecasts")
        raise InstanceError([Problem(history.source, None, None, f"at least {need} weeks of history for {what}",
                                     f"{history.n_weeks} weeks ({history.week_start[0].date()} to "
                                     f"{history.week_start[-1].date()})")])
    return history


# ---------------------------------------------------------------------- plots


def _svg(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    text = buf.getvalue()
    return re.sub(r"<metadata>.*?</metadata>", "", text[text.index("<svg"):], flags=re.S)


def fan_charts(history: History, x_future: pd.DatetimeIndex, quantiles: np.ndarray, levels, title: str, unit: str,
               history_x: pd.DatetimeIndex | None = None, history_y: np.ndarray | None = None,
               scenario_mean: np.ndarray | None = None) -> dict[str, str]:
    """One SVG per depot: history, P10-P90 and P25-P75 bands, P50 (and the scenario mean).

    quantiles: (T, D, Q) in ``unit``; history_y: (W, D) in the same unit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "optplan", "svg.fonttype": "none", "font.size": 9})
    lv = list(levels)
    hx = history.week_start if history_x is None else history_x
    hy = history.blocks if history_y is None else history_y
    keep = min(len(hx), HISTORY_WEEKS_PLOTTED)
    out = {}
    for j, d in enumerate(history.depots):
        fig, ax = plt.subplots(figsize=(7, 3))
        ax.plot(hx[-keep:], hy[-keep:, j], color="0.3", lw=1, label="history")
        q = quantiles[:, j, :]
        ax.fill_between(x_future, q[:, lv.index(0.1)], q[:, lv.index(0.9)], color="tab:blue", alpha=0.2, lw=0, label="P10-P90")
        ax.fill_between(x_future, q[:, lv.index(0.25)], q[:, lv.index(0.75)], color="tab:blue", alpha=0.35, lw=0,
                        label="P25-P75")
        ax.plot(x_future, q[:, lv.index(0.5)], color="tab:blue", lw=1.5, label="P50")
        if scenario_mean is not None:
            ax.plot(x_future, scenario_mean[:, j], color="tab:orange", lw=1, ls="--", label="scenario mean")
        ax.set_title(f"depot {d}: {title}")
        ax.set_ylabel(unit)
        ax.legend(fontsize=7, loc="upper left", ncols=3)
        fig.autofmt_xdate()
        fig.tight_layout()
        out[f"fan/{_safe_name(d)}.svg"] = _svg(fig)
    return out


# ---------------------------------------------------------------------- forecast


def forecast_files(history_path, out, *, horizon: int = 13, n_scenarios: int = 20, resolution: str = "week",
                   model: str = "global", seed: int = 0, n_paths: int = DEFAULT_PATHS, config: GlobalConfig | None = None,
                   n_jobs: int = 1, plots: bool = True, progress=None, periods: str | None = None,
                   **read_options) -> list[str]:
    """Forecast, sample, reduce and write; returns the lines to print (see the module docstring).
    ``periods`` (long-lead periods, optplan.io.periods.parse_periods: 'long-lead' or runs
    'COUNTxWEEKS,...' adding up to ``horizon`` weeks): weekly demand scenarios for a long-lead instance."""
    say = progress or (lambda msg: None)
    if periods is not None:
        return _period_forecast(history_path, out, horizon=horizon, n_scenarios=n_scenarios, resolution=resolution,
                                model=model, seed=seed, n_paths=n_paths, config=config, n_jobs=n_jobs, plots=plots,
                                say=say, periods=periods, **read_options)
    _check_horizon(horizon, resolution)
    if model not in MODELS + OPTIONAL_MODELS:
        raise OptionError("--model", f"one of {', '.join(MODELS + OPTIONAL_MODELS)}", model)
    if resolution == "week" and not 1 <= n_scenarios <= n_paths:
        raise InstanceError([Problem("options", None, "--scenarios", f"1 to --paths ({n_paths}) scenarios", str(n_scenarios))])
    history = load_history(history_path, model=model, horizon=horizon, resolution=resolution, **read_options)
    lines = [f"history: {len(history.depots)} depots x {history.n_weeks} weeks "
             f"({history.week_start[0].date()} to {history.week_start[-1].date()}, week starts), "
             f"demand column '{history.columns['demand']}' x {history.unit_factor:.10g} = blocks/week"]
    lines += [f"repaired: {r}" for r in history.repairs]
    if resolution != "week":
        files, summary_lines = _long_lead_files(history, horizon, resolution, n_jobs, plots, say)
        write_files(out, files)
        return lines + summary_lines + [f"wrote {len(files)} files to {out}"]

    say(f"forecasting {horizon} weeks with the {model} model")
    cfg = config if config is not None else GlobalConfig(seed=seed)
    fc = forecast(history, horizon, model, config=cfg, progress=say, n_jobs=n_jobs)
    say(f"sampling {n_paths} demand paths and reducing them to {n_scenarios} scenarios")
    paths = sample_paths(fc, n_paths, seed=seed)
    red = reduce_paths(paths, n_scenarios, history.depots, seed=seed)
    files = _weekly_files(history, fc, red, paths, model, seed, n_paths, plots)
    write_files(out, files)
    c = red.check["max_relative_difference"]
    lines.append(f"model {model}: {horizon} weeks from {fc.week_start[0].date()}; {len(red.probabilities)} scenarios "
                 f"from {n_paths} paths")
    if model == "rnn":
        lines.append("note: the rnn model is experimental: on the shipped stores' backtest it was less accurate than "
                     "seasonal naive and AutoETS (docs/forecast.md); use it to compare, not to plan")
    if "weight_global" in fc.info:  # the combined model: what its own validation chose, and on what
        i = fc.info
        lines.append(f"combined: weight of the global model {i['weight_global']:.2f}, interval scale "
                     f"{i['interval_scale']:.2f}, chosen at origins {', '.join(map(str, i['validation_origins']))} "
                     f"({i['validation_horizon_weeks']} weeks ahead; validation P10-P90 coverage "
                     f"{i['validation_p10_p90_coverage']:.1%})")
        if "validation_note" in i:
            lines.append(f"note: {i['validation_note']}")
    if len(red.probabilities) < n_scenarios:
        lines.append("note: " + next(part for part in red.method.split("; ") if "distinct" in part))
    lines.append(f"reduction check (per-depot totals over the horizon): mean {c['mean']:.3%}, P10 {c['p10']:.3%}, "
                 f"P90 {c['p90']:.3%} from the paths (tolerance {red.check['tolerance']:.0%}: "
                 f"{'ok' if red.check['within_tolerance'] else 'NOT MET'})")
    lines.append(f"wrote {len(files)} files to {out}")
    return lines


#: Weeks a long-lead forecast reaches (three years: the long-lead model's 36 months).
MAX_LONG_LEAD_WEEKS = 156


def _period_forecast(history_path, out, *, horizon: int, n_scenarios: int, resolution: str, model: str, seed: int,
                     n_paths: int, config, n_jobs: int, plots: bool, say, periods: str, **read_options) -> list[str]:
    """Demand scenarios over long-lead periods (optplan.forecast.longlead.long_lead_weekly_paths):
    weekly paths of ``model`` for up to MAX_HORIZON weeks, the long-lead monthly model after;
    k-means on the weekly paths with each week weighted 1/sqrt(its period's weeks) (each period
    counts alike), scenarios written week by week (the instance settles each period's recourse
    week by week); quantiles per period."""
    if resolution != "week":
        raise OptionError("--periods", f"periods with --resolution week (the periods set the resolution), not with "
                          f"--resolution {resolution}", periods)
    if not 1 <= horizon <= MAX_LONG_LEAD_WEEKS:
        raise InstanceError([Problem("options", None, "--horizon", f"1 to {MAX_LONG_LEAD_WEEKS} weeks with --periods",
                                     str(horizon))])
    if model not in MODELS + OPTIONAL_MODELS:
        raise OptionError("--model", f"one of {', '.join(MODELS + OPTIONAL_MODELS)}", model)
    if not 1 <= n_scenarios <= n_paths:
        raise InstanceError([Problem("options", None, "--scenarios", f"1 to --paths ({n_paths}) scenarios", str(n_scenarios))])
    runs = parse_periods(periods, horizon)
    L = period_lengths(runs)
    near_weeks = min(horizon, MAX_HORIZON)
    history = load_history(history_path, model=model, horizon=near_weeks,
                           resolution="week" if horizon <= MAX_HORIZON else "long-lead", **read_options)
    lines = [f"history: {len(history.depots)} depots x {history.n_weeks} weeks "
             f"({history.week_start[0].date()} to {history.week_start[-1].date()}, week starts), "
             f"demand column '{history.columns['demand']}' x {history.unit_factor:.10g} = blocks/week"]
    lines += [f"repaired: {r}" for r in history.repairs]
    say(f"forecasting {near_weeks} weeks with the {model} model")
    cfg = config if config is not None else GlobalConfig(seed=seed)
    fc = forecast(history, near_weeks, model, config=cfg, progress=say, n_jobs=n_jobs)
    near = sample_paths(fc, n_paths, seed=seed)
    if horizon > near_weeks:
        say(f"weeks {near_weeks + 1}-{horizon}: the long-lead monthly model (AutoETS + growth uncertainty)")
    paths, far = long_lead_weekly_paths(history, near, fc.week_start, horizon, seed=seed, n_jobs=n_jobs)
    starts = period_offsets(L)
    totals = np.add.reduceat(paths, starts, axis=1)  # (N, T, D) blocks per period
    say(f"reducing {n_paths} paths of {horizon} weeks ({len(L)} periods) to {n_scenarios} scenarios")
    red = reduce_paths(paths, n_scenarios, history.depots, seed=seed, week_weight=np.repeat(1.0 / np.sqrt(L), L))
    S, W, D = red.demand.shape
    T = len(L)
    ids = scenario_ids(S)
    depots = history.depots
    week_of = (starts + 1).astype(int)
    period_start = pd.DatetimeIndex(fc.week_start[0] + pd.to_timedelta(7 * starts, unit="D"))
    demand = pd.DataFrame({  # by week: the instance settles each period's recourse week by week
        "depot": np.repeat(depots, W * S),
        "week": np.tile(np.repeat(np.arange(1, W + 1), S), D),
        "scenario": np.tile(ids, D * W),
        "blocks": red.demand.transpose(2, 1, 0).ravel(),
    })
    scen = pd.DataFrame({"scenario": ids, "probability": red.probabilities})
    q = np.quantile(totals, LEVELS, axis=0)  # (Q, T, D) blocks per period
    qt = pd.DataFrame({"depot": np.repeat(depots, T), "week": np.tile(week_of, D), "weeks": np.tile(L, D),
                       "week_start": np.tile(period_start.strftime("%Y-%m-%d"), D)})
    for k, lv in enumerate(LEVELS):
        qt[f"p{round(lv * 100)}"] = np.round(q[k].T.ravel(), QUANTILE_DECIMALS)
    qt["unit"] = "blocks/period"
    files = {"demand.csv": _csv(demand), "scenarios.csv": _csv(scen), "quantiles.csv": _csv(qt)}
    if plots:  # per period in blocks/week (its total / its weeks), so periods of any length share an axis
        mean = (red.probabilities[:, None, None] * np.add.reduceat(red.demand, starts, axis=1)).sum(axis=0) / L[:, None]
        files.update(fan_charts(history, period_start, np.transpose(q, (1, 2, 0)) / L[:, None, None], LEVELS,
                                f"{model} forecast, then long-lead, in periods", "blocks/week (period mean)",
                                scenario_mean=mean))
    summary = {
        "what": "demand forecast and demand scenarios over long-lead periods (optplan forecast --periods)",
        "model": model, "model_info": fc.info, "long_lead": far or None,
        "history": {"file": history.source, "depots": len(depots), "weeks": history.n_weeks,
                    "first_week_start": str(history.week_start[0].date()),
                    "last_week_start": str(history.week_start[-1].date()), "columns": history.columns,
                    "repairs": history.repairs},
        "conversion": {"blocks_per_demand_unit": history.unit_factor, "formula": "blocks/week = demand x blocks_per_demand_unit"},
        "horizon": {"weeks": horizon, "start_date": str(fc.week_start[0].date()), "periods": runs,
                    "note": "use as horizon.weeks, horizon.start_date and horizon.periods of the instance"},
        "quantiles": {"levels": list(LEVELS), "unit": "blocks/period", "file": "quantiles.csv"},
        "scenarios": {"count": S, "paths": n_paths, "seed": seed, "reduction": red.method + "; each week weighted "
                      "1/sqrt(weeks in its period)", "files": ["demand.csv", "scenarios.csv"],
                      "unit": "blocks/week (every week: the instance settles each period's recourse week by week)"},
        "reduction_check": red.check,
        "files": sorted([*files.keys(), "forecast_summary.json"]),
    }
    files["forecast_summary.json"] = _json(summary)
    write_files(out, files)
    c = red.check["max_relative_difference"]
    layout = ", ".join(f"{r['count']} x {r['weeks']}" for r in runs)
    lines.append(f"model {model} for weeks 1-{near_weeks}" + (f", long-lead to week {horizon}" if horizon > near_weeks
                                                               else "") +
                 f": {len(L)} periods ({layout} weeks) from {fc.week_start[0].date()}; {S} scenarios from {n_paths} paths")
    lines.append(f"reduction check (per-depot totals over the horizon): mean {c['mean']:.3%}, P10 {c['p10']:.3%}, "
                 f"P90 {c['p90']:.3%} (tolerance {red.check['tolerance']:.0%}: "
                 f"{'ok' if red.check['within_tolerance'] else 'NOT MET'})")
    lines.append(f"wrote {len(files)} files to {out}")
    return lines


def _check_horizon(horizon: int, resolution: str) -> None:
    limit = MAX_HORIZON if resolution == "week" else MAX_PERIODS.get(resolution)
    if limit is None:
        raise OptionError("--resolution", "week, month or quarter", resolution)
    if not 1 <= horizon <= limit:
        raise InstanceError([Problem("options", None, "--horizon", f"1 to {limit} {resolution}s", str(horizon))])


def _weekly_files(history: History, fc: QuantileForecast, red, paths: np.ndarray, model: str, seed: int, n_paths: int,
                  plots: bool) -> dict[str, str]:
    H, D, Q = fc.values.shape
    S = len(red.probabilities)
    ids = scenario_ids(S)
    depots = history.depots
    demand = pd.DataFrame({
        "depot": np.repeat(depots, H * S),
        "week": np.tile(np.repeat(np.arange(1, H + 1), S), D),
        "scenario": np.tile(ids, D * H),
        "blocks": np.round(red.demand.transpose(2, 1, 0).ravel(), BLOCKS_DECIMALS),  # (D, H, S) order
    })
    scen = pd.DataFrame({"scenario": ids, "probability": red.probabilities})
    qt = pd.DataFrame({
        "depot": np.repeat(depots, H),
        "week": np.tile(np.arange(1, H + 1), D),
        "week_start": np.tile(fc.week_start.strftime("%Y-%m-%d"), D),
    })
    for k, lv in enumerate(fc.levels):
        qt[f"p{round(lv * 100)}"] = np.round(fc.values[:, :, k].T.ravel(), QUANTILE_DECIMALS)
    qt["unit"] = "blocks/week"
    files = {"demand.csv": _csv(demand), "scenarios.csv": _csv(scen), "quantiles.csv": _csv(qt)}
    if plots:
        mean = (red.probabilities[:, None, None] * red.demand).sum(axis=0)
        files.update(fan_charts(history, fc.week_start, fc.values, fc.levels, f"{model} forecast", "blocks/week",
                                scenario_mean=mean))
    per_block = 1.0 / history.unit_factor
    summary = {
        "what": "weekly demand forecast and demand scenarios (optplan forecast)",
        "model": model,
        "model_info": fc.info,
        "history": {
            "file": history.source, "depots": len(depots), "weeks": history.n_weeks,
            "first_week_start": str(history.week_start[0].date()), "last_week_start": str(history.week_start[-1].date()),
            "columns": history.columns, "repairs": history.repairs,
        },
        "conversion": {"blocks_per_demand_unit": history.unit_factor, "demand_units_per_block": round(per_block, 6),
                       "formula": "blocks/week = demand x blocks_per_demand_unit"},
        "horizon": {"weeks": H, "start_date": str(fc.week_start[0].date()),
                    "note": "use as horizon.weeks and horizon.start_date of the instance"},
        "quantiles": {"levels": list(fc.levels), "unit": "blocks/week", "file": "quantiles.csv"},
        "scenarios": {
            "count": S, "paths": n_paths, "seed": seed, "reduction": red.method,
            "dependence_template_blocks": int(fc.template.shape[0]) if fc.template is not None else 0,
            "files": ["demand.csv", "scenarios.csv"], "unit": "blocks/week",
        },
        "reduction_check": red.check,
        "files": sorted([*files.keys(), "forecast_summary.json"]),
    }
    files["forecast_summary.json"] = _json(summary)
    return files


def _long_lead_files(history: History, periods: int, resolution: str, n_jobs: int, plots: bool, say) -> tuple[dict, list[str]]:
    say(f"long-lead: AutoETS on monthly log demand, {periods} {resolution}s")
    r = long_lead_quantiles(history, periods, resolution, n_jobs=n_jobs)
    table = r["table"]
    for c in (f"p{round(lv * 100)}" for lv in LEVELS):
        table[c] = np.round(table[c].to_numpy(), QUANTILE_DECIMALS)
    files = {"quantiles.csv": _csv(table)}
    unit = f"blocks/{resolution}"
    if plots:
        D = len(history.depots)
        vals = np.stack([table[f"p{round(lv * 100)}"].to_numpy().reshape(D, periods).T for lv in LEVELS], axis=2)
        x = pd.DatetimeIndex(table["period_start"].iloc[:periods])
        months, M = monthly_totals(history)
        hx = months.to_timestamp(how="start")
        hy = M
        if resolution == "quarter":
            q = months.asfreq("Q")
            frame = pd.DataFrame(M, index=q)
            n_m = frame.groupby(level=0).size()
            agg = frame.groupby(level=0).sum(min_count=1)[(n_m == 3).to_numpy()]
            hx, hy = pd.PeriodIndex(agg.index).to_timestamp(how="start"), agg.to_numpy()
        files.update(fan_charts(history, x, vals, LEVELS, f"{resolution}ly long-lead forecast (AutoETS + growth uncertainty)",
                                unit, history_x=hx, history_y=hy))
    summary = {
        "what": f"long-lead {resolution}ly demand forecast (optplan forecast --resolution {resolution})",
        "model": "AutoETS on log monthly demand (statsforecast) + growth-rate uncertainty",
        "resolution": resolution, "periods": periods, "unit": unit,
        "months_used": r["months_used"], "first_month": r["first_month"], "last_month": r["last_month"],
        "season_length_months": r["season_length"],
        "growth_sigma_per_year_log": round(float(r["sigma_g"]), 6) if np.isfinite(r["sigma_g"]) else None,
        "ets_models": r["models"],
        "conversion": {"blocks_per_demand_unit": history.unit_factor, "formula": "blocks/week = demand x blocks_per_demand_unit"},
        "history": {"file": history.source, "depots": len(history.depots), "weeks": history.n_weeks,
                    "repairs": history.repairs, "columns": history.columns},
        "note": "no demand scenarios: the instance's weekly scenario table is produced at weekly resolution only",
        "files": sorted([*files.keys(), "forecast_summary.json"]),
    }
    files["forecast_summary.json"] = _json(summary)
    w = ((table["p90"] - table["p10"]) / table["p50"]).groupby(table["period"]).mean()
    lines = [f"long-lead {resolution}ly forecast: {periods} periods from {table['period_start'].iloc[0]}; mean relative "
             f"P10-P90 width {w.iloc[0]:.1%} in period 1, {w.iloc[-1]:.1%} in period {periods}"]
    return files, lines


# ---------------------------------------------------------------------- backtest


def backtest_files(history_path, out=None, *, horizon: int = 13, step: int = 13, n_origins: int = 3,
                   origins: list[int] | None = None, models=MODELS, config: GlobalConfig | None = None, seed: int = 0,
                   n_jobs: int = 1, progress=None, backend=None, **read_options):
    """Run the rolling-origin backtest; returns (result, lines to print). With ``out``, also
    write the tables (see the module docstring). The fits run on ``backend`` (default: here)."""
    _check_horizon(horizon, "week")
    for m in models:
        if m not in MODELS + OPTIONAL_MODELS:
            raise OptionError("--models", f"models among {', '.join(MODELS + OPTIONAL_MODELS)}", m)
    history = read_history(history_path, min_weeks=1, **read_options)
    origins = sorted(origins) if origins else default_origins(history.n_weeks, horizon, step, n_origins)
    need = max(min_history_weeks(m, horizon) for m in models)
    problems = []
    if origins[0] < need:
        problems.append(Problem(history.source, None, "origins", f"origins with at least {need} weeks of history",
                                f"first origin at {origins[0]} weeks (history of {history.n_weeks} weeks)"))
    if origins[-1] + horizon > history.n_weeks:
        problems.append(Problem(history.source, None, "origins", f"origin + horizon within the {history.n_weeks}-week history",
                                f"last origin at {origins[-1]} weeks + {horizon}"))
    per_depot = WEEKS_PER_YEAR + GROWTH_WEEKS
    for j, d in enumerate(history.depots):
        have = origins[0] - (history.n_weeks - history.weeks_of(j))
        if have < per_depot:
            problems.append(Problem(history.source, history.first_line.get(d), history.columns["depot"],
                                    f"at least {per_depot} weeks of history before the first origin",
                                    f"depot {d}: {max(have, 0)} weeks (from {history.first_week(j).date()})"))
    if problems:
        raise InstanceError(problems)
    cfg = config if config is not None else GlobalConfig(seed=seed)
    result = backtest(history, horizon, origins, models=models, config=cfg, progress=progress, n_jobs=n_jobs,
                      backend=backend, fit=forecast)
    lines = render_backtest(result)
    lines += [f"repaired: {r}" for r in history.repairs]
    for metric, why in (("MASE", "the history repeats itself a year on, so the seasonal-naive error that scales it "
                                  "is 0; empty cells, left out of the overall MASE"),
                        ("wQL", "no demand in the scored weeks; empty cells")):
        missing = sorted(set(result.by_depot.loc[~np.isfinite(result.by_depot[metric].to_numpy(float)), "depot"]))
        if missing:
            lines.append(f"note: no {metric} at {', '.join(map(str, missing[:10]))}{' ...' if len(missing) > 10 else ''}"
                         f" ({why})")
    if out is not None:
        files = {
            "backtest_rows.csv": _csv(_round(result.rows)),
            "backtest_by_depot.csv": _csv(_round(result.by_depot)),
            "backtest_overall.csv": _csv(_round(result.overall)),
            "backtest_by_origin.csv": _csv(_round(result.by_origin)),
            "backtest_summary.json": _json({
                "what": "rolling-origin backtest (optplan backtest)", "history": history.source,
                "depots": len(history.depots), "weeks": history.n_weeks, "horizon_weeks": horizon,
                "origins_weeks_of_history": result.origins,
                "origin_last_week_start": [str(history.week_start[n - 1].date()) for n in result.origins],
                "models": list(models), "unit": "blocks/week", "blocks_per_demand_unit": history.unit_factor,
                "overall": _round(result.overall).to_dict(orient="records"),
                "by_origin": _round(result.by_origin).to_dict(orient="records"),
                "margins_vs_seasonal_naive": _round(margins(result)).to_dict(orient="records"),
                "demand_noise": _round(demand_noise(result.rows)).to_dict(orient="records"),
                "metrics": {
                    "MASE": "mean |y - P50| / in-sample seasonal-naive MAE (per origin and depot); overall = mean over depots",
                    "wQL": "2 sum_q pinball_q / (3 sum |y|), q in P10, P50, P90",
                    "coverage_p10_p90": "share of weeks with P10 <= y <= P90",
                    "demand_noise": "log-sd and AR(1) coefficient of log(y / P50) about each origin and depot's own "
                                    "level (method of moments; optplan.forecast.backtest.demand_noise): state.yaml "
                                    "demand_noise for the scenario weights of optplan replan",
                },
                "ets_models": result.info.get("ets_models", {}), "repairs": history.repairs,
            }),
        }
        write_files(out, files)
        lines.append(f"wrote {len(files)} files to {out}")
    return result, lines


def _round(df: pd.DataFrame, digits: int = 6) -> pd.DataFrame:
    out = df.copy()
    for c in out.columns:
        if pd.api.types.is_float_dtype(out[c]):
            out[c] = np.round(out[c].to_numpy(), digits)
    return out


SHORT_NAMES = {"global": "global", "ets": "ets", "seasonal_naive": "snaive"}  # per-depot table headers


def render_backtest(result, per_depot: bool = True) -> list[str]:
    """Text tables: overall (one row per model) and per depot (MASE, wQL, coverage per model)."""
    o = result.overall
    lines = [f"rolling-origin backtest: origins at {', '.join(map(str, result.origins))} weeks of history, "
             f"{result.horizon}-week horizon, {o['n'].iloc[0] if len(o) else 0} forecasts per model",
             "", f"{'model':<16}{'MASE':>8}{'wQL':>9}{'P10-P90 coverage':>19}"]
    for _, r in o.iterrows():
        lines.append(f"{r['model']:<16}{r['MASE']:>8.3f}{r['wQL']:>9.4f}{r['coverage_p10_p90']:>19.1%}")

    mg = margins(result)
    if len(mg) and len(result.by_depot["depot"].unique()) > 1:
        lines.append("")
        lines += [f"MASE {r.model} vs {r.reference}: {r.MASE_vs_reference:+.1%} (95% interval {r.low:+.1%} to "
                  f"{r.high:+.1%}, depots resampled)" for r in mg.itertuples()]
    if len(result.origins) > 1:
        cov = result.by_origin.pivot(index="model", columns="origin", values="coverage_p10_p90")
        lines += ["", "P10-P90 coverage by origin (weeks of history): " + " ".join(f"{n:>6}" for n in cov.columns)]
        lines += [f"  {m:<46}" + " ".join(f"{cov.loc[m, n]:>6.0%}" for n in cov.columns) for m in o["model"]]
    noise = demand_noise(result.rows)
    if len(noise):
        lines += ["", "demand noise about each forecast's own level (log-sd, week-to-week AR; state.yaml demand_noise "
                      "for optplan replan, docs/replan.md):"]
        lines += [f"  {r.model:<16} sd {r.sd:.3f}  AR {r.ar:.2f}  ({r.series} depot-origins, {r.weeks} weeks)"
                  for r in noise.itertuples() if np.isfinite(r.sd)]
    if per_depot:
        models = list(o["model"])
        piv = result.by_depot.pivot(index="depot", columns="model")
        order = [d for d in dict.fromkeys(result.rows["depot"])]
        short = {m: SHORT_NAMES.get(m, m[:6]) for m in models}
        head = f"{'depot':<8}" + "".join(f"{'MASE ' + short[m]:>13}" for m in models) + "".join(
            f"{'wQL ' + short[m]:>12}" for m in models) + "".join(f"{'cov ' + short[m]:>11}" for m in models)
        lines += ["", head]
        for d in order:
            row = f"{d:<8}" + "".join(f"{piv.loc[d, ('MASE', m)]:>13.3f}" for m in models)
            row += "".join(f"{piv.loc[d, ('wQL', m)]:>12.4f}" for m in models)
            row += "".join(f"{piv.loc[d, ('coverage_p10_p90', m)]:>11.0%}" for m in models)
            lines.append(row)
    return lines
