"""Budget frontier: warm-started re-solves against cold ones, and the report's build time.

For each instance, the same K-point frontier is computed twice on one persistent HiGHS model:
warm (each re-solve starts from the previous point's basis) and cold (HiGHS's solver state is
cleared before each point). Prints a table and writes JSON (atomically) to
out/benchmarks/frontier_warm_vs_cold.json (recorded: benchmarks/results/frontier_warm_vs_cold.json).
Ratios are measured within one run; absolute seconds on a shared 2-core machine are indicative only.

    python benchmarks/bench_frontier.py [--points 10] [--sizes 5x12x10,20x26x10,50x52x10]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

import optplan
from optplan.explain.report import build_report
from optplan.explain.sensitivity import SensitivityModel

RESULTS = Path(__file__).resolve().parents[1] / "out" / "benchmarks" / "frontier_warm_vs_cold.json"


def measure(depots: int, weeks: int, scenarios: int, points: int) -> dict:
    inst = optplan.generate_instance(depots=depots, weeks=weeks, scenarios=scenarios, seed=0, budget_tightness=0.7)
    sm = SensitivityModel(inst.model_data())
    budgets = np.linspace(0.0, sm.unconstrained_spend(), points)
    t = time.perf_counter()
    warm = sm.budget_frontier(budgets=budgets, warm=True)
    warm_s = time.perf_counter() - t
    t = time.perf_counter()
    cold = sm.budget_frontier(budgets=budgets, warm=False)
    cold_s = time.perf_counter() - t
    agree = float(np.max(np.abs(warm["expected_cost"] - cold["expected_cost"]) / np.maximum(1, cold["expected_cost"])))
    return {"size": f"{depots}x{weeks}x{scenarios}", "points": points, "warm_s": warm_s, "cold_s": cold_s,
            "speedup_cold_over_warm": cold_s / warm_s, "max_rel_diff_expected_cost": agree}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10)
    parser.add_argument("--sizes", default="5x12x10,20x26x10,50x52x10")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON file (benchmarks/results/... to record a run)")
    args = parser.parse_args()
    rows = []
    for size in args.sizes.split(","):
        d, t, s = (int(x) for x in size.lower().split("x"))
        rows.append(measure(d, t, s, args.points))
        r = rows[-1]
        print(f"{r['size']:>10}  warm {r['warm_s']:7.2f} s  cold {r['cold_s']:7.2f} s  "
              f"speed-up {r['speedup_cold_over_warm']:5.1f}x  max rel diff {r['max_rel_diff_expected_cost']:.1e}")
    t = time.perf_counter()
    build_report(optplan.load_instance(Path(__file__).resolve().parents[1] / "instances" / "demo"), frontier_points=10)
    report_s = time.perf_counter() - t
    print(f"report on instances/demo with a 10-point frontier: {report_s:.1f} s (target: under 60 s)")
    payload = {"benchmark": "frontier_warm_vs_cold", "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
               "results": rows, "report_demo_s": report_s, "report_target_s": 60}
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(payload, fh, indent=2)
    os.replace(tmp, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
