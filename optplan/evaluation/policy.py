"""Recruiting policies from the DP, and a simulation that compares them with common random numbers.

Policy (``depot_policy``): the DP's state-feedback rule for one depot at the plan's budget
prices. For arrival week t and a *projected* driver count (drivers expected at the end of
week t-1 from those active now and the applicants already in the funnel, with no new
recruiting), the rule gives the new drivers to have arrive in week t, split over channels
by priced cost per driver, and so the applicants to recruit now in each channel
(new drivers / conversion, recruited the channel's modal lag before week t).

Simulation (``simulate``): fresh demand paths and a stochastic driver pool, the same random
numbers for every policy (common random numbers, so differences between policies are
measured with far less noise than their levels):

* demand[d,t] = scenario s drawn by probability, times exp(sigma e[d,t] - sigma^2/2) with
  e an AR(1) over weeks (coefficient ``noise_ar``), one path per draw (blocks/week);
* drivers: each active driver stays with probability retention (binomial on whole
  drivers); new drivers arrive Poisson with the funnel's expected arrivals (drivers/week);
  both drawn by inverse CDF from uniforms shared by all policies (common random numbers);
* every week: recruiting spend (currency) stops at the weekly and total budgets; then
  demand is revealed and the recourse (surge, unserved, idle) is the closed form of
  optplan.evaluation.evaluator.

Policies compared: ``static`` (the LP plan's applicants and incentives, whatever happens),
``dp`` (the DP rule re-applied each week to the realized drivers and funnel, incentives
from the DP's week cost at the realized drivers), ``rolling`` (the LP re-solved every
``replan_every`` weeks on each path's realised state: drivers on hand, the funnel's expected
arrivals, spend so far; optplan.planning.replan.remaining_data), ``rolling_mean`` (the same with the
mean demand as the one scenario: the deterministic plan re-planned), ``rolling_bayes`` (rolling
with each path's scenario probabilities given the demand seen), ``rolling_reforecast``
(rolling_bayes until the demand seen shows a new level no scenario holds, by
optplan.evaluation.sampling.new_level; from then on the path's scenarios times each
depot's level over the last weeks (optplan.evaluation.sampling.reforecast_level), with the instance's
probabilities: the re-forecast of a local-level correction, issue #32 part 1), ``basestock`` (through
the cheapest channel per driver, bring each depot's expected drivers at the arrival week up
to a multiple of what its mean demand needs; the multiple per depot chosen by coordinate
search on separate paths), ``myopic`` (the old strawman: the next 4 weeks' mean need, no
tuning).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import binom, poisson

from formulations.data import Decisions, ModelData
from formulations.two_stage.budgets import total_spend
from formulations.two_stage.decisions import applicant_bounds, incentive_bounds
from formulations.two_stage.drivers import capacity, carry_over, cohort_arrivals
from formulations.two_stage.recourse import optimal_recourse, recourse_cost
from optplan.errors import OptionError
from optplan.evaluation.sampling import ScenarioPosterior, reforecast_level, sample_demand, trusted_probabilities
from optplan.explain.plots import figure_to_svg
from optplan.io.atomic import atomic_write_text
from optplan.planning.replan import remaining_data
from optplan.progress import progress
from optplan.solvers import SolveOptions, solve_data
from optplan.solvers.dp import DepotModel, DPOptions, solve_dp
from optplan.solvers.dp.recursion import solve_depot

#: z-value of a two-sided 95% normal confidence interval.
Z95 = 1.959963984540054
#: Bisection steps on the rule's budget price, and the share by which its spend may pass the budget.
RULE_PRICE_ITERATIONS = 12
RULE_BUDGET_RTOL = 1e-3
#: Weeks of mean demand the myopic rule covers ("next month").
MYOPIC_WEEKS = 4


@dataclass
class PolicyTable:
    """The DP rule of one depot as a table (see module docstring) and its DP pieces."""

    depot: str
    table: pd.DataFrame
    price: np.ndarray


def depot_policy(data: ModelData, depot: str, options: DPOptions | None = None, result=None) -> PolicyTable:
    """The DP's state-feedback rule for ``depot`` at the DP plan's budget prices."""
    if depot not in data.depots:
        raise OptionError("--depot", f"one of {', '.join(data.depots)}", depot)
    result = result or solve_dp(data, options, policies=True)
    pol = result.policies[depot]
    d = data.depots.index(depot)
    dep = DepotModel(data, d)
    conv = data.yield_kernel.sum(axis=1)
    modal = data.modal_lag()
    rows = []
    for t in range(data.n_weeks):
        for state, n in zip(pol.grids[t], pol.arrivals[t], strict=True):
            split = dep.split_arrivals(t, float(max(n, 0.0)), pol.price)
            row = {"arrival_week": t + 1, "projected_drivers": float(state), "new_drivers": float(max(n, 0.0)),
                   # drivers to have at the end of the arrival week: a base-stock level when the rule recruits
                   "target_drivers": float(carry_over(dep.rho, state, dep.pipeline[t] + max(n, 0.0)))}
            for c, name in enumerate(data.channels):
                week = t + 1 - int(modal[c])
                # empty where the recruiting week would fall before week 1 (nothing to act on)
                row[f"applicants_{name}"] = float(split[c] / conv[c]) if conv[c] > 0 and week >= 1 else np.nan
                row[f"recruit_week_{name}"] = week if week >= 1 else pd.NA
            rows.append(row)
    table = pd.DataFrame(rows)
    # thin to at most 41 states per week for the file (the rule is piecewise linear between)
    keep = table.groupby("arrival_week", group_keys=False)[table.columns.tolist()].apply(
        lambda g: g.iloc[np.unique(np.linspace(0, len(g) - 1, min(len(g), 41)).round().astype(int))]
    )
    return PolicyTable(depot, keep.reset_index(drop=True), pol.price)


def policy_plot(policy: PolicyTable, path, currency: str) -> None:
    """New drivers to bring in against projected drivers, one line per arrival week (SVG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "optplan", "svg.fonttype": "none", "font.size": 9})
    from matplotlib.ticker import MaxNLocator

    t = policy.table
    weeks = sorted(t["arrival_week"].unique())
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.8), gridspec_kw={"width_ratios": [1, 1.3]})
    # left: the base-stock (order-up-to) level of each arrival week, the rule in one line
    def base_stock(g):  # the level reached where the rule recruits but is not capped (its order-up-to level)
        n = g["new_drivers"].to_numpy()
        interior = (n > 1e-9) & (n < n.max() - 1e-9)
        pick = interior if interior.any() else n > 1e-9
        return float(g.loc[pick, "target_drivers"].median()) if pick.any() else float("nan")

    level = t.groupby("arrival_week")[["new_drivers", "target_drivers"]].apply(base_stock)
    left.step(level.index, level.to_numpy(), where="mid", color="#1f4e79", lw=1.6, label="base-stock level")
    left.set_xlabel("arrival week")
    left.set_ylabel("drivers to reach (drivers)")
    left.xaxis.set_major_locator(MaxNLocator(integer=True))
    left.legend(fontsize=8)
    left.set_title("Bring the pool up to this level")
    # right: the rule itself for at most four weeks, told apart by colour and line style
    shown = sorted({weeks[0], weeks[len(weeks) // 3], weeks[2 * len(weeks) // 3], weeks[-1]})
    styles = ["-", "--", "-.", ":"]
    colors = ["#1f4e79", "#c55a11", "#548235", "#7030a0"]
    for i, w in enumerate(shown):
        g = t[t["arrival_week"] == w]
        right.plot(g["projected_drivers"], g["new_drivers"], color=colors[i], linestyle=styles[i], lw=1.5,
                   label=f"arrival week {w}")
        stops = g.loc[g["new_drivers"] <= 1e-9, "projected_drivers"]
        if len(stops):  # where recruiting stops: the base-stock level seen from the week before
            right.axvline(float(stops.min()), color=colors[i], linestyle=styles[i], lw=0.8, alpha=0.7)
    right.set_xlabel("projected drivers at the end of the week before (drivers)")
    right.set_ylabel("new drivers to bring in (drivers/week)")
    right.legend(fontsize=8, title="vertical lines: recruiting stops", title_fontsize=7)
    right.set_title("The rule in selected weeks")
    fig.suptitle(f"DP recruiting rule, depot {policy.depot} (costs in {currency})")
    fig.tight_layout()
    atomic_write_text(path, figure_to_svg(fig))


# ---------------------------------------------------------------------------- simulation
class _Sim:
    """State of N simulated paths: active drivers (N, D) and expected future arrivals."""

    def __init__(self, data: ModelData, n: int, fluid: bool = False):
        D, C, T, _ = data.shape
        self.data, self.fluid = data, fluid
        start = data.initial_active if fluid else np.round(data.initial_active)
        self.active = np.broadcast_to(start, (n, D)).astype(float).copy()
        L = data.yield_kernel.shape[1]
        self.funnel = np.zeros((n, D, T + L))  # expected new drivers per future week from applicants so far
        self.spend_total = np.zeros(n)
        self.spend_depot = np.zeros((n, D))  # currency per path and depot (regional budgets of re-plans)

    def recruit(self, t: int, x: np.ndarray, z: np.ndarray, cap_week: float, cap_left: np.ndarray):
        """Applicants x (N, D, C) and incentive spend z (N, D) of week t, scaled down per path
        to the weekly and remaining total budget (currency)."""
        d = self.data
        by_depot = total_spend(d, x[..., None], z[..., None, None])[..., 0]  # (N, D) currency
        spend = by_depot.sum(axis=1)  # currency per path
        room = np.minimum(cap_week, cap_left)
        f = np.where(spend > room, np.where(spend > 0, np.maximum(room, 0) / np.where(spend > 0, spend, 1), 0.0), 1.0)
        x = x * f[:, None, None]
        z = z * f[:, None]
        spend_by_depot = by_depot * f[:, None]
        L = d.yield_kernel.shape[1]
        self.funnel[:, :, t : t + L] += cohort_arrivals(d, x)
        spent = spend * f
        self.spend_total += spent
        self.spend_depot += spend_by_depot  # the budgets kernel's, scaled like x and z
        return x, z, spent


def simulate(data: ModelData, static: Decisions, n_paths: int = 200, seed: int = 0, sigma: float = 0.05,
             noise_ar: float = 0.5, options: DPOptions | None = None, dp_result=None,
             stochastic_drivers: bool = True, show_progress: bool = False,
             policies: tuple[str, ...] = ("static", "dp", "rolling", "rolling_bayes", "rolling_reforecast", "basestock"),
             replan_every: int = 1,
             tune_paths: int = 200, worlds: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """Per path and policy: cost (currency), unserved, idle and surge blocks over the horizon.

    ``stochastic_drivers=False`` keeps the driver pool fluid (expected values, as the LP
    and the evaluator model it); with ``sigma=0`` too, the static plan's mean cost over
    paths is then the evaluator's expected cost up to the sampling of scenarios.

    ``worlds`` ({name: (N, D, T) demand paths}, optplan.evaluation.worlds): score every policy
    on each world's paths instead of the sampler's (a first column ``world``); the policies
    still plan with the instance's scenarios and ``sigma``, ``noise_ar`` (their posterior, the
    base-stock levels tuned on the sampler's own paths, the DP rule: made once for all worlds)."""
    D, C, T, S = data.shape
    if data.has_periods:
        raise OptionError("instance", "a weekly instance to simulate (the simulation decides week by week; this one "
                          "has long-lead periods, horizon.periods: simulate its weekly version)", "horizon.periods")
    if "dp" in policies and dp_result is None:
        if data.has_country_budgets:
            raise OptionError("--policies", "policies without dp (the DP holds each depot to one capped budget "
                              "group; this instance has country budgets)", ",".join(policies))
        # the DP states no planner's decisions: its rule is made without them, then held to them week by week
        dp_result = solve_dp(data.without_decisions(), options, policies=True)
    deps = [DepotModel(data, d) for d in range(D)]
    conv = data.conversion()
    modal = data.modal_lag()
    unit = data.cost_per_driver()  # currency/driver
    cheapest = int(np.argmin(unit))
    demand = sample_demand(data, n_paths, np.random.default_rng(seed), sigma, noise_ar)
    mask = data.recruit_mask()
    levels_of = {"basestock": np.ones(D), "basestock_bayes": np.ones(D)}  # multipliers, tuned below when asked for
    x_lo, x_hi = applicant_bounds(data)  # the planner's decisions (decisions.csv), within the caps
    z_lo, z_hi = (b.sum(axis=2) for b in incentive_bounds(data))
    def run(policy, dp_pols, demand_paths, fluid, budgets=True, show=True, world=""):
        plan, t_plan = None, 0  # the last re-plan per path: (applicants (N, D, C, T'), spend (N, D, T')), its week
        n_paths = demand_paths.shape[0]
        rng = np.random.default_rng([seed, 1])  # common random numbers: the same stream for every policy
        sim = _Sim(data, n_paths, fluid=fluid)
        cost = np.zeros(n_paths)
        unserved = np.zeros(n_paths)
        idle = np.zeros(n_paths)
        surge_b = np.zeros(n_paths)
        # the scenarios' probabilities given the demand seen so far on each path, kept week by week
        seen = ScenarioPosterior(data, n_paths, sigma, noise_ar) if policy.endswith("_bayes") or \
            policy == "rolling_reforecast" else None
        left = np.zeros(n_paths, bool)  # rolling_reforecast: paths whose demand has left every scenario
        for t in progress(range(T), f"simulating {policy} on {n_paths} paths{world}", "week", show=show_progress and show):
            if seen is not None and t > 0:
                seen.update(demand_paths[:, :, t - 1])  # last week's demand is known now
            # -- decide (drivers active at the end of last week are known, demand is not)
            if policy == "static":
                x = np.broadcast_to(static.applicants[:, :, t], (n_paths, D, C)).copy()
                z = np.broadcast_to(static.incentive_spend[:, t, :].sum(axis=1), (n_paths, D)).copy()
            elif policy == "dp":
                x = np.zeros((n_paths, D, C))
                L = data.yield_kernel.shape[1]
                for d in range(D):
                    pol = dp_pols[data.depots[d]]
                    extra = np.zeros((n_paths, T + L))  # expected arrivals of this week's applicants decided so far
                    for c in np.argsort(modal, kind="stable"):
                        ta = t + modal[c]  # the arrival week this week's applicants aim at
                        if ta >= T or not mask[d, c, t] or conv[c] <= 0:
                            continue
                        proj = _projected(sim, d, t, ta, data.retention[d], extra)
                        n_star = np.interp(proj, pol.grids[ta], pol.arrivals[ta])
                        # arrivals already on their way to week ta (earlier cohorts' later lags, and
                        # this week's applicants in channels decided just before) count toward the rule's
                        n_star = np.maximum(n_star - sim.funnel[:, d, ta] - extra[:, ta], 0.0)
                        # the part of the rest that this channel supplies at the prices in force
                        share = np.array([deps[d].split_arrivals(ta, float(v), pol.price)[c] for v in n_star])
                        x[:, d, c] = np.minimum(share / data.yield_kernel[c, modal[c]], data.applicant_cap[d, c])
                        one = np.zeros((n_paths, C))
                        one[:, c] = x[:, d, c]
                        extra[:, t : t + L] += cohort_arrivals(data, one)  # this channel's cohort at lags 0..L-1
                z = np.zeros((n_paths, D))  # decided below from the drivers of the week
            elif policy in ("rolling", "rolling_mean", "rolling_bayes", "rolling_reforecast"):
                # re-solve weeks t..T on each path's realised state every replan_every weeks
                # (optplan.planning.replan.remaining_data; rolling_mean: the mean-demand deterministic plan;
                # rolling_bayes: the scenarios weighted by the demand seen so far on the path;
                # rolling_reforecast: the same until the demand seen shows a new level, then the
                # scenarios re-levelled by the recent demand, with the instance's weights)
                if plan is None or (t - t_plan) % replan_every == 0:
                    post = seen.probabilities() if policy == "rolling_bayes" else None
                    level = None
                    if policy == "rolling_reforecast":
                        post, level, left = reforecast(data, seen, demand_paths[:, :, :t], left)
                    plan, t_plan = _replan_paths(data, sim, t, mean_demand=policy == "rolling_mean",
                                                 probability=post, level=level), t
                x = plan[0][:, :, :, t - t_plan].copy()
                z = plan[1][:, :, t - t_plan].copy()
            elif policy in ("basestock", "basestock_bayes"):
                # basestock_bayes: the need from the scenarios weighted by the demand seen so far
                post = seen.probabilities() if policy == "basestock_bayes" else None
                x = _base_stock(data, sim, t, levels_of[policy], unit, conv, modal, mask, probability=post)
                z = np.zeros((n_paths, D))
            else:
                x = np.zeros((n_paths, D, C))
                for d in range(D):
                    ta = min(T - 1, t + modal[cheapest])
                    if not mask[d, cheapest, t]:
                        continue
                    horizon = slice(ta, min(T, ta + MYOPIC_WEEKS))
                    need = ((data.demand[d, horizon] @ data.probability) / data.supply[d, horizon]).mean()
                    proj = _projected(sim, d, t, ta, data.retention[d])
                    x[:, d, cheapest] = np.clip((need - proj) / conv[cheapest], 0.0, data.applicant_cap[d, cheapest])
                z = np.zeros((n_paths, D))
            if data.has_decisions:  # the planner's decisions hold whatever the policy would do
                x = np.clip(x, x_lo[None, :, :, t], x_hi[None, :, :, t])
                z = np.clip(z, z_lo[None, :, t], z_hi[None, :, t])
            # -- drivers of week t: stayers + arrivals
            cap_left = data.budget_total - sim.spend_total if budgets else np.inf
            x, z, spent = sim.recruit(t, x, z, data.budget_weekly[t] if budgets else np.inf, cap_left)
            expected_arrivals = np.maximum(sim.funnel[:, :, t] + data.pipeline[None, :, t], 0.0)
            if sim.fluid:
                sim.active = carry_over(data.retention[None, :], sim.active, expected_arrivals)
            else:
                # inverse-CDF draws from common uniforms: the same "luck" for every policy,
                # monotone in the counts, so the policies' outcomes move together (CRN)
                u_stay, u_arr = rng.random((2, n_paths, D))
                n_now = np.maximum(sim.active, 0).round()
                stay = binom.ppf(u_stay, n_now, data.retention[None, :])
                stay = np.where(n_now > 0, stay, 0.0)
                arrivals = np.where(expected_arrivals > 0, poisson.ppf(u_arr, np.where(expected_arrivals > 0, expected_arrivals, 1.0)), 0.0)
                sim.active = stay + arrivals  # the stock-flow of drivers.carry_over with drawn stayers
            if policy == "dp":  # incentives from the DP's week cost at the realized drivers, within budget
                for d in range(D):
                    _, zz = deps[d].week_cost(t, sim.active[:, d], float(dp_pols[data.depots[d]].price[t]))
                    z[:, d] = zz
                room = np.maximum(np.minimum(data.budget_weekly[t] - spent, data.budget_total - sim.spend_total), 0.0)
                if not budgets:
                    room = np.full(n_paths, np.inf)
                if data.has_decisions:
                    z = np.clip(z, z_lo[None, :, t], z_hi[None, :, t])
                tot = z.sum(axis=1)
                z *= np.where(tot > room, room / np.where(tot > 0, tot, 1), 1.0)[:, None]
                sim.spend_total += z.sum(axis=1)
                spent = spent + z.sum(axis=1)
            inc = np.stack([deps[d].curve.blocks(z[:, d]) for d in range(D)], axis=1)
            q = capacity(data.supply[None, :, t], sim.active, inc)
            su, un, idl = (a[..., 0] for a in optimal_recourse(data, q, demand_paths[:, :, t, None], depot_axis=1))
            cost += spent + recourse_cost(data, su, un, idl, depot_axis=1).sum(axis=1)
            unserved += un.sum(axis=1)
            idle += idl.sum(axis=1)
            surge_b += su.sum(axis=1)
        return sim.spend_total, pd.DataFrame({"policy": policy, "path": np.arange(n_paths), "cost": cost, "spend": sim.spend_total.copy(),
                                 "unserved_blocks": unserved,
                                 "idle_blocks": idle, "surge_blocks": surge_b})

    unknown = [p for p in policies if p not in POLICIES]
    if unknown:
        raise OptionError("--policies", f"some of {', '.join(POLICIES)}", ",".join(unknown))
    dp_pols = rule_policies(data, dp_result, demand, run) if "dp" in policies else None
    for rule in ("basestock", "basestock_bayes"):  # order-up-to levels chosen on separate paths (seed + 1), then fixed
        if rule in policies:
            tune = sample_demand(data, tune_paths, np.random.default_rng([seed, 2]), sigma, noise_ar)
            levels_of[rule] = _tune_base_stock(
                lambda rule=rule, tune=tune: run(rule, None, tune, not stochastic_drivers, show=False)[1]["cost"].mean(),
                levels_of[rule], show=show_progress)
    if worlds is None:
        out = [run(policy, dp_pols, demand, not stochastic_drivers)[1] for policy in policies]
        return pd.concat(out, ignore_index=True)
    out = [run(policy, dp_pols, paths, not stochastic_drivers, world=f" ({name})")[1].assign(world=name)
           for name, paths in worlds.items() for policy in policies]
    frame = pd.concat(out, ignore_index=True)
    return frame[["world", *[c for c in frame.columns if c != "world"]]]


#: Policies ``simulate`` knows: the LP plan as it stands, the DP rule, re-solving the LP on
#: the realised state (all scenarios, or their mean: the deterministic plan re-planned),
#: a tuned base-stock rule per depot, and the old myopic rule.
POLICIES = ("static", "dp", "rolling", "rolling_mean", "rolling_bayes", "rolling_reforecast", "basestock",
            "basestock_bayes", "myopic")
#: Multipliers of mean need tried for each depot's base-stock level, and tuning passes.
BASE_STOCK_GRID = np.round(np.arange(0.80, 1.51, 0.05), 2)
BASE_STOCK_PASSES = 2


def reforecast(data: ModelData, seen: ScenarioPosterior, observed: np.ndarray,
               left: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """rolling_reforecast's forecast of the weeks ahead on each path: (probability (N, S),
    level (N, D) or None, left (N,)). Until the path's demand shows a new level no scenario
    holds (``new_level``: no scenario explains the demand seen, and some depot's last weeks all
    sit far off the most likely scenario by the noise's own scale), the scenarios weighted by
    the demand seen (``trusted_probabilities``: rolling_bayes's posterior, or, where no scenario
    explains the demand but no level moved, the one that does not take the noise sd as known);
    from then on (``left``, kept from week to week) the instance's probabilities and every
    scenario times each depot's level over the last weeks ``observed`` (N, D, t)
    (``reforecast_level``)."""
    if observed.shape[2] == 0:
        return seen.probabilities(), None, left
    post, new = trusted_probabilities(data, seen, observed)
    left = left | new.any(axis=1)
    if not left.any():
        return post, None, left
    level = np.where(left[:, None], reforecast_level(data, observed, noise_ar=seen.a), 1.0)
    prior = data.probability / data.probability.sum()
    return np.where(left[:, None], prior[None, :], post), level, left


def _replan_paths(data: ModelData, sim: _Sim, t: int, mean_demand: bool,
                  probability: np.ndarray | None = None, level: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each path's re-plan of weeks t..T from its state (drivers on hand, expected arrivals
    from its funnel, its spend so far): (applicants (N, D, C, T-t), incentive spend (N, D, T-t));
    ``probability`` (N, S): each path's own scenario probabilities (default: the data's);
    ``level`` (N, D): each path's demand ahead as a multiple of the scenarios' (default 1)."""
    N, D = sim.active.shape
    C, T = len(data.channels), data.n_weeks
    xs = np.zeros((N, D, C, T - t))
    zs = np.zeros((N, D, T - t))
    regions = np.asarray(data.regions)
    solved: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}  # paths in the same state share one solve
    for p in range(N):
        key = b"".join((sim.active[p].tobytes(), sim.funnel[p, :, t:T].tobytes(), sim.spend_depot[p].tobytes(),
                        b"" if probability is None else probability[p].tobytes(),
                        b"" if level is None else level[p].tobytes()))
        if key not in solved:
            spend_regions = {r: float(sim.spend_depot[p, regions == r].sum()) for r in data.budget_region}
            countries = data.budget_groups("budget_country")
            spend_countries = {k: float(sim.spend_depot[p, countries == k].sum()) for k in data.budget_country}
            rem = remaining_data(data, t + 1, sim.active[p], sim.funnel[p, :, :T], float(sim.spend_total[p]),
                                 spend_regions, mean_demand=mean_demand, spend_countries=spend_countries,
                                 probability=None if probability is None else probability[p],
                                 level=None if level is None else level[p])
            r = solve_data(rem, SolveOptions(), "highs")
            solved[key] = (r.decisions.applicants, r.decisions.incentive_spend.sum(axis=2))
        xs[p], zs[p] = solved[key]
    return xs, zs


def _base_stock(data: ModelData, sim: _Sim, t: int, levels: np.ndarray, unit: np.ndarray, conv, modal, mask,
                probability: np.ndarray | None = None) -> np.ndarray:
    """Applicants (N, D, C) of the base-stock rule: bring the drivers expected at the arrival
    week up to levels[d] x the drivers the depot's mean demand needs there (blocks/week /
    blocks per driver), filling that need through the channels cheapest per driver first
    (``unit``, currency/driver), each up to its applicant cap; a channel's arrival week is
    its modal lag after t. ``probability`` (N, S): each path's scenario probabilities for
    that mean (default: the data's)."""
    N, D = sim.active.shape
    T = data.n_weeks
    x = np.zeros((N, D, len(data.channels)))
    for d in range(D):
        short = None
        for c in np.argsort(unit, kind="stable"):
            if not mask[d, c, t] or conv[c] <= 0 or not np.isfinite(unit[c]):
                continue
            ta = min(T - 1, t + int(modal[c]))
            mean = (data.demand[d, ta] @ data.probability if probability is None
                    else probability @ data.demand[d, ta])  # blocks/week, a scalar or (N,)
            need = levels[d] * mean / data.supply[d, ta]
            proj = carry_over(data.retention[d], _projected(sim, d, t, ta, data.retention[d]),
                              sim.funnel[:, d, ta] + data.pipeline[d, ta])
            gap = need - proj if short is None else short
            x[:, d, c] = np.clip(gap / conv[c], 0.0, data.applicant_cap[d, c])
            short = gap - x[:, d, c] * conv[c]  # drivers still missing after this channel
    return x


def _tune_base_stock(mean_cost, levels: np.ndarray, show: bool = False) -> np.ndarray:
    """Coordinate search of each depot's multiplier over BASE_STOCK_GRID (depots share the
    budgets, so one at a time, BASE_STOCK_PASSES passes), minimising the mean simulated cost;
    ``show``: one progress bar over the depot passes (not one per simulation)."""
    best = mean_cost()
    for _ in range(BASE_STOCK_PASSES):
        for d in progress(range(len(levels)), "tuning base-stock levels", "depot", show=show):
            keep = levels[d]
            for m in BASE_STOCK_GRID:
                levels[d] = m
                c = mean_cost()
                if c < best - 1e-9:
                    best, keep = c, m
            levels[d] = keep
    return levels.copy()


def rule_policies(data: ModelData, dp_result, demand: np.ndarray, run) -> dict:
    """The DP rules at a total-budget price that makes following them, with fluid drivers,
    spend no more than the total budget (bisection on the price, RULE_PRICE_ITERATIONS
    steps). The DP plan's own price can be too low for the rule: the realized plan spends
    more than the relaxed DP, and a rule that spends early starves the last weeks."""
    B = data.budget_total
    if not np.isfinite(B):
        return dp_result.policies
    deps = [DepotModel(data, d) for d in range(len(data.depots))]
    mu = np.asarray(dp_result.prices.get("weekly", np.zeros(data.n_weeks)), float)
    n = dp_result.grid_points
    one = demand[:1]

    def at(lam):
        pols = {data.depots[dep.d]: solve_depot(dep, 1.0 + lam + mu, n, keep_policy=True).policy for dep in deps}
        return pols, float(run("dp", pols, one, True, budgets=False, show=False)[0][0])  # what the rule wants to spend

    lam = float(dp_result.prices.get("total", 0.0))
    pols, spend = at(lam)
    if spend <= B * (1 + RULE_BUDGET_RTOL):
        return pols
    lo, hi = lam, lam + 1.0
    hi_pols, s_hi = at(hi)
    while s_hi > B * (1 + RULE_BUDGET_RTOL) and hi < 1e4:
        lo, hi = hi, 2 * hi + 1.0
        hi_pols, s_hi = at(hi)
    for _ in range(RULE_PRICE_ITERATIONS):
        mid = 0.5 * (lo + hi)
        p_mid, s_mid = at(mid)
        if s_mid > B * (1 + RULE_BUDGET_RTOL):
            lo = mid
        else:
            hi, hi_pols = mid, p_mid
    return hi_pols


def _projected(sim: _Sim, d: int, t: int, ta: int, rho: float, extra: np.ndarray | None = None) -> np.ndarray:
    """(N,) expected drivers at the end of week ta-1 with no further recruiting: the active
    drivers of now (end of week t-1) kept by retention, plus the funnel's and the pipeline's
    expected arrivals in weeks t..ta-1, each kept until ta-1 (drivers)."""
    a = sim.active[:, d]
    for w in range(t, ta):
        more = extra[:, w] if extra is not None else 0.0
        a = carry_over(rho, a, sim.funnel[:, d, w] + more + sim.data.pipeline[d, w])
    return a


def summarize_worlds(paths: pd.DataFrame, currency: str, reference: str) -> pd.DataFrame:
    """Per world and policy (simulate with ``worlds``): ``summarize``'s columns, the paired
    difference to ``reference`` (cost_minus_reference, its 95 % interval, per path: common
    random numbers) and the regret: the policy's expected cost over the world's best policy's,
    minus 1 (share)."""
    rows = []
    for world, g in paths.groupby("world", sort=False):
        table = summarize(g.drop(columns="world"), currency)
        ref = g[g["policy"] == reference].set_index("path")["cost"]
        for policy, h in g.groupby("policy", sort=False):
            diff = h.set_index("path")["cost"] - ref
            n = len(diff)
            table.loc[table["policy"] == policy, "cost_minus_reference"] = diff.mean()
            table.loc[table["policy"] == policy, "cost_minus_reference_ci95"] = (
                Z95 * diff.std(ddof=1) / np.sqrt(n) if policy != reference and n > 1 else 0.0)
        table["regret"] = table["cost"] / table["cost"].min() - 1.0
        table.insert(0, "world", world)
        table["reference"] = reference
        rows.append(table)
    return pd.concat(rows, ignore_index=True)


def most_robust(table: pd.DataFrame) -> tuple[str, float]:
    """The policy whose worst regret over the worlds is smallest (minimax regret), and that regret."""
    worst = table.groupby("policy", sort=False)["regret"].max()
    return str(worst.idxmin()), float(worst.min())


def summarize(paths: pd.DataFrame, currency: str) -> pd.DataFrame:
    """Mean and 95% CI per policy, and the paired difference to the static plan (CRN)."""
    rows = []
    base = paths[paths["policy"] == "static"].set_index("path")
    for policy, g in paths.groupby("policy", sort=False):
        g = g.set_index("path")
        n = len(g)
        row = {"policy": policy, "paths": n}
        for col in ("cost", "unserved_blocks", "idle_blocks", "surge_blocks"):
            m, s = g[col].mean(), g[col].std(ddof=1)
            row[col] = m
            row[f"{col}_ci95"] = Z95 * s / np.sqrt(n)
        diff = g["cost"] - base["cost"]
        row["cost_minus_static"] = diff.mean()
        row["cost_minus_static_ci95"] = Z95 * diff.std(ddof=1) / np.sqrt(n) if policy != "static" else 0.0
        row["currency"] = currency
        rows.append(row)
    return pd.DataFrame(rows)
