"""Shared fixtures: tiny instances built in memory with hand-checkable numbers."""

from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd
import pytest

from optplan.instance import from_tables

REPO = Path(__file__).resolve().parents[1]
#: Relative tolerance for objectives derived by hand or by a second route.
OBJ_RTOL = 1e-6
#: Absolute tolerance for decisions (applicants, currency) derived by hand.
X_ATOL = 1e-6


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


@pytest.fixture
def spec():
    return tiny_spec()


@pytest.fixture(scope="session")
def demo_path() -> Path:
    return REPO / "instances" / "demo"
