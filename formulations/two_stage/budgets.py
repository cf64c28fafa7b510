"""Budgets on first-stage spend (recruiting plus planned incentives), in the instance currency.

Pyomo rows and the numpy kernel of the same sums side by side. Rows exist only where a cap
is given and something can be spent under it (``Layout.budget_rows``):

    total:      sum_{d,c,t} cost[c] x[d,c,t] + sum_{d,t,g} z[d,t,g] <= B           currency
    per week:   sum_{d,c}   cost[c] x[d,c,t] + sum_{d,g}   z[d,t,g] <= B_t         currency
    per region: sum_{d in r,c,t} cost[c] x[d,c,t] + sum_{d in r,t,g} z <= B_r     currency
    per country: the same over the depots of country k               <= B_k     currency
"""

from __future__ import annotations

import numpy as np

from formulations.data import Decisions, ModelData
from formulations.two_stage._pyomo import pyo
from formulations.two_stage.layout import BUDGET_FAMILIES, GROUP_BUDGETS, Layout

# ---------------------------------------------------------------------------- numpy kernels


def spend(data: ModelData, decisions: Decisions) -> tuple[np.ndarray, np.ndarray]:
    """(recruiting, planned incentives), each (D, T) currency: cost[c] x[d,c,t] summed over
    channels, z[d,t,g] summed over segments. Spend is booked in the week it is decided."""
    return recruiting_spend(data, decisions.applicants), decisions.incentive_spend.sum(axis=-1)


def recruiting_spend(data: ModelData, applicants: np.ndarray) -> np.ndarray:
    """Recruiting spend (currency) of applicants (..., C, T): sum_c cost[c] x[..., c, t] -> (..., T)."""
    return np.einsum("...ct,c->...t", applicants, data.cost_per_applicant)


def total_spend(data: ModelData, applicants: np.ndarray, incentive_spend: np.ndarray) -> np.ndarray:
    """Recruiting plus planned incentive spend (currency) per leading index and week:
    applicants (..., C, T) and incentive spend (..., T, G) -> (..., T). The left-hand side
    of every budget row before it is summed over the row's depots and weeks."""
    return recruiting_spend(data, applicants) + incentive_spend.sum(axis=-1)


def budget_row_cover(data: ModelData, family: str, key) -> np.ndarray:
    """(D, T) True for the depot-weeks whose spend enters budget row ``key`` of ``family``
    (``Layout.budget_rows`` keys): every one for the total, week ``key`` (1-based) for a weekly
    cap, the depots of region or country ``key`` for a group cap."""
    D, T = len(data.depots), data.n_weeks
    cover = np.zeros((D, T), bool)
    if family == "budget_total":
        cover[:] = True
    elif family == "budget_week":
        cover[:, int(key) - 1] = True
    else:
        cover[data.budget_groups(family) == key, :] = True
    return cover


def spend_price(data: ModelData, duals: dict[tuple[str, str], float]) -> np.ndarray:
    """(D, T) what one more currency unit spent by depot d in period t costs beyond itself at the
    optimum (currency per currency): the sum of the shadow prices -dual >= 0 of the budget rows that
    spend enters (``duals`` keyed like ``Layout.budget_duals``: ("total", "total"), ("week", "3"),
    ("region", id), ("country", id)). By the envelope theorem a parameter that adds spend s to
    (d, t) raises the optimum by s (1 + price) at the margin. NaN where a row has no dual (an
    engine without duals)."""
    D, T = len(data.depots), data.n_weeks
    price = np.zeros((D, T))
    for family, keys in Layout(data).budget_rows().items():
        scope = BUDGET_FAMILIES[family]
        for key in keys:
            price[budget_row_cover(data, family, key)] += -duals.get((scope, str(key)), np.nan) + 0.0
    return price


