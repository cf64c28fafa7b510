"""Budget repair: move or scale spend so that every budget holds."""

from __future__ import annotations

import numpy as np

from formulations.data import ModelData
from formulations.two_stage.budgets import total_spend

#: Budgets count as met when spend <= cap * (1 + this).
BUDGET_RTOL = 1e-9


def repair_budgets(data: ModelData, x: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Scale spend down where a budget is exceeded (weeks, regions, total), in that order."""
    x, z = x.copy(), z.copy()
    notes = []
    B_w = data.budget_weekly
    shifted = scaled = 0
    T = data.n_weeks
    mask = data.recruit_mask()
    for t in range(T):
        spend_t = float(total_spend(data, x[:, :, t : t + 1], z[:, t : t + 1]).sum())
        if not spend_t > B_w[t] * (1 + BUDGET_RTOL):
            continue
        keep = B_w[t] / spend_t
        excess_x = x[:, :, t] * (1 - keep)
        x[:, :, t] *= keep
        z[:, t] *= keep
        if t + 1 < T:  # recruit the cut applicants one week later where that still lands in the horizon
            movable = excess_x * mask[:, :, t + 1]
            room = np.maximum(data.applicant_cap - x[:, :, t + 1], 0.0)
            moved = np.minimum(movable, room)
            x[:, :, t + 1] += moved
            shifted += 1
        else:
            scaled += 1
    if shifted or scaled:
        notes.append(f"weekly budget: applicants over the cap moved one week later in {shifted} week(s), cut in {scaled}")
    regions = np.asarray(data.regions)
    for r, cap in data.budget_region.items():
        m = regions == r
        s = float(total_spend(data, x[m], z[m]).sum())
        if np.isfinite(cap) and s > cap * (1 + BUDGET_RTOL):
            x[m] *= cap / s
            z[m] *= cap / s
            notes.append(f"region {r} budget: spend scaled by {cap / s:.6f}")
    s = float(total_spend(data, x, z).sum())
    if np.isfinite(data.budget_total) and s > data.budget_total * (1 + BUDGET_RTOL):
        x *= data.budget_total / s
        z *= data.budget_total / s
        notes.append(f"total budget: spend scaled by {data.budget_total / s:.6f}")
    return x, z, notes


