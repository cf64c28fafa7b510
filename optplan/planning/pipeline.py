"""One command from data to report (issue #14 part 4): ``optplan pipeline CONFIG``.

CONFIG (YAML, schema ``PipelineConfig``; paths relative to the config file) names the raw
inputs (demand history, applicant and activity logs, or settings to generate synthetic
logs) and the planner's tables (depots, channels, settings), and the options of each step.
The steps, each writing into its own folder under ``out``:

    logs       generate synthetic logs (only when the config asks for them)      logs/
    funnel     optplan estimate funnel on the applicant log                       funnel/
    retention  optplan estimate retention on the activity log                     retention/
    history    the history's series picked for the depots and renamed             history/
    forecast   optplan forecast on that history                                   forecast/
    instance   optplan build-instance from all of the above                       instance/
    plan       optplan solve                                                      plan/
    report     optplan report                                                     report/

``out/pipeline.json`` (the run manifest) records per step its key (a SHA-256 over the step's
settings and the bytes of every input file), the inputs with their hashes, the files it
produced and the seconds it took. A re-run skips a step whose key is unchanged and whose
outputs are all there; since a step's inputs include the files earlier steps produced, a
change anywhere re-runs exactly what depends on it. Outputs of each step are written
atomically by the step itself; the manifest is written after every step.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from optplan import api
from optplan.errors import InstanceError, OptionError, OptplanError, Problem
from optplan.estimate.funnel import DEFAULT_STAGES
from optplan.estimate.logs import read_activity_log
from optplan.estimate.synthetic import generate_activity_log, generate_applicant_log
from optplan.estimate.workflow import (
    _read_input,
    _read_settings,
    build_instance,
    estimate_funnel_files,
    estimate_retention_files,
)
from optplan.explain.report import build_report, write_report
from optplan.forecast.calendar import check_country
from optplan.forecast.history import read_history
from optplan.forecast.workflow import forecast_files, unit_factor_from
from optplan.io.atomic import atomic_write_text, csv_text, json_text, write_files
from optplan.io.inputs import input_under, parse_date_option, read_yaml_mapping
from optplan.io.instance import check_given_columns, load_instance, pydantic_problems, validated_manifest
from optplan.io.periods import parse_periods
from optplan.io.schema import Manifest
from optplan.planning.logstate import instance_week, write_state_from_logs
from optplan.planning.monitor import Thresholds, load_monitor, monitor_files
from optplan.planning.replan import expected_state, initial_state, load_state, replan
from optplan.solvers import engine_names

MANIFEST = "pipeline.json"
STEPS = ("logs", "funnel", "retention", "history", "forecast", "instance", "plan", "state", "replan", "monitor",
         "report")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Inputs(_Strict):
    history: str = Field(description="Demand history CSV (optplan forecast's input).")
    applicants: str | None = Field(None, description="Applicant log; null: generated (generate_logs).")
    activity: str | None = Field(None, description="Activity log; null: generated (generate_logs).")
    depots: str = Field(description="depots.csv: depot, region[, onboarding_cap][, active_drivers].")
    channels: str = Field(description="channels.csv: channel, cost_per_applicant[, applicant_cap].")
    settings: str = Field(description="settings.yaml: the manifest's name, horizon, penalties, budgets, ...")


class GenerateLogs(_Strict):
    depots: int = Field(5, ge=1, le=10_000, description="Depots D001.. (as in depots.csv).")
    applicants: int = Field(20000, ge=1, le=10_000_000)
    drivers: int = Field(5000, ge=1, le=10_000_000)
    weeks: int = Field(52, ge=4, le=520)
    censored_share: float = Field(0.3, ge=0, le=0.9)
    seed: int = Field(0, ge=0, le=2**32 - 1)
    start: dt.date | None = Field(None, description="First week of the logs (a date in it); null: the generator's "
                                  "default (2026-01-05). Align it with the history to re-plan from the logs.")


class HistoryOptions(_Strict):
    depots: dict[str, str] | None = Field(
        None, description="History series -> depot id (picks and renames series); null: all, names kept.")
    depot_col: str | None = None
    date_col: str | None = None
    demand_col: str | None = None
    money_per_block: float | None = Field(None, gt=0)
    country: str | dict[str, str] | None = Field(
        None, description="Holiday calendar of the forecasts (ISO 3166): one code, or depot id -> code; null: US.")
    date_format: str | None = Field(None, description="How the history's dates are written (e.g. %d-%m-%Y); null: "
                                    "ISO, or the order of day and month the column shows.")


class ForecastOptions(_Strict):
    horizon: int = Field(13, ge=1, le=520)
    scenarios: int = Field(10, ge=1, le=1000)
    paths: int = Field(1000, ge=2, le=100_000)
    model: Literal["global", "ets", "seasonal_naive", "combined"] = "global"
    plots: bool = False
    periods: str | None = Field(None, description="Long-lead periods over `horizon` weeks (up to 156): 'long-lead' "
                                "or runs 'COUNTxWEEKS,...' (optplan forecast --periods); null: weekly.")


class EstimateOptions(_Strict):
    bootstrap: int = Field(20, ge=0, le=10_000)
    observed_until: str | None = None
    latent_classes: int = Field(2, ge=1, le=4)  # the funnel's latent speed classes, at most (1: independent stages)
    class_shares: Literal["channel", "common"] = "channel"  # each channel its own class shares, or one set for all
    date_format: str | None = None  # how the logs' dates are written (e.g. %d/%m/%Y); null: ISO or as the column shows
    columns: dict[str, str] | None = Field(None, description="The applicant log's own column names, ours: theirs "
                                           "(e.g. {applied: signup_date, applicant_id: id}), as estimate funnel --map.")
    on_out_of_order: Literal["error", "drop", "reorder"] = "error"  # stage dates out of order (estimate funnel)
    window_days: int | None = Field(None, ge=1, le=3650, description="Each applicant followed this many days.")

    @field_validator("columns")
    @classmethod
    def _ours(cls, value):
        allowed = {"applicant_id", "depot", "channel", "stage", "date", *DEFAULT_STAGES}
        unknown = sorted(set(value or {}) - allowed)
        if unknown:
            raise ValueError(f"our names among {', '.join(sorted(allowed))} on the left, not {', '.join(unknown)}")
        return value


class SolveStep(_Strict):
    engine: str = Field("auto", description="An engine of the registry (optplan.solvers.engine_names), as solve --engine.")
    time_limit: float | None = Field(None, gt=0)

    @field_validator("engine")
    @classmethod
    def _registered(cls, value: str) -> str:
        if value not in engine_names():
            raise ValueError(f"one of {', '.join(engine_names())}, not {value!r}")
        return value


class ReportStep(_Strict):
    enabled: bool = True
    frontier_points: int = Field(5, ge=2, le=200)
    service_points: int = Field(3, ge=0, le=50)
    oos_paths: int = Field(200, ge=2, le=100_000)


class ReplanStep(_Strict):
    """The weekly re-plan: the state at the start of ``week`` from the logs (optplan state
    --applicants --activity), then the plan of weeks week..T from it (optplan replan)."""

    week: int | Literal["auto"] = Field(description="The first week to re-plan (1..horizon weeks), or auto: the "
                                        "week after the activity log's last week.")
    spend: str | None = Field(None, description="Spend table (depot, week, spend); null: the log's applicants at "
                              "each channel's cost, no incentives.")

    @field_validator("week")
    @classmethod
    def _positive(cls, value):
        if value != "auto" and value < 1:
            raise ValueError(f"a week >= 1 or auto, not {value!r}")
        return value


class MonitorStep(_Strict):
    """The weekly watch (optplan monitor): the demand seen against the forecast's quantiles,
    recruiting against the plan, conversion against the kernel."""

    demand: str = Field(description="Demand seen: depot, week (the plan's weeks), blocks.")
    band: tuple[float, float] = Field((0.6, 0.95), description="Pooled P10-P90 coverage band (nominal 0.8).")
    band_weeks: int = Field(3, ge=1, le=52)
    wape_max: float = Field(0.25, gt=0)
    mase_max: float = Field(1.5, gt=0)

    @field_validator("band")
    @classmethod
    def _band(cls, value):
        if not 0 <= value[0] < value[1] <= 1:
            raise ValueError(f"[low, high] with 0 <= low < high <= 1, not {list(value)}")
        return value


class PipelineConfig(_Strict):
    """The pipeline's YAML."""

    name: str = Field(min_length=1, max_length=200)
    out: str = Field("pipeline_out", description="Output folder (relative to the config file).")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seed of every random step (numpy, scikit-learn).")
    inputs: Inputs
    generate_logs: GenerateLogs | None = None
    history: HistoryOptions = Field(default_factory=HistoryOptions)
    estimate: EstimateOptions = Field(default_factory=EstimateOptions)
    forecast: ForecastOptions = Field(default_factory=ForecastOptions)
    solve: SolveStep = Field(default_factory=SolveStep)
    report: ReportStep = Field(default_factory=ReportStep)
    replan: ReplanStep | None = Field(None, description="Re-plan from the logs (a weekly run); null: no re-plan.")
    monitor: MonitorStep | None = Field(None, description="Watch the forecast, recruiting and conversion; null: none.")


