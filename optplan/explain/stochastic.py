"""Classic two-stage stochastic-programming values for any scenario model.

Works on scenario models built in mpi-sppy's ``scenario_creator`` protocol:
``scenario_creator(name, **kwargs)`` returns a ``pyo.ConcreteModel`` with exactly one
active Objective (that scenario's full cost, weight 1, sense *minimize*), an attribute
``_mpisppy_probability`` and first-stage variables given either by a ``first_stage(model)``
callable (Var components or VarData) or, when no callable is given, by mpi-sppy's
``model._mpisppy_node_list[0].nonant_vardata_list``.

Definitions (Birge & Louveaux, *Introduction to Stochastic Programming*, Ch. 4), all for
a **minimization** problem ``min_x E_xi[ f(x, xi) ]`` with first stage ``x``:

    RP   recourse problem        min_x  sum_s p_s f(x, xi_s)         (the extensive form)
    EV   expected-value problem  min_x  f(x, E[xi])                   (one "mean scenario")
                                 with optimal first stage x_EV
    EEV  expected result of EV   sum_s p_s f(x_EV, xi_s)             (x fixed at x_EV)
    WS   wait-and-see            sum_s p_s min_x f(x, xi_s)          (each scenario alone)
    EVPI expected value of perfect information  = RP - WS   >= 0
    VSS  value of the stochastic solution       = EEV - RP  >= 0

so that WS <= RP <= EEV. A maximization problem (e.g. profit) must be written as
``minimize cost = -profit``: the formulas above then hold unchanged and EVPI, VSS are
non-negative amounts of cost (= profit). Scenario objectives with sense *maximize* are
rejected rather than silently reinterpreted. ``EV`` itself has no ordering guarantee with
respect to RP in general (it is the optimum of a different problem). EVPI and VSS are
reported as computed, so they can be slightly negative (of the order of the solver's
tolerances) when the true value is 0.

Variables are matched between models of one family (scenario models, the mean-scenario
model, the extensive form) by their name relative to their scenario model
(``vardata.getname(fully_qualified=True, relative_to=model)``, e.g. ``acres[wheat]``), so
every scenario model and the mean-scenario model must name their first-stage variables
identically.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyomo.environ as pyo
from pyomo.contrib.solver.common.results import TerminationCondition as TC
from pyomo.opt import TerminationCondition

from formulations import two_stage
from formulations.two_stage.layout import Layout
from optplan.errors import OptionError
from optplan.evaluation.evaluator import evaluate_decisions
from optplan.io.instance import PROBABILITY_SUM_ATOL
from optplan.solvers import SolveOptions, solve_data
from optplan.solvers.backends import SerialBackend
from optplan.solvers.highs import solve_pyomo_model

if TYPE_CHECKING:  # pragma: no cover
    from formulations.data import ModelData

#: Probabilities of the scenarios passed must sum to 1 within this absolute tolerance.
PROBABILITY_ATOL = 1e-9

#: Terminations reported by Pyomo's legacy interface when no feasible point exists.
_INFEASIBLE = (TerminationCondition.infeasible, TerminationCondition.infeasibleOrUnbounded)

FirstStage = Callable[[pyo.ConcreteModel], Iterable[Any]]


#: Display label of each measure (reports show these; code keys by the short name).
#: Each measure in a planner's words, the textbook name after it (optplan.explain.presentation.GLOSSARY).
LABELS = {
    "rp": "Cost of the plan for uncertainty (RP)",
    "ev": "Cost the average-demand plan expects (EV)",
    "eev": "Cost of the average-demand plan when the scenarios happen (EEV)",
    "ws": "Cost with perfect foresight (WS)",
    "evpi": "Value of perfect foresight (EVPI = RP - WS)",
    "vss": "Value of planning for uncertainty (VSS = EEV - RP)",
}


@dataclass(frozen=True)
class StochasticValues:
    """RP, EV, EEV, WS, EVPI = RP - WS and VSS = EEV - RP of a two-stage minimization.

    Objective values are in the scenario objective's unit (e.g. currency). First-stage
    dicts map a first-stage variable's model-relative name to its value.
    """

    rp: float  # recourse problem: extensive-form optimum
    ev: float  # expected-value problem optimum (mean scenario)
    eev: float  # expected cost of the EV first stage over the scenarios
    ws: float  # wait-and-see: expected optimum with perfect information
    evpi: float  # RP - WS
    vss: float  # EEV - RP
    rp_first_stage: dict[str, float] = field(default_factory=dict)
    ev_first_stage: dict[str, float] = field(default_factory=dict)
    ws_by_scenario: dict[str, float] = field(default_factory=dict)  # each scenario's own optimum
    eev_by_scenario: dict[str, float] = field(default_factory=dict)  # each scenario's cost at x_EV
    probability: dict[str, float] = field(default_factory=dict)

    def measures(self) -> dict[str, float]:
        """The six measures keyed by short name (rp, ev, eev, ws, evpi, vss); labels in LABELS."""
        return {key: float(getattr(self, key)) for key in LABELS}

    def to_dict(self) -> dict:
        return {
            "rp": self.rp, "ev": self.ev, "eev": self.eev, "ws": self.ws, "evpi": self.evpi, "vss": self.vss,
            "rp_first_stage": dict(self.rp_first_stage), "ev_first_stage": dict(self.ev_first_stage),
            "ws_by_scenario": dict(self.ws_by_scenario), "eev_by_scenario": dict(self.eev_by_scenario),
            "probability": dict(self.probability),
        }


# --------------------------------------------------------------------------- helpers


def _objective(model: pyo.ConcreteModel, label: str):
    """The single active objective of a scenario model (minimize)."""
    objectives = list(model.component_data_objects(pyo.Objective, active=True, descend_into=True))
    if len(objectives) != 1:
        raise ValueError(f"{label}: expected exactly one active Objective, found {len(objectives)}")
    obj = objectives[0]
    if obj.sense != pyo.minimize:
        raise ValueError(
            f"{label}: objective {obj.name!r} is a maximization; write it as minimize cost = -profit "
            "(the EVPI/VSS sign conventions here are for minimization)"
        )
    return obj


def first_stage_vardata(model: pyo.ConcreteModel, first_stage: FirstStage | None = None, label: str = "model") -> dict:
    """``{model-relative name: VarData}`` of the first-stage variables of ``model``, in order.

    From ``first_stage(model)`` when given (Var components are expanded to their VarData),
    else from mpi-sppy's ``model._mpisppy_node_list[0].nonant_vardata_list``.
    """
    if first_stage is not None:
        items = list(first_stage(model))
    else:
        nodes = getattr(model, "_mpisppy_node_list", None)
        if not nodes:
            raise ValueError(
                f"{label}: no first-stage variables: pass first_stage=callable(model) or attach an "
                "mpi-sppy root node (sputils.attach_root_node)"
            )
        items = list(nodes[0].nonant_vardata_list)
    out: dict[str, Any] = {}
    for item in items:
        if getattr(item, "ctype", None) is not pyo.Var:
            raise TypeError(f"{label}: first-stage item {item!r} is not a Pyomo Var or VarData")
        datas = item.values() if item.is_indexed() else [item]
        for vd in datas:
            name = vd.getname(fully_qualified=True, relative_to=model)
            if name in out and out[name] is not vd:
                raise ValueError(f"{label}: two first-stage variables share the name {name!r}")
            out[name] = vd
    if not out:
        raise ValueError(f"{label}: the first-stage variable list is empty")
    return out


def _probabilities(models: Mapping[str, pyo.ConcreteModel], atol: float = PROBABILITY_ATOL) -> dict[str, float]:
    """Scenario probabilities from ``_mpisppy_probability``; equal weights if any is missing
    (or mpi-sppy's "uniform"); ValueError if they do not sum to 1 within ``atol``. They are
    used as given (not renormalised; mpi-sppy's ``create_EF`` divides by their sum instead, which
    differs by at most ``atol`` relative)."""
    raw = {name: getattr(m, "_mpisppy_probability", None) for name, m in models.items()}
    if any(p is None or (isinstance(p, str) and p == "uniform") for p in raw.values()):
        return {name: 1.0 / len(models) for name in models}
    probs = {name: float(p) for name, p in raw.items()}
    bad = {name: p for name, p in probs.items() if not (math.isfinite(p) and p >= 0)}
    if bad:
        raise ValueError(f"scenario probabilities must be finite and >= 0, got {bad}")
    total = math.fsum(probs.values())
    if not abs(total - 1.0) <= atol:
        raise ValueError(
            f"scenario probabilities (_mpisppy_probability) sum to {total!r}, not 1 (tolerance "
            f"{atol:g}); pass all scenarios or renormalise their probabilities"
        )
    return probs


@dataclass(frozen=True)
class _Outcome:
    """How one solve ended: ``optimal`` (the solution is loaded), ``infeasible`` (proven),
    and the words for a message."""

    optimal: bool
    infeasible: bool
    words: str


def _solve(model: pyo.ConcreteModel, solver: str, label: str) -> _Outcome:
    """Solve ``model``; load the solution if optimal.

    ``solver="highs"`` (the default) is optplan's own HiGHS engine
    (``optplan.solvers.highs.solve_pyomo_model``: the same hand-off and the same status
    (``SolverStatus``) as every plan); any other name goes through ``pyo.SolverFactory`` and
    Pyomo's own termination conditions."""
    if solver == "highs":
        status = solve_pyomo_model(model)
        return _Outcome(status.optimal, status.termination in (TC.provenInfeasible, TC.infeasibleOrUnbounded),
                        status.describe())
    opt = pyo.SolverFactory(solver)
    if not opt.available(exception_flag=False):
        raise RuntimeError(f"solver {solver!r} is not available (needed for {label})")
    results = opt.solve(model, load_solutions=False)
    term = results.solver.termination_condition
    if term == TerminationCondition.optimal:
        model.solutions.load_from(results)
    return _Outcome(term == TerminationCondition.optimal, term in _INFEASIBLE, f"termination: {term}")


def _solve_optimal(model: pyo.ConcreteModel, solver: str, label: str) -> float:
    """Solve and return the objective value; RuntimeError naming ``label`` unless optimal."""
    obj = _objective(model, label)
    outcome = _solve(model, solver, label)
    if not outcome.optimal:
        raise RuntimeError(f"{label}: solver {solver!r} did not prove optimality ({outcome.words})")
    return float(pyo.value(obj))


def _create(scenario_creator: Callable, name: str, creator_kwargs: Mapping | None) -> pyo.ConcreteModel:
    model = scenario_creator(name, **dict(creator_kwargs or {}))
    if not isinstance(model, pyo.Block):
        raise TypeError(f"scenario_creator({name!r}) returned {type(model).__name__}, not a Pyomo model")
    return model


# --------------------------------------------------------------------------- extensive form


def build_extensive_form(
    names: Sequence[str],
    scenario_creator: Callable[..., pyo.ConcreteModel],
    creator_kwargs: Mapping[str, Any] | None = None,
    first_stage: FirstStage | None = None,
    *,
    probability_atol: float = PROBABILITY_ATOL,
) -> pyo.ConcreteModel:
    """The extensive form (RP):  min sum_s p_s f_s(x_s, y_s)  s.t.  x_s = x  for every s.

    One sub-block per scenario (named after the scenario, holding the model returned by
    ``scenario_creator(name, **creator_kwargs)``, its objective deactivated); a master copy
    ``first_stage_master[name]`` of each first-stage VarData (indexed by the variable's
    model-relative name, set ``FIRST_STAGE``); equality rows
    ``nonanticipativity[scenario, name]:  x_s[name] - x[name] = 0``; and the objective
    ``expected_cost = sum_s p_s * objective_s`` (minimize). ``p_s`` is ``_mpisppy_probability``
    (equal weights if any scenario lacks it; ValueError if they do not sum to 1 within
    ``probability_atol``, default ``PROBABILITY_ATOL`` = 1e-9; used as given, not renormalised).
    First-stage variables come from ``first_stage(model)`` or, if it is None, from mpi-sppy's
    root node ``_mpisppy_node_list[0].nonant_vardata_list``.

    The returned model also carries plain attributes ``_sp_scenarios`` (list of names),
    ``_sp_probability`` (dict name -> p) and ``_sp_first_stage`` (dict scenario -> {name: VarData}).
    """
    names = list(names)
    if not names:
        raise ValueError("build_extensive_form needs at least one scenario name")
    if len(set(names)) != len(names):
        raise ValueError(f"scenario names are not unique: {names}")
    models = {name: _create(scenario_creator, name, creator_kwargs) for name in names}
    probability = _probabilities(models, probability_atol)
    objectives = {name: _objective(m, f"scenario {name!r}") for name, m in models.items()}
    first = {name: first_stage_vardata(m, first_stage, f"scenario {name!r}") for name, m in models.items()}
    reference = list(first[names[0]])
    for name in names[1:]:
        if set(first[name]) != set(reference):
            diff = sorted(set(first[name]) ^ set(reference))[:5]
            raise ValueError(
                f"scenario {name!r} and scenario {names[0]!r} have different first-stage variables (e.g. {diff})"
            )

    ef = pyo.ConcreteModel(name="extensive_form")
    reserved = {"FIRST_STAGE", "first_stage_master", "NONANT_INDEX", "nonanticipativity", "expected_cost"}
    for name, model in models.items():
        if name in reserved or hasattr(ef, name):
            raise ValueError(f"scenario name {name!r} clashes with an attribute of the extensive-form model")
        ef.add_component(name, model)
        objectives[name].deactivate()
    ef.FIRST_STAGE = pyo.Set(initialize=reference, ordered=True)
    ef.first_stage_master = pyo.Var(ef.FIRST_STAGE, domain=pyo.Reals)
    ef.NONANT_INDEX = pyo.Set(dimen=2, ordered=True, initialize=[(s, v) for s in names for v in reference])
    ef.nonanticipativity = pyo.Constraint(
        ef.NONANT_INDEX, rule=lambda _ef, s, v: first[s][v] - ef.first_stage_master[v] == 0
    )
    ef.expected_cost = pyo.Objective(
        expr=sum(probability[s] * objectives[s].expr for s in names), sense=pyo.minimize
    )
    ef._sp_scenarios = names
    ef._sp_probability = probability
    ef._sp_first_stage = first
    return ef


# --------------------------------------------------------------------------- the values


def value_of_stochastic_solution(
    names: Sequence[str],
    scenario_creator: Callable[..., pyo.ConcreteModel],
    mean_scenario_creator: Callable[[], pyo.ConcreteModel],
    creator_kwargs: Mapping[str, Any] | None = None,
    first_stage: FirstStage | None = None,
    solver: str = "highs",
    *,
    probability_atol: float = PROBABILITY_ATOL,
) -> StochasticValues:
    """RP, EV, EEV, WS, EVPI = RP - WS and VSS = EEV - RP of a two-stage minimization.

    names, scenario_creator, creator_kwargs, first_stage: as in ``build_extensive_form``.
    mean_scenario_creator: no-argument callable returning the expected-value ("mean")
        scenario model in the same protocol (generic code cannot average arbitrary data).
    solver: "highs" (optplan's HiGHS engine) or a ``pyo.SolverFactory`` name.
    probability_atol: tolerance on the sum of the probabilities (see ``build_extensive_form``).

    RP   = optimum of ``build_extensive_form``.
    EV   = optimum of the mean-scenario model; x_EV its first-stage values.
    EEV  = sum_s p_s * optimum of scenario s with its first-stage variables fixed at x_EV
           (matched by model-relative name).
    WS   = sum_s p_s * optimum of scenario s alone.
    For minimization WS <= RP <= EEV, so EVPI >= 0 and VSS >= 0 (up to solver tolerance);
    a profit maximization must be posed as minimize -profit (then EVPI, VSS are the same
    non-negative amounts of profit).

    Raises RuntimeError naming the problem (extensive form, mean scenario, or scenario X)
    when a solve does not end optimal, and ValueError when x_EV is infeasible in some
    scenario (EEV is then +infinity in the usual convention and VSS is undefined here).
    """
    names = list(names)
    ef = build_extensive_form(names, scenario_creator, creator_kwargs, first_stage, probability_atol=probability_atol)
    probability = ef._sp_probability
    rp = _solve_optimal(ef, solver, "extensive form (RP)")
    rp_first = {v: float(ef.first_stage_master[v].value) for v in ef.FIRST_STAGE}

    mean = mean_scenario_creator()
    ev = _solve_optimal(mean, solver, "mean scenario (EV problem)")
    mean_first = first_stage_vardata(mean, first_stage, "mean scenario")
    missing = [v for v in rp_first if v not in mean_first]
    if missing:
        raise ValueError(f"the mean-scenario model lacks first-stage variables of the scenarios, e.g. {missing[:5]}")
    ev_first = {v: float(mean_first[v].value) for v in rp_first}

    ws_by: dict[str, float] = {}
    eev_by: dict[str, float] = {}
    for name in names:
        model = _create(scenario_creator, name, creator_kwargs)
        ws_by[name] = _solve_optimal(model, solver, f"scenario {name!r} (wait-and-see)")

        model = _create(scenario_creator, name, creator_kwargs)
        obj = _objective(model, f"scenario {name!r}")
        for v, vd in first_stage_vardata(model, first_stage, f"scenario {name!r}").items():
            vd.fix(ev_first[v])
        outcome = _solve(model, solver, f"scenario {name!r} (EEV)")
        if outcome.infeasible:
            raise ValueError(
                f"the EV first stage is infeasible in scenario {name!r} ({outcome.words}): "
                "EEV is +infinity there and VSS is undefined"
            )
        if not outcome.optimal:
            raise RuntimeError(
                f"scenario {name!r} (EEV, first stage fixed at the EV solution): solver {solver!r} "
                f"did not prove optimality ({outcome.words})"
            )
        eev_by[name] = float(pyo.value(obj))

    ws = math.fsum(probability[s] * ws_by[s] for s in names)
    eev = math.fsum(probability[s] * eev_by[s] for s in names)
    return StochasticValues(
        rp=rp, ev=ev, eev=eev, ws=ws, evpi=rp - ws, vss=eev - rp,
        rp_first_stage=rp_first, ev_first_stage=ev_first,
        ws_by_scenario=ws_by, eev_by_scenario=eev_by, probability=dict(probability),
    )


def optplan_values(data: ModelData, solver: str = "highs", route: str = "engines", options=None, backend=None,
                   rp=None) -> StochasticValues:
    """RP, EV, EEV, WS, EVPI, VSS of this repo's recruiting model (``formulations.two_stage``).

    ``route="engines"`` (default; scales to national instances): RP is optplan's solve of
    the instance (aggregated recourse), EV the solve of its mean-demand instance (one
    scenario: the probability-weighted mean demand, weight 1), EEV the evaluator's expected
    cost of the EV plan's decisions (the recourse in closed form is the second-stage
    optimum, so this is EEV exactly), WS the probability-weighted optima of each scenario
    alone. ``options`` (SolveOptions) go to every solve; the EV and WS solves are tasks on
    ``backend`` (optplan.solvers.backends; default: this process); ``rp``, a SolveResult of
    ``data`` already at hand (e.g. the report's plan), saves solving RP again.

    ``route="scenario_models"``: the generic machinery above on mpi-sppy-protocol models
    (``two_stage.scenario_creator`` with ``{"data": data}``; first stage
    ``two_stage.first_stage_variables``, all fixed for EEV, which is consistent since the
    derived ones are defined by equalities of the decisions): the extensive form in Pyomo,
    for cross-checks on small instances. Both routes give the same values (a test checks it).

    Probabilities are used as stored in ``data`` (not renormalised) and, on the scenario
    route, checked with the instance tolerance ``optplan.io.instance.PROBABILITY_SUM_ATOL``
    (1e-6) rather than 1e-9: a valid instance may sum to 1 +- 1e-6, and using the same
    weights as ``build_model`` keeps RP equal to ``optplan.solve``'s objective.
    """
    if route == "engines":
        return _values_by_engines(data, options, backend, rp)
    if route != "scenario_models" or data.has_week_profile:
        raise OptionError("route", "engines or scenario_models" + (" (engines for long-lead weekly demand: its "
                          "per-scenario models are extensive forms, which cannot settle periods week by week)"
                          if data.has_week_profile else ""), route)
    mean_data = data.with_mean_demand()

    def mean_scenario_creator() -> pyo.ConcreteModel:
        m = two_stage.build_model(mean_data, weights=[1.0])
        m._mpisppy_probability = 1.0
        return m

    return value_of_stochastic_solution(
        list(data.scenarios),
        two_stage.scenario_creator,
        mean_scenario_creator,
        creator_kwargs={"data": data},
        first_stage=two_stage.first_stage_variables,
        solver=solver,
        probability_atol=PROBABILITY_SUM_ATOL,
    )


def _solve_task(args):
    """(objective, decisions) of one instance's HiGHS solve (a backend task)."""

    data, options = args
    result = solve_data(data, options, "highs")
    return float(result.status.objective), result.decisions


def _values_by_engines(data: ModelData, options=None, backend=None, rp=None) -> StochasticValues:
    options = options or SolveOptions()
    backend = backend or SerialBackend()
    mean_data = data.with_mean_demand()
    rp = rp or solve_data(data, options, "highs")
    alone = [data.with_scenarios([i], probability=[1.0]) for i in range(len(data.scenarios))]
    solved = backend.map(_solve_task, [(mean_data, options)] + [(a, options) for a in alone])
    ev_objective, ev_decisions = solved[0]
    eev_by, ws_by = {}, {}
    for i, name in enumerate(data.scenarios):
        ws_by[name] = solved[1 + i][0]
        eev_by[name] = evaluate_decisions(alone[i], ev_decisions).expected_cost
    probability = {name: float(p) for name, p in zip(data.scenarios, data.probability, strict=True)}
    ws = math.fsum(probability[s] * ws_by[s] for s in data.scenarios)
    eev = math.fsum(probability[s] * eev_by[s] for s in data.scenarios)

    def named(decisions) -> dict[str, float]:
        layout = Layout(data)
        x, z = layout.columns(decisions)
        out = {f"applicants[{d},{c},{t}]": float(v) for (d, c, t), v in zip(layout.recruit_labels(), x, strict=True)}
        out.update({f"incentive_spend[{d},{t},{g}]": float(v)
                    for (d, t, g), v in zip(layout.segment_labels(), z, strict=True)})
        return out

    rp_value = float(rp.status.objective)
    return StochasticValues(
        rp=rp_value, ev=ev_objective, eev=eev, ws=ws, evpi=rp_value - ws, vss=eev - rp_value,
        rp_first_stage=named(rp.decisions), ev_first_stage=named(ev_decisions),
        ws_by_scenario=ws_by, eev_by_scenario=eev_by, probability=probability,
    )
