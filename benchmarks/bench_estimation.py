"""Estimation accuracy and interval coverage over seeded repetitions (the estimation issue's
acceptance, run as a benchmark because it takes minutes).

Per seed: 50,000 synthetic applicants (30% censored) and 20,000 drivers from
optplan.estimate.synthetic; fit the funnel and retention models, bootstrap 95% intervals
(Student-t quantile with n - 1 degrees of freedom times the bootstrap standard deviation);
record each channel's conversion error, kernel total-variation distance, each depot's
retention error, whether the true value lies inside its interval, and the standard errors:
the bootstrap's and, for conversion, the delta method's (``conversion_standard_errors``, a
cross-check without resampling noise, with its own interval coverage). Prints a coverage and
error table and a standard-error table, and writes JSON to
out/benchmarks/estimation_coverage.json (recorded: benchmarks/results/estimation_coverage.json).

Coverage over 20 seeds is a noisy check: an interval that covers exactly 95% of the time
covers in at most 17 of 20 seeds (below the 90% target) with probability 7.5%, so the table
also prints, per quantity, the chance of a coverage at least that low from a correct 95%
interval. benchmarks/bench_funnel_spread.py checks the conversion standard errors over
hundreds of seeds (point estimates only).

    python benchmarks/bench_estimation.py [--seeds 20] [--first-seed 0] [--bootstrap 200] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parents[1] / "out" / "benchmarks" / "estimation_coverage.json"
LEVEL = 0.95


def _one_thread() -> None:
    """Worker initializer: one BLAS thread per worker process (the workers are the parallelism;
    more threads on small matrices only contend, badly on a shared machine)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def one_seed(args) -> dict:
    seed, n_boot = args
    from scipy.stats import norm

    from optplan.estimate.funnel import FunnelModel, bootstrap, conversion_standard_errors
    from optplan.estimate.retention import RetentionModel, bootstrap_retention
    from optplan.estimate.synthetic import generate_activity_log, generate_applicant_log

    t0 = time.perf_counter()
    z = float(norm.ppf(0.5 + LEVEL / 2))
    log, truth, observed = generate_applicant_log(50_000, seed=seed, censored_share=0.3)
    model = FunnelModel().fit(log, observed_until=observed)
    summary = model.channel_summary().set_index("channel")
    ci = bootstrap(model, log, n=n_boot, seed=seed, observed_until=observed, level=LEVEL).set_index("channel")
    se_delta = conversion_standard_errors(model)
    kernels = model.yield_kernels()
    out = {"seed": seed, "channels": {}, "depots": {}}
    for c, p in truth.conversion.items():
        est = kernels.loc[kernels["channel"] == c, "probability"].to_numpy()
        tk = truth.kernel[c]
        n = max(len(est), len(tk))
        a, b = np.zeros(n), np.zeros(n)
        a[: len(est)], b[: len(tk)] = est, tk
        err = float(summary.loc[c, "conversion"] - p)
        out["channels"][c] = {
            "conversion": float(summary.loc[c, "conversion"]),
            "truth": float(p),
            "conversion_error": err,
            "kernel_tv": float(0.5 * np.abs(a - b).sum()),
            "se_bootstrap": float(ci.loc[c, "conversion_se"]),
            "se_delta": float(se_delta[c]),
            "covered": bool(ci.loc[c, "conversion_low"] <= p <= ci.loc[c, "conversion_high"]),
            "covered_delta": bool(abs(err) <= z * se_delta[c]),
        }
    act, atruth = generate_activity_log(20_000, seed=seed)
    rmodel = RetentionModel().fit(act)
    rs = rmodel.depot_summary_.set_index("depot")
    rci = bootstrap_retention(rmodel, act, n=n_boot, seed=seed, level=LEVEL).set_index("depot")
    for d, r in atruth.retention.items():
        out["depots"][d] = {
            "retention": float(rs.loc[d, "retention"]),
            "truth": float(r),
            "retention_error": float(rs.loc[d, "retention"] - r),
            "se_bootstrap": float(rci.loc[d, "retention_se"]),
            "covered": bool(rci.loc[d, "retention_low"] <= r <= rci.loc[d, "retention_high"]),
        }
    out["seconds"] = time.perf_counter() - t0
    return out


