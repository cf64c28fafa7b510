"""The Plan: what a solve returns, as tidy pandas tables, KPIs and files.

A plan holds the first-stage decisions (what the planner acts on), the solver's values of
the derived and second-stage quantities, the solver status and the timings. Its tables are
computed from those arrays on demand; ``write`` renders every file first and then writes
each one atomically, so a failure never leaves half a plan on disk. Money is in
``plan.currency``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd

from formulations.data import Decisions, ModelData
from formulations.two_stage.bonus import base_channel, bonus_marginal_cost, signon_drivers
from formulations.two_stage.budgets import budget_usage, spend, spend_price
from formulations.two_stage.drivers import driver_weeks
from formulations.two_stage.layout import BUDGET_FAMILIES, Layout
from formulations.two_stage.risk import cvar
from formulations.two_stage.service import (
    TARGET_FAMILIES,
    region_targets,
    scenario_shortfall,
    service_kpis,
    target_rows,
)
from optplan.evaluation.evaluator import Evaluation, evaluate_decisions
from optplan.explain.presentation import engine_words, term
from optplan.io.atomic import csv_text, json_text, write_files
from optplan.io.schema import Guards
from optplan.planning.guards import PlanWarning, plausibility
from optplan.planning.orders import Orders
from optplan.planning.overrides import OverrideCost
from optplan.solvers.base import CLEAN_ATOL, SolveResult, SolverStatus, Timings, clean_array, clean_decisions

#: Quantiles of demand over scenarios reported per depot and week (probability-weighted).
QUANTILES = (0.1, 0.5, 0.9)
#: Relative tolerance under which a budget counts as binding (used = cap).
BINDING_RTOL = 1e-7
#: Values of magnitude below this are written as 0 (solver noise, e.g. 1e-13 applicants).


def weighted_quantile(values: np.ndarray, probability: np.ndarray, q: float) -> np.ndarray:
    """Probability-weighted quantile over the last axis (inverse of the weighted CDF:
    the smallest value whose cumulative probability reaches q)."""
    order = np.argsort(values, axis=-1, kind="stable")
    sorted_values = np.take_along_axis(values, order, axis=-1)
    cum = np.cumsum(probability[order], axis=-1)
    idx = np.argmax(cum >= q - 1e-12, axis=-1)
    return np.take_along_axis(sorted_values, idx[..., None], axis=-1)[..., 0]


def _clean_evaluation(ev: Evaluation) -> Evaluation:
    arrays = ("recruited_arrivals", "active_drivers", "capacity_blocks", "surge_blocks", "unserved_blocks", "idle_blocks")
    return replace(ev, **{k: clean_array(getattr(ev, k)) for k in arrays})


@dataclass
class Plan:
    """A recruiting and incentive plan with its expected outcome.

    The first-stage decisions come from the engine; drivers, capacity, recourse, costs and
    KPIs are the evaluator's (the numpy kernels of formulations/), the same for every
    engine; budget shadow prices come from the engine's duals where it has them."""

    name: str
    start_date: pd.Timestamp
    data: ModelData
    status: SolverStatus
    timings: Timings
    size: dict[str, int]
    decisions: Decisions
    evaluation: Evaluation
    budget_duals: dict[tuple[str, str], float]  # (scope, key) -> row dual (currency per currency)
    target_duals: dict[str, np.ndarray] = field(default_factory=dict)  # target family -> row duals (currency per block)
    guards: Guards = field(default_factory=Guards)  # the instance's plausibility thresholds
    # the planner's committed decisions (decisions.csv) beside the plan, and what they cost
    # (optplan.planning.overrides; set by optplan.solve); None: no decisions
    overrides: pd.DataFrame | None = None
    override_cost: OverrideCost | None = None
    # whole orders for the first weeks (optplan.planning.orders; set by optplan.solve with orders_weeks)
    orders: Orders | None = None
    # wall-clock seconds by phase of optplan.solve (model data, the engine's build, hand-off,
    # solve and extraction, the plan's evaluation, overrides, orders); not written to files
    phases: dict[str, float] = field(default_factory=dict)

    @cached_property
    def warnings(self) -> list[PlanWarning]:
        """The plausibility guards that fire on this plan (optplan/planning/guards.py)."""
        return plausibility(self, self.guards)

    @property
    def currency(self) -> str:
        return self.data.currency

    @property
    def engine(self) -> str:
        return self.status.engine

    @property
    def recruited_arrivals(self) -> np.ndarray:
        return self.evaluation.recruited_arrivals

    @property
    def active_drivers(self) -> np.ndarray:
        return self.evaluation.active_drivers

    @property
    def capacity_blocks(self) -> np.ndarray:
        return self.evaluation.capacity_blocks

    @property
    def surge_blocks(self) -> np.ndarray:
        return self.evaluation.surge_blocks

    @property
    def unserved_blocks(self) -> np.ndarray:
        return self.evaluation.unserved_blocks

    @property
    def idle_blocks(self) -> np.ndarray:
        return self.evaluation.idle_blocks

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_result(cls, result: SolveResult, name: str, start_date, guards: Guards | None = None) -> Plan:
        """The plan of an engine's result: its decisions (cleaned of solver noise) evaluated
        by the kernels, its budget duals keyed through ``Layout``."""
        data = result.data
        decisions = clean_decisions(data, result.decisions)
        known = result.extra.get("evaluation")  # solve_data's, when it evaluated the plan to cost it
        same = known is not None and all(np.array_equal(a, b) for a, b in zip(
            (known[0].applicants, known[0].incentive_spend), (decisions.applicants, decisions.incentive_spend), strict=True))
        evaluation = known[1] if same else evaluate_decisions(data, decisions)
        return cls(
            name=name,
            start_date=pd.Timestamp(start_date),
            data=data,
            status=result.status,
            timings=result.timings,
            size=dict(result.size),
            decisions=decisions,
            evaluation=_clean_evaluation(evaluation),
            budget_duals=Layout(data).budget_duals(result.duals),
            target_duals={f: np.asarray(result.duals[f], float) for f in TARGET_FAMILIES if f in (result.duals or {})},
            guards=guards or Guards(),
        )

    def __repr__(self) -> str:
        return (f"Plan({self.name!r}, {self.status.describe()}, engine {self.engine!r}, "
                f"expected cost {self.cost['total']:,.2f} {self.currency})")

    def _repr_html_(self) -> str:
        """Notebook display: the status line, the cost by component and the KPIs."""

        def table(rows):
            return "<table>" + "".join(f"<tr><td>{escape(k)}</td><td style='text-align:right'>{v}</td></tr>"
                                       for k, v in rows) + "</table>"

        cost = [(k, f"{v:,.2f} {self.currency}") for k, v in self.cost.items()]
        kpis = [(k, f"{v:.2%}" if k.endswith("share") or k == "service_level" else f"{v:,.2f}")
                for k, v in self.kpis.items() if np.isfinite(v)]
        return (f"<div><b>Plan {escape(self.name)}</b>: {escape(self.status.describe())}; engine "
                f"{escape(self.engine)}<br>expected cost by component{table(cost)}KPIs{table(kpis)}</div>")

    # ------------------------------------------------------------------ helpers
    def _weeks(self) -> np.ndarray:
        """(T,) week number of each period: 1..T, or each long-lead period's first week."""
        return self.data.period_starts()

    def _period_columns(self, tt: np.ndarray) -> dict:
        """week, week_start (and weeks, for long-lead periods) of period positions ``tt``."""
        week = self._weeks()[tt]
        return {"week": week, "week_start": self._week_start(week),
                **({"weeks": self.data.period_length.astype(int)[tt]} if self.data.has_periods else {})}

    def _lengths(self, repeat: int = 1) -> dict:
        """{"weeks": weeks in each period} for tables of a long-lead instance (each period
        repeated ``repeat`` times, depot by depot), else nothing."""
        if not self.data.has_periods:
            return {}
        return {"weeks": np.tile(self.data.period_length.astype(int), repeat)}

    def _week_start(self, week) -> pd.Series:
        return (self.start_date + pd.to_timedelta((np.asarray(week) - 1) * 7, unit="D")).strftime("%Y-%m-%d")

    def _expect(self, a: np.ndarray) -> np.ndarray:
        """Expectation over scenarios of a (D, T, S) array."""
        return np.einsum("dts,s->dt", a, self.data.probability)

    # ------------------------------------------------------------------ tables
    @cached_property
    def applicants(self) -> pd.DataFrame:
        """Applicants to recruit per depot, channel and week (rows with applicants > 0)."""
        d = self.data
        D, C, T, _ = d.shape
        x = self.decisions.applicants
        dd, cc, tt = np.nonzero(x > 0)
        return pd.DataFrame({
            "depot": np.asarray(d.depots)[dd],
            "channel": np.asarray(d.channels)[cc],
            **self._period_columns(tt),
            "applicants": x[dd, cc, tt],
            "cost": x[dd, cc, tt] * d.cost_per_applicant[cc],
            "currency": d.currency,
            "expected_new_drivers": x[dd, cc, tt] * d.conversion()[cc],
            **({"signon_bonus": d.signon_bonus[cc], "expected_bonus_paid": x[dd, cc, tt] * d.signon_bonus[cc]
                * d.conversion()[cc]} if d.signon_bonus is not None else {}),
            **({"planner": _rule_words(d.applicants_min, d.applicants_max, (dd, cc, tt))} if d.has_decisions else {}),
        })

    @cached_property
    def bonuses(self) -> pd.DataFrame:
        """Each sign-on bonus level of the menu (bonuses.csv) and what the plan does with it, summed
        over depots and weeks: applicants offered it, drivers expected to convert under it and the
        bonus money expected to be paid (currency; part of the recruiting cost). ``cost_per_unit``
        is the marginal value: what raising that level's bonus by one currency unit per driver adds to
        the optimal expected cost (its drivers, times 1 + the shadow prices of the budgets the bonus is
        spent under; bonus.bonus_marginal_cost), NaN (empty) from an engine without duals."""
        d = self.data
        if d.signon_bonus is None:
            return pd.DataFrame(columns=["channel", "signon_bonus", "currency", "conversion_uplift", "applicant_uplift",
                                         "applicants", "expected_drivers", "expected_bonus_paid", "cost_per_unit"])
        levels = np.flatnonzero(d.signon_bonus > 0)
        x = self.decisions.applicants.sum(axis=(0, 2))[levels]
        drivers = signon_drivers(d, self.decisions.applicants).sum(axis=(0, 2))[levels]
        marginal = bonus_marginal_cost(d, self.decisions.applicants, spend_price(d, self.budget_duals))[levels]
        names = np.asarray(d.channels)[levels]
        base = np.asarray(d.applicant_pool)[levels]  # the channel's own position (its pool id)
        conv, cap = d.conversion(), d.applicant_cap.max(axis=0)
        return pd.DataFrame({
            "channel": [base_channel(n) for n in names],
            "signon_bonus": d.signon_bonus[levels],
            "currency": d.currency,
            "conversion_uplift": conv[levels] / np.where(conv[base] > 0, conv[base], 1.0) - 1.0,
            "applicant_uplift": np.where(np.isfinite(cap[base]) & (cap[base] > 0),
                                         cap[levels] / np.where(np.isfinite(cap[base]) & (cap[base] > 0), cap[base], 1.0)
                                         - 1.0, 0.0),
            "applicants": x,
            "expected_drivers": drivers,
            "expected_bonus_paid": drivers * d.signon_bonus[levels],
            "cost_per_unit": clean_array(np.where(drivers > 0, marginal, 0.0)),
        })

    @cached_property
    def incentives(self) -> pd.DataFrame:
        """Planned incentive spend per depot, week and segment (rows with spend > 0)."""
        d = self.data
        z = self.decisions.incentive_spend
        dd, tt, gg = np.nonzero(z > 0)
        return pd.DataFrame({
            "depot": np.asarray(d.depots)[dd],
            **self._period_columns(tt),
            "segment": gg + 1,
            "spend": z[dd, tt, gg],
            "currency": d.currency,
            "extra_blocks": z[dd, tt, gg] * d.incentive_rate[dd, gg],
            **({"planner": _rule_words(d.incentive_min, d.incentive_max, (dd, tt))} if d.has_decisions else {}),
        })

    @cached_property
    def drivers(self) -> pd.DataFrame:
        """Expected drivers per depot and week: recruited arrivals, pipeline, active."""
        d = self.data
        D, _, T, _ = d.shape
        return pd.DataFrame({
            "depot": np.repeat(d.depots, T),
            "region": np.repeat(d.regions, T),
            "week": np.tile(self._weeks(), D),
            "week_start": np.tile(self._week_start(self._weeks()), D),
            **self._lengths(D),
            "new_drivers_recruited": self.recruited_arrivals.ravel(),
            "new_drivers_pipeline": d.pipeline.ravel(),
            "active_drivers": self.active_drivers.ravel(),
        })

    @cached_property
    def service(self) -> pd.DataFrame:
        """Both customers per depot, over the horizon in expectation: customers' service level
        (share of demand served) and drivers' utilisation (share of offered blocks worked) and
        blocks worked per active driver-week (formulations/two_stage/service.py)."""
        e = self.evaluation
        k = service_kpis(self.data.demand, e.unserved_blocks, e.idle_blocks, e.capacity_blocks,
                         driver_weeks(self.data, e.active_drivers), self.data.probability)
        return pd.DataFrame({"depot": list(self.data.depots), "region": list(self.data.regions), **k})

    @cached_property
    def targets(self) -> pd.DataFrame:
        """Each service, utilisation or earnings target: the target and what the plan achieves
        (shares; for ``blocks_per_driver`` rows blocks per active driver-week, by the
        evaluator), whether it binds, and its cost: the expected cost saved per percentage
        point the target is lowered (for blocks per driver: per 1% of the floor) (currency; the
        LP dual times the row's sensitivity to the target, d cost / d target = dual x E[demand]
        for a service row, dual x planned capacity for a utilisation row, dual x driver-weeks
        for an earnings row (envelope theorem); empty without duals, e.g. DP or MIP)."""
        rows = target_rows(self.data)
        svc = self.service
        cols = ["target", "scope", "depot", "target_share", "achieved_share", "binding", "cost_per_point", "currency"]
        out = []
        shortfall = scenario_shortfall(self.data, self.data.demand, self.evaluation.unserved_blocks)  # (D, S) blocks
        for family, (depots, _const) in rows.items():
            duals = self.target_duals.get(family)
            for i, d in enumerate(depots):
                if family == "network_service_target":
                    target, achieved, scale = float(self.data.network_service_target), self.kpis["service_level"], \
                        float(svc["demand_blocks"].sum())
                    scope, depot = "network", ""
                elif family == "region_service_target":
                    name, share, members = (v[d] for v in region_targets(self.data))
                    demand = float(svc["demand_blocks"].iloc[members].sum())
                    served = float((svc["demand_blocks"] * svc["service_level"]).iloc[members].sum())
                    target, achieved, scale = float(share), served / demand if demand > 0 else 1.0, demand
                    scope, depot = "region", name
                elif family == "service_target":
                    target, achieved = float(self.data.service_target[d]), float(svc["service_level"].iloc[d])
                    scale, scope, depot = float(svc["demand_blocks"].iloc[d]), "depot", self.data.depots[d]
                elif family == "utilisation_floor":
                    target, achieved = float(self.data.utilisation_floor[d]), float(svc["driver_utilisation"].iloc[d])
                    scale, scope, depot = float(svc["capacity_blocks"].iloc[d]), "depot", self.data.depots[d]
                elif family == "service_cvar_bound":  # bad weeks: the share of scenarios meeting y_d
                    short = shortfall[d]
                    target = float(self.data.scenario_service_share)
                    achieved = float(self.data.probability[short <= 1e-7].sum())
                    scale, scope, depot = float("nan"), "depot", self.data.depots[d]
                    if self.data.scenario_service_form == "chance":  # one met scenario fewer would break it
                        met = self.data.probability[short <= 1e-7]
                        binds = len(met) > 0 and achieved - float(met.min()) < target - 1e-12
                    else:  # the CVaR row is tight
                        binds = cvar(short, self.data.probability, target) >= -1e-6 * max(1.0, abs(short).max())
                else:  # earnings floor, blocks per driver-week: a 'point' is 1% of the floor
                    target, achieved = float(self.data.earnings_floor[d]), float(svc["blocks_per_driver_week"].iloc[d])
                    scale = float(svc["driver_weeks"].iloc[d]) * target
                    scope, depot = "depot", self.data.depots[d]
                kind = {"utilisation_floor": "driver_utilisation", "earnings_floor": "blocks_per_driver",
                        "service_cvar_bound": "bad_week_service"}.get(family, "service_level")
                price = abs(float(duals[i])) * scale / 100.0 if duals is not None and len(duals) > i else float("nan")
                if family != "service_cvar_bound":
                    binds = achieved <= target + 1e-7
                out.append((kind, scope, depot, target, achieved, bool(binds), price, self.currency))
        return pd.DataFrame(out, columns=cols)

    @cached_property
    def capacity(self) -> pd.DataFrame:
        """Planned capacity against demand per depot and week: demand mean and
        probability-weighted P10/P50/P90 over scenarios, expected recourse."""
        d = self.data
        D, _, T, _ = d.shape
        p = d.probability
        demand = d.demand
        out = {
            "depot": np.repeat(d.depots, T),
            "week": np.tile(self._weeks(), D),
            "week_start": np.tile(self._week_start(self._weeks()), D),
            **self._lengths(D),
            "capacity_blocks": self.capacity_blocks.ravel(),
            "demand_mean": self._expect(demand).ravel(),
        }
        for q in QUANTILES:
            out[f"demand_p{int(round(q * 100))}"] = weighted_quantile(demand, p, q).ravel()
        unserved = self._expect(self.unserved_blocks)
        mean_demand = self._expect(demand)
        out["expected_surge_blocks"] = self._expect(self.surge_blocks).ravel()
        out["expected_unserved_blocks"] = unserved.ravel()
        out["expected_idle_blocks"] = self._expect(self.idle_blocks).ravel()
        with np.errstate(invalid="ignore", divide="ignore"):
            out["service_level"] = np.where(mean_demand > 0, 1 - unserved / mean_demand, 1.0).ravel()
        return pd.DataFrame(out)

    def _spend_arrays(self):
        return spend(self.data, self.decisions)

    @cached_property
    def spend_by_week(self) -> pd.DataFrame:
        d = self.data
        r, i = self._spend_arrays()
        return pd.DataFrame({
            "week": self._weeks(),
            "week_start": self._week_start(self._weeks()),
            **self._lengths(),
            "recruiting": r.sum(axis=0),
            "planned_incentives": i.sum(axis=0),
            "total": r.sum(axis=0) + i.sum(axis=0),
            "budget_week": np.where(np.isfinite(d.budget_weekly), d.budget_weekly, np.nan),
            "currency": d.currency,
        })

    @cached_property
    def spend_by_region(self) -> pd.DataFrame:
        d = self.data
        r, i = self._spend_arrays()
        frame = pd.DataFrame({"region": d.regions, "recruiting": r.sum(axis=1), "planned_incentives": i.sum(axis=1)})
        out = frame.groupby("region", sort=True, as_index=False).sum()
        out["total"] = out["recruiting"] + out["planned_incentives"]
        out["budget_region"] = out["region"].map(d.budget_region).astype(float)
        out["currency"] = d.currency
        return out

    @cached_property
    def spend_by_country(self) -> pd.DataFrame:
        """Planned spend per country in the reporting currency and in the country's own
        (spend / fx_rate); empty for an instance of one country."""
        d = self.data
        cols = ["country", "local_currency", "fx_rate", "recruiting", "planned_incentives", "total", "total_local",
                "budget_country", "currency"]
        if d.depot_country is None:
            return pd.DataFrame(columns=cols)
        r, i = self._spend_arrays()
        frame = pd.DataFrame({"country": d.depot_country, "local_currency": d.depot_currency, "fx_rate": d.depot_fx,
                              "recruiting": r.sum(axis=1), "planned_incentives": i.sum(axis=1)})
        out = frame.groupby(["country", "local_currency", "fx_rate"], sort=True, as_index=False).sum()
        out["total"] = out["recruiting"] + out["planned_incentives"]
        out["total_local"] = out["total"] / out["fx_rate"]
        out["budget_country"] = out["country"].map(d.budget_country).astype(float)
        out["currency"] = d.currency
        return out[cols]

    @cached_property
    def budgets(self) -> pd.DataFrame:
        """Every budget cap: used, slack, binding, and its shadow price (currency of expected
        cost saved per extra currency unit of budget; NaN where duals are unavailable)."""
        d = self.data

        def dual_of(scope: str, key) -> float:
            # the LP minimises, so a <= budget row's dual is <= 0: saved cost per unit is -dual
            dual = self.budget_duals.get((scope, str(key)))
            return float("nan") if dual is None else -dual + 0.0

        rows = []
        for family, (keys, used, caps) in budget_usage(d, self.decisions, every_cap=True).items():
            scope = BUDGET_FAMILIES[family]
            for key, u, cap in zip(keys, used, caps, strict=True):
                shown = str(self._weeks()[int(key) - 1]) if scope == "week" else key  # a period by its first week
                rows.append((scope, shown, float(cap), float(u), dual_of(scope, key)))
        df = pd.DataFrame(rows, columns=["scope", "key", "cap", "used", "shadow_price"])
        slack = (df["cap"] - df["used"]).to_numpy(float)
        # summation-order noise (|slack| below CLEAN_ATOL of the cap) is written as 0
        df["slack"] = np.where(np.abs(slack) < CLEAN_ATOL * np.maximum(1.0, df["cap"].abs().to_numpy()), 0.0, slack)
        df["binding"] = df["slack"] <= BINDING_RTOL * np.maximum(1.0, df["cap"].abs())
        df["shadow_price"] = clean_array(df["shadow_price"].to_numpy(float))
        df["currency"] = d.currency
        return df[["scope", "key", "cap", "used", "slack", "binding", "shadow_price", "currency"]]

    @property
    def cost(self) -> dict[str, float]:
        """Expected cost by component (currency), from the evaluator."""
        return self.evaluation.cost

    @cached_property
    def kpis(self) -> dict[str, float]:
        """The evaluator's KPIs plus the share of the total budget used."""
        budgets = self.budgets
        total_cap = budgets.loc[budgets["scope"] == "total", "cap"]
        spent = self.evaluation.kpis["first_stage_spend"]
        share = spent / float(total_cap.iloc[0]) if len(total_cap) and total_cap.iloc[0] > 0 else float("nan")
        return {**self.evaluation.kpis, "budget_total_used_share": share}

    def cost_table(self) -> pd.DataFrame:
        return pd.DataFrame({"component": list(self.cost), "expected_cost": list(self.cost.values()), "currency": self.currency})

    # ------------------------------------------------------------------ output
    def summary(self) -> dict:
        """JSON-ready summary (deterministic: no timings, which vary by run)."""
        b = self.budgets
        return {
            "instance": self.name,
            "currency": self.currency,
            "status": self.status.to_dict(),
            "size": dict(self.size),
            "expected_cost": {k: _round(v) for k, v in self.cost.items()},
            "kpis": {k: _round(v) for k, v in self.kpis.items()},
            "binding_budgets": [
                {"scope": s, "key": k, "cap": _round(c), "shadow_price": _round(sp)}
                for s, k, c, sp in b.loc[b["binding"], ["scope", "key", "cap", "shadow_price"]].itertuples(index=False)
            ],
            "warnings": [w.to_dict() for w in self.warnings],
            **({"planner_decisions": self._decisions_summary()} if self.overrides is not None else {}),
            **({"signon_bonuses": [{k: _round(v) if isinstance(v, float) else v for k, v in r.items()}
                                   for r in self.bonuses.to_dict("records")]} if self.data.signon_bonus is not None else {}),
            **({"orders": {k: v for k, v in self.orders.summary().items() if k in ("weeks", "method", "expected_cost",
                                                                                 "repairs")}}
               if self.orders is not None else {}),
        }

    def _decisions_summary(self) -> dict:
        o, cost = self.overrides, self.override_cost
        return {"rows": len(o), "binding": int(o["binding"].sum()),
                "cost": _round(cost.total) if cost is not None else None,
                "cost_measured": cost.how if cost is not None else "not measured", "currency": self.currency}

    def tables(self) -> dict[str, pd.DataFrame]:
        return {
            "applicants.csv": self.applicants,
            "incentives.csv": self.incentives,
            "drivers.csv": self.drivers,
            "capacity.csv": self.capacity,
            "service.csv": self.service,
            "targets.csv": self.targets,
            "spend_by_week.csv": self.spend_by_week,
            "spend_by_region.csv": self.spend_by_region,
            **({"spend_by_country.csv": self.spend_by_country} if self.data.depot_country is not None else {}),
            "budgets.csv": self.budgets,
            "cost.csv": self.cost_table(),
            **({"decisions.csv": self.overrides} if self.overrides is not None else {}),
            **({"bonuses.csv": self.bonuses} if self.data.signon_bonus is not None else {}),
        }

    def render(self) -> dict[str, str]:
        """Every output file's content, rendered in memory (the orders in orders/)."""
        files = {}
        for name, df in self.tables().items():
            files[name] = csv_text(df)
        files["summary.json"] = json_text(self.summary())
        if self.orders is not None:
            files.update(self.orders.render("orders/"))
        return files

    def write(self, out: str | Path) -> list[Path]:
        """Write the plan's CSV tables and summary.json into ``out`` (created if needed)."""
        files = self.render()
        write_files(out, files)
        return [Path(out) / n for n in files]

    def text_summary(self) -> str:
        c, k, s = self.cost, self.kpis, self.status
        cur = self.currency
        lines = [
            f"plan for {self.name}: {s.describe()}; solved by {engine_words(s.engine)}",
            f"  expected cost over the plan's {len(self.data.scenarios)} demand scenarios (in-sample) {c['total']:,.2f} {cur}"
            f" = recruiting {c['recruiting']:,.2f} + incentives "
            f"{c['planned_incentives']:,.2f} + surge {c['surge']:,.2f} + unserved {c['unserved_penalty']:,.2f} "
            f"+ idle {c['idle_penalty']:,.2f}"
            + (f" - terminal credit {-c['terminal_value']:,.2f} (drivers left at the end)" if "terminal_value" in c else ""),
            f"  service level {k['service_level']:.2%}, expected unserved {k['expected_unserved_blocks']:,.1f} blocks, "
            f"idle {k['expected_idle_blocks']:,.1f} blocks; {k['applicants_total']:,.1f} applicants",
            f"  drivers: {k['driver_utilisation']:.2%} of offered blocks worked, {k['blocks_per_driver_week']:,.2f} blocks "
            f"per active driver-week",
            f"  {term('CVaR')}: {k['cvar_cost']:,.2f} {cur} on average over the worst {1 - k['cvar_alpha']:.0%} of "
            "scenarios",
        ]
        if self.data.has_periods:
            L = self.data.period_length
            how = ("each period's recourse settled week by week against its weekly demand, capacity even within it"
                   if self.data.has_week_profile else
                   "demand and capacity taken as even within a period, so weeks inside a period net out and the "
                   "cost reads below a weekly model's (give demand.csv by week to settle it week by week)")
            lines.append(f"  long-lead periods ({len(L)} of {int(L.min())}-{int(L.max())} weeks): {how}; act on the "
                         "weekly periods (docs/formulation.md, \"Long-lead periods\")")
        for row in self.spend_by_country.itertuples(index=False):
            lines.append(f"  {row.country}: spend {row.total:,.2f} {cur} = {row.total_local:,.2f} {row.local_currency} "
                         f"(1 {row.local_currency} = {row.fx_rate:g} {cur})")
        b = self.budgets
        lam = float(self.data.cvar_weight)
        of = "of expected cost" if lam == 0 else f"of the objective ({1 - lam:g} x expected cost + {lam:g} x CVaR)"
        for row in b.loc[b["binding"]].itertuples(index=False):
            scope = "total budget" if row.scope == "total" else f"budget of {row.scope} {row.key}"
            mip = self.data.integer_applicants or self.data.has_chance_targets
            price = (f"one more {cur} saves {row.shadow_price:,.4f} {cur} {of}" if np.isfinite(row.shadow_price)
                     else "no shadow price (a MIP has none: integer applicants or the bad-week chance form)" if mip
                     else f"no shadow price from {engine_words(self.engine)} (an LP engine gives one)")
            lines.append(f"  {scope} of {row.cap:,.2f} {cur} is fully used: {price}")
        tg = self.targets
        for row in tg.loc[tg["binding"]].itertuples(index=False):
            where = {"network": "the network", "region": f"region {row.depot}"}.get(row.scope, f"depot {row.depot}")
            what = {"service_level": "service level", "driver_utilisation": "driver utilisation",
                    "blocks_per_driver": "blocks-per-driver floor", "bad_week_service": "bad-week service"}[row.target]
            if row.target == "blocks_per_driver":
                level = f"{row.target_share:,.2f} blocks per driver-week"
            elif row.target == "bad_week_service":
                y = float(self.data.scenario_service_level[self.data.depots.index(row.depot)])
                form = "chance" if self.data.scenario_service_form == "chance" else "CVaR"
                level = f"{y:.2%} service in {row.target_share:.0%} of scenarios ({form} form)"
            else:
                level = f"{row.target_share:.2%}"
            point = "1% of it" if row.target == "blocks_per_driver" else "point"
            cost = (f": each {point} lower saves {row.cost_per_point:,.2f} {cur}" if np.isfinite(row.cost_per_point)
                    else "")
            lines.append(f"  {what} target of {where} is met exactly at {level} (binding){cost}")
        for row in self.bonuses.itertuples(index=False):
            lines.append(
                f"  sign-on bonus {row.signon_bonus:,.2f} {cur}/driver on {row.channel}: " + (
                    f"{row.applicants:,.1f} applicants, {row.expected_drivers:,.1f} drivers expected to convert, "
                    f"{row.expected_bonus_paid:,.2f} {cur} expected to be paid (in recruiting); " + (
                        f"each 1 {cur} more per driver would cost {row.cost_per_unit:,.2f} {cur}"
                        if np.isfinite(row.cost_per_unit) else "no marginal value without budget duals")
                    if row.applicants > 0 else
                    "not offered (recruiting without it, or another level, is cheaper)"))
        if self.overrides is not None:
            o, oc = self.overrides, self.override_cost
            cost = (f"together they cost {oc.total:,.2f} {cur} ({oc.how})" if oc is not None and np.isfinite(oc.total)
                    else f"their cost {oc.how if oc is not None else 'not measured'}")
            lines.append(f"  planner's decisions (decisions.csv): {len(o)} rows, {int(o['binding'].sum())} binding; "
                         f"{cost}; each row beside the plan in decisions.csv")
        if self.orders is not None:
            lines.append(self.orders.text())
        if s.message:
            lines.append(f"  {s.message}")
        lines += [f"  warning: {w.message}" for w in self.warnings]
        t = self.timings
        lines.append(f"  solved in {t.solve_s:.2f} s (model built in {t.build_s + t.handoff_s:.2f} s; its size is in "
                     "summary.json)")
        return "\n".join(lines)


#: Applicants within this of whole numbers are a MIP's whole applicants (HiGHS's integrality
#: tolerance is 1e-6 at most); a heuristic's fractional applicants are left as they are.


def _rule_words(low: np.ndarray | None, high: np.ndarray | None, cells: tuple) -> list[str]:
    """Per cell, the planner's rule on it in words ("fixed at 10", "at least 5", "at most 1",
    "between 2 and 8"; "" where none): where a number was set by decisions.csv."""
    n = len(cells[0])
    lo = np.zeros(n) if low is None else low[cells]
    hi = np.full(n, np.inf) if high is None else high[cells]
    out = []
    for a, b in zip(lo, hi, strict=True):
        if np.isfinite(b) and abs(a - b) <= 1e-9 * max(1.0, b):
            out.append(f"fixed at {b:g}")
        elif a > 0 and np.isfinite(b):
            out.append(f"between {a:g} and {b:g}")
        elif a > 0:
            out.append(f"at least {a:g}")
        elif np.isfinite(b):
            out.append(f"at most {b:g}")
        else:
            out.append("")
    return out


def _round(x: float) -> float | None:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return None
    return float(f"{x:.10g}")
