"""Both customers' side of a plan: service to customers and work for drivers.

Per depot (and for the network, by summing first), in expectation over scenarios:

    service level      = 1 - E[unserved] / E[demand]                       share of demand served
    driver utilisation = 1 - E[idle] / planned capacity                     share of offered blocks that get work
    blocks per driver  = (planned capacity - E[idle]) / sum_t active_t      blocks worked per active driver-week

Planned capacity counts every block offered (drivers' blocks and blocks bought by planned
incentives: both are driver hours); idle blocks are offered and not worked. A depot with
no demand has service level 1; one with no capacity (or no drivers) has utilisation and
blocks per driver undefined (NaN, written as empty cells).

``service_kpis`` is the numpy kernel; the evaluator, the plan's per-depot table and the
report call it.

Targets (manifest ``targets``; ModelData service_target, network_service_target,
utilisation_floor) are rows of the aggregated program. On the recourse segments y_dtk
(aggregated.py) the expected unserved and idle blocks are linear, with the per-segment
slopes ``RecourseSegments.unserved_slope`` / ``idle_slope``:

    served_dt(q) = E[demand_dt] - E[unserved_dt](q) = sum_k sv_dtk y_dtk,   sv = -unserved_slope >= 0
    idle_dt(q)   = sum_k id_dtk y_dtk,                                                   id = idle_slope >= 0

    service_target[d]:        sum_tk sv_dtk y_dtk >= tau_d sum_t E[demand_dt]              blocks
    network_service_target:   sum_dtk sv_dtk y_dtk >= tau sum_dt E[demand_dt]              blocks
    region_service_target[r]: sum_{d in r} sum_tk sv_dtk y_dtk >= tau_r sum_{d in r} sum_t E[demand_dt]   blocks
    utilisation_floor[d]:     (1 - f_d) sum_t q_dt - sum_tk id_dtk y_dtk >= 0              blocks
                              (worked = offered - idle >= f_d x offered)
    earnings_floor[d]:        sum_t q_dt - sum_tk id_dtk y_dtk - e_d sum_t a_dt >= 0       blocks
                              (worked >= e_d blocks per active driver-week: drivers' earnings;
                              with long-lead periods a_dt is the period's driver-weeks
                              alpha_t a_dt + beta_t a_d,t-1, drivers.driver_weeks)

Bad weeks (``scenario_service_level`` y_d, ``scenario_service_share`` q; rows of the
extensive form, since they need every scenario's unserved blocks v_dts): a depot should
serve at least y_d of its demand over the horizon in a share q of the scenarios. Two forms
(``scenario_service_form``). "chance", the chance constraint itself, a MIP with a binary
b_ds per depot and scenario (b_ds = 1: scenario s must meet y_d at depot d):

    service_chance[d,s]:        sum_t v_dts + y_d D_ds b_ds <= D_ds              blocks
    service_chance_share[d]:    sum_s p_s b_ds >= q                               share

with D_ds = sum_t demand_dts; b_ds = 1 gives sum_t v_dts <= (1 - y_d) D_ds, b_ds = 0 the
bound v <= demand that holds anyway (big-M = y_d D_ds, the tightest valid one). "cvar"
(default), its CVaR approximation, an LP that implies it:

    shortfall_ds = sum_t v_dts - (1 - y_d) sum_t demand_dts                   blocks (<= 0: met)
    CVaR_q(shortfall_d) <= 0:
      service_cvar_excess_definition[d,s]:  xi_ds + eta_d - sum_t v_dts >= -(1 - y_d) sum_t demand_dts
      service_cvar_bound[d]:                eta_d + 1/(1 - q) sum_s p_s xi_ds <= 0

With eta_d free and xi_ds >= 0 (Rockafellar-Uryasev, as in risk.py). CVaR_q <= 0 makes the
mean of the worst 1 - q of shortfalls non-positive, so every scenario outside the worst
1 - q meets y_d and so does the q-quantile: P(shortfall <= 0) >= q (conservative: the
worst scenarios must meet it on average too). ``scenario_shortfall`` is the kernel.

Exact: E[unserved] and E[idle] are convex in q with slopes non-decreasing in k, so for a
given q the segment fill that serves most and idles least is the in-order fill, which is
also the cheapest (the cost slopes rise too); the LP gains nothing by filling out of order,
and a plan meets a target in the LP exactly when it meets it in the evaluator (tested).
Served counts surge blocks (bought after demand is known) as served, like the evaluator.
"""

