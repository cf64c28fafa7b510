"""Estimation accuracy and interval coverage over seeded repetitions (the estimation issue's
acceptance, run as a benchmark because it takes minutes).

Per seed: 50,000 synthetic applicants (30% censored) and 20,000 drivers from
optplan.estimate.synthetic; fit the funnel and retention models, bootstrap 95% intervals;
record each channel's conversion error, kernel total-variation distance, each depot's
retention error, and whether the true value lies inside its interval. Prints a table and
writes JSON to benchmarks/results/estimation_coverage.json.

    python benchmarks/bench_estimation.py [--seeds 20] [--bootstrap 30] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "estimation_coverage.json"


def one_seed(args) -> dict:
    seed, n_boot = args
    from optplan.estimate.funnel import FunnelModel, bootstrap
    from optplan.estimate.retention import RetentionModel, bootstrap_retention
    from optplan.estimate.synthetic import generate_activity_log, generate_applicant_log

    log, truth, observed = generate_applicant_log(50_000, seed=seed, censored_share=0.3)
    model = FunnelModel().fit(log, observed_until=observed)
    summary = model.channel_summary().set_index("channel")
    ci = bootstrap(model, log, n=n_boot, seed=seed, observed_until=observed).set_index("channel")
    kernels = model.yield_kernels()
    out = {"seed": seed, "channels": {}, "depots": {}}
    for c, p in truth.conversion.items():
        est = kernels.loc[kernels["channel"] == c, "probability"].to_numpy()
        tk = truth.kernel[c]
        n = max(len(est), len(tk))
        a, b = np.zeros(n), np.zeros(n)
        a[: len(est)], b[: len(tk)] = est, tk
        out["channels"][c] = {
            "conversion_error": float(summary.loc[c, "conversion"] - p),
            "kernel_tv": float(0.5 * np.abs(a - b).sum()),
            "covered": bool(ci.loc[c, "conversion_low"] <= p <= ci.loc[c, "conversion_high"]),
        }
    act, atruth = generate_activity_log(20_000, seed=seed)
    rmodel = RetentionModel().fit(act)
    rs = rmodel.depot_summary_.set_index("depot")
    rci = bootstrap_retention(rmodel, act, n=n_boot, seed=seed).set_index("depot")
    for d, r in atruth.retention.items():
        out["depots"][d] = {
            "retention_error": float(rs.loc[d, "retention"] - r),
            "covered": bool(rci.loc[d, "retention_low"] <= r <= rci.loc[d, "retention_high"]),
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--bootstrap", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    jobs = [(seed, args.bootstrap) for seed in range(args.seeds)]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        runs = list(pool.map(one_seed, jobs))
    rows = []
    channels = sorted(runs[0]["channels"])
    for c in channels:
        errs = np.array([r["channels"][c]["conversion_error"] for r in runs])
        tvs = np.array([r["channels"][c]["kernel_tv"] for r in runs])
        cov = np.mean([r["channels"][c]["covered"] for r in runs])
        rows.append({"what": f"conversion {c}", "max_abs_error": float(np.abs(errs).max()), "target_error": 0.015,
                     "max_kernel_tv": float(tvs.max()), "target_tv": 0.03, "coverage_95": float(cov), "target_coverage": 0.9})
    for d in sorted(runs[0]["depots"]):
        errs = np.array([r["depots"][d]["retention_error"] for r in runs])
        cov = np.mean([r["depots"][d]["covered"] for r in runs])
        rows.append({"what": f"retention {d}", "max_abs_error": float(np.abs(errs).max()), "target_error": 0.005,
                     "max_kernel_tv": None, "target_tv": None, "coverage_95": float(cov), "target_coverage": 0.9})
    print(f"{'quantity':<26}{'max |error|':>12}{'target':>8}{'max TV':>8}{'coverage':>10}{'met':>6}")
    for r in rows:
        met = r["max_abs_error"] <= r["target_error"] and r["coverage_95"] >= 0.9 and (
            r["max_kernel_tv"] is None or r["max_kernel_tv"] <= 0.03)
        tv = "" if r["max_kernel_tv"] is None else f"{r['max_kernel_tv']:.4f}"
        print(f"{r['what']:<26}{r['max_abs_error']:>12.4f}{r['target_error']:>8.3f}{tv:>8}"
              f"{r['coverage_95']:>10.0%}{'yes' if met else 'NO':>6}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=RESULTS.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump({"seeds": args.seeds, "bootstrap": args.bootstrap, "rows": rows, "runs": runs}, fh, indent=2)
    os.replace(tmp, RESULTS)
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