def budget_usage(data: ModelData, decisions: Decisions, every_cap: bool = False,
                 ) -> dict[str, tuple[list, np.ndarray, np.ndarray]]:
    """Budget family -> (row keys, spend under each cap, cap), in ``Layout.budget_rows`` order
    (currency). The left-hand sides of the budget rows; with ``every_cap`` also the finite caps
    with nothing to spend under them (no row in the model; a plan's budget table lists them)."""
    recruiting, incentives = spend(data, decisions)
    by_dt = recruiting + incentives
    rows = Layout(data).budget_rows(every_cap)
    week = by_dt.sum(axis=0)
    out = {
        "budget_total": (rows["budget_total"], np.array([by_dt.sum()] * len(rows["budget_total"])),
                         np.array([data.budget_total] * len(rows["budget_total"]))),
        "budget_week": (rows["budget_week"], np.array([week[t - 1] for t in rows["budget_week"]]),
                        np.array([data.budget_weekly[t - 1] for t in rows["budget_week"]])),
    }
    for family in GROUP_BUDGETS:
        groups, caps = data.budget_groups(family), data.group_caps(family)
        out[family] = (rows[family], np.array([by_dt[groups == g].sum() for g in rows[family]]),
                       np.array([caps[g] for g in rows[family]]))
    return out


def budget_violations(data: ModelData, decisions: Decisions) -> dict[str, tuple[float, float]]:
    """Family -> (largest excess of spend over cap, largest cap) in currency (0 where every cap holds)."""
    out = {}
    for family, (_, used, cap) in budget_usage(data, decisions).items():
        out[family] = (float(np.max(used - cap, initial=0.0)), float(np.max(cap, initial=1.0)))
    return out


# ---------------------------------------------------------------------------- Pyomo rows


def define_budget_constraints(m: pyo.ConcreteModel, data: ModelData) -> None:
    """The budget rows above, one family per scope (``budget_total``, ``budget_week``,
    ``budget_region``), keyed as ``Layout.budget_rows``; ``first_stage_spend`` is the total
    spend as an Expression (currency)."""
    c_pos = {c: i for i, c in enumerate(data.channels)}
    group_of = {f: dict(zip(data.depots, data.budget_groups(f), strict=True)) for f in GROUP_BUDGETS}
    by_week: dict[int, list] = {t: [] for t in m.WEEKS}
    by_group: dict[str, dict[str, list]] = {f: {} for f in GROUP_BUDGETS}
    everything: list = []
    for d, c, t in m.RECRUIT:
        term = (float(data.cost_per_applicant[c_pos[c]]), m.applicants[d, c, t])
        by_week[t].append(term)
        for f in GROUP_BUDGETS:
            by_group[f].setdefault(group_of[f][d], []).append(term)
        everything.append(term)
    for d, t, g in m.SEGMENTS:
        term = (1.0, m.incentive_spend[d, t, g])
        by_week[t].append(term)
        for f in GROUP_BUDGETS:
            by_group[f].setdefault(group_of[f][d], []).append(term)
        everything.append(term)

    def total(terms):
        return sum(coef * var for coef, var in terms if coef != 0)

    rows = Layout(data).budget_rows()
    m.first_stage_spend = pyo.Expression(expr=total(everything))
    m.budget_total = pyo.Constraint(
        pyo.Set(initialize=rows["budget_total"]), rule=lambda _m, _k: m.first_stage_spend <= float(data.budget_total)
    )
    m.budget_week = pyo.Constraint(
        pyo.Set(initialize=rows["budget_week"], ordered=True),
        rule=lambda _m, t: total(by_week[t]) <= float(data.budget_weekly[t - 1]),
    )
    m.budget_region = pyo.Constraint(
        pyo.Set(initialize=rows["budget_region"], ordered=True),
        rule=lambda _m, r: total(by_group["budget_region"][r]) <= float(data.budget_region[r]),
    )
    m.budget_country = pyo.Constraint(
        pyo.Set(initialize=rows["budget_country"], ordered=True),
        rule=lambda _m, k: total(by_group["budget_country"][k]) <= float(data.budget_country[k]),
    )
