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
    "cvar_alpha": ("Bad-weeks level (CVaR)", "share"),
    "cvar_cost": ("Cost of the bad weeks (CVaR)", "money"),
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
    "binding": ("Fully used", "text"),
    "cost_per_point": ("Saved per point lower", "money"),
    "currency": ("Currency", "text"),
    # marginal values
    "kind": ("Kind", "text"),
    "key": ("Which", "text"),
    "shadow_price": ("Saving per extra unit", "rate"),
    "unit": ("Per", "text"),
    "holds_from": ("Holds from", "number"),
    "holds_to": ("Holds to", "number"),
    # channels
    "channel": ("Channel", "text"),
    "applicants": ("Applicants", "applicants"),
    "cost_per_applicant": ("Cost per applicant", "money"),
    "reduced_cost": ("Price cut to be used more", "money"),
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
    "highs_one_column_from": ("Shape kept, one channel alone, from", "money"),
    "highs_one_column_to": ("Shape kept, one channel alone, to", "money"),
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


# ------------------------------------------------------------------ glossary
#: Planner words for the terms of the trade: (plain name, one-line meaning). The CLI summary,
#: the report and `optplan simulate` use the plain name and put the technical term in small
#: print beside it; the report's glossary lists every entry.
GLOSSARY: dict[str, tuple[str, str]] = {
    "expected cost": ("expected cost", "the cost averaged over the demand scenarios, each weighted by its probability"),
    "CVaR": ("cost of the bad weeks", "the average cost of the worst scenarios that together have the given probability "
             "(e.g. the worst 10 %): conditional value at risk, CVaR"),
    "binding": ("fully used", "a budget or target the plan runs up against: loosening it would lower the cost"),
    "shadow price": ("saving per extra unit", "how much expected cost one more unit of a budget (or target) would save: "
                     "the shadow price, valid within the range shown"),
    "reduced cost": ("price cut to be used more", "how much cheaper a channel's applicant would have to be before the "
                     "plan recruits more through it: its reduced cost"),
    "cost ranging": ("range where the plan keeps its shape", "how far a channel's cost can move before the plan "
                     "changes which channels it uses (HiGHS's one-column ranging)"),
    "RP": ("cost of the plan for uncertainty", "expected cost of the plan made for all scenarios at once "
           "(the recourse problem, RP)"),
    "EV": ("cost of the average-demand plan, as it thinks", "cost the average-demand plan expects, if demand were "
           "always its average (the expected-value problem, EV)"),
    "EEV": ("cost of the average-demand plan, in reality", "expected cost of the plan made for average demand when "
            "the scenarios happen (EEV)"),
    "WS": ("cost with perfect foresight", "expected cost if each scenario were known in advance and planned for "
           "(wait-and-see, WS)"),
    "VSS": ("value of planning for uncertainty", "how much the plan made for all scenarios saves against the plan made "
            "for average demand: EEV - RP (value of the stochastic solution, VSS)"),
    "EVPI": ("value of perfect foresight", "how much knowing the future demand in advance would be worth: RP - WS "
             "(expected value of perfect information, EVPI)"),
    "in-sample": ("over the plan's own scenarios", "the expected cost over the demand scenarios the plan was made "
                  "for (what `optplan solve` reports)"),
    "out of sample": ("over new simulated demand", "the expected cost over demand paths drawn afresh around the "
                      "scenarios, with week-to-week correlated noise (an AR(1) process): a fairer test than the "
                      "plan's own scenarios"),
    "AR(1)": ("week-to-week correlated noise", "noise in which a week above the scenario tends to be followed by "
              "another week above it (autoregressive of order 1)"),
    "gap": ("gap", "how far the plan's cost may at most be above the best possible cost, as a share"),
    "service level": ("service level", "the share of demanded blocks that drivers deliver"),
    "driver utilisation": ("driver utilisation", "the share of the blocks drivers offer that they get to work"),
}

#: What each simulated policy does, in one line (optplan simulate, the report).
POLICIES: dict[str, str] = {
    "static": "follow the plan made today for the whole horizon, whatever demand does",
    "dp": "the dynamic-programming rule: each week, recruit by a rule computed for every number of drivers",
    "rolling": "re-plan every week from the drivers actually there, with the original scenario weights",
    "rolling_mean": "re-plan every week from the drivers actually there, for average demand only",
    "rolling_bayes": "re-plan every week from the drivers there, re-weighting the scenarios by the demand seen so far",
    "rolling_reforecast": "rolling_bayes until the demand seen shows a new level; from then on re-plan with every "
                          "scenario re-levelled by each depot's last 4 weeks of demand, with the instance's weights",
    "basestock": "a simple rule tuned by simulation: recruit up to a target number of drivers each week",
    "basestock_bayes": "the simple target rule, its target moved by the demand seen so far",
    "myopic": "each week, recruit for the next 4 weeks' average need only, ignoring what comes later",
}


def term(key: str) -> str:
    """A term as a planner reads it, the technical name in brackets: "value of planning for
    uncertainty (VSS)"; a key not in the glossary is returned as it is."""
    if key not in GLOSSARY:
        return key
    plain = GLOSSARY[key][0]
    return plain if plain.lower() == key.lower() else f"{plain} ({key})"


def policy_words(name: str) -> str:
    """ "rolling_bayes: re-plan every week ..." (the name kept: it is what --policies takes)."""
    return f"{name}: {POLICIES[name]}" if name in POLICIES else name


def engine_words(engine: str) -> str:
    """The engine string of a status ("highs 1.16.0 (choose)") in words: what solved the plan."""
    name = engine.split()[0] if engine else ""
    version = engine.split()[1] if len(engine.split()) > 1 and engine.split()[1][:1].isdigit() else ""
    described = {
        "highs": f"HiGHS {version}".strip() + " (exact solver)",
        "glop": "OR-tools GLOP (exact linear program)",
        "dp": "the dynamic-programming heuristic (no bound)",
        "decompose": "the depot decomposition (exact, depots solved separately)",
    }.get(name, engine)
    if " with " in engine and "CVaR cuts" in engine:
        described += ", risk cuts"
    return described