def _check_settings_early(config: PipelineConfig, shown: str) -> None:
    """The settings the steps parse themselves (a date, holiday countries, a period layout),
    checked before any step writes, each named by its config field (the steps would name
    their command-line flags)."""
    problems = []
    mapping = config.history.depots or {}
    twice = sorted({d for d in mapping.values() if list(mapping.values()).count(d) > 1})
    if twice:  # two series into one depot: the forecast step would report its own intermediate file
        problems.append(Problem(shown, None, "history.depots", "one history series per depot id",
                                f"{', '.join(twice)} given for {', '.join(k for k, v in mapping.items() if v in twice)}"))
    checks = [("estimate.observed_until", lambda: parse_date_option("--observed-until", config.estimate.observed_until))]
    country = config.history.country
    for code in ([] if country is None else [country] if isinstance(country, str) else list(country.values())):
        checks.append(("history.country", lambda code=code: check_country(code)))
    if config.forecast.periods is not None:
        checks.append(("forecast.periods", lambda: parse_periods(config.forecast.periods, config.forecast.horizon)))
    for where, check in checks:
        try:
            check()
        except OptionError as exc:
            problems += [Problem(shown, None, where, pr.expected, pr.found) for pr in exc.problems]
    if problems:
        raise InstanceError(problems)


