"""The aggregated program as sparse arrays, built straight from ModelData (no Pyomo): the
fast path of model building at national scale.

It is the same LP as ``build_model(data, recourse="aggregated")`` compiled by Pyomo's
standard-form compiler: the same columns in the same order (``Layout``), the same rows in
the same order, the same coefficients, bounds and objective;
``tests/formulations/test_matrix_equals_pyomo.py`` compares the two matrices entry by
entry on random instances. Pyomo's build costs ~30 us per row in its expression walker;
this one is numpy throughout.

Each ``<family>_rows`` function restates, as a sparse block, the rows that the family's
``define_<family>_constraints`` writes in Pyomo (the math and units are in that docstring,
in drivers.py, aggregated.py and budgets.py). Departure from "one module per family": the
blocks sit here together because they share the column index, which only this module and
``Layout`` know; the equality test keeps them tied to the Pyomo rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from formulations.data import ModelData
from formulations.two_stage.aggregated import recourse_segments
from formulations.two_stage.bonus import pool_members, pool_rows, pool_weights
from formulations.two_stage.decisions import applicant_bounds, incentive_bounds
from formulations.two_stage.drivers import period_factors, period_yield_kernel
from formulations.two_stage.families import CONSTRAINT_FAMILIES
from formulations.two_stage.layout import GROUP_BUDGETS, Layout
from formulations.two_stage.risk import cut_segments
from formulations.two_stage.service import region_targets, target_rows


@dataclass
class StandardForm:
    """min c x + offset  s.t.  row_lower <= A x <= row_upper,  col_lower <= x <= col_upper
    (A column-wise), with where each variable component's columns and each constraint
    family's rows are. Any LP engine (HiGHS, GLOP) takes it from here."""

    c: np.ndarray
    offset: float
    A: Any  # scipy.sparse CSC matrix
    col_lower: np.ndarray
    col_upper: np.ndarray
    row_lower: np.ndarray
    row_upper: np.ndarray
    columns: dict[str, np.ndarray]  # variable component -> column of each element (-1: absent)
    rows: dict[str, slice]
    layout: Layout
    integer: np.ndarray | None = None  # bool per column (None: all continuous)

    @property
    def size(self) -> dict[str, int]:
        return {"variables": self.A.shape[1], "constraints": self.A.shape[0], "nonzeros": int(self.A.nnz)}


@dataclass
class _Columns:
    """Column of every variable element, in Layout / Pyomo declaration order."""

    x: np.ndarray  # (D, C, T) applicants, -1 where no variable
    z: np.ndarray  # (D, T, G) incentive spend, -1 where no variable
    n: np.ndarray  # (D, T) recruited arrivals
    a: np.ndarray  # (D, T) active drivers
    q: np.ndarray  # (D, T) capacity
    y: np.ndarray  # (D, T, K) recourse segments, -1 where none
    total: int
    components: dict[str, np.ndarray]


def _columns(data: ModelData, layout: Layout, used: np.ndarray) -> _Columns:
    D, C, T, _ = data.shape
    G = data.incentive_width.shape[1]
    start = 0

    def block(n):
        nonlocal start
        out = np.arange(start, start + n)
        start += n
        return out

    x = np.full((D, C, T), -1)
    cx = block(len(layout.recruit[0]))
    x[layout.recruit] = cx
    z = np.full((D, T, G), -1)
    sd, sg = layout.segment_pairs
    cz = block(len(sd) * T)
    if len(sd):
        z[sd[:, None], np.arange(T)[None, :], sg[:, None]] = cz.reshape(len(sd), T)
    cn, ca, cq = block(D * T), block(D * T), block(D * T)
    y = np.full(used.shape, -1)
    cy = block(int(used.sum()))
    y[used] = cy
    components = {"applicants": cx, "incentive_spend": cz, "recruited_arrivals": cn, "active_drivers": ca,
                  "capacity_blocks": cq, "recourse_segment": cy}
    return _Columns(x, z, cn.reshape(D, T), ca.reshape(D, T), cq.reshape(D, T), y, start, components)


