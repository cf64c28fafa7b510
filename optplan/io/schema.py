"""Instance format v1: the single source of truth for every input field.

Pydantic models describe the manifest (``instance.yaml``) and one row of each CSV table.
From them come:

* validation: the manifest is validated by pydantic directly; the CSV tables are checked
  column-wise (vectorised, see ``optplan.io.instance``) against the same field constraints,
  read from these models by ``column_specs``;
* the JSON Schema (``json_schema()``, ``optplan schema``);
* the field tables of docs/instance-format.md (``markdown_tables()``, kept in sync by a test).

Each field carries its unit in ``json_schema_extra["unit"]``; money is in the instance's
``horizon.currency``.
"""

from __future__ import annotations

import datetime as dt
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FORMAT_VERSION = 1
CURRENCY = "currency"  # unit placeholder: the instance's horizon.currency


def _f(description: str, unit: str, **kw: Any) -> Any:
    return Field(description=description, json_schema_extra={"unit": unit}, **kw)


# --------------------------------------------------------------------------- manifest


# Upper bounds on every number: far beyond any real depot network, they keep the model within
# what an LP solver holds (HiGHS reads |x| >= 1e20 as infinite and loses accuracy well before)
# and the DP's grids within memory. A value past them is almost surely a unit mistake.
MAX_WEEKS = 520  # weeks: ten years of weekly periods
MAX_PERIOD_WEEKS = 52  # weeks in one long-lead period: a year
MAX_SEGMENTS = 1_000  # incentive segments per depot
MAX_DRIVERS = 1e7  # drivers, or drivers/week
MAX_APPLICANTS = 1e7  # applicants/depot/week
MAX_BLOCKS = 1e9  # blocks/week at one depot
MAX_BLOCKS_PER_DRIVER = 1e4  # blocks/driver/week
MAX_RATE = 1e7  # currency per block or per applicant
MAX_SPEND = 1e12  # currency (per week or over the horizon)
MAX_BLOCKS_PER_CURRENCY = 1e6  # blocks/currency
MAX_UPLIFT = 100.0  # share: a conversion raised at most 101-fold
EARLIEST_START = dt.date(1900, 1, 1)
LATEST_START = dt.date(2200, 1, 1)


def _region_amounts(v: dict[str, float], what: str = "region") -> dict[str, float]:
    """Money per region (or country) id (budgets, spend so far): finite, in [0, MAX_SPEND]."""
    for key, x in v.items():
        if not (0 <= x <= MAX_SPEND and math.isfinite(x)):
            raise ValueError(f"{what} {key!r}: expected a number from 0 to {MAX_SPEND:,.0f}, found {x:g}")
    return v


class _Strict(BaseModel):
    # allow_inf_nan=False: '.inf' and '.nan' in YAML are refused like 'inf' in a CSV cell
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_true_false_for_numbers(cls, v: Any, info) -> Any:
        """YAML's true/false where a number is due (pydantic would read true as 1)."""
        bad = _true_false_for_number(v, cls.model_fields[info.field_name].annotation)
        if bad is not None:
            raise ValueError(f"a number, not {str(bad).lower()}")
        return v


def _true_false_for_number(value: Any, annotation: Any) -> bool | None:
    """The first true/false in ``value`` where ``annotation`` wants a number (looking into
    dict values and list items, e.g. budgets.regions: {R01: true}), else None."""
    origin = typing.get_origin(annotation)
    options = typing.get_args(annotation) if origin in (typing.Union, types.UnionType) else (annotation,)
    if isinstance(value, bool):
        return value if bool not in options and any(a in (int, float) for a in options) else None
    for a in options:
        inner = typing.get_origin(a)
        if isinstance(value, dict) and inner is dict and len(typing.get_args(a)) == 2:
            found = [_true_false_for_number(x, typing.get_args(a)[1]) for x in value.values()]
        elif isinstance(value, list) and inner is list and typing.get_args(a):
            found = [_true_false_for_number(x, typing.get_args(a)[0]) for x in value]
        else:
            continue
        return next((f for f in found if f is not None), None)
    return None


class PeriodRun(_Strict):
    weeks: int = _f("Weeks in each of these periods.", "weeks", ge=1, le=MAX_PERIOD_WEEKS)
    count: int = _f("How many such periods follow one another.", "periods", ge=1, le=MAX_WEEKS)


