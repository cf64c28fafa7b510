"""National scale: the aggregated recourse against the extensive form, and end-to-end solves
(and the report) at national sizes, each command in a fresh process as a planner runs it.

    python benchmarks/bench_scale.py [--sizes 50x52x20,200x52x50] [--big] [--report]

Prints a table and writes out/benchmarks/scale.json (recorded: benchmarks/results/scale.json): per case the wall-clock seconds of
the whole command, the peak resident memory of its process, the expected cost and the
total-budget shadow price from summary.json. Targets (issue #11): 50x52x20 aggregated
>= 20x faster than the extensive form end to end with the same objective (1e-7) and budget
duals; 200x52x50 <= 30 s and <= 2 GB; 500x104x50 (--big) <= 5 min and <= 5 GB; the report
at 200x52x50 (--report, 10-point frontier and tornado) <= 10 min. Times are one run on a
shared machine: read the ratios; the load average is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: Runs the CLI in this process and reports its peak RSS (KiB on Linux) on the last stderr line,
#: also when the command ends by optplan.cli.run's fast exit (os._exit, wrapped to say it first).
_WRAP = ("import os, resource, runpy, sys; sys.argv = ['optplan'] + sys.argv[1:]\n"
         "def peak(): print('PEAK_RSS_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr, "
         "flush=True)\n"
         "_exit = os._exit\n"
         "def fast_exit(code):\n    peak()\n    _exit(code)\n"
         "os._exit = fast_exit\n"
         "try:\n    runpy.run_module('optplan', run_name='__main__')\n"
         "except SystemExit as e:\n    code = e.code\n"
         "peak()")


def run(args: list[str]) -> dict:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", _WRAP, *args], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    peak = next((int(line.split()[1]) for line in r.stderr.splitlines()[::-1] if line.startswith("PEAK_RSS_KIB")), 0)
    row = {"wall_s": wall, "peak_mib": peak / 1024, "exit": r.returncode, "stderr_tail": r.stderr.strip()[-300:]}
    phases = next((line for line in r.stderr.splitlines() if line.startswith("time by phase: ")), None)
    if phases:  # 'time by phase: read and check 0.39 s, ..., write 0.12 s (2.33 s in all; ...)'
        parts = phases.removeprefix("time by phase: ").split(" (")[0].split(", ")
        row["phases_s"] = {p.rsplit(" ", 2)[0]: float(p.rsplit(" ", 2)[1]) for p in parts}
    return row


def instance(tmp: Path, size: str) -> Path:
    D, T, S = (int(v) for v in size.split("x"))
    path = tmp / size
    if not path.exists():
        subprocess.run([sys.executable, "-m", "optplan", "generate", "--depots", str(D), "--weeks", str(T),
                        "--scenarios", str(S), "--seed", "0", "--budget-tightness", "0.8", "--out", str(path)],
                       check=True, capture_output=True)
    return path


def solve(tmp: Path, size: str, formulation: str, extra: tuple[str, ...] = (), label: str | None = None) -> dict:
    out = tmp / f"plan_{size}_{formulation}_{len(extra)}_{'_'.join(extra)[-20:].replace('/', '')}"
    row = {"case": label or f"solve {size} {formulation}",
           **run(["solve", str(instance(tmp, size)), "--out", str(out), "--quiet", "--formulation", formulation, *extra])}
    if (out / "summary.json").exists():
        summary = json.loads((out / "summary.json").read_text())
        row["expected_cost"] = summary["expected_cost"]["total"]
        total = [b for b in summary["binding_budgets"] if b["scope"] == "total"]
        row["total_budget_shadow_price"] = total[0]["shadow_price"] if total else None
        row["status"] = summary["status"]["summary"]
    return row


def decompose_speedup(path: Path) -> list[dict]:
    """Engine time of the decomposition on 1 and 2 warm workers (workers started and
    imports done before the clock starts), local processes and a local Dask cluster."""
    import optplan
    from optplan.solvers import Deadline, SolveOptions
    from optplan.solvers.backends import get_backend
    from optplan.solvers.decompose import DecomposeEngine, solve_depot_group

    data = optplan.load_instance(path).model_data()
    out = []
    for name in ("local", "dask"):
        for workers in (1, 2):
            backend = get_backend(name, None, workers)
            try:
                backend.map_pinned(solve_depot_group, [[] for _ in range(workers)])
                t0 = time.perf_counter()
                r = DecomposeEngine(backend_object=backend).solve(data, SolveOptions(), Deadline(None))
                out.append({"case": f"decompose engine {name} x{workers}", "engine_s": time.perf_counter() - t0,
                            "objective": r.status.objective, "bound": r.status.bound, "status": r.status.native_status})
            finally:
                backend.close()
    return out


def overhead(tmp: Path, size: str, repeats: int, show) -> dict:
    """Issue #34 part 4: the solve command end to end against its solve, ``repeats`` times (after
    a warm-up), by the command's own phase line; medians."""
    import numpy as np

    path = instance(tmp, size)
    run(["solve", str(path), "--out", str(tmp / "overhead_warmup"), "--quiet"])
    rows = []
    for i in range(repeats):
        row = {"case": f"overhead {size} run {i + 1}", **run(["solve", str(path), "--out", str(tmp / "overhead")])}
        show(row)
        rows.append(row)
    wall = float(np.median([r["wall_s"] for r in rows]))
    phases = {k: float(np.median([r["phases_s"].get(k, 0.0) for r in rows])) for k in rows[0]["phases_s"]}
    return {"case": f"overhead {size} (median of {repeats})", "wall_s": wall, "phases_s": phases,
            "wall_minus_solve_s": wall - phases["solve"],
            "wall_minus_solve_and_orders_s": wall - phases["solve"] - phases.get("orders", 0.0),
            "start_up_and_imports_s": wall - sum(phases.values())}