def load_config(path: str | Path) -> tuple[PipelineConfig, Path]:
    """The config and its folder (paths in it are relative to it); InstanceError if bad."""
    path = Path(path)
    raw = read_yaml_mapping(path, "a pipeline config (YAML)", path.name, "a mapping of pipeline settings")
    config = validated_manifest(PipelineConfig, raw, path.name)
    inp = config.inputs
    if inp.applicants is None and inp.activity is not None:  # an activity log alone would be ignored
        raise InstanceError([Problem(path.name, None, "inputs.applicants", "the applicant log beside inputs.activity "
                                     "(or neither, with a generate_logs section)", "none")])
    if inp.applicants is None and config.generate_logs is None:
        raise InstanceError([Problem(path.name, None, "inputs.applicants", "the applicant log (and the activity log, "
                                     "or drivers in depots.csv), or a generate_logs section to make synthetic ones",
                                     "none")])
    if inp.applicants is not None and inp.activity is None and config.generate_logs is not None:
        raise InstanceError([Problem(path.name, None, "inputs.activity", "the activity log beside inputs.applicants "
                                     "(or neither log, with generate_logs; or no generate_logs and the drivers in "
                                     "depots.csv)", "none")])
    if inp.applicants is not None and inp.activity is None and config.replan is not None:
        raise InstanceError([Problem(path.name, None, "inputs.activity", "the activity log the re-plan's drivers come "
                                     "from (replan needs it)", "none")])
    _check_settings_early(config, path.name)
    base = path.resolve().parent
    files = {f"inputs.{k}": v for k, v in config.inputs.model_dump().items()}
    if config.replan is not None:
        files["replan.spend"] = config.replan.spend
    if config.monitor is not None:
        files["monitor.demand"] = config.monitor.demand
    missing = [Problem(path.name, None, k, "an existing file", str(base / v))
               for k, v in files.items() if v is not None and not (base / v).is_file()]
    if missing:
        raise InstanceError(missing)
    _check_inputs_early(config, base, path.name)
    return config, base


