"""The engine contract: options, one time budget, a typed result, a registry.

Every engine (HiGHS, GLOP, the DP, ``auto``'s chain of them) takes the same ``ModelData``,
``SolveOptions`` and ``Deadline`` and returns a ``SolveResult`` or raises one of
``optplan.errors.SolveError``'s subclasses. Status has two axes after Pyomo's solver
interfaces (``pyomo.contrib.solver.common.results``): why the engine stopped
(``TerminationCondition``) and what solution exists (``SolutionStatus``), plus the engine's
own native status verbatim and a sentence in a planner's words (``SolverStatus.describe``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pyomo.common.dependencies as _pyomo_dependencies
from pyomo.contrib.solver.common.results import SolutionStatus, TerminationCondition

from formulations.data import Decisions, ModelData
from optplan.errors import NoSolutionError, OptionError

# Pyomo's dependency module imports scipy.stats, scipy.integrate and scipy.spatial as soon as
# scipy is imported after it (its callback for scipy; with scipy imported first it resolves at
# once): 0.6-0.7 s, a quarter of a 50 x 52 x 20 solve command, for modules optplan's solve path
# never uses. Dropping the callback keeps them lazy: Pyomo's own uses still import them
# (``pyomo.common.dependencies.scipy.stats`` is a deferred submodule). Checked by
# tests/cli/test_startup.py.
_scipy_flag = getattr(_pyomo_dependencies, "scipy_available", None)
if "scipy" not in sys.modules and isinstance(_scipy_flag, _pyomo_dependencies.DeferredImportIndicator):
    _scipy_flag._callback = None

METHODS = ("choose", "simplex", "ipm", "pdlp")
#: How an LP engine states the second stage: "extensive" (per scenario), "aggregated" (its
#: expectation per depot-week in segment form; the same optimum), "auto" (aggregated: it
#: applies whenever nothing couples scenarios, which is always the case today).
FORMULATIONS = ("auto", "extensive", "aggregated")
#: How LP engines build the model: "pyomo" (the Pyomo model, compiled to standard form),
#: "arrays" (the same LP straight from numpy; aggregated recourse only; tested equal to the
#: Pyomo model), "auto" (arrays for the aggregated recourse, else Pyomo).
BUILDS = ("auto", "pyomo", "arrays")


#: The relative gap at which a plan counts as converged: HiGHS's default mip_rel_gap, the
#: decomposition's stopping gap. A converged plan within it is complete; a wider gap (asked for,
#: e.g. --mip-gap 0.05) is a feasible plan, not complete.
GAP_TOLERANCE = 1e-4
#: The logger of the engines' progress lines ("building the model", "HiGHS stopped after ..."),
#: a child of "optplan": a caller that runs many small solves (the report's sweeps) quiets it
#: with ``quiet_engines()`` and keeps its own lines.
ENGINE_LOGGER = "optplan.engine"


@dataclass(frozen=True)
class SolveOptions:
    """Options of a solve, shared by every engine (each uses what applies to it).

    time_limit: seconds of wall clock for the whole solve, model building included, across
        every engine ``auto`` tries (None: no limit).
    mip_rel_gap: relative MIP gap at which a MIP engine stops (integer plans only).
    threads: solver threads (None: the engine's default).
    method: LP algorithm, one of choose | simplex | ipm | pdlp (HiGHS).
    presolve: run the solver's presolve.
    integer: applicants are whole numbers (a MIP).
    seed: random seed (results are deterministic for a given seed).
    log: show the solver's log.
    highs_options: any further HiGHS options by name, e.g. {"primal_feasibility_tolerance": 1e-8}.
    formulation: auto | extensive | aggregated (LP engines; see FORMULATIONS).
    build: auto | pyomo | arrays (LP engines; see BUILDS).
    cvar_weight: lambda in [0, 1]: minimise (1 - lambda) E[cost] + lambda CVaR_alpha[cost]
        (formulations/two_stage/risk.py); 0: expected cost. HiGHS states it on the aggregated
        recourse by risk-envelope cuts (auto; optplan/solvers/cvar_cuts.py) or by the
        extensive form (formulation="extensive"); GLOP by the extensive form.
    cvar_alpha: alpha in [0, 1): CVaR is the mean cost of the worst 1 - alpha of scenarios;
        also the level at which every plan's CVaR is reported.
    """

    time_limit: float | None = None
    mip_rel_gap: float | None = None
    threads: int | None = None
    method: str = "choose"
    presolve: bool = True
    integer: bool = False
    seed: int = 0
    log: bool = False
    highs_options: dict[str, Any] = field(default_factory=dict)
    formulation: str = "auto"
    build: str = "auto"
    cvar_weight: float = 0.0
    cvar_alpha: float = 0.9

    @property
    def recourse(self) -> str:
        """The recourse formulation to build: "extensive" or "aggregated" (auto: aggregated;
        with CVaR HiGHS adds risk-envelope cuts to it, GLOP builds the extensive form)."""
        if self.formulation == "auto":
            return "aggregated"
        return self.formulation

    @property
    def build_route(self) -> str:
        """How the LP is built: "arrays" (numpy, aggregated recourse only) or "pyomo"."""
        if self.build == "auto":
            return "arrays" if self.recourse == "aggregated" else "pyomo"
        return self.build

    def __post_init__(self):
        if self.formulation not in FORMULATIONS:
            raise OptionError("formulation", f"one of {', '.join(FORMULATIONS)}", self.formulation)
        if self.build not in BUILDS:
            raise OptionError("build", f"one of {', '.join(BUILDS)}", self.build)
        if self.build == "arrays" and self.recourse != "aggregated":
            raise OptionError("build", "pyomo or auto with the extensive formulation (the array build is aggregated)",
                              self.build)
        if not (isinstance(self.cvar_weight, int | float) and 0.0 <= self.cvar_weight <= 1.0):
            raise OptionError("cvar_weight", "a weight between 0 and 1", self.cvar_weight)
        if not (isinstance(self.cvar_alpha, int | float) and 0.0 <= self.cvar_alpha < 1.0):
            raise OptionError("cvar_alpha", "a confidence level in [0, 1), e.g. 0.9", self.cvar_alpha)
        if self.method not in METHODS:
            raise OptionError("method", f"one of {', '.join(METHODS)}", self.method)
        if self.time_limit is not None and not (isinstance(self.time_limit, int | float) and self.time_limit > 0):
            raise OptionError("time_limit", "a number of seconds > 0", self.time_limit)
        if self.mip_rel_gap is not None and not self.mip_rel_gap >= 0:
            raise OptionError("mip_rel_gap", "a relative gap >= 0", self.mip_rel_gap)
        if self.threads is not None and not self.threads >= 1:
            raise OptionError("threads", "a number of threads >= 1", self.threads)


class DeadlinePassed(Exception):
    """Raised by ``Deadline.check`` inside an engine's loops; the engine catches it and
    returns its best plan so far (or raises NoSolutionError if it has none)."""


class Deadline:
    """One wall-clock budget shared by everything a solve runs (seconds; None: no limit).

    ``clock`` is injectable so that tests can run an engine against a deterministic clock."""

    def __init__(self, seconds: float | None, clock: Callable[[], float] = time.monotonic):
        self.seconds = seconds
        self.clock = clock
        self.start = clock()

    def elapsed(self) -> float:
        return self.clock() - self.start

    def remaining(self) -> float:
        """Seconds left (inf without a limit; never negative)."""
        if self.seconds is None:
            return math.inf
        return max(0.0, self.seconds - self.elapsed())

    def expired(self) -> bool:
        return self.seconds is not None and self.remaining() <= 0.0

    def shortened(self, by: float) -> Deadline:
        """The same budget ending ``by`` seconds earlier (same start, same clock); no limit stays no limit."""
        out = Deadline(None if self.seconds is None else max(self.seconds - by, 0.0), self.clock)
        out.start = self.start
        return out

    def check(self) -> None:
        """Raise DeadlinePassed once the budget is spent (call it between units of work)."""
        if self.expired():
            raise DeadlinePassed


@dataclass(frozen=True)
class Capabilities:
    """What an engine can do."""

    lp: bool  # solves the continuous program to proven optimality
    mip: bool  # honours integer applicants
    duals: bool  # returns row duals (budget shadow prices)
    time_limit: bool  # stops by the deadline with its best plan so far
    exact: bool  # its optimum is the program's optimum (False: a heuristic)
    risk: bool = False  # states CVaR in its objective (options.cvar_weight > 0)
    targets: bool = False  # states service and utilisation targets (data.has_targets)
    terminal: bool = False  # credits the drivers left at the end (data.has_terminal_value)
    weekly_supply: bool = False  # driver supply b[d,t] that varies by week (data.has_weekly_supply)
    country_budgets: bool = True  # caps on a country's spend besides its regions' (data.has_country_budgets)
    periods: bool = False  # long-lead periods longer than a week (data.has_periods)
    decisions: bool = False  # the planner's committed decisions as bounds (data.has_decisions)
    applicant_pools: bool = False  # channels sharing an applicant cap: sign-on bonus variants (data.has_applicant_pools)


@dataclass(frozen=True)
class SolverStatus:
    """Why the engine stopped, and what solution exists (two separate axes)."""

    termination: TerminationCondition
    solution: SolutionStatus
    engine: str  # what produced the plan, e.g. "highs 1.16.0 (simplex)"
    native_status: str  # the engine's own status, verbatim
    objective: float | None  # expected cost of the solution returned (currency)
    bound: float | None  # best proven lower bound on the optimum (currency)
    message: str = ""  # engine details (DP estimate, grid) in plain words
    fallback: str | None = None  # why the requested engine did not make the plan (auto)
    requested_gap: float | None = None  # the relative gap the caller allowed (--mip-gap), if any

    @property
    def optimal(self) -> bool:
        return self.solution == SolutionStatus.optimal

    @property
    def has_solution(self) -> bool:
        return self.solution in (SolutionStatus.optimal, SolutionStatus.feasible)

    @property
    def complete(self) -> bool:
        """The engine that was asked for ran its algorithm to the end, as asked: a proven
        optimum; a plan within the engine's stopping tolerance (GAP_TOLERANCE); a MIP stopped
        at the gap the caller asked for (``requested_gap``, --mip-gap 0.05); a DP plan asked
        for with engine="dp"; an optimum proven by an engine auto fell back to. Not: a plan
        stopped by a time or iteration limit, a stalled cut loop, or a heuristic's plan made
        after a fallback."""
        gap = self.gap
        allowed = max(GAP_TOLERANCE, self.requested_gap or 0.0) * (1 + 1e-6)
        return self.optimal or (
            self.termination == TerminationCondition.convergenceCriteriaSatisfied and self.fallback is None
            and (gap is None or gap <= allowed)
        )

    @property
    def above_bound(self) -> float | None:
        """How far the objective may at most lie above the optimum, as a share of the bound:
        (objective - bound) / |bound| (the gap is relative to the objective, which understates
        it: objective 200 and bound 100 are a gap of 50 % but up to 100 % above the optimum)."""
        if self.objective is None or self.bound is None:
            return None
        return max(self.objective - self.bound, 0.0) / max(abs(self.bound), 1e-12)

    @property
    def gap(self) -> float | None:
        """Relative gap between objective and bound (0 for a proven optimum)."""
        if self.objective is None or self.bound is None:
            return None
        return abs(self.objective - self.bound) / max(1.0, abs(self.objective))

    def describe(self) -> str:
        """The status in a planner's words, one phrase that never contradicts itself: "optimal",
        "optimal within the requested gap: at most 0.37 % above the best possible cost",
        "NOT PROVEN OPTIMAL: stopped at the time limit with a feasible plan, gap 1.2 %" (the
        engine and its own status are beside it in ``to_dict``)."""
        TC = TerminationCondition
        gap = self.gap
        gap_words = f"gap {_percent(gap)}" if gap is not None else "gap to the optimum unknown"
        why = {
            TC.maxTimeLimit: "stopped at the time limit",
            TC.iterationLimit: "stopped at an iteration or solution limit",
            TC.objectiveLimit: "stopped at an objective limit",
            TC.interrupted: "interrupted",
            TC.convergenceCriteriaSatisfied: "finished",
            TC.error: "stopped by an error",
        }.get(self.termination, f"stopped ({self.termination.name})")
        if self.optimal:
            text = "optimal"
        elif self.has_solution and self.termination == TC.convergenceCriteriaSatisfied and self.bound is None:
            text = "feasible plan from a heuristic (no bound, so not proven optimal)"
        elif self.has_solution and self.complete:
            if gap > GAP_TOLERANCE and self.requested_gap is not None:
                text = (f"optimal within the requested gap: at most {_percent(self.above_bound)} above the best "
                        f"possible cost (allowed gap {_percent(self.requested_gap)})")
            else:
                text = f"optimal within the engine's tolerance of {_percent(GAP_TOLERANCE)} (gap {_percent(gap)})"
        elif self.has_solution:
            text = f"NOT PROVEN OPTIMAL: {why} with a feasible plan, {gap_words}"
        else:
            text = f"no plan: {why} before any feasible plan was found"
        if self.fallback:
            text += f"; made by the fallback engine because {self.fallback}"
        return text

    def to_dict(self) -> dict:
        return {
            "summary": self.describe(),
            "termination": self.termination.name,
            "solution": self.solution.name,
            "engine": self.engine,
            "native_status": self.native_status,
            "objective": self.objective,
            "bound": self.bound,
            "gap": self.gap,
            "fallback": self.fallback,
            "requested_gap": self.requested_gap,
            "message": self.message,
        }


def _percent(share: float) -> str:
    """A relative gap as a percentage with two significant digits, never e-notation."""
    pct = 100.0 * share
    return f"{pct:.2g} %" if 1e-3 <= pct < 1e4 else ("0 %" if pct < 1e-3 else f"{pct:,.0f} %")


@dataclass(frozen=True)
class Timings:
    """Wall-clock seconds of each step (not written to output files: they vary by run)."""

    build_s: float = 0.0  # model construction
    handoff_s: float = 0.0  # standard-form compile + hand-off to the solver
    solve_s: float = 0.0  # the engine's run
    extract_s: float = 0.0  # solution -> arrays

    def to_dict(self) -> dict:
        return {k: round(v, 4) for k, v in self.__dict__.items()}


@dataclass
class SolveResult:
    """What an engine returns: the decisions, the status, and what else it knows.

    ``values`` (variable component -> values in ``Layout`` order) and ``duals`` (constraint
    family -> row duals in ``Layout`` order) are empty for engines without them (the DP);
    ``reduced_costs`` likewise. Money is in ``data.currency``."""

    data: ModelData
    status: SolverStatus
    decisions: Decisions
    timings: Timings
    size: dict[str, int]
    values: dict[str, np.ndarray] = field(default_factory=dict)
    duals: dict[str, np.ndarray] = field(default_factory=dict)
    reduced_costs: dict[str, np.ndarray] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # engine-specific results (e.g. the DP's prices)

    @property
    def engine(self) -> str:
        return self.status.engine


#: Decision values below this (applicants, money) are solver noise, written as 0.
CLEAN_ATOL = 1e-9
#: A MIP's applicants within this of whole numbers are the whole numbers (HiGHS's integrality
#: tolerance is 1e-6).
INTEGRALITY_ATOL = 1e-6


def clean_array(a: np.ndarray) -> np.ndarray:
    """``a`` with solver noise (|x| < CLEAN_ATOL) set to 0 and -0.0 turned into 0.0 (files do
    not depend on the sign of zero)."""
    a = np.where(np.abs(a) < CLEAN_ATOL, 0.0, a)
    return a + 0.0


def clean_decisions(data: ModelData, decisions: Decisions) -> Decisions:
    """An engine's decisions as a plan states them: whole applicants where the instance asks
    for them and the engine's values are whole within INTEGRALITY_ATOL, noise set to 0."""
    applicants = decisions.applicants
    whole = np.round(applicants)
    if data.integer_applicants and np.allclose(applicants, whole, rtol=0.0, atol=INTEGRALITY_ATOL):
        applicants = whole  # a MIP's whole applicants, without its integrality tolerance (~1e-9)
    return Decisions(clean_array(applicants), clean_array(decisions.incentive_spend))


class Engine(Protocol):
    """An engine: a name, what it can do, whether it can run here, and a solve under a deadline."""

    name: str
    capabilities: Capabilities

    def available(self) -> str | None:
        """None if the engine can run on this machine, else why not (one line)."""

    def solve(self, data: ModelData, options: SolveOptions, deadline: Deadline) -> SolveResult:
        """Solve within ``deadline``; raise InfeasibleError, NoSolutionError or SolverError
        when there is no plan to return."""


def out_of_time(engine: str, why: str, native: str):
    """The NoSolutionError of an engine that the time limit stopped before any plan:
    "no plan: <why>", with a status that says so (termination maxTimeLimit, no solution)."""

    status = SolverStatus(TerminationCondition.maxTimeLimit, SolutionStatus.noSolution, engine, native, None, None)
    return NoSolutionError(f"no plan: {why}", status)


_REGISTRY: dict[str, Callable[[], Engine]] = {}
_CAPABILITIES: dict[str, Capabilities] = {}


def register_engine(name: str, factory: Callable[[], Engine], capabilities: Capabilities | None = None) -> None:
    """Make ``factory()`` available as engine ``name`` (e.g. a test stub, or a new backend).
    ``capabilities``, when given, lets ``auto`` plan its chain without importing the engine."""
    _REGISTRY[name] = factory
    if capabilities is not None:
        _CAPABILITIES[name] = capabilities
    else:
        _CAPABILITIES.pop(name, None)


def unregister_engine(name: str) -> None:
    """Remove engine ``name`` from the registry (a plug-in unloading, a test cleaning up)."""
    _REGISTRY.pop(name, None)
    _CAPABILITIES.pop(name, None)


def engine_capabilities(name: str) -> Capabilities:
    """What engine ``name`` can do (from the registry, or by constructing it)."""
    if name in _CAPABILITIES:
        return _CAPABILITIES[name]
    return get_engine(name).capabilities


def engine_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def get_engine(name: str) -> Engine:
    if name not in _REGISTRY:
        raise OptionError("engine", f"one of {', '.join(_REGISTRY)}", name)
    return _REGISTRY[name]()


#: What an instance or its options ask of an engine: (asked?, the Capabilities field that can
#: state it, the feature in words). The one table behind every engine refusal; auto skips an
#: engine whose capabilities lack a feature that is asked.
FEATURES = (
    (lambda data, options: options.cvar_weight > 0, "risk", "CVaR in the objective (--cvar-weight)"),
    (lambda data, options: data.has_country_budgets, "country_budgets", "country budgets (budgets.countries)"),
    (lambda data, options: data.has_weekly_supply, "weekly_supply", "driver supply that varies by week (supply.csv)"),
    (lambda data, options: data.has_periods, "periods", "long-lead periods (horizon.periods)"),
    (lambda data, options: data.has_terminal_value, "terminal", "a terminal value (terminal.value_per_driver)"),
    (lambda data, options: data.has_decisions, "decisions", "committed decisions (decisions.csv)"),
    (lambda data, options: data.has_applicant_pools, "applicant_pools",
     "sign-on bonuses on a channel with an applicant cap (bonuses.csv)"),
    (lambda data, options: data.whole_weeks > 0, "mip", "whole orders (a MIP on the first weeks)"),
    (lambda data, options: data.has_chance_targets, "mip",
     "the bad-week chance form (a MIP; or targets.scenario_service_form: cvar, an LP)"),
    (lambda data, options: data.has_targets or data.has_scenario_targets, "targets",
     "service or utilisation targets"),
)


def engines_that(capability: str) -> str:
    """The registered engines whose Capabilities have ``capability``, in words: "highs, glop,
    decompose or auto" (auto picks among them)."""
    names = [n for n in engine_names() if n != "auto" and getattr(engine_capabilities(n), capability)]
    return ", ".join(names) + (" or auto" if "auto" in engine_names() else "")


def refusal(data: ModelData, options: SolveOptions, capabilities: Capabilities) -> tuple[str, str] | None:
    """The first feature the instance or options ask for that ``capabilities`` cannot state,
    as (its Capabilities field, the feature in words); None when the engine can state
    everything asked (what auto asks before trying an engine)."""
    for asked, capability, words in FEATURES:
        if asked(data, options) and not getattr(capabilities, capability):
            return capability, words
    return None


def refuse(data: ModelData, options: SolveOptions, capabilities: Capabilities, name: str) -> None:
    """Raise the OptionError of engine ``name`` for the first feature it cannot state, naming
    the engines that can ("highs, glop, decompose or auto for country budgets ...")."""
    missing = refusal(data, options, capabilities)
    if missing is not None:
        capability, words = missing
        raise OptionError("engine", f"{engines_that(capability)} for {words}", name)


@contextlib.contextmanager
def quiet_engines():
    """Within the block, the engines' per-solve progress lines are not shown (warnings are)."""
    logger = logging.getLogger(ENGINE_LOGGER)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)
