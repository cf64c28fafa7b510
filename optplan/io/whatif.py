"""What-if changes to an instance, validated like a file, and plan-to-plan comparison.

``Instance.with_changes`` (this module's ``apply_changes``) takes assignments by path:

=================================  ================================================================
path                               changes
=================================  ================================================================
``budgets.total``                  a manifest field (any section: horizon, recourse, penalties,
                                   budgets); ``None`` removes an optional cap
``channels.cost_per_applicant``    a table column, every row
``channels[referral].applicant_cap``  one row, picked by its key (``depots[D001]``,
                                   ``demand[D001,3,base]``: the table's key columns in order);
                                   the first key values alone pick every row under them
                                   (``demand[D001].blocks``: every week and scenario of D001)
``targets.service_level_by_region.R01``  one entry of a mapping field (``budgets.regions.R01``,
                                   ``targets.service_level_by_depot.D001``); ``None`` removes it
=================================  ================================================================

A value may be a number, a string, ``None``, or ``Scale(f)`` (the CLI's ``*f``): the current
value times f, e.g. ``{"demand.blocks": Scale(1.1)}`` for 10 % more demand everywhere. The
changed instance is re-validated by the same code as a file (``instance.from_tables``), so a
bad value gets the same one-line message naming the file, line and field (exit status 2 in
the CLI); an unknown path or row key is reported the same way, naming the path.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import yaml

from optplan.errors import InstanceError, Problem
from optplan.io.schema import TABLE_BY_NAME

_ROW = re.compile(r"^(?P<table>[a-z_]+)\[(?P<key>[^\]]*)\]\.(?P<column>[a-z_]+)$")
_COLUMN = re.compile(r"^(?P<head>[a-z_]+)\.(?P<tail>[a-z_]+)$")
#: SECTION.FIELD.KEY: one entry of a mapping field, e.g. targets.service_level_by_region.R01
_ENTRY = re.compile(r"^(?P<head>[a-z_]+)\.(?P<field>[a-z_]+)\.(?P<key>[^.=]+)$")
SOURCE = "--set"  # the 'file' named in problems with a change itself


@dataclass(frozen=True)
class Scale:
    """Multiply the current value(s) by ``factor``."""

    factor: float


def parse_assignment(text: str) -> tuple[str, object]:
    """'path=value' of the CLI's --set into (path, value): the value is read as a YAML scalar
    (5000, 0.25, null, USD), or '*f' for Scale(f)."""
    path, sep, raw = text.partition("=")
    path, raw = path.strip(), raw.strip()
    if not sep or not path:
        raise InstanceError([Problem(SOURCE, None, text, "PATH=VALUE, e.g. budgets.total=5000", repr(text))])
    if raw.startswith("*"):
        try:
            factor = float(raw[1:])
        except ValueError:
            factor = float("nan")
        if not math.isfinite(factor):  # *nan would empty every cell it scales, one message per cell
            raise InstanceError([Problem(SOURCE, None, path, "*FACTOR with a finite number, e.g. *1.1", repr(raw))])
        return path, Scale(factor)
    try:
        value = yaml.safe_load(raw) if raw else None
    except (yaml.YAMLError, ValueError):  # ValueError: a date YAML cannot build (2027-02-29): the text, checked as such
        value = raw
    if isinstance(value, dict):  # 'a: b' is not a value; keep the text (validation names it)
        value = raw
    return path, value


def apply_changes(instance, changes: dict[str, object]):
    """A new validated Instance with ``changes`` applied (module docstring); the instance
    given is not modified. Raises InstanceError listing every problem."""
    manifest = instance.manifest.model_dump(mode="json")
    tables = {name: df.copy() for name, df in instance.tables.items()}
    problems: list[Problem] = []
    for path, value in changes.items():
        row = _ROW.match(path)
        col = _COLUMN.match(path)
        entry = _ENTRY.match(path)
        if entry and isinstance(manifest.get(entry["head"]), dict) and isinstance(
                manifest[entry["head"]].get(entry["field"]), dict):
            mapping = manifest[entry["head"]][entry["field"]]
            if value is None:
                mapping.pop(entry["key"], None)
            elif isinstance(value, Scale):
                if isinstance(mapping.get(entry["key"]), (int, float)):
                    mapping[entry["key"]] = mapping[entry["key"]] * value.factor
                else:
                    problems.append(Problem(SOURCE, None, path, "a number to scale", repr(mapping.get(entry["key"]))))
            else:
                mapping[entry["key"]] = value
        elif row and row["table"] in TABLE_BY_NAME:
            _set_cells(tables, TABLE_BY_NAME[row["table"]], row["column"], value, path, problems, key=row["key"])
        elif col and col["head"] in TABLE_BY_NAME:
            _set_cells(tables, TABLE_BY_NAME[col["head"]], col["tail"], value, path, problems)
        elif col and isinstance(manifest.get(col["head"]), dict) and col["head"] != "files":
            section = manifest[col["head"]]
            if col["tail"] not in section:
                problems.append(Problem(SOURCE, None, path, f"a field of '{col['head']}': {', '.join(section)}", col["tail"]))
                continue
            current = section[col["tail"]]
            if isinstance(value, Scale):
                if isinstance(current, list):
                    section[col["tail"]] = [v * value.factor for v in current]
                elif isinstance(current, (int, float)) and not isinstance(current, bool):
                    section[col["tail"]] = current * value.factor
                else:
                    problems.append(Problem(SOURCE, None, path, "a number to scale", repr(current)))
            else:
                section[col["tail"]] = value
        else:
            sections = [k for k, v in manifest.items() if isinstance(v, dict) and k != "files"]
            problems.append(Problem(SOURCE, None, path,
                                    f"SECTION.FIELD ({', '.join(sections)}), TABLE.COLUMN or TABLE[KEY].COLUMN "
                                    f"({', '.join(TABLE_BY_NAME)})", path))
    try:
        changed = instance.rebuilt(manifest, tables)  # validated like a file (instance.from_tables)
    except InstanceError as exc:
        raise InstanceError(problems + list(exc.problems), getattr(exc, "omitted", 0)) from None
    if problems:
        raise InstanceError(problems)
    return changed


def _set_cells(tables, spec, column: str, value, path: str, problems: list[Problem], key: str | None = None) -> None:
    df = tables[spec.name]
    if column not in df.columns or column in spec.key:
        allowed = [c for c in df.columns if c not in spec.key]
        problems.append(Problem(SOURCE, None, path, f"a column of {spec.name}: {', '.join(allowed)}", column))
        return
    if isinstance(value, (list, dict, tuple)):  # a cell holds one value
        problems.append(Problem(SOURCE, None, path, "one value for the cells (a number, text, null or *FACTOR)",
                                f"a {'list' if isinstance(value, (list, tuple)) else 'mapping'}"))
        return
    mask = pd.Series(True, index=df.index)
    if key is not None:
        parts = [p.strip() for p in key.split(",")]
        if not 1 <= len(parts) <= len(spec.key):  # a prefix of the key picks every row under it
            problems.append(Problem(SOURCE, None, path, f"1 to {len(spec.key)} key value(s): {', '.join(spec.key)}",
                                    key))
            return
        for k, v in zip(spec.key, parts, strict=False):
            mask &= df[k].astype(str) == v
        if not mask.any():
            problems.append(Problem(SOURCE, None, path, f"a row of {spec.name} with {', '.join(spec.key[:len(parts)])} = {key}",
                                    "no such row"))
            return
    if isinstance(value, Scale):
        current = pd.to_numeric(df.loc[mask, column], errors="coerce")
        df[column] = df[column].astype(object)
        df.loc[mask, column] = current * value.factor
    else:
        df[column] = df[column].astype(object)
        df.loc[mask, column] = np.nan if value is None else value


def compare(a, b, labels: tuple[str, str] = ("a", "b")) -> pd.DataFrame:
    """A tidy table of what differs between plans ``a`` and ``b``: one row per expected-cost
    component and KPI (``kind`` cost / kpi), and per channel and per depot the applicants
    recruited and incentive spend over the horizon (``kind`` decision); columns ``item``,
    ``unit``, the two values, ``difference`` (b - a) and ``relative`` (difference / |a|, empty
    where a is 0). Channels and depots are matched by id, so plans of different weeks or of
    networks that gained or lost a depot compare too: a depot only one plan has is empty
    (NaN) on the other side."""
    la, lb = labels
    cur = a.currency
    rows = []
    for k in a.cost:
        rows.append(("cost", k, cur, a.cost[k], b.cost.get(k, np.nan)))
    for k in a.kpis:
        rows.append(("kpi", k, _kpi_unit(k, cur), a.kpis[k], b.kpis.get(k, np.nan)))

    def by_name(names, values) -> dict[str, float]:
        return {str(n): float(v) for n, v in zip(names, values, strict=True)}

    sides = []
    for plan in (a, b):
        x, z = plan.decisions.applicants, plan.decisions.incentive_spend
        sides.append((by_name(plan.data.channels, x.sum(axis=(0, 2))), by_name(plan.data.depots, x.sum(axis=(1, 2))),
                      by_name(plan.data.depots, z.sum(axis=(1, 2)))))
    (ca, da, za), (cb, db, zb) = sides
    for name in list(dict.fromkeys([*ca, *cb])):
        rows.append(("decision", f"applicants {name}", "applicants", ca.get(name, np.nan), cb.get(name, np.nan)))
    for name in list(dict.fromkeys([*da, *db])):
        rows.append(("decision", f"applicants at {name}", "applicants", da.get(name, np.nan), db.get(name, np.nan)))
        rows.append(("decision", f"incentive spend at {name}", cur, za.get(name, np.nan), zb.get(name, np.nan)))
    out = pd.DataFrame(rows, columns=["kind", "item", "unit", la, lb])
    out["difference"] = out[lb] - out[la]
    out["relative"] = out["difference"] / out[la].abs().where(out[la] != 0)  # NaN (an empty cell) where a is 0
    return out


def _kpi_unit(name: str, currency: str) -> str:
    if name.endswith("_share") or name == "service_level":
        return "share"
    if name.endswith("_blocks"):
        return "blocks"
    if name in ("expected_cost", "first_stage_spend"):
        return currency
    if name.startswith("applicants"):
        return "applicants"
    if "drivers" in name:
        return "drivers"
    return "-"