class Horizon(_Strict):
    weeks: int = _f("Number of planning weeks.", "weeks", ge=1, le=MAX_WEEKS)
    periods: list[PeriodRun] | None = _f(
        "Long-lead periods: runs of periods, in order, e.g. [{weeks: 1, count: 13}, {weeks: 13, count: 11}] "
        "(a quarter of weeks, then quarters), adding up to `weeks`; pipeline.csv and supply.csv then have one row "
        "per period, numbered by its first week, with the period's total (supply: its mean), demand.csv either so "
        "or one row per week (each period's recourse then settled week by week) (docs/formulation.md, \"Long-lead "
        "periods\"). null: every period is one week.",
        "-", default=None,
    )
    start_date: dt.date = _f(
        f"Date of the first day of week 1 (ISO 8601), from {EARLIEST_START} to {LATEST_START}; the whole "
        "horizon ends by then too.", "date"
    )
    currency: str = _f(
        "ISO 4217 code of every money figure in the instance.",
        "-",
        default="USD",
        pattern=r"^[A-Z]{3}$",
    )
    fx_date: dt.date | None = _f(
        f"Date of the exchange rates in the country table (its fx_rate column), from {EARLIEST_START} to "
        f"{LATEST_START}; null: not stated.", "date",
        default=None,
    )


    @field_validator("start_date", "fx_date")
    @classmethod
    def _start_in_range(cls, v):
        if v is not None and not (EARLIEST_START <= v <= LATEST_START):
            raise ValueError(f"a date from {EARLIEST_START} to {LATEST_START}")
        return v

    @model_validator(mode="after")
    def _ends_by_the_latest_date(self):
        """The whole horizon (a long-lead one too) ends by LATEST_START: dates past it are no plan."""
        end = self.start_date + dt.timedelta(weeks=self.weeks)
        if end > LATEST_START + dt.timedelta(weeks=1):
            raise ValueError(f"expected a horizon that ends by {LATEST_START} (start_date plus weeks), "
                             f"found one ending {end}")
        return self


class Recourse(_Strict):
    surge_cost_per_block: float = _f(
        "Cost of one surge block: an incentive bought after demand is known.",
        f"{CURRENCY}/block",
        ge=0,
        le=MAX_RATE,
        default=0.0,
    )
    surge_cap_share: float = _f(
        "Surge blocks in a week are at most this share of the planned capacity.",
        "fraction",
        ge=0,
        le=10,
        default=0.0,
    )


class Penalties(_Strict):
    unserved_cost_per_block: float = _f(
        "Penalty for a block of demand that no driver covers.", f"{CURRENCY}/block", ge=0, le=MAX_RATE
    )
    idle_cost_per_block: float = _f(
        "Penalty for a block of planned capacity beyond demand (drivers without work).",
        f"{CURRENCY}/block",
        ge=0,
        le=MAX_RATE,
        default=0.0,
    )


class Budgets(_Strict):
    total: float | None = _f(
        "Cap on recruiting plus planned-incentive spend over the horizon; null: no cap.",
        CURRENCY,
        ge=0,
        le=MAX_SPEND,
        default=None,
    )
    weekly: float | list[float] | None = _f(
        "Cap on that spend in each week: one number for every week, or a list with one "
        "number per week; null: no cap. With horizon.periods a period's cap is the sum of its weeks' caps.",
        f"{CURRENCY}/week",
        default=None,
    )
    regions: dict[str, float] = _f(
        "Cap on that spend over the horizon per region id (regions not listed: no cap); with a "
        "country table, in the currency of the region's country.",
        CURRENCY,
        default_factory=dict,
    )
    countries: dict[str, float] = _f(
        "Cap on that spend over the horizon per country id of the country table, in that "
        "country's currency (countries not listed: no cap).",
        "local currency",
        default_factory=dict,
    )

    @field_validator("weekly")
    @classmethod
    def _weekly_non_negative(cls, v):
        if isinstance(v, list):
            for i, x in enumerate(v, start=1):
                if not (0 <= x <= MAX_SPEND and math.isfinite(x)):
                    raise ValueError(f"week {i}: expected a number from 0 to {MAX_SPEND:,.0f}, found {x:g}")
        elif v is not None and not (0 <= v <= MAX_SPEND and math.isfinite(v)):
            raise ValueError(f"expected a number from 0 to {MAX_SPEND:,.0f}, found {v:g}")
        return v

    @field_validator("regions", "countries")
    @classmethod
    def _regions_non_negative(cls, v, info):
        return _region_amounts(v, "country" if info.field_name == "countries" else "region")


