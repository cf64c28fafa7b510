"""The sensitivity report: one self-contained HTML file plus every number as CSV/JSON.

``build_report(instance)`` computes everything and returns it as pandas (the Python API);
``write_report(report, out)`` renders the HTML (plots as inline SVG: no network needed to
open it) and writes each table next to it, all atomically. Contents:

* the plan's summary and the solver status;
* marginal values (budgets, onboarding caps) with the ranges over which they hold, and the
  channels' reduced costs and cost ranges;
* the budget frontier (K total budgets, warm-started re-solves);
* the tornado (+-X% one at a time, parallel processes);
* the value of the stochastic solution (EV, EEV, WS, EVPI, VSS) and an out-of-sample
  evaluation of the plan on freshly sampled scenarios with a 95% confidence interval;
* plots: frontier, tornado, capacity against demand per depot (fan chart), spend by week
  and channel, funnel yields.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from formulations.two_stage.service import scenario_service_level
from optplan.evaluation.evaluator import evaluate_decisions
from optplan.evaluation.sampling import OutOfSample
from optplan.explain.plots import figure_to_svg
from optplan.explain.presentation import GLOSSARY, engine_words, fmt, kpi_rows, planner_table, words
from optplan.explain.sensitivity import SensitivityModel, TornadoResult, service_frontier, tornado
from optplan.explain.stochastic import LABELS, optplan_values
from optplan.io.atomic import csv_text, json_text, write_files
from optplan.io.instance import Instance
from optplan.planning.monitor import Monitor
from optplan.planning.plan import Plan
from optplan.solvers.base import SolveOptions, quiet_engines

#: z-value of a two-sided 95% normal confidence interval.
Z95 = 1.959963984540054


log = logging.getLogger("optplan")


@dataclass
class Report:
    """Everything the report shows, as pandas tables and plain numbers."""

    instance_name: str
    currency: str
    plan: Plan
    marginal_values: pd.DataFrame
    channel_reduced_costs: pd.DataFrame
    channel_cost_ranges: pd.DataFrame
    frontier: pd.DataFrame
    tornado: TornadoResult
    stochastic_values: dict[str, float]  # rp, ev, eev, ws, evpi, vss (currency); labels: stochastic.LABELS
    out_of_sample: dict[str, float]
    timings: dict[str, float] = field(default_factory=dict)
    service_frontier: pd.DataFrame | None = None  # cost vs service for several utilisation floors
    monitor: Monitor | None = None  # the watch on the weeks seen (optplan.planning.monitor), when given

    def tables(self) -> dict[str, pd.DataFrame]:
        vss = pd.DataFrame({"measure": list(self.stochastic_values),
                            "label": [LABELS[k] for k in self.stochastic_values],
                            "value": list(self.stochastic_values.values())})
        vss["currency"] = self.currency
        return {
            "marginal_values.csv": self.marginal_values,
            "channel_reduced_costs.csv": self.channel_reduced_costs,
            "channel_cost_ranges.csv": self.channel_cost_ranges,
            "frontier.csv": self.frontier,
            **({"service_frontier.csv": self.service_frontier} if self.service_frontier is not None else {}),
            "tornado.csv": self.tornado.table,
            "stochastic_values.csv": vss,
            "capacity.csv": self.plan.capacity,
            "service.csv": self.plan.service,
            "targets.csv": self.plan.targets,
            "spend_by_week.csv": self.plan.spend_by_week,
            "spend_by_week_channel.csv": spend_by_week_channel(self.plan),
            "funnel_yields.csv": funnel_yields(self.plan.data),
            "applicants.csv": self.plan.applicants,
            **({"bonuses.csv": self.plan.bonuses} if self.plan.data.signon_bonus is not None else {}),
            **({"monitor_by_depot.csv": self.monitor.by_depot,
                "monitor_alerts.csv": pd.DataFrame(self.monitor.alerts, columns=["kind", "where", "week", "value", "message"])}
               if self.monitor is not None else {}),
        }


def spend_by_week_channel(plan: Plan) -> pd.DataFrame:
    """Spend per week by recruiting channel and on planned incentives (the spend plot's data)."""
    d = plan.data
    x = plan.decisions.applicants
    out = {"week": d.period_starts(), **({"weeks": d.period_length.astype(int)} if d.has_periods else {})}
    for c, name in enumerate(d.channels):
        out[f"recruiting_{name}"] = x[:, c, :].sum(axis=0) * d.cost_per_applicant[c]
    out["planned_incentives"] = plan.decisions.incentive_spend.sum(axis=(0, 2))
    out["currency"] = d.currency
    return pd.DataFrame(out)


def funnel_yields(d) -> pd.DataFrame:
    """Yield kernels by channel and lag, with their cumulative share (the funnel plot's data)."""
    rows = []
    for c, name in enumerate(d.channels):
        cum = np.cumsum(d.yield_kernel[c])
        for k, p in enumerate(d.yield_kernel[c]):
            rows.append({"channel": name, "lag_weeks": k, "probability": float(p), "cumulative": float(cum[k])})
    return pd.DataFrame(rows)


def out_of_sample(plan: Plan, sampler: OutOfSample | None = None) -> dict:
    """Expected cost of the plan on the sampler's fresh paths (optplan.evaluation.sampling: the one
    definition `simulate` uses too), with a 95% normal confidence interval (currency), its
    in-sample value for comparison, and what was sampled."""
    sampler = sampler or OutOfSample()
    d = plan.data
    n = sampler.paths
    paths, share = sampler.demand_and_share(d)
    demand = np.transpose(paths, (1, 2, 0))  # (D, T, N)
    ev = evaluate_decisions(d, plan.decisions, demand, np.full(n, 1.0 / n),
                            share=None if share is None else np.transpose(share, (1, 2, 0, 3)))
    per_path = ev.scenario_cost  # (N,) currency: first stage plus each path's recourse (risk.scenario_costs)
    mean = float(per_path.mean())
    se = float(per_path.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    served = scenario_service_level(demand, ev.unserved_blocks)  # (N,) shares
    return {
        "paths": n, "seed": sampler.seed, "expected_cost": mean, "standard_error": se,
        "ci95_low": mean - Z95 * se, "ci95_high": mean + Z95 * se,
        "in_sample_expected_cost": float(plan.cost["total"]),
        "service_level_mean": float(served.mean()),
        "sampled": sampler.describe(), "sampler": sampler.to_dict(),
    }


def build_report(
    instance: Instance,
    frontier_points: int = 10,
    service_points: int = 5,
    tornado_change: float = 0.10,
    oos_paths: int = 500,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = False,
    options: SolveOptions | None = None,
    backend=None,
) -> Report:
    """Compute the whole report for ``instance`` (LP plans only); the tornado's solves run on
    ``backend`` (optplan.solvers.backends; default: ``workers`` local processes)."""

    options = options or SolveOptions(seed=seed)
    data = instance.model_data()
    timings: dict[str, float] = {}
    clock = [time.perf_counter()]

    def done(stage: str) -> None:
        now = time.perf_counter()
        timings[f"{stage}_s"] = now - clock[0]
        log.info("report: %s in %.1f s", stage.replace("_", " "), now - clock[0])
        clock[0] = now

    sm = SensitivityModel(data, options)
    plan = Plan.from_result(sm.base, instance.manifest.name, instance.manifest.horizon.start_date,
                            instance.manifest.guards)
    done("solve")
    with quiet_engines():  # the sweeps' hundreds of small solves: the stage lines and bars say enough
        marginal = sm.marginal_values()
        reduced = sm.channel_reduced_costs()
        done("marginal_values")
        ranges = sm.channel_cost_ranges()
        done("channel_cost_ranging")
        frontier = sm.budget_frontier(points=frontier_points, progress=progress, backend=backend)
        done("frontier")
        torn = tornado(data, change=tornado_change, options=options, workers=workers, progress=progress, backend=backend)
        done("tornado")
        two_sided = (service_frontier(data, options, points=service_points, backend=backend, progress=progress)
                     if service_points >= 2 and options.recourse == "aggregated" else None)
        done("service_frontier")
        values = optplan_values(data, options=options, backend=backend, rp=sm.base)
        stochastic = values.measures()
        done("stochastic_values")
        oos = out_of_sample(plan, OutOfSample(paths=oos_paths, seed=seed))
        done("out_of_sample")
    return Report(
        instance_name=instance.manifest.name, currency=data.currency, plan=plan, marginal_values=marginal,
        channel_reduced_costs=reduced, channel_cost_ranges=ranges, frontier=frontier, tornado=torn,
        stochastic_values=stochastic, out_of_sample=oos, timings=timings, service_frontier=two_sided,
    )


# ------------------------------------------------------------------ plots


def _plots(r: Report) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    plt.rcParams.update({"svg.hashsalt": "optplan", "svg.fonttype": "none", "font.size": 9})
    cur = r.currency
    plots = {}

    f = r.frontier
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.plot(f["budget_total"], f["expected_cost"], marker="o", color="#1f4e79", label="expected cost")
    ax.set_xlabel(f"total budget ({cur})")
    ax.set_ylabel(f"expected cost ({cur})")
    ax2 = ax.twinx()
    ax2.plot(f["budget_total"], 100 * f["service_level"], marker="s", color="#c55a11", label="service level")
    ax2.set_ylabel("service level (%)")
    handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(handles, [h.get_label() for h in handles], fontsize=8, loc="center right")
    ax.set_title("Budget frontier")
    fig.tight_layout()
    plots["frontier"] = figure_to_svg(fig)

    sf = r.service_frontier
    if sf is not None and sf["feasible"].any():
        fig, ax = plt.subplots(figsize=(7, 3.2))
        for floor, part in sf.groupby(sf["utilisation_floor"].fillna(-1.0), sort=True):
            label = "no utilisation floor" if floor < 0 else f"utilisation floor {floor:.1%}"
            ok = part[part["feasible"]]
            ax.plot(100 * ok["service_target"], ok["expected_cost"], marker="o", label=label)
        ax.set_xlabel("every depot's service level target (%)")
        ax.set_ylabel(f"expected cost ({cur})")
        ax.legend(fontsize=8)
        ax.set_title("Customers against drivers: cost of service for several utilisation floors")
        fig.tight_layout()
        plots["service_frontier"] = figure_to_svg(fig)

    t = r.tornado.table
    params = list(dict.fromkeys(t["parameter"]))
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(params) + 1.2))
    for i, p in enumerate(reversed(params)):
        rows = t[t["parameter"] == p]
        for _, row in rows.iterrows():
            color = "#2e75b6" if row["change"] > 0 else "#c00000"
            ax.barh(i, row["cost_change"], color=color, height=0.6)
    ax.set_yticks(range(len(params)), [words(p) for p in reversed(params)])
    ax.axvline(0, color="black", linewidth=0.8)
    step = r.tornado.table["change"].abs().max()
    ax.legend(handles=[Patch(color="#2e75b6", label=f"parameter +{step:.0%}"),
                       Patch(color="#c00000", label=f"parameter -{step:.0%}")], fontsize=8, loc="lower right")
    ax.set_xlabel(f"change in expected cost ({cur})")
    ax.set_title("Tornado: one parameter at a time")
    fig.tight_layout()
    plots["tornado"] = figure_to_svg(fig)

    cap = r.plan.capacity
    if "weeks" in cap:  # long-lead periods: each period's weekly average, so periods of any length share an axis
        per = ["demand_p10", "demand_p50", "demand_p90", "capacity_blocks"]
        cap = cap.assign(**{c: cap[c] / cap["weeks"] for c in per})
    depots = list(dict.fromkeys(cap["depot"]))
    cols = min(4, len(depots))
    nrows = math.ceil(len(depots) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(2.6 * cols, 1.9 * nrows), squeeze=False, sharex=True)
    for ax, depot in zip(axes.ravel(), depots, strict=False):
        c = cap[cap["depot"] == depot]
        ax.fill_between(c["week"], c["demand_p10"], c["demand_p90"], color="#9dc3e6", alpha=0.6, label="demand P10-P90")
        ax.plot(c["week"], c["demand_p50"], color="#1f4e79", linewidth=1, label="demand P50")
        ax.plot(c["week"], c["capacity_blocks"], color="#c55a11", linewidth=1.6, label="planned capacity")
        ax.set_title(depot, fontsize=8)
    for ax in axes.ravel()[len(depots):]:
        ax.axis("off")
    for ax in axes.ravel()[:len(depots)]:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelbottom=True, labelsize=7)
        ax.set_xlabel("week", fontsize=7)
    axes[0, 0].legend(fontsize=6, loc="lower left")
    fig.suptitle("Capacity against demand per depot (blocks/week" + ("; a long-lead period's weekly average)"
                                                                      if "weeks" in cap else ")"))
    fig.tight_layout()
    plots["capacity"] = figure_to_svg(fig)

    d = r.plan.data
    x = r.plan.decisions.applicants
    L = d.period_length  # weeks per period: a long-lead period's bar spans its weeks at its weekly average
    weeks = d.period_starts() - 0.5 + L / 2 if d.has_periods else np.arange(1, d.n_weeks + 1)
    fig, ax = plt.subplots(figsize=(7, 3))
    bottom = np.zeros(d.n_weeks)
    for c, name in enumerate(d.channels):
        spend = x[:, c, :].sum(axis=0) * d.cost_per_applicant[c] / L
        ax.bar(weeks, spend, bottom=bottom, label=name, width=0.8 * L if d.has_periods else 0.8)
        bottom += spend
    inc = r.plan.decisions.incentive_spend.sum(axis=(0, 2)) / L
    ax.bar(weeks, inc, bottom=bottom, label="planned incentives", color="#7f7f7f", width=0.8 * L if d.has_periods else 0.8)
    if np.isfinite(d.budget_weekly).any():
        ax.step(weeks, np.where(np.isfinite(d.budget_weekly), d.budget_weekly / L, np.nan), where="mid", color="black",
                linewidth=1.2, linestyle="--", label="weekly budget")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("week")
    ax.set_ylabel(f"spend ({cur})")
    ax.set_title("Spend by week and channel")
    ax.legend(fontsize=7)
    fig.tight_layout()
    plots["spend"] = figure_to_svg(fig)

    fig, ax = plt.subplots(figsize=(7, 2.8))
    lags = np.arange(d.yield_kernel.shape[1])
    for c, name in enumerate(d.channels):
        ax.plot(lags, np.cumsum(d.yield_kernel[c]), marker="o", label=f"{name} (conversion {d.yield_kernel[c].sum():.0%})")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("weeks after applying")
    ax.set_ylabel("share of applicants active")
    ax.set_title("Funnel yields (cumulative)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    plots["funnel"] = figure_to_svg(fig)
    return plots


# ------------------------------------------------------------------ HTML

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>optplan report: {{ name }}</title>
<style>
body{font-family:system-ui,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.5em} h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:0.85em;margin:0.5em 0} td,th{border:1px solid #ddd;padding:2px 6px;text-align:right}
th{background:#f2f2f2} td.l,th.l{text-align:left} .note{color:#555;font-size:0.85em} figure{margin:1em 0}
.wide{overflow-x:auto;max-width:100%} .wide th{white-space:normal;max-width:9em} figure svg{max-width:100%;height:auto}
</style></head><body>
<h1>optplan report: {{ name }}</h1>
<p>{{ status }}. Money in {{ currency }}.</p>
{% if warnings %}<h2>Check before acting</h2>
<ul class="warnings">{% for w in warnings %}<li>{{ w }}</li>{% endfor %}</ul>{% endif %}
{% if monitor %}<h2>What happened so far</h2>
<p class="note">The weeks seen against the forecast, the plan and the funnel (optplan monitor; docs/replan.md).</p>
<ul class="monitor">{% for line in monitor %}<li>{{ line }}</li>{% endfor %}</ul>
{{ monitor_table }}{% endif %}
<h2>Plan</h2>
<table>{% for k, v in kpis %}<tr><th class="l">{{ k }}</th><td>{{ v }}</td></tr>{% endfor %}</table>
<h2>Both customers, by depot</h2>
<p class="note">Customers: service level, the expected share of demand served. Drivers: utilisation, the
expected share of offered blocks (drivers' and incentive blocks) that get work, and blocks worked per
active driver-week. Over the horizon, in expectation over the scenarios.</p>
{{ service }}
{% if targets %}<h3>Targets and what they cost</h3>
<p class="note">Each service or utilisation target, what the plan achieves, and the expected cost saved per
percentage point it is lowered (LP dual times the row's sensitivity to the target; empty for DP or integer plans).</p>
{{ targets }}{% endif %}
<h2>What another {{ currency }} buys</h2>
<ul>{% for line in sentences %}<li>{{ line }}</li>{% endfor %}</ul>
<p class="note">Saving per extra unit (the <i>shadow price</i>): expected cost saved per extra unit of the cap,
valid while the cap stays in the range shown.</p>
{{ marginal }}
<h3>Channels</h3>
<p class="note">Price cut to be used more (the <i>reduced cost</i>): how much cheaper an applicant must be
before the channel is used more. Range where the plan keeps its shape: the costs per applicant over which the
plan uses the same channels and runs up against the same caps.</p>
{{ channels }}
{% if bonuses %}<h3>Sign-on and referral bonuses</h3>
<p class="note">Each level of the bonus menu: the applicants recruited under it, the drivers expected to convert
under it, the bonus expected to be paid (part of recruiting) and what one more unit of bonus per driver would
cost (<i>cost_per_unit</i>: the drivers under it, times one plus the shadow prices of the budgets it is spent under).</p>
{{ bonuses }}{% endif %}
<h2>Budget frontier</h2>
<figure>{{ plots.frontier }}</figure>
{{ frontier }}
{% if plots.service_frontier %}<h2>Customers against drivers</h2>
<p class="note">The least expected cost when every depot must serve at least the share of its demand on the
x axis, with and without a floor on the share of drivers' offered blocks that get work (empty points: no plan
meets both).</p>
<figure>{{ plots.service_frontier }}</figure>
{{ service_frontier }}{% endif %}
<h2>Tornado (&plusmn;{{ change }} one at a time)</h2>
<figure>{{ plots.tornado }}</figure>
{{ tornado }}
<h2>Value of planning for uncertainty</h2>
<p class="note">What the plan made for all demand scenarios at once saves against a plan made for average
demand, and what knowing the future would be worth (textbook names in brackets; glossary below).</p>
{{ vss }}
<h3>Two expected costs of this plan</h3>
<p>Over the plan's own {{ n_scenarios }} demand scenarios (in-sample, what <code>optplan solve</code> reports):
{{ oos_in }} {{ currency }}. Over {{ oos.paths }} new demand paths drawn around them (out of sample, the same
plan followed whatever happens): {{ oos_cost }} {{ currency }} (95 % interval {{ oos_ci }}), mean service level
{{ oos_service }}. The second is the fairer test: the plan was not made for those paths. <code>optplan simulate</code>
draws paths the same way and also re-plans each week, so its costs differ again (docs/sensitivity.md,
"Three expected costs").</p>
<p class="note">Paths sampled: {{ oos.sampled }}.</p>
<h2>Capacity against demand</h2>
<figure>{{ plots.capacity }}</figure>
<h2>Spend by week and channel</h2>
<figure>{{ plots.spend }}</figure>
<h2>Funnel yields</h2>
<figure>{{ plots.funnel }}</figure>
<h2>Glossary</h2>
<dl>{% for name, plain, meaning in glossary %}<dt><b>{{ plain }}</b>
{%- if name != plain %} <span class="note">({{ name }})</span>{% endif %}</dt><dd>{{ meaning }}</dd>{% endfor %}</dl>
<p class="note">Every number above is also in the CSV and JSON files next to this page.</p>
<script type="application/json" id="report-data">{{ data_json }}</script>
</body></html>
"""


def _html_table(df: pd.DataFrame, currency: str | None = None) -> str:
    """A table in planner language (optplan.explain.presentation), wrapped so a wide one scrolls
    inside its box instead of running off the page."""
    fmt = planner_table(df, currency)
    return '<div class="wide">' + fmt.to_html(index=False, border=0, escape=True) + "</div>"


def _targets_shown(targets: pd.DataFrame) -> pd.DataFrame:
    """The targets table with each row's target and achievement in its own unit (shares in
    %, the earnings floor in blocks per driver-week)."""

    out = targets.copy()
    blocks = out["target"] == "blocks_per_driver"
    for col in ("target_share", "achieved_share"):
        out[col] = [f"{v:,.2f} blocks/driver-week" if b else fmt(v, "share") for v, b in zip(out[col], blocks, strict=True)]
    return out


def planner_sentences(r: Report) -> list[str]:
    """Each binding cap and each unused channel in one plain sentence."""
    cur = r.currency
    out = []
    mv = r.marginal_values
    for row in mv[mv["shadow_price"] > 0].sort_values("shadow_price", ascending=False).itertuples(index=False):
        what = {"total": "the total budget", "week": f"the week-{row.key} budget", "region": f"the budget of region {row.key}"}
        if row.kind == "budget":
            subject = f"One more {cur} of {what[row.scope]}"
            unit = cur
        else:
            subject = f"One more driver a week of onboarding capacity at depot {row.scope} in week {row.key}"
            unit = "driver/week"
        span = (f"between {row.holds_from:,.6g} and {row.holds_to:,.6g}" if math.isfinite(row.holds_to)
                else f"at or above {row.holds_from:,.6g}")
        out.append(f"{subject} saves {row.shadow_price:,.4g} {cur} of expected cost (while that cap stays {span} {unit}).")
    for row in r.channel_reduced_costs.itertuples(index=False):
        if row.applicants <= 0 and row.cheaper_by_to_recruit_more > 0:
            out.append(f"Channel {row.channel} is not used: an applicant would have to cost "
                       f"{row.cheaper_by_to_recruit_more:,.4g} {cur} less ({row.cost_per_applicant:,.4g} now) before it is.")
    for row in r.plan.bonuses.itertuples(index=False):
        if row.applicants > 0:
            out.append(f"A bonus of {row.signon_bonus:,.4g} {cur} per driver on {row.channel} pays: "
                       f"{row.expected_drivers:,.1f} drivers are expected to convert under it ({row.expected_bonus_paid:,.2f} "
                       f"{cur} paid).")
    if not out:
        out.append("No budget or cap binds and every channel is in use: another " + cur + " buys nothing.")
    return out


def render_html(r: Report) -> str:
    from jinja2 import Environment
    from markupsafe import Markup

    env = Environment(autoescape=True)
    template = env.from_string(_TEMPLATE)
    plots = {k: Markup(v) for k, v in _plots(r).items()}
    channels = r.channel_reduced_costs.merge(
        r.channel_cost_ranges.drop(columns=["cost_per_applicant", "currency"]), on="channel")

    vss = pd.DataFrame({"measure": [LABELS[k] for k in r.stochastic_values], "value": list(r.stochastic_values.values())})
    kpis = kpi_rows(r.plan.kpis, r.currency)
    cur = r.currency
    oos = r.out_of_sample
    data = {
        "kpis": r.plan.kpis,
        "stochastic_values": r.stochastic_values,
        "out_of_sample": oos,
        "frontier": r.frontier.to_dict(orient="list"),
        "tornado": r.tornado.table.to_dict(orient="list"),
    }
    return template.render(
        sentences=planner_sentences(r),
        name=r.instance_name,
        currency=r.currency,
        status=f"Plan status: {r.plan.status.describe()}; solved by {engine_words(r.plan.status.engine)}",
        n_scenarios=len(r.plan.data.scenarios),
        glossary=[(name, plain, meaning) for name, (plain, meaning) in GLOSSARY.items()],
        kpis=kpis,
        warnings=[w.message for w in r.plan.warnings],
        monitor=r.monitor.text().splitlines() if r.monitor is not None else [],
        monitor_table=Markup(_html_table(r.monitor.by_depot)) if r.monitor is not None else "",
        marginal=Markup(_html_table(r.marginal_values[r.marginal_values["shadow_price"] != 0], cur)
                        if (r.marginal_values["shadow_price"] != 0).any() else "<p>No budget or cap binds.</p>"),
        channels=Markup(_html_table(channels, cur)),
        bonuses=Markup(_html_table(r.plan.bonuses, cur)) if r.plan.data.signon_bonus is not None else "",
        targets=Markup(_html_table(_targets_shown(r.plan.targets), cur)) if len(r.plan.targets) else "",
        service=Markup(_html_table(r.plan.service[["depot", "region", "service_level", "driver_utilisation",
                                                   "blocks_per_driver_week", "demand_blocks", "unserved_blocks",
                                                   "idle_blocks"]], cur)),
        frontier=Markup(_html_table(r.frontier, cur)),
        service_frontier=Markup(_html_table(r.service_frontier, cur)) if r.service_frontier is not None else "",
        tornado=Markup(_html_table(r.tornado.table, cur)),
        change=f"{r.tornado.table['change'].abs().max():.0%}",
        vss=Markup(_html_table(vss, cur)),
        oos=oos,
        oos_cost=f"{oos['expected_cost']:,.2f}",
        oos_ci=f"{oos['ci95_low']:,.2f} to {oos['ci95_high']:,.2f}",
        oos_in=f"{oos['in_sample_expected_cost']:,.2f}",
        oos_service=f"{oos['service_level_mean']:.2%}",
        plots=plots,
        data_json=Markup(json_text(_jsonable(data), indent=None, sort_keys=True).rstrip("\n").replace("</", "<\\/")),
    )


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return None if not math.isfinite(float(obj)) else float(f"{float(obj):.12g}")
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def write_report(r: Report, out) -> list[str]:
    """Render everything in memory, then write report.html, the CSV tables and
    report.json into ``out`` (each file atomically)."""
    files: dict[str, str] = {"report.html": render_html(r)}
    for name, df in r.tables().items():
        files[name] = csv_text(df)
    files["report.json"] = json_text(_jsonable({
        "instance": r.instance_name, "currency": r.currency, "status": r.plan.status.to_dict(),
        "kpis": r.plan.kpis, "stochastic_values": r.stochastic_values, "out_of_sample": r.out_of_sample,
        "warnings": [w.to_dict() for w in r.plan.warnings],
        **({"monitor": r.monitor.summary()} if r.monitor is not None else {}),
    }))
    write_files(out, files)
    return sorted(files)
