"""The two-stage model as sparse arrays, the hand-off every LP engine (HiGHS, GLOP) takes.

Pyomo's ``LinearStandardFormCompiler`` turns the built model into a sparse matrix with
columns grouped by variable component and rows by constraint family in declaration order
(the order ``formulations.two_stage.layout.Layout`` states), so solution vectors map back
by slicing."""

from __future__ import annotations

import gc
import logging
import time
from typing import Any

import numpy as np

from formulations import two_stage
from formulations.data import ModelData
from formulations.two_stage.layout import Layout
from formulations.two_stage.matrix import StandardForm, aggregated_standard_form
from optplan.errors import SolverError
from optplan.solvers.base import ENGINE_LOGGER, DeadlinePassed, out_of_time

#: The compile is skipped when less time is left than this share of the build's time (the
#: standard-form compile measured 0.7-1.1x the Pyomo build, and cannot be interrupted).
HANDOFF_SHARE = 1.0


def standard_form(model) -> StandardForm:
    """Compile a built two-stage ``model`` with Pyomo's LinearStandardFormCompiler (columns
    in FIRST_STAGE_VARS + SECOND_STAGE_VARS order, rows by active constraint family)."""
    import pyomo.environ as pyo
    from pyomo.repn.plugins.standard_form import LinearStandardFormCompiler

    var_components = two_stage.variable_components(model)
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
        n = sum(1 for row in con.values() if row.active)  # a diagnosis may deactivate single rows
        rows[con.local_name] = slice(start, start + n)
        start += n
    if start != len(info.rows):
        raise SolverError(f"internal: expected {start} rows, the compiler produced {len(info.rows)}")
    integer = None
    if "service_met" in columns:  # the bad-week chance form's binaries: a MIP
        integer = np.zeros(len(info.columns), dtype=bool)
        met = columns["service_met"]
        integer[met[met >= 0]] = True
    return StandardForm(
        **matrix_arrays(info),
        columns=columns,
        rows=rows,
        layout=Layout(model._optplan_data),
        integer=integer,
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


def build_standard_form(data, options, deadline, engine: str):
    """The LP of ``data`` as a StandardForm by the route ``options`` asks for, within
    ``deadline``: the array build (aggregated recourse; numpy only) or Pyomo's model compiled
    by its standard-form compiler. Returns (StandardForm, build seconds, hand-off seconds);
    raises NoSolutionError naming ``engine`` when the budget runs out first (the Pyomo build
    checks it between constraint families; the compile is skipped when less time is left
    than the build took, since it takes about as long and cannot be interrupted)."""
    log = logging.getLogger(ENGINE_LOGGER)

    def no_time(why: str):
        return out_of_time(engine, f"{why} before {engine} could run", f"not run: {why}")

    D, C, T, S = data.shape
    log.info("building the model (%s recourse, %s build): %d depots x %d %s x %d scenarios, %d channels",
             options.recourse, options.build_route, D, T, "periods" if data.has_periods else "weeks", S, C)
    t0 = time.perf_counter()
    if options.build_route == "arrays":
        sf = aggregated_standard_form(data, integer=options.integer, cvar_vertices=[] if data.cvar_weight > 0 else None)
        mark_integer(sf, data, options.integer)
        t1 = time.perf_counter()
        return sf, t1 - t0, 0.0
    try:
        cut_form = data.cvar_weight > 0 and options.recourse == "aggregated"  # risk-envelope cuts, none yet
        model = two_stage.build_model(data, checkpoint=deadline.check, recourse=options.recourse,
                                      cvar_vertices=[] if cut_form else None)
    except DeadlinePassed:
        raise no_time(f"the time limit passed while building the model ({time.perf_counter() - t0:.1f} s)") from None
    t1 = time.perf_counter()
    if deadline.remaining() < HANDOFF_SHARE * (t1 - t0):
        raise no_time(f"the time limit leaves {deadline.remaining():.1f} s after building the model "
                          f"({t1 - t0:.1f} s), too little to compile it")
    sf = standard_form(model)
    mark_integer(sf, data, options.integer)
    # the solver gets its own copy: release the Pyomo model first (peak memory ~ max, not sum)
    del model
    gc.collect()
    return sf, t1 - t0, time.perf_counter() - t1


def mark_integer(sf, data: ModelData, integer: bool) -> None:
    """Integer columns of ``sf``: every applicant column with ``integer`` (--integer); with
    ``data.whole_weeks`` k (orders), the applicant columns of periods t < k. Columns in
    ``Layout`` order."""
    k = int(data.whole_weeks)
    if not integer and k <= 0:
        return
    sf.integer = np.zeros(sf.A.shape[1], dtype=bool) if sf.integer is None else sf.integer
    used = sf.columns["applicants"]
    week = sf.layout.recruit[2]
    pick = (used >= 0) & ((week < k) | integer)
    sf.integer[used[pick]] = True
