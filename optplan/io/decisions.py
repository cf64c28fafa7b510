"""decisions.csv: the planner's committed decisions, read into the model's bounds, and the
checks that refuse a commitment no plan can keep (issue #29 part 5).

A row fixes, raises or caps one lever at one depot (or ``*``, every depot) in one week (with
long-lead periods: the period that starts in that week):

    depot,channel,week,lever,rule,value,currency,note
    D001,referral,1,applicants,fixed,12,,campaign committed
    *,agency,3,applicants,max,0,,agency contract paused
    D002,,2,incentive_spend,min,500,EUR,promotion already announced

Applicants are per week of the instance's channel (``*``: every channel; with per-country
channel costs, the depot's country's copy of it); incentive spend is the week's total over
the depot's segments, in ``currency`` (empty: horizon.currency; or the depot's country's,
converted at its fx_rate). Rules on the same cell combine (the plan meets all of them).
The arrays are ``ModelData.applicants_min/max`` and ``incentive_min/max``; the math is in
formulations/two_stage/decisions.py.

Refused, one line each naming the row (InstanceError, exit status 2): a value above the
channel's applicant cap or the depot's incentive segments; rules that contradict each other;
commitments whose spend alone breaks a budget (total, a week's, a region's, a country's);
committed recruits whose expected new drivers alone pass a depot's onboarding cap.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from formulations.data import ModelData
from formulations.two_stage.budgets import budget_usage
from formulations.two_stage.decisions import lowest_decisions
from formulations.two_stage.drivers import IncentiveCurve, onboarding_excess, recruited_arrivals
from formulations.two_stage.layout import BUDGET_FAMILIES
from optplan.errors import Problem
from optplan.io.schema import DECISION_LEVERS, DECISION_RULES, EVERY

#: Relative slack before a commitment counts as breaking a cap (rounding in a planner's file).
COMMIT_RTOL = 1e-9
#: Lines named in one problem at most.
SHOWN_LINES = 6


class _Row:
    """A decisions.csv row by attribute (empty optional cells as "")."""

    def __init__(self, rec: dict):
        self.__dict__.update({k: ("" if v is None or (isinstance(v, float) and np.isnan(v)) else v)
                              for k, v in rec.items()})


def cells(table: pd.DataFrame, depots, channels, channel_source, depot_country, period_of_week) -> pd.DataFrame:
    """Each row of decisions.csv expanded to the model cells it bounds: columns line, lever,
    rule, value (as written), d, c (model channel; -1 for incentive spend), t (period)."""
    depots = list(depots)
    d_pos = {d: i for i, d in enumerate(depots)}
    c_pos = {c: i for i, c in enumerate(channels)}
    out = []
    for pos, rec in enumerate(table.to_dict("records")):
        row = _Row(rec)
        ds = range(len(depots)) if row.depot == EVERY else [d_pos[row.depot]]
        t = period_of_week[int(row.week)]
        line = int(rec.get("_line", pos + 2))  # the header is line 1
        for d in ds:
            if row.lever == "incentive_spend":
                out.append((line, row.lever, row.rule, float(row.value), str(row.currency or ""), d, -1, t))
                continue
            names = sorted({*(channel_source or channels)}) if row.channel == EVERY else [row.channel]
            for name in names:
                model = name if channel_source is None else f"{name}@{depot_country[d]}"
                out.append((line, row.lever, row.rule, float(row.value), "", d, c_pos[model], t))
    return pd.DataFrame(out, columns=["line", "lever", "rule", "value", "currency", "d", "c", "t"])


def bounds(expanded: pd.DataFrame, shape: tuple[int, int, int], currency: str, depot_currency, depot_fx) -> dict:
    """The ModelData fields applicants_min/max, incentive_min/max from expanded cells (None for
    a field no row sets). Incentive values in a depot's local currency are converted by its fx."""
    D, C, T = shape
    out = {"applicants_min": None, "applicants_max": None, "incentive_min": None, "incentive_max": None}
    if expanded.empty:
        return out
    value = expanded["value"].to_numpy(float).copy()
    local = expanded["currency"].ne("") & expanded["currency"].ne(currency)
    if local.any() and depot_fx is not None:
        value[local.to_numpy()] *= np.asarray(depot_fx)[expanded.loc[local, "d"].to_numpy()]
    for lever, lo_key, hi_key, cell_shape in (("applicants", "applicants_min", "applicants_max", (D, C, T)),
                                              ("incentive_spend", "incentive_min", "incentive_max", (D, T))):
        rows = (expanded["lever"] == lever).to_numpy()
        if not rows.any():
            continue
        idx = ((expanded["d"].to_numpy()[rows], expanded["c"].to_numpy()[rows], expanded["t"].to_numpy()[rows])
               if lever == "applicants" else (expanded["d"].to_numpy()[rows], expanded["t"].to_numpy()[rows]))
        rule = expanded["rule"].to_numpy()[rows]
        v = value[rows]
        lo, hi = np.zeros(cell_shape), np.full(cell_shape, np.inf)
        raise_lo = np.isin(rule, ("fixed", "min"))
        cut_hi = np.isin(rule, ("fixed", "max"))
        np.maximum.at(lo, tuple(i[raise_lo] for i in idx), v[raise_lo])
        np.minimum.at(hi, tuple(i[cut_hi] for i in idx), v[cut_hi])
        out[lo_key] = lo if raise_lo.any() else None
        out[hi_key] = hi if cut_hi.any() else None
    return out


