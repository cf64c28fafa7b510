"""The one list of constraint families (issue #26): the Pyomo build states them in this order
(``build_model``, tested), the array build (``matrix.aggregated_standard_form``) orders its
row blocks by it and refuses a block not in it, and the infeasibility diagnosis
(``optplan.solvers.highs.diagnose_infeasibility``) tries every family of it."""

from __future__ import annotations

#: Constraint families in build order; the names are the Pyomo component names.
CONSTRAINT_FAMILIES = (
    "arrivals_definition",
    "driver_stock",
    "onboarding_cap",
    "applicant_pool",
    "capacity_definition",
    "demand_balance",
    "surge_cap",
    "recourse_link",
    "budget_total",
    "budget_week",
    "budget_region",
    "budget_country",
    "service_target",
    "network_service_target",
    "region_service_target",
    "utilisation_floor",
    "earnings_floor",
    "service_cvar_excess_definition",
    "service_cvar_bound",
    "service_chance",
    "service_chance_share",
    "cvar_cut_link",
    "cvar_cut",
    "cvar_excess_definition",
)
#: Families whose rows define quantities (drivers, capacity, recourse, risk terms) rather than
#: limit them: the infeasibility diagnosis tries them only when no target, budget or cap
#: explains an infeasible instance.
DEFINITIONAL_FAMILIES = frozenset({
    "arrivals_definition", "driver_stock", "capacity_definition", "demand_balance", "recourse_link",
    "cvar_excess_definition", "cvar_cut_link", "cvar_cut", "service_cvar_excess_definition", "service_chance",
})
