"""Instances: load a folder (instance.yaml + CSV tables), validate it, write it back.

Validation collects every problem (file, line, field, expected, found) and raises one
``InstanceError``. Table checks are vectorised over columns and read their domains from
the row models in ``optplan.io.schema``, so the schema stays the single source of truth.
"""

from __future__ import annotations

import datetime as dt
import difflib
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from pydantic import ValidationError

from formulations.data import ModelData, period_offsets, weekly_demand_in_periods
from formulations.two_stage.bonus import with_signon_bonuses
from optplan.errors import InstanceError, Problem
from optplan.io.atomic import atomic_write_text
from optplan.io.decisions import bounds as decision_bounds
from optplan.io.decisions import cells as decision_cells
from optplan.io.decisions import feasibility_problems, row_problems
from optplan.io.inputs import MAX_ID_CHARS, read_csv_strings, read_table_strings, read_yaml_mapping
from optplan.io.schema import (
    EVERY,
    TABLE_BY_NAME,
    TABLES,
    ColumnSpec,
    Files,
    Guards,
    Manifest,
    TableSpec,
    Targets,
    Terminal,
    column_specs,
)
from optplan.io.whatif import apply_changes

MANIFEST_NAME = "instance.yaml"
#: Scenario probabilities must sum to 1 within this absolute tolerance.
PROBABILITY_SUM_ATOL = 1e-6
#: A channel's yield kernel may exceed 1 by at most this much (rounding in files).
KERNEL_SUM_ATOL = 1e-9
#: At most this many lines are reported per kind of problem; the rest are counted.
MAX_LINES_PER_CHECK = 25
#: Ids refused because every CSV reader takes them for a missing or infinite number.
NUMBER_WORDS = frozenset({"nan", "-nan", "+nan", "inf", "-inf", "+inf", "infinity", "-infinity", "+infinity"})
_NAN_WORDS = {"nan", "na", "n/a", "null", "none", "nat", "-nan"}