def row_problems(table: pd.DataFrame, depots: set, channels: set, file: str, currency: str,
                 depot_currency: dict | None) -> list[Problem]:
    """Each row on its own: a known lever and rule, a channel exactly for applicants, known ids,
    a currency only for incentive spend (horizon.currency or every named depot's)."""
    out = []
    for rec in table.to_dict("records"):
        row, line = _Row(rec), int(rec["_line"])
        if row.lever not in DECISION_LEVERS:
            out.append(Problem(file, line, "lever", f"one of {', '.join(DECISION_LEVERS)}", repr(row.lever)))
            continue
        if row.rule not in DECISION_RULES:
            out.append(Problem(file, line, "rule", f"one of {', '.join(DECISION_RULES)}", repr(row.rule)))
        if row.depot != EVERY and row.depot not in depots:
            out.append(Problem(file, line, "depot", "a depot id listed in the depot table, or *",
                               f"unknown depot '{row.depot}'"))
        if row.lever == "applicants":
            if not row.channel:
                out.append(Problem(file, line, "channel", "a channel id (or *) for applicants", "an empty cell"))
            elif row.channel != EVERY and row.channel not in channels:
                out.append(Problem(file, line, "channel", "a channel id listed in the channel table, or *",
                                   f"unknown channel '{row.channel}'"))
            if row.currency:
                out.append(Problem(file, line, "currency", "an empty cell (applicants are counted, not paid)",
                                   repr(row.currency)))
        else:
            if row.channel:
                out.append(Problem(file, line, "channel", "an empty cell for incentive_spend (a depot's spend over "
                                   "all its segments)", repr(row.channel)))
            if row.currency and row.currency != currency:
                named = list(depot_currency) if row.depot == EVERY else [row.depot]
                wrong = [d for d in named if depot_currency is None or depot_currency.get(d) != row.currency]
                if wrong:
                    out.append(Problem(file, line, "currency",
                                       f"{currency} (horizon.currency) or the currency of depot {wrong[0]}'s country"
                                       f" ({(depot_currency or {}).get(wrong[0], currency)})", repr(row.currency)))
    return out


def _lines(expanded: pd.DataFrame, mask) -> str:
    lines = sorted(set(expanded.loc[mask, "line"].astype(int)))
    shown = ", ".join(map(str, lines[:SHOWN_LINES])) + (", ..." if len(lines) > SHOWN_LINES else "")
    return f"line{'s' if len(lines) > 1 else ''} {shown}"