from __future__ import annotations

import numpy as np

from formulations.data import ModelData
from formulations.two_stage._pyomo import pyo
from formulations.two_stage.drivers import period_factors

#: Target row families, in build order (Pyomo component names).
TARGET_FAMILIES = ("service_target", "network_service_target", "region_service_target", "utilisation_floor",
                   "earnings_floor", "service_cvar_bound")
#: The bad-week target's rows per form (target_rows names both "service_cvar_bound").
BAD_WEEK_ROWS = {"cvar": "service_cvar_bound", "chance": "service_chance_share"}
#: Variables of the bad-week rows (extensive form), in column order after the recourse.
SERVICE_RISK_VARS = ("service_cvar_threshold", "service_cvar_excess")
#: Variables of the chance form (binaries), in column order after the recourse.
SERVICE_CHANCE_VARS = ("service_met",)


def service_kpis(demand, unserved, idle, capacity, active, probability, by_depot: bool = True) -> dict[str, np.ndarray]:
    """Expected service and driver KPIs from demand, unserved and idle blocks (D, T, S),
    planned capacity (D, T) blocks/week and active drivers (D, T), scenario probabilities
    (S,). Per depot arrays (D,) with ``by_depot``, else network scalars (0-d arrays):
    demand_blocks, unserved_blocks, capacity_blocks, idle_blocks (blocks over the horizon),
    driver_weeks (active driver-weeks), service_level, driver_utilisation (shares) and
    blocks_per_driver_week (blocks per active driver per week)."""
    p = np.asarray(probability, float)
    axes = (1,) if by_depot else (0, 1)
    exp = lambda a: np.einsum("dts,s->dt", np.asarray(a, float), p).sum(axis=axes)  # noqa: E731 - blocks
    dem, uns, idl = exp(demand), exp(unserved), exp(idle)
    cap = np.asarray(capacity, float).sum(axis=axes)
    drivers = np.asarray(active, float).sum(axis=axes)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "demand_blocks": dem,
            "unserved_blocks": uns,
            "capacity_blocks": cap,
            "idle_blocks": idl,
            "driver_weeks": drivers,
            "service_level": np.where(dem > 0, 1.0 - uns / np.where(dem > 0, dem, 1.0), 1.0),
            "driver_utilisation": np.where(cap > 0, 1.0 - idl / np.where(cap > 0, cap, 1.0), np.nan),
            "blocks_per_driver_week": np.where(drivers > 0, (cap - idl) / np.where(drivers > 0, drivers, 1.0), np.nan),
        }


def scenario_service_level(demand, unserved) -> np.ndarray:
    """(S,) network service level of each scenario (share of its demand served, 1 without
    demand) from demand and unserved blocks (D, T, S)."""
    dem = np.asarray(demand, float).sum(axis=(0, 1))
    return 1.0 - np.asarray(unserved, float).sum(axis=(0, 1)) / np.maximum(dem, 1e-12)


def scenario_shortfall(data: ModelData, demand, unserved) -> np.ndarray:
    """(D, S) blocks each depot falls short of its bad-week service level y_d over the
    horizon in each scenario: sum_t v_dts - (1 - y_d) sum_t demand_dts (<= 0: met; NaN for
    depots without the target), from demand and unserved blocks (D, T, S)."""
    y = np.full(len(data.depots), np.nan) if data.scenario_service_level is None else \
        np.asarray(data.scenario_service_level, float)
    return np.asarray(unserved, float).sum(axis=1) - (1.0 - y)[:, None] * np.asarray(demand, float).sum(axis=1)


def region_targets(data: ModelData) -> tuple[list[str], np.ndarray, list[np.ndarray]]:
    """The regions with a service target, sorted by id: (ids, targets (n,) shares, each
    region's depot positions)."""
    targets = data.region_service_target or {}
    names = sorted(targets)
    regions = np.asarray(data.regions)
    return names, np.array([targets[r] for r in names], float), [np.flatnonzero(regions == r) for r in names]


