"""Forecasts that generalise: every choice by nested rolling-origin validation on stores and
origins that are not scored (issue #15 part 2).

The 30 shared Walmart stores (sales at 2,000 USD per block). The global gradient-boosting
model, AutoETS and seasonal naive are backtested at many origins (every ``--step`` weeks
from ``--first-origin`` to the last, 13-week horizon; ``optplan.forecast.backtest``). Then, for
each split of the stores (``--splits``; split 0 is the acceptance), ``--held-out`` stores are
drawn at random and never seen by any choice. At each scored origin n (those with at least
``--min-validation-origins`` earlier origins whose 13 target weeks all end before n), the
combination of the global model and AutoETS (``optplan.forecast.combine``: its weight and
interval scale) is chosen on the other stores at those earlier origins only, and applied to
the held-out stores at n. The last origin is therefore unseen by every choice, and so is
every held-out store. ``--calibration recent`` lets the choice see every cell whose target
week precedes n instead (earlier origins' first horizons included), weighted by a recency
half-life that is itself chosen by inner rolling origins (``combine.choose_nested``).

Scores on the held-out stores, pooled over the scored origins: MASE of the P50 and P10-P90
coverage by utilsforecast's losses (``mase`` with seasonality 52 against each origin's own
history, ``coverage`` at level 80), wQL (optplan.forecast.metrics.wql); the margins (MASE of
the chosen combination relative to seasonal naive and to AutoETS) with 95% intervals from
resampling the held-out stores (2,000 resamples). Acceptance (split 0; issue #30): the chosen
model's MASE at least 8% below seasonal naive's and AutoETS's; P10-P90 coverage pooled over
the scored origins within 75-85% and its mean absolute deviation from 80% over the scored
origins at most 8 points (per-origin figures reported; the earlier 72-88% at every origin is
reported too, not required: ten stores share each origin's shocks).

The same checks for the global model, the default (``default_model_checks``): the issue's
acceptance is about the default model (docs/forecast.md, "Which model is the default").

``--shipped`` also backtests the combined model as ``optplan forecast --model combined`` runs
it (``dispatch.combined_quantiles``: its weight and scale chosen on the same stores' own
earlier origins, nothing after the forecast origin) at the scored origins, and scores it on
the held-out stores with the same checks ("shipped" rows): the default model as a planner
gets it.

Prints the tables and writes JSON to out/benchmarks/forecast_nested.json (recorded: benchmarks/results/forecast_nested.json).

    python benchmarks/bench_forecast_nested.py [--first-origin 91] [--step 3] [--held-out 10] [--splits 3]
        [--calibration whole|recent] [--rows-cache /tmp/forecast_nested_rows.csv]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "out" / "benchmarks" / "forecast_nested.json"
DEFAULT_DATA = REPO / "examples" / "data" / "walmart_store_weekly_sales_30.csv"
USD_PER_BLOCK = 2000.0
MASE_GAIN_VS_SNAIVE = 0.08
MASE_GAIN_VS_ETS = 0.08
COVERAGE_RANGE = (0.72, 0.88)  # every origin (reported; the issue #15 bar)
POOLED_COVERAGE_RANGE = (0.75, 0.85)
MAX_MEAN_ORIGIN_DEVIATION = 0.08
MODELS = ("global", "ets", "seasonal_naive")


def backtest_rows(history, horizon: int, origins: list[int], cache: Path | None, models=MODELS) -> pd.DataFrame:
    """Backtest rows of ``models`` at ``origins``; origins already in ``cache`` are read from it,
    the others computed (and the cache rewritten with all of them)."""
    from optplan.forecast.backtest import backtest
    from optplan.forecast.dispatch import forecast

    have = pd.read_csv(cache, dtype={"depot": str}) if cache is not None and cache.is_file() else None
    done = set() if have is None else set(have["origin"].unique().tolist())
    todo = [n for n in origins if n not in done]
    parts = [] if have is None else [have[have["origin"].isin(origins)]]
    if todo:
        t0 = time.perf_counter()
        parts.append(backtest(history, horizon, todo, models=models, fit=forecast,
                              progress=lambda m: print(f"  [{time.perf_counter() - t0:6.1f}s] {m}", file=sys.stderr)).rows)
    else:
        print(f"backtest rows from {cache}", file=sys.stderr)
    rows = pd.concat(parts, ignore_index=True).sort_values(["model", "origin", "h", "depot"], kind="stable")
    if cache is not None and todo:
        pd.concat([have, rows] if have is not None else [rows]).drop_duplicates(
            ["model", "origin", "depot", "h"]).to_csv(cache, index=False)
    return rows.reset_index(drop=True)


def utils_scores(rows: pd.DataFrame, history, names: list[str]) -> dict:
    """MASE and P10-P90 coverage of each model column (p50_<m>, p10_<m>, p90_<m>) by
    utilsforecast, per depot (MASE: mean over origins of each origin's MASE against the
    history before it) and per origin (coverage)."""
    from utilsforecast.losses import coverage, mase

    mase_parts, cov_parts = [], []
    for n, g in rows.groupby("origin"):
        df = pd.DataFrame({"unique_id": g["depot"].astype(str), "ds": pd.to_datetime(g["week_start"]), "y": g["y"]})
        for m in names:
            df[m] = g[f"p50_{m}"].to_numpy()
            df[f"{m}-lo-80"] = g[f"p10_{m}"].to_numpy()
            df[f"{m}-hi-80"] = g[f"p90_{m}"].to_numpy()
        past = history.subset(int(n))
        depots = sorted(df["unique_id"].unique())
        cols = [list(history.depots).index(d) for d in depots]
        train = pd.DataFrame({
            "unique_id": np.repeat(depots, past.n_weeks),
            "ds": np.tile(past.week_start, len(depots)),
            "y": past.blocks[:, cols].T.ravel(),
        }).dropna()
        mase_parts.append(mase(df, names, seasonality=52, train_df=train).assign(origin=int(n)))
        cov_parts.append(coverage(df, names, level=80).assign(origin=int(n)))
    m = pd.concat(mase_parts).groupby("unique_id")[names].mean()  # per depot, over origins
    c = pd.concat(cov_parts)  # per depot and origin (13 weeks each): means are pooled shares
    return {"mase_by_depot": m, "coverage_by_origin": c.groupby("origin")[names].mean(), "coverage_rows": c}


def margin(by_depot: pd.DataFrame, a: str, b: str, seed: int) -> dict:
    """MASE of a relative to b (mean over depots of each, ratio - 1) with a 95% interval from
    resampling depots (optplan.forecast.backtest.mase_ratio)."""
    from optplan.forecast.backtest import mase_ratio

    point, lo, hi = mase_ratio(by_depot[a].to_numpy(), by_depot[b].to_numpy(), seed=seed)
    return {"value": round(point, 4), "interval_95": [round(lo, 4), round(hi, 4)]}


def hindsight_bound(scored_rows: pd.DataFrame) -> dict:
    """Not a choice (it reads the scored cells): over every candidate (weight, scale) of the
    combination, the most scored origins whose P10-P90 coverage lies in COVERAGE_RANGE, with
    the first (w, c) reaching it and its MASE relative to AutoETS's (mean over depots of mean
    |y - p50| / scale, each origin's seasonal-naive scale); the same among the weights whose
    MASE is below AutoETS's ("with_MASE_below_ets"). A bound on what any one weight and scale,
    however chosen, could do on these stores and origins."""
    from optplan.forecast.combine import SCALES, WEIGHTS, apply
    from optplan.forecast.metrics import mase as depot_mase

    y, origin, depot, scale = (scored_rows[c].to_numpy() for c in ("y", "origin", "depot", "scale"))
    rows_of = [depot == d for d in np.unique(depot)]

    def mase(p50):  # mean over depots of each depot's MASE
        return float(np.mean([depot_mase(y[r], p50[r], scale[r]) for r in rows_of]))

    ets = mase(scored_rows["p50_ets"].to_numpy())
    best = {"any": None, "with_MASE_below_ets": None}
    for w in WEIGHTS:
        for c in SCALES:
            r = apply(scored_rows, w, c)
            inside = pd.Series((r["p10"].to_numpy() <= y) & (y <= r["p90"].to_numpy())).groupby(origin).mean()
            k = int(((inside >= COVERAGE_RANGE[0]) & (inside <= COVERAGE_RANGE[1])).sum())
            rel = mase(r["p50"].to_numpy()) / ets - 1.0
            entry = {"origins_in_range": k, "of": int(inside.size), "weight_global": w, "interval_scale": c,
                     "coverage_by_origin": {int(n): round(float(v), 4) for n, v in inside.items()},
                     "MASE_vs_ets": round(rel, 4)}
            for key, ok in (("any", True), ("with_MASE_below_ets", rel < 0)):
                if ok and (best[key] is None or k > best[key]["origins_in_range"]):
                    best[key] = entry
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--horizon", type=int, default=13)
    parser.add_argument("--first-origin", type=int, default=91)
    parser.add_argument("--step", type=int, default=3)
    parser.add_argument("--held-out", type=int, default=10)
    parser.add_argument("--splits", type=int, default=3)
    parser.add_argument("--min-validation-origins", type=int, default=3)
    parser.add_argument("--scored", default=None,
                        help="scored origins, e.g. 104,117,130 (default: every origin with enough validation origins)")
    parser.add_argument("--calibration", choices=("whole", "recent", "band"), default="whole",
                        help="whole: the choice sees whole earlier origins, weighted equally (the acceptance design); "
                             "recent: every cell observed before the origin, weighted by a recency half-life chosen "
                             "by inner rolling origins (combine.choose_nested); band: whole origins, the weight and scale "
                             "that put the most validation origins' coverage in the acceptance range first")
    parser.add_argument("--rows-cache", type=Path, default=Path("/tmp/forecast_nested_rows.csv"))
    parser.add_argument("--shipped", action="store_true",
                        help="also backtest the combined model as shipped at the scored origins (its own validation)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not args.data.is_file():
        print(f"bench_forecast_nested: data not found: {args.data}", file=sys.stderr)
        return 2

    from optplan.forecast.combine import apply, choose, choose_nested, pair
    from optplan.forecast.history import read_history
    from optplan.forecast.metrics import wql

    history = read_history(args.data, unit_factor=1.0 / USD_PER_BLOCK)
    H = args.horizon
    last = history.n_weeks - H
    scored_given = None if args.scored is None else sorted(int(x) for x in args.scored.split(","))
    origins = sorted(set(range(args.first_origin, last + 1, args.step)) | {last} | set(scored_given or []))
    t0 = time.perf_counter()
    load = os.getloadavg()[0]
    rows = backtest_rows(history, H, origins, args.rows_cache)
    backtest_seconds = time.perf_counter() - t0
    paired = pair(rows)
    snaive = rows[rows["model"] == "seasonal_naive"].set_index(["origin", "depot", "h"])[["p10", "p50", "p90"]]
    scored = scored_given or [n for n in origins if sum(o <= n - H for o in origins) >= args.min_validation_origins]
    for n in scored:
        if not any(o <= n - H for o in origins):
            print(f"bench_forecast_nested: origin {n} has no earlier origin whose targets end before it", file=sys.stderr)
            return 2
    shipped = None
    if args.shipped:
        t1 = time.perf_counter()
        shipped = backtest_rows(history, H, scored, args.rows_cache.with_name(args.rows_cache.stem + "_shipped.csv"),
                                models=("combined",))
        shipped = shipped.set_index(["origin", "depot", "h"])[["p10", "p50", "p90"]].add_suffix("_shipped").reset_index()
        print(f"shipped combined model backtested at {scored} in {time.perf_counter() - t1:.0f} s", file=sys.stderr)
    depots = list(history.depots)
    report = {"data": str(args.data), "calibration": args.calibration, "origins": origins, "scored_origins": scored, "horizon": H,
              "backtest_seconds": round(backtest_seconds, 1), "load_at_start": round(load, 2), "splits": []}
    for split in range(args.splits):
        rng = np.random.default_rng(split)
        held = sorted(rng.choice(depots, size=args.held_out, replace=False).tolist())
        chosen_parts, choices = [], []
        for n in scored:
            if args.calibration == "whole":  # the design fixed before the first run: whole earlier origins, equal weights
                choice = choose(paired[(paired["origin"] <= n - H) & ~paired["depot"].isin(held)])
            elif args.calibration == "band":  # whole origins; most validation origins in COVERAGE_RANGE first
                choice = choose(paired[(paired["origin"] <= n - H) & ~paired["depot"].isin(held)], band=COVERAGE_RANGE)
            else:  # every cell whose target week precedes n, the recency half-life chosen by inner origins
                choice = choose_nested(paired[(paired["origin"] < n) & ~paired["depot"].isin(held)], origin=n)
            choices.append({"origin": n, "weight_global": choice.weight_global, "interval_scale": choice.interval_scale,
                            "half_life_weeks": choice.half_life, "half_life_scores": dict(choice.half_life_scores),
                            "inner_origins": list(choice.inner_origins),
                            "validation_origins": list(choice.validation_origins), "validation_rows": choice.validation_rows,
                            "validation_coverage": round(choice.validation_coverage, 4)})
            target = paired[(paired["origin"] == n) & paired["depot"].isin(held)]
            chosen_parts.append(apply(target, choice.weight_global, choice.interval_scale))
        chosen = pd.concat(chosen_parts, ignore_index=True)
        key = ["origin", "depot", "h"]
        scored_rows = paired[paired["origin"].isin(scored) & paired["depot"].isin(held)].merge(
            chosen[key + ["p10", "p50", "p90"]].rename(columns=lambda c: f"{c}_chosen" if c.startswith("p") else c), on=key)
        sn = snaive.add_suffix("_seasonal_naive").reset_index()
        scored_rows = scored_rows.merge(sn, on=key)
        names = ["chosen", "global", "ets", "seasonal_naive"]
        if shipped is not None:
            scored_rows = scored_rows.merge(shipped, on=key)
            names.insert(1, "shipped")
        scores = utils_scores(scored_rows, history, names)
        by_depot = scores["mase_by_depot"]
        mase_overall = by_depot.mean()
        cov_origin = scores["coverage_by_origin"]
        y = scored_rows["y"].to_numpy()
        table = pd.DataFrame({
            "model": names,
            "MASE": [float(mase_overall[m]) for m in names],
            "wQL": [wql(y, {0.1: scored_rows[f"p10_{m}"].to_numpy(), 0.5: scored_rows[f"p50_{m}"].to_numpy(),
                            0.9: scored_rows[f"p90_{m}"].to_numpy()}) for m in names],
            "coverage_p10_p90": [float(scores["coverage_rows"][m].mean()) for m in names],
        })
        margins = {"vs_seasonal_naive": margin(by_depot, "chosen", "seasonal_naive", 1000 + split),
                   "vs_ets": margin(by_depot, "chosen", "ets", 1000 + split),
                   "global_vs_ets": margin(by_depot, "global", "ets", 1000 + split),
                   "global_vs_seasonal_naive": margin(by_depot, "global", "seasonal_naive", 1000 + split)}
        if shipped is not None:
            margins["shipped_vs_seasonal_naive"] = margin(by_depot, "shipped", "seasonal_naive", 1000 + split)
            margins["shipped_vs_ets"] = margin(by_depot, "shipped", "ets", 1000 + split)

        def checks_of(m: str, prefix: str, cov_origin=cov_origin, scores=scores, margins=margins) -> dict:
            per_origin = {int(n): round(float(cov_origin.loc[n, m]), 4) for n in cov_origin.index}
            pooled = float(scores["coverage_rows"][m].mean())
            deviation = float(np.mean([abs(v - 0.8) for v in per_origin.values()]))
            vs_sn, vs_ets = margins[f"{prefix}vs_seasonal_naive"]["value"], margins[f"{prefix}vs_ets"]["value"]
            return {
                "MASE_at_least_8pct_below_seasonal_naive": {"value": vs_sn, "target": f"<= -{MASE_GAIN_VS_SNAIVE}",
                                                            "met": vs_sn <= -MASE_GAIN_VS_SNAIVE},
                "MASE_at_least_8pct_below_ets": {"value": vs_ets, "target": f"<= -{MASE_GAIN_VS_ETS}",
                                                 "met": vs_ets <= -MASE_GAIN_VS_ETS},
                "pooled_coverage_in_range": {"value": round(pooled, 4), "target": list(POOLED_COVERAGE_RANGE),
                                             "met": POOLED_COVERAGE_RANGE[0] <= pooled <= POOLED_COVERAGE_RANGE[1]},
                "mean_per_origin_deviation_at_most_8_points": {
                    "value": round(deviation, 4), "by_origin": per_origin, "target": f"<= {MAX_MEAN_ORIGIN_DEVIATION}",
                    "met": deviation <= MAX_MEAN_ORIGIN_DEVIATION},
            }

        checks = checks_of("chosen", "")
        reported = {"coverage_per_origin_in_72_88": all(COVERAGE_RANGE[0] <= v <= COVERAGE_RANGE[1] for v in
                                                        checks["mean_per_origin_deviation_at_most_8_points"]["by_origin"].values())}
        shipped_checks = checks_of("shipped", "shipped_") if shipped is not None else None
        default_checks = checks_of("global", "global_")  # the default model (docs/forecast.md, issue #30)
        bound = hindsight_bound(scored_rows)
        report["splits"].append({"split": split, "held_out_stores": held, "choices": choices, "hindsight_bound": bound,
                                 "table": table.round(4).to_dict(orient="records"), "margins": margins,
                                 "coverage_by_origin": {m: {int(n): round(float(v), 4) for n, v in cov_origin[m].items()}
                                                        for m in names},
                                 "checks": checks, "reported": reported, "default_model_checks": default_checks,
                                 **({"shipped_checks": shipped_checks} if shipped_checks else {})})
        print(f"\nsplit {split}: held-out stores {', '.join(held)}; scored origins {scored}")
        print("  choices (origin: weight of global, interval scale, half-life, validation coverage): " + "; ".join(
            f"{c['origin']}: {c['weight_global']:.2f}, {c['interval_scale']:.2f}, "
            f"{'equal' if c['half_life_weeks'] is None else format(c['half_life_weeks'], 'g')}, {c['validation_coverage']:.1%}"
            for c in choices))
        print(f"  {'model':<16}{'MASE':>8}{'wQL':>8}{'P10-P90 cov':>13}  coverage by origin")
        for r in table.itertuples():
            by_o = " ".join(f"{cov_origin.loc[n, r.model]:.0%}" for n in cov_origin.index)
            print(f"  {r.model:<16}{r.MASE:>8.3f}{r.wQL:>8.4f}{r.coverage_p10_p90:>12.1%}  {by_o}")
        for name, mg in margins.items():
            print(f"  MASE {name.replace('_', ' ')}: {mg['value']:+.1%} (95% interval {mg['interval_95'][0]:+.1%} to "
                  f"{mg['interval_95'][1]:+.1%})")
        for key, b in bound.items():
            if b is not None:
                print(f"  hindsight bound, {key.replace('_', ' ')} (reads the scored cells; not a choice): "
                      f"{b['origins_in_range']} of {b['of']} origins in {COVERAGE_RANGE[0]:.0%}-{COVERAGE_RANGE[1]:.0%} "
                      f"at best (first: w = {b['weight_global']}, c = {b['interval_scale']}, MASE vs AutoETS "
                      f"{b['MASE_vs_ets']:+.1%})")
        for label, group in (("chosen", checks), ("shipped", shipped_checks or {}), ("global (default)", default_checks)):
            for name, c in group.items():
                print(f"  {'met ' if c['met'] else 'MISS'} {label}: {name} ({c['value']})")
    report["acceptance_split"] = 0
    report["acceptance_met"] = all(c["met"] for c in report["splits"][0]["checks"].values())
    report["default_model_acceptance_met"] = all(c["met"] for c in report["splits"][0]["default_model_checks"].values())
    if shipped is not None:
        report["shipped_acceptance_met"] = all(c["met"] for c in report["splits"][0]["shipped_checks"].values())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=float))
    print(f"\nbacktest {backtest_seconds:.0f} s at load {load:.1f}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