def _check_inputs_early(config: PipelineConfig, base: Path, shown: str) -> None:
    """Every static input the later steps read, checked before the first step writes, each
    problem named by the user's own file (issue #33: a bad depots.csv or settings.yaml used to
    surface after the logs, funnel, retention and forecast folders were written, named by an
    intermediate file): the depot and channel tables as the instance's columns; the settings as
    the manifest they become (its horizon the forecast's: horizon.weeks, and the start date
    after the history's last week); the history as the history step reads it, its series as
    history.depots names them, and the depots the forecast will give against depots.csv."""
    inp, problems, omitted = config.inputs, [], 0
    tables = {}
    for role in ("depots", "channels"):
        df = _read_input(base / getattr(inp, role), role, problems)
        if df is not None:
            found, more = check_given_columns(df, role, Path(getattr(inp, role)).name)
            problems += found
            omitted += more
            tables[role] = df
    if inp.applicants is not None and inp.activity is None and "depots" in tables:
        lacking = [c for c in DRIVER_COLUMNS if c not in tables["depots"].columns]
        if lacking:
            problems.append(Problem(Path(inp.depots).name, 1, ", ".join(lacking), "the depots' drivers, weekly "
                                    f"retention and blocks per driver ({', '.join(DRIVER_COLUMNS)}) when inputs.activity "
                                    "is null (or an activity log to estimate them from)",
                                    f"columns {', '.join(map(str, tables['depots'].columns))}"))
    h = config.history
    try:
        hist = read_history(base / inp.history, depot_col=h.depot_col, date_col=h.date_col, demand_col=h.demand_col,
                            unit_factor=unit_factor_from(h.money_per_block, None), date_format=h.date_format)
    except (InstanceError, OptionError) as exc:
        problems += list(exc.problems)
        omitted += getattr(exc, "omitted", 0)  # the history's own cap: its true count carried through
        hist = None
    start = None
    if hist is not None:
        series = [str(d) for d in hist.depots]
        unknown = sorted(set(h.depots or {}) - set(series))
        if unknown:
            problems.append(Problem(shown, None, "history.depots", f"series of {Path(inp.history).name} "
                                    f"({', '.join(series[:8])}{', ...' if len(series) > 8 else ''})",
                                    f"unknown series {', '.join(unknown[:5])}"))
        forecast_depots = set((h.depots or {}).values()) if h.depots is not None else set(series)
        if "depots" in tables and "depot" in tables["depots"] and not unknown:
            listed = tables["depots"]["depot"].astype(str)
            name = Path(inp.depots).name
            for i, d in enumerate(listed):
                if d not in forecast_depots:
                    problems.append(Problem(name, i + 2, "depot", "a depot the forecast gives (a history series, "
                                            "renamed by history.depots)", f"'{d}', which has no demand history"))
            for d in sorted(forecast_depots - set(listed))[:5]:
                problems.append(Problem(name, None, "depot", "a row for every depot the forecast gives",
                                        f"no row for '{d}'"))
        start = (pd.Timestamp(hist.week_start[-1]) + pd.Timedelta(weeks=1)).date()
    settings_problems: list[Problem] = []
    settings = _read_settings(base / inp.settings, settings_problems)
    problems += settings_problems
    if settings is not None and not settings_problems:
        problems += _settings_problems(settings, config, start, Path(inp.settings).name)
    if problems or omitted:
        raise InstanceError(problems, omitted)


def _settings_problems(settings: dict, config: PipelineConfig, start, name: str) -> list[Problem]:
    """The settings as the instance's manifest they become, with the forecast's horizon."""
    horizon = dict(settings.get("horizon") or {}) if isinstance(settings.get("horizon"), dict) else {}
    problems = []
    for key, value in (("weeks", config.forecast.horizon), ("start_date", None if start is None else str(start))):
        given = horizon.get(key)
        if value is not None and given is not None and str(given) != str(value):
            problems.append(Problem(name, None, f"horizon.{key}", f"{value} (the forecast's) or nothing: the forecast sets "
                                    "it (forecast.horizon; the week after the history's last)", str(given)))
        if value is not None:
            horizon[key] = value
    horizon.setdefault("start_date", "2030-01-07")  # the history could not be read: its problems are listed
    if problems:
        return problems
    try:
        Manifest.model_validate({**settings, "horizon": horizon, "files": {}})
    except ValidationError as exc:
        return [replace(p, file=name) for p in pydantic_problems(exc, name)]
    return []


# ------------------------------------------------------------------ running


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


@dataclass
class Step:
    name: str
    inputs: list[Path]
    settings: dict[str, Any]
    run: Callable[[Path], list[str]]  # writes into its folder, returns lines to print
    folder: Path = field(default=Path())


@dataclass
class PipelineResult:
    out: Path
    ran: list[str]
    skipped: list[str]
    manifest: dict


def _output_folder(config: PipelineConfig, base: Path, config_path, out) -> Path:
    """The run's output folder (``out``, else the config's, relative to the config file),
    refused when it is or holds an input (as for every command's --out)."""
    given = out is not None
    target = Path(out).resolve() if given else (base / config.out).resolve()
    inputs = [Path(config_path).resolve()] + [(base / v).resolve() for v in config.inputs.model_dump().values()
                                              if v is not None]
    source = input_under(target, inputs)
    if source is not None:
        raise InstanceError([Problem("command line" if given else Path(config_path).name, None,
                                     "--out" if given else "out",
                                     "an output folder that is not, and does not contain, an input",
                                     f"{target} (holds {source.name})")])
    return target


def check_pipeline(config_path: str | Path, out: str | Path | None = None) -> list[str]:
    """Every check ``run_pipeline`` makes before its first write (the config, the settings, every
    table and log it will read, the output folder), and nothing written; returns the lines to
    print: the steps a run would take. Raises InstanceError like a run would."""
    config, base = load_config(config_path)
    target = _output_folder(config, base, config_path, out)
    names = [step.name for step in _steps(config, base, target, True)]
    return [f"ok: {Path(config_path).name} and every input it names checked; a run would take {len(names)} steps "
            f"({', '.join(names)}) into {target}; nothing was written"]