def growth(tmp: Path, base: str, show) -> dict[str, dict]:
    """Solve the base size with each of depots, weeks and scenarios at 1/4, 1/2, 1 and 2 times its
    base value (the others kept), each command end to end in a fresh process; per axis the
    least-squares exponent b of wall time ~ a * size^b over the four sizes."""
    import numpy as np

    D, T, S = (int(v) for v in base.split("x"))
    solve(tmp, f"{max(1, D // 4)}x{T}x{S}", "auto", label="growth warm-up (not counted)")  # a cold first start
    out = {}
    for axis, i in (("depots", 0), ("weeks", 1), ("scenarios", 2)):
        values, seconds = [], []
        for f in (0.25, 0.5, 1.0, 2.0):
            size = [D, T, S]
            size[i] = max(1, round(size[i] * f))
            row = solve(tmp, "x".join(map(str, size)), "auto", label=f"growth {axis} {'x'.join(map(str, size))}")
            show(row)
            values.append(size[i])
            seconds.append(row["wall_s"])
        b = float(np.polyfit(np.log(values), np.log(seconds), 1)[0])
        out[axis] = {"case": f"growth in {axis} from {base}", "sizes": values, "seconds": seconds, "exponent": b}
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--compare", default="50x52x20", help="size DxTxS solved both ways ('' for none)")
    ap.add_argument("--sizes", default="200x52x50", help="sizes DxTxS solved with the default (aggregated) formulation")
    ap.add_argument("--big", action="store_true", help="also 500x104x50")
    ap.add_argument("--report", action="store_true", help="also `optplan report` at the first of --sizes")
    ap.add_argument("--decompose", action="store_true",
                    help="also the depot decomposition at the first of --sizes on 1 and 2 local and Dask workers")
    ap.add_argument("--growth", default="",
                    help="DxTxS base size: also solve it with depots, weeks and scenarios each at 1/4, 1/2, 1 and 2 "
                         "times the base (the others kept) and fit the exponent of time in each (issue #34)")
    ap.add_argument("--overhead", default="",
                    help="DxTxS: also the solve command's wall time against its solve, 5 runs (issue #34 part 4: "
                         "<= solve + 1.5 s at 50x52x20)")
    ap.add_argument("--out", type=Path, default=REPO / "out" / "benchmarks" / "scale.json")
    args = ap.parse_args(argv)
    load_before = os.getloadavg()[0]
    rows = []

    def show(row):
        rows.append(row)
        cost = row.get("expected_cost")
        print(f"{row['case']:34s} exit {row['exit']}  {row['wall_s']:8.1f} s  {row['peak_mib']:7.0f} MiB  "
              f"cost {cost if cost is None else f'{cost:,.2f}'}  price {row.get('total_budget_shadow_price')}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.compare:
            agg = solve(tmp, args.compare, "aggregated")
            show(agg)
            ext = solve(tmp, args.compare, "extensive")
            show(ext)
            ratio = ext["wall_s"] / agg["wall_s"]
            same = abs(agg["expected_cost"] - ext["expected_cost"]) / abs(ext["expected_cost"])
            print(f"{args.compare}: aggregated {ratio:.1f}x faster end to end; relative cost difference {same:.1e}")
            rows.append({"case": f"ratio {args.compare}", "speedup_end_to_end": ratio, "relative_cost_difference": same})
        sizes = [s for s in args.sizes.split(",") if s] + (["500x104x50"] if args.big else [])
        for size in sizes:
            show(solve(tmp, size, "auto"))
        if args.decompose and sizes:
            show(solve(tmp, sizes[0], "auto", ("--engine", "decompose"), f"decompose {sizes[0]} (CLI, local)"))
            for row in decompose_speedup(instance(tmp, sizes[0])):
                rows.append(row)
                print(f"{row['case']:34s} {row['engine_s']:8.1f} s  {row['status']}", flush=True)
            for backend in ("local", "dask"):
                one = next(r for r in rows if r["case"] == f"decompose engine {backend} x1")["engine_s"]
                two = next(r for r in rows if r["case"] == f"decompose engine {backend} x2")["engine_s"]
                print(f"decomposition on {backend}: 2 workers {one / two:.2f}x faster than 1 (engine time, warm workers)")
                rows.append({"case": f"decompose speed-up {backend} 2 vs 1 workers", "ratio": one / two})
        if args.growth:
            for axis, row in growth(tmp, args.growth, show).items():
                rows.append(row)
                print(f"time grows as {axis}^{row['exponent']:.2f} (sizes {row['sizes']}, seconds "
                      f"{[round(s, 1) for s in row['seconds']]})", flush=True)
        if args.overhead:
            row = overhead(tmp, args.overhead, 5, show)
            rows.append(row)
            print(f"{row['case']}: wall {row['wall_s']:.2f} s = solve {row['phases_s']['solve']:.2f} s + "
                  f"{row['wall_minus_solve_s']:.2f} s (orders {row['phases_s'].get('orders', 0):.2f} s, start-up and "
                  f"imports {row['start_up_and_imports_s']:.2f} s; phases {row['phases_s']})", flush=True)
        if args.report and sizes:
            show({"case": f"report {sizes[0]}", **run(["report", str(instance(tmp, sizes[0])), "--out",
                                                      str(tmp / "report"), "--quiet"])})
    result = {"loadavg_1min_before": load_before, "loadavg_1min_after": os.getloadavg()[0], "cores": os.cpu_count(),
              "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"load average (1 min) {load_before:.2f} -> {result['loadavg_1min_after']:.2f}; wrote {args.out}")


if __name__ == "__main__":
    main()
