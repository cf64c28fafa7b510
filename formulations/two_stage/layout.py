"""The one place that knows the order of the model's index sets, columns and rows.

Pyomo's sets (``sets.py``) are built from these index arrays, the HiGHS hand-off slices
columns and rows by component in declaration order, and the plan, the sensitivity report and
any engine map solver vectors back to (depot, channel, week) arrays through ``Layout``
only. Nobody else re-derives an order.

Orders (0-based positions into ``ModelData``'s id lists; Pyomo labels use 1-based weeks):

    applicants        RECRUIT: (d, c, t) where ``recruit_mask`` is True, lexicographic
    incentive_spend   SEGMENTS: (d, g) where ``segment_mask`` is True, lexicographic; weeks inside
    depot-week        DEPOT_WEEK: d, then t
    depot-week-scen.  DEPOT_WEEK_SCENARIO: d, then t, then s (the model's scenario positions)
    onboarding_cap    rows for (d, t) of depots with a finite cap, d then t
    budget_total      one row "total" when the cap is finite and something can be spent
    budget_week       weeks (1-based) with a finite cap and something to spend in them
    budget_region     regions with a finite cap and something to spend in them, in the
                      order of ``ModelData.budget_region``
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from formulations.data import Decisions, ModelData

#: Budget families in row order, each with the scope name a report shows.
BUDGET_FAMILIES = {"budget_total": "total", "budget_week": "week", "budget_region": "region", "budget_country": "country"}
#: Budget families over groups of depots (a region, a country): one row per capped group.
GROUP_BUDGETS = ("budget_region", "budget_country")


@dataclass(frozen=True)
class Layout:
    """Index sets of one ModelData, and the maps between solver vectors and arrays."""

    data: ModelData

    # ------------------------------------------------------------------ index sets
    @cached_property
    def recruit(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(d, c, t) positions of the applicant columns, in column order."""
        return np.nonzero(self.data.recruit_mask())

    @cached_property
    def segment_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(d, g) positions of the incentive segments that can buy blocks; each pair has one
        column per week, weeks inside pairs."""
        return np.nonzero(self.data.segment_mask())

    def recruit_labels(self) -> list[tuple[str, str, int]]:
        data, (dd, cc, tt) = self.data, self.recruit
        return [(data.depots[d], data.channels[c], int(t) + 1) for d, c, t in zip(dd, cc, tt, strict=True)]

    def segment_labels(self) -> list[tuple[str, int, int]]:
        data, (sd, sg) = self.data, self.segment_pairs
        T = data.n_weeks
        return [(data.depots[d], t, int(g) + 1) for d, g in zip(sd, sg, strict=True) for t in range(1, T + 1)]

    def depot_week_labels(self) -> list[tuple[str, int]]:
        return [(d, t) for d in self.data.depots for t in range(1, self.data.n_weeks + 1)]

    def onboarding_rows(self) -> list[tuple[int, int]]:
        """(d, t) positions of the onboarding-cap rows, in row order."""
        capped = np.flatnonzero(np.isfinite(self.data.onboarding_cap))
        return [(int(d), t) for d in capped for t in range(self.data.n_weeks)]

    @cached_property
    def _spend_weeks_and_depots(self) -> tuple[np.ndarray, np.ndarray]:
        """(T,) weeks and (D,) depots where some decision spends money."""
        data = self.data
        D, _, T, _ = data.shape
        weeks, depots = np.zeros(T, bool), np.zeros(D, bool)
        dd, _, tt = self.recruit
        weeks[tt] = True
        depots[dd] = True
        sd, _ = self.segment_pairs
        if len(sd):
            weeks[:] = True
            depots[sd] = True
        return weeks, depots

    def budget_rows(self, every_cap: bool = False) -> dict[str, list]:
        """Budget family -> the keys of its rows, in row order: ["total"], weeks (1-based),
        region ids, country ids. A cap with nothing to spend under it has no row, unless
        ``every_cap`` (a plan's budget table lists every finite cap, used or not)."""
        data = self.data
        weeks, depots = self._spend_weeks_and_depots
        if every_cap:
            weeks, depots = np.ones_like(weeks, bool), np.ones_like(depots, bool)
        total = ["total"] if np.isfinite(data.budget_total) and weeks.any() else []
        week_keys = [t + 1 for t in range(data.n_weeks) if np.isfinite(data.budget_weekly[t]) and weeks[t]]
        out = {"budget_total": total, "budget_week": week_keys}
        for family in GROUP_BUDGETS:
            groups = data.budget_groups(family)
            out[family] = [g for g, cap in data.group_caps(family).items() if np.isfinite(cap) and depots[groups == g].any()]
        return out

    # ------------------------------------------------------------------ vectors <-> arrays
    def decisions(self, applicants: np.ndarray, incentive_spend: np.ndarray) -> Decisions:
        """Dense Decisions from the applicant and incentive-spend column values."""
        data = self.data
        D, C, T, _ = data.shape
        x = np.zeros((D, C, T))
        x[self.recruit] = applicants
        z = np.zeros((D, T, data.incentive_width.shape[1]))
        sd, sg = self.segment_pairs
        if len(sd):
            z[sd[:, None], np.arange(T)[None, :], sg[:, None]] = np.asarray(incentive_spend).reshape(len(sd), T)
        return Decisions(x, z)

    def columns(self, decisions: Decisions) -> tuple[np.ndarray, np.ndarray]:
        """The inverse of ``decisions``: (applicant values, incentive-spend values) in column order."""
        sd, sg = self.segment_pairs
        z = decisions.incentive_spend[sd, :, sg] if len(sd) else np.zeros((0, self.data.n_weeks))
        return decisions.applicants[self.recruit], z.reshape(-1)

    def depot_week(self, values: np.ndarray) -> np.ndarray:
        """(D, T) from DEPOT_WEEK-ordered values."""
        D, _, T, _ = self.data.shape
        return np.asarray(values, float).reshape(D, T)

    def depot_week_scenario(self, values: np.ndarray) -> np.ndarray:
        """(D, T, S) from DEPOT_WEEK_SCENARIO-ordered values."""
        D, _, T, S = self.data.shape
        return np.asarray(values, float).reshape(D, T, S)

    def budget_duals(self, duals: dict[str, np.ndarray]) -> dict[tuple[str, str], float]:
        """(scope, key) -> row dual, e.g. ("week", "3"), from per-family dual vectors."""
        out = {}
        for family, keys in self.budget_rows().items():
            values = duals.get(family)
            if values is None:
                continue
            for key, value in zip(keys, values, strict=True):
                out[BUDGET_FAMILIES[family], str(key)] = float(value)
        return out
