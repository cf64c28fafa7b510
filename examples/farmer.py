"""The farmer problem of Birge & Louveaux (*Introduction to Stochastic Programming*, Sec. 1.1).

A farmer splits ``land_acres`` between wheat, corn and sugar beets (first stage: acres
planted per crop, before yields are known). After the harvest (second stage, per yield
scenario) the farmer buys or sells wheat and corn to meet the cattle-feed requirements,
and sells beets: up to the quota at the quota price, the rest at the lower price.

    minimize  sum_c plant_cost[c] x[c]
              + sum_{c in wheat,corn} (buy_price[c] y[c] - sell_price[c] w[c])
              - price_quota w_beets_quota - price_extra w_beets_extra     (cost = -profit, $)
    s.t.      sum_c x[c] <= land_acres                                    acres
              yield[c,s] x[c] + y[c] - w[c] >= feed[c]      c in wheat, corn      T
              w_beets_quota + w_beets_extra <= yield[beets,s] x[beets]           T
              0 <= w_beets_quota <= beet_quota                                   T
              x, y, w >= 0

Data and published optimum: ``tests/data/birge_louveaux_farmer.json`` (a copy of the textbook figures)
(``load_farmer_data``). Use with ``optplan.explain.stochastic``:

    data = load_farmer_data(path)
    value_of_stochastic_solution(data.scenarios, scenario_creator, lambda: mean_scenario_creator(data),
                                 creator_kwargs={"data": data}, first_stage=first_stage_variables)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyomo.environ as pyo

#: The textbook data and published optima, shipped with the tests (a copy of Birge & Louveaux's figures).
DEFAULT_DATA_PATH = Path(__file__).resolve().parents[1] / "tests" / "data" / "birge_louveaux_farmer.json"

CROPS = ("wheat", "corn", "beets")
TRADED = ("wheat", "corn")  # bought and sold at market prices, with a cattle-feed requirement


@dataclass(frozen=True)
class FarmerData:
    """The farmer instance (units: acres, T = tons, $)."""

    land_acres: float
    planting_cost: dict[str, float]  # $/acre per crop
    feed_requirement: dict[str, float]  # T of wheat and corn needed for the cattle
    purchase_price: dict[str, float]  # $/T of wheat and corn bought
    sell_price: dict[str, float]  # $/T of wheat and corn sold
    beet_price_quota: float  # $/T of beets sold within the quota
    beet_price_extra: float  # $/T of beets sold above the quota
    beet_quota: float  # T
    scenarios: tuple[str, ...]
    probability: dict[str, float]
    yields: dict[str, dict[str, float]]  # scenario -> crop -> T/acre
    published: dict[str, Any] = field(default_factory=dict)  # published optimum, as in the file

    def mean_yields(self) -> dict[str, float]:
        """Probability-weighted mean yield per crop, T/acre."""
        return {c: sum(self.probability[s] * self.yields[s][c] for s in self.scenarios) for c in CROPS}


def load_farmer_data(path: str | Path = DEFAULT_DATA_PATH) -> FarmerData:
    """Read the farmer benchmark json (see the module docstring for its meaning)."""
    raw = json.loads(Path(path).read_text())
    if tuple(raw["crops"]) != CROPS:
        raise ValueError(f"{path}: expected crops {CROPS}, got {raw['crops']}")
    sell = raw["sell_price_per_T"]
    return FarmerData(
        land_acres=float(raw["land_acres"]),
        planting_cost={c: float(v) for c, v in raw["planting_cost_per_acre"].items()},
        feed_requirement={c: float(v) for c, v in raw["cattle_feed_requirement_T"].items()},
        purchase_price={c: float(v) for c, v in raw["purchase_price_per_T"].items()},
        sell_price={c: float(sell[c]) for c in TRADED},
        beet_price_quota=float(sell["beets_within_quota"]),
        beet_price_extra=float(sell["beets_above_quota"]),
        beet_quota=float(raw["beet_quota_T"]),
        scenarios=tuple(s["name"] for s in raw["scenarios"]),
        probability={s["name"]: float(s["probability"]) for s in raw["scenarios"]},
        yields={s["name"]: {c: float(s["yield_T_per_acre"][c]) for c in CROPS} for s in raw["scenarios"]},
        published=dict(raw.get("published_optimum", {})),
    )


def build_farmer_model(data: FarmerData, yields: dict[str, float], probability: float) -> pyo.ConcreteModel:
    """One yield scenario of the farmer problem (cost weight 1, minimize cost = -profit)."""
    m = pyo.ConcreteModel(name="farmer")
    m.CROPS = pyo.Set(initialize=CROPS, ordered=True)
    m.TRADED = pyo.Set(initialize=TRADED, ordered=True)
    m.acres = pyo.Var(m.CROPS, domain=pyo.NonNegativeReals)  # first stage
    m.purchased = pyo.Var(m.TRADED, domain=pyo.NonNegativeReals)  # T
    m.sold = pyo.Var(m.TRADED, domain=pyo.NonNegativeReals)  # T
    m.beets_sold_quota = pyo.Var(bounds=(0.0, data.beet_quota))  # T
    m.beets_sold_extra = pyo.Var(domain=pyo.NonNegativeReals)  # T

    m.land = pyo.Constraint(expr=sum(m.acres[c] for c in m.CROPS) <= data.land_acres)
    m.cattle_feed = pyo.Constraint(
        m.TRADED,
        rule=lambda _m, c: yields[c] * m.acres[c] + m.purchased[c] - m.sold[c] >= data.feed_requirement[c],
    )
    m.beet_sales = pyo.Constraint(expr=m.beets_sold_quota + m.beets_sold_extra <= yields["beets"] * m.acres["beets"])

    m.first_stage_cost = pyo.Expression(expr=sum(data.planting_cost[c] * m.acres[c] for c in m.CROPS))
    m.second_stage_cost = pyo.Expression(
        expr=sum(data.purchase_price[c] * m.purchased[c] - data.sell_price[c] * m.sold[c] for c in m.TRADED)
        - data.beet_price_quota * m.beets_sold_quota
        - data.beet_price_extra * m.beets_sold_extra
    )
    m.cost = pyo.Objective(expr=m.first_stage_cost + m.second_stage_cost, sense=pyo.minimize)
    m._mpisppy_probability = float(probability)
    try:  # attach mpi-sppy's root node when it is installed (it is optional here)
        from mpisppy.utils import sputils
    except ImportError:  # pragma: no cover - depends on an optional package
        return m
    sputils.attach_root_node(m, m.first_stage_cost, [m.acres])
    return m


def first_stage_variables(m: pyo.ConcreteModel) -> list:
    """The first-stage variables: acres planted per crop."""
    return [m.acres]


def scenario_creator(scenario_name: str, data: FarmerData) -> pyo.ConcreteModel:
    """mpi-sppy's ``scenario_creator`` protocol: the named yield scenario."""
    if scenario_name not in data.yields:
        raise ValueError(f"unknown farmer scenario {scenario_name!r}; known: {list(data.scenarios)}")
    return build_farmer_model(data, data.yields[scenario_name], data.probability[scenario_name])


def mean_scenario_creator(data: FarmerData) -> pyo.ConcreteModel:
    """The expected-value scenario: probability-weighted mean yields, probability 1."""
    return build_farmer_model(data, data.mean_yields(), 1.0)
