"""Sign-on bonuses (issue #31 lever 1): money paid to each new driver who completes onboarding,
offered with a channel's applicants; it raises the channel's conversion along a concave
response, and is paid only on the drivers who convert.

A channel c with a bonus menu (levels j = 1..J: bonus B_j currency per converted driver,
conversion uplift u_j, a share: conversion p_c (1 + u_j)) becomes a pool of model channels,
the channel itself (j = 0: no bonus) and one variant per level, numbered after the instance's
channels. Variant (c, j) has

    yield[(c,j), k] = (1 + u_j) yield[c, k]                   drivers/applicant (same timing)
    cost[(c,j)]     = cost[c] + B_j (1 + u_j) p_c             currency/applicant
                      (the expected bonus: B_j per converted driver, p_c = sum_k yield[c, k])

and the pool shares the channel's applicant cap, one row per depot, pool and week where the
cap is finite (family ``applicant_pool``):

    sum_{j=0..J} x[d,(c,j),t] <= applicant_cap[d,c] L_t                         applicants/week

The program chooses how many of a week's applicants get each bonus level: the arrivals are
linear in those counts, so the program stays an LP and its conversion per applicant is the
concave hull of the menu's points (money per applicant B_j (1 + u_j) p_c, conversion
(1 + u_j) p_c). Exact when the planner may offer different bonuses to different applicants of
a week (an A/B offer); for one bonus for everyone it is the hull (a lower bound on the cost),
and a level under the hull is never chosen. Points of the menu need not be concave: the LP
takes the hull. The bonus is budgeted in the week the applicant is recruited, at its expected
value (as the cost per applicant is), in the instance currency.

Everything downstream (arrivals, driver stock, budgets, the evaluator, the DP's channels,
decomposition) sees variants as channels; only the pool rows are new. ``signon_cost`` splits a
plan's recruiting spend into the applicants' cost and the expected bonuses.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from formulations.data import ModelData
from formulations.two_stage._pyomo import pyo

#: How a variant channel is named: "<channel>+bonus<B>" (B in the instance currency, %g).
VARIANT_MARK = "+bonus"

# ---------------------------------------------------------------------------- numpy kernels


def variant_name(channel: str, bonus: float) -> str:
    """The model channel of ``channel`` with a sign-on bonus of ``bonus`` (currency per driver)."""
    return f"{channel}{VARIANT_MARK}{bonus:g}"


def base_channel(name: str) -> str:
    """The channel a model channel belongs to: ``name`` without its sign-on bonus mark."""
    return name.split(VARIANT_MARK)[0]


def with_signon_bonuses(data: ModelData, menu: list[tuple[int, float, float]]) -> ModelData:
    """``data`` with one variant channel per menu entry (channel position c, bonus B currency per
    converted driver, conversion uplift u as a share), appended after the channels in menu order:
    yield (1 + u) yield[c], cost cost[c] + B (1 + u) p_c, the channel's applicant caps and its
    committed-decision bounds' shape (variants: none), pooled with c (``applicant_pool``)."""
    if not menu:
        return data
    C = len(data.channels)
    base = np.array([c for c, _, _ in menu], dtype=int)
    bonus = np.array([b for _, b, _ in menu], float)
    uplift = np.array([u for _, _, u in menu], float)
    kernel = np.vstack([data.yield_kernel, data.yield_kernel[base] * (1.0 + uplift)[:, None]])
    conv = data.yield_kernel[base].sum(axis=1)
    cost = np.concatenate([data.cost_per_applicant, data.cost_per_applicant[base] + bonus * (1.0 + uplift) * conv])
    pool = np.arange(C) if data.applicant_pool is None else np.asarray(data.applicant_pool, int)
    signon = np.zeros(C) if data.signon_bonus is None else np.asarray(data.signon_bonus, float)
    names = tuple(data.channels) + tuple(variant_name(data.channels[c], b) for c, b, _ in menu)
    source = None if data.channel_source is None else tuple(data.channel_source) + tuple(
        data.channel_source[c] for c in base)

    def extend(a, fill):  # committed decisions (D, C, T): variants carry no bound of their own
        if a is None:
            return None
        D, _, T = a.shape
        return np.concatenate([a, np.full((D, len(menu), T), fill)], axis=1)

    return replace(
        data, channels=names, yield_kernel=kernel, cost_per_applicant=cost,
        applicant_cap=np.hstack([data.applicant_cap, data.applicant_cap[:, base]]),
        applicant_pool=np.concatenate([pool, pool[base]]), signon_bonus=np.concatenate([signon, bonus]),
        channel_source=source, applicants_min=extend(data.applicants_min, 0.0),
        applicants_max=extend(data.applicants_max, np.inf),
    )


