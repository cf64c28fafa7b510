"""Baseline for benchmarks only: the two-stage LP built straight into highspy, no Pyomo.

``build_direct(data)`` assembles exactly the linear program that
``formulations.two_stage.build_model(data)`` states (same variables and bounds, same rows,
same objective) from the numpy arrays of ``ModelData`` with vectorised numpy and
``scipy.sparse``, then hands it to a new ``highspy.Highs`` with one ``passModel`` call.

It exists to measure what the Pyomo build and hand-off cost compared with the least
Python work that can produce the same LP; it is not part of the package and knows nothing
of duals, names or solution mapping.

Columns and rows are laid out in the order Pyomo's ``LinearStandardFormCompiler`` produces
for ``optplan.solvers.highs.compile_to_highs`` (component by component, each in its index set's
order), so the two LPs can be compared array by array:

    columns: applicants x[d,c,t] (RECRUIT: d, c, t), incentive_spend z (SEGMENTS: d, g, t),
             recruited_arrivals n[d,t], active_drivers a[d,t], capacity_blocks q[d,t],
             surge_blocks u[d,t,s], unserved_blocks v[d,t,s], idle_blocks w[d,t,s]
    rows:    arrivals_definition, driver_stock, onboarding_cap, capacity_definition,
             demand_balance, surge_cap, budget_total, budget_week, budget_region

Units follow ``formulations.two_stage``: applicants/week, currency/week, drivers/week,
drivers, blocks/week; the objective is expected cost in the instance currency.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import highspy
import numpy as np
import scipy.sparse as sp

from formulations.data import ModelData
from formulations.two_stage.drivers import carry_over


@dataclass
class _Rows:
    """Accumulates row blocks as COO triplets plus row bounds."""

    n_cols: int
    n_rows: int = 0
    rows: list[np.ndarray] = field(default_factory=list)
    cols: list[np.ndarray] = field(default_factory=list)
    vals: list[np.ndarray] = field(default_factory=list)
    lower: list[np.ndarray] = field(default_factory=list)
    upper: list[np.ndarray] = field(default_factory=list)

    def block(self, lower: np.ndarray, upper: np.ndarray) -> int:
        """Open a block of ``len(lower)`` rows; returns the first row's index."""
        first = self.n_rows
        self.lower.append(np.asarray(lower, float))
        self.upper.append(np.asarray(upper, float))
        self.n_rows += len(self.lower[-1])
        return first

    def add(self, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray | float) -> None:
        """Add coefficients; exact zeros are dropped (Pyomo's compiler writes none either)."""
        rows = np.asarray(rows, np.int64).ravel()
        cols = np.asarray(cols, np.int64).ravel()
        vals = np.asarray(vals, float)
        vals = np.full(rows.shape, float(vals)) if vals.ndim == 0 else vals.ravel()
        if not rows.shape == cols.shape == vals.shape:
            raise ValueError(f"row/column/value counts differ: {rows.shape}, {cols.shape}, {vals.shape}")
        keep = vals != 0
        self.rows.append(rows[keep])
        self.cols.append(cols[keep])
        self.vals.append(vals[keep])

    def matrix(self) -> sp.csc_matrix:
        empty = np.zeros(0, np.int64)
        rows = np.concatenate(self.rows) if self.rows else empty
        cols = np.concatenate(self.cols) if self.cols else empty
        vals = np.concatenate(self.vals) if self.vals else np.zeros(0)
        return sp.csc_matrix((vals, (rows, cols)), shape=(self.n_rows, self.n_cols))


