"""optplan: plan driver recruiting and incentives for gig-delivery depots under uncertain demand.

    import optplan
    instance = optplan.load_instance("instances/demo")
    plan = optplan.solve(instance, time_limit=60)
    print(plan.text_summary()); plan.applicants.head()
    optplan.evaluate(plan, instance).expected_cost

Names are imported lazily (PEP 562), so that ``optplan --version`` and ``--help`` start
without loading pandas, Pyomo or scikit-learn.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: public name -> module that defines it
_EXPORTS = {
    "evaluate": "optplan.api",
    "solve": "optplan.api",
    "WhatIf": "optplan.api",
    "InfeasibleError": "optplan.errors",
    "InputError": "optplan.errors",
    "InstanceError": "optplan.errors",
    "NoSolutionError": "optplan.errors",
    "OptionError": "optplan.errors",
    "OptplanError": "optplan.errors",
    "Problem": "optplan.errors",
    "SolveError": "optplan.errors",
    "SolverError": "optplan.errors",
    "Decisions": "formulations.data",
    "Evaluation": "optplan.evaluation.evaluator",
    "generate_instance": "optplan.io.generate",
    "Instance": "optplan.io.instance",
    "from_tables": "optplan.io.instance",
    "load_instance": "optplan.io.instance",
    "Plan": "optplan.planning.plan",
    "SolveOptions": "optplan.solvers.base",
    "SolverStatus": "optplan.solvers.base",
    "SolveResult": "optplan.solvers.base",
    "compare": "optplan.io.whatif",
    "Scale": "optplan.io.whatif",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'optplan' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