def run_pipeline(config_path: str | Path, say: Callable[[str], None] = print, force: bool = False,
                 out: str | Path | None = None, quiet: bool = False) -> PipelineResult:
    """Run (or resume) the pipeline of ``config_path`` into ``out`` (default: the config's
    ``out``, relative to the config file); see the module docstring."""
    config, base = load_config(config_path)
    out = _output_folder(config, base, config_path, out)
    out.mkdir(parents=True, exist_ok=True)
    previous = {}
    if (out / MANIFEST).is_file():
        try:
            previous = json.loads((out / MANIFEST).read_text()).get("steps", {})
        except (json.JSONDecodeError, OSError):
            previous = {}
    manifest = {"pipeline": config.name, "config": str(Path(config_path).resolve()), "steps": {}}
    ran, skipped = [], []
    steps = _steps(config, base, out, quiet)
    for i, step in enumerate(steps, start=1):
        step.folder = out / step.name
        hashes = {str(p): _sha(p) for p in step.inputs}
        key = hashlib.sha256(json.dumps({"step": step.name, "settings": step.settings,
                                         "inputs": sorted(hashes.values())}, sort_keys=True,
                                        default=str).encode()).hexdigest()
        old = previous.get(step.name, {})
        have = old.get("outputs", [])
        if not force and old.get("key") == key and have and all((out / f).is_file() for f in have):
            say(f"[{i}/{len(steps)}] {step.name}: unchanged, skipped")
            manifest["steps"][step.name] = {**old, "status": "skipped"}
            skipped.append(step.name)
        else:
            say(f"[{i}/{len(steps)}] {step.name}: running")
            t0 = time.perf_counter()
            try:
                lines = step.run(step.folder)
            except OptplanError as exc:  # the finished steps stay (a re-run resumes); this one's part goes
                shutil.rmtree(step.folder, ignore_errors=True)
                manifest["steps"][step.name] = {"status": "failed", "key": key, "error": str(exc).splitlines()[0]}
                atomic_write_text(out / MANIFEST, json_text(manifest))
                kept = [n for n, st in manifest["steps"].items() if st.get("status") in ("ran", "skipped")]
                exc.written = (f"step '{step.name}' failed and left nothing; "
                               + (f"the steps before it ({', '.join(kept)}) are kept in {out}" if kept else
                                  f"only {out / MANIFEST} was written")
                               + f" ({MANIFEST} says so; a re-run resumes from there)")
                raise
            seconds = time.perf_counter() - t0
            for line in lines:
                say(f"    {line}")
            outputs = [str(p.relative_to(out)) for p in _files_under(step.folder)]
            manifest["steps"][step.name] = {"status": "ran", "key": key, "inputs": hashes, "settings": step.settings,
                                            "outputs": outputs, "seconds": round(seconds, 3)}
            ran.append(step.name)
        atomic_write_text(out / MANIFEST, json_text(manifest))
    return PipelineResult(out=out, ran=ran, skipped=skipped, manifest=manifest)