def lp_arrays(data: ModelData) -> dict[str, np.ndarray | sp.csc_matrix]:
    """The LP of ``formulations.two_stage`` as arrays: col_cost, col_lower, col_upper,
    row_lower, row_upper (numpy) and A (scipy CSC), in the column/row order of the module
    docstring."""
    D, C, T, S = data.shape
    DT, DTS = D * T, D * T * S
    inf = np.inf

    # ---------------------------------------------------------------- columns
    x_mask = data.recruit_mask()  # (D, C, T)
    nx = int(x_mask.sum())
    x_idx = np.full((D, C, T), -1, np.int64)
    x_idx[x_mask] = np.arange(nx)  # boolean indexing is C order: d, c, t like RECRUIT

    seg = data.segment_mask()  # (D, G)
    G = seg.shape[1]
    z_mask = np.broadcast_to(seg[:, :, None], (D, G, T))  # SEGMENTS order is d, g, t
    nz = int(z_mask.sum())
    z_idx = np.full((D, G, T), -1, np.int64)
    z_idx[z_mask] = nx + np.arange(nz)

    base = nx + nz
    n_idx = base + np.arange(DT).reshape(D, T)
    a_idx = base + DT + np.arange(DT).reshape(D, T)
    q_idx = base + 2 * DT + np.arange(DT).reshape(D, T)
    base += 3 * DT
    u_idx = base + np.arange(DTS).reshape(D, T, S)
    v_idx = base + DTS + np.arange(DTS).reshape(D, T, S)
    w_idx = base + 2 * DTS + np.arange(DTS).reshape(D, T, S)
    n_cols = base + 3 * DTS

    xd, xc, xt = np.nonzero(x_mask)
    zd, zg, zt = np.nonzero(z_mask)

    col_lower = np.zeros(n_cols)
    col_upper = np.full(n_cols, inf)
    col_upper[:nx] = data.applicant_cap[xd, xc]  # applicants/week (inf: no cap)
    col_upper[nx:nx + nz] = data.incentive_width[zd, zg]  # currency/week
    if data.surge_cap_share == 0:
        col_upper[u_idx.ravel()] = 0.0  # no surge at all

    # objective: first-stage spend + probability-weighted recourse cost (currency)
    cost = np.zeros(n_cols)
    cost[:nx] = data.cost_per_applicant[xc]
    cost[nx:nx + nz] = 1.0
    p = np.asarray(data.probability, float)[None, None, :]
    cost[u_idx.ravel()] = np.broadcast_to(p * float(data.surge_cost), (D, T, S)).ravel()
    cost[v_idx.ravel()] = np.broadcast_to(p * float(data.unserved_cost), (D, T, S)).ravel()
    cost[w_idx.ravel()] = np.broadcast_to(p * float(data.idle_cost), (D, T, S)).ravel()

    R = _Rows(n_cols)
    dt_rows = np.arange(DT).reshape(D, T)
    zeros_dt = np.zeros(DT)

    # arrivals_definition: n[d,t] - sum_{c,k} yield[c,k] x[d,c,t-k] = 0   (drivers/week)
    r0 = R.block(zeros_dt, zeros_dt)
    R.add(r0 + dt_rows, n_idx, 1.0)
    kernel = data.yield_kernel
    for k in range(kernel.shape[1]):  # lags: a handful of weeks
        coef = kernel[xc, k]
        land = xt + k
        ok = (coef != 0) & (land < T)
        R.add(r0 + xd[ok] * T + land[ok], np.flatnonzero(ok), -coef[ok])

    # driver_stock: a[d,t] - r[d] a[d,t-1] - n[d,t] = pipeline[d,t] (+ r[d] a0[d] at t=1)
    rhs = data.pipeline.astype(float).copy()
    rhs[:, 0] = carry_over(data.retention, data.initial_active, data.pipeline[:, 0])
    r0 = R.block(rhs.ravel(), rhs.ravel())
    R.add(r0 + dt_rows, a_idx, 1.0)
    R.add(r0 + dt_rows[:, 1:], a_idx[:, :-1], -np.broadcast_to(data.retention[:, None], (D, T - 1)))
    R.add(r0 + dt_rows, n_idx, -1.0)

    # onboarding_cap: n[d,t] <= onboarding_cap[d] - pipeline[d,t]   (drivers/week)
    capped = np.flatnonzero(np.isfinite(data.onboarding_cap))
    room = data.onboarding_cap[capped, None] - data.pipeline[capped, :]
    r0 = R.block(np.full(room.size, -inf), room.ravel())
    R.add(r0 + np.arange(room.size), n_idx[capped].ravel(), 1.0)

    # capacity_definition: q - bpd a - sum_g rate z = 0   (blocks/week)
    r0 = R.block(zeros_dt, zeros_dt)
    R.add(r0 + dt_rows, q_idx, 1.0)
    R.add(r0 + dt_rows, a_idx, -np.broadcast_to(data.blocks_per_driver[:, None], (D, T)))
    R.add(r0 + zd * T + zt, z_idx[zd, zg, zt], -data.incentive_rate[zd, zg])

    # demand_balance: q + u + v - w = demand   (blocks/week)
    dts_rows = np.arange(DTS).reshape(D, T, S)
    demand = data.demand.astype(float).ravel()
    r0 = R.block(demand, demand)
    R.add(r0 + dts_rows, np.broadcast_to(q_idx[:, :, None], (D, T, S)), 1.0)
    R.add(r0 + dts_rows, u_idx, 1.0)
    R.add(r0 + dts_rows, v_idx, 1.0)
    R.add(r0 + dts_rows, w_idx, -1.0)

    # surge_cap: u - share q <= 0   (blocks/week), only when the share is positive
    share = float(data.surge_cap_share)
    if share > 0:
        r0 = R.block(np.full(DTS, -inf), np.zeros(DTS))
        R.add(r0 + dts_rows, u_idx, 1.0)
        R.add(r0 + dts_rows, np.broadcast_to(q_idx[:, :, None], (D, T, S)), -share)

    # budgets on first-stage spend (currency): total, per week, per region
    spend_cols = np.concatenate([np.arange(nx), nx + np.arange(nz)])
    spend_coef = np.concatenate([data.cost_per_applicant[xc], np.ones(nz)])
    spend_week = np.concatenate([xt, zt])
    spend_depot = np.concatenate([xd, zd])
    if np.isfinite(data.budget_total) and spend_cols.size:
        r0 = R.block([-inf], [float(data.budget_total)])
        R.add(np.full(spend_cols.size, r0), spend_cols, spend_coef)
    weekly = np.asarray(data.budget_weekly, float)
    has_terms = np.bincount(spend_week, minlength=T) > 0
    weeks = np.flatnonzero(np.isfinite(weekly) & has_terms)
    if weeks.size:
        row_of_week = np.full(T, -1, np.int64)
        row_of_week[weeks] = np.arange(weeks.size)
        r0 = R.block(np.full(weeks.size, -inf), weekly[weeks])
        ok = row_of_week[spend_week] >= 0
        R.add(r0 + row_of_week[spend_week[ok]], spend_cols[ok], spend_coef[ok])
    region_of_depot = np.asarray(data.regions, dtype=object)
    present = set(region_of_depot[spend_depot].tolist())
    regions = [r for r, cap in data.budget_region.items() if np.isfinite(cap) and r in present]
    if regions:
        r0 = R.block(np.full(len(regions), -inf), [float(data.budget_region[r]) for r in regions])
        row_of_depot = np.full(D, -1, np.int64)
        for j, r in enumerate(regions):
            row_of_depot[region_of_depot == r] = j
        ok = row_of_depot[spend_depot] >= 0
        R.add(r0 + row_of_depot[spend_depot[ok]], spend_cols[ok], spend_coef[ok])

    return {
        "col_cost": cost,
        "col_lower": col_lower,
        "col_upper": col_upper,
        "row_lower": np.concatenate(R.lower),
        "row_upper": np.concatenate(R.upper),
        "A": R.matrix(),
    }


