"""The sign-on bonus's conversion response from applicant logs, over seeded repetitions
(issue #31 part 5's acceptance, run as a benchmark because it takes minutes).

Per seed: a synthetic applicant log (optplan.estimate.synthetic, BonusDesign: job_board and
social_ads applicants offered 0, 100 or 250 at random, a known effect on each stage's logit),
the funnel fitted with one latent class (the truth has none), the response and its bootstrap
95 % interval (``bootstrap_with_response``). Records per (channel, level) the relative error
of the uplift against the exact truth and whether the interval covers it; prints a table and
writes JSON to out/benchmarks/bonus_response.json (recorded: benchmarks/results/bonus_response.json).

    python benchmarks/bench_bonus_response.py [--seeds 30] [--first-seed 1000] [--applicants 40000]
        [--bootstrap 30] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parents[1] / "out" / "benchmarks" / "bonus_response.json"


def _one_thread() -> None:
    """Worker initializer: one BLAS thread per process (the workers are the parallelism)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"


def one_seed(seed: int, applicants: int, n_boot: int) -> list[dict]:
    from optplan.estimate.funnel import FunnelModel, bonus_levels, bootstrap_with_response
    from optplan.estimate.synthetic import BonusDesign, generate_applicant_log

    design = BonusDesign()
    truth = design.truth().set_index(["channel", "bonus"])["conversion_uplift"]
    log, _, observed = generate_applicant_log(applicants, seed=seed, bonus=design)
    model = FunnelModel(latent_classes=1).fit(log, observed_until=observed)
    _, r = bootstrap_with_response(model, log, bonus_levels(log), n=n_boot, seed=seed)
    r = r.set_index(["channel", "bonus_per_driver"])
    return [{"seed": seed, "channel": c, "bonus": b, "truth": float(t), "estimate": float(r.loc[(c, b), "conversion_uplift"]),
             "low": float(r.loc[(c, b), "uplift_low"]), "high": float(r.loc[(c, b), "uplift_high"]),
             "relative_error": float(r.loc[(c, b), "conversion_uplift"] / t - 1.0),
             "covered": bool(r.loc[(c, b), "uplift_low"] <= t <= r.loc[(c, b), "uplift_high"])}
            for (c, b), t in truth.items()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--first-seed", type=int, default=1000)
    ap.add_argument("--applicants", type=int, default=40_000)
    ap.add_argument("--bootstrap", type=int, default=30)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    t0 = time.perf_counter()
    load0 = os.getloadavg()[0]
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    with ProcessPoolExecutor(args.workers, initializer=_one_thread) as pool:
        rows = [r for part in pool.map(one_seed, seeds, [args.applicants] * args.seeds, [args.bootstrap] * args.seeds)
                for r in part]
    table = {}
    for r in rows:
        table.setdefault((r["channel"], r["bonus"]), []).append(r)
    print(f"{'channel':<11} {'bonus':>6} {'truth':>7} {'mean est':>8} {'max |rel err|':>13} {'within 15%':>10} "
          f"{'coverage':>8}")
    summary = []
    for (c, b), rs in table.items():
        err = np.array([r["relative_error"] for r in rs])
        row = {"channel": c, "bonus": b, "truth": rs[0]["truth"], "mean_estimate": float(np.mean([r["estimate"] for r in rs])),
               "max_abs_relative_error": float(np.abs(err).max()), "share_within_15_percent": float(np.mean(np.abs(err) <= 0.15)),
               "coverage": float(np.mean([r["covered"] for r in rs]))}
        summary.append(row)
        print(f"{c:<11} {b:>6.0f} {row['truth']:>7.4f} {row['mean_estimate']:>8.4f} {row['max_abs_relative_error']:>13.3f} "
              f"{row['share_within_15_percent']:>10.0%} {row['coverage']:>8.0%}")
    overall = float(np.mean([r["covered"] for r in rows]))
    print(f"coverage over all {len(rows)} intervals: {overall:.1%}")
    result = {"seeds": args.seeds, "first_seed": args.first_seed, "applicants": args.applicants,
              "bootstrap": args.bootstrap, "workers": args.workers, "wall_seconds": round(time.perf_counter() - t0, 1),
              "load_average": [round(load0, 2), round(os.getloadavg()[0], 2)], "coverage": overall,
              "summary": summary, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
