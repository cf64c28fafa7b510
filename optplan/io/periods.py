"""Long-lead periods: layouts of period lengths and weekly instances restated in them.

An instance may plan in coarser periods far out (``horizon.periods``: runs of periods of
whole weeks, e.g. 13 weeks, then 4-4-5 "months" for the rest of the year, then 13-week
quarters). The formulation converts the weekly rates per period
(formulations/two_stage/drivers.py; docs/formulation.md "Long-lead periods"); this module
only says which periods there are and turns a weekly instance's tables into per-period ones:

    demand     kept weekly (each period's recourse is then settled week by week), or blocks
               over the period (sum of its weeks) with week_profile=False
    pipeline   new drivers over the period (sum)
    supply     blocks per driver-week (mean of its weeks)
    everything else as it is (rates per week, caps per week, budgets per week)

Periods are whole weeks so that the weekly yield kernel and retention convert exactly
(a calendar month is 4.35 weeks: the 4-4-5 retail calendar keeps months in whole weeks).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from formulations.data import period_offsets
from optplan.errors import OptionError
from optplan.io.instance import from_tables

#: Weeks of one quarter: weekly periods for the first quarter of a long-lead layout, and the
#: length of its quarters.
QUARTER_WEEKS = 13
#: The 4-4-5 pattern of a quarter in months of whole weeks.
MONTHS_OF_QUARTER = (4, 4, 5)
WEEKS_PER_YEAR = 52
#: Decimals kept in per-period sums and means (blocks, drivers): beyond any input's precision.
PERIOD_DECIMALS = 6


def long_lead_runs(weeks: int) -> list[dict]:
    """The default long-lead layout of ``weeks`` weeks as runs [{weeks, count}]: weekly for the
    first quarter (13 weeks), 4-4-5 months up to week 52, then 13-week quarters; whatever is
    left at the end is one shorter period."""
    lengths: list[int] = [1] * min(weeks, QUARTER_WEEKS)
    left = weeks - len(lengths)
    month = 0
    while left > 0 and sum(lengths) < WEEKS_PER_YEAR:
        L = min(MONTHS_OF_QUARTER[month % 3], left, WEEKS_PER_YEAR - sum(lengths))
        lengths.append(L)
        left -= L
        month += 1
    while left > 0:
        L = min(QUARTER_WEEKS, left)
        lengths.append(L)
        left -= L
    return runs_of(lengths)


def runs_of(lengths) -> list[dict]:
    """Period lengths [1, 1, 4, 4, 5] as runs [{weeks: 1, count: 2}, {weeks: 4, count: 2}, ...]."""
    runs: list[dict] = []
    for L in lengths:
        if runs and runs[-1]["weeks"] == int(L):
            runs[-1]["count"] += 1
        else:
            runs.append({"weeks": int(L), "count": 1})
    return runs


def parse_periods(text: str, weeks: int) -> list[dict]:
    """``--periods``: 'long-lead' (``long_lead_runs``) or runs 'COUNTxWEEKS,...' such as
    '13x1,9x4,8x13' (13 one-week periods, then 9 of 4 weeks, then 8 of 13), adding up to ``weeks``."""
    text = text.strip()
    if text == "long-lead":
        return long_lead_runs(weeks)
    runs = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", part)
        if not m or int(m.group(1)) < 1 or not 1 <= int(m.group(2)) <= WEEKS_PER_YEAR:
            raise OptionError("--periods", "'long-lead' or runs COUNTxWEEKS separated by commas (e.g. 13x1,9x4,8x13; "
                              f"1 to {WEEKS_PER_YEAR} weeks each)", text)
        runs.append({"weeks": int(m.group(2)), "count": int(m.group(1))})
    total = sum(r["weeks"] * r["count"] for r in runs)
    if total != weeks:
        raise OptionError("--periods", f"periods adding up to the horizon ({weeks} weeks)", f"{text} = {total} weeks")
    return runs


def period_lengths(runs) -> np.ndarray:
    """(T,) weeks per period from runs (dicts or PeriodRun models)."""
    get = (lambda r, k: r[k]) if runs and isinstance(runs[0], dict) else getattr  # noqa: E731
    return np.concatenate([np.full(get(r, "count"), get(r, "weeks"), dtype=int) for r in runs])


def regroup_weekly(df: pd.DataFrame, lengths, keys: list[str], value: str, how: str) -> pd.DataFrame:
    """A week-numbered table (a ``week`` column, 1-based) with one row per period instead:
    ``value`` summed ("sum") or averaged ("mean") over the weeks of each period, the row
    named by the period's first week, rounded to PERIOD_DECIMALS."""
    if not len(df):
        return df
    lengths = np.asarray(lengths, dtype=int)
    start_of = np.repeat(period_offsets(lengths) + 1, lengths)  # (W,) first week of each week's period
    out = df.assign(week=start_of[df["week"].to_numpy(int) - 1])
    out = out.groupby(keys, sort=False, as_index=False)[value].agg(how)
    out[value] = out[value].round(PERIOD_DECIMALS)  # no float noise (2410.3999999999996) in the files
    return out


def in_periods(instance, runs, week_profile: bool = True):
    """A weekly instance restated in long-lead periods ``runs`` (module docstring), validated
    like a file (an ``Instance``). The weekly instance is not modified. ``week_profile``
    (default): demand.csv keeps every week, so the model settles each period's recourse week
    by week (ModelData.demand_share); False: one row per period with its total (demand even
    within a period)."""

    if instance.period_weeks is not None:
        raise OptionError("--periods", "a weekly instance (this one has horizon.periods already)", "periods")
    lengths = period_lengths(runs)
    if lengths.sum() != instance.n_weeks:
        raise OptionError("--periods", f"periods adding up to the horizon ({instance.n_weeks} weeks)",
                          f"{int(lengths.sum())} weeks")

    tables = {k: v.drop(columns=[c for c in v.columns if c.startswith("_")]) for k, v in instance.tables.items()}
    if not week_profile:  # else demand stays weekly: each period's recourse settled week by week
        tables["demand"] = regroup_weekly(tables["demand"], lengths, ["depot", "week", "scenario"], "blocks", "sum")
    tables["pipeline"] = regroup_weekly(tables["pipeline"], lengths, ["depot", "week"], "new_drivers", "sum")
    sup = tables["supply"]
    if len(sup):  # weeks without a supply row offer the depot's constant: fill them before averaging
        base = instance.tables["depots"].set_index("depot")["blocks_per_driver"]
        full = pd.MultiIndex.from_product([instance.depots, range(1, instance.n_weeks + 1)], names=["depot", "week"])
        given = sup.set_index(["depot", "week"])["blocks_per_driver"]
        filled = given.reindex(full)
        filled = filled.fillna(pd.Series(base.reindex(full.get_level_values("depot")).to_numpy(), index=full))
        tables["supply"] = regroup_weekly(filled.reset_index(), lengths, ["depot", "week"], "blocks_per_driver", "mean")
    manifest = instance.manifest.model_dump(mode="json", exclude_none=False)
    manifest["horizon"]["periods"] = [dict(r) for r in runs] if isinstance(runs[0], dict) else [
        {"weeks": r.weeks, "count": r.count} for r in runs]
    return from_tables(manifest, tables)