class Targets(_Strict):
    service_level: float | None = _f(
        "Each depot's expected service level (share of its demand served over the horizon) at "
        "least this; null: no target.",
        "share",
        ge=0,
        le=1,
        default=None,
    )
    service_level_by_depot: dict[str, float] = _f(
        "Per depot targets (depot id -> share), replacing service_level for those depots.",
        "share",
        default_factory=dict,
    )
    service_level_by_region: dict[str, float] = _f(
        "Per region targets (region id -> share): each region's expected service level (its "
        "depots' demand together) at least this.",
        "share",
        default_factory=dict,
    )
    network_service_level: float | None = _f(
        "The network's expected service level (all depots' demand together) at least this.",
        "share",
        ge=0,
        le=1,
        default=None,
    )
    driver_utilisation: float | None = _f(
        "Drivers as customers: each depot's expected share of offered blocks that get work at "
        "least this; null: no floor.",
        "share",
        ge=0,
        le=1,
        default=None,
    )

    blocks_per_driver: float | None = _f(
        "Drivers as customers, their earnings: each depot's expected blocks worked per active "
        "driver-week at least this; null: no floor.",
        "blocks/driver/week",
        ge=0,
        le=MAX_BLOCKS_PER_DRIVER,
        default=None,
    )

    scenario_service_level: float | None = _f(
        "Bad weeks: each depot's service level over the horizon at least this in a share "
        "scenario_service_share of the scenarios, stated as scenario_service_form says "
        "(docs/formulation.md); null: none.",
        "share",
        ge=0,
        le=1,
        default=None,
    )
    scenario_service_share: float = _f(
        "The share of scenarios (by probability) scenario_service_level must hold in; below 1.",
        "share",
        ge=0,
        lt=1,
        default=0.9,
    )
    scenario_service_form: Literal["cvar", "chance"] = _f(
        "How the bad-week target is stated: 'cvar', its CVaR approximation (an LP; conservative: "
        "it implies the target), or 'chance', the chance constraint itself (a MIP with a binary "
        "per depot and scenario; exact, slower; HiGHS only).",
        "-",
        default="cvar",
    )

    @field_validator("service_level_by_depot", "service_level_by_region")
    @classmethod
    def _shares(cls, v):
        for key, x in v.items():
            if not (0 <= x <= 1):
                raise ValueError(f"depot {key!r}: expected a share between 0 and 1, found {x!r}")
        return v


class Guards(_Strict):
    """Thresholds of the plausibility guards on a plan (optplan/planning/guards.py): a plan
    that crosses one is still written, with a warning naming the depot and week."""

    utilisation_floor: float = _f("Warn when a depot's drivers are expected to work less than this share of the "
                                  "blocks they offer.", "share", ge=0, le=1, default=0.5)
    penalty_share: float = _f("Warn when the idle or the unserved penalty is more than this share of the expected "
                              "cost.", "share", ge=0, le=1, default=0.6)
    one_channel_share: float = _f("Warn when one channel brings more than this share of all applicants (with two "
                                  "or more channels).", "share", ge=0, le=1, default=0.99)
    jump_factor: float = _f("Warn when a depot's applicants change by more than this factor from one week to the "
                            "next (weeks with at least one applicant each).", "ratio", ge=1, le=1e6, default=8.0)
    service_floor: float = _f("Warn when the total budget is not fully used (below 95 %) while the network's "
                              "expected service level is below this.", "share", ge=0, le=1, default=0.9)
    channel_cost_ratio: float = _f("A channel costs too much per expected driver when it costs more than this times "
                                   "a channel the same depot could still have used that week.", "ratio", ge=1,
                                   le=1e6, default=1.5)
    costly_channel_share: float = _f("Warn when more than this share of the recruiting spend goes to such costlier "
                                     "applicants.", "share", ge=0, le=1, default=0.25)


class Terminal(_Strict):
    value_per_driver: float | Literal["replacement"] | None = _f(
        "Value of a driver still active at the end of the last week: a number, or 'replacement' for "
        "the cost of recruiting one through the cheapest channel (min over channels of "
        "cost_per_applicant / conversion); at most that cost. Null: 0, drivers left after the "
        "horizon are worth nothing (the plan may let the pool run down near the end).",
        f"{CURRENCY}/driver",
        default=None,
    )

    @field_validator("value_per_driver")
    @classmethod
    def _non_negative(cls, v):
        if isinstance(v, float) and not (0 <= v <= MAX_RATE):
            raise ValueError(f"a number in [0, {MAX_RATE:g}] or 'replacement'")
        return v