def _steps(config: PipelineConfig, base: Path, out: Path, quiet: bool = False) -> list[Step]:
    """The steps of this config, in order, with their inputs and settings."""
    inp = config.inputs
    steps: list[Step] = []
    if inp.applicants is None:
        g = config.generate_logs
        steps.append(Step("logs", [], g.model_dump(mode="json"), lambda folder: _generate_logs(g, folder)))
        applicants, activity = out / "logs" / "applicants.csv", out / "logs" / "activity.csv"
    else:
        applicants, activity = base / inp.applicants, None if inp.activity is None else base / inp.activity
    est = config.estimate
    steps.append(Step("funnel", [applicants], {**est.model_dump(), "seed": config.seed},
                      lambda folder: _funnel(applicants, folder, est, config.seed, not quiet)))
    if activity is None:  # no activity log: the drivers, retention and blocks per driver depots.csv gives
        depots_csv = base / inp.depots
        steps.append(Step("retention", [depots_csv], {}, lambda folder: _retention_from_depots(depots_csv, folder)))
    else:
        steps.append(Step("retention", [activity], {**est.model_dump(), "seed": config.seed},
                          lambda folder: _retention(activity, folder, est, config.seed, not quiet)))
    history = base / inp.history
    h = config.history
    steps.append(Step("history", [history], h.model_dump(), lambda folder: _pick_history(history, folder, h)))
    picked = out / "history" / "history.csv"
    f = config.forecast
    steps.append(Step("forecast", [picked], {**f.model_dump(), "seed": config.seed, "country": h.country},
                      lambda folder: _forecast(picked, folder, f, h, config.seed)))
    parts = {"yield": out / "funnel" / "yield.csv", "retention": out / "retention" / "retention.csv",
             "depots": base / inp.depots, "channels": base / inp.channels, "demand": out / "forecast" / "demand.csv",
             "scenarios": out / "forecast" / "scenarios.csv", "settings": base / inp.settings}
    summary = out / "forecast" / "forecast_summary.json"
    season = out / "retention" / "supply_season.csv"  # written by the retention step: driver supply by week of year
    seasons = [season] if activity is not None else []  # no activity log: no supply by week of year
    steps.append(Step("instance", [*parts.values(), summary, *seasons], {}, lambda folder: _build(parts, folder, summary)))
    inst_files = [out / "instance" / n for n in ("instance.yaml", "depots.csv", "scenarios.csv", "demand.csv",
                                                 "channels.csv", "yield.csv")]
    s = config.solve
    steps.append(Step("plan", inst_files, s.model_dump(), lambda folder: _solve(out / "instance", folder, s)))
    if config.replan is not None:
        rp = config.replan
        spend = None if rp.spend is None else base / rp.spend
        log_files = [applicants, activity, *([spend] if spend is not None else [])]
        steps.append(Step("state", [*inst_files, *log_files], {**rp.model_dump(), **est.model_dump()},
                          lambda folder: _state(out / "instance", folder, applicants, activity, spend, rp,
                                                config.estimate.date_format, applicant_options(est))))
        state_files = [out / "state" / n for n in ("state.yaml", "drivers.csv", "recruited.csv", "pipeline.csv")]
        steps.append(Step("replan", [*inst_files, *state_files], s.model_dump(),
                          lambda folder: _replan(out / "instance", out / "state", folder, s)))
    if config.monitor is not None:
        mo = config.monitor
        seen = base / mo.demand
        watched = [seen, out / "forecast" / "quantiles.csv", out / "history" / "history.csv", out / "plan" / "applicants.csv",
                   out / "plan" / "drivers.csv", applicants]
        steps.append(Step("monitor", [*inst_files, *watched], {**mo.model_dump(), **est.model_dump()},
                          lambda folder: _monitor(out, seen, applicants, folder, mo, est)))
    if config.report.enabled:
        r = config.report
        seen_by = [] if config.monitor is None else watched
        steps.append(Step("report", [*inst_files, *seen_by], {**r.model_dump(), "seed": config.seed,
                                                              **({"monitor": config.monitor.model_dump()}
                                                                 if config.monitor else {})},
                          lambda folder: _report(out / "instance", folder, r, config.seed,
                                                 config.monitor and (out, base / config.monitor.demand, applicants,
                                                                     _thresholds(config.monitor), est))))
    return steps


# ------------------------------------------------------------------ the steps (the CLI's workflows)


def _generate_logs(g: GenerateLogs, folder: Path) -> list[str]:
    when = {} if g.start is None else {"start": g.start}
    apps, _, _ = generate_applicant_log(g.applicants, seed=g.seed, depots=g.depots, weeks=g.weeks,
                                        censored_share=g.censored_share, **when)
    act, _ = generate_activity_log(g.drivers, seed=g.seed, depots=g.depots, weeks=g.weeks, **when)
    write_files(folder, {"applicants.csv": apps.to_csv(index=False, lineterminator="\n"),
                         "activity.csv": act.to_csv(index=False, lineterminator="\n")})
    return [f"{len(apps):,} applicants and {act['driver_id'].nunique():,} drivers (synthetic, seed {g.seed})"]


def _funnel(applicants: Path, folder: Path, est: EstimateOptions, seed: int, show: bool = True) -> list[str]:
    return estimate_funnel_files(applicants, folder, observed_until=est.observed_until, n_boot=est.bootstrap, seed=seed,
                                 latent_classes=est.latent_classes, show_progress=show, date_format=est.date_format,
                                 column_map=log_columns(est), on_out_of_order=est.on_out_of_order,
                                 window_days=est.window_days,
                                 class_shares_by=None if est.class_shares == "common" else "channel")


def log_columns(est: EstimateOptions) -> dict[str, str]:
    """The config's {ours: theirs} as the reader's {theirs: ours}."""
    return {theirs: ours for ours, theirs in (est.columns or {}).items()}


def applicant_options(est: EstimateOptions) -> dict:
    """How every step reads the applicant log: as the funnel step does."""
    return {"column_map": log_columns(est), "on_out_of_order": est.on_out_of_order, "window_days": est.window_days}