@dataclass
class Instance:
    """A validated instance: the manifest and one typed DataFrame per table.

    Tables have exactly the schema's columns (optional numeric cells that were empty are
    NaN, meaning "no cap"). ``path`` is the folder it was loaded from, if any.
    """

    manifest: Manifest
    tables: dict[str, pd.DataFrame]
    path: Path | None = None

    # ------------------------------------------------------------------ views
    @property
    def currency(self) -> str:
        return self.manifest.horizon.currency

    @property
    def n_weeks(self) -> int:
        return self.manifest.horizon.weeks

    @property
    def period_weeks(self) -> np.ndarray | None:
        """(T,) weeks in each period of a long-lead instance (horizon.periods), else None."""
        runs = self.manifest.horizon.periods
        if not runs:
            return None
        return np.concatenate([np.full(r.count, r.weeks, dtype=int) for r in runs])

    @property
    def n_periods(self) -> int:
        """Planning periods: horizon.weeks, or the number of long-lead periods."""
        weeks = self.period_weeks
        return self.n_weeks if weeks is None else len(weeks)

    @property
    def demand_by_week(self) -> bool:
        """A long-lead instance whose demand.csv gives every week (not one row per period): the
        model settles each period's recourse week by week (ModelData.demand_share)."""
        if self.period_weeks is None:
            return False
        return demand_is_weekly(self.tables["demand"]["week"], self.period_starts, self.n_weeks)

    @property
    def period_starts(self) -> np.ndarray:
        """(T,) first week (1-based) of each period (1..weeks for a weekly instance)."""
        weeks = self.period_weeks
        if weeks is None:
            return np.arange(1, self.n_weeks + 1)
        return period_offsets(weeks) + 1

    @property
    def depots(self) -> list[str]:
        return self.tables["depots"]["depot"].tolist()

    @property
    def channels(self) -> list[str]:
        return self.tables["channels"]["channel"].tolist()

    @property
    def scenarios(self) -> list[str]:
        return self.tables["scenarios"]["scenario"].tolist()

    def week_start(self, week: int | np.ndarray) -> pd.Series | pd.Timestamp:
        """Date of the first day of week ``week`` (1-based)."""
        start = pd.Timestamp(self.manifest.horizon.start_date)
        return start + pd.to_timedelta((np.asarray(week) - 1) * 7, unit="D")

    def with_changes(self, changes: dict[str, object] | None = None, **kwargs) -> Instance:
        """A new, validated instance with ``changes`` applied ({path: value}; see
        optplan.io.whatif: 'budgets.total', 'channels.cost_per_applicant',
        'depots[D001].onboarding_cap', values or whatif.Scale(f)); keyword arguments are
        manifest paths with '__' for '.', e.g. ``budgets__total=5000``. This instance is not
        modified. Raises InstanceError with the same one-line messages as a file."""
        merged = dict(changes or {})
        merged.update({k.replace("__", "."): v for k, v in kwargs.items()})
        return apply_changes(self, merged)

    def with_decisions(self, decisions: pd.DataFrame | str | Path) -> Instance:
        """A new, validated instance whose planner's decisions are ``decisions`` (a table with
        decisions.csv's columns, or a CSV file's path), in place of its own: what-ifs of a
        commitment (the CLI's --decisions). An empty table removes them. Raises InstanceError
        naming the file, line and field, as for decisions.csv."""
        if isinstance(decisions, (str, Path)):
            path = Path(decisions)
            name = path.name
            table = read_csv_strings(path, "a decisions table (CSV: depot,channel,week,lever,rule,value,...)", name)
        else:
            name, table = "decisions.csv", decisions
        manifest = self.manifest.model_dump(mode="json")
        manifest["files"]["decisions"] = name
        return from_tables(manifest, {**self.tables, "decisions": table})

    def rebuilt(self, manifest: dict, tables: dict[str, pd.DataFrame]) -> Instance:
        """A new instance from a manifest and tables, validated like a file (``from_tables``):
        what a what-if (optplan.io.whatif) hands back, without importing this module."""
        return from_tables(manifest, tables)

    def summary(self) -> str:
        d, c, t, s = len(self.depots), len(self.channels), self.n_weeks, len(self.scenarios)
        return (
            f"{self.manifest.name}: {d} depots, {c} channels, {t} weeks{self._periods_text()} from "
            f"{self.manifest.horizon.start_date}, {s} scenarios, money in {self.currency}"
            + self._countries_text()
        )

    def _periods_text(self) -> str:
        runs = self.manifest.horizon.periods
        if not runs:
            return ""
        return f" in {self.n_periods} periods ({', '.join(f'{r.count} x {r.weeks}' for r in runs)} weeks)"

    def _countries_text(self) -> str:
        co = self.tables["countries"]
        if not len(co):
            return ""
        parts = [f"{r.country} in {r.currency}" + (f" at {r.fx_rate:g}" if r.currency != self.currency else "")
                 for r in co.itertuples(index=False)]
        return f" (reporting; {', '.join(parts)})"

    # ------------------------------------------------------------------ to arrays
    def model_data(self, integer_applicants: bool = False) -> ModelData:
        """The numeric arrays every engine reads (vectorised; no per-row Python)."""
        m = self.manifest
        dep = self.tables["depots"]
        depots = dep["depot"].tolist()
        channels = self.channels
        scenarios = self.scenarios
        D, C, T, S = len(depots), len(channels), self.n_periods, len(scenarios)
        d_idx = pd.Index(depots)
        c_idx = pd.Index(channels)
        s_idx = pd.Index(scenarios)
        p_idx = pd.Index(self.period_starts)  # week -> period position (week - 1 for a weekly instance)
        lengths = self.period_weeks

        demand = np.zeros((D, T, S))
        dem = self.tables["demand"]
        share = None
        if self.demand_by_week:  # weekly demand in a long-lead instance: period totals and week shares
            weekly = np.zeros((D, self.n_weeks, S))
            weekly[d_idx.get_indexer(dem["depot"]), dem["week"].to_numpy() - 1,
                   s_idx.get_indexer(dem["scenario"])] = dem["blocks"].to_numpy(float)
            demand, share = weekly_demand_in_periods(weekly, lengths)
        else:
            demand[
                d_idx.get_indexer(dem["depot"]),
                p_idx.get_indexer(dem["week"]),
                s_idx.get_indexer(dem["scenario"]),
            ] = dem["blocks"].to_numpy(float)

        yk = self.tables["yield_kernel"]
        n_lags = int(yk["lag"].max()) + 1 if len(yk) else 1
        kernel = np.zeros((C, n_lags))
        kernel[c_idx.get_indexer(yk["channel"]), yk["lag"].to_numpy()] = yk["probability"].to_numpy(float)

        pipeline = np.zeros((D, T))
        pip = self.tables["pipeline"]
        if len(pip):
            pipeline[d_idx.get_indexer(pip["depot"]), p_idx.get_indexer(pip["week"])] = pip["new_drivers"].to_numpy(float)

        supply = None  # (D, T) blocks per active driver by week, where supply.csv gives some
        sup = self.tables["supply"]
        if len(sup):
            supply = np.repeat(dep["blocks_per_driver"].to_numpy(float)[:, None], T, axis=1)
            supply[d_idx.get_indexer(sup["depot"]), p_idx.get_indexer(sup["week"])] = sup["blocks_per_driver"].to_numpy(float)

        inc = self.tables["incentives"]
        G = int(inc["segment"].max()) if len(inc) else 0
        width = np.zeros((D, G))
        rate = np.zeros((D, G))
        if len(inc):
            rows, cols = d_idx.get_indexer(inc["depot"]), inc["segment"].to_numpy() - 1
            width[rows, cols] = inc["max_spend"].to_numpy(float)
            rate[rows, cols] = inc["blocks_per_currency"].to_numpy(float)

        ch = self.tables["channels"]
        cap = ch["applicant_cap"].to_numpy(float)
        applicant_cap = np.tile(np.where(np.isnan(cap), np.inf, cap), (D, 1))
        onboarding = dep["onboarding_cap"].to_numpy(float)
        cost = ch["cost_per_applicant"].to_numpy(float)
        money = self._countries(dep, kernel, cost, applicant_cap, width, rate)
        channels, kernel, cost, applicant_cap, width, rate = (money[k] for k in (
            "channels", "kernel", "cost", "applicant_cap", "width", "rate"))

        tg = m.targets
        service_target = np.array([tg.service_level_by_depot.get(d, np.nan if tg.service_level is None else tg.service_level)
                                   for d in depots], float)
        utilisation = np.full(D, np.nan if tg.driver_utilisation is None else float(tg.driver_utilisation))
        weekly = m.budgets.weekly
        W = self.n_weeks
        if weekly is None:
            budget_weekly = np.full(W, np.inf)
        elif isinstance(weekly, list):
            budget_weekly = np.asarray(weekly, float)
        else:
            budget_weekly = np.full(W, float(weekly))
        if lengths is not None:  # a period's cap is the sum of its weeks' caps (currency per period)
            budget_weekly = np.add.reduceat(budget_weekly, self.period_starts - 1)
        data = ModelData(
            depots=tuple(depots),
            regions=tuple(dep["region"].tolist()),
            channels=tuple(channels),
            scenarios=tuple(scenarios),
            n_weeks=T,
            currency=self.currency,
            probability=self.tables["scenarios"]["probability"].to_numpy(float),
            initial_active=dep["active_drivers"].to_numpy(float),
            retention=dep["retention"].to_numpy(float),
            blocks_per_driver=dep["blocks_per_driver"].to_numpy(float),
            onboarding_cap=np.where(np.isnan(onboarding), np.inf, onboarding),
            cost_per_applicant=cost,
            applicant_cap=applicant_cap,
            yield_kernel=kernel,
            pipeline=pipeline,
            supply_by_week=supply,
            demand=demand,
            incentive_width=width,
            incentive_rate=rate,
            surge_cost=m.recourse.surge_cost_per_block,
            surge_cap_share=m.recourse.surge_cap_share,
            unserved_cost=m.penalties.unserved_cost_per_block,
            idle_cost=m.penalties.idle_cost_per_block,
            budget_total=math.inf if m.budgets.total is None else float(m.budgets.total),
            budget_weekly=budget_weekly,
            budget_region={k: float(v) * money["region_fx"].get(k, 1.0) for k, v in m.budgets.regions.items()},
            budget_country={k: float(v) * money["country_fx"][k] for k, v in m.budgets.countries.items()},
            integer_applicants=integer_applicants,
            service_target=service_target,
            network_service_target=np.nan if tg.network_service_level is None else float(tg.network_service_level),
            region_service_target={str(k): float(v) for k, v in sorted(tg.service_level_by_region.items())} or None,
            utilisation_floor=utilisation,
            earnings_floor=np.full(D, np.nan if tg.blocks_per_driver is None else float(tg.blocks_per_driver)),
            scenario_service_level=np.full(D, np.nan if tg.scenario_service_level is None
                                           else float(tg.scenario_service_level)),
            scenario_service_share=float(tg.scenario_service_share),
            scenario_service_form=str(tg.scenario_service_form),
            terminal_value=self._terminal_value(kernel, cost, D, money["open"]),
            surge_by_depot=money["surge"],
            unserved_by_depot=money["unserved"],
            idle_by_depot=money["idle"],
            depot_country=money["country"],
            depot_currency=money["currency"],
            depot_fx=money["fx"],
            channel_source=money["channel_source"],
            period_weeks=lengths,
            demand_share=share,
            **self._decisions(channels, money, (D, len(channels), T)),
        )
        return with_signon_bonuses(data, self._bonus_menu(data))

    def _bonus_menu(self, data: ModelData) -> list[tuple[int, float, float]]:
        """bonuses.csv as (model channel position, bonus currency/driver, conversion uplift), by
        channel in the model's order, then bonus (formulations/two_stage/bonus.py)."""
        bon = self.tables["bonuses"]
        if not len(bon):
            return []
        source = data.channel_source or data.channels
        order = bon.assign(applicant_uplift=bon["applicant_uplift"].fillna(0.0)).sort_values(  # empty: no volume uplift
            ["bonus_per_driver"], kind="stable")
        return [(c, float(r.bonus_per_driver), float(r.conversion_uplift), float(r.applicant_uplift))
                for c, name in enumerate(source) for r in order.loc[order["channel"] == name].itertuples()]

    def decision_cells(self, channels=None, money=None) -> pd.DataFrame:
        """decisions.csv expanded to the model's cells (optplan.io.decisions.cells)."""
        if channels is None:
            data = self.model_data()
            channels, source, country = data.channels, data.channel_source, data.depot_country
        else:
            source, country = money["channel_source"], money["country"]
        period_of_week = {int(w): i for i, w in enumerate(self.period_starts)}
        return decision_cells(self.tables["decisions"], self.tables["depots"]["depot"], channels, source, country,
                              period_of_week)

    def _decisions(self, channels, money: dict, shape) -> dict:
        """The planner's decisions as ModelData bounds (all None without decisions.csv)."""
        if not len(self.tables["decisions"]):
            return {}
        return decision_bounds(self.decision_cells(channels, money), shape, self.currency, money["currency"],
                               money["fx"])

    def _countries(self, dep: pd.DataFrame, kernel, cost, applicant_cap, width, rate) -> dict:
        """Several countries (the country table): every local money figure converted once to
        horizon.currency, so the formulation never sees a currency. With fx the value of one
        local unit in the reporting currency (reporting currency/local currency):

            incentive max_spend (currency/week)         local x fx
            blocks_per_currency (blocks/currency)       local / fx
            penalties, surge cost (currency/block)      local x fx per depot (else the manifest's)
            regional budget (currency)                  local x fx of the region's country
            cost_per_applicant (currency/applicant)     with channel_costs.csv: each channel c
                                                        becomes c@country (its local cost x fx,
                                                        its applicant cap at that country's depots
                                                        only, the same yield kernel)

        Without a country table everything is as given."""
        out = {"channels": tuple(self.channels), "kernel": kernel, "cost": cost, "applicant_cap": applicant_cap,
               "width": width, "rate": rate, "surge": None, "unserved": None, "idle": None, "region_fx": {},
               "open": None, "country": None, "currency": None, "fx": None, "country_fx": {}, "channel_source": None}
        countries = self.tables["countries"]
        if not len(countries):
            return out
        m = self.manifest
        table = countries.set_index("country")
        country = dep["country"].to_numpy()
        fx = table.loc[country, "fx_rate"].to_numpy(float)  # (D,) reporting currency per local unit
        out["country"] = tuple(str(c) for c in country)
        out["currency"] = tuple(str(c) for c in table.loc[country, "currency"])
        out["fx"] = fx
        out["width"] = width * fx[:, None]
        out["rate"] = rate / fx[:, None]
        for key, column, default in (("surge", "surge_cost_per_block", m.recourse.surge_cost_per_block),
                                     ("unserved", "unserved_cost_per_block", m.penalties.unserved_cost_per_block),
                                     ("idle", "idle_cost_per_block", m.penalties.idle_cost_per_block)):
            local = table.loc[country, column].to_numpy(float)
            out[key] = np.where(np.isnan(local), float(default), local * fx)
        out["region_fx"] = {str(r): float(fx[i]) for i, r in enumerate(dep["region"])}
        out["country_fx"] = {str(k): float(table.at[k, "fx_rate"]) for k in table.index}
        cc = self.tables["channel_costs"]
        if len(cc):
            names = list(self.channels)
            local = cc.set_index(["country", "channel"])["cost_per_applicant"]
            new_channels, new_cost, caps, open_to = [], [], [], []
            for k in table.index:
                rate_k = float(table.at[k, "fx_rate"])
                for c, name in enumerate(names):
                    new_channels.append(split_channel(name, k))
                    new_cost.append(float(local[(k, name)]) * rate_k if (k, name) in local.index else float(cost[c]))
                    caps.append(np.where(country == k, applicant_cap[:, c], 0.0))
                    open_to.append(country == k)
            out["open"] = np.stack(open_to, axis=1)
            out["channel_source"] = tuple(names) * len(table.index)
            out["channels"] = tuple(new_channels)
            out["cost"] = np.asarray(new_cost)
            out["applicant_cap"] = np.stack(caps, axis=1)
            out["kernel"] = np.tile(kernel, (len(table.index), 1))
        return out

    def _terminal_value(self, kernel: np.ndarray, cost: np.ndarray, D: int, open_to: np.ndarray | None) -> np.ndarray | None:
        """(D,) currency per driver left at the end of week T, or None (manifest terminal);
        'replacement': through the cheapest channel (per country: open_to (D, C) the channels of
        each depot's country)."""
        v = self.manifest.terminal.value_per_driver
        if v is None:
            return None
        if v == "replacement":
            if open_to is None:
                return np.full(D, replacement_cost(kernel, cost))
            return np.array([replacement_cost(kernel[open_to[d]], cost[open_to[d]]) for d in range(D)])
        return np.full(D, float(v))

    # ------------------------------------------------------------------ writing
    def write(self, folder: str | Path) -> Path:
        """Write the instance to ``folder`` (each file atomically); returns the folder."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        manifest = self.manifest.model_dump(mode="json", exclude_none=False)
        if self.manifest.targets == Targets():  # no targets: leave the section out (files as before targets existed)
            manifest.pop("targets")
        if self.manifest.terminal == Terminal():
            manifest.pop("terminal")
        if self.manifest.guards == Guards():  # the default thresholds: no section (files as before the guards)
            manifest.pop("guards")
        if manifest["horizon"].get("periods") is None:  # weekly: no periods (files as before long-lead periods)
            manifest["horizon"].pop("periods", None)
        if manifest["horizon"].get("fx_date") is None:  # one currency: no exchange-rate date (files as before countries)
            manifest["horizon"].pop("fx_date", None)
        if not manifest["budgets"].get("countries"):
            manifest["budgets"].pop("countries", None)
        files = Files().model_dump()
        for t in TABLES:
            name = getattr(self.manifest.files, t.name) or files[t.name] or f"{t.name}.csv"
            table = self.tables[t.name]
            if t.name == "depots" and "country" in table and not table["country"].astype(str).ne("").any():
                table = table.drop(columns=["country"])  # one country: no column (as before countries)
            if not t.required and table.empty:
                if t.name in ("supply", "countries", "channel_costs", "decisions", "bonuses"):  # newer than the first files
                    manifest["files"].pop(t.name)
                else:
                    manifest["files"][t.name] = None
                continue
            manifest["files"][t.name] = name
            buf = io.StringIO()
            table.to_csv(buf, index=False, lineterminator="\n")
            atomic_write_text(folder / name, buf.getvalue())
        atomic_write_text(folder / MANIFEST_NAME, yaml.safe_dump(manifest, sort_keys=False))
        return folder


def demand_is_weekly(weeks: pd.Series, starts: np.ndarray, n_weeks: int) -> bool:
    """A long-lead demand table given by week rather than one row per period: its rows name
    at least half of the weeks that start no period (a per-period table with a week typed
    wrong names one or two, and is checked row by row as per-period)."""
    inside = np.setdiff1d(np.arange(1, n_weeks + 1), starts)
    if not len(inside):
        return False
    seen = np.intersect1d(pd.to_numeric(weeks, errors="coerce").dropna().astype(int).unique(), inside)
    return len(seen) >= 0.5 * len(inside)


def split_channel(channel: str, country: str) -> str:
    """The model's id of an instance channel in one country, when channel costs differ by
    country (channel_costs.csv): "job_board@DE"."""
    return f"{channel}@{country}"


def replacement_cost(kernel: np.ndarray, cost_per_applicant: np.ndarray) -> float:
    """Cost of recruiting one driver through the cheapest channel (currency/driver):
    min over channels with a positive conversion of cost_per_applicant / conversion."""
    conversion = kernel.sum(axis=1)
    ok = conversion > 0
    return float(np.min(cost_per_applicant[ok] / conversion[ok])) if ok.any() else 0.0


# ====================================================================== loading


def load_instance(path: str | Path) -> Instance:
    """Load and validate an instance folder (or its instance.yaml).

    Raises ``InstanceError`` listing every problem found; the files are only read.
    """
    path = Path(path)
    folder = path.parent if path.suffix in (".yaml", ".yml") else path
    manifest_path = path if path.suffix in (".yaml", ".yml") else path / MANIFEST_NAME
    problems: list[Problem] = []
    manifest = _load_manifest(manifest_path, problems)
    if manifest is None:
        raise InstanceError(problems)
    raw: dict[str, pd.DataFrame] = {}
    for spec in TABLES:
        explicit = getattr(manifest.files, spec.name)
        name = explicit or Files.model_fields[spec.name].default or f"{spec.name}.csv"
        file = folder / name
        if not spec.required and explicit is None and not file.exists():
            raw[spec.name] = _empty_table(spec)
            continue
        raw[spec.name] = _read_table(file, name, spec, problems)
    # a table that could not be read: the cross-table checks against it would only echo that
    return validate_tables(manifest, raw, problems, folder=folder, cross_checks=not problems)


def validated_manifest(model, manifest, file: str):
    """``manifest`` as the pydantic ``model`` (a dict is validated; problems name ``file``)."""
    if not isinstance(manifest, dict):
        return manifest
    try:
        return model.model_validate(manifest)
    except ValidationError as exc:
        raise InstanceError(pydantic_problems(exc, file)) from None


def table_as_text(df: pd.DataFrame, file: str) -> pd.DataFrame:
    """An in-memory table as the readers give a file: every cell text, missing ones "",
    ``attrs["file"]`` set (so the API's tables get the files' checks and messages)."""
    text = df.astype(str).where(df.notna(), "")
    text.attrs = {"file": file}
    return text


def from_tables(manifest: Manifest | dict, tables: dict[str, pd.DataFrame]) -> Instance:
    """Validate an instance given in memory (tables as DataFrames); same checks as files."""
    problems: list[Problem] = []
    manifest = validated_manifest(Manifest, manifest, MANIFEST_NAME)
    raw = {}
    for spec in TABLES:
        df = tables.get(spec.name)
        if df is None:
            if spec.required:
                problems.append(Problem(f"{spec.name}.csv", None, None, "a table", "none"))
            df = _empty_table(spec)
        raw[spec.name] = table_as_text(df, getattr(manifest.files, spec.name) or f"{spec.name}.csv")
    return validate_tables(manifest, raw, problems)


def _empty_table(spec: TableSpec) -> pd.DataFrame:
    df = pd.DataFrame({c.name: pd.Series(dtype=str) for c in column_specs(spec.row)})
    df.attrs["file"] = f"{spec.name}.csv"
    return df


def _load_manifest(path: Path, problems: list[Problem]) -> Manifest | None:
    try:
        # a manifest that is not there is named by its whole path (a wrong folder shows)
        data = read_yaml_mapping(path, "an instance manifest file", path.name if path.parent.is_dir() else str(path))
    except InstanceError as exc:
        problems.extend(exc.problems)
        return None
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        problems.extend(pydantic_problems(exc, path.name))
        return None


#: Pydantic's type tags in an error's location (a union's branches): not fields the user wrote.
_TYPE_TAG = re.compile(r"^(float|int|str|bool|none|list|dict|date|literal|function-\w+|[a-z_-]+\[.*\])$", re.I)
#: What a pydantic error type asks for, in the instance format's words ({...}: the error's context).
_EXPECTED = {"greater_than_equal": "a number of at least {ge}", "less_than_equal": "a number of at most {le}",
             "greater_than": "a number above {gt}", "less_than": "a number below {lt}",
             "float_parsing": "a number", "float_type": "a number", "int_parsing": "a whole number",
             "int_type": "a whole number", "int_from_float": "a whole number", "bool_type": "true or false",
             "bool_parsing": "true or false", "string_type": "text", "list_type": "a list",
             "dict_type": "a mapping (key: value lines)", "model_type": "a mapping (key: value lines)",
             "date_type": "a date (YYYY-MM-DD)", "date_parsing": "a date (YYYY-MM-DD)",
             "date_from_datetime_parsing": "a date (YYYY-MM-DD)", "finite_number": "a finite number",
             "string_too_short": "text of at least {min_length} characters",
             "string_too_long": "text of at most {max_length} characters"}
#: Patterns of the format, in words.
_PATTERNS = {"^[A-Z]{3}$": "three capital letters (an ISO 4217 currency code, e.g. USD or EUR)"}
#: How much of a value a message shows.
_SHOWN_ITEMS = 5


def shown_value(value) -> str:
    """A value as the user wrote it in YAML, short: text in quotes, numbers as written, dates
    as YYYY-MM-DD, nothing as 'nothing', long lists and mappings by their size."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return f"{value:g}" if isinstance(value, float) else str(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, list):
        head = ", ".join(shown_value(v) for v in value[:_SHOWN_ITEMS])
        return f"[{head}{', ...' if len(value) > _SHOWN_ITEMS else ''}] ({len(value)} entries)"
    if isinstance(value, dict):
        keys = ", ".join(map(str, list(value)[:_SHOWN_ITEMS]))
        return f"a mapping of {len(value)} keys ({keys}{', ...' if len(value) > _SHOWN_ITEMS else ''})"
    return type(value).__name__