#: A file name in files: not empty (which silently meant the default), no NUL byte, not huge.
PATH_RULES = {"min_length": 1, "max_length": 1000, "pattern": r"^[^\x00]+$"}


class Files(_Strict):
    depots: str = _f("Depot table.", "path", **PATH_RULES, default="depots.csv")
    scenarios: str = _f("Scenario table.", "path", **PATH_RULES, default="scenarios.csv")
    demand: str = _f("Demand scenario table.", "path", **PATH_RULES, default="demand.csv")
    channels: str = _f("Recruiting channel table.", "path", **PATH_RULES, default="channels.csv")
    yield_kernel: str = _f("Yield kernel table.", "path", **PATH_RULES, default="yield.csv")
    pipeline: str | None = _f(
        "Pipeline table (optional). Null: pipeline.csv if the folder has one, else no "
        "one is in onboarding.",
        "path", **PATH_RULES,
        default=None,
    )
    incentives: str | None = _f(
        "Planned incentive response table (optional). Null: incentives.csv if the folder "
        "has one, else no planned incentives.",
        "path", **PATH_RULES,
        default=None,
    )
    supply: str | None = _f(
        "Driver supply by week (optional): blocks an active driver offers in a given depot and "
        "week, overriding the depot's constant blocks_per_driver there (seasonal availability). "
        "Null: supply.csv if the folder has one, else the constant every week.",
        "path", **PATH_RULES,
        default=None,
    )
    countries: str | None = _f(
        "Country table (optional): each country's currency, exchange rate to horizon.currency and "
        "local penalties. Null: countries.csv if the folder has one, else one country whose "
        "currency is horizon.currency.",
        "path", **PATH_RULES,
        default=None,
    )
    channel_costs: str | None = _f(
        "Recruiting cost per country and channel in the country's currency (optional; needs the "
        "country table). Null: channel_costs.csv if the folder has one.",
        "path", **PATH_RULES,
        default=None,
    )
    decisions: str | None = _f(
        "The planner's committed decisions (optional): applicants or incentive spend fixed, at least or at "
        "most a value per depot, channel and week; every engine that can state them plans within them. Null: "
        "decisions.csv if the folder has one.",
        "path", **PATH_RULES,
        default=None,
    )
    bonuses: str | None = _f(
        "Sign-on bonus menu (optional): per channel, bonus levels per converted driver and the rise in "
        "conversion each brings; the plan chooses how many applicants get each. Null: bonuses.csv if the "
        "folder has one, else no bonuses.",
        "path", **PATH_RULES,
        default=None,
    )


class Manifest(_Strict):
    """instance.yaml."""

    format_version: Literal[1] = _f("Instance format version.", "-", default=1)
    name: str = _f("Short instance name.", "-", min_length=1, max_length=200)
    description: str = _f("Free text: where the data comes from.", "-", default="")
    horizon: Horizon
    recourse: Recourse = Field(default_factory=Recourse)
    penalties: Penalties
    budgets: Budgets = Field(default_factory=Budgets)
    targets: Targets = Field(default_factory=Targets)
    terminal: Terminal = Field(default_factory=Terminal)
    guards: Guards = Field(default_factory=Guards)
    files: Files = Field(default_factory=Files)


# --------------------------------------------------------------------------- CSV rows

Id = str


class DepotRow(_Strict):
    depot: Id = _f("Depot id (unique).", "-")
    region: Id = _f("Region id; regional budgets refer to it.", "-")
    country: Id | None = _f(
        "Country id (in the country table; then every depot has one): the depot's money figures "
        "(incentives, its region's budget) are in that country's currency. Without a country table: "
        "leave the column out.", "-", default=None)
    active_drivers: float = _f("Drivers active at the start of week 1.", "drivers", ge=0, le=MAX_DRIVERS)
    blocks_per_driver: float = _f(
        "Blocks an active driver works per week.", "blocks/driver/week", gt=0, le=MAX_BLOCKS_PER_DRIVER
    )
    retention: float = _f(
        "Probability that an active driver is still active a week later.",
        "probability/week",
        ge=0,
        le=1,
    )
    onboarding_cap: float | None = _f(
        "Most new active drivers (recruited plus pipeline) the depot can onboard in a "
        "week; empty: no cap.",
        "drivers/week",
        ge=0,
        le=MAX_DRIVERS,
        default=None,
    )