def _retention(activity: Path, folder: Path, est: EstimateOptions, seed: int, show: bool = True) -> list[str]:
    return estimate_retention_files(activity, folder, observed_until=est.observed_until, n_boot=est.bootstrap, seed=seed,
                                    show_progress=show, date_format=est.date_format)


#: depots.csv columns that stand in for the activity log (inputs.activity: null).
DRIVER_COLUMNS = ("active_drivers", "retention", "blocks_per_driver")


def _retention_from_depots(depots_csv: Path, folder: Path) -> list[str]:
    """retention.csv from depots.csv's own drivers (drivers), weekly retention (probability) and
    blocks per driver (blocks/driver-week): what a planner knows without an activity log."""
    table = pd.read_csv(depots_csv, dtype={"depot": str})
    atomic_write_text(folder / "retention.csv", csv_text(table[["depot", *DRIVER_COLUMNS]]))
    return [f"no activity log: drivers, retention and blocks per driver of {len(table)} depots from {depots_csv.name}"]


def _pick_history(history: Path, folder: Path, h: HistoryOptions) -> list[str]:
    """The history's columns as read by optplan forecast, the series in ``h.depots`` renamed
    to their depot ids (the others dropped); written as depot, week_start, blocks[, holiday]."""
    hist = read_history(history, depot_col=h.depot_col, date_col=h.date_col, demand_col=h.demand_col,
                        unit_factor=unit_factor_from(h.money_per_block, None), date_format=h.date_format)
    df = hist.to_frame()
    df["depot"] = df["depot"].astype(str)
    if h.depots is not None:
        unknown = sorted(set(h.depots) - set(df["depot"]))
        if unknown:
            raise InstanceError([Problem("pipeline config", None, "history.depots",
                                         f"series of {history.name}", f"unknown series {', '.join(unknown[:5])}")])
        df = df[df["depot"].isin(h.depots)].assign(depot=lambda x: x["depot"].map(h.depots))
    df["week_start"] = pd.to_datetime(df["week_start"]).dt.strftime("%Y-%m-%d")
    atomic_write_text(folder / "history.csv", csv_text(df))
    return [f"{df['depot'].nunique()} depot series, {df['week_start'].nunique()} weeks, in blocks/week"]


def _forecast(history: Path, folder: Path, f: ForecastOptions, h: HistoryOptions, seed: int) -> list[str]:
    return forecast_files(history, folder, horizon=f.horizon, n_scenarios=f.scenarios, model=f.model, seed=seed,
                          n_paths=f.paths, plots=f.plots, depot_col="depot", date_col="week_start", demand_col="blocks",
                          week_date="start", country=h.country, periods=f.periods)


def _plain_horizon(key: str, value) -> str:
    """A horizon field as text for comparison; periods as their (weeks, count) runs, whatever
    the order of each run's keys."""
    if key == "periods" and isinstance(value, list):
        try:
            return str([(int(r["weeks"]), int(r["count"])) for r in value])
        except (TypeError, KeyError, ValueError):
            return str(value)
    return str(value)


def _build(parts: dict[str, Path], folder: Path, summary: Path) -> list[str]:
    """build-instance, with the horizon's weeks and start date taken from the forecast when
    the settings leave them out (and refused when the settings say otherwise)."""

    problems: list[Problem] = []
    settings = _read_settings(parts["settings"], problems)
    if problems:
        raise InstanceError(problems)
    fc = json.loads(summary.read_text())["horizon"]
    horizon = dict(settings.get("horizon") or {})
    name = parts["settings"].name
    for key, value in (("weeks", int(fc["weeks"])), ("start_date", str(fc["start_date"])),
                       ("periods", fc.get("periods"))):
        given = horizon.get(key)
        if given is not None and _plain_horizon(key, given) != _plain_horizon(key, value):
            problems.append(Problem(name, None, f"horizon.{key}", f"{value} (the forecast's) or nothing",
                                    str(given)))
        if value is not None:
            horizon[key] = value
    if problems:
        raise InstanceError(problems)
    folder.mkdir(parents=True, exist_ok=True)
    used = folder / "settings_used.yaml"
    atomic_write_text(used, yaml.safe_dump({**settings, "horizon": horizon}, sort_keys=False))
    notes: list[str] = []
    season = parts["retention"].parent / "supply_season.csv"
    # the funnel's bonus response, where this run's log offered bonuses (its summary says which levels)
    response = parts["yield"].parent / "bonus_response.csv"
    funnel = parts["yield"].parent / "funnel_summary.json"
    offered = funnel.exists() and bool(json.loads(funnel.read_text()).get("bonus_levels"))
    try:
        inst = build_instance(parts["yield"], parts["retention"], parts["depots"], parts["channels"], parts["demand"],
                              parts["scenarios"], used, folder, notes=notes,
                              supply_csv=season if season.exists() else None,
                              bonuses_csv=response if offered and response.exists() else None)
    except InstanceError as exc:  # the settings as the user named them, not the copy made here
        raise InstanceError([replace(p, file=name if p.file == used.name else p.file) for p in exc.problems],
                            exc.omitted) from None
    return [*(f"note: {n}" for n in notes), inst.summary()]