def pool_members(data: ModelData) -> list[np.ndarray]:
    """Channel positions of each pool with more than one member (a channel and its bonus
    variants), in the order of the pool's first channel."""
    if data.applicant_pool is None:
        return []
    pool = np.asarray(data.applicant_pool, int)
    out = []
    for p in dict.fromkeys(pool.tolist()):
        members = np.flatnonzero(pool == p)
        if len(members) > 1:
            out.append(members)
    return out


def pool_rows(data: ModelData) -> list[tuple[int, int, int]]:
    """(depot, pool index into ``pool_members``, period) of each ``applicant_pool`` row, in row
    order: depot, then pool, then period; only where the pool's cap is finite and at least two of
    its channels can recruit in that period."""
    mask = data.recruit_mask()
    out = []
    members = pool_members(data)
    for d in range(len(data.depots)):
        for i, chans in enumerate(members):
            if not np.isfinite(data.applicant_cap[d, chans[0]]):
                continue
            for t in np.flatnonzero(mask[d, chans, :].sum(axis=0) > 1):
                out.append((d, i, int(t)))
    return out


def pooled_applicants(data: ModelData, applicants: np.ndarray) -> np.ndarray:
    """(D, P, T) applicants per depot, pool (``pool_members``) and period: sum over the pool's
    channels of x[d,c,t] (applicants/period)."""
    members = pool_members(data)
    D, _, T = applicants.shape
    out = np.zeros((D, len(members), T))
    for i, chans in enumerate(members):
        out[:, i, :] = applicants[:, chans, :].sum(axis=1)
    return out


def pool_excess(data: ModelData, applicants: np.ndarray) -> np.ndarray:
    """(D, P, T) pooled applicants beyond the pool's cap (applicants/period; <= 0 where the row
    holds, -inf where the cap is infinite): the left-hand side minus the right of every
    ``applicant_pool`` row."""
    members = pool_members(data)
    cap = np.stack([data.applicant_cap[:, m[0]] for m in members], axis=1) if members else np.zeros((len(data.depots), 0))
    return pooled_applicants(data, applicants) - cap[:, :, None] * data.period_length[None, None, :]


def signon_cost(data: ModelData, applicants: np.ndarray) -> np.ndarray:
    """(..., C, T) -> (..., T) expected sign-on bonuses paid (currency): sum_c B_c (1 + u) p_c
    x[..., c, t], i.e. the bonus per converted driver times the variant's conversion
    (``data.conversion()``) times its applicants. Zero without bonuses. Part of
    ``budgets.recruiting_spend``, which counts it in the cost per applicant."""
    if data.signon_bonus is None:
        return np.zeros(applicants.shape[:-2] + applicants.shape[-1:])
    per_applicant = np.asarray(data.signon_bonus, float) * data.conversion()
    return np.einsum("...ct,c->...t", applicants, per_applicant)


def signon_drivers(data: ModelData, applicants: np.ndarray) -> np.ndarray:
    """(D, C, T) expected drivers who convert under each channel's sign-on bonus (drivers):
    p_(c,j) x[d,c,t] for variants, 0 for channels without a bonus."""
    if data.signon_bonus is None:
        return np.zeros(applicants.shape)
    has = np.asarray(data.signon_bonus, float) > 0
    return applicants * (data.conversion() * has)[None, :, None]


def bonus_marginal_cost(data: ModelData, applicants: np.ndarray, price: np.ndarray) -> np.ndarray:
    """(C,) what one more currency unit of each level's bonus per driver adds to the optimum
    (currency per currency per driver): sum_{d,t} p_(c,j) x[d,c,t] (1 + price[d,t]), the drivers
    converting under it, each bonus unit also spent under the budgets with ``price`` (D, T)
    (``budgets.spend_price``: the shadow prices of the rows the spend enters). The envelope
    theorem: the derivative of the optimum by B_j, the plan kept; 0 for channels without a bonus."""
    return np.einsum("dct,dt->c", signon_drivers(data, applicants), 1.0 + price)


# ---------------------------------------------------------------------------- Pyomo rows


def define_applicant_pool_constraints(m: pyo.ConcreteModel, data: ModelData) -> None:
    """A channel and its bonus variants share the channel's applicant cap (rows in
    ``pool_rows`` order).

    sum_{c in pool} x[d,c,t] <= applicant_cap[d,c] L_t             applicants/week (/period)
    """
    rows = pool_rows(data)
    members = pool_members(data)
    length = data.period_length

    def rule(_m, d, i, t):
        chans = members[i]
        terms = [m.applicants[data.depots[d], data.channels[c], t + 1] for c in chans
                 if (data.depots[d], data.channels[c], t + 1) in m.applicants]
        return sum(terms) <= float(data.applicant_cap[d, chans[0]] * length[t])

    m.applicant_pool = pyo.Constraint(pyo.Set(initialize=rows, dimen=3, ordered=True), rule=rule)