class ScenarioRow(_Strict):
    scenario: Id = _f("Scenario id (unique).", "-")
    probability: float = _f("Scenario probability; all sum to 1.", "probability", ge=0, le=1)


PERIOD_WEEK = "Week number, 1..horizon.weeks (with horizon.periods: the first week of a period)."


class DemandRow(_Strict):
    depot: Id = _f("Depot id (in the depot table).", "-")
    week: int = _f("Week number, 1..horizon.weeks (with horizon.periods: every week, or the first week of each "
                   "period).", "week", ge=1, le=MAX_WEEKS)
    scenario: Id = _f("Scenario id (in the scenario table).", "-")
    blocks: float = _f("Blocks of work needed in that week (with horizon.periods and one row per period: over the "
                       "period).", "blocks/week", ge=0, le=MAX_BLOCKS)


class ChannelRow(_Strict):
    channel: Id = _f("Recruiting channel id (unique).", "-")
    cost_per_applicant: float = _f(
        "Cost of recruiting one applicant.", f"{CURRENCY}/applicant", ge=0, le=MAX_RATE
    )
    applicant_cap: float | None = _f(
        "Most applicants the channel brings per depot per week; empty: no cap.",
        "applicants/depot/week",
        ge=0,
        le=MAX_APPLICANTS,
        default=None,
    )


class YieldRow(_Strict):
    channel: Id = _f("Channel id (in the channel table).", "-")
    lag: int = _f("Weeks k after applying.", "weeks", ge=0, le=104)
    probability: float = _f(
        "Probability that an applicant of week t is an active driver from week t+k on "
        "(first active in week t+k). Per channel these sum to its conversion rate, at most 1.",
        "probability",
        ge=0,
        le=1,
    )


class PipelineRow(_Strict):
    depot: Id = _f("Depot id (in the depot table).", "-")
    week: int = _f(PERIOD_WEEK, "week", ge=1, le=MAX_WEEKS)
    new_drivers: float = _f(
        "Expected new active drivers from applicants already in onboarding, first "
        "active that week (with horizon.periods: over the period).",
        "drivers/week",
        ge=0,
        le=MAX_DRIVERS,
    )


#: The levers and rules of decisions.csv.
DECISION_LEVERS = ("applicants", "incentive_spend")
DECISION_RULES = ("fixed", "min", "max")
#: decisions.csv: a depot or channel written so applies to every one.
EVERY = "*"


class DecisionRow(_Strict):
    depot: Id = _f("Depot id (in the depot table), or * for every depot.", "-")
    channel: Id | None = _f(
        "For applicants: the channel id (in the channel table), or * for every channel; for incentive_spend: "
        "empty.", "-", default=None)
    week: int = _f(PERIOD_WEEK, "week", ge=1, le=MAX_WEEKS)
    lever: Id = _f("What is decided: applicants (recruited through the channel) or incentive_spend (the depot's "
                   "planned incentive spend, all segments together).", "-")
    rule: Id = _f("fixed (exactly the value), min (at least) or max (at most). Rules on the same depot, channel, "
                  "week and lever combine: the plan meets all of them.", "-")
    value: float = _f(
        "Applicants in the week (with horizon.periods: over the period), or incentive spend in the week in "
        "`currency` (over the period).", "applicants/week or currency/week", ge=0, le=MAX_SPEND)
    currency: Id | None = _f(
        "incentive_spend only: the value's currency, horizon.currency or the depot's country's (converted at its "
        "fx_rate); empty: horizon.currency.", "-", default=None)
    note: Id | None = _f("Why (shown beside the number in the plan): a campaign committed, a freeze.", "-",
                         default=None)


class SupplyRow(_Strict):
    depot: Id = _f("Depot id (in the depot table).", "-")
    week: int = _f(PERIOD_WEEK, "week", ge=1, le=MAX_WEEKS)
    blocks_per_driver: float = _f(
        "Blocks an active driver of this depot offers in this week (replaces the depot's "
        "blocks_per_driver for the week; with horizon.periods: per week of the period, on average).",
        "blocks/driver/week",
        gt=0,
        le=MAX_BLOCKS_PER_DRIVER,
    )


