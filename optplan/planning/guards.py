"""Plausibility guards on a plan (issue #29): an optimal plan can still be one no planner
would act on (the shipped pipeline example's optimum kept one depot at 15 % driver
utilisation, idle penalties at 71 % of its cost). Each guard reads the plan's own tables (the
evaluator's numbers, nothing recomputed) and, past its threshold, says so in one line naming
the depot and week; the plan is still written. Thresholds: the instance's ``guards`` section
(optplan.io.schema.Guards; defaults there).

=======================  ====================================================================
guard                    fires when
=======================  ====================================================================
low_utilisation          a depot's drivers work less than ``utilisation_floor`` of the blocks
                         they offer (service.csv: driver_utilisation, share)
penalty_dominates        the idle or the unserved penalty is more than ``penalty_share`` of the
                         expected cost (cost.csv, currency)
one_channel              one channel brings more than ``one_channel_share`` of all applicants
jump                     a depot's applicants (all channels) change by more than ``jump_factor``
                         from one week to the next, both weeks with at least one applicant
                         and neither with applicants the planner set (decisions.csv)
budget_unused            the total budget is below 95 % used while the network's expected
                         service level is below ``service_floor``
costly_channel           more than ``costly_channel_share`` of the recruiting spend buys
                         applicants of a channel costing more than ``channel_cost_ratio`` times
                         per expected driver (cost_per_applicant / conversion, currency/driver)
                         than another channel the same depot could still have used that week
                         (below its applicant cap); the line says which, and how much faster
                         the costlier one brings drivers (the LP's usual reason)
=======================  ====================================================================
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from formulations.two_stage.bonus import base_channel
from formulations.two_stage.decisions import decided_cells
from optplan.io.schema import Guards

#: Share of the total budget under which it counts as not fully used (budget_unused).
BUDGET_USED = 0.95
#: Applicants a week must have on both sides for a jump to count.
JUMP_MIN_APPLICANTS = 1.0
#: Lines of one guard's kind shown (the rest are counted).
MAX_PER_GUARD = 5


@dataclass(frozen=True)
class PlanWarning:
    guard: str
    depot: str | None
    week: int | None
    message: str

    def to_dict(self) -> dict:
        return {"guard": self.guard, "depot": self.depot, "week": self.week, "message": self.message}


def plausibility(plan, guards: Guards | None = None) -> list[PlanWarning]:
    """The guards that fire on ``plan`` (optplan.planning.plan.Plan), in the table's order."""
    g = guards or Guards()
    out: list[PlanWarning] = []
    cur = plan.currency
    svc = plan.service
    low = svc[svc["driver_utilisation"] < g.utilisation_floor].sort_values("driver_utilisation")
    for row in low.head(MAX_PER_GUARD).itertuples(index=False):
        out.append(PlanWarning("low_utilisation", row.depot, None,
                            f"depot {row.depot}: drivers expected to work {row.driver_utilisation:.1%} of the blocks "
                            f"they offer (below {g.utilisation_floor:.0%}): more drivers than its demand needs"))
    if len(low) > MAX_PER_GUARD:
        out.append(PlanWarning("low_utilisation", None, None, f"... and {len(low) - MAX_PER_GUARD} more depots like it"))
    cost = plan.cost
    total = float(cost.get("total", 0.0))
    for key, words in (("idle_penalty", "idle blocks (drivers without work)"),
                       ("unserved_penalty", "unserved blocks (work not delivered)")):
        share = float(cost.get(key, 0.0)) / total if total > 0 else 0.0
        if share > g.penalty_share:
            out.append(PlanWarning("penalty_dominates", None, None,
                                f"the penalty for {words} is {share:.0%} of the expected cost ({cost[key]:,.2f} of "
                                f"{total:,.2f} {cur}; above {g.penalty_share:.0%}): check demand, blocks per driver "
                                "and the penalties"))
    x = np.asarray(plan.decisions.applicants, float)  # (D, C, T) applicants/week
    names = [base_channel(c) for c in plan.data.channels]  # a channel with its sign-on bonus variants is one
    by_channel = pd.Series(x.sum(axis=(0, 2)), index=names).groupby(level=0, sort=False).sum()
    if len(by_channel) > 1 and by_channel.sum() > 0:
        share = by_channel.max() / by_channel.sum()
        if share > g.one_channel_share:
            out.append(PlanWarning("one_channel", None, None,
                                f"channel {by_channel.idxmax()} brings {share:.1%} of all applicants (above "
                                f"{g.one_channel_share:.0%}): one channel's cost or cap decides the whole plan"))
    per_week = x.sum(axis=1) / plan.data.period_length[None, :]  # (D, T) applicants/week (long-lead: per period)
    jumps = 0
    decided = decided_cells(plan.data)[0].any(axis=1)  # (D, T) weeks where the planner set some applicants
    for d, depot in enumerate(plan.data.depots):
        a, b = per_week[d, :-1], per_week[d, 1:]
        both = (a >= JUMP_MIN_APPLICANTS) & (b >= JUMP_MIN_APPLICANTS)
        both &= ~(decided[d, :-1] | decided[d, 1:])  # a jump the planner's own decision makes is theirs to know
        ratio = np.where(both, np.maximum(a, b) / np.maximum(np.minimum(a, b), 1e-12), 1.0)
        for t in np.flatnonzero(ratio > g.jump_factor):
            jumps += 1
            if jumps <= MAX_PER_GUARD:
                week = int(plan.data.period_starts()[t + 1])
                out.append(PlanWarning("jump", depot, week,
                                       f"depot {depot}, week {week}: {b[t]:,.1f} applicants a week after {a[t]:,.1f} "
                                       f"the {'period' if plan.data.has_periods else 'week'} before (more than "
                                       f"{g.jump_factor:g} times)"))
    if jumps > MAX_PER_GUARD:
        out.append(PlanWarning("jump", None, None, f"... and {jumps - MAX_PER_GUARD} more jumps like these"))
    out += _costly_channels(plan, x, g)
    used = plan.kpis.get("budget_total_used_share", float("nan"))
    service = plan.kpis.get("service_level", float("nan"))
    if np.isfinite(used) and used < BUDGET_USED and np.isfinite(service) and service < g.service_floor:
        out.append(PlanWarning("budget_unused", None, None,
                            f"{used:.0%} of the total budget is used while the expected service level is "
                            f"{service:.1%} (below {g.service_floor:.0%}): another lever binds (caps, onboarding, "
                            "weekly or regional budgets)"))
    return out


