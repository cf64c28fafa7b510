"""Are the funnel's conversion standard errors right? The spread of the estimate across many
seeds against the delta-method standard error (and optionally the bootstrap's), with the
coverage of the intervals they give. Point estimates are cheap, so this uses hundreds of
seeds, where bench_estimation.py's 20 seeds cannot tell a 5% error in a standard error from
noise.

Per seed: 50,000 synthetic applicants (30% censored), FunnelModel fitted; per channel the
conversion error against the truth, the delta-method standard error
(``conversion_standard_errors``) and, with ``--bootstrap N``, the bootstrap standard error and
whether the bootstrap interval (``bootstrap``, level 95%) covers the truth. Prints per channel:
mean error (with its standard error), the standard deviation of the error across seeds (with a
95% chi-square interval), the mean standard errors, and the coverages. JSON to ``--out``.

With ``--speed-shift S`` the logs have dependent stage durations (a latent speed: half the
applicants +S on every stage's logit, half -S; the model then fits two latent classes) and
the table adds the mean-weeks-to-first-block error and, for comparison, the errors of the
independent-stages model (``latent_classes=1``). With ``--fast-share R,J,A,S`` the share of
fast applicants differs by channel (referral, job_board, agency, social_ads; issue #30) and
the table adds the errors of latent classes with one set of shares for every channel
(``class_shares_by=None``).

    python benchmarks/bench_funnel_spread.py [--seeds 400] [--first-seed 0] [--bootstrap 0] [--workers 2]
        [--speed-shift 0] [--fast-share 0.85,0.5,0.2,0.4] [--applicants 50000]
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parents[1] / "out" / "benchmarks" / "funnel_spread.json"


def _one_thread() -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def one_seed(args) -> dict:
    seed, n_boot, shift, applicants, fast_share = args
    from optplan.estimate.funnel import FunnelModel, bootstrap, conversion_standard_errors
    from optplan.estimate.synthetic import generate_applicant_log

    log, truth, observed = generate_applicant_log(applicants, seed=seed, censored_share=0.3, speed_shift=shift,
                                                  fast_share=fast_share)
    model = FunnelModel().fit(log, observed_until=observed)
    summary = model.channel_summary().set_index("channel")
    est = summary["conversion"]
    se = conversion_standard_errors(model)
    out = {"seed": seed, "classes": model.n_classes_,
           "channels": {c: {"error": float(est[c] - p), "se_delta": float(se[c]),
                            "mean_weeks_error": float(summary.loc[c, "mean_weeks_to_first_block"]
                                                      - truth.mean_weeks_to_first_block[c])}
                        for c, p in truth.conversion.items()}}
    if shift:
        one = FunnelModel(latent_classes=1).fit(log, observed_until=observed).channel_summary().set_index("channel")
        for c, p in truth.conversion.items():
            out["channels"][c]["independent_error"] = float(one.loc[c, "conversion"] - p)
            out["channels"][c]["independent_mean_weeks_error"] = float(
                one.loc[c, "mean_weeks_to_first_block"] - truth.mean_weeks_to_first_block[c])
    if fast_share:
        common = FunnelModel(class_shares_by=None).fit(log, observed_until=observed).channel_summary().set_index("channel")
        for c, p in truth.conversion.items():
            out["channels"][c]["common_shares_error"] = float(common.loc[c, "conversion"] - p)
            out["channels"][c]["common_shares_mean_weeks_error"] = float(
                common.loc[c, "mean_weeks_to_first_block"] - truth.mean_weeks_to_first_block[c])
    if n_boot:
        ci = bootstrap(model, log, n=n_boot, seed=seed, observed_until=observed).set_index("channel")
        for c, p in truth.conversion.items():
            out["channels"][c]["se_bootstrap"] = float(ci.loc[c, "conversion_se"])
            out["channels"][c]["covered_bootstrap"] = bool(ci.loc[c, "conversion_low"] <= p <= ci.loc[c, "conversion_high"])
    return out


def main() -> int:
    from scipy.stats import chi2, norm

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=400)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--bootstrap", type=int, default=0, help="resamples per seed (0: delta method only)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--speed-shift", type=float, default=0.0, help="latent speed (logit units; 0: independent stages)")
    parser.add_argument("--fast-share", default=None, help="share of fast applicants per channel: referral,job_board,"
                        "agency,social_ads (default 0.5 each)")
    parser.add_argument("--applicants", type=int, default=50_000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    start = time.perf_counter()
    fast = tuple(float(x) for x in args.fast_share.split(",")) if args.fast_share else None
    jobs = [(s, args.bootstrap, args.speed_shift, args.applicants, fast)
            for s in range(args.first_seed, args.first_seed + args.seeds)]
    with ProcessPoolExecutor(max_workers=args.workers, initializer=_one_thread) as pool:
        runs = list(pool.map(one_seed, jobs, chunksize=4))
    wall = time.perf_counter() - start
    S = len(runs)
    z = float(norm.ppf(0.975))
    rows = []
    for c in sorted(runs[0]["channels"]):
        rec = [r["channels"][c] for r in runs]
        e = np.array([x["error"] for x in rec])
        sd = float(e.std(ddof=1))
        lo, hi = sd * np.sqrt((S - 1) / chi2.ppf([0.975, 0.025], S - 1))
        se_d = np.array([x["se_delta"] for x in rec])
        row = {"channel": c, "mean_error": float(e.mean()), "se_of_mean_error": sd / np.sqrt(S), "sd_across_seeds": sd,
               "sd_across_seeds_95": [float(lo), float(hi)], "mean_se_delta": float(se_d.mean()),
               "coverage_delta": float(np.mean(np.abs(e) <= z * se_d))}
        row["max_abs_error"] = float(np.abs(e).max())
        row["max_abs_mean_weeks_error"] = float(np.max([abs(x["mean_weeks_error"]) for x in rec]))
        if args.speed_shift:
            row["independent_max_abs_error"] = float(np.max([abs(x["independent_error"]) for x in rec]))
            row["independent_max_abs_mean_weeks_error"] = float(
                np.max([abs(x["independent_mean_weeks_error"]) for x in rec]))
        if fast:
            row["common_shares_max_abs_error"] = float(np.max([abs(x["common_shares_error"]) for x in rec]))
            row["common_shares_max_abs_mean_weeks_error"] = float(
                np.max([abs(x["common_shares_mean_weeks_error"]) for x in rec]))
        if args.bootstrap:
            row["mean_se_bootstrap"] = float(np.mean([x["se_bootstrap"] for x in rec]))
            row["coverage_bootstrap"] = float(np.mean([x["covered_bootstrap"] for x in rec]))
        rows.append(row)
    print(f"{S} seeds from {args.first_seed}, {args.applicants} applicants, speed shift {args.speed_shift}, "
          f"bootstrap {args.bootstrap}, {wall / 60:.1f} min; two latent classes kept in "
          f"{sum(r['classes'] == 2 for r in runs)} of {S} fits" + (f"; fast share by channel {fast}" if fast else ""))
    print(f"{'channel':<11}{'mean error':>18}{'sd across seeds':>26}{'delta se':>10}{'cov':>6}"
          + (f"{'boot se':>9}{'cov':>6}" if args.bootstrap else ""))
    for r in rows:
        lo, hi = r["sd_across_seeds_95"]
        line = (f"{r['channel']:<11}{r['mean_error']:>+10.5f}+-{r['se_of_mean_error']:.5f}"
                f"{r['sd_across_seeds']:>10.5f} [{lo:.5f},{hi:.5f}]{r['mean_se_delta']:>10.5f}{r['coverage_delta']:>6.1%}")
        if args.bootstrap:
            line += f"{r['mean_se_bootstrap']:>9.5f}{r['coverage_bootstrap']:>6.1%}"
        line += f"  max|err| {r['max_abs_error']:.4f}, mean weeks {r['max_abs_mean_weeks_error']:.3f}"
        if args.speed_shift:
            line += (f" (independent stages: {r['independent_max_abs_error']:.4f}, "
                     f"{r['independent_max_abs_mean_weeks_error']:.3f})")
        if fast:
            line += (f" (shares common to channels: {r['common_shares_max_abs_error']:.4f}, "
                     f"{r['common_shares_max_abs_mean_weeks_error']:.3f})")
        print(line)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"seeds": S, "first_seed": args.first_seed, "bootstrap": args.bootstrap,
                                    "speed_shift": args.speed_shift, "fast_share": fast, "applicants": args.applicants,
                                    "wall_seconds": wall, "rows": rows, "runs": runs}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