@dataclass
class _Rows:
    """A block of rows: COO entries with local row numbers, and the rows' bounds."""

    n: int
    row: np.ndarray
    col: np.ndarray
    val: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


def _block(n, parts, lower, upper) -> _Rows:
    parts = [p for p in parts if len(p[0])]
    row = np.concatenate([np.asarray(p[0], np.int64) for p in parts]) if parts else np.zeros(0, np.int64)
    col = np.concatenate([np.asarray(p[1], np.int64) for p in parts]) if parts else np.zeros(0, np.int64)
    val = np.concatenate([np.broadcast_to(np.asarray(p[2], float), np.shape(p[0])) for p in parts]) if parts else np.zeros(0)
    return _Rows(n, row, col, val, np.broadcast_to(np.asarray(lower, float), (n,)), np.broadcast_to(np.asarray(upper, float), (n,)))


def arrivals_definition_rows(data: ModelData, cols: _Columns, layout: Layout) -> _Rows:
    """n[d,t] - sum_c sum_k yield[c,k] x[d,c,t-k] = 0 (drivers.define_arrivals_definition_constraints)."""
    D, C, T, _ = data.shape
    dd, cc, tt = layout.recruit
    parts = [(np.arange(D * T), cols.n.ravel(), 1.0)]
    if data.has_periods:  # n[d,t] - sum_c sum_s Y[c,s,t] x[d,c,s] = 0 (drivers.period_yield_kernel)
        Y = period_yield_kernel(data)[cc, tt]  # (R, T) each applicant column's arrivals by period
        r, t = np.nonzero(Y)
        parts.append((dd[r] * T + t, cols.x[dd[r], cc[r], tt[r]], -Y[r, t]))
        return _block(D * T, parts, 0.0, 0.0)
    for k in range(data.n_lags):
        coef = data.yield_kernel[cc, k]
        keep = (coef != 0) & (tt + k < T)
        parts.append((dd[keep] * T + tt[keep] + k, cols.x[dd[keep], cc[keep], tt[keep]], -coef[keep]))
    return _block(D * T, parts, 0.0, 0.0)


def driver_stock_rows(data: ModelData, cols: _Columns) -> _Rows:
    """a[d,t] - retention[d] a[d,t-1] - n[d,t] = pipeline[d,t] (+ retention a0 in week 1)
    (drivers.define_driver_stock_constraints)."""
    D, _, T, _ = data.shape
    r = np.arange(D * T).reshape(D, T)
    if data.has_periods:  # a[t] - rho^L_t a[t-1] - phi_t n[t] = phi_t pipeline[t] (+ rho^L_1 a0 in period 1)
        retained, arrive, _, _ = period_factors(data)
    else:
        retained, arrive = np.broadcast_to(data.retention[:, None], (D, T)), np.ones((D, T))
    rhs = arrive * data.pipeline.astype(float)
    rhs[:, 0] = retained[:, 0] * data.initial_active.astype(float) + arrive[:, 0] * data.pipeline[:, 0]
    previous = -retained[:, 1:]
    keep = previous != 0
    parts = [(r.ravel(), cols.a.ravel(), 1.0),
             (r[:, 1:][keep], cols.a[:, :-1][keep], previous[keep]),
             (r.ravel(), cols.n.ravel(), -arrive.ravel())]
    return _block(D * T, parts, rhs.ravel(), rhs.ravel())


def onboarding_cap_rows(data: ModelData, cols: _Columns, layout: Layout) -> _Rows:
    """n[d,t] <= onboarding_cap[d] - pipeline[d,t] (drivers.define_onboarding_cap_constraints)."""
    rows = layout.onboarding_rows()
    d = np.array([r[0] for r in rows], dtype=np.int64)
    t = np.array([r[1] for r in rows], dtype=np.int64)
    room = data.onboarding_cap[d] * data.period_length[t] - data.pipeline[d, t] if len(rows) else np.zeros(0)
    return _block(len(rows), [(np.arange(len(rows)), cols.n[d, t] if len(rows) else [], 1.0)], -np.inf, room)


