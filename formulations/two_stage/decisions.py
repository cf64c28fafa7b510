"""The planner's committed decisions (issue #29 part 5): fixed, minimum or maximum applicants
per depot, channel and week, and the same for a depot's incentive spend in a week.

They are bounds on the first-stage columns, inside the columns' own bounds (``sets.py``):

    max(0, xmin[d,c,t]) <= x[d,c,t] <= min(applicant_cap[d,c] L_t, xmax[d,c,t])     applicants
    zmin[d,t] <= sum_g z[d,t,g] <= zmax[d,t]                                        currency

A bound on a week's total incentive spend becomes bounds on its segments, filled best rate
first (``drivers.IncentiveCurve.split``): the LP fills segments in that order anyway (the same
currency buys more blocks in a better segment), so

    split(zmin)[g] <= z[d,t,g] <= split(zmax)[g]

loses no plan and keeps every bound a column bound: no new rows, so every LP engine states
it by its column bounds (HiGHS, GLOP, the decomposition's depot subproblems) and the array
build equals the Pyomo build. With long-lead periods the values are per period (x L_t): the
segments' widths per week times L_t. Fixed is min = max. Money in the instance currency.

``column_bounds`` is the kernel every consumer reads (the Pyomo variables, the array build,
the evaluator's bound check, the orders); ``lowest_decisions`` is the least plan the
decisions allow (what the decomposition starts from, and what checks the budgets).
"""

from __future__ import annotations

import numpy as np

from formulations.data import Decisions, ModelData
from formulations.two_stage._pyomo import pyo
from formulations.two_stage.drivers import IncentiveCurve


def applicant_bounds(data: ModelData) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) (D, C, T) applicants per period: [0, applicant_cap L_t] narrowed by the
    planner's decisions (inf: no upper bound)."""
    D, C, T, _ = data.shape
    length = data.period_length
    upper = np.broadcast_to(data.applicant_cap[:, :, None] * length[None, None, :], (D, C, T)).copy()
    lower = np.zeros((D, C, T))
    if data.applicants_min is not None:
        lower = np.maximum(lower, data.applicants_min)
    if data.applicants_max is not None:
        upper = np.minimum(upper, data.applicants_max)
    return lower, upper


def spend_split(data: ModelData, totals: np.ndarray) -> np.ndarray:
    """(D, T, G) each segment's share of a total incentive spend per depot and period (D, T)
    (currency per period), filled best rate first; segments that buy nothing get none."""
    D, T = totals.shape
    length = data.period_length
    out = np.zeros((D, T, data.incentive_width.shape[1]))
    for d in range(D):
        out[d] = IncentiveCurve(data, d).split(totals[d] / length) * length[:, None]
    return out


def incentive_bounds(data: ModelData) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) (D, T, G) incentive spend per segment and period (currency): [0, width L_t]
    narrowed by the planner's bounds on each week's total (module docstring)."""
    D, T = data.shape[0], data.n_weeks
    width = data.incentive_width[:, None, :] * data.period_length[None, :, None]
    upper = np.broadcast_to(width, (D, T, width.shape[2])).copy()
    lower = np.zeros_like(upper)
    if data.incentive_min is not None:
        lower = np.minimum(spend_split(data, data.incentive_min), upper)
    if data.incentive_max is not None:
        finite = np.isfinite(data.incentive_max)
        capped = spend_split(data, np.where(finite, data.incentive_max, 0.0))
        upper = np.where(finite[:, :, None], np.minimum(upper, capped), upper)
    return lower, upper


def lowest_decisions(data: ModelData) -> Decisions:
    """The least plan the decisions allow: every lower bound (all zeros without decisions)."""
    return Decisions(applicant_bounds(data)[0], incentive_bounds(data)[0])


def decision_violations(data: ModelData, decisions: Decisions) -> dict[str, tuple[float, float]]:
    """numpy kernel of the bounds: family -> (largest violation, scale of the bound), as
    ``sets.bound_violations`` (applicants/period; currency per period)."""
    if not data.has_decisions:
        return {}
    x_lo, x_hi = applicant_bounds(data)
    z_total = decisions.incentive_spend.sum(axis=2)
    x = decisions.applicants
    out = {"decision_applicants": (
        max(np.max(x_lo - x, initial=0.0), np.max(np.where(np.isfinite(x_hi), x - x_hi, 0.0), initial=0.0)),
        max(np.max(x_lo, initial=1.0), 1.0))}
    lo = np.zeros_like(z_total) if data.incentive_min is None else data.incentive_min
    hi = np.full_like(z_total, np.inf) if data.incentive_max is None else data.incentive_max
    out["decision_incentives"] = (
        max(np.max(lo - z_total, initial=0.0), np.max(np.where(np.isfinite(hi), z_total - hi, 0.0), initial=0.0)),
        max(np.max(lo, initial=1.0), 1.0))
    return out


def decided_cells(data: ModelData) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks of the first-stage cells a decision bounds: applicants (D, C, T) and
    incentive spend (D, T)."""
    D, C, T, _ = data.shape
    x = np.zeros((D, C, T), bool)
    z = np.zeros((D, T), bool)
    if data.applicants_min is not None:
        x |= data.applicants_min > 0
    if data.applicants_max is not None:
        x |= np.isfinite(data.applicants_max)
    if data.incentive_min is not None:
        z |= data.incentive_min > 0
    if data.incentive_max is not None:
        z |= np.isfinite(data.incentive_max)
    return x, z


# ---------------------------------------------------------------------------- Pyomo rows


def define_decision_bounds(m: pyo.ConcreteModel, data: ModelData) -> None:
    """The decisions as bounds of the Pyomo variables x[d,c,t] and z[d,t,g] (no rows): the
    bounds ``applicant_bounds`` and ``incentive_bounds`` give, set where they narrow the
    variables' own."""
    if not data.has_decisions:
        return
    d_pos = {d: i for i, d in enumerate(data.depots)}
    c_pos = {c: i for i, c in enumerate(data.channels)}
    x_lo, x_hi = applicant_bounds(data)
    for (d, c, t), var in m.applicants.items():
        i, j = d_pos[d], c_pos[c]
        var.setlb(float(x_lo[i, j, t - 1]))
        var.setub(None if np.isinf(x_hi[i, j, t - 1]) else float(x_hi[i, j, t - 1]))
    z_lo, z_hi = incentive_bounds(data)
    for (d, t, g), var in m.incentive_spend.items():
        i = d_pos[d]
        var.setlb(float(z_lo[i, t - 1, g - 1]))
        var.setub(float(z_hi[i, t - 1, g - 1]))
