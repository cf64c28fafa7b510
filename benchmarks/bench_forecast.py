"""Forecast backtest on the 30 Walmart stores (issue #4's acceptance, run as a benchmark
because AutoETS takes about a minute).

Rolling origins every 13 weeks over the last 39 weeks (104, 117 and 130 weeks of history,
each forecasting the next 13 weeks), 13-week horizon, sales converted at 2,000 USD per
block. For the global gradient-boosting model, AutoETS and seasonal naive: MASE of the P50
(scaled by the in-sample seasonal-naive error), weighted quantile loss (P10, P50, P90) and
P10-P90 coverage, overall and per depot. Acceptance: the global model's MASE at least 8%
below seasonal naive's and below AutoETS's; its coverage between 72% and 88%.

Then times `optplan forecast` on the same history (H = 13, S = 20 scenarios) and records
its scenario-reduction check (mean, P10 and P90 of per-depot totals within 2% of the paths).

Prints the tables and writes JSON to out/benchmarks/forecast_backtest.json (recorded: benchmarks/results/forecast_backtest.json).

    python benchmarks/bench_forecast.py [--data PATH] [--horizon 13] [--step 13] [--origins 3] [--jobs 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "out" / "benchmarks" / "forecast_backtest.json"
DEFAULT_DATA = REPO.parent / "shared" / "data" / "walmart_store_weekly_sales_30.csv"
USD_PER_BLOCK = 2000.0
MASE_GAIN_VS_SNAIVE = 0.08  # the global model's MASE at least 8% below seasonal naive's
COVERAGE_RANGE = (0.72, 0.88)  # P10-P90 coverage of the global model
REDUCTION_TOLERANCE = 0.02


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--horizon", type=int, default=13)
    parser.add_argument("--step", type=int, default=13)
    parser.add_argument("--origins", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=1, help="processes for statsforecast")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON file (benchmarks/results/... to record a run)")
    args = parser.parse_args()
    if not args.data.is_file():
        print(f"bench_forecast: data not found: {args.data}", file=sys.stderr)
        return 2

    from optplan.forecast.backtest import backtest, default_origins
    from optplan.forecast.history import read_history
    from optplan.forecast.models import GlobalConfig
    from optplan.forecast.workflow import forecast_files, render_backtest

    history = read_history(args.data, unit_factor=1.0 / USD_PER_BLOCK)
    origins = default_origins(history.n_weeks, args.horizon, args.step, args.origins)
    cfg = GlobalConfig(seed=args.seed)
    t0 = time.perf_counter()
    result = backtest(history, args.horizon, origins, config=cfg, n_jobs=args.jobs,
                      progress=lambda m: print(f"  [{time.perf_counter() - t0:6.1f}s] {m}", file=sys.stderr))
    backtest_seconds = time.perf_counter() - t0
    for line in render_backtest(result, per_depot=True):
        print(line)

    o = result.overall.set_index("model")
    g, e, s = (float(o.loc[m, "MASE"]) for m in ("global", "ets", "seasonal_naive"))
    cov = float(o.loc["global", "coverage_p10_p90"])
    checks = {
        "global_MASE_at_least_8pct_below_seasonal_naive": {"value": round(g / s - 1.0, 4), "target": f"<= -{MASE_GAIN_VS_SNAIVE}",
                                                          "met": g <= (1 - MASE_GAIN_VS_SNAIVE) * s},
        "global_MASE_below_ets": {"value": round(g / e - 1.0, 4), "target": "< 0", "met": g < e},
        "global_coverage_p10_p90_in_range": {"value": round(cov, 4), "target": list(COVERAGE_RANGE),
                                             "met": COVERAGE_RANGE[0] <= cov <= COVERAGE_RANGE[1]},
    }

    print("\nforecast: optplan forecast on the same history, 13 weeks, 20 scenarios", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        t1 = time.perf_counter()
        forecast_files(args.data, Path(tmp), horizon=13, n_scenarios=20, model="global", seed=args.seed,
                       unit_factor=1.0 / USD_PER_BLOCK)
        forecast_seconds = time.perf_counter() - t1
        summary = json.loads((Path(tmp) / "forecast_summary.json").read_text())
    red = summary["reduction_check"]
    checks["reduction_keeps_mean_p10_p90_of_depot_totals_within_2pct"] = {
        "value": red["max_relative_difference"], "target": REDUCTION_TOLERANCE, "met": red["within_tolerance"]}

    print(f"\n{'acceptance check':<58}{'value':>22}  met")
    for name, c in checks.items():
        v = c["value"] if not isinstance(c["value"], dict) else max(c["value"].values())
        print(f"{name:<58}{v:>22.4f}  {'yes' if c['met'] else 'NO'}")
    print(f"\nbacktest {backtest_seconds:.1f}s (fit time: " + ", ".join(f"{m} {t:.1f}s" for m, t in result.seconds.items())
          + f"); optplan forecast (30 stores, H=13, S=20) {forecast_seconds:.1f}s")

    out = {
        "what": "rolling-origin backtest of the weekly forecast models on the 30 Walmart stores (issue #4)",
        "data": str(args.data.name), "usd_per_block": USD_PER_BLOCK, "depots": len(history.depots), "weeks": history.n_weeks,
        "horizon_weeks": args.horizon, "origins_weeks_of_history": origins,
        "origin_last_week_start": [str(history.week_start[n - 1].date()) for n in origins],
        "global_config": dict(cfg.__dict__),
        "overall": {m: {k: (round(float(v), 6) if k != "n" else int(v)) for k, v in r.items()} for m, r in o.iterrows()},
        "by_depot": [{k: (round(v, 6) if isinstance(v, float) else v) for k, v in r.items()}
                     for r in result.by_depot.to_dict(orient="records")],
        "acceptance": {k: {**c, "met": bool(c["met"])} for k, c in checks.items()},
        "all_met": bool(all(c["met"] for c in checks.values())),
        "ets_models_picked": result.info.get("ets_models", {}),
        "seconds": {"backtest_total": round(backtest_seconds, 1), **{f"fit_{m}": t for m, t in result.seconds.items()},
                    "optplan_forecast_30_stores_h13_s20": round(forecast_seconds, 1)},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(out, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, out)
    print(f"wrote {out}")
    return 0 if out["all_met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
