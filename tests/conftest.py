"""Shared fixtures: tiny instances built in memory with hand-checkable numbers."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pandas as pd
import pytest
from pyomo.contrib.solver.common.results import SolutionStatus, TerminationCondition

from formulations.data import Decisions
from optplan.io.instance import from_tables
from optplan.solvers import Capabilities, SolveResult, SolverStatus, Timings

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # examples/ (outside the package) is imported by the tests
    sys.path.insert(0, str(REPO))
#: Relative tolerance for objectives derived by hand or by a second route.
OBJ_RTOL = 1e-6
#: Absolute tolerance for decisions (applicants, currency) derived by hand.
X_ATOL = 1e-6
#: Real weekly sales of 30 stores, shipped with the repository (examples/data/README.md: source, licence).
WALMART_CSV = REPO / "examples" / "data" / "walmart_store_weekly_sales_30.csv"
#: Birge & Louveaux's farmer problem with its published optima (a copy shipped with the tests).
FARMER_JSON = REPO / "tests" / "data" / "birge_louveaux_farmer.json"


def tiny_spec() -> dict:
    """1 depot, 2 weeks, 1 scenario, 1 channel (the base of the hand-worked tests).

    10 drivers at the start, retention 0.9/week, 2 blocks per driver per week;
    demand 20 blocks in week 1 and 30 in week 2; channel 'ads' costs 10 USD per applicant,
    half of applicants become active one week after applying (yield[lag 1] = 0.5);
    unserved 100 USD/block, idle 5 USD/block, no surge, no incentives, no budget.
    """
    return {
        "manifest": {
            "name": "tiny",
            "horizon": {"weeks": 2, "start_date": "2027-01-04", "currency": "USD"},
            "recourse": {"surge_cost_per_block": 0.0, "surge_cap_share": 0.0},
            "penalties": {"unserved_cost_per_block": 100.0, "idle_cost_per_block": 5.0},
            "budgets": {},
        },
        "depots": [{"depot": "A", "region": "north", "active_drivers": 10.0, "blocks_per_driver": 2.0,
                    "retention": 0.9, "onboarding_cap": None}],
        "scenarios": [{"scenario": "base", "probability": 1.0}],
        "demand": {("A", 1, "base"): 20.0, ("A", 2, "base"): 30.0},
        "channels": [{"channel": "ads", "cost_per_applicant": 10.0, "applicant_cap": None}],
        "yield_kernel": [{"channel": "ads", "lag": 0, "probability": 0.0}, {"channel": "ads", "lag": 1, "probability": 0.5}],
        "pipeline": [],
        "incentives": [],
    }


def build(spec: dict):
    """An Instance from a spec dict like ``tiny_spec()`` (validated as files would be)."""
    spec = copy.deepcopy(spec)
    demand = pd.DataFrame(
        [{"depot": d, "week": w, "scenario": s, "blocks": b} for (d, w, s), b in spec["demand"].items()]
    )
    tables = {
        "depots": pd.DataFrame(spec["depots"]),
        "scenarios": pd.DataFrame(spec["scenarios"]),
        "demand": demand,
        "channels": pd.DataFrame(spec["channels"]),
        "yield_kernel": pd.DataFrame(spec["yield_kernel"]),
        "pipeline": pd.DataFrame(spec["pipeline"], columns=["depot", "week", "new_drivers"]),
        "incentives": pd.DataFrame(spec["incentives"], columns=["depot", "segment", "max_spend", "blocks_per_currency"]),
    }
    return from_tables(spec["manifest"], tables)


class FakeClock:
    """A clock that moves ``step`` seconds every time it is read."""

    def __init__(self, step: float = 1.0):
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


class StubEngine:
    """An engine that spends ``cost`` fake seconds and then returns ``outcome``: "plan"
    (a feasible plan that recruits nothing, stopped at the time limit), or raises the
    exception given."""

    capabilities = Capabilities(lp=True, mip=True, duals=False, time_limit=True, exact=True)

    def __init__(self, name: str, outcome="plan", cost: float = 0.0, unavailable: str | None = None):
        self.name, self.outcome, self.cost, self.unavailable = name, outcome, cost, unavailable
        self.calls = 0
        self.budgets: list = []  # the time budget (deadline seconds) of each call

    def available(self):
        return self.unavailable

    def solve(self, data, options, deadline):
        self.calls += 1
        self.budgets.append(deadline.seconds)
        if self.cost:
            deadline.clock.now += self.cost
        if isinstance(self.outcome, Exception):
            raise self.outcome
        status = SolverStatus(TerminationCondition.maxTimeLimit, SolutionStatus.feasible, self.name, "stub: time limit",
                              0.0, None)
        return SolveResult(data, status, Decisions.zeros(data), Timings(), {})


@pytest.fixture
def spec():
    return tiny_spec()


@pytest.fixture(scope="session")
def demo_path() -> Path:
    return REPO / "instances" / "demo"


def pytest_collection_modifyitems(config, items):
    """A service test marked any_database runs once, on SQLite: its PostgreSQL variant (the
    module's server fixture's other parameter) is deselected, not skipped."""
    keep, dropped = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if item.get_closest_marker("any_database") and params.get("server") == "postgresql":
            dropped.append(item)
        else:
            keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