def feasibility_problems(data: ModelData, expanded: pd.DataFrame, file: str, week_of_period) -> list[Problem]:
    """Commitments no plan can keep (module docstring), each naming the rows of ``file``."""
    out: list[Problem] = []
    cur = data.currency
    length = data.period_length
    is_x = (expanded["lever"] == "applicants").to_numpy()
    d, c, t = (expanded[k].to_numpy() for k in ("d", "c", "t"))
    raises = expanded["rule"].isin(("fixed", "min")).to_numpy()
    # 1. a committed number above what the channel or the segments can take
    if data.applicants_min is not None:
        cap = data.applicant_cap[:, :, None] * length[None, None, :]
        over = np.argwhere(data.applicants_min > cap * (1 + COMMIT_RTOL))
        for i, j, k in over[:SHOWN_LINES]:
            rows = is_x & raises & (d == i) & (c == j) & (t == k)
            out.append(Problem(file, int(expanded.loc[rows, "line"].min()), "value",
                               f"at most the channel's applicant_cap at depot {data.depots[i]}, {cap[i, j, k]:g} "
                               f"applicants in week {week_of_period[k]}", f"{data.applicants_min[i, j, k]:g}"))
    if data.incentive_min is not None:
        most = np.array([IncentiveCurve(data, i).max_spend for i in range(len(data.depots))])[:, None] * length[None, :]
        over = np.argwhere(data.incentive_min > most * (1 + COMMIT_RTOL) + 1e-9)
        for i, k in over[:SHOWN_LINES]:
            rows = ~is_x & raises & (d == i) & (t == k)
            out.append(Problem(file, int(expanded.loc[rows, "line"].min()), "value",
                               f"at most depot {data.depots[i]}'s incentive segments' total max_spend (with a "
                               f"positive blocks_per_currency), {most[i, k]:,.2f} {cur} in week {week_of_period[k]}",
                               f"{data.incentive_min[i, k]:,.2f} {cur}"))
    # 2. rules that contradict each other
    for lever, lo, hi in (("applicants", data.applicants_min, data.applicants_max),
                          ("incentive_spend", data.incentive_min, data.incentive_max)):
        if lo is None or hi is None:
            continue
        for cell in np.argwhere(lo > hi * (1 + COMMIT_RTOL) + 1e-9)[:SHOWN_LINES]:
            mine = (expanded["lever"] == lever).to_numpy() & (d == cell[0]) & (t == cell[-1])
            if lever == "applicants":
                mine &= c == cell[1]
            out.append(Problem(file, int(expanded.loc[mine & raises, "line"].min()), "value",
                               f"a value its other rules allow ({_lines(expanded, mine & ~raises)} cap it at "
                               f"{hi[tuple(cell)]:g})", f"at least {lo[tuple(cell)]:g}"))
    if out:
        return out
    # 3. the committed spend alone against every budget (the budgets kernel on the least plan)
    least = lowest_decisions(data)
    committed = raises & (expanded["value"].to_numpy(float) > 0)
    for family, (keys, used, caps) in budget_usage(data, least, every_cap=True).items():
        for key, u, cap in zip(keys, used, caps, strict=True):
            if u <= cap * (1 + COMMIT_RTOL) + 1e-9:
                continue
            scope = committed.copy()
            if family == "budget_week":
                scope &= t == key - 1
            elif family != "budget_total":
                groups = data.budget_groups(family)
                scope &= np.isin(d, np.flatnonzero(groups == key))
            where = {"budget_total": "budgets.total", "budget_week": f"budgets.weekly (week {key})",
                     "budget_region": f"budgets.regions.{key}", "budget_country": f"budgets.countries.{key}"}[family]
            out.append(Problem(file, int(expanded.loc[scope, "line"].min()) if scope.any() else None, "value",
                               f"commitments whose spend fits {where}, {cap:,.2f} {cur} ({BUDGET_FAMILIES[family]} "
                               f"budget)", f"{u:,.2f} {cur} committed by {_lines(expanded, scope)}"))
    # 4. committed recruits alone passing an onboarding cap (beyond what the pipeline already does)
    if data.applicants_min is not None:
        arrivals = recruited_arrivals(data, least.applicants)
        before = onboarding_excess(data, np.zeros_like(arrivals))
        after = onboarding_excess(data, arrivals)
        bad = np.argwhere((after > 1e-6) & (after > before + 1e-9))
        for i, k in bad[:SHOWN_LINES]:
            rows = is_x & raises & (d == i) & (t <= k)
            out.append(Problem(file, int(expanded.loc[rows, "line"].min()) if rows.any() else None, "value",
                               f"commitments whose expected new drivers fit depot {data.depots[i]}'s onboarding_cap, "
                               f"{data.onboarding_cap[i] * length[k]:g} drivers in week {week_of_period[k]}",
                               f"{arrivals[i, k] + data.pipeline[i, k]:.2f} drivers by {_lines(expanded, rows)}"))
    return out
