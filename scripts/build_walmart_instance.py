"""Build the optplan instance ``instances/walmart30`` from real Walmart weekly sales.

The source is ``walmart_store_weekly_sales_30.csv`` (30 stores x 143 weeks, 2010-02-05 to
2012-10-26, weeks ending on Friday), derived from the public Kaggle "Walmart Recruiting -
Store Sales Forecasting" ``Walmart.csv`` and used here for research and testing only.
One store is one depot; sales in USD become delivery blocks at 1 block per 2,000 USD.

Demand scenarios (``instances/walmart30/README.md`` explains each step):

* the plan covers the ``--weeks`` weeks right after the history; like the source, a week
  runs Saturday to Friday, so week 1 is 2012-10-27..2012-11-02;
* each scenario picks an analog year (2011 or 2010: the history shifted by 52 or 104 weeks,
  which keeps Thanksgiving in the same plan week) and a block of ``--weeks`` consecutive
  year-over-year residual weeks, both with ``numpy.random.default_rng(--seed)``;
* demand[depot, week] = level x profile x noise, where level is the depot's mean of the last
  8 history weeks (blocks/week), profile is the analog year's sales in the same week divided
  by the mean of the 8 weeks before the analog origin, and noise is exp(residual) of the
  drawn block: the same calendar weeks for every depot, so cross-depot correlation is kept.

Everything else (drivers, channels, incentives, costs, budgets) is an assumption, set by the
constants below. The same arguments give byte-identical files.

    python scripts/build_walmart_instance.py [--data PATH] [--out DIR] [--seed 0]
        [--weeks 13] [--scenarios 20]
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from optplan.io.atomic import atomic_write_text
from optplan.io.instance import Instance, from_tables

REPO_ROOT = Path(__file__).resolve().parent.parent  # the folder holding pyproject.toml
DEFAULT_DATA = Path("examples/data/walmart_store_weekly_sales_30.csv")  # relative to REPO_ROOT
DEFAULT_OUT = Path("instances/walmart30")  # relative to REPO_ROOT
SOURCE_COLUMNS = ("Store", "Date", "Weekly_Sales")

# --- conversion and scenario method
USD_PER_BLOCK = 2000.0  # USD of weekly sales per delivery block
LEVEL_WEEKS = 8  # weeks averaged for a depot's level and for the analog profile's base
START_LEVEL_WEEKS = 4  # weeks averaged for the starting driver count
WEEKS_PER_YEAR = 52  # analog-year shift in weeks (keeps weekday and Thanksgiving aligned)
RESIDUAL_CLIP = 0.30  # year-over-year log residuals are clipped to +-this (one-week store outages)
DEMAND_DECIMALS = 1  # blocks rounded to 0.1
PROBABILITY_DECIMALS = 6

# --- assumptions (not data); money in USD
N_REGIONS = 3  # regions R1, R2, R3 = stores 1-10, 11-20, 21-30
BLOCKS_PER_DRIVER = 3.0  # blocks/driver/week
RETENTION = 0.97  # probability/week
STAFFING = 0.92  # active drivers at the start cover this share of recent demand
ONBOARDING_MIN, ONBOARDING_SHARE = 5.0, 0.10  # onboarding_cap = max(5, 0.1 x active), drivers/week
PIPELINE_SHARE = (0.015, 0.0075)  # pipeline new drivers in weeks 1, 2 as a share of active drivers
# channel, cost per applicant (USD/applicant), cap (applicants/depot/week), conversion,
# kernel shape over lags 1..4 weeks (sums to 1; times conversion = yield probability)
CHANNELS: tuple[tuple[str, float, float, float, tuple[float, ...]], ...] = (
    ("referral", 40.0, 4.0, 0.55, (0.40, 0.35, 0.15, 0.10)),
    ("job_board", 25.0, 25.0, 0.30, (0.20, 0.35, 0.30, 0.15)),
    ("agency", 160.0, 15.0, 0.65, (0.60, 0.25, 0.10, 0.05)),
)
INCENTIVE_RATES = (0.016, 0.010, 0.005)  # blocks per USD, segments 1..3 (concave)
INCENTIVE_WIDTH_PER_BLOCK = 6.0  # max_spend per segment = 6 USD x mean weekly demand (blocks)
SURGE_COST, SURGE_CAP_SHARE = 95.0, 0.15  # USD/block, share of planned capacity
UNSERVED_COST, IDLE_COST = 160.0, 25.0  # USD/block
BUDGET_TIGHTNESS = 0.60  # total budget = 60% of a rough cost of churn, growth and peaks (see build)
WEEKLY_BUDGET_FACTOR = 2.0  # weekly cap = 2 x total / weeks


class DataError(Exception):
    """The source data is missing or cannot support the requested instance."""


@dataclass(frozen=True)
class History:
    """Weekly sales in blocks: one column per store, one row per week (Friday end date)."""

    blocks: np.ndarray  # (W, D) blocks/week
    week_end: pd.DatetimeIndex  # (W,)
    stores: list[int]  # (D,)


def read_history(path: Path) -> History:
    """Read the sales CSV into a complete week x store matrix of blocks."""
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"cannot read {path}: {exc}".splitlines()[0]) from None
    missing = [c for c in SOURCE_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
    df["Date"] = pd.to_datetime(df["Date"], format="%Y-%m-%d")
    wide = df.pivot_table(index="Date", columns="Store", values="Weekly_Sales", aggfunc="sum").sort_index()
    if wide.isna().any().any() or (wide.to_numpy() <= 0).any():
        raise DataError(f"{path}: every store needs positive sales in every week")
    if (np.diff(wide.index.to_numpy()) != np.timedelta64(7, "D")).any():
        raise DataError(f"{path}: weeks must be consecutive, 7 days apart")
    return History(
        blocks=wide.to_numpy(float) / USD_PER_BLOCK,
        week_end=pd.DatetimeIndex(wide.index),
        stores=[int(s) for s in wide.columns],
    )


def yoy_residuals(blocks: np.ndarray) -> np.ndarray:
    """Year-over-year log changes minus each store's mean change, clipped: (W - 52, D)."""
    log = np.log(blocks)
    yoy = log[WEEKS_PER_YEAR:] - log[:-WEEKS_PER_YEAR]
    return np.clip(yoy - yoy.mean(axis=0), -RESIDUAL_CLIP, RESIDUAL_CLIP)


