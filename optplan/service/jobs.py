"""What a run does: the same ``optplan`` command a planner runs at a terminal, in a child
process of a worker, on a stored dataset, writing into the attempt's folder.

One route: a run of kind ``solve`` with options ``{"time_limit": 60, "engine": "highs"}`` and
changes ``{"depots.A.retention": 0.8}`` is ``optplan solve <dataset> --out <attempt>/out
--time-limit 60 --engine highs --set depots.A.retention=0.8``: the same validation, progress
lines (the run's log), files (byte-identical to the CLI's) and exit status (0 done, 2 bad input,
3 a plan that is not proven optimal, 4 infeasible, ...). Options are checked at submission
against the command's own click parameters (names, types, choices such as the engine
registry); the ones that name paths or the server's resources (``--out``, ``--save-mps``,
``--scheduler``, ``--debug``) are the service's, not the request's.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import click

from optplan.cli import commands
from optplan.cli import forecast as cli_forecast
from optplan.cli.common import check_numbers
from optplan.errors import InputError, OptionError, Problem
from optplan.io.inputs import read_yaml_mapping
from optplan.io.instance import load_instance
from optplan.planning.pipeline import load_config

#: Run kind -> the dataset kind it reads.
KINDS = {"solve": "instance", "report": "instance", "simulate": "instance", "replan": "instance",
         "monitor": "instance", "pipeline": "pipeline", "forecast": "history", "backtest": "history"}
DATASET_KINDS = ("instance", "history", "logs", "pipeline")
#: Options that the service sets itself or withholds (paths on the server, cluster addresses,
#: tracebacks; monitor's --plan folder: a run watches the files of its own dataset).
SERVICE_OPTIONS = {"out", "debug", "save_mps", "scheduler", "quiet", "plan"}
#: Options whose value is a file inside the run's dataset (checked as a safe relative path).
DATASET_FILE_OPTIONS = {"state", "decisions", "demand", "applicants", "quantiles", "history"}
#: The pipeline config's file name inside a pipeline dataset.
PIPELINE_FILE = "pipeline.yaml"


def command_of(kind: str) -> click.Command:
    """The CLI command a run of ``kind`` is (its click parameters are the run's options)."""
    return {"solve": commands.solve, "report": commands.report, "simulate": commands.simulate,
            "replan": commands.replan, "monitor": commands.monitor_cmd, "pipeline": commands.pipeline, "forecast": cli_forecast.forecast,
            "backtest": cli_forecast.backtest}[kind]


def option_name(param: click.Option) -> str:
    """A run's name for a command option: its flag without dashes, '-' as '_' (--time-limit:
    time_limit, --scenarios: scenarios, --no-plots: no_plots)."""
    flag = max(param.opts, key=len) if all(o.startswith("--") for o in param.opts) else \
        next(o for o in param.opts if o.startswith("--"))
    return flag.lstrip("-").replace("-", "_")


def _options_of(kind: str) -> dict[str, click.Option]:
    out = {}
    for p in command_of(kind).params:
        if isinstance(p, click.Option) and option_name(p) not in SERVICE_OPTIONS:
            out[option_name(p)] = p
    return out


def check_options(kind: str, options: dict) -> list[str]:
    """Problems (one line each) with a run's options for ``kind``; empty when they are fine."""
    if kind not in KINDS:
        return [f"kind: expected one of {', '.join(KINDS)}, found {kind!r}"]
    allowed = {k: v for k, v in _options_of(kind).items() if k != "set"}
    problems = []
    for name, value in (options or {}).items():
        if name in ("set", "sets"):
            problems.append(f"options.{name}: what-if changes go in 'changes', not in the options")
            continue
        param = allowed.get(name)
        if param is None:
            problems.append(f"options.{name}: expected one of {', '.join(sorted(allowed))}, found {name!r}")
            continue
        if param.is_flag:
            if not isinstance(value, bool):
                problems.append(f"options.{name}: expected true or false, found {value!r}")
            continue
        if name in DATASET_FILE_OPTIONS:
            if not isinstance(value, str) or _unsafe(value):
                problems.append(f"options.{name}: expected a relative path of a file in the dataset, found {value!r}")
            continue
        values = value if param.multiple and isinstance(value, list) else [value]
        for v in values:
            if isinstance(v, (dict, list)) or v is None:
                problems.append(f"options.{name}: expected a single value, found {v!r}")
                continue
            try:
                converted = param.type.convert(str(v) if not isinstance(v, str) else v, param, None)
                check_numbers({name: converted})  # finite, seeds in range: as the CLI checks them
            except click.BadParameter as exc:
                problems.append(f"options.{name}: {exc.format_message()}")
            except OptionError as exc:
                problems.append(f"options.{name}: {exc}")
    return problems


def _unsafe(rel: str) -> bool:
    p = PurePosixPath(rel)
    return p.is_absolute() or ".." in p.parts or "\\" in rel or "\x00" in rel


def change_args(changes: dict) -> list[str]:
    out = []
    for path, value in (changes or {}).items():
        out += ["--set", f"{path}={value if isinstance(value, str) else json.dumps(value)}"]
    return out


def command_line(kind: str, dataset: Path, out: Path, options: dict, changes: dict,
                 scheduler: str | None = None) -> list[str]:
    """The argv of the child process (``python -m optplan ...``)."""
    allowed = _options_of(kind)
    target = dataset / PIPELINE_FILE if kind == "pipeline" else _history_file(dataset) if KINDS[kind] == "history" \
        else dataset
    argv = [sys.executable, "-m", "optplan", kind, str(target), "--out", str(out)]
    for name, value in (options or {}).items():
        param = allowed[name]
        flag = "--" + name.replace("_", "-") if "--" + name.replace("_", "-") in param.opts else param.opts[0]
        if param.is_flag:
            if value:
                argv.append(flag)
        elif name in DATASET_FILE_OPTIONS:
            argv += [flag, str(dataset / value)]
        else:
            for v in value if param.multiple and isinstance(value, list) else [value]:
                argv += [flag, str(v)]
    if scheduler and "backend" in allowed and "backend" not in (options or {}):
        argv += ["--backend", "dask", "--scheduler", scheduler]
    return argv + change_args(changes)


def _history_file(dataset: Path) -> Path:
    files = sorted(p for p in dataset.rglob("*.csv"))
    return files[0] if files else dataset


@dataclass
class Checked:
    """A dataset that passed its checks: its countries and a one-line summary."""

    countries: list[str]
    summary: str
    meta: dict | None = None


def _channel_costs(inst) -> list[dict]:
    """Each channel's cost per applicant as the instance states it (per country where
    channel_costs.csv has the channel there): the what-if path, the value and its currency."""
    currency = inst.manifest.horizon.currency
    rows = [{"channel": r.channel, "where": "", "path": f"channels[{r.channel}].cost_per_applicant",
             "cost": float(r.cost_per_applicant), "currency": currency}
            for r in inst.tables["channels"].itertuples()]
    costs = inst.tables.get("channel_costs")
    if costs is not None and len(costs):
        local = dict(zip(inst.tables["countries"]["country"].astype(str), inst.tables["countries"]["currency"],
                         strict=True)) if inst.tables.get("countries") is not None else {}
        rows += [{"channel": str(r.channel), "where": str(r.country),
                  "path": f"channel_costs[{r.country},{r.channel}].cost_per_applicant",
                  "cost": float(r.cost_per_applicant), "currency": local.get(str(r.country), currency)}
                 for r in costs.itertuples()]
    return rows


def check_dataset(kind: str, folder: Path) -> Checked:
    """Validate an unpacked dataset as the CLI would (InputError with every problem)."""
    if kind == "instance":
        inst = load_instance(folder)
        data = inst.model_data()
        countries = sorted({str(c) for c in (data.depot_country or ())} - {""})
        m = inst.manifest
        meta = {"start_date": str(m.horizon.start_date), "depots": list(data.depots),
                "regions": sorted(set(data.regions)), "currency": data.currency,
                # what the workspace's what-if form shows as the current values
                "region_of": dict(zip(data.depots, data.regions, strict=True)),
                "channel_cost": _channel_costs(inst),
                "country_currency": dict(sorted(zip(data.depot_country or (), data.depot_currency or (),
                                                    strict=True))),
                "region_currency": dict(zip(data.regions, data.depot_currency or [data.currency] * len(data.regions),
                                            strict=True)),
                "budgets": m.budgets.model_dump(mode="json"),
                "targets": {"service_level": m.targets.service_level,
                            "driver_utilisation": m.targets.driver_utilisation}}
        return Checked(countries, inst.summary().splitlines()[0], meta)
    if kind == "pipeline":
        cfg = folder / PIPELINE_FILE
        if not cfg.is_file():
            raise InputError([Problem(PIPELINE_FILE, None, None, "a pipeline config named pipeline.yaml at the top",
                                      "none")])
        raw = read_yaml_mapping(cfg, "a pipeline config (YAML)", PIPELINE_FILE, "a mapping of pipeline settings")
        inputs = raw.get("inputs") if isinstance(raw.get("inputs"), dict) else {}
        bad = [Problem(PIPELINE_FILE, None, f"inputs.{k}", "a relative path inside the dataset", str(v))
               for k, v in inputs.items() if isinstance(v, str) and _unsafe(v)]
        if bad:  # before anything reads them
            raise InputError(bad)
        config, _ = load_config(cfg)
        return Checked([], f"pipeline config {config.name if hasattr(config, 'name') else PIPELINE_FILE}")
    if kind == "history":
        files = sorted(folder.rglob("*.csv"))
        if len(files) != 1:
            raise InputError([Problem("upload", None, None, "exactly one CSV file of weekly history",
                                      f"{len(files)} CSV files")])
        return Checked([], f"history {files[0].name}")
    if kind == "logs":
        return Checked([], "logs: " + ", ".join(p.name for p in sorted(folder.rglob("*.csv"))))
    raise InputError([Problem("upload", None, "kind", f"one of {', '.join(DATASET_KINDS)}", kind)])