def applicant_pool_rows(data: ModelData, cols: _Columns) -> _Rows:
    """sum_j x[d,(c,j),t] / (1 + g_j) <= applicant_cap[d,c] L_t (bonus.define_applicant_pool_constraints)."""
    rows = pool_rows(data)
    members = pool_members(data)
    weights = [pool_weights(data, m) for m in members]
    r, c, v, upper = [], [], [], []
    for i, (d, p, t) in enumerate(rows):
        col = cols.x[d, members[p], t]
        keep = col >= 0
        r.append(np.full(int(keep.sum()), i))
        c.append(col[keep])
        v.append(weights[p][d][keep])
        upper.append(data.applicant_cap[d, members[p][0]] * data.period_length[t])
    if not rows:
        return _block(0, [], -np.inf, 0.0)
    return _block(len(rows), [(np.concatenate(r), np.concatenate(c), np.concatenate(v))], -np.inf, np.array(upper))


def capacity_definition_rows(data: ModelData, cols: _Columns, layout: Layout) -> _Rows:
    """q[d,t] - b[d,t] a[d,t] - sum_g rate[d,g] z[d,t,g] = 0 (b = data.supply)
    (drivers.define_capacity_definition_constraints)."""
    D, _, T, _ = data.shape
    r = np.arange(D * T).reshape(D, T)
    rhs = 0.0
    if data.has_periods:  # q[t] - b alpha_t a[t] - b beta_t a[t-1] - ... = b beta_1 a0 in period 1 (driver_weeks)
        _, _, alpha, beta = period_factors(data)
        b = -data.supply * alpha
        prev = -data.supply[:, 1:] * beta[:, 1:]
        pk = prev != 0
        parts_prev = [(r[:, 1:][pk], cols.a[:, :-1][pk], prev[pk])]
        rhs = np.zeros((D, T))
        rhs[:, 0] = data.supply[:, 0] * beta[:, 0] * data.initial_active.astype(float)
        rhs = rhs.ravel()
    else:
        b = -data.supply
        parts_prev = []
    keep = b != 0
    parts = [(r.ravel(), cols.q.ravel(), 1.0), (r[keep], cols.a[keep], b[keep]), *parts_prev]
    sd, sg = layout.segment_pairs
    if len(sd):
        rows = (sd[:, None] * T + np.arange(T)[None, :]).ravel()
        parts.append((rows, cols.z[sd[:, None], np.arange(T)[None, :], sg[:, None]].ravel(),
                      np.repeat(-data.incentive_rate[sd, sg], T)))
    return _block(D * T, parts, rhs, rhs)


def recourse_link_rows(data: ModelData, cols: _Columns, used: np.ndarray) -> _Rows:
    """q[d,t] - sum_k recourse_segment[d,t,k] = 0 (aggregated.define_aggregated_recourse)."""
    D, _, T, _ = data.shape
    dd, tt, _kk = np.nonzero(used)
    return _block(D * T, [(np.arange(D * T), cols.q.ravel(), 1.0), (dd * T + tt, cols.y[used], -1.0)], 0.0, 0.0)


def budget_caps(data: ModelData, layout: Layout) -> dict[str, np.ndarray]:
    """Each budget family's row upper bounds (currency over the horizon, a week or a group), in
    ``Layout.budget_rows`` order: the right-hand sides of ``budget_rows``."""
    keys = layout.budget_rows()
    out = {"budget_total": np.full(len(keys["budget_total"]), float(data.budget_total)),
           "budget_week": np.array([data.budget_weekly[t - 1] for t in keys["budget_week"]], dtype=float)}
    for family in GROUP_BUDGETS:
        caps = data.group_caps(family)
        out[family] = np.array([caps[g] for g in keys[family]], dtype=float)
    return out