def build(history: History, weeks: int, scenarios: int, seed: int) -> tuple[Instance, pd.DataFrame]:
    """The validated instance and a table of where each scenario comes from."""
    if weeks < 1 or scenarios < 1:
        raise DataError("--weeks and --scenarios must each be at least 1")
    B, W, T, S = history.blocks, len(history.week_end), weeks, scenarios
    D = B.shape[1]
    last = W - 1
    # analog origins: the last history week shifted back by whole years, with 8 weeks before
    # it and `weeks` weeks after it inside the history
    origins = [
        last - k * WEEKS_PER_YEAR
        for k in range(1, W // WEEKS_PER_YEAR + 1)
        if last - k * WEEKS_PER_YEAR - LEVEL_WEEKS + 1 >= 0 and last - k * WEEKS_PER_YEAR + T <= last
    ]
    resid = yoy_residuals(B)
    n_starts = len(resid) - T + 1
    if not origins or n_starts < 1:
        raise DataError(f"the history ({W} weeks) is too short for a {T}-week plan with analog years")

    level = B[-LEVEL_WEEKS:].mean(axis=0)  # (D,) blocks/week
    # (Y, T, D): analog weeks after each origin over the mean of the 8 weeks up to the origin
    profiles = np.stack([B[o + 1 : o + 1 + T] / B[o - LEVEL_WEEKS + 1 : o + 1].mean(axis=0) for o in origins])

    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(origins), size=S)  # analog year per scenario
    start = rng.integers(0, n_starts, size=S)  # first residual week per scenario
    noise = np.exp(np.stack([resid[a : a + T] for a in start]))  # (S, T, D)
    demand = np.round(level[None, None, :] * profiles[pick] * noise, DEMAND_DECIMALS)  # (S, T, D)

    depot_ids = [f"S{s:02d}" for s in history.stores]
    scen_ids = [f"SC{s + 1:02d}" for s in range(S)]
    per_region = -(-D // N_REGIONS)
    region = [f"R{i // per_region + 1}" for i in range(D)]
    probs = np.full(S, np.round(1.0 / S, PROBABILITY_DECIMALS))
    probs[-1] = np.round(1.0 - probs[:-1].sum(), PROBABILITY_DECIMALS)
    if abs(probs.sum() - 1.0) > 1e-9:
        raise AssertionError(f"scenario probabilities sum to {probs.sum()!r}, not 1")

    # --- depots
    start_demand = B[-START_LEVEL_WEEKS:].mean(axis=0)
    active = np.round(STAFFING * start_demand / BLOCKS_PER_DRIVER, 1)
    onboarding = np.round(np.maximum(ONBOARDING_MIN, ONBOARDING_SHARE * active), 1)

    # --- channels and yield kernels
    ch_rows, y_rows = [], []
    for name, cost, cap, conversion, shape in CHANNELS:
        ch_rows.append({"channel": name, "cost_per_applicant": cost, "applicant_cap": cap})
        for lag, share in enumerate(shape, start=1):
            y_rows.append({"channel": name, "lag": lag, "probability": round(conversion * share, 6)})

    # --- pipeline: applicants already onboarding, first active in weeks 1 and 2
    pipe_rows = [
        {"depot": depot_ids[i], "week": t + 1, "new_drivers": round(float(active[i] * share), 2)}
        for i in range(D)
        for t, share in enumerate(PIPELINE_SHARE[:T])
    ]

    # --- planned incentives: 3 concave segments, widths scaled to expected weekly demand
    expected = (probs[:, None, None] * demand).sum(axis=0)  # (T, D) blocks/week
    mean_blocks = expected.mean(axis=0)  # (D,) blocks/week
    inc_rows = [
        {
            "depot": depot_ids[i],
            "segment": g + 1,
            "max_spend": float(np.round(INCENTIVE_WIDTH_PER_BLOCK * mean_blocks[i], 0)),
            "blocks_per_currency": rate,
        }
        for i in range(D)
        for g, rate in enumerate(INCENTIVE_RATES)
    ]

    # --- budgets: a share of a rough cost of replacing churned drivers, hiring for the growth
    # to the mean horizon demand, and buying the expected holiday peaks above that mean with
    # first-segment incentives
    churned = (active * (1.0 - RETENTION**T)).sum()  # drivers
    growth = np.maximum(mean_blocks - active * BLOCKS_PER_DRIVER, 0.0).sum() / BLOCKS_PER_DRIVER  # drivers
    cost_per_hire = float(np.median([c[1] / c[3] for c in CHANNELS]))  # USD/driver
    peak_blocks = np.maximum(expected - mean_blocks[None, :], 0.0).sum()  # blocks over the horizon
    rough_cost = (churned + growth) * cost_per_hire + peak_blocks / INCENTIVE_RATES[0]  # USD
    total_budget = float(np.round(BUDGET_TIGHTNESS * rough_cost, -2))
    weekly_budget = float(np.round(WEEKLY_BUDGET_FACTOR * total_budget / T, -2))

    horizon_start = (history.week_end[-1] + pd.Timedelta(days=1)).date()
    tables = {
        "depots": pd.DataFrame({
            "depot": depot_ids,
            "region": region,
            "active_drivers": active,
            "blocks_per_driver": BLOCKS_PER_DRIVER,
            "retention": RETENTION,
            "onboarding_cap": onboarding,
        }),
        "scenarios": pd.DataFrame({"scenario": scen_ids, "probability": probs}),
        "demand": pd.DataFrame({
            "depot": np.repeat(depot_ids, T * S),
            "week": np.tile(np.repeat(np.arange(1, T + 1), S), D),
            "scenario": np.tile(scen_ids, D * T),
            "blocks": demand.transpose(2, 1, 0).ravel(),  # (D, T, S) order
        }),
        "channels": pd.DataFrame(ch_rows),
        "yield_kernel": pd.DataFrame(y_rows),
        "pipeline": pd.DataFrame(pipe_rows, columns=["depot", "week", "new_drivers"]),
        "incentives": pd.DataFrame(inc_rows),
    }
    last_end = history.week_end[-1].date()
    manifest = {
        "name": f"walmart{D}",
        "description": (
            f"Weekly demand of {D} depots from real weekly sales of Walmart stores "
            f"{history.stores[0]}-{history.stores[-1]} ({history.week_end[0].date()} to {last_end}; "
            f"public Kaggle 'Walmart Recruiting - Store Sales Forecasting' Walmart.csv, used for research "
            f"and testing), 1 block per {USD_PER_BLOCK:,.0f} USD of sales; {S} scenarios = last-{LEVEL_WEEKS}-week "
            f"level x analog-year profile x year-over-year residual block (seed {seed}). Drivers, channels, "
            f"incentives, costs and budgets are assumptions. See README.md; rebuild with "
            f"scripts/build_walmart_instance.py."
        ),
        "horizon": {"weeks": T, "start_date": horizon_start.isoformat(), "currency": "USD"},
        "recourse": {"surge_cost_per_block": SURGE_COST, "surge_cap_share": SURGE_CAP_SHARE},
        "penalties": {"unserved_cost_per_block": UNSERVED_COST, "idle_cost_per_block": IDLE_COST},
        "budgets": {"total": total_budget, "weekly": weekly_budget, "regions": {}},
        "files": {"pipeline": "pipeline.csv", "incentives": "incentives.csv"},
    }
    instance = from_tables(manifest, tables)

    def week_end(i: int) -> str:
        return history.week_end[i].date().isoformat()

    sources = pd.DataFrame({
        "scenario": scen_ids,
        "analog_year": [history.week_end[origins[p] + 1].year for p in pick],
        "analog_week1_end": [week_end(origins[p] + 1) for p in pick],
        "residual_week1_end": [week_end(WEEKS_PER_YEAR + a) for a in start],
        "residual_week_last_end": [week_end(WEEKS_PER_YEAR + a + T - 1) for a in start],
    })
    return instance, sources


def _resolve(path: Path | None, default: Path) -> Path:
    """A given path is taken relative to the working directory; the default, to the repo root."""
    return path if path is not None else REPO_ROOT / default


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None,
                        help=f"sales CSV (default: {DEFAULT_DATA} from the repo root)")
    parser.add_argument("--out", type=Path, default=None, help=f"output folder (default: {DEFAULT_OUT})")
    parser.add_argument("--seed", type=int, default=0, help="seed of numpy.random.default_rng (default: 0)")
    parser.add_argument("--weeks", type=int, default=13, help="plan horizon in weeks (default: 13)")
    parser.add_argument("--scenarios", type=int, default=20, help="number of demand scenarios (default: 20)")
    args = parser.parse_args(argv)
    data = _resolve(args.data, DEFAULT_DATA)
    out = _resolve(args.out, DEFAULT_OUT)
    try:
        history = read_history(data)
        instance, sources = build(history, args.weeks, args.scenarios, args.seed)
    except DataError as exc:
        print(f"build_walmart_instance: error: {exc}", file=sys.stderr)
        return 2
    instance.write(out)
    buf = io.StringIO()
    sources.to_csv(buf, index=False, lineterminator="\n")
    atomic_write_text(out / "scenario_sources.csv", buf.getvalue())
    print(instance.summary())
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