def target_rows(data: ModelData) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Which rows each target family has and their constants: family -> (depot positions
    (n,), -1 for the network row, for region rows the region's position in
    ``region_targets``; constant (n,)): the blocks to serve (tau x expected demand over the
    horizon) for the service rows, 1 - f_d for the utilisation rows, e_d (blocks per active
    driver-week) for the earnings rows."""
    D = len(data.depots)
    demand = np.einsum("dts,s->d", data.demand, data.probability)  # (D,) expected blocks over the horizon
    out = {}
    tau = np.full(D, np.nan) if data.service_target is None else np.asarray(data.service_target, float)
    d = np.flatnonzero(np.isfinite(tau))
    out["service_target"] = (d, tau[d] * demand[d])
    net = float(data.network_service_target)
    has = bool(np.isfinite(net))
    out["network_service_target"] = (np.array([-1] if has else [], int), np.array([net * demand.sum()] if has else [], float))
    names, share, members = region_targets(data)
    out["region_service_target"] = (np.arange(len(names)), np.array([s * demand[m].sum() for s, m in zip(share, members,
                                                                                                      strict=True)]))
    f = np.full(D, np.nan) if data.utilisation_floor is None else np.asarray(data.utilisation_floor, float)
    d = np.flatnonzero(np.isfinite(f))
    out["utilisation_floor"] = (d, 1.0 - f[d])
    e = np.full(D, np.nan) if data.earnings_floor is None else np.asarray(data.earnings_floor, float)
    d = np.flatnonzero(np.isfinite(e))
    out["earnings_floor"] = (d, e[d])
    y = np.full(D, np.nan) if data.scenario_service_level is None else np.asarray(data.scenario_service_level, float)
    d = np.flatnonzero(np.isfinite(y))
    out["service_cvar_bound"] = (d, y[d])
    return out


def define_service_constraints(m: pyo.ConcreteModel, data: ModelData, seg) -> None:
    """The target rows of the module docstring on the aggregated recourse's segments
    (``seg``: its RecourseSegments; ``m.recourse_segment`` and ``m.capacity_blocks``)."""
    rows = target_rows(data)
    served_per_block = -seg.unserved_slope
    idle = seg.idle_slope
    by_depot: dict[str, list] = {dep: [] for dep in data.depots}
    for d, t, k in m.RECOURSE_SEGMENTS:
        by_depot[d].append((t, k))
    pos = {dep: i for i, dep in enumerate(data.depots)}

    def blocks(dep, per_segment):  # sum_tk coefficient y_dtk of depot dep (a linear expression, blocks)
        i = pos[dep]
        return sum(float(per_segment[i, t - 1, k - 1]) * m.recourse_segment[dep, t, k] for t, k in by_depot[dep]
                   if per_segment[i, t - 1, k - 1] != 0)

    d_idx, need = rows["service_target"]
    need_of = {data.depots[d]: float(v) for d, v in zip(d_idx, need, strict=True)}
    _, need_net = rows["network_service_target"]
    # each depot's served blocks, built once for its own row and the network row
    served = {dep: blocks(dep, served_per_block) for dep in data.depots} if need_of or len(need_net) else {}
    m.service_target = pyo.Constraint(pyo.Set(initialize=list(need_of), ordered=True),
                                      rule=lambda _m, dep: served[dep] >= need_of[dep])
    m.network_service_target = pyo.Constraint(
        pyo.Set(initialize=list(range(len(need_net))), ordered=True),
        rule=lambda _m, _i: sum(served.values()) >= float(need_net[0]))
    names, _, members = region_targets(data)
    _, need_region = rows["region_service_target"]
    region_served = {r: sum(blocks(data.depots[d], served_per_block) for d in mem) for r, mem in zip(names, members,
                                                                                                   strict=True)}
    need_of_region = dict(zip(names, need_region, strict=True))
    m.region_service_target = pyo.Constraint(pyo.Set(initialize=names, ordered=True),
                                             rule=lambda _m, r: region_served[r] >= float(need_of_region[r]))
    d_idx, share = rows["utilisation_floor"]
    share_of = {data.depots[d]: float(v) for d, v in zip(d_idx, share, strict=True)}

    def utilisation(_m, dep):
        offered = sum(m.capacity_blocks[dep, t] for t in range(1, data.n_weeks + 1))
        return share_of[dep] * offered - blocks(dep, idle) >= 0

    m.utilisation_floor = pyo.Constraint(pyo.Set(initialize=list(share_of), ordered=True), rule=utilisation)
    d_idx, floor = rows["earnings_floor"]
    floor_of = {data.depots[d]: float(v) for d, v in zip(d_idx, floor, strict=True)}

    if data.has_periods:  # driver-weeks of a period: alpha_t a[t] + beta_t a[t-1] (drivers.driver_weeks)

        _, _, alpha, beta = period_factors(data)

    def earnings(_m, dep):
        weeks = range(1, data.n_weeks + 1)
        worked = sum(m.capacity_blocks[dep, t] for t in weeks) - blocks(dep, idle)
        if data.has_periods:
            i = pos[dep]
            w = alpha[i].copy()
            w[:-1] += beta[i, 1:]
            start = float(beta[i, 0]) * float(data.initial_active[i])  # driver-weeks of the initial drivers in period 1
            return worked - floor_of[dep] * sum(float(w[t - 1]) * m.active_drivers[dep, t] for t in weeks) \
                >= floor_of[dep] * start
        return worked - floor_of[dep] * sum(m.active_drivers[dep, t] for t in weeks) >= 0

    m.earnings_floor = pyo.Constraint(pyo.Set(initialize=list(floor_of), ordered=True), rule=earnings)


def define_scenario_service_constraints(m: pyo.ConcreteModel, data: ModelData) -> None:
    """The bad-week rows of the module docstring (extensive form: ``m.unserved_blocks``)."""
    d_idx, level = target_rows(data)["service_cvar_bound"]
    level_of = {data.depots[d]: float(v) for d, v in zip(d_idx, level, strict=True)}
    depots = pyo.Set(initialize=list(level_of), ordered=True)
    m.SERVICE_DEPOTS = depots
    if data.scenario_service_form == "chance":
        _define_chance_rows(m, data, level_of)
        return
    m.service_cvar_threshold = pyo.Var(m.SERVICE_DEPOTS, domain=pyo.Reals)
    m.service_cvar_excess = pyo.Var(m.SERVICE_DEPOTS, m.SCENARIOS, domain=pyo.NonNegativeReals)
    pos = {s: i for i, s in enumerate(data.scenarios)}
    d_pos = {dep: i for i, dep in enumerate(data.depots)}
    weeks = range(1, data.n_weeks + 1)
    q = float(data.scenario_service_share)

    def excess(_m, dep, s):
        total = float(data.demand[d_pos[dep], :, pos[s]].sum())  # blocks over the horizon
        unserved = sum(m.unserved_blocks[dep, t, s] for t in weeks)
        return (m.service_cvar_excess[dep, s] + m.service_cvar_threshold[dep] - unserved
                >= -(1.0 - level_of[dep]) * total)

    m.service_cvar_excess_definition = pyo.Constraint(m.SERVICE_DEPOTS, m.SCENARIOS, rule=excess)
    prob = {s: float(data.probability[pos[s]]) for s in m.SCENARIOS}

    def bound(_m, dep):
        return (m.service_cvar_threshold[dep]
                + sum(prob[s] * m.service_cvar_excess[dep, s] for s in m.SCENARIOS) / (1.0 - q) <= 0)

    m.service_cvar_bound = pyo.Constraint(m.SERVICE_DEPOTS, rule=bound)


def _define_chance_rows(m: pyo.ConcreteModel, data: ModelData, level_of: dict[str, float]) -> None:
    """The chance form of the bad-week target (module docstring): binaries ``service_met[d,s]``
    and the rows ``service_chance[d,s]`` (blocks) and ``service_chance_share[d]`` (share)."""
    pos = {s: i for i, s in enumerate(data.scenarios)}
    d_pos = {dep: i for i, dep in enumerate(data.depots)}
    weeks = range(1, data.n_weeks + 1)
    m.service_met = pyo.Var(m.SERVICE_DEPOTS, m.SCENARIOS, domain=pyo.Binary)

    def met(_m, dep, s):
        total = float(data.demand[d_pos[dep], :, pos[s]].sum())  # D_ds, blocks over the horizon
        unserved = sum(m.unserved_blocks[dep, t, s] for t in weeks)
        return unserved + level_of[dep] * total * m.service_met[dep, s] <= total

    m.service_chance = pyo.Constraint(m.SERVICE_DEPOTS, m.SCENARIOS, rule=met)
    prob = {s: float(data.probability[pos[s]]) for s in m.SCENARIOS}

    def share(_m, dep):
        return sum(prob[s] * m.service_met[dep, s] for s in m.SCENARIOS) >= float(data.scenario_service_share)

    m.service_chance_share = pyo.Constraint(m.SERVICE_DEPOTS, rule=share)