def budget_rows(data: ModelData, cols: _Columns, layout: Layout) -> dict[str, _Rows]:
    """Recruiting plus incentive spend under each cap (budgets.define_budget_constraints)."""
    T = data.n_weeks
    dd, cc, tt = layout.recruit
    cost = data.cost_per_applicant[cc]
    xk = cost != 0
    sd, sg = layout.segment_pairs
    zd = np.repeat(sd, T)
    zt = np.tile(np.arange(T), len(sd))
    zc = cols.z[zd, zt, np.repeat(sg, T)] if len(sd) else np.zeros(0, np.int64)
    keys = layout.budget_rows()
    rhs = budget_caps(data, layout)
    out = {}
    # total
    n = len(keys["budget_total"])
    parts = [] if not n else [(np.zeros(xk.sum()), cols.x[dd[xk], cc[xk], tt[xk]], cost[xk]), (np.zeros(len(zc)), zc, 1.0)]
    out["budget_total"] = _block(n, parts, -np.inf, rhs["budget_total"])
    # weeks
    week_row = np.full(T, -1)
    week_row[np.array(keys["budget_week"], dtype=np.int64) - 1] = np.arange(len(keys["budget_week"]))
    xr, zr = week_row[tt], week_row[zt] if len(zt) else np.zeros(0, np.int64)
    parts = [(xr[xk & (xr >= 0)], cols.x[dd, cc, tt][xk & (xr >= 0)], cost[xk & (xr >= 0)]),
             (zr[zr >= 0], zc[zr >= 0], 1.0)]
    out["budget_week"] = _block(len(keys["budget_week"]), parts, -np.inf, rhs["budget_week"])
    # regions, countries: one row per capped group of depots
    for family in GROUP_BUDGETS:
        group_row = {g: i for i, g in enumerate(keys[family])}
        depot_row = np.array([group_row.get(g, -1) for g in data.budget_groups(family)], dtype=np.int64)
        xr = depot_row[dd]
        zr = depot_row[zd] if len(zd) else np.zeros(0, np.int64)
        parts = [(xr[xk & (xr >= 0)], cols.x[dd, cc, tt][xk & (xr >= 0)], cost[xk & (xr >= 0)]),
                 (zr[zr >= 0], zc[zr >= 0], 1.0)]
        out[family] = _block(len(keys[family]), parts, -np.inf, rhs[family])
    return out


def _stack(blocks: list[_Rows]) -> _Rows:
    """Blocks of rows one after another, as one block."""
    offsets = np.cumsum([0] + [b.n for b in blocks])
    parts = [(b.row + o, b.col, b.val) for b, o in zip(blocks, offsets, strict=False)]
    n = int(offsets[-1])
    if not n:
        return _block(0, [], 0.0, 0.0)
    return _Rows(n, np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                 np.concatenate([p[2] for p in parts]), np.concatenate([b.lower for b in blocks]),
                 np.concatenate([b.upper for b in blocks]))


def target_rows_block(data: ModelData, cols: _Columns, seg) -> dict[str, _Rows]:
    """The target rows of service.define_service_constraints (service.target_rows)."""
    out = {}
    rows = target_rows(data)
    D, _, T, _ = data.shape
    dd, tt, kk = np.nonzero(seg.used)
    served = -seg.unserved_slope[dd, tt, kk]
    idle = seg.idle_slope[dd, tt, kk]
    ycol = cols.y[dd, tt, kk]
    for family in ("service_target", "network_service_target", "region_service_target"):
        depots, need = rows[family]
        row_of = np.full(D, -1)
        if family == "service_target":
            row_of[depots] = np.arange(len(depots))
        elif family == "region_service_target":
            for i, members in enumerate(region_targets(data)[2]):
                row_of[members] = i
        elif len(depots):
            row_of[:] = 0
        r = row_of[dd]
        keep = (r >= 0) & (served != 0)
        out[family] = _block(len(depots), [(r[keep], ycol[keep], served[keep])], need, np.inf)
    def worked_rows(depots, q_coef):  # one row per depot: q_coef sum_t q_dt - sum_tk id_dtk y_dtk (+ more terms)
        row_of = np.full(D, -1)
        row_of[depots] = np.arange(len(depots))
        r = row_of[dd]
        keep = (r >= 0) & (idle != 0)
        qd, qt = np.repeat(depots, T), np.tile(np.arange(T), len(depots))
        return qd, qt, [(row_of[qd], cols.q[qd, qt], q_coef), (r[keep], ycol[keep], -idle[keep])], row_of

    depots, share = rows["utilisation_floor"]
    _, _, parts, _ = worked_rows(depots, np.repeat(share, T))
    out["utilisation_floor"] = _block(len(depots), parts, 0.0, np.inf)
    depots, floor = rows["earnings_floor"]
    qd, qt, parts, row_of = worked_rows(depots, 1.0)
    lower = 0.0
    if data.has_periods:  # - e_d sum_t (alpha_t a_dt + beta_t a_d,t-1) (driver-weeks; a_d0 to the bound)
        _, _, alpha, beta = period_factors(data)
        w = alpha.copy()
        w[:, :-1] += beta[:, 1:]  # a[d,t] also counts in period t+1's driver-weeks
        parts.append((row_of[qd], cols.a[qd, qt], -np.repeat(floor, T) * w[qd, qt]))
        lower = floor * beta[depots, 0] * data.initial_active[depots]
    else:
        parts.append((row_of[qd], cols.a[qd, qt], -np.repeat(floor, T)))  # - e_d sum_t a_dt
    out["earnings_floor"] = _block(len(depots), parts, lower, np.inf)
    return out