def pydantic_problems(exc: ValidationError, file: str) -> list[Problem]:
    """Pydantic's errors in the format's words: the field as written (a union's branches left
    out, a list entry as [i], one line per field), what it expects, and the value found."""
    out, seen = [], {}
    for err in exc.errors():
        parts = [x for x in err["loc"] if not (isinstance(x, str) and _TYPE_TAG.match(x))]
        loc = ""
        for x in parts:
            loc += f"[{x + 1}]" if isinstance(x, int) else (f".{x}" if loc else str(x))
        msg = err["msg"].removeprefix("Value error, ")
        ctx = {k: (f"{v:g}" if isinstance(v, float) else v) for k, v in (err.get("ctx") or {}).items()}
        found = shown_value(err.get("input"))
        if err["type"] == "missing":
            expected, found = "this required field", "nothing"
        elif err["type"] == "extra_forbidden":
            expected, found = "only known fields (see docs/instance-format.md)", f"unknown field '{loc}'"
        elif err["type"] == "string_pattern_mismatch":
            expected = _PATTERNS.get(ctx.get("pattern"), f"text of the form {ctx.get('pattern')}")
        elif err["type"] == "literal_error":
            expected = f"one of {ctx.get('expected', '')}"
        elif err["type"] in _EXPECTED:
            expected = _EXPECTED[err["type"]].format(**ctx) if "{" in _EXPECTED[err["type"]] else _EXPECTED[err["type"]]
        else:  # our validators' own words: "[key 'k': ]expected X, found Y" or what is expected
            m = re.match(r"^(?:(region|country|depot|week) '?([^':]+)'?: )?expected (.*), found (.*)$", msg)
            if m:
                if m.group(1):
                    loc = f"{loc}.{m.group(2)}" if m.group(1) != "week" else f"{loc}[{m.group(2)}]"
                expected, found = m.group(3), m.group(4)
            else:
                expected = msg.removeprefix("Input should be ")
        if loc in seen:  # a union's branches: one line per field, the first branch's words
            continue
        seen[loc] = True
        out.append(Problem(file, None, loc, expected, found))
    fields = [p.field or "" for p in out]  # a union's scalar branch beside its list branch's entry: the entry
    out = [p for p in out if not any(f.startswith((f"{p.field}[", f"{p.field}.")) for f in fields if p.field)]
    kinds: dict[tuple, list[Problem]] = {}  # one cap per kind: the same field of many list entries
    for p in out:
        kinds.setdefault((re.sub(r"\[\d+\]", "[]", p.field or ""), p.expected), []).append(p)
    capped = []
    for (field, expected), group in kinds.items():
        capped += group[:MAX_LINES_PER_CHECK]
        if len(group) > MAX_LINES_PER_CHECK:
            rest = len(group) - MAX_LINES_PER_CHECK
            capped.append(Problem(file, None, field.replace("[]", "[...]"), expected,
                                  f"the same in {rest:,} more entries", more=rest - 1))
    return capped