def chance_at_most(covered: int, seeds: int, level: float = LEVEL) -> float:
    """Probability that an interval covering exactly ``level`` of the time covers in at most
    ``covered`` of ``seeds`` independent seeds."""
    from scipy.stats import binom

    return float(binom.cdf(covered, seeds, level))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--bootstrap", type=int, default=200, help="resamples per interval (funnel and retention)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    start = time.perf_counter()
    jobs = [(seed, args.bootstrap) for seed in range(args.first_seed, args.first_seed + args.seeds)]
    with ProcessPoolExecutor(max_workers=args.workers, initializer=_one_thread) as pool:
        runs = list(pool.map(one_seed, jobs))
    wall = time.perf_counter() - start
    S = len(runs)
    rows = []
    for c in sorted(runs[0]["channels"]):
        rec = [r["channels"][c] for r in runs]
        errs = np.array([x["conversion_error"] for x in rec])
        covered = int(sum(x["covered"] for x in rec))
        rows.append({"what": f"conversion {c}", "max_abs_error": float(np.abs(errs).max()),
                     "mean_error": float(errs.mean()), "sd_error_across_seeds": float(errs.std(ddof=1)),
                     "target_error": 0.015, "max_kernel_tv": float(max(x["kernel_tv"] for x in rec)), "target_tv": 0.03,
                     "mean_se_bootstrap": float(np.mean([x["se_bootstrap"] for x in rec])),
                     "mean_se_delta": float(np.mean([x["se_delta"] for x in rec])),
                     "coverage_95": covered / S, "coverage_95_delta": float(np.mean([x["covered_delta"] for x in rec])),
                     "chance_this_low_if_exact": chance_at_most(covered, S), "target_coverage": 0.9})
    for d in sorted(runs[0]["depots"]):
        rec = [r["depots"][d] for r in runs]
        errs = np.array([x["retention_error"] for x in rec])
        covered = int(sum(x["covered"] for x in rec))
        rows.append({"what": f"retention {d}", "max_abs_error": float(np.abs(errs).max()),
                     "mean_error": float(errs.mean()), "sd_error_across_seeds": float(errs.std(ddof=1)),
                     "target_error": 0.005, "max_kernel_tv": None, "target_tv": None,
                     "mean_se_bootstrap": float(np.mean([x["se_bootstrap"] for x in rec])), "mean_se_delta": None,
                     "coverage_95": covered / S, "coverage_95_delta": None,
                     "chance_this_low_if_exact": chance_at_most(covered, S), "target_coverage": 0.9})
    print(f"{S} seeds from {args.first_seed}, {args.bootstrap} bootstrap resamples, {args.workers} workers, "
          f"{wall / 60:.1f} min wall clock ({np.mean([r['seconds'] for r in runs]):.0f} s per seed)")
    print(f"{'quantity':<24}{'max |error|':>12}{'target':>8}{'max TV':>8}{'coverage':>10}{'P(<=)':>7}{'met':>5}"
          f"{'delta cov':>10}")
    for r in rows:
        met = r["max_abs_error"] <= r["target_error"] and r["coverage_95"] >= 0.9 and (
            r["max_kernel_tv"] is None or r["max_kernel_tv"] <= 0.03)
        tv = "" if r["max_kernel_tv"] is None else f"{r['max_kernel_tv']:.4f}"
        dc = "" if r["coverage_95_delta"] is None else f"{r['coverage_95_delta']:.0%}"
        print(f"{r['what']:<24}{r['max_abs_error']:>12.4f}{r['target_error']:>8.3f}{tv:>8}{r['coverage_95']:>10.0%}"
              f"{r['chance_this_low_if_exact']:>7.2f}{'yes' if met else 'NO':>5}{dc:>10}")
    print("P(<=): chance that an interval covering exactly 95% covers in this few seeds or fewer")
    print(f"\n{'quantity':<24}{'mean error':>11}{'sd across seeds':>16}{'mean bootstrap se':>18}{'mean delta se':>14}")
    for r in rows:
        de = "" if r["mean_se_delta"] is None else f"{r['mean_se_delta']:.5f}"
        print(f"{r['what']:<24}{r['mean_error']:>+11.5f}{r['sd_error_across_seeds']:>16.5f}{r['mean_se_bootstrap']:>18.5f}{de:>14}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=args.out.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump({"seeds": S, "first_seed": args.first_seed, "bootstrap": args.bootstrap, "level": LEVEL,
                   "interval": "estimate +- t(n-1) quantile x bootstrap sd", "workers": args.workers,
                   "wall_seconds": wall, "rows": rows, "runs": runs}, fh, indent=2)
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
