"""Why an instance has no feasible plan, in a planner's words.

The rows that make an instance infeasible are named from the data where the math allows
(``formulations.two_stage.drivers.onboarding_conflicts``: the only rows no plan can meet
when every budget is >= 0, since recruiting nothing meets every budget); the constraint
families are found by the engine (HiGHS re-solves with each family removed)."""

from __future__ import annotations

from formulations.data import ModelData
from formulations.two_stage.drivers import onboarding_conflicts

#: Rows named in a message at most (the rest are counted).
MAX_ROWS = 5


def infeasible_rows(data: ModelData) -> list[str]:
    return onboarding_conflicts(data)


def infeasibility_message(families: list[str], native: str, rows: list[str] = ()) -> str:
    detail = ", ".join(families) if families else "no single constraint family (a combination)"
    text = f"no plan: the instance is infeasible because of constraint family {detail} (removing it makes the model feasible)"
    if rows:
        more = f" and {len(rows) - MAX_ROWS} more" if len(rows) > MAX_ROWS else ""
        text += f"; rows: {'; '.join(rows[:MAX_ROWS])}{more}"
    return f"{text}; engine status: {native}"