#: Applicants below which a channel's week counts as unused, and a cap's room as none.
CAP_ROOM = 1e-6


def _costly_channels(plan, x: np.ndarray, g: Guards) -> list[PlanWarning]:
    """The costly_channel guard (module docstring). ``x``: (D, C, T) applicants per period."""
    d = plan.data
    per_driver = d.cost_per_driver()  # (C,) currency/driver
    lag = d.mean_lag()  # (C,) weeks
    cap = d.applicant_cap[:, :, None] * d.period_length[None, None, :]  # (D, C, T) applicants per period
    room = (cap - x > CAP_ROOM) & (d.applicant_cap[:, :, None] > 0)  # (D, C, T) could have taken more
    decided = decided_cells(d)[0]  # (D, C, T) the planner's own
    spend = x * d.cost_per_applicant[None, :, None]  # currency
    total = float(spend.sum())
    if total <= 0:
        return []
    out = []
    for c, channel in enumerate(d.channels):
        cheaper = per_driver * g.channel_cost_ratio < per_driver[c]  # (C,) channels that cost much less per driver
        if not cheaper.any():
            continue
        avoidable = (x[:, c, :] > CAP_ROOM) & ~decided[:, c, :] & (room & cheaper[None, :, None]).any(axis=1)
        share = float(spend[:, c, :][avoidable].sum()) / total
        if share > g.costly_channel_share:
            alt = int(np.argmin(np.where(cheaper, per_driver, np.inf)))
            speed = (f"the plan pays for speed: {channel} brings its drivers after {lag[c]:.1f} weeks on average, "
                     f"{d.channels[alt]} after {lag[alt]:.1f}" if lag[c] < lag[alt] else
                     f"and {channel} is not faster ({lag[c]:.1f} weeks to a first block on average against "
                     f"{lag[alt]:.1f})")
            out.append(PlanWarning(
                "costly_channel", None, None,
                f"channel {channel} takes {share:.0%} of the recruiting spend at {per_driver[c]:,.0f} {plan.currency} "
                f"per expected driver, while {d.channels[alt]} costs {per_driver[alt]:,.0f} and had room in "
                f"{int(avoidable.sum())} of those depot-weeks; {speed}: check both channels' costs, caps and yields"))
    return out
