"""What the planner's committed decisions (decisions.csv) do to a plan, and what they cost.

``override_table`` lists each decisions.csv row beside the plan: the value the plan has in
the row's cells (summed over them for a ``*`` row), whether the rule binds (some cell sits on
its bound), and, when measured, what the row costs: the plan's objective with every decision
minus the objective with that row left out (two solves of the same engine). ``measure``
makes those solves under the caller's deadline: ``"total"`` (default) one solve without any
decision, so the table's headline says what all of them cost together; ``"each"`` also one
solve per row; ``"none"`` no extra solve. A solve the time limit stops is reported as not
measured, never as a number.

Costs are in the instance currency; a saving from a decision (it cannot save: dropping a
bound never raises the optimum) would show as a negative number and flags a solve that did
not reach its optimum.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from optplan.errors import OptplanError

#: measure= choices.
MEASURES = ("total", "each", "none")
#: A planned value within this share (at least 1e-6 absolute) of a rule's value sits on it.
BOUND_RTOL = 1e-7


@dataclass
class OverrideCost:
    """What all decisions together cost, and how it was measured."""

    total: float  # currency: objective with them - objective without them (NaN: not measured)
    how: str  # in words


def override_table(plan, instance) -> pd.DataFrame:
    """One row per decisions.csv row: line, depot, channel, week, lever, rule, value, currency,
    note, planned (the plan's value in its cells, applicants or currency per week), binding."""
    table = instance.tables["decisions"].reset_index(drop=True)
    cells = instance.decision_cells(plan.data.channels, {"channel_source": plan.data.channel_source,
                                                         "country": plan.data.depot_country})
    x, z = plan.decisions.applicants, plan.decisions.incentive_spend.sum(axis=2)
    is_x = (cells["lever"] == "applicants").to_numpy()
    d, c, t = (cells[k].to_numpy() for k in ("d", "c", "t"))
    planned_cell = np.where(is_x, x[d, np.maximum(c, 0), t], z[d, t])
    value = cells["value"].to_numpy(float)
    if plan.data.depot_fx is not None:  # a value in the depot's currency: compare in the instance currency
        local = (cells["currency"].ne("") & cells["currency"].ne(plan.currency)).to_numpy()
        value = np.where(local, value * np.asarray(plan.data.depot_fx)[d], value)
    on_bound = np.abs(planned_cell - value) <= np.maximum(BOUND_RTOL * np.abs(value), 1e-6)
    by_line = pd.DataFrame({"line": cells["line"].to_numpy(), "planned": planned_cell, "on": on_bound})
    agg = by_line.groupby("line").agg(planned=("planned", "sum"), binding=("on", "any"))
    lines = np.arange(len(table)) + 2
    out = pd.DataFrame({"line": lines})
    for col in ("depot", "channel", "week", "lever", "rule", "value", "currency", "note"):
        out[col] = table[col].to_numpy()
    out["currency"] = np.where(out["lever"] == "incentive_spend",
                               out["currency"].where(out["currency"].astype(str) != "", plan.currency), "")
    out["planned"] = agg["planned"].reindex(lines).fillna(0.0).to_numpy()
    out["binding"] = agg["binding"].reindex(lines).fillna(False).astype(bool).to_numpy()
    return out


def measure(instance, plan, solve_again, how: str = "total") -> tuple[OverrideCost, pd.Series | None]:
    """The override costs: ``solve_again(instance)`` solves a changed instance with the
    caller's engine and deadline and returns its objective (currency), or raises. Returns the
    total (with every decision minus without any) and, for ``how="each"``, a Series by line of
    each row's cost (NaN: not measured)."""
    if how not in MEASURES:
        raise ValueError(f"how must be one of {MEASURES}")
    base = plan.status.objective
    if how == "none" or base is None:
        return OverrideCost(float("nan"), "not measured"), None
    if not plan.status.complete:
        return OverrideCost(float("nan"), "not measured: the plan itself is not proven optimal"), None
    table = instance.tables["decisions"]
    try:
        without = solve_again(_with_decisions(instance, table.iloc[0:0]))
        total = OverrideCost(float(base - without), "the plan's objective minus the objective of the same "
                             "instance solved without decisions.csv")
    except OptplanError as exc:
        total = OverrideCost(float("nan"), f"not measured: {exc}")
    if how != "each":
        return total, None
    costs = {}
    for pos in range(len(table)):
        try:
            costs[pos + 2] = float(base - solve_again(_with_decisions(instance, table.drop(table.index[pos]))))
        except OptplanError:
            costs[pos + 2] = float("nan")
    return total, pd.Series(costs, name="cost")


def _with_decisions(instance, table: pd.DataFrame):
    return dataclasses.replace(instance, tables={**instance.tables, "decisions": table})