class BonusRow(_Strict):
    channel: Id = _f("Channel id (in the channel table) whose applicants may be offered this bonus.", "-")
    bonus_per_driver: float = _f(
        "Bonus paid per applicant of the channel who completes onboarding: to the new driver (a sign-on "
        "bonus) or to the driver who referred them (a referral bonus); paid only on converted drivers, "
        "the plan counts its expected value.", f"{CURRENCY}/driver", gt=0, le=MAX_RATE)
    conversion_uplift: float = _f(
        "Relative rise of the channel's conversion with this bonus: 0.2 turns a conversion of 0.30 into "
        "0.36 (the timing of first blocks stays the channel's); the raised conversion may not exceed 1.",
        "share", ge=0, le=MAX_UPLIFT)
    applicant_uplift: float = _f(
        "Relative rise of the channel's weekly applicant volume with this bonus (a referral bonus brings "
        "more referrals): 0.5 raises an applicant_cap of 10 to 15 a week; needs the channel's cap.",
        "share", ge=0, le=MAX_UPLIFT, default=0.0)


class IncentiveRow(_Strict):
    depot: Id = _f("Depot id (in the depot table).", "-")
    segment: int = _f("Segment number 1, 2, ...: spend fills segments in order.", "-", ge=1, le=MAX_SEGMENTS)
    max_spend: float = _f(
        "Width of the segment: spend per week it can take.", f"{CURRENCY}/week", ge=0, le=MAX_SPEND
    )
    blocks_per_currency: float = _f(
        "Extra blocks per currency unit spent in this segment (block-price uplift paid to "
        "active drivers); non-increasing over segments (concave response).",
        f"blocks/{CURRENCY}",
        ge=0,
        le=MAX_BLOCKS_PER_CURRENCY,
    )


class CountryRow(_Strict):
    country: Id = _f("Country id (unique); depots refer to it.", "-")
    currency: Id = _f("ISO 4217 code of the country's money figures (3 capital letters).", "-")
    fx_rate: float = _f(
        "Value of one unit of the country's currency in horizon.currency (as of horizon.fx_date).",
        f"{CURRENCY}/local currency", ge=1e-6, le=1e6)  # real rates lie within 1e-5 .. 1e4; smaller underflow
    unserved_cost_per_block: float | None = _f(
        "Penalty for an unserved block at this country's depots, local currency; empty: "
        "penalties.unserved_cost_per_block.", "local currency/block", ge=0, le=MAX_RATE, default=None)
    idle_cost_per_block: float | None = _f(
        "Penalty for an idle block at this country's depots, local currency; empty: "
        "penalties.idle_cost_per_block.", "local currency/block", ge=0, le=MAX_RATE, default=None)
    surge_cost_per_block: float | None = _f(
        "Cost of a surge block at this country's depots, local currency; empty: "
        "recourse.surge_cost_per_block.", "local currency/block", ge=0, le=MAX_RATE, default=None)


class ChannelCostRow(_Strict):
    country: Id = _f("Country id (in the country table).", "-")
    channel: Id = _f("Channel id (in the channel table).", "-")
    cost_per_applicant: float = _f(
        "Cost of recruiting one applicant through this channel in this country, local currency "
        "(replaces the channel table's cost there).", "local currency/applicant", ge=0, le=MAX_RATE)


@dataclass(frozen=True)
class TableSpec:
    """One CSV table: its manifest key, row model and key columns (unique together)."""

    name: str  # key in Manifest.files
    row: type[BaseModel]
    key: tuple[str, ...]
    required: bool = True


TABLES: tuple[TableSpec, ...] = (
    TableSpec("depots", DepotRow, ("depot",)),
    TableSpec("scenarios", ScenarioRow, ("scenario",)),
    TableSpec("demand", DemandRow, ("depot", "week", "scenario")),
    TableSpec("channels", ChannelRow, ("channel",)),
    TableSpec("yield_kernel", YieldRow, ("channel", "lag")),
    TableSpec("pipeline", PipelineRow, ("depot", "week"), required=False),
    TableSpec("incentives", IncentiveRow, ("depot", "segment"), required=False),
    TableSpec("supply", SupplyRow, ("depot", "week"), required=False),
    TableSpec("countries", CountryRow, ("country",), required=False),
    TableSpec("channel_costs", ChannelCostRow, ("country", "channel"), required=False),
    TableSpec("decisions", DecisionRow, ("depot", "channel", "week", "lever", "rule"), required=False),
    TableSpec("bonuses", BonusRow, ("channel", "bonus_per_driver"), required=False),
)
TABLE_BY_NAME = {t.name: t for t in TABLES}