def _solve(instance: Path, folder: Path, s: SolveStep) -> list[str]:
    plan = api.solve(load_instance(instance), engine=s.engine, time_limit=s.time_limit)
    plan.write(folder)
    return [*plan.text_summary().splitlines()[:2], *(f"warning: {w.message}" for w in plan.warnings)]


def _state(instance: Path, folder: Path, applicants: Path, activity: Path, spend: Path | None,
           rp: ReplanStep, date_format: str | None = None, applicant_options: dict | None = None) -> list[str]:
    """optplan state --applicants --activity [--spend]: the week given, or the week after the
    activity log's last; a depot without drivers in the log takes the plan's expectation."""
    inst = load_instance(instance)
    week = rp.week
    if week == "auto":
        act, _ = read_activity_log(activity, date_format)
        week = int(instance_week(inst, act["week"]).max()) + 1 if len(act) else 0
        if not 1 <= week <= inst.n_weeks:
            raise InstanceError([Problem(activity.name, None, "week", f"a last week inside the plan's horizon "
                                         f"(weeks 0..{inst.n_weeks - 1}, from {inst.manifest.horizon.start_date}), "
                                         "for replan.week: auto", f"a log whose last week is week {week - 1}")])
    elif week > inst.n_weeks:
        raise InstanceError([Problem("pipeline config", None, "replan.week", f"a week in 1..{inst.n_weeks}", week)])

    def expected():
        return initial_state(inst) if week == 1 else expected_state(inst, api.solve(inst), week)

    result = write_state_from_logs(inst, week, applicants, activity, spend, folder, fallback=expected,
                                   date_format=date_format, applicant_options=applicant_options)
    c = result.counts
    return [f"week {week}: {sum(c['drivers_active'].values()):,.0f} active drivers, {c['applicants_in_funnel']:,} "
            f"applicants in the funnel ({c['expected_arrivals']:,.1f} expected to start), spend so far "
            f"{c['spend_to_date']:,.2f} {c['currency']}", *(f"note: {n}" for n in result.notes)]


def _replan(instance: Path, state: Path, folder: Path, s: SolveStep) -> list[str]:
    inst = load_instance(instance)
    st = load_state(state, inst)
    result = replan(inst, st, engine=s.engine, time_limit=s.time_limit)
    result.write(folder)
    return [f"the plan of weeks {st.week}..{inst.n_weeks}; this week: {folder / 'this_week.csv'}",
            *result.plan.text_summary().splitlines()[:2], *(f"warning: {w.message}" for w in result.plan.warnings)]


def _thresholds(mo: MonitorStep) -> Thresholds:
    return Thresholds(band_low=mo.band[0], band_high=mo.band[1], band_weeks=mo.band_weeks, wape_max=mo.wape_max,
                      mase_max=mo.mase_max)


def _monitor(out: Path, seen: Path, applicants: Path, folder: Path, mo: MonitorStep,
             est: EstimateOptions) -> list[str]:
    """optplan monitor on the pipeline's own forecast, history, plan and applicant log."""
    result = monitor_files(out / "instance", seen, folder, out / "forecast" / "quantiles.csv",
                           out / "history" / "history.csv", out / "plan", applicants, _thresholds(mo), est.date_format,
                           applicant_options(est))
    return result.text().splitlines()


def _report(instance: Path, folder: Path, r: ReportStep, seed: int, watched=None) -> list[str]:
    rep = build_report(load_instance(instance), frontier_points=r.frontier_points,
                       service_points=r.service_points, oos_paths=r.oos_paths, seed=seed)
    if watched:  # the monitor step's watch as the report's "What happened so far"
        out, seen, applicants, th, est = watched
        rep.monitor = load_monitor(out / "instance", seen, out / "forecast" / "quantiles.csv",
                                   out / "history" / "history.csv", out / "plan", applicants, th, est.date_format,
                                   applicant_options(est))
    files = write_report(rep, folder)
    return [f"{len(files)} files; open {folder / 'report.html'}"]