def _read_table(file: Path, name: str, spec: TableSpec, problems: list[Problem]) -> pd.DataFrame:
    """Read a table (CSV, or Parquet by its .parquet suffix) as strings (every cell), with line
    numbers in ``attrs``."""
    try:
        df = read_table_strings(file, f"the {spec.name} table ({'Parquet' if file.suffix.lower() == '.parquet' else 'CSV'} file)",
                                name)
    except InstanceError as exc:
        problems.extend(exc.problems)
        return _empty_table(spec)
    df.attrs["file"] = name
    return df


def validate_tables(
    manifest: Manifest,
    raw: dict[str, pd.DataFrame],
    problems: list[Problem] | None = None,
    folder: Path | None = None,
    cross_checks: bool = True,
) -> Instance:
    """Type, bound, key and cross-table checks; returns the typed instance or raises."""
    problems = [] if problems is None else problems
    report = _Reporter(problems)
    typed: dict[str, pd.DataFrame] = {}
    ok: dict[str, pd.Series] = {}
    for spec in TABLES:
        typed[spec.name], ok[spec.name] = _check_table(raw[spec.name], spec, report)
    if cross_checks:
        _cross_checks(manifest, typed, ok, report)
    if report.problems or report.omitted:
        raise InstanceError(report.problems, report.omitted)
    tables = {name: df.drop(columns=["_line"]) for name, df in typed.items()}
    instance = Instance(manifest=manifest, tables=tables, path=folder)
    if cross_checks and len(tables["decisions"]):  # commitments no plan can keep (optplan.io.decisions)
        data = instance.model_data()
        weeks = [int(w) for w in instance.period_starts]
        problems += feasibility_problems(data, instance.decision_cells(), typed["decisions"].attrs["file"], weeks)
        if problems:
            raise InstanceError(problems)
    return instance