@dataclass(frozen=True)
class ColumnSpec:
    """What the vectorised validator needs to know about a column (from a row model)."""

    name: str
    kind: Literal["id", "int", "float"]
    required: bool  # the cell may not be empty
    ge: float | None
    le: float | None
    gt: float | None
    unit: str
    description: str

    def expectation(self) -> str:
        """Human wording of the column's domain, e.g. 'a number >= 0'."""
        what = {"id": "a non-empty id", "int": "a whole number", "float": "a number"}[self.kind]
        if self.ge is not None and self.le is not None:
            return f"{what} in [{_num(self.ge)}, {_num(self.le)}]"
        parts = []
        if self.ge is not None:
            parts.append(f">= {_num(self.ge)}")
        if self.gt is not None:
            parts.append(f"> {_num(self.gt)}")
        if self.le is not None:
            parts.append(f"<= {_num(self.le)}")
        return " ".join([what, *parts]) if parts else what


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def column_specs(row: type[BaseModel]) -> list[ColumnSpec]:
    """Read the column domains (type, bounds, optional) from a pydantic row model."""
    specs = []
    for name, info in row.model_fields.items():
        ann = info.annotation
        optional = not info.is_required()
        base = ann
        if hasattr(ann, "__args__"):  # X | None
            base = next(a for a in ann.__args__ if a is not type(None))
        kind = {str: "id", int: "int", float: "float"}[base]
        ge = le = gt = None
        for meta in info.metadata:
            ge = getattr(meta, "ge", ge)
            le = getattr(meta, "le", le)
            gt = getattr(meta, "gt", gt)
        extra = info.json_schema_extra or {}
        specs.append(
            ColumnSpec(
                name=name,
                kind=kind,
                required=not optional,
                ge=ge,
                le=le,
                gt=gt,
                unit=extra.get("unit", "-"),
                description=info.description or "",
            )
        )
    return specs