def build_direct(data: ModelData) -> highspy.Highs:
    """The two-stage LP of ``data`` in a new ``highspy.Highs`` (output off, other options
    at HiGHS defaults), passed with one ``passModel(HighsLp)`` call."""
    return highs_from_arrays(lp_arrays(data))


def highs_from_arrays(arrays: dict[str, np.ndarray | sp.csc_matrix]) -> highspy.Highs:
    """A new ``highspy.Highs`` (output off) holding the LP of ``lp_arrays``: one
    ``passModel(HighsLp)`` call."""
    A: sp.csc_matrix = arrays["A"]
    n_rows, n_cols = A.shape
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = n_cols, n_rows
    lp.sense_ = highspy.ObjSense.kMinimize
    lp.offset_ = 0.0
    lp.col_cost_ = arrays["col_cost"]
    lp.col_lower_, lp.col_upper_ = arrays["col_lower"], arrays["col_upper"]
    lp.row_lower_, lp.row_upper_ = arrays["row_lower"], arrays["row_upper"]
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = A.indptr.astype(np.int32)
    lp.a_matrix_.index_ = A.indices.astype(np.int32)
    lp.a_matrix_.value_ = A.data.astype(float)
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    if h.passModel(lp) == highspy.HighsStatus.kError:
        raise RuntimeError("HiGHS rejected the directly built model (passModel returned an error)")
    return h
