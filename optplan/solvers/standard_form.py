"""The two-stage model as sparse arrays, the hand-off every LP engine (HiGHS, GLOP) takes.

Pyomo's ``LinearStandardFormCompiler`` turns the built model into a sparse matrix with
columns grouped by variable component and rows by constraint family in declaration order
(the order ``formulations.two_stage.layout.Layout`` states), so solution vectors map back
by slicing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from formulations import two_stage
from formulations.two_stage.layout import Layout
from optplan.errors import SolverError


@dataclass
class StandardForm:
    """A built two-stage model as sparse arrays:  min c x + offset  s.t.
    row_lower <= A x <= row_upper,  col_lower <= x <= col_upper  (A column-wise), with where
    each variable component's columns and each constraint family's rows are. Any LP engine
    (HiGHS, GLOP) takes it from here."""

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

    @property
    def size(self) -> dict[str, int]:
        return {"variables": self.A.shape[1], "constraints": self.A.shape[0], "nonzeros": int(self.A.nnz)}


def standard_form(model) -> StandardForm:
    """Compile a built two-stage ``model`` with Pyomo's LinearStandardFormCompiler (columns
    in FIRST_STAGE_VARS + SECOND_STAGE_VARS order, rows by active constraint family)."""
    import pyomo.environ as pyo
    from pyomo.repn.plugins.standard_form import LinearStandardFormCompiler

    var_components = [model.component(n) for n in (*two_stage.FIRST_STAGE_VARS, *two_stage.SECOND_STAGE_VARS)]
    info = LinearStandardFormCompiler().write(model, mixed_form=True, column_order=var_components)
    expected = sum(len(comp) for comp in var_components)
    columns: dict[str, np.ndarray] = {}
    if expected == len(info.columns):
        # fast path: every variable is used, so columns are the components in order
        start = 0
        for comp in var_components:
            columns[comp.local_name] = np.arange(start, start + len(comp))
            start += len(comp)
    else:
        # the compiler drops variables that appear in no active row (e.g. when a family is
        # deactivated for an infeasibility diagnosis): map each variable; -1 = absent
        position = {id(v): i for i, v in enumerate(info.columns)}
        for comp in var_components:
            columns[comp.local_name] = np.fromiter((position.get(id(v), -1) for v in comp.values()), np.int64, len(comp))
    rows, start = {}, 0
    for con in model.component_objects(pyo.Constraint, active=True, descend_into=False):
        rows[con.local_name] = slice(start, start + len(con))
        start += len(con)
    if start != len(info.rows):
        raise SolverError(f"internal: expected {start} rows, the compiler produced {len(info.rows)}")
    return StandardForm(
        **matrix_arrays(info),
        columns=columns,
        rows=rows,
        layout=Layout(model._optplan_data),
    )


def matrix_arrays(info) -> dict[str, Any]:
    """c, offset, A (CSC), column and row bounds of a LinearStandardFormCompiler result
    (mixed form: == rows have both bounds, <= rows an upper, >= rows a lower one)."""
    n_cols, n_rows = len(info.columns), len(info.rows)
    kind = np.fromiter((r.bound_type for r in info.rows), np.int8, n_rows)
    rhs = np.asarray(info.rhs, float)
    return {
        "c": np.asarray(info.c.toarray()).ravel() if info.c.shape[0] else np.zeros(n_cols),
        "offset": float(info.c_offset[0]) if len(info.c_offset) else 0.0,
        "A": info.A.tocsc(),
        "col_lower": np.fromiter((v.lb if v.lb is not None else -np.inf for v in info.columns), float, n_cols),
        "col_upper": np.fromiter((v.ub if v.ub is not None else np.inf for v in info.columns), float, n_cols),
        "row_lower": np.where(kind <= 0, rhs, -np.inf),
        "row_upper": np.where(kind >= 0, rhs, np.inf),
    }
