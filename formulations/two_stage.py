"""Two-stage stochastic recruiting and incentive program, in Pyomo.

The model builder is an ordered list of ``define_*`` calls, one per variable group or
constraint family (the PyPSA pattern); each docstring states its constraint with units.
Notation (docs/formulation.md writes it out in full):

    d depot, c channel, t week 1..T, s scenario, k lag (weeks), g incentive spend segment
    x[d,c,t]  applicants recruited                      applicants
    z[d,t,g]  planned incentive spend                   currency/week
    n[d,t]    new active drivers from recruiting        drivers/week
    a[d,t]    active drivers at the end of week t       drivers
    q[d,t]    planned capacity                          blocks/week
    u[d,t,s]  surge blocks bought after demand is known blocks/week
    v[d,t,s]  unserved blocks                           blocks/week
    w[d,t,s]  idle blocks (capacity beyond demand)      blocks/week

Build over all scenarios for the extensive form (``build_model(data)``), or over one
scenario for mpi-sppy (``scenario_creator``). Nothing here knows about files or solvers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyomo.environ as pyo

from formulations.data import ModelData

#: Constraint families in build order; the names are the Pyomo component names.
CONSTRAINT_FAMILIES = (
    "arrivals_definition",
    "driver_stock",
    "onboarding_cap",
    "capacity_definition",
    "demand_balance",
    "surge_cap",
    "budget_total",
    "budget_week",
    "budget_region",
)

#: First-stage variable components (the same in every scenario; mpi-sppy "nonants").
FIRST_STAGE_VARS = (
    "applicants",
    "incentive_spend",
    "recruited_arrivals",
    "active_drivers",
    "capacity_blocks",
)
SECOND_STAGE_VARS = ("surge_blocks", "unserved_blocks", "idle_blocks")


def build_model(
    data: ModelData,
    scenarios: Sequence[int] | None = None,
    weights: Sequence[float] | None = None,
) -> pyo.ConcreteModel:
    """Build the program over the scenarios at positions ``scenarios`` (default: all).

    ``weights`` multiply each scenario's second-stage cost in the objective (default: the
    scenario probabilities, which gives the extensive form; a one-scenario model for
    mpi-sppy uses weight 1).
    """
    positions = list(range(len(data.scenarios))) if scenarios is None else list(scenarios)
    if weights is None:
        weights = [float(data.probability[i]) for i in positions]
    m = pyo.ConcreteModel(name="optplan_two_stage")
    m._optplan_data = data  # not "_data": that name is a Pyomo Block internal
    m._optplan_scenario_positions = positions
    define_sets(m, data, positions)
    define_first_stage_variables(m, data)
    define_second_stage_variables(m, data)
    define_arrivals_definition_constraints(m, data)
    define_driver_stock_constraints(m, data)
    define_onboarding_cap_constraints(m, data)
    define_capacity_definition_constraints(m, data)
    define_demand_balance_constraints(m, data)
    define_surge_cap_constraints(m, data)
    define_budget_constraints(m, data)
    define_objective(m, data, dict(zip(positions, weights, strict=True)))
    return m


def define_sets(m: pyo.ConcreteModel, data: ModelData, positions: list[int]) -> None:
    """Index sets; RECRUIT and SEGMENTS are sparse (only entries that can matter)."""
    D, C, T, _ = data.shape
    m.DEPOTS = pyo.Set(initialize=data.depots, ordered=True)
    m.CHANNELS = pyo.Set(initialize=data.channels, ordered=True)
    m.WEEKS = pyo.RangeSet(1, T)
    m.SCENARIOS = pyo.Set(initialize=[data.scenarios[i] for i in positions], ordered=True)
    dd, cc, tt = np.nonzero(data.recruit_mask())
    m.RECRUIT = pyo.Set(
        dimen=3,
        ordered=True,
        initialize=[
            (data.depots[d], data.channels[c], int(t) + 1) for d, c, t in zip(dd, cc, tt, strict=False)
        ],
    )
    sd, sg = np.nonzero(data.segment_mask())
    m.SEGMENTS = pyo.Set(
        dimen=3,
        ordered=True,
        initialize=[
            (data.depots[d], t, int(g) + 1) for d, g in zip(sd, sg, strict=False) for t in range(1, T + 1)
        ],
    )
    m.DEPOT_WEEK = pyo.Set(
        dimen=2, ordered=True, initialize=[(d, t) for d in data.depots for t in range(1, T + 1)]
    )
    m.DEPOT_WEEK_SCENARIO = pyo.Set(
        dimen=3,
        ordered=True,
        initialize=[
            (d, t, s) for d in data.depots for t in range(1, T + 1) for s in m.SCENARIOS
        ],
    )


def define_first_stage_variables(m: pyo.ConcreteModel, data: ModelData) -> None:
    """x, z, n, a, q with their bounds.

    0 <= x[d,c,t] <= applicant_cap[d,c]            applicants/week
    0 <= z[d,t,g] <= incentive_width[d,g]          currency/week
    n, a, q >= 0                                   drivers/week, drivers, blocks/week
    """
    d_pos = {d: i for i, d in enumerate(data.depots)}
    c_pos = {c: i for i, c in enumerate(data.channels)}
    cap = data.applicant_cap

    def applicant_bounds(_m, d, c, t):
        ub = cap[d_pos[d], c_pos[c]]
        return (0.0, None if np.isinf(ub) else float(ub))

    domain = pyo.NonNegativeIntegers if data.integer_applicants else pyo.NonNegativeReals
    m.applicants = pyo.Var(m.RECRUIT, domain=domain, bounds=applicant_bounds)

    def spend_bounds(_m, d, t, g):
        return (0.0, float(data.incentive_width[d_pos[d], g - 1]))

    m.incentive_spend = pyo.Var(m.SEGMENTS, domain=pyo.NonNegativeReals, bounds=spend_bounds)
    m.recruited_arrivals = pyo.Var(m.DEPOT_WEEK, domain=pyo.NonNegativeReals)
    m.active_drivers = pyo.Var(m.DEPOT_WEEK, domain=pyo.NonNegativeReals)
    m.capacity_blocks = pyo.Var(m.DEPOT_WEEK, domain=pyo.NonNegativeReals)


def define_second_stage_variables(m: pyo.ConcreteModel, data: ModelData) -> None:
    """u, v, w >= 0 per depot, week and scenario (blocks/week); u is fixed at 0 when the
    surge cap share is 0."""
    m.surge_blocks = pyo.Var(
        m.DEPOT_WEEK_SCENARIO,
        domain=pyo.NonNegativeReals,
        bounds=(0.0, 0.0) if data.surge_cap_share == 0 else (0.0, None),
    )
    m.unserved_blocks = pyo.Var(m.DEPOT_WEEK_SCENARIO, domain=pyo.NonNegativeReals)
    m.idle_blocks = pyo.Var(m.DEPOT_WEEK_SCENARIO, domain=pyo.NonNegativeReals)


def define_arrivals_definition_constraints(m: pyo.ConcreteModel, data: ModelData) -> None:
    """New active drivers from recruiting, through each channel's yield kernel.

    n[d,t] = sum_c sum_{k=0..L} yield[c,k] * x[d,c,t-k]        drivers/week
    (yield[c,k]: probability that an applicant of week t-k is newly active in week t;
    x terms outside RECRUIT or before week 1 are absent).
    """
    terms: dict[tuple[str, int], list] = {key: [] for key in m.DEPOT_WEEK}
    kernel = data.yield_kernel
    c_pos = {c: i for i, c in enumerate(data.channels)}
    T = data.n_weeks
    for d, c, t in m.RECRUIT:
        row = kernel[c_pos[c]]
        var = m.applicants[d, c, t]
        for k in np.flatnonzero(row):
            if t + k <= T:
                terms[d, t + int(k)].append((float(row[k]), var))

    def rule(_m, d, t):
        return m.recruited_arrivals[d, t] - sum(coef * var for coef, var in terms[d, t]) == 0

    m.arrivals_definition = pyo.Constraint(m.DEPOT_WEEK, rule=rule)


def define_driver_stock_constraints(m: pyo.ConcreteModel, data: ModelData) -> None:
    """Stock-flow of active drivers (expected headcount).

    a[d,t] = retention[d] * a[d,t-1] + n[d,t] + pipeline[d,t]   drivers
    with a[d,0] = initial active drivers (constant).
    """
    d_pos = {d: i for i, d in enumerate(data.depots)}

    def rule(_m, d, t):
        i = d_pos[d]
        r = float(data.retention[i])
        inflow = float(data.pipeline[i, t - 1])
        if t == 1:
            previous = r * float(data.initial_active[i])
            return m.active_drivers[d, t] - m.recruited_arrivals[d, t] == previous + inflow
        return (
            m.active_drivers[d, t] - r * m.active_drivers[d, t - 1] - m.recruited_arrivals[d, t]
            == inflow
        )

    m.driver_stock = pyo.Constraint(m.DEPOT_WEEK, rule=rule)


def define_onboarding_cap_constraints(m: pyo.ConcreteModel, data: ModelData) -> None:
    """Onboarding throughput, where a depot has a cap.

    n[d,t] + pipeline[d,t] <= onboarding_cap[d]                drivers/week
    """
    d_pos = {d: i for i, d in enumerate(data.depots)}
    capped = [(d, t) for d, t in m.DEPOT_WEEK if np.isfinite(data.onboarding_cap[d_pos[d]])]

    def rule(_m, d, t):
        i = d_pos[d]
        room = float(data.onboarding_cap[i]) - float(data.pipeline[i, t - 1])
        return m.recruited_arrivals[d, t] <= room

    m.onboarding_cap = pyo.Constraint(pyo.Set(initialize=capped, dimen=2, ordered=True), rule=rule)


def define_capacity_definition_constraints(m: pyo.ConcreteModel, data: ModelData) -> None:
    """Planned capacity: drivers' blocks plus blocks bought by planned incentives.

    q[d,t] = blocks_per_driver[d] * a[d,t] + sum_g rate[d,g] * z[d,t,g]   blocks/week
    (rate: extra blocks per currency unit; segments fill in order because rates are
    non-increasing, i.e. the response is concave).
    """
    d_pos = {d: i for i, d in enumerate(data.depots)}
    segments: dict[tuple[str, int], list[int]] = {}
    for d, t, g in m.SEGMENTS:
        segments.setdefault((d, t), []).append(g)

    def rule(_m, d, t):
        i = d_pos[d]
        bought = sum(
            float(data.incentive_rate[i, g - 1]) * m.incentive_spend[d, t, g]
            for g in segments.get((d, t), ())
        )
        return (
            m.capacity_blocks[d, t]
            - float(data.blocks_per_driver[i]) * m.active_drivers[d, t]
            - bought
            == 0
        )

    m.capacity_definition = pyo.Constraint(m.DEPOT_WEEK, rule=rule)


def define_demand_balance_constraints(m: pyo.ConcreteModel, data: ModelData) -> None:
    """Second-stage balance of blocks in every scenario.

    q[d,t] + u[d,t,s] + v[d,t,s] - w[d,t,s] = demand[d,t,s]      blocks/week

    One row replaces the pair  v >= demand - q - u,  w >= q - demand:  with all costs
    non-negative an optimal recourse never buys surge while blocks sit idle, so both give
    the same optimum (docs/formulation.md, "Balance row").
    """
    d_pos = {d: i for i, d in enumerate(data.depots)}
    s_pos = {data.scenarios[i]: i for i in m._optplan_scenario_positions}
    demand = data.demand
    q, u, v, w = m.capacity_blocks, m.surge_blocks, m.unserved_blocks, m.idle_blocks

    def rule(_m, d, t, s):
        return q[d, t] + u[d, t, s] + v[d, t, s] - w[d, t, s] == float(
            demand[d_pos[d], t - 1, s_pos[s]]
        )

    m.demand_balance = pyo.Constraint(m.DEPOT_WEEK_SCENARIO, rule=rule)


def define_surge_cap_constraints(m: pyo.ConcreteModel, data: ModelData) -> None:
    """Surge blocks are capped as a share of planned capacity (absent when the share is 0).

    u[d,t,s] <= surge_cap_share * q[d,t]                          blocks/week
    """
    share = float(data.surge_cap_share)
    index = m.DEPOT_WEEK_SCENARIO if share > 0 else pyo.Set(initialize=[], dimen=3)
    u, q = m.surge_blocks, m.capacity_blocks

    def rule(_m, d, t, s):
        return u[d, t, s] - share * q[d, t] <= 0

    m.surge_cap = pyo.Constraint(index, rule=rule)


def define_budget_constraints(m: pyo.ConcreteModel, data: ModelData) -> None:
    """Budgets on first-stage spend (recruiting plus planned incentives), currency.

    total:      sum_{d,c,t} cost[c] x[d,c,t] + sum_{d,t,g} z[d,t,g] <= B          currency
    per week:   sum_{d,c}   cost[c] x[d,c,t] + sum_{d,g}   z[d,t,g] <= B_t        currency
    per region: sum_{d in r,c,t} cost[c] x[d,c,t] + sum_{d in r,t,g} z <= B_r    currency
    Each family is present only where a cap is given.
    """
    c_pos = {c: i for i, c in enumerate(data.channels)}
    region_of = dict(zip(data.depots, data.regions, strict=True))
    by_week: dict[int, list] = {t: [] for t in m.WEEKS}
    by_region: dict[str, list] = {r: [] for r in data.budget_region}
    everything: list = []
    for d, c, t in m.RECRUIT:
        term = (float(data.cost_per_applicant[c_pos[c]]), m.applicants[d, c, t])
        by_week[t].append(term)
        by_region.setdefault(region_of[d], []).append(term)
        everything.append(term)
    for d, t, g in m.SEGMENTS:
        term = (1.0, m.incentive_spend[d, t, g])
        by_week[t].append(term)
        by_region.setdefault(region_of[d], []).append(term)
        everything.append(term)

    def spend(terms):
        return sum(coef * var for coef, var in terms if coef != 0)

    m.first_stage_spend = pyo.Expression(expr=spend(everything))
    m.budget_total = pyo.Constraint(
        pyo.Set(initialize=["total"] if np.isfinite(data.budget_total) and everything else []),
        rule=lambda _m, _k: m.first_stage_spend <= float(data.budget_total),
    )
    weeks = [
        t for t in m.WEEKS if np.isfinite(data.budget_weekly[t - 1]) and by_week[t]
    ]
    m.budget_week = pyo.Constraint(
        pyo.Set(initialize=weeks, ordered=True),
        rule=lambda _m, t: spend(by_week[t]) <= float(data.budget_weekly[t - 1]),
    )
    regions = [r for r, cap in data.budget_region.items() if np.isfinite(cap) and by_region[r]]
    m.budget_region = pyo.Constraint(
        pyo.Set(initialize=regions, ordered=True),
        rule=lambda _m, r: spend(by_region[r]) <= float(data.budget_region[r]),
    )


def define_objective(m: pyo.ConcreteModel, data: ModelData, weights: dict[int, float]) -> None:
    """Minimise expected total cost, currency.

    first stage:  sum cost[c] x + sum z
    second stage: sum_s weight_s * sum_{d,t} (surge_cost u + unserved_cost v + idle_cost w)
    ``first_stage_cost`` and ``second_stage_cost[s]`` are kept as named Expressions so that
    mpi-sppy (and the reports) can read them.
    """
    m.first_stage_cost = pyo.Expression(expr=m.first_stage_spend.expr)
    cu, cv, cw = float(data.surge_cost), float(data.unserved_cost), float(data.idle_cost)
    by_scenario: dict[str, list] = {s: [] for s in m.SCENARIOS}
    for d, t, s in m.DEPOT_WEEK_SCENARIO:
        by_scenario[s].append((d, t))

    def second_stage(_m, s):
        return sum(
            cu * m.surge_blocks[d, t, s]
            + cv * m.unserved_blocks[d, t, s]
            + cw * m.idle_blocks[d, t, s]
            for d, t in by_scenario[s]
        )

    m.second_stage_cost = pyo.Expression(m.SCENARIOS, rule=second_stage)
    name_weight = {data.scenarios[i]: w for i, w in weights.items()}
    m.expected_cost = pyo.Objective(
        expr=m.first_stage_cost
        + sum(name_weight[s] * m.second_stage_cost[s] for s in m.SCENARIOS),
        sense=pyo.minimize,
    )


def first_stage_variables(m: pyo.ConcreteModel) -> list:
    """The first-stage (non-anticipative) variable components of a built model."""
    return [getattr(m, name) for name in FIRST_STAGE_VARS]


def scenario_creator(scenario_name: str, data: ModelData) -> pyo.ConcreteModel:
    """mpi-sppy's ``scenario_creator`` protocol: one scenario's model, cost weight 1.

    The model carries ``_mpisppy_probability`` and, when mpi-sppy is installed, its root
    node (first-stage cost and variables) via ``sputils.attach_root_node``; without mpi-sppy
    the same information is on ``model.first_stage_cost`` and ``first_stage_variables``.
    Use with ``scenario_creator_kwargs={"data": data}``.
    """
    position = data.scenarios.index(scenario_name)
    m = build_model(data, scenarios=[position], weights=[1.0])
    m._mpisppy_probability = float(data.probability[position])
    try:  # pragma: no cover - depends on an optional package
        from mpisppy.utils import sputils
    except ImportError:
        return m
    sputils.attach_root_node(m, m.first_stage_cost, first_stage_variables(m))
    return m
