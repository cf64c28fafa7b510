"""Weekly re-planning (issue #13 part 1): from what is known at the start of week k, solve the
rest of the horizon again.

A *state* (a folder: state.yaml and CSV tables, schema in optplan.io.schema, docs/replan.md)
holds the first week to plan ``k``, the drivers active at its start, the applicants recruited
in earlier weeks, optionally the expected arrivals from everyone in onboarding, and the spend
so far. ``remaining_instance`` turns instance + state into an ordinary, validated instance of
weeks k..T (a *shrinking* window: the horizon end stays where it was; week 1 of the new
instance is week k of the old one):

* active drivers at the start: the state's (drivers/week stock at the end of week k-1);
* pipeline (drivers/week, weeks k..T): the state's pipeline table when it has one; otherwise
  the instance's pipeline for weeks >= k plus the expected yield of the recruited applicants,
  by the same kernel the model uses (formulations.two_stage.drivers.recruited_arrivals);
* budgets (currency): total and regional caps less the spend to date (never below 0), the
  weekly list cut to weeks k..T; targets unchanged (they now cover weeks k..T);
* demand scenarios: weeks k..T, probabilities unchanged, or, with a demand_seen table (the
  blocks each depot had in weeks before k), weighted by how likely each scenario makes what
  was seen (``scenario_probabilities``: optplan.evaluation.sampling.ScenarioPosterior with the state's
  demand_noise; scenarios below POSTERIOR_FLOOR dropped): the re-forecast a planner makes
  from realised demand, the simulation's ``rolling_bayes`` policy.

``replan`` solves it with any engine; ``this_week`` lists what to do in week k. Re-planning
at week 1 from the instance's own state is the original solve; from the state a plan
expects at week k (``expected_state``), the plan ahead costs what the original plan's
remaining weeks cost (the principle of optimality; tests/test_replan.py). Warm starts: none
yet (a basis of the T-week model does not map onto the shorter model's rows).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from formulations.two_stage.budgets import total_spend
from formulations.two_stage.drivers import recruited_arrivals
from optplan.api import solve
from optplan.errors import InstanceError, OptionError, Problem
from optplan.evaluation.sampling import (
    DEFAULT_NOISE_AR,
    DEFAULT_NOISE_SD,
    LEVEL_WEEKS,
    UNEXPLAINED_TAIL,
    ScenarioPosterior,
    new_level,
    reforecast_level,
    trusted_probabilities,
)
from optplan.io.atomic import atomic_write_text, csv_text
from optplan.io.inputs import read_csv_strings, read_yaml_mapping
from optplan.io.instance import (
    Instance,
    _check_table,
    _empty_table,
    _Reporter,
    from_tables,
    split_channel,
    table_as_text,
    validated_manifest,
)
from optplan.io.schema import STATE_TABLES, StateFiles, StateManifest
from optplan.planning.plan import Plan

STATE_NAME = "state.yaml"


@dataclass
class State:
    """What is known at the start of week ``week`` (1-based, in the instance's weeks)."""

    week: int
    drivers: pd.DataFrame  # depot, active_drivers (drivers)
    recruited: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["depot", "channel", "week", "applicants"]))
    pipeline: pd.DataFrame | None = None  # depot, week, new_drivers (drivers/week); None: from the kernel
    spend_total: float = 0.0  # currency, weeks before ``week``
    spend_regions: dict[str, float] = field(default_factory=dict)  # per region, in its budget's currency
    spend_countries: dict[str, float] = field(default_factory=dict)  # per country, in its currency
    demand_seen: pd.DataFrame | None = None  # depot, week, blocks (blocks/week) of weeks before ``week``
    noise_sd: float = DEFAULT_NOISE_SD  # log-sd of demand around its scenario (weighting by demand_seen)
    noise_ar: float = DEFAULT_NOISE_AR  # its week-to-week correlation

    def write(self, folder: str | Path) -> Path:
        """Write the state as a folder (state.yaml + CSVs), each file atomically."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        files = {"drivers": "drivers.csv", "recruited": "recruited.csv",
                 "pipeline": "pipeline.csv" if self.pipeline is not None else None,
                 **({"demand_seen": "demand_seen.csv"} if self.demand_seen is not None else {})}
        manifest = {"format_version": 1, "week": int(self.week),
                    "spend_to_date": {"total": float(self.spend_total),
                                      "regions": {k: float(v) for k, v in self.spend_regions.items()},
                                      **({"countries": {k: float(v) for k, v in self.spend_countries.items()}}
                                         if self.spend_countries else {})},
                    **({"demand_noise": {"sd": float(self.noise_sd), "ar": float(self.noise_ar)}}
                       if self.demand_seen is not None else {}),
                    "files": files}
        atomic_write_text(folder / "drivers.csv", csv_text(self.drivers[["depot", "active_drivers"]]))
        atomic_write_text(folder / "recruited.csv", csv_text(self.recruited[["depot", "channel", "week", "applicants"]]))
        if self.pipeline is not None:
            atomic_write_text(folder / "pipeline.csv", csv_text(self.pipeline[["depot", "week", "new_drivers"]]))
        if self.demand_seen is not None:
            atomic_write_text(folder / "demand_seen.csv", csv_text(self.demand_seen[["depot", "week", "blocks"]]))
        atomic_write_text(folder / STATE_NAME, yaml.safe_dump(manifest, sort_keys=False))
        return folder


# ------------------------------------------------------------------ reading and checking


def refuse_periods(instance: Instance) -> None:
    """Re-planning steps week by week: an instance in long-lead periods raises OptionError."""
    if instance.period_weeks is not None:
        raise OptionError("instance", "a weekly instance to re-plan (re-planning steps week by week; this one has "
                          "long-lead periods, horizon.periods: re-plan its weekly version)", "horizon.periods")


def load_state(path: str | Path, instance: Instance) -> State:
    """Read and check a state folder (or its state.yaml) against ``instance``; raises
    InstanceError listing every problem (file, line, field, expected, found)."""
    path = Path(path)
    folder = path.parent if path.suffix in (".yaml", ".yml") else path
    manifest_path = path if path.suffix in (".yaml", ".yml") else path / STATE_NAME
    refuse_periods(instance)
    if not folder.is_dir():  # named as the user gave it, not by the file inside it
        raise InstanceError([Problem(str(path), None, None, "a state folder (with state.yaml) made by optplan state "
                                     "or by hand, see docs/replan.md", "no such folder" if not folder.exists()
                                     else "a file, not a folder")])
    raw = read_yaml_mapping(manifest_path, "a replan state file (state.yaml)", STATE_NAME)
    manifest = validated_manifest(StateManifest, raw, STATE_NAME)
    problems: list[Problem] = []
    tables = {}
    for spec in STATE_TABLES:
        explicit = getattr(manifest.files, spec.name)
        name = explicit or StateFiles.model_fields[spec.name].default or f"{spec.name}.csv"
        file = folder / name
        if not spec.required and explicit is None and not file.exists():
            tables[spec.name] = None
            continue
        try:
            df = read_csv_strings(file, f"the state's {spec.name} table (CSV file)", name)
            df.attrs["file"] = name
            tables[spec.name] = df
        except InstanceError as exc:
            problems.extend(exc.problems)
    if problems:
        raise InstanceError(problems)
    return _check_state(manifest, tables, instance)


def state_from_tables(manifest: StateManifest | dict, tables: dict[str, pd.DataFrame | None], instance: Instance) -> State:
    """A state given in memory (the Python API), checked as files would be."""
    manifest = validated_manifest(StateManifest, manifest, STATE_NAME)
    raw = {spec.name: None if tables.get(spec.name) is None else table_as_text(tables[spec.name], f"{spec.name}.csv")
           for spec in STATE_TABLES}
    return _check_state(manifest, raw, instance)


def model_channels(data, depot_rows: np.ndarray, channels) -> np.ndarray:
    """Positions in ``data.channels`` of instance channel ids at the given depot rows (the
    country's split channel where channels are split per country)."""
    if data.channel_source is None:
        wanted = list(channels)
    else:
        wanted = [split_channel(c, data.depot_country[d]) for d, c in zip(depot_rows, channels, strict=True)]
    return pd.Index(list(data.channels)).get_indexer(wanted)


def _check_state(manifest: StateManifest, raw: dict, instance: Instance) -> State:
    report = _Reporter([])
    typed = {}
    T = instance.n_weeks
    k = manifest.week
    if k > T:
        report.add(STATE_NAME, None, "week", f"a week in 1..{T} (the instance's horizon.weeks)", str(k))
    for spec in STATE_TABLES:
        df = raw.get(spec.name)
        if df is None:
            if spec.required:
                report.add(f"{spec.name}.csv", None, None, f"the state's {spec.name} table", "none")
                df = _empty_table(spec)
            else:
                typed[spec.name] = None
                continue
        table, ok = _check_table(df, spec, report)
        typed[spec.name] = table.loc[ok]
    depots, channels = set(instance.depots), set(instance.channels)

    def unknown(name: str, column: str, known: set, what: str) -> None:
        df = typed.get(name)
        if df is None or df.empty:
            return
        bad = ~df[column].isin(known)
        report.add_many(df.attrs.get("file", f"{name}.csv"), column, df.loc[bad, "_line"],
                        f"a {what} id of the instance", [f"unknown {what} '{x}'" for x in df.loc[bad, column]])

    for name in ("drivers", "recruited", "pipeline", "demand_seen"):
        unknown(name, "depot", depots, "depot")
    seen = typed.get("demand_seen")
    if seen is not None and len(seen):
        late = seen["week"] >= k
        report.add_many(seen.attrs.get("file", "demand_seen.csv"), "week", seen.loc[late, "_line"],
                        f"a week before the state's week {k} (demand that has been seen)", seen.loc[late, "week"].astype(str))
    unknown("recruited", "channel", channels, "channel")
    drivers = typed["drivers"]
    missing = sorted(depots - set(drivers["depot"]))
    if missing:
        report.add(drivers.attrs.get("file", "drivers.csv"), None, "depot", "a row for every depot of the instance",
                   f"no row for {', '.join(missing[:10])}" + (" ..." if len(missing) > 10 else ""))
    rec = typed.get("recruited")
    if rec is not None and len(rec):
        late = rec["week"] >= k
        report.add_many(rec.attrs.get("file", "recruited.csv"), "week", rec.loc[late, "_line"],
                        f"a week before the state's week {k} (recruiting that has happened)", rec.loc[late, "week"].astype(str))
    pip = typed.get("pipeline")
    if pip is not None and len(pip):
        out = (pip["week"] < k) | (pip["week"] > T)
        report.add_many(pip.attrs.get("file", "pipeline.csv"), "week", pip.loc[out, "_line"],
                        f"a week in {k}..{T} (arrivals still to come)", pip.loc[out, "week"].astype(str))
    regions = set(instance.tables["depots"]["region"])
    for region in manifest.spend_to_date.regions:
        if region not in regions:
            report.add(STATE_NAME, None, f"spend_to_date.regions.{region}", "a region of the instance's depots",
                       f"unknown region '{region}'")
    countries = set(instance.tables["countries"]["country"])
    for country in manifest.spend_to_date.countries:
        if country not in countries:
            report.add(STATE_NAME, None, f"spend_to_date.countries.{country}", "a country of the instance's country table",
                       f"unknown country '{country}'")
    if report.problems or report.omitted:
        raise InstanceError(report.problems, report.omitted)
    recruited = (rec.drop(columns="_line") if rec is not None
                 else pd.DataFrame(columns=["depot", "channel", "week", "applicants"]))
    return State(
        week=k,
        drivers=drivers.drop(columns="_line").reset_index(drop=True),
        recruited=recruited.reset_index(drop=True),
        pipeline=None if pip is None else pip.drop(columns="_line").reset_index(drop=True),
        spend_total=manifest.spend_to_date.total,
        spend_regions=dict(manifest.spend_to_date.regions),
        spend_countries=dict(manifest.spend_to_date.countries),
        demand_seen=None if seen is None else seen.drop(columns="_line").reset_index(drop=True),
        noise_sd=manifest.demand_noise.sd,
        noise_ar=manifest.demand_noise.ar,
    )


# ------------------------------------------------------------------ the state a plan expects


def initial_state(instance: Instance) -> State:
    """The instance's own state at week 1: its drivers, nothing recruited or spent."""
    dep = instance.tables["depots"]
    return State(week=1, drivers=dep[["depot", "active_drivers"]].copy())


def expected_state(instance: Instance, plan: Plan, week: int) -> State:
    """The state ``plan`` expects at the start of ``week`` if everything goes as planned:
    its expected drivers at the end of week-1, its applicants of weeks 1..week-1, its spend
    (currency) in those weeks. A template for the planner to overwrite with what happened."""
    refuse_periods(instance)
    T = instance.n_weeks
    if not 1 <= week <= T:
        raise OptionError("--week", f"a week in 1..{T}", week)
    d = plan.data
    active = plan.evaluation.active_drivers  # (D, T) drivers at the end of each week
    start = d.initial_active if week == 1 else active[:, week - 2]
    drivers = pd.DataFrame({"depot": list(d.depots), "active_drivers": start})
    x = plan.decisions.applicants[:, :, : week - 1]  # (D, C, k-1)
    D, C, K = x.shape
    dd, cc, tt = np.meshgrid(np.arange(D), np.arange(C), np.arange(K), indexing="ij")
    recruited = pd.DataFrame({"depot": np.asarray(d.depots)[dd.ravel()],
                              "channel": np.asarray(d.channel_source or d.channels)[cc.ravel()],
                              "week": tt.ravel() + 1, "applicants": x.ravel()})
    recruited = recruited[recruited["applicants"] > 0].reset_index(drop=True)
    spend_dw = total_spend(d, plan.decisions.applicants, plan.decisions.incentive_spend)[:, : week - 1]  # (D, k-1) currency
    # spend so far in each budget's own currency: a region's or country's local one (spend / fx)
    fx = d.depot_fx if d.depot_fx is not None else np.ones(len(d.depots))
    local = spend_dw.sum(axis=1) / fx
    by_region = pd.Series(local, index=list(d.regions)).groupby(level=0).sum()
    by_country = pd.Series(local, index=list(d.budget_groups("budget_country"))).groupby(level=0).sum()
    return State(week=week, drivers=drivers, recruited=recruited, spend_total=float(spend_dw.sum()),
                 spend_regions={r: float(by_region[r]) for r in d.budget_region if r in by_region.index},
                 spend_countries={k: float(by_country[k]) for k in d.budget_country if k in by_country.index})


# ------------------------------------------------------------------ the remaining instance


def remaining_instance(instance: Instance, state: State, reforecast: bool = True) -> Instance:
    """Weeks ``state.week``..T of ``instance`` from ``state`` (module docstring), validated.
    ``reforecast`` (default: simulate's most robust policy, rolling_reforecast): when the demand seen
    shows a new level no scenario holds (``reforecast_levels``), the weeks ahead are every scenario
    times each depot's level, with the instance's probabilities; False: always the scenarios
    weighted by the demand seen (rolling_bayes)."""
    refuse_periods(instance)
    k, T = state.week, instance.n_weeks
    shift = k - 1
    m = instance.manifest.model_dump(mode="json")
    m["name"] = f"{instance.manifest.name} from week {k}"
    m["description"] = (f"{instance.manifest.description} Re-planned from week {k} of {T} "
                        f"(week 1 here is week {k} there).").strip()
    m["horizon"]["weeks"] = T - shift
    m["horizon"]["start_date"] = (instance.manifest.horizon.start_date + dt.timedelta(weeks=shift)).isoformat()
    b = instance.manifest.budgets
    total, weekly, regions = remaining_budgets(b.total, b.weekly, b.regions, state.spend_total, state.spend_regions, shift)
    _, _, countries = remaining_budgets(None, None, b.countries, 0.0, state.spend_countries, shift)
    m["budgets"].update(total=total, weekly=weekly, regions=regions, countries=countries)
    m["files"] = {}
    tables = {name: df.copy() for name, df in instance.tables.items()}
    dep = tables["depots"]
    dep["active_drivers"] = dep["depot"].map(state.drivers.set_index("depot")["active_drivers"]).to_numpy(float)
    dem = tables["demand"]
    dem = dem[dem["week"] > shift].copy()
    dem["week"] -= shift
    tables["demand"] = dem
    levels = reforecast_levels(instance, state) if reforecast else None
    if levels is not None:  # re-forecast: every scenario re-levelled per depot, the instance's probabilities
        dem["blocks"] = dem["blocks"].to_numpy(float) * dem["depot"].map(levels).to_numpy(float)
        tables["demand"] = dem
        m["description"] += (f" Re-forecast: the demand of weeks 1..{shift} shows a new level no scenario holds; "
                             f"every scenario times each depot's level over the last weeks seen.")
    elif state.demand_seen is not None and len(state.demand_seen):  # the scenarios weighted by the demand seen
        prob = scenario_probabilities(instance, state)
        keep = prob > POSTERIOR_FLOOR
        names = np.asarray(instance.scenarios)
        tables["scenarios"] = pd.DataFrame({"scenario": names[keep], "probability": prob[keep] / prob[keep].sum()})
        tables["demand"] = dem[dem["scenario"].isin(set(names[keep]))]
        m["description"] += (f" Scenario probabilities given the demand of weeks 1..{shift} "
                             f"(noise sd {state.noise_sd:g}, AR {state.noise_ar:g}).")
    tables["pipeline"] = _remaining_pipeline(instance, state)
    sup = tables["supply"]
    if len(sup):
        sup = sup[sup["week"] > shift].copy()
        sup["week"] -= shift
        tables["supply"] = sup
    dec = tables["decisions"]  # the planner's decisions of weeks k.. stay (earlier ones are in the state)
    if len(dec):
        dec = dec[dec["week"] > shift].copy()
        dec["week"] -= shift
        tables["decisions"] = dec
    return from_tables(m, tables)


def _seen(instance: Instance, state: State):
    """(data, observed (1, D, k-1) blocks/week with NaN where not seen, the ScenarioPosterior
    after them) from the state's demand_seen."""
    data = instance.model_data()
    t = state.week - 1
    observed = np.full((1, len(data.depots), t), np.nan)
    seen = state.demand_seen
    observed[0, pd.Index(data.depots).get_indexer(seen["depot"]), seen["week"].to_numpy(int) - 1] = \
        seen["blocks"].to_numpy(float)
    post = ScenarioPosterior(data, 1, state.noise_sd, state.noise_ar)
    for w in range(t):
        post.update(observed[:, :, w])
    return data, observed, post


def reforecast_levels(instance: Instance, state: State) -> dict[str, float] | None:
    """{depot: level} when the state's demand_seen shows a new level no scenario holds
    (optplan.evaluation.sampling.new_level: no scenario explains it, the posterior-predictive
    tail below UNEXPLAINED_TAIL with the state's noise sd above 0, and some depot's last
    LEVEL_WEEKS weeks all far on one side of the most likely scenario): each depot's demand seen
    over the last weeks against the scenarios' mean (optplan.evaluation.sampling.reforecast_level,
    as simulate's rolling_reforecast); None when the scenarios explain it, when the misfit is
    wider noise rather than a level, or nothing was seen."""
    if state.demand_seen is None or not len(state.demand_seen) or state.noise_sd <= 0:
        return None
    data, observed, post = _seen(instance, state)
    if not new_level(data, post, observed).any():
        return None
    level = reforecast_level(data, np.nan_to_num(observed, nan=0.0), noise_ar=state.noise_ar)[0]
    return dict(zip(data.depots, map(float, level), strict=True))


def scenario_probabilities(instance: Instance, state: State, notes: list[str] | None = None) -> np.ndarray:
    """(S,) the instance's scenario probabilities given the state's demand_seen (weeks
    1..k-1; weeks or depots without a row say nothing): optplan.evaluation.sampling.ScenarioPosterior
    with the state's noise settings (optplan.evaluation.sampling.trusted_probabilities: where no
    scenario explains the demand seen and no depot shows a new level, the posterior that does
    not take the noise sd as known). Without demand_seen, the instance's own. ``notes`` (if
    given) gets a line per row the posterior skips (no scenario explains it: 0 blocks where
    every scenario has demand, or the reverse), and one when sd 0 finds no scenario equal to
    what was seen (the instance's probabilities are then kept)."""
    if state.demand_seen is None or not len(state.demand_seen):
        return instance.model_data().probability.copy()
    data, observed, post = _seen(instance, state)
    seen = state.demand_seen
    prob, new = trusted_probabilities(data, post, observed)
    if notes is not None:
        for _, d, w in post.skipped[:5]:
            blocks = observed[0, d, w]
            notes.append(f"demand_seen: {data.depots[d]} week {w + 1}: {blocks:g} blocks where every scenario has "
                         f"{'none' if blocks > 0 else 'some'}; no scenario explains it, so it is left out")
        if len(post.skipped) > 5:
            notes.append(f"demand_seen: ... and {len(post.skipped) - 5} more rows like that")
        if state.noise_sd == 0 and len(post.skipped) < len(seen) and not post.matched[0]:
            notes.append("demand_seen: no scenario equals what was seen (demand_noise.sd 0 asks for an exact match); "
                         "the instance's probabilities are kept")
        tail = float(post.explained()[0])
        if tail < UNEXPLAINED_TAIL:
            moved = [data.depots[d] for d in np.flatnonzero(new[0])]
            said = (f"demand_seen: no scenario explains the demand seen (posterior-predictive tail probability "
                    f"{tail:.2g} for the best one, below {UNEXPLAINED_TAIL:g}, with noise sd {state.noise_sd:g})")
            if moved:
                notes.append(f"{said}: a new level at {', '.join(moved)} (its last {LEVEL_WEEKS} weeks all on one side "
                             "of the most likely scenario, each by more than the noise explains); the scenario weights "
                             "are not to be trusted: re-forecast with the demand seen (optplan forecast) and re-plan on "
                             "the new scenarios; optplan replan re-levels each depot's scenarios by its recent demand "
                             "unless --no-reforecast")
            else:
                notes.append(f"{said}, but no depot shows a new level (fewer than {LEVEL_WEEKS} weeks seen, or weeks "
                             f"above and below the scenarios): the demand varies more than the noise sd "
                             f"{state.noise_sd:g} says, so the weights come from a posterior that does not take it as "
                             "known (spread as far as the demand warrants); measure the noise from the forecast's "
                             "backtest and set demand_noise.sd to it")
    return prob[0]


def _remaining_pipeline(instance: Instance, state: State) -> pd.DataFrame:
    """Expected arrivals (drivers/week) in weeks k..T from everyone already recruited,
    renumbered so that week k is week 1."""
    k, T = state.week, instance.n_weeks
    depots = pd.Index(instance.depots)
    if state.pipeline is not None:
        arrivals = np.zeros((len(depots), T))
        p = state.pipeline
        np.add.at(arrivals, (depots.get_indexer(p["depot"]), p["week"].to_numpy(int) - 1), p["new_drivers"].to_numpy(float))
    else:
        data = instance.model_data()
        arrivals = data.pipeline.copy()
        r = state.recruited
        if len(r):
            x = np.zeros((len(depots), len(data.channels), T))
            rows = depots.get_indexer(r["depot"])
            np.add.at(x, (rows, model_channels(data, rows, r["channel"]), r["week"].to_numpy(int) - 1),
                      r["applicants"].to_numpy(float))
            arrivals = arrivals + recruited_arrivals(data, x)  # the model's own kernel
    tail = arrivals[:, k - 1:]
    dd, tt = np.nonzero(tail > 0)
    return pd.DataFrame({"depot": depots[dd].to_numpy(), "week": tt + 1, "new_drivers": tail[dd, tt]})


def remaining_budgets(total: float, weekly, regions: dict[str, float], spend_total: float,
                      spend_regions: dict[str, float], shift: int):
    """Budgets of weeks shift+1..T (currency): total and regional caps less the spend so far
    (never below 0), weekly caps cut to the remaining weeks (a list, an array or a scalar)."""
    total = max(0.0, total - spend_total) if total is not None else None
    weekly = weekly[shift:] if isinstance(weekly, (list, np.ndarray)) else weekly
    regions = {r: max(0.0, cap - spend_regions.get(r, 0.0)) for r, cap in regions.items()}
    return total, weekly, regions


#: Scenarios less likely than this (given what was seen) are left out of a re-plan.
POSTERIOR_FLOOR = 1e-9


def remaining_data(data, week: int, active: np.ndarray, arrivals: np.ndarray, spend_total: float,
                   spend_regions: dict[str, float], mean_demand: bool = False, spend_countries=None,
                   probability: np.ndarray | None = None, level: np.ndarray | None = None):
    """The ModelData of weeks ``week``..T (1-based) from a state in arrays, for re-planning
    many times without tables (the simulation's rolling policy): drivers on hand ``active``
    (D,), expected arrivals (D, T) from everyone recruited so far (only weeks >= ``week``
    used) plus the data's pipeline, budgets by ``remaining_budgets``; ``mean_demand``: one
    scenario, the mean demand (the deterministic plan re-planned); ``probability`` (S,): the
    scenarios' probabilities now (e.g. given the demand seen so far; those below
    POSTERIOR_FLOOR are left out), default the data's; ``level`` (D,): each depot's demand ahead
    as a multiple of its scenarios' (a re-forecast's level, optplan.evaluation.sampling.reforecast_level)."""

    shift = week - 1
    total, weekly, regions = remaining_budgets(data.budget_total, data.budget_weekly, data.budget_region,
                                               spend_total, spend_regions, shift)
    _, _, countries = remaining_budgets(None, None, data.budget_country, 0.0, spend_countries or {}, shift)
    demand = data.demand[:, shift:, :]
    if level is not None:
        demand = demand * np.asarray(level, float)[:, None, None]
    if probability is None:
        scenarios, probability = data.scenarios, data.probability
    else:
        keep = np.flatnonzero(np.asarray(probability) > POSTERIOR_FLOOR)
        scenarios = tuple(data.scenarios[i] for i in keep)
        demand, probability = demand[:, :, keep], np.asarray(probability, float)[keep]
        probability = probability / probability.sum()
    if mean_demand:
        demand = np.einsum("dts,s->dt", demand, probability)[:, :, None]
        scenarios, probability = ("mean",), np.ones(1)
    return dataclasses.replace(
        data, n_weeks=data.n_weeks - shift, initial_active=np.asarray(active, float),
        pipeline=data.pipeline[:, shift:] + np.asarray(arrivals, float)[:, shift:],
        demand=demand, scenarios=scenarios, probability=probability,
        supply_by_week=None if data.supply_by_week is None else data.supply_by_week[:, shift:],
        applicant_cap=data.applicant_cap, budget_total=total, budget_weekly=weekly, budget_region=regions,
        budget_country=countries,
        # the planner's decisions of weeks ``week``.. (formulations/two_stage/decisions.py)
        applicants_min=None if data.applicants_min is None else data.applicants_min[:, :, shift:],
        applicants_max=None if data.applicants_max is None else data.applicants_max[:, :, shift:],
        incentive_min=None if data.incentive_min is None else data.incentive_min[:, shift:],
        incentive_max=None if data.incentive_max is None else data.incentive_max[:, shift:])


# ------------------------------------------------------------------ re-planning


@dataclass
class Replan:
    """A re-plan: the plan of the remaining weeks, that instance, and this week's actions."""

    state: State
    remaining: Instance
    plan: Plan

    @property
    def this_week(self) -> pd.DataFrame:
        """What to do in week k: applicants per depot and channel, incentive spend per depot
        (rows with nothing to do left out), with the currency."""
        p, d = self.plan, self.plan.data
        x = p.decisions.applicants[:, :, 0]
        z = p.decisions.incentive_spend[:, 0, :].sum(axis=1)
        start = self.remaining.manifest.horizon.start_date.isoformat()
        rows = []
        for i, depot in enumerate(d.depots):
            for c, channel in enumerate(d.channels):
                if x[i, c] > 0:
                    rows.append({"week": self.state.week, "week_start": start, "depot": depot, "action": "recruit",
                                 "channel": channel, "applicants": x[i, c], "spend": x[i, c] * d.cost_per_applicant[c]})
            if z[i] > 0:
                rows.append({"week": self.state.week, "week_start": start, "depot": depot, "action": "incentive",
                             "channel": "", "applicants": 0.0, "spend": z[i]})
        out = pd.DataFrame(rows, columns=["week", "week_start", "depot", "action", "channel", "applicants", "spend"])
        out["currency"] = d.currency
        return out

    def write(self, out: str | Path) -> list[Path]:
        """The plan's files, this_week.csv, and the remaining instance in ``out/instance``."""
        out = Path(out)
        paths = self.plan.write(out)
        atomic_write_text(out / "this_week.csv", csv_text(self.this_week))
        self.remaining.write(out / "instance")
        return [*paths, out / "this_week.csv", out / "instance"]


def replan(instance: Instance, state: State, reforecast: bool = True, **solve_options) -> Replan:
    """Solve weeks state.week..T again from ``state`` (``solve_options`` as optplan.solve;
    ``reforecast`` as for ``remaining_instance``)."""

    remaining = remaining_instance(instance, state, reforecast)
    return Replan(state=state, remaining=remaining, plan=solve(remaining, **solve_options))
