"""optplan: plan driver recruiting and incentives for gig-delivery depots under uncertain demand.

    import optplan
    instance = optplan.load_instance("instances/demo")
    plan = optplan.solve(instance, time_limit=60)
    print(plan.text_summary()); plan.applicants.head()
    optplan.evaluate(plan, instance).expected_cost
"""

from optplan.api import evaluate, solve
from optplan.errors import (
    InfeasibleError,
    InstanceError,
    NoSolutionError,
    OptplanError,
    Problem,
    SolverError,
)
from optplan.evaluate import Decisions, Evaluation
from optplan.generate import generate_instance
from optplan.instance import Instance, from_tables, load_instance
from optplan.plan import Plan
from optplan.solve import SolveOptions, SolverStatus

__version__ = "0.1.0"

__all__ = [
    "Decisions", "Evaluation", "InfeasibleError", "Instance", "InstanceError", "NoSolutionError",
    "OptplanError", "Plan", "Problem", "SolveOptions", "SolverError", "SolverStatus",
    "evaluate", "from_tables", "generate_instance", "load_instance", "solve",
]
