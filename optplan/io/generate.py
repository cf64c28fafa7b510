"""Synthetic instances of any size, realistic enough to exercise the planner.

What makes them realistic (each knob is a keyword of ``generate_instance``):
* depots differ by an order of magnitude (log-normal sizes), grouped into regions;
* demand has yearly seasonality, holiday peaks (Thanksgiving and Christmas weeks, by
  calendar date), a slow trend, and scenario noise that is correlated across weeks
  (AR(1) shocks) and across depots (a network-wide shock plus a regional one);
* channels differ in cost per applicant, onboarding lag, spread of the lag, conversion
  rate and weekly cap (referral, job board, agency, social ads, then random ones);
* depots start slightly short of drivers and lose a few per cent a week, so recruiting
  matters; a budget is set to bind.

Everything is drawn from one ``numpy.random.Generator(seed)``: the same arguments give the
same instance, byte for byte.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from optplan.io.instance import Instance, from_tables
from optplan.io.schema import Manifest

#: Planning calendar default: weeks start on Monday.
DEFAULT_START = dt.date(2027, 1, 4)

_CHANNEL_TEMPLATES = (
    # name, cost per applicant (currency), first lag (weeks), spread (weeks), conversion, cap/depot/week
    ("referral", 40.0, 1, 2, 0.55, 4.0),
    ("job_board", 25.0, 2, 3, 0.30, 25.0),
    ("agency", 160.0, 1, 2, 0.65, 15.0),
    ("social_ads", 12.0, 3, 4, 0.18, 40.0),
)


def _kernel(first_lag: int, spread: int, conversion: float) -> np.ndarray:
    """Yield kernel: conversion spread over ``spread`` weeks from ``first_lag`` with a
    discretised gamma-like shape (a mode early, a tail late)."""
    k = np.arange(spread)
    shape = (k + 1.0) * np.exp(-k / max(spread / 2.5, 1e-9))
    shape /= shape.sum()
    out = np.zeros(first_lag + spread)
    out[first_lag:] = conversion * shape
    return np.round(out, 6)


#: Countries the generator knows: currency and an illustrative exchange rate (USD per unit,
#: as of FX_DATE), and a factor on local prices (labour costs differ).
COUNTRY_MONEY = {"US": ("USD", 1.0, 1.0), "CA": ("CAD", 0.73, 0.95), "MX": ("MXN", 0.058, 0.45),
                 "GB": ("GBP", 1.27, 0.95), "DE": ("EUR", 1.08, 0.9), "FR": ("EUR", 1.08, 0.9),
                 "ES": ("EUR", 1.08, 0.7), "NL": ("EUR", 1.08, 0.95)}
FX_DATE = dt.date(2026, 12, 1)


def holiday_multiplier(week_starts: pd.DatetimeIndex, country: str = "US") -> np.ndarray:
    """Demand multiplier for holiday weeks: 1.3 for Thanksgiving week (US only), 1.2-1.45 in
    the three weeks before Christmas, 0.85 between Christmas and New Year; outside the US
    1.25 in the week of Easter Sunday (the holiday weekend's orders) instead of Thanksgiving;
    else 1."""
    from dateutil.easter import easter

    mult = np.ones(len(week_starts))
    for i, start in enumerate(week_starts):
        days = pd.date_range(start, periods=7, freq="D")
        md = {(d.month, d.day) for d in days}
        if country != "US" and any(d.date() == easter(d.year) for d in days):
            mult[i] = 1.25
        elif country == "US" and any(m == 11 and 22 <= d <= 28 for m, d in md) and any(
                x.weekday() == 3 for x in days if x.month == 11 and 22 <= x.day <= 28):
            mult[i] = 1.30
        elif any(m == 12 and 1 <= d <= 7 for m, d in md):
            mult[i] = 1.20
        elif any(m == 12 and 8 <= d <= 14 for m, d in md):
            mult[i] = 1.30
        elif any(m == 12 and 15 <= d <= 24 for m, d in md):
            mult[i] = 1.45
        elif any(m == 12 and d >= 26 for m, d in md):
            mult[i] = 0.85
    return mult


def generate_instance(
    depots: int = 5,
    weeks: int = 12,
    scenarios: int = 10,
    seed: int = 0,
    channels: int = 3,
    start_date: dt.date = DEFAULT_START,
    currency: str = "USD",
    budget_tightness: float = 1.0,
    demand_cv: float = 0.12,
    name: str | None = None,
    countries: tuple[str, ...] | None = None,
) -> Instance:
    """A valid synthetic instance (see the module docstring for what it contains).

    ``budget_tightness``: total budget as a share of a rough cost of the hires that keep
    drivers at mean demand (replacing churn, closing the initial gap, following growth);
    below about 1 the budget binds.
    ``demand_cv``: coefficient of variation of weekly demand across scenarios.
    ``countries``: ISO codes (keys of ``COUNTRY_MONEY``): depots split over them in blocks, each
    country with its holiday peaks (``holiday_multiplier``), currency, exchange rate to
    ``currency`` (USD) as of ``FX_DATE``, local penalties, incentives and channel costs
    (the US figures times the country's price factor, in local currency); regions are
    prefixed with the country. None: one country, as before.
    """
    if min(depots, weeks, scenarios, channels) < 1:
        raise ValueError("depots, weeks, scenarios and channels must each be at least 1")
    if countries is not None and currency != "USD":
        raise ValueError(f"countries: the generator's exchange rates are in USD; got currency {currency}")
    if countries is not None:
        unknown = [c for c in countries if c not in COUNTRY_MONEY]
        if unknown or not countries or len(set(countries)) != len(countries) or len(countries) > depots:
            raise ValueError(f"countries: distinct codes among {', '.join(COUNTRY_MONEY)}, at most one per depot; "
                             f"got {', '.join(countries) or 'none'}")
    rng = np.random.default_rng(seed)
    D, T, S, C = depots, weeks, scenarios, channels
    depot_ids = [f"D{i + 1:03d}" for i in range(D)]
    n_regions = max(1, int(np.ceil(D / 5)))
    region_ids = [f"R{j + 1:02d}" for j in range(n_regions)]
    region_of = [region_ids[i % n_regions] for i in range(D)]

    # --- depots: size in blocks/week at the start, log-normal (order-of-magnitude spread)
    base_blocks = np.round(rng.lognormal(mean=np.log(180.0), sigma=0.7, size=D), 1)
    bpd = np.round(rng.uniform(2.5, 4.5, D), 2)
    retention = np.round(rng.uniform(0.955, 0.99, D), 4)
    staffing = rng.uniform(0.82, 0.97, D)  # start slightly short of drivers
    active = np.round(base_blocks * staffing / bpd, 1)
    onboarding_cap = np.round(np.maximum(3.0, 0.12 * active), 1)

    # --- calendar, seasonality, holidays, trend
    week_starts = pd.date_range(pd.Timestamp(start_date), periods=T, freq="7D")
    doy = week_starts.day_of_year.to_numpy()
    season = 1.0 + 0.10 * np.sin(2 * np.pi * (doy - 120) / 365.25)
    trend = 1.0 + rng.uniform(0.0, 0.15) * np.arange(T) / 52.0
    country_of = ["US"] * D if countries is None else [countries[i * len(countries) // D] for i in range(D)]
    profiles = {c: season * trend * holiday_multiplier(week_starts, c) for c in sorted(set(country_of))}  # (T,) each
    depot_growth = 1.0 + rng.normal(0.0, 0.05, D)[:, None] * np.arange(T)[None, :] / 52.0
    profile = np.stack([profiles[c] for c in country_of])  # (D, T)
    mean = base_blocks[:, None] * profile * depot_growth  # (D, T)

    # --- scenario noise: AR(1) in time; network + regional + depot components
    phi = 0.6
    def ar1(shape):
        eps = rng.normal(size=shape)
        out = np.empty(shape)
        out[..., 0] = eps[..., 0]
        for t in range(1, shape[-1]):
            out[..., t] = phi * out[..., t - 1] + np.sqrt(1 - phi**2) * eps[..., t]
        return out

    network = ar1((S, T))  # (S, T)
    regional = ar1((S, n_regions, T))
    idio = ar1((S, D, T))
    r_index = np.array([region_ids.index(r) for r in region_of])
    z = 0.6 * network[:, None, :] + 0.5 * regional[:, r_index, :] + 0.62 * idio  # unit variance
    sigma = np.log1p(demand_cv**2) ** 0.5
    demand = mean[None, :, :] * np.exp(sigma * z - sigma**2 / 2)  # (S, D, T)
    demand = np.round(np.maximum(demand, 0.0), 1)
    probs = rng.dirichlet(np.full(S, 20.0))
    probs = np.round(probs, 6)
    probs[-1] = np.round(1.0 - probs[:-1].sum(), 6)

    # --- channels and yield kernels
    ch_rows, y_rows = [], []
    for c in range(C):
        if c < len(_CHANNEL_TEMPLATES):
            cname, cost, lag, spread, conv, cap = _CHANNEL_TEMPLATES[c]
        else:
            cname = f"channel_{c + 1}"
            cost = float(np.round(rng.uniform(10, 200), 2))
            lag, spread = int(rng.integers(1, 5)), int(rng.integers(2, 6))
            conv, cap = float(np.round(rng.uniform(0.15, 0.7), 3)), float(np.round(rng.uniform(3, 40), 1))
        ch_rows.append({"channel": cname, "cost_per_applicant": cost, "applicant_cap": cap})
        for k, p in enumerate(_kernel(lag, spread, conv)):
            if p > 0:
                y_rows.append({"channel": cname, "lag": k, "probability": float(p)})

    # --- pipeline: applicants already onboarding land in the first weeks
    pipe_rows = []
    for i in range(D):
        for t in range(min(T, 3)):
            n = float(np.round(active[i] * rng.uniform(0.005, 0.02) * (3 - t) / 3, 2))
            if n > 0:
                pipe_rows.append({"depot": depot_ids[i], "week": t + 1, "new_drivers": n})

    # --- planned incentives: concave response, widths scaled to depot size
    inc_rows = []
    for i in range(D):
        width = float(np.round(6.0 * base_blocks[i], 0))  # currency/week per segment
        first_rate = float(np.round(rng.uniform(0.02, 0.03), 5))  # blocks per currency
        for g, factor in enumerate((1.0, 0.6, 0.3)):
            inc_rows.append({
                "depot": depot_ids[i], "segment": g + 1, "max_spend": width,
                "blocks_per_currency": float(np.round(first_rate * factor, 6)),
            })

    # --- budget: a share of the rough cost of the hires that keep drivers at mean demand:
    # replacing weekly churn of the drivers needed (steady state, so it grows with T),
    # closing the initial gap, and following growth; hires priced at the median
    # cost per hire (cost per applicant / conversion) of the channels.
    target = mean / bpd[:, None]  # (D, T) drivers needed for mean demand
    replacement = float(((1.0 - retention)[:, None] * target).sum())
    initial_gap = float(np.maximum(target[:, 0] - active, 0.0).sum())
    growth = float(np.maximum(target[:, -1] - target[:, 0], 0.0).sum())
    costs = np.array([r["cost_per_applicant"] for r in ch_rows])
    convs = np.array([sum(y["probability"] for y in y_rows if y["channel"] == r["channel"]) for r in ch_rows])
    cost_per_hire = float(np.median(costs / np.maximum(convs, 1e-9)))
    hires = replacement + initial_gap + growth
    total_budget = float(np.round(budget_tightness * hires * cost_per_hire + 1000.0, 0))

    demand_df = pd.DataFrame({
        "depot": np.repeat(np.array(depot_ids), T * S).reshape(D, T, S).ravel(),
        "week": np.tile(np.repeat(np.arange(1, T + 1), S), D),
        "scenario": np.tile(np.array([f"S{s + 1:03d}" for s in range(S)]), D * T),
        "blocks": demand.transpose(1, 2, 0).ravel(),
    })
    tables = {
        "depots": pd.DataFrame({
            "depot": depot_ids, "region": region_of, "active_drivers": active,
            "blocks_per_driver": bpd, "retention": retention, "onboarding_cap": onboarding_cap,
        }),
        "scenarios": pd.DataFrame({"scenario": [f"S{s + 1:03d}" for s in range(S)], "probability": probs}),
        "demand": demand_df,
        "channels": pd.DataFrame(ch_rows),
        "yield_kernel": pd.DataFrame(y_rows),
        "pipeline": pd.DataFrame(pipe_rows, columns=["depot", "week", "new_drivers"]),
        "incentives": pd.DataFrame(inc_rows),
    }
    manifest = Manifest.model_validate({
        "name": name or f"synthetic_{D}x{T}x{S}_seed{seed}",
        "description": (
            f"Synthetic instance from optplan.io.generate (depots={D}, weeks={T}, scenarios={S}, "
            f"channels={C}, seed={seed})."
        ),
        "horizon": {"weeks": T, "start_date": start_date.isoformat(), "currency": currency},
        "recourse": {"surge_cost_per_block": 95.0, "surge_cap_share": 0.15},
        "penalties": {"unserved_cost_per_block": 160.0, "idle_cost_per_block": 25.0},
        "budgets": {"total": total_budget, "weekly": float(np.round(3.0 * total_budget / T, 0)), "regions": {}},
        "files": {"pipeline": "pipeline.csv", "incentives": "incentives.csv"},
    })
    if countries is not None:
        manifest, tables = _in_countries(manifest, tables, country_of, countries)
    return from_tables(manifest, tables)


def _in_countries(manifest: Manifest, tables: dict, country_of: list[str], countries) -> tuple[dict, dict]:
    """The single-currency instance restated with several countries: each depot's figures in
    its country's currency (US value x price factor / rate), a country table, per-country
    channel costs; regions prefixed with the country."""
    m = manifest.model_dump(mode="json")
    m["horizon"]["fx_date"] = FX_DATE.isoformat()
    dep = tables["depots"]
    dep["region"] = [f"{c}-{r}" for c, r in zip(country_of, dep["region"], strict=True)]
    dep["country"] = country_of
    to_local = {c: COUNTRY_MONEY[c][2] / COUNTRY_MONEY[c][1] for c in countries}  # local units per USD of US value
    rows = []
    for c in countries:
        cur, rate, _ = COUNTRY_MONEY[c]
        rows.append({"country": c, "currency": cur, "fx_rate": rate,
                     "unserved_cost_per_block": round(m["penalties"]["unserved_cost_per_block"] * to_local[c], 2),
                     "idle_cost_per_block": round(m["penalties"]["idle_cost_per_block"] * to_local[c], 2),
                     "surge_cost_per_block": round(m["recourse"]["surge_cost_per_block"] * to_local[c], 2)})
    tables["countries"] = pd.DataFrame(rows)
    ch = tables["channels"]
    tables["channel_costs"] = pd.DataFrame([{"country": c, "channel": name, "cost_per_applicant": round(cost * to_local[c], 2)}
                                            for c in countries for name, cost in zip(ch["channel"], ch["cost_per_applicant"],
                                                                                     strict=True)])
    inc = tables["incentives"]
    k = inc["depot"].map(dict(zip(dep["depot"], country_of, strict=True))).map(to_local)
    inc["max_spend"] = np.round(inc["max_spend"] * k, 2)
    inc["blocks_per_currency"] = np.round(inc["blocks_per_currency"] / k, 6)
    return m, tables
