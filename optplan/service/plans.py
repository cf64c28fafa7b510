"""A finished solve run's plan, read back from its files, for ``optplan.compare``'s table.

``compare`` reads a plan's expected cost by component, its KPIs and its decisions summed per
channel and per depot. A run keeps them in its outputs: ``summary.json`` (cost and KPIs, as
written, 10 significant digits) and ``applicants.csv`` / ``incentives.csv`` (decisions per
depot, channel and week, as written); the instance's depot and channel tables give the ids of
those with no decision (read alone: the large demand table is not needed). The comparison is
of the plans as their files state them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from formulations.data import Decisions
from optplan.io.whatif import compare


@dataclass
class _Shape:
    depots: list[str]
    channels: list[str]


@dataclass
class FilePlan:
    """The parts of a Plan that ``compare`` reads, from a plan folder."""

    data: _Shape
    currency: str
    cost: dict[str, float]
    kpis: dict[str, float]
    decisions: Decisions


def _ids(instance_dir: Path, table: str, column: str) -> list[str]:
    """A key column of one of the instance's small tables (depots, channels), read alone: the
    comparison needs the ids, not the validated instance (whose demand table is the large one)."""
    manifest = yaml.safe_load((instance_dir / "instance.yaml").read_text()) or {}
    name = (manifest.get("files") or {}).get(table) or f"{table}.csv"
    path = instance_dir / name
    return pd.read_csv(path, dtype={column: str}, usecols=[column])[column].tolist() if path.is_file() else []


@lru_cache(maxsize=32)
def _plan_of_outputs(instance_dir: Path, out_dir: Path, stamp: tuple) -> FilePlan:
    summary = json.loads((out_dir / "summary.json").read_text())
    apps = pd.read_csv(out_dir / "applicants.csv", dtype={"depot": str, "channel": str})
    inc_path = out_dir / "incentives.csv"
    inc = pd.read_csv(inc_path, dtype={"depot": str}) if inc_path.is_file() else pd.DataFrame(
        columns=["depot", "week", "spend"])
    depots = list(dict.fromkeys([*_ids(instance_dir, "depots", "depot"), *apps["depot"], *inc["depot"]]))
    seen = list(dict.fromkeys(apps["channel"]))
    split = any("@" in c for c in seen)  # channels priced per country: the plan's ids are channel@country
    channels = seen if split else list(dict.fromkeys([*_ids(instance_dir, "channels", "channel"), *seen]))
    T = int(max([1, *apps["week"], *inc["week"]]))
    D, C = len(depots), len(channels)
    x = np.zeros((D, C, T))
    if len(apps):
        d = apps["depot"].map({k: i for i, k in enumerate(depots)}).to_numpy()
        c = apps["channel"].map({k: i for i, k in enumerate(channels)}).to_numpy()
        np.add.at(x, (d, c, apps["week"].to_numpy() - 1), apps["applicants"].to_numpy(float))
    z = np.zeros((D, T, 1))
    if len(inc):
        d = inc["depot"].map({k: i for i, k in enumerate(depots)}).to_numpy()
        np.add.at(z, (d, inc["week"].to_numpy(int) - 1, 0), inc["spend"].to_numpy(float))
    cost = {k: float(v) for k, v in summary.get("expected_cost", {}).items() if isinstance(v, (int, float))}
    kpis = {k: float(v) for k, v in summary.get("kpis", {}).items() if isinstance(v, (int, float))}
    return FilePlan(_Shape(depots, channels), summary.get("currency", ""), cost, kpis, Decisions(x, z))


def plan_of_outputs(instance_dir: Path, out_dir: Path) -> FilePlan:
    """The plan a finished run's files state (cached by the files' sizes and times: a run's
    outputs do not change once it finished)."""
    stamp = tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(out_dir.glob("*.csv")))
    return _plan_of_outputs(instance_dir, out_dir, stamp)


def table(a: FilePlan, b: FilePlan, labels: tuple[str, str]) -> pd.DataFrame:
    return compare(a, b, labels)