@dataclass
class CutBlock:
    """One risk-envelope cut (risk.define_cvar_cuts) as arrays: its segment columns' upper
    bounds (blocks/week; inf for each depot-week's last), its D*T link rows and its cut row
    as COO entries with local row numbers (link rows 0..D*T-1; the cut row is row 0 of its
    own block), and the cut row's lower bound (currency)."""

    upper: np.ndarray
    link: _Rows
    cut: _Rows


def cvar_cut_block(data: ModelData, weights, q_cols: np.ndarray, theta_col: int, first_col: int) -> CutBlock:
    """The cut of vertex ``weights`` (S,) with its segment columns numbered from ``first_col``:

    cvar_cut_link[d,t]:  q[d,t] - sum_j y[d,t,j] = 0
    cvar_cut:            theta - sum slope[d,t,j] y[d,t,j] >= sum_dt phi^w_dt(0)

    (``q_cols`` (D, T) capacity columns, ``theta_col`` theta's)."""
    seg = cut_segments(data, weights)
    D, T = q_cols.shape
    dd, tt, kk = np.nonzero(seg.used)
    y = first_col + np.arange(len(dd))
    link = _block(D * T, [(np.arange(D * T), q_cols.ravel(), 1.0), (dd * T + tt, y, -1.0)], 0.0, 0.0)
    slope = seg.slope[dd, tt, kk]
    nz = slope != 0
    cut = _block(1, [([0], [theta_col], 1.0), (np.zeros(int(nz.sum())), y[nz], -slope[nz])],
                 float(seg.value_at_zero.sum()), np.inf)
    return CutBlock(seg.length[dd, tt, kk], link, cut)


