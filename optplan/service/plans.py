"""A finished solve run's plan, read back from its files, for ``optplan.compare``'s table.

``compare`` reads a plan's expected cost by component, its KPIs and its decisions summed per
channel and per depot. A run keeps them in its outputs: ``summary.json`` (cost and KPIs, as
written, 10 significant digits) and ``applicants.csv`` / ``incentives.csv`` (decisions per
depot, channel and week, as written). The comparison is of the plans as their files state them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from formulations.data import Decisions
from optplan.io.instance import load_instance
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


def plan_of_outputs(instance_dir: Path, out_dir: Path) -> FilePlan:
    data = load_instance(instance_dir).model_data()
    summary = json.loads((out_dir / "summary.json").read_text())
    D, C, T = len(data.depots), len(data.channels), data.n_weeks
    x = np.zeros((D, C, T))
    apps = pd.read_csv(out_dir / "applicants.csv", dtype={"depot": str, "channel": str})
    if len(apps):
        d = apps["depot"].map({k: i for i, k in enumerate(data.depots)}).to_numpy()
        c = apps["channel"].map({k: i for i, k in enumerate(data.channels)}).to_numpy()
        np.add.at(x, (d, c, apps["week"].to_numpy() - 1), apps["applicants"].to_numpy(float))
    z = np.zeros((D, T, 1))
    inc_path = out_dir / "incentives.csv"
    if inc_path.is_file():
        inc = pd.read_csv(inc_path, dtype={"depot": str})
        if len(inc):
            d = inc["depot"].map({k: i for i, k in enumerate(data.depots)}).to_numpy()
            np.add.at(z, (d, inc["week"].to_numpy() - 1, 0), inc["spend"].to_numpy(float))
    cost = {k: float(v) for k, v in summary.get("expected_cost", {}).items() if isinstance(v, (int, float))}
    kpis = {k: float(v) for k, v in summary.get("kpis", {}).items() if isinstance(v, (int, float))}
    return FilePlan(_Shape(list(data.depots), list(data.channels)), summary.get("currency", data.currency), cost, kpis,
                    Decisions(x, z))


def table(a: FilePlan, b: FilePlan, labels: tuple[str, str]) -> pd.DataFrame:
    return compare(a, b, labels)