class _Reporter:
    """Collects problems, at most MAX_LINES_PER_CHECK per (file, field, check)."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        self.omitted = 0

    def add_many(self, file: str, field: str | None, lines, expected: str, founds) -> None:
        lines, founds = list(lines), list(founds)
        for line, found in zip(lines[:MAX_LINES_PER_CHECK], founds[:MAX_LINES_PER_CHECK], strict=False):
            self.problems.append(Problem(file, None if line is None else int(line), field, expected, found))
        self.omitted += max(0, len(lines) - MAX_LINES_PER_CHECK)

    def add(self, file, line, field, expected, found) -> None:
        self.add_many(file, field, [line], expected, [found])


def check_given_columns(df: pd.DataFrame, table: str, file: str) -> tuple[list[Problem], int]:
    """The columns of ``df`` that instance table ``table`` defines, checked as a file's (types,
    bounds, ids), with lines and fields of ``file``: for a part of a table given before the rest
    is made (the pipeline's depots and channels). (problems, how many more were left out)."""
    problems: list[Problem] = []
    report = _Reporter(problems)
    lines = pd.Series(np.arange(len(df)) + 2, index=df.index)
    for col in column_specs(TABLE_BY_NAME[table].row):
        if col.name in df.columns:
            _check_column(df[col.name], col, file, lines, report)
    return problems, report.omitted


def _check_table(df: pd.DataFrame, spec: TableSpec, report: _Reporter) -> tuple[pd.DataFrame, pd.Series]:
    """Typed copy of the table (with a '_line' column) and a mask of rows that passed."""
    if not df.index.is_unique:  # labels are positions from here on (the duplicate-key check selects by label)
        attrs = dict(df.attrs)
        df = df.reset_index(drop=True)
        df.attrs.update(attrs)
    file = df.attrs.get("file", f"{spec.name}.csv")
    cols = column_specs(spec.row)
    known = {c.name for c in cols}
    out = pd.DataFrame(index=df.index)
    out["_line"] = np.arange(len(df)) + 2  # header is line 1
    extras = [c for c in df.columns if c not in known]
    for extra in extras[:MAX_LINES_PER_CHECK]:  # one cap for the kind, however many columns (a hint costs a search)
        close = difflib.get_close_matches(str(extra), sorted(known), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        report.add(file, 1, extra, f"only the columns {sorted(known)}", f"unknown column '{extra}'{hint}")
    report.omitted += max(0, len(extras) - MAX_LINES_PER_CHECK)
    ok = pd.Series(True, index=df.index)
    for col in cols:
        blank = (not col.required and col.kind == "id" and col.name in df.columns
                 and not df[col.name].astype(str).str.strip().ne("").any())  # an optional id column left empty: absent
        if col.name not in df.columns or blank:
            if col.required:
                shown = ", ".join(map(str, df.columns[:12])) + (f" and {len(df.columns) - 12:,} more"
                                                                 if len(df.columns) > 12 else "")
                report.add(file, 1, col.name, f"a column named '{col.name}'", f"columns {shown or 'none'}")
                ok[:] = False
            out[col.name] = np.nan if col.kind != "id" else ""
            continue
        values, good = _check_column(df[col.name], col, file, out["_line"], report)
        out[col.name] = values
        ok &= good
    # Duplicate keys among rows whose key cells are valid.
    if all(k in out.columns for k in spec.key) and len(out):
        key = out.loc[ok, list(spec.key)]
        dup = key.duplicated(keep=False)
        if dup.any():
            first_line = (
                out.loc[key.index[dup]]
                .groupby(list(spec.key), sort=False)["_line"]
                .transform("min")
            )
            repeat = key.index[dup][out.loc[key.index[dup], "_line"].to_numpy() != first_line.to_numpy()]
            report.add_many(
                file,
                ", ".join(spec.key),
                out.loc[repeat, "_line"],
                f"a unique ({', '.join(spec.key)})",
                [  # only the lines shown are worded (a table of millions of repeats stays fast)
                    f"a duplicate of line {first_line[i]}: "
                    + ", ".join(f"{k}={_plain(out.at[i, k])!r}" for k in spec.key)
                    for i in repeat[:MAX_LINES_PER_CHECK]
                ],
            )
            ok[repeat] = False
    out.attrs["file"] = file
    return out, ok


def _plain(value):
    """A cell value as Python shows it to a planner (1, not np.int64(1))."""
    return value.item() if isinstance(value, np.generic) else value


def _check_column(raw: pd.Series, col: ColumnSpec, file: str, lines: pd.Series, report: _Reporter):
    text = raw if raw.attrs.get("stripped") else raw.astype(str).str.strip()
    empty = text.eq("")
    good = pd.Series(True, index=raw.index)
    if col.kind == "id":
        if col.required and empty.any():
            report.add_many(file, col.name, lines[empty], col.expectation(), ["an empty cell"] * int(empty.sum()))
            good &= ~empty
        long = (text.str.len() > MAX_ID_CHARS) if raw.attrs.get("longest_line", np.inf) > MAX_ID_CHARS else None
        if long is not None and long.any():
            report.add_many(file, col.name, lines[long], f"an id of at most {MAX_ID_CHARS} characters",
                            [f"{n} characters" for n in text[long].str.len()])
            good &= ~long
        numberlike = text.str.lower().isin(NUMBER_WORDS)  # an id 'nan' or 'inf' reads back as a number anywhere
        if numberlike.any():
            report.add_many(file, col.name, lines[numberlike], "an id that does not read as a number (not nan or inf)",
                            [repr(v) for v in text[numberlike]])
            good &= ~numberlike
        return text, good
    if col.required and empty.any():
        report.add_many(file, col.name, lines[empty], col.expectation(), ["an empty cell"] * int(empty.sum()))
        good &= ~empty
    number = pd.to_numeric(text.where(~empty), errors="coerce")
    unparsed = number.isna() & ~empty
    if unparsed.any():
        words = text[unparsed]
        found = [f"NaN ('{w}')" if w.lower() in _NAN_WORDS else f"'{w}'" for w in words]
        report.add_many(file, col.name, lines[unparsed], col.expectation(), found)
        good &= ~unparsed
    infinite = np.isinf(number.to_numpy(float, na_value=np.nan))
    if infinite.any():
        mask = pd.Series(infinite, index=raw.index)
        report.add_many(file, col.name, lines[mask], f"a finite {col.expectation().removeprefix('a ')}", text[mask])
        good &= ~mask
    valid = number.notna() & ~pd.Series(infinite, index=raw.index)
    if col.kind == "int":
        frac = valid & (number != np.floor(number))
        if frac.any():
            report.add_many(file, col.name, lines[frac], col.expectation(), text[frac])
            good &= ~frac
    bad = pd.Series(False, index=raw.index)
    if col.ge is not None:
        bad |= valid & (number < col.ge)
    if col.gt is not None:
        bad |= valid & (number <= col.gt)
    if col.le is not None:
        bad |= valid & (number > col.le)
    if bad.any():
        report.add_many(file, col.name, lines[bad], col.expectation(), text[bad])
        good &= ~bad
    if col.kind == "int":
        return number.where(good).astype("Int64" if not good.all() else "int64"), good
    return number.astype(float), good


def _cross_checks(manifest: Manifest, t: dict[str, pd.DataFrame], ok: dict[str, pd.Series], report: _Reporter) -> None:
    T = manifest.horizon.weeks
    depots = set(t["depots"]["depot"])
    channels = set(t["channels"]["channel"])
    scenarios = set(t["scenarios"]["scenario"])

    def unknown(table: str, column: str, known: set, what: str) -> None:
        df = t[table]
        mask = ~df[column].isin(known) & df[column].ne("")
        if mask.any():
            report.add_many(
                df.attrs["file"], column, df.loc[mask, "_line"],
                f"a {what} id listed in {t[_source_of(what)].attrs['file']}",
                [f"unknown {what} '{x}'" for x in df.loc[mask, column]],
            )

    for table in ("demand", "pipeline", "incentives", "supply"):
        unknown(table, "depot", depots, "depot")
    dec = t["decisions"]
    if len(dec) and ok["decisions"].all():
        co = t["countries"]
        depot_currency = None
        if len(co) and "country" in t["depots"]:
            cur = dict(zip(co["country"], co["currency"], strict=False))
            depot_currency = {d: cur.get(k, "") for d, k in zip(t["depots"]["depot"], t["depots"]["country"], strict=False)}
        for p in row_problems(dec, depots, channels, dec.attrs["file"], manifest.horizon.currency, depot_currency):
            report.add(p.file, p.line, p.field, p.expected, p.found)
    unknown("demand", "scenario", scenarios, "scenario")
    unknown("yield_kernel", "channel", channels, "channel")

    runs = manifest.horizon.periods or []
    period_total = sum(r.weeks * r.count for r in runs)
    if runs and period_total != T:
        report.add(MANIFEST_NAME, None, "horizon.periods",
                   f"periods adding up to horizon.weeks ({T} weeks)",
                   f"{' + '.join(f'{r.count} x {r.weeks}' for r in runs)} = {period_total} weeks")
    starts = None
    if runs and period_total == T:
        lengths = np.concatenate([np.full(r.count, r.weeks, dtype=int) for r in runs])
        starts = period_offsets(lengths) + 1

    # with periods, demand.csv is either one row per period (its first week, the total) or
    # weekly (every week; each period's recourse then settled week by week)
    dem = t["demand"]
    demand_weekly = starts is not None and demand_is_weekly(dem.loc[dem["week"].notna() & ok["demand"], "week"], starts, T)
    for table in ("demand", "pipeline", "supply", "decisions"):
        df = t[table]
        late = df["week"].notna() & (df["week"].astype(float) > T)
        if late.any():
            report.add_many(df.attrs["file"], "week", df.loc[late, "_line"],
                            f"a week in 1..{T} (horizon.weeks)", df.loc[late, "week"].astype(str))
        if starts is not None and not (table == "demand" and demand_weekly):
            inside = df["week"].notna() & ~late & ok[table]
            off = inside & ~df["week"].astype(float).isin(starts.astype(float))
            if off.any():
                shown = ", ".join(str(w) for w in starts[:6]) + (", ..." if len(starts) > 6 else "")
                report.add_many(df.attrs["file"], "week", df.loc[off, "_line"],
                                f"the first week of a period (horizon.periods: {shown})", df.loc[off, "week"].astype(str))

    v = manifest.terminal.value_per_driver
    yk, ch = t["yield_kernel"], t["channels"]
    if isinstance(v, float) and v > 0 and ok["yield_kernel"].all() and ok["channels"].all() and len(ch):
        conversion = yk.groupby("channel")["probability"].sum()
        cost = ch.set_index("channel")["cost_per_applicant"]
        both = conversion[conversion > 0].index.intersection(cost.index)
        limit = float((cost[both] / conversion[both]).min()) if len(both) else 0.0
        if v > limit * (1 + 1e-9):
            report.add(MANIFEST_NAME, None, "terminal.value_per_driver",
                       f"at most the cost of recruiting a driver, {limit:,.4f} {manifest.horizon.currency} (cheapest "
                       "cost_per_applicant / conversion; more would make recruiting only to be credited at the end "
                       "pay without limit)", f"{v:g}")

    sc = t["scenarios"]
    if len(sc) and ok["scenarios"].all():
        total = float(sc["probability"].sum())
        if abs(total - 1.0) > PROBABILITY_SUM_ATOL:
            report.add(sc.attrs["file"], None, "probability",
                       f"scenario probabilities summing to 1 (within {PROBABILITY_SUM_ATOL:g})", f"a sum of {total:.12g}")
    elif not len(sc):
        report.add(sc.attrs["file"], None, None, "at least one scenario", "no rows")

    yk = t["yield_kernel"]
    if len(yk):
        sums = yk.loc[ok["yield_kernel"]].groupby("channel")["probability"].sum()
        for channel, s in sums[sums > 1 + KERNEL_SUM_ATOL].items():
            line = int(yk.loc[yk["channel"] == channel, "_line"].max())
            report.add(yk.attrs["file"], line, "probability",
                       f"yield probabilities of channel '{channel}' summing to at most 1 (its conversion rate)", f"a sum of {s:.6g}")
    ch = t["channels"]
    without = sorted(channels - set(yk["channel"]))
    for channel in without:
        line = int(ch.loc[ch["channel"] == channel, "_line"].iloc[0])
        report.add(ch.attrs["file"], line, "channel", f"at least one row for channel '{channel}' in {yk.attrs['file']}", "none")

    if not len(t["depots"]):
        report.add(t["depots"].attrs["file"], None, None, "at least one depot", "no rows")
    if not len(ch):
        report.add(ch.attrs["file"], None, None, "at least one channel", "no rows")

    # Demand must cover every depot x week x scenario.
    dem = t["demand"]
    if depots and scenarios and ok["demand"].all() and not (runs and starts is None):
        have = pd.MultiIndex.from_frame(dem[["depot", "week", "scenario"]].astype({"week": int}))
        by_period = starts is not None and not demand_weekly
        want = pd.MultiIndex.from_product(
            [t["depots"]["depot"], starts.tolist() if by_period else range(1, T + 1), t["scenarios"]["scenario"]],
            names=["depot", "week", "scenario"],
        )
        missing = want.difference(have, sort=False)
        if len(missing):
            report.add_many(dem.attrs["file"], "blocks", [None] * len(missing),
                            "a demand row for every depot, period (its first week) and scenario" if by_period else
                            "a demand row for every depot, week 1..horizon.weeks and scenario" + (
                                " (weekly demand), or one per period at its first week ("
                                + ", ".join(str(w) for w in starts[:6]) + (", ...)" if len(starts) > 6 else ")")
                                if demand_weekly else ""),
                            [f"no row for depot={d!r}, week={w}, scenario={s!r}" for d, w, s in missing])

    inc = t["incentives"]
    if len(inc) and ok["incentives"].all():
        ordered = inc.sort_values(["depot", "segment"])
        rising = ordered.groupby("depot")["blocks_per_currency"].diff() > 0
        if rising.any():
            report.add_many(inc.attrs["file"], "blocks_per_currency", ordered.loc[rising, "_line"],
                            "blocks_per_currency non-increasing over a depot's segments (a concave response)",
                            ordered.loc[rising, "blocks_per_currency"].astype(str))

    _bonus_checks(t, ok, channels, report)
    _country_checks(manifest, t, channels, report)

    b = manifest.budgets
    if isinstance(b.weekly, list) and len(b.weekly) != T:
        report.add(MANIFEST_NAME, None, "budgets.weekly",
                   f"one number or a list of {T} numbers (horizon.weeks)", f"a list of {len(b.weekly)}")
    regions = set(t["depots"]["region"])
    for region in sorted(set(b.regions) - regions):
        report.add(MANIFEST_NAME, None, f"budgets.regions.{region}",
                   f"a region id used in {t['depots'].attrs['file']} ({sorted(regions)})", f"unknown region '{region}'")
    for region in sorted(set(manifest.targets.service_level_by_region) - regions):
        report.add(MANIFEST_NAME, None, f"targets.service_level_by_region.{region}",
                   f"a region id used in {t['depots'].attrs['file']} ({sorted(regions)})", f"unknown region '{region}'")
    depots = set(t["depots"]["depot"])
    for depot in sorted(set(manifest.targets.service_level_by_depot) - depots):
        report.add(MANIFEST_NAME, None, f"targets.service_level_by_depot.{depot}",
                   f"a depot id in {t['depots'].attrs['file']}", f"unknown depot '{depot}'")
    _target_kinds_check(manifest, demand_weekly, report)


def _bonus_checks(t: dict[str, pd.DataFrame], ok: dict[str, pd.Series], channels: set, report: _Reporter) -> None:
    """bonuses.csv (formulations/two_stage/bonus.py): a known channel, a raised conversion of at
    most 1, and no committed decision on a channel with a bonus menu (not stated yet)."""
    bon = t["bonuses"]
    if not len(bon):
        return
    file = bon.attrs["file"]
    mask = ~bon["channel"].isin(channels) & bon["channel"].ne("")
    if mask.any():
        report.add_many(file, "channel", bon.loc[mask, "_line"], f"a channel id listed in {t['channels'].attrs['file']}",
                        [f"unknown channel '{x}'" for x in bon.loc[mask, "channel"]])
    yk = t["yield_kernel"]
    if not ok["yield_kernel"].all():
        return
    conversion = yk.groupby("channel")["probability"].sum()
    raised = bon["channel"].map(conversion).fillna(0.0) * (1.0 + pd.to_numeric(bon["conversion_uplift"], errors="coerce"))
    over = ok["bonuses"] & (raised > 1.0 + KERNEL_SUM_ATOL)
    if over.any():
        report.add_many(file, "conversion_uplift", bon.loc[over, "_line"],
                        f"an uplift keeping the channel's conversion (its {yk.attrs['file']} total) at most 1",
                        [f"{u:g} (conversion {c:g} -> {r:.4g})" for u, c, r in zip(
                            bon.loc[over, "conversion_uplift"], bon.loc[over, "channel"].map(conversion),
                            raised[over], strict=True)])
    caps = dict(zip(t["channels"]["channel"], pd.to_numeric(t["channels"]["applicant_cap"], errors="coerce"),
                    strict=False))
    uncapped = ok["bonuses"] & (bon["applicant_uplift"].astype(float) > 0) & bon["channel"].map(
        lambda c: not np.isfinite(caps.get(c, np.nan)))
    if uncapped.any():
        report.add_many(file, "applicant_uplift", bon.loc[uncapped, "_line"],
                        f"0 for a channel without an applicant_cap in {t['channels'].attrs['file']} (a volume uplift "
                        "raises the cap)", [f"{g:g} on channel '{c}', which has no cap" for g, c in zip(
                            bon.loc[uncapped, "applicant_uplift"], bon.loc[uncapped, "channel"], strict=True)])
    dec = t["decisions"]
    if len(dec) and ok["decisions"].all():
        clash = (dec["channel"].isin(set(bon["channel"])) | dec["channel"].eq(EVERY)) & dec["lever"].eq("applicants")
        if clash.any():
            report.add_many(dec.attrs["file"], "channel", dec.loc[clash, "_line"],
                            f"a decision on a channel without a sign-on bonus menu in {file} (decisions on a "
                            "channel with bonuses are not supported yet)", dec.loc[clash, "channel"].astype(str))


def _target_kinds_check(manifest: Manifest, demand_weekly: bool, report: _Reporter) -> None:
    """Targets no engine can plan, whatever the options (validate and solve agree): a bad-week
    service target is a row of the extensive form (every scenario's unserved blocks), the
    expected-value targets rows of the aggregated recourse, and long-lead periods with weekly
    demand are planned on the aggregated recourse only."""
    tg = manifest.targets
    if tg.scenario_service_level is None:
        return
    expected = [name for name, value in (
        ("service_level", tg.service_level), ("service_level_by_depot", tg.service_level_by_depot),
        ("service_level_by_region", tg.service_level_by_region), ("network_service_level", tg.network_service_level),
        ("driver_utilisation", tg.driver_utilisation), ("blocks_per_driver", tg.blocks_per_driver)) if value]
    if expected:
        report.add(MANIFEST_NAME, None, "targets.scenario_service_level",
                   "a bad-week service target alone, or expected-value targets alone: optplan cannot plan both "
                   "together yet", f"both (with targets.{', targets.'.join(expected)})")
    if demand_weekly:
        report.add(MANIFEST_NAME, None, "targets.scenario_service_level",
                   "no bad-week service target with long-lead periods and weekly demand (their weeks are planned "
                   "on the aggregated recourse, which has no per-scenario service)", f"{tg.scenario_service_level:g}")


def _country_checks(manifest: Manifest, t: dict[str, pd.DataFrame], channels: set, report: _Reporter) -> None:
    """Countries: every depot has a known one (only with a country table), currencies are ISO
    codes, channel costs name known countries and channels, a regional budget's depots share
    a country (its currency)."""
    dep, co, cc = t["depots"], t["countries"], t["channel_costs"]
    known = set(co["country"])
    given = dep["country"].astype(str).ne("")
    if not len(co):
        if given.any():
            report.add(dep.attrs["file"], int(dep.loc[given, "_line"].iloc[0]), "country",
                       "no country column without a country table (countries.csv)", "a country column")
        if len(cc):
            report.add(cc.attrs["file"], None, None, "a country table (countries.csv) for the channel costs", "none")
        if manifest.budgets.countries:
            report.add(MANIFEST_NAME, None, "budgets.countries", "a country table (countries.csv) for country budgets",
                       "none")
        return
    missing = ~given
    if missing.any():
        report.add_many(dep.attrs["file"], "country", dep.loc[missing, "_line"],
                        f"a country id listed in {co.attrs['file']} for every depot", ["an empty cell"] * int(missing.sum()))
    unknown = given & ~dep["country"].isin(known)
    if unknown.any():
        report.add_many(dep.attrs["file"], "country", dep.loc[unknown, "_line"], f"a country id listed in {co.attrs['file']}",
                        [f"unknown country '{x}'" for x in dep.loc[unknown, "country"]])
    bad = ~co["currency"].astype(str).str.fullmatch(r"[A-Z]{3}")
    if bad.any():
        report.add_many(co.attrs["file"], "currency", co.loc[bad, "_line"], "an ISO 4217 code (3 capital letters)",
                        co.loc[bad, "currency"].astype(str))
    home = manifest.horizon.currency  # its own exchange rate is 1 by definition
    off = (co["currency"].astype(str) == home) & pd.to_numeric(co["fx_rate"], errors="coerce").sub(1.0).abs().gt(1e-12)
    if off.any():
        report.add_many(co.attrs["file"], "fx_rate", co.loc[off, "_line"],
                        f"1 for a country whose currency is the reporting currency ({home})",
                        co.loc[off, "fx_rate"].astype(str))
    for column, allowed, what in (("country", known, "country"), ("channel", channels, "channel")):
        wrong = cc[column].ne("") & ~cc[column].isin(allowed)
        if wrong.any():
            report.add_many(cc.attrs["file"], column, cc.loc[wrong, "_line"],
                            f"a {what} id listed in {(co if what == 'country' else t['channels']).attrs['file']}",
                            [f"unknown {what} '{x}'" for x in cc.loc[wrong, column]])
    for country in sorted(set(manifest.budgets.countries) - known):
        report.add(MANIFEST_NAME, None, f"budgets.countries.{country}", f"a country id listed in {co.attrs['file']}",
                   f"unknown country '{country}'")
    for region in sorted(manifest.budgets.regions):
        spread = sorted(set(dep.loc[dep["region"] == region, "country"]))
        if len(spread) > 1:
            report.add(MANIFEST_NAME, None, f"budgets.regions.{region}",
                       "a region within one country (its budget is in that country's currency)",
                       f"depots in {', '.join(spread)}")


def _source_of(what: str) -> str:
    return {"depot": "depots", "scenario": "scenarios", "channel": "channels"}[what]


def table_spec(name: str) -> TableSpec:
    return TABLE_BY_NAME[name]


__all__ = ["Instance", "load_instance", "from_tables", "validate_tables", "MANIFEST_NAME"]
