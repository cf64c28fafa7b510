"""Two-stage stochastic recruiting and incentive program, in Pyomo.

The model builder is an ordered list of ``define_*`` calls, one per variable group or
constraint family (the PyPSA pattern), each in the module of its family beside the numpy
kernel of the same math:

    layout.py     the order of sets, columns and rows <-> (depot, channel, week) arrays
    sets.py       index sets, first-stage variables and their bounds
    decisions.py  the planner's committed decisions: fixed, minimum or maximum first-stage values
    drivers.py    arrivals through the funnel, driver stock, onboarding cap, capacity
    bonus.py      sign-on bonuses: bonus variants of a channel sharing its applicant cap
    recourse.py   second-stage variables, demand balance, surge cap; the closed-form recourse
    service.py    both customers: service level and driver utilisation (kernel), their targets (rows)
    aggregated.py the expected recourse of each depot-week as one convex piecewise-linear
                  function of capacity (segment form): exact, and far smaller than the
                  per-scenario second stage
    budgets.py    total, weekly and regional budgets; spend
    risk.py       CVaR of a scenario's total cost (Rockafellar-Uryasev rows; numpy kernel)
    objective.py  expected total cost (or its mix with CVaR); cost by component

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

Build over all scenarios for the extensive form (``build_model(data)``), over one scenario
for mpi-sppy (``scenario_creator``), or with the recourse aggregated over scenarios
(``build_model(data, recourse="aggregated")``: the same optimum, first stage and budget
duals). Nothing here knows about files or solvers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from formulations.data import ModelData
from formulations.two_stage._pyomo import pyo
from formulations.two_stage.aggregated import define_aggregated_recourse
from formulations.two_stage.bonus import define_applicant_pool_constraints
from formulations.two_stage.budgets import define_budget_constraints
from formulations.two_stage.decisions import define_decision_bounds
from formulations.two_stage.drivers import (
    define_arrivals_definition_constraints,
    define_capacity_definition_constraints,
    define_driver_stock_constraints,
    define_onboarding_cap_constraints,
)
from formulations.two_stage.families import CONSTRAINT_FAMILIES, DEFINITIONAL_FAMILIES
from formulations.two_stage.layout import Layout
from formulations.two_stage.objective import define_objective
from formulations.two_stage.recourse import (
    define_demand_balance_constraints,
    define_second_stage_variables,
    define_surge_cap_constraints,
)
from formulations.two_stage.risk import CUT_RISK_VARS, RISK_VARS, define_cvar_cuts
from formulations.two_stage.service import (
    SERVICE_CHANCE_VARS,
    SERVICE_RISK_VARS,
    define_scenario_service_constraints,
    define_service_constraints,
)
from formulations.two_stage.sets import define_first_stage_variables, define_sets

#: First-stage variable components (the same in every scenario; mpi-sppy "nonants").
FIRST_STAGE_VARS = ("applicants", "incentive_spend", "recruited_arrivals", "active_drivers", "capacity_blocks")
SECOND_STAGE_VARS = ("surge_blocks", "unserved_blocks", "idle_blocks")
AGGREGATED_VARS = ("recourse_segment",)
#: Recourse formulations: per scenario (extensive form), or aggregated over scenarios.
RECOURSE_FORMS = ("extensive", "aggregated")

__all__ = [
    "AGGREGATED_VARS", "CONSTRAINT_FAMILIES", "DEFINITIONAL_FAMILIES", "FIRST_STAGE_VARS", "RECOURSE_FORMS", "RISK_VARS",
    "SECOND_STAGE_VARS",
    "Layout",
    "build_model", "first_stage_variables", "scenario_creator", "variable_components",
]


def build_model(
    data: ModelData,
    scenarios: Sequence[int] | None = None,
    weights: Sequence[float] | None = None,
    checkpoint: Callable[[], None] | None = None,
    recourse: str = "extensive",
    cvar_vertices: Sequence | None = None,
) -> pyo.ConcreteModel:
    """Build the program over the scenarios at positions ``scenarios`` (default: all).

    ``weights`` multiply each scenario's second-stage cost in the objective (default: the
    scenario probabilities, which gives the extensive form; a one-scenario model for
    mpi-sppy uses weight 1). ``checkpoint`` is called between families (an engine passes
    its deadline's check, which may raise to stop a build that has run out of time).
    ``recourse="aggregated"`` replaces the per-scenario second stage by its expectation in
    segment form (aggregated.py); it needs all scenarios with their probabilities. With
    CVaR in the objective the aggregated program states it by risk-envelope cuts, one per
    vertex in ``cvar_vertices`` (risk.py; the engine chooses them), the extensive form by
    its excess rows.
    """
    if recourse not in RECOURSE_FORMS:
        raise ValueError(f"recourse must be one of {RECOURSE_FORMS}, got {recourse!r}")
    if recourse == "aggregated" and (scenarios is not None or weights is not None):
        raise ValueError("the aggregated recourse is over all scenarios with their probabilities")
    if data.cvar_weight > 0 and (scenarios is not None or weights is not None):
        raise ValueError("CVaR couples the scenarios: it needs every scenario")
    if (data.cvar_weight > 0 and recourse == "aggregated") != (cvar_vertices is not None):
        raise ValueError("cvar_vertices go with CVaR on the aggregated recourse, and only there")
    if data.has_week_profile and recourse != "aggregated":
        raise ValueError("long-lead periods with their weekly demand are settled week by week on the aggregated "
                         "recourse only")
    if data.has_targets and recourse != "aggregated":
        raise ValueError("service and utilisation targets are rows of the aggregated recourse")
    if data.has_scenario_targets and (recourse == "aggregated" or scenarios is not None or weights is not None):
        raise ValueError("bad-week service targets couple the scenarios: they need the extensive form over all")
    check = checkpoint or (lambda: None)
    positions = list(range(len(data.scenarios))) if scenarios is None else list(scenarios)
    if weights is None:
        weights = [float(data.probability[i]) for i in positions]
    m = pyo.ConcreteModel(name="optplan_two_stage")
    m._optplan_data = data  # not "_data": that name is a Pyomo Block internal
    m._optplan_scenario_positions = positions
    m._optplan_recourse = recourse
    aggregated = recourse == "aggregated"
    second_stage = (
        (lambda: define_aggregated_recourse(m, data),) if aggregated else (
            lambda: define_demand_balance_constraints(m, data),
            lambda: define_surge_cap_constraints(m, data),
        )
    )
    for define in (
        lambda: define_sets(m, data, positions),
        lambda: define_first_stage_variables(m, data),
        lambda: define_decision_bounds(m, data),
        *(() if aggregated else (lambda: define_second_stage_variables(m, data),)),
        lambda: define_arrivals_definition_constraints(m, data),
        lambda: define_driver_stock_constraints(m, data),
        lambda: define_onboarding_cap_constraints(m, data),
        *((lambda: define_applicant_pool_constraints(m, data),) if data.has_applicant_pools else ()),
        lambda: define_capacity_definition_constraints(m, data),
        *second_stage,
        lambda: define_budget_constraints(m, data),
        *((lambda: define_service_constraints(m, data, m._optplan_segments),) if aggregated else ()),
        *((lambda: define_scenario_service_constraints(m, data),) if data.has_scenario_targets else ()),
        *((lambda: define_cvar_cuts(m, data, cvar_vertices),) if cvar_vertices is not None else ()),
        lambda: define_objective(m, data, dict(zip(positions, weights, strict=True))),
    ):
        check()
        define()
    return m


def variable_components(m: pyo.ConcreteModel) -> list:
    """Every variable component of a built model, in column order (first stage, then recourse)."""
    second = AGGREGATED_VARS if getattr(m, "_optplan_recourse", "extensive") == "aggregated" else SECOND_STAGE_VARS
    risk = () if m.component("cvar_threshold") is None else (
        CUT_RISK_VARS if m.component("cvar_cut_segment") is not None else RISK_VARS)
    bad_weeks = (SERVICE_RISK_VARS if m.component("service_cvar_threshold") is not None
                 else SERVICE_CHANCE_VARS if m.component("service_met") is not None else ())
    return [m.component(name) for name in (*FIRST_STAGE_VARS, *second, *risk, *bad_weeks)]


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
    if data.cvar_weight > 0:  # risk belongs to the wrapper (mpi-sppy's cvar_scenario_creator), not one scenario

        data = replace(data, cvar_weight=0.0)
    m = build_model(data, scenarios=[position], weights=[1.0])
    m._mpisppy_probability = float(data.probability[position])
    try:  # pragma: no cover - depends on an optional package
        from mpisppy.utils import sputils
    except ImportError:
        return m
    sputils.attach_root_node(m, m.first_stage_cost, first_stage_variables(m))
    return m
