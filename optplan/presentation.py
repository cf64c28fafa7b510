"""Planner language for what optplan shows people (the HTML report, notebook display): each
machine key (``service_level``, ``cost_per_point``) gets a plain label and a kind, and each
kind one format: money with thousands separators and two decimals, shares as percentages,
blocks and drivers with thousands separators, never scientific notation, never 'nan'.

The files (CSV, JSON) keep the machine keys and full precision: this module is only for
reading. A key not listed gets its underscores turned into spaces, so no snake_case reaches a
planner even for a new column.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

#: key -> (label, kind); kinds: money, share, blocks, drivers, applicants, number, week, text.
LABELS: dict[str, tuple[str, str]] = {
    # plan KPIs
    "expected_cost": ("Expected cost", "money"),
    "expected_demand_blocks": ("Expected demand (blocks)", "blocks"),
    "expected_unserved_blocks": ("Expected unserved blocks", "blocks"),
    "expected_surge_blocks": ("Expected surge blocks", "blocks"),
    "expected_idle_blocks": ("Expected idle blocks", "blocks"),
    "service_level": ("Service level", "share"),
    "driver_utilisation": ("Driver utilisation", "share"),
    "blocks_per_driver_week": ("Blocks per active driver-week", "number"),
    "planned_capacity_blocks": ("Planned capacity (blocks)", "blocks"),
    "applicants_total": ("Applicants recruited", "applicants"),
    "expected_new_drivers_recruited": ("New drivers expected from recruiting", "drivers"),
    "first_stage_spend": ("Recruiting and incentive spend", "money"),
    "cvar_alpha": ("CVaR level", "share"),
    "cvar_cost": ("CVaR of cost", "money"),
    "worst_scenario_cost": ("Worst scenario's cost", "money"),
    "budget_total_used_share": ("Share of the total budget used", "share"),
    # service by depot
    "depot": ("Depot", "text"),
    "region": ("Region", "text"),
    "demand_blocks": ("Demand (blocks)", "blocks"),
    "unserved_blocks": ("Unserved blocks", "blocks"),
    "capacity_blocks": ("Capacity (blocks)", "blocks"),
    "idle_blocks": ("Idle blocks", "blocks"),
    "driver_weeks": ("Driver-weeks", "number"),
    # targets
    "target": ("Target", "text"),
    "scope": ("Scope", "text"),
    "target_share": ("Target", "share"),
    "achieved_share": ("Achieved", "share"),
    "binding": ("Binds", "text"),
    "cost_per_point": ("Saved per point lower", "money"),
    "currency": ("Currency", "text"),
    # marginal values
    "kind": ("Kind", "text"),
    "key": ("Which", "text"),
    "shadow_price": ("Shadow price", "rate"),
    "unit": ("Per", "text"),
    "holds_from": ("Holds from", "number"),
    "holds_to": ("Holds to", "number"),
    # channels
    "channel": ("Channel", "text"),
    "applicants": ("Applicants", "applicants"),
    "cost_per_applicant": ("Cost per applicant", "money"),
    "reduced_cost": ("Reduced cost", "money"),
    "cheaper_by_to_recruit_more": ("Cheaper by, to recruit more", "money"),
    "cost_from": ("Cost range from", "money"),
    "cost_to": ("Cost range to", "money"),
    "basis_same_from": ("Same plan shape from", "money"),
    "basis_same_to": ("Same plan shape to", "money"),
    # frontiers and tornado
    "budget_total": ("Total budget", "money"),
    "service_target": ("Service target", "share"),
    "utilisation_floor": ("Utilisation floor", "share"),
    "feasible": ("Feasible", "text"),
    "parameter": ("Parameter", "text"),
    "change": ("Change", "share"),
    "cost_change": ("Change in expected cost", "money"),
    "applicants_change": ("Change in applicants", "applicants"),
    "measure": ("Measure", "text"),
    "highs_one_column_from": ("HiGHS one-column range from", "money"),
    "highs_one_column_to": ("HiGHS one-column range to", "money"),
    "incentive_spend": ("Incentive spend", "money"),
    "lowest_depot_utilisation": ("Lowest depot's utilisation", "share"),
    "value": ("Value", "money"),
    "week": ("Week", "week"),
}


#: Tornado parameters and other ids that are keys, in words.
PARAMETER_LABELS = {
    "blocks_per_driver": "blocks per driver",
    "churn": "driver churn",
    "conversion": "funnel conversion",
    "cost_per_applicant": "cost per applicant",
    "demand_level": "demand level",
    "unserved_penalty": "unserved penalty",
    "service_level": "service level",
    "driver_utilisation": "driver utilisation",
}


def words(value: str) -> str:
    """An id that is a machine key (a tornado parameter, a target family) in words."""
    return PARAMETER_LABELS.get(value, str(value).replace("_", " "))


def label(key: str) -> str:
    """The planner's label of a machine key (underscores to spaces when not listed)."""
    if key in LABELS:
        return LABELS[key][0]
    text = str(key).replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def kind(key: str) -> str:
    if key in LABELS:
        return LABELS[key][1]
    k = str(key)
    if k.endswith(("_share", "_level", "_rate")) or "utilisation" in k:
        return "share"
    if any(w in k for w in ("cost", "spend", "price", "budget")):
        return "money"
    return "number"


def fmt(value, what: str, currency: str | None = None, with_currency: bool = False) -> str:
    """One value in the format of its kind; '' for a missing or non-finite value ('no limit'
    where a range is open is the caller's word)."""
    if value is None or isinstance(value, str):
        return "" if value is None else words(value) if what == "text" else value
    if isinstance(value, bool):
        return "yes" if value else "no"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(v):
        return ""
    if what == "text":
        return words(value) if isinstance(value, str) else str(value)
    if what == "share":
        return f"{100 * v:.2f} %"
    if what == "week":
        return f"{int(round(v))}"
    if what == "money":
        text = f"{v:,.2f}" if abs(v) >= 0.01 or v == 0 else f"{v:,.4f}"
        return f"{text} {currency}" if with_currency and currency else text
    if what == "rate":  # a price per unit that may be small: 4 significant digits, positional
        if abs(v) >= 100:
            return f"{v:,.2f}"
        return np.format_float_positional(v, precision=4, unique=False, fractional=False, trim="-")
    if what in ("blocks", "drivers", "applicants"):
        return f"{v:,.1f}" if abs(v) >= 10 else f"{v:,.2f}"
    # a plain number: two decimals from 1 on, four below, never e-notation
    if v == 0:
        return "0"
    if abs(v) >= 1:
        return f"{v:,.2f}"
    return f"{v:.4f}"


def planner_table(df: pd.DataFrame, currency: str | None = None) -> pd.DataFrame:
    """A copy of ``df`` with planner labels as headers (money columns name the currency) and
    every value formatted by its column's kind."""
    out = pd.DataFrame(index=df.index)
    for col in df.columns:
        if col == "currency" and currency:  # the headers name it
            continue
        what = kind(col)
        if what == "number" and not pd.api.types.is_numeric_dtype(df[col]):
            what = "text"
        head = label(col)
        if what == "money" and currency and col != "currency":
            head = f"{head} ({currency})"
        out[head] = [fmt(v, what, currency) for v in df[col]]
    return out


def kpi_rows(kpis: dict[str, float], currency: str) -> list[tuple[str, str]]:
    """(label, formatted value) for each KPI; money with its currency, non-finite left out."""
    rows = []
    for key, value in kpis.items():
        text = fmt(value, kind(key), currency, with_currency=True)
        if text:
            rows.append((label(key), text))
    return rows