def json_schema() -> dict:
    """JSON Schema of the whole format: the manifest and one array-of-rows per table."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"optplan instance format v{FORMAT_VERSION}",
        "description": (
            "An instance is a folder with instance.yaml (the manifest) and CSV tables; each "
            "table is described as an array of row objects. Units are in each field's 'unit'."
        ),
        "type": "object",
        "properties": {
            "manifest": Manifest.model_json_schema(),
            "tables": {
                "type": "object",
                "properties": {
                    t.name: {"type": "array", "items": t.row.model_json_schema()} for t in TABLES
                },
                "required": [t.name for t in TABLES if t.required],
            },
        },
        "required": ["manifest", "tables"],
    }


def markdown_tables() -> str:
    """The field tables of docs/instance-format.md, generated from the models."""
    out = []

    def table(title: str, model: type[BaseModel], prefix: str = "") -> None:
        out.append(f"### {title}\n")
        out.append("| field | type | unit | default | description |")
        out.append("|---|---|---|---|---|")
        for name, info in model.model_fields.items():
            ann = info.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                continue
            type_name = (getattr(ann, "__name__", None) or str(ann).replace("typing.", "")).replace("optplan.io.schema.", "")
            if info.is_required():
                default = "required"
            elif info.default_factory is not None:
                default = "`{}`"
            else:
                default = f"`{info.default}`" if info.default is not None else "empty / null"
            unit = (info.json_schema_extra or {}).get("unit", "-")
            bounds = []
            for meta in info.metadata:
                for op, attr in ((">=", "ge"), (">", "gt"), ("<=", "le")):
                    if getattr(meta, attr, None) is not None:
                        bounds.append(f"{op} {_num(getattr(meta, attr))}")
            desc = (info.description or "") + (f" ({', '.join(bounds)})" if bounds else "")
            out.append(f"| `{prefix}{name}` | {type_name} | {unit} | {default} | {desc} |")
        out.append("")

    table("instance.yaml (top level)", Manifest)
    for key, model in (
        ("horizon", Horizon),
        ("horizon.periods[]", PeriodRun),
        ("recourse", Recourse),
        ("penalties", Penalties),
        ("budgets", Budgets),
        ("targets", Targets),
        ("terminal", Terminal),
        ("guards", Guards),
        ("files", Files),
    ):
        table(f"instance.yaml: `{key}`", model, prefix=f"{key}.")
    for t in TABLES:
        default_file = Files.model_fields[t.name].default or f"{t.name}.csv"
        req = "required" if t.required else "optional"
        table(
            f"{default_file} ({req}; key: {', '.join(t.key)})",
            t.row,
        )
    return "\n".join(out)



# --------------------------------------------------------------------------- replan state
# What is known at the start of week k (optplan replan; docs/replan.md). A folder with
# state.yaml and CSV tables, checked like an instance (one line per problem, exit 2).


class StateFiles(_Strict):
    drivers: str = _f("Active drivers per depot at the start of the week.", "path", default="drivers.csv")
    recruited: str | None = _f(
        "Applicants recruited in earlier weeks (optional). Null: recruited.csv if the folder has "
        "one, else none: their expected future arrivals come from the yield kernel.",
        "path",
        default=None,
    )
    pipeline: str | None = _f(
        "Expected arrivals from everyone already in onboarding (optional). When given it replaces "
        "both the instance's pipeline and the kernel's yield of the recruited table.",
        "path",
        default=None,
    )
    demand_seen: str | None = _f(
        "Demand seen in earlier weeks (optional). Null: demand_seen.csv if the folder has one. When given, the "
        "scenarios' probabilities are updated by it (state.yaml: demand_noise).",
        "path",
        default=None,
    )


class DemandNoise(_Strict):
    sd: float = _f("Log-sd of weekly demand around its scenario (the out-of-sample sampler's noise); 0: the demand "
                   "seen must equal a scenario's exactly; else at least 0.001 (smaller overflows the likelihood).",
                   "log blocks", ge=0, le=2, default=0.05)
    ar: float = _f("Week-to-week correlation of that noise.", "-", ge=0, lt=1, default=0.5)

    @field_validator("sd")
    @classmethod
    def _zero_or_resolvable(cls, v: float) -> float:
        if 0 < v < 1e-3:
            raise ValueError("0 (an exact match) or at least 0.001")
        return v


class SpendToDate(_Strict):
    total: float = _f(
        "Recruiting plus planned-incentive spend in the weeks before `week`.", CURRENCY, ge=0, le=MAX_SPEND,
        default=0.0,
    )
    regions: dict[str, float] = _f("That spend per region id (regions with a budget), in the currency of the "
                                   "region's budget.", CURRENCY, default_factory=dict)
    countries: dict[str, float] = _f("That spend per country id (countries with a budget), in the country's currency.",
                                     "local currency", default_factory=dict)

    @field_validator("regions", "countries")
    @classmethod
    def _regions(cls, v):
        return _region_amounts(v)


class StateManifest(_Strict):
    """state.yaml."""

    format_version: Literal[1] = _f("State format version.", "-", default=1)
    week: int = _f("First week to plan (1..horizon.weeks); the weeks before it have happened.", "week",
                   ge=1, le=MAX_WEEKS)
    spend_to_date: SpendToDate = Field(default_factory=SpendToDate)
    demand_noise: DemandNoise = Field(default_factory=DemandNoise, description=(
        "How demand strays from its scenario, for weighting the scenarios by the demand seen (optplan.evaluation.sampling."
        "scenario_posterior); used only with a demand_seen table."))
    files: StateFiles = Field(default_factory=StateFiles)


class StateDriversRow(_Strict):
    depot: Id = _f("Depot id (in the instance's depot table).", "-")
    active_drivers: float = _f("Drivers active at the start of the week (the end of the week before).", "drivers",
                               ge=0, le=MAX_DRIVERS)


class RecruitedRow(_Strict):
    depot: Id = _f("Depot id.", "-")
    channel: Id = _f("Channel id.", "-")
    week: int = _f("Week the applicants were recruited (before the state's week).", "week", ge=1, le=MAX_WEEKS)
    applicants: float = _f("Applicants recruited that week.", "applicants", ge=0, le=MAX_APPLICANTS)


class DemandSeenRow(_Strict):
    depot: Id = _f("Depot id.", "-")
    week: int = _f("A week before the state's week.", "week", ge=1, le=MAX_WEEKS)
    blocks: float = _f("Blocks of work that depot had that week.", "blocks/week", ge=0, le=MAX_BLOCKS)


STATE_TABLES: tuple[TableSpec, ...] = (
    TableSpec("drivers", StateDriversRow, ("depot",)),
    TableSpec("recruited", RecruitedRow, ("depot", "channel", "week"), required=False),
    TableSpec("pipeline", PipelineRow, ("depot", "week"), required=False),
    TableSpec("demand_seen", DemandSeenRow, ("depot", "week"), required=False),
)
