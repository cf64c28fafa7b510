"""Sign-on and referral bonuses (issue #31 levers 1 and 2): money paid per new driver who completes
onboarding, offered with a channel's applicants, paid only on the drivers who convert. A sign-on
bonus (paid to the new driver) raises the channel's conversion; a referral bonus (paid to the
driver who referred them) raises the channel's weekly applicant volume, its cap; a bonus may do
both. Each along a concave response, stated as a menu of levels.

A channel c with a menu (levels j = 1..J: bonus B_j currency per converted driver, conversion
uplift u_j and volume uplift g_j, shares) becomes a pool of model channels, the channel itself
(j = 0: no bonus, u_0 = g_0 = 0) and one variant per level, numbered after the instance's
channels. Variant (c, j) has

    yield[(c,j), k]  = (1 + u_j) yield[c, k]                  drivers/applicant (same timing)
    cost[(c,j)]      = cost[c] + B_j (1 + u_j) p_c            currency/applicant
                       (the expected bonus: B_j per converted driver, p_c = sum_k yield[c, k])
    cap[d, (c,j)]    = (1 + g_j) U[d,c]                       applicants/week

and the pool shares the channel's offer, one row per depot, pool and week where the cap is finite
(family ``applicant_pool``): level j offered to a share theta_j of the week brings at most
theta_j (1 + g_j) U applicants, and the shares add up to at most 1:

    sum_{j=0..J} x[d,(c,j),t] / (1 + g_j) <= U[d,c] L_t                      applicants/week (/period)

(for sign-on bonuses alone every g_j = 0: the channel's cap shared by its levels). The program
chooses how many of a week's applicants come under each level, so arrivals stay linear and the
program an LP: what a unit of bonus money buys (conversion, volume) is the concave hull of the
menu's points. Exact when the planner may offer different levels to different applicants or
referrers of a week (an A/B offer); for one level for everyone it is the hull (a lower bound on
that cost), and a level under the hull is never chosen: the menu's points need not be concave.
The bonus is budgeted in the week the applicant is recruited, at its expected value (as the cost
per applicant is), in the instance currency.

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


def with_signon_bonuses(data: ModelData, menu: list[tuple]) -> ModelData:
    """``data`` with one variant channel per menu entry (channel position c, bonus B currency per
    converted driver, conversion uplift u and, optionally, volume uplift g, shares), appended after
    the channels in menu order: yield (1 + u) yield[c], cost cost[c] + B (1 + u) p_c, applicant cap
    (1 + g) U[d,c], no committed-decision bound of its own, pooled with c (``applicant_pool``)."""
    if not menu:
        return data
    menu = [(int(m[0]), float(m[1]), float(m[2]), float(m[3]) if len(m) > 3 else 0.0) for m in menu]
    C = len(data.channels)
    base = np.array([m[0] for m in menu], dtype=int)
    bonus = np.array([m[1] for m in menu], float)
    uplift = np.array([m[2] for m in menu], float)
    volume = np.array([m[3] for m in menu], float)
    kernel = np.vstack([data.yield_kernel, data.yield_kernel[base] * (1.0 + uplift)[:, None]])
    conv = data.yield_kernel[base].sum(axis=1)
    cost = np.concatenate([data.cost_per_applicant, data.cost_per_applicant[base] + bonus * (1.0 + uplift) * conv])
    pool = np.arange(C) if data.applicant_pool is None else np.asarray(data.applicant_pool, int)
    signon = np.zeros(C) if data.signon_bonus is None else np.asarray(data.signon_bonus, float)
    names = tuple(data.channels) + tuple(variant_name(data.channels[c], b) for c, b, _, _ in menu)
    source = None if data.channel_source is None else tuple(data.channel_source) + tuple(
        data.channel_source[c] for c in base)

    def extend(a, fill):  # committed decisions (D, C, T): variants carry no bound of their own
        if a is None:
            return None
        D, _, T = a.shape
        return np.concatenate([a, np.full((D, len(menu), T), fill)], axis=1)

    return replace(
        data, channels=names, yield_kernel=kernel, cost_per_applicant=cost,
        applicant_cap=np.hstack([data.applicant_cap, data.applicant_cap[:, base] * (1.0 + volume)[None, :]]),
        applicant_pool=np.concatenate([pool, pool[base]]), signon_bonus=np.concatenate([signon, bonus]),
        channel_source=source, applicants_min=extend(data.applicants_min, 0.0),
        applicants_max=extend(data.applicants_max, np.inf),
    )


def pool_weights(data: ModelData, members: np.ndarray) -> np.ndarray:
    """(D, M) each pool member's coefficient in its ``applicant_pool`` rows: U[d,c] / cap[d,m] =
    1 / (1 + g_m) (shares of the week's offer per applicant; 1 for the channel itself and for
    levels that leave the volume alone; 0 where a member's cap is 0)."""
    cap = data.applicant_cap[:, members]
    base = cap[:, :1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(cap > 0, base / np.where(cap > 0, cap, 1.0), 0.0)


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
    """(D, P, T) the left-hand side of the ``applicant_pool`` rows per depot, pool
    (``pool_members``) and period: sum over the pool's channels of x[d,m,t] / (1 + g_m)
    (``pool_weights``; applicants/period at the channel's own volume)."""
    members = pool_members(data)
    D, _, T = applicants.shape
    out = np.zeros((D, len(members), T))
    for i, chans in enumerate(members):
        out[:, i, :] = np.einsum("dmt,dm->dt", applicants[:, chans, :], pool_weights(data, chans))
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
    """A channel and its bonus variants share the channel's offer (rows in ``pool_rows`` order).

    sum_{j in pool} x[d,(c,j),t] / (1 + g_j) <= applicant_cap[d,c] L_t     applicants/week (/period)
    """
    rows = pool_rows(data)
    members = pool_members(data)
    length = data.period_length

    def rule(_m, d, i, t):
        chans = members[i]
        weight = pool_weights(data, chans)[d]
        terms = [float(w) * m.applicants[data.depots[d], data.channels[c], t + 1] for c, w in zip(chans, weight, strict=True)
                 if (data.depots[d], data.channels[c], t + 1) in m.applicants]
        return sum(terms) <= float(data.applicant_cap[d, chans[0]] * length[t])

    m.applicant_pool = pyo.Constraint(pyo.Set(initialize=rows, dimen=3, ordered=True), rule=rule)