def aggregated_standard_form(data: ModelData, integer: bool = False, cvar_vertices=None) -> StandardForm:
    """The aggregated program (recourse="aggregated") as a StandardForm, without Pyomo; with
    CVaR in the objective (data.cvar_weight > 0), its risk-envelope cuts for ``cvar_vertices``
    (risk.define_cvar_cuts: theta, then each cut's segment columns; all link rows, then the
    cut rows)."""
    layout = Layout(data)
    seg = recourse_segments(data)
    cols = _columns(data, layout, seg.used)
    blocks = {
        "arrivals_definition": arrivals_definition_rows(data, cols, layout),
        "driver_stock": driver_stock_rows(data, cols),
        "onboarding_cap": onboarding_cap_rows(data, cols, layout),
        **({"applicant_pool": applicant_pool_rows(data, cols)} if data.has_applicant_pools else {}),
        "capacity_definition": capacity_definition_rows(data, cols, layout),
        "recourse_link": recourse_link_rows(data, cols, seg.used),
        **budget_rows(data, cols, layout),
        **target_rows_block(data, cols, seg),
    }
    n_cols = cols.total
    lam = float(data.cvar_weight)
    cuts = []
    if lam > 0:
        if cvar_vertices is None:
            raise ValueError("CVaR on the aggregated recourse needs cvar_vertices (possibly none)")
        theta = n_cols
        n_cols += 1
        for w in cvar_vertices:
            cuts.append(cvar_cut_block(data, w, cols.q, theta, n_cols))
            n_cols += len(cuts[-1].upper)
        blocks["cvar_cut_link"] = _stack([c.link for c in cuts])
        blocks["cvar_cut"] = _stack([c.cut for c in cuts])
    unknown = set(blocks) - set(CONSTRAINT_FAMILIES)
    if unknown:  # every block is a family of the one list (formulations.two_stage.CONSTRAINT_FAMILIES)
        raise ValueError(f"row blocks not in CONSTRAINT_FAMILIES: {sorted(unknown)}")
    blocks = {family: blocks[family] for family in CONSTRAINT_FAMILIES if family in blocks}  # the list's order
    rows, start = {}, 0
    coo_r, coo_c, coo_v, lower, upper = [], [], [], [], []
    for family, b in blocks.items():
        rows[family] = slice(start, start + b.n)
        coo_r.append(b.row + start)
        coo_c.append(b.col)
        coo_v.append(b.val)
        lower.append(b.lower)
        upper.append(b.upper)
        start += b.n
    A = sp.csc_matrix((np.concatenate(coo_v), (np.concatenate(coo_r), np.concatenate(coo_c))), shape=(start, n_cols))
    A.sum_duplicates()
    A.eliminate_zeros()
    dd, cc, tt = layout.recruit
    c = np.zeros(n_cols)
    c[cols.components["applicants"]] = data.cost_per_applicant[cc]
    c[cols.components["incentive_spend"]] = 1.0
    c[cols.components["recourse_segment"]] = (1.0 - lam) * seg.slope[seg.used]
    if data.has_terminal_value:  # objective.terminal_credit: - value[d] a[d,T] (currency)
        c[cols.a[:, -1]] -= data.terminal_value
    col_lower = np.zeros(n_cols)
    col_upper = np.full(n_cols, np.inf)
    length = data.period_length  # caps per week x L_t (long-lead periods)
    col_upper[cols.components["applicants"]] = data.applicant_cap[dd, cc] * length[tt]
    sd, sg = layout.segment_pairs
    col_upper[cols.components["incentive_spend"]] = (np.repeat(data.incentive_width[sd, sg], data.n_weeks)
                                                     * np.tile(length, len(sd)))
    col_upper[cols.components["recourse_segment"]] = seg.length[seg.used]  # inf for the last segment
    if data.has_decisions:  # decisions.py: the planner's bounds, inside the columns' own
        x_lo, x_hi = applicant_bounds(data)
        col_lower[cols.components["applicants"]] = x_lo[dd, cc, tt]
        col_upper[cols.components["applicants"]] = x_hi[dd, cc, tt]
        z_lo, z_hi = incentive_bounds(data)
        col_lower[cols.components["incentive_spend"]] = z_lo[sd, :, sg].reshape(-1)
        col_upper[cols.components["incentive_spend"]] = z_hi[sd, :, sg].reshape(-1)
    columns = dict(cols.components)
    if lam > 0:  # F + (1 - lambda) phi^p(q) + lambda theta
        c[cols.total] = lam
        columns["cvar_threshold"] = np.array([cols.total])
        columns["cvar_cut_segment"] = np.arange(cols.total + 1, n_cols)
        if cuts:
            col_upper[cols.total + 1:] = np.concatenate([cut.upper for cut in cuts])
    integer_cols = None
    if integer:
        integer_cols = np.zeros(n_cols, dtype=bool)
        integer_cols[cols.components["applicants"]] = True
    return StandardForm(
        c=c, offset=(1.0 - lam) * float(seg.value_at_zero.sum()), A=A, col_lower=col_lower, col_upper=col_upper,
        row_lower=np.concatenate(lower), row_upper=np.concatenate(upper), columns=columns, rows=rows,
        layout=layout, integer=integer_cols,
    )
