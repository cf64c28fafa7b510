"""Service and utilisation targets at national scale: solve time with each target against the
plain solve of the same instance (issue #12: <= 1.5x at 200x52x50).

    python benchmarks/bench_targets.py [--sizes 50x52x20,200x52x50]

Targets are set so that they bind and can be met: each depot's service level at least the
25th percentile of the plain plan's depot service levels (a quarter of depots must improve),
each depot's driver utilisation at least the 25th percentile of the plain plan's, and the
network's service level halfway from the plain plan's to the most the budgets allow (an LP
maximising the network's served blocks; a level beyond it is infeasible, and HiGHS can take
minutes to prove that, so it is measured apart with a time limit). In process
(``optplan.solve`` on ``with_changes``), after one warm-up solve; prints a table and writes
out/benchmarks/targets.json (recorded: benchmarks/results/targets.json) with the load average. Times are one run on a shared
machine: read the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def network_reach(inst) -> float:
    """The highest expected network service level the instance's budgets allow (share)."""
    from formulations.two_stage.matrix import aggregated_standard_form
    from optplan.solvers.base import Deadline, SolveOptions
    from optplan.solvers.highs import highs_from_standard_form, import_highspy, service_reach

    data = inst.with_changes({"targets.network_service_level": 1.0}).model_data()
    sf = aggregated_standard_form(data)
    h = highs_from_standard_form(sf, SolveOptions()).highs
    reach = service_reach(h, import_highspy(), sf, sf.A.tocsr(), data, "network_service_target", -1,
                          sf.rows["network_service_target"].start, Deadline(None))
    return min(reach.level, 1.0) if reach is not None else 1.0


METHOD = {"method": "choose"}


def timed(inst, **kw):
    import optplan

    kw = {**METHOD, **kw}
    t0 = time.perf_counter()
    try:
        plan = optplan.solve(inst, **kw)
        return time.perf_counter() - t0, plan.status.describe(), plan.status.objective
    except optplan.OptplanError as exc:
        return time.perf_counter() - t0, type(exc).__name__, None


def main(argv=None) -> None:
    import optplan

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="50x52x20,200x52x50")
    ap.add_argument("--infeasible-limit", type=float, default=120.0,
                    help="time limit (s) for the network target past its reach")
    ap.add_argument("--method", default="choose", help="HiGHS method for every solve (choose | simplex | ipm)")
    ap.add_argument("--out", type=Path, default=REPO / "out" / "benchmarks" / "targets.json")
    args = ap.parse_args(argv)
    METHOD["method"] = args.method
    load_before = os.getloadavg()[0]
    rows = []
    for size in [s for s in args.sizes.split(",") if s]:
        D, T, S = (int(v) for v in size.split("x"))
        inst = optplan.generate_instance(depots=D, weeks=T, scenarios=S, seed=0, budget_tightness=0.8)
        optplan.solve(inst)  # warm-up (imports, first HiGHS)
        t_plain, status, obj = timed(inst)
        base = optplan.solve(inst, method=args.method)
        svc, util = base.service["service_level"], base.service["driver_utilisation"]
        reach = network_reach(inst)
        net = float(base.kpis["service_level"] + 0.5 * (reach - base.kpis["service_level"]))
        cases = [("plain", {}),
                 ("each depot's service >= P25", {"targets.service_level": float(np.quantile(svc, 0.25))}),
                 ("each depot's utilisation >= P25", {"targets.driver_utilisation": float(np.quantile(util, 0.25))}),
                 (f"network service halfway to its reach {reach:.4f}", {"targets.network_service_level": net})]
        for name, change in cases:
            t, status, obj = (t_plain, "plain", base.status.objective) if not change else timed(inst.with_changes(change))
            row = {"size": size, "case": name, "seconds": t, "ratio_to_plain": t / t_plain, "status": status,
                   "objective": obj, "changes": change}
            rows.append(row)
            print(f"{size:11s} {name:48s} {t:7.1f} s  {t / t_plain:5.2f}x  {status}", flush=True)
        past = {"targets.network_service_level": float(min(1.0, reach + 0.002))}
        t, status, _ = timed(inst.with_changes(past), time_limit=args.infeasible_limit)
        rows.append({"size": size, "case": "network service past its reach (infeasible)", "seconds": t,
                     "ratio_to_plain": t / t_plain, "status": status, "changes": past})
        print(f"{size:11s} {'network past its reach (infeasible), limit':48s} {t:7.1f} s  {t / t_plain:5.2f}x  {status}",
              flush=True)
    result = {"method": args.method, "loadavg_1min_before": load_before, "loadavg_1min_after": os.getloadavg()[0], "cores": os.cpu_count(),
              "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"load average (1 min) {load_before:.2f} -> {result['loadavg_1min_after']:.2f}; wrote {args.out}")


if __name__ == "__main__":
    main()
