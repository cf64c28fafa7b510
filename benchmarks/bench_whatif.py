"""Warm what-ifs against cold solves (issue #34 part 2): one persistent HiGHS model updated in
place (optplan.solvers.warm.WarmModel) against a cold solve of each changed instance by the
HiGHS engine, at ``--size`` (default 200x52x50; target: one budget changed re-solves in at most
25 % of the cold solve, the same optimum to 1e-7).

Per change (applied to the base instance, one at a time, each warm from the previous solve's
basis): the warm solve's HiGHS time, its build (arrays) and update (pushing the differences)
times, the cold solve's HiGHS time and its whole engine time (build included), the ratios, and
the relative difference of the optima. One run; ratios within the run; the load is noted.

    python benchmarks/bench_whatif.py [--size 200x52x50] [--seed 0] [--out out/benchmarks/whatif.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "out" / "benchmarks" / "whatif.json"
TARGET_RATIO = 0.25


def main() -> int:
    import optplan
    from optplan.io.whatif import Scale
    from optplan.solvers import SolveOptions, get_engine, solve_data
    from optplan.solvers.warm import WarmModel

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="200x52x50")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    D, T, S = (int(x) for x in args.size.split("x"))
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    inst = optplan.generate_instance(depots=D, weeks=T, scenarios=S, seed=args.seed, budget_tightness=0.8)
    print(f"{args.size}: generated in {time.perf_counter() - t0:.1f} s (load {load:.1f})", flush=True)
    options = SolveOptions()
    warm = WarmModel(options)
    t0 = time.perf_counter()
    base = warm.solve(inst.model_data())
    print(f"base (the warm model's first, cold) solve: HiGHS {base.timings.solve_s:.1f} s, "
          f"build {base.timings.build_s:.1f} s, all {time.perf_counter() - t0:.1f} s", flush=True)
    changes = [("one budget: budgets.total x 0.95", {"budgets.total": Scale(0.95)}),
               ("one budget: budgets.total x 0.99", {"budgets.total": Scale(0.99)}),
               ("costs: channels.cost_per_applicant x 1.1", {"channels.cost_per_applicant": Scale(1.1)}),
               ("penalty: penalties.unserved_cost_per_block x 1.2", {"penalties.unserved_cost_per_block": Scale(1.2)}),
               ("demand: demand.blocks x 1.05", {"demand.blocks": Scale(1.05)})]
    rows = []
    for name, change in changes:
        data = inst.with_changes(change).model_data()
        t0 = time.perf_counter()
        w = warm.solve(data)
        warm_all = time.perf_counter() - t0
        start = warm.last_start
        t0 = time.perf_counter()
        c = solve_data(data, options, get_engine("highs"))
        cold_all = time.perf_counter() - t0
        rel = abs(w.status.objective - c.status.objective) / max(1.0, abs(c.status.objective))
        row = {"change": name, "warm": start.warm, "warm_highs_s": round(w.timings.solve_s, 2),
               "warm_build_s": round(start.build_s, 2), "warm_update_s": round(start.update_s, 3),
               "warm_all_s": round(warm_all, 2), "cold_highs_s": round(c.timings.solve_s, 2),
               "cold_all_s": round(cold_all, 2), "ratio_highs": round(w.timings.solve_s / c.timings.solve_s, 3),
               "ratio_all": round(warm_all / cold_all, 3), "objective_relative_difference": rel,
               "pushed": {"costs": start.costs_changed, "column_bounds": start.column_bounds_changed,
                          "row_bounds": start.row_bounds_changed, "coefficients": start.coefficients_changed}}
        rows.append(row)
        print(f"  {name:<52} warm {warm_all:6.1f} s (HiGHS {w.timings.solve_s:5.1f}, build {start.build_s:4.1f}, "
              f"update {start.update_s:.3f}) cold {cold_all:6.1f} s (HiGHS {c.timings.solve_s:5.1f}): "
              f"{row['ratio_all']:.0%} of cold; optima differ by {rel:.1e}", flush=True)
    met = rows[0]["ratio_all"] <= TARGET_RATIO and rows[0]["objective_relative_difference"] <= 1e-7
    print(f"target (one budget changed: at most {TARGET_RATIO:.0%} of the cold solve, same optimum 1e-7): "
          f"{'met' if met else 'NOT MET'}; load {os.getloadavg()[0]:.1f} at the end")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"size": args.size, "seed": args.seed, "load_at_start": load,
                                    "load_at_end": os.getloadavg()[0], "base_highs_s": base.timings.solve_s,
                                    "rows": rows, "target_ratio": TARGET_RATIO, "target_met": met}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
