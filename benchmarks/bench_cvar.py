"""CVaR at national scale: the risk-envelope cuts on the aggregated recourse (the default)
against the extensive form's excess rows, each command in a fresh process as a planner runs it.

    python benchmarks/bench_cvar.py [--compare 50x52x20] [--sizes 50x52x20,200x52x50] [--weight 0.5 --alpha 0.9]

Prints a table and writes out/benchmarks/cvar.json (recorded: benchmarks/results/cvar.json): per case the wall-clock seconds of
``optplan solve --cvar-weight W --cvar-alpha A`` end to end, peak resident memory, the
objective and CVaR from summary.json and the engine (with its number of cuts). Targets
(issue #12): 50x52x20 <= 60 s, 200x52x50 <= 10 min. The --compare size is also solved by
the extensive form (slow: about 2 minutes at 50x52x20) to show both reach the same objective.
Times are one run on a shared machine: read the ratios; the load average is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from bench_scale import REPO, instance, run


def solve(tmp: Path, size: str, formulation: str, weight: float, alpha: float) -> dict:
    out = tmp / f"plan_{size}_{formulation}"
    row = {"case": f"cvar {size} {formulation}", "size": size, "formulation": formulation,
           **run(["solve", str(instance(tmp, size)), "--out", str(out), "--quiet", "--formulation", formulation,
                  "--cvar-weight", str(weight), "--cvar-alpha", str(alpha)])}
    if (out / "summary.json").exists():
        summary = json.loads((out / "summary.json").read_text())
        row["objective"] = summary["status"]["objective"]
        row["expected_cost"] = summary["expected_cost"]["total"]
        row["cvar_cost"] = summary["kpis"]["cvar_cost"]
        row["engine"] = summary["status"]["engine"]
    return row


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--compare", default="50x52x20", help="size DxTxS also solved by the extensive form ('' for none)")
    ap.add_argument("--sizes", default="50x52x20,200x52x50", help="sizes DxTxS solved by the cuts (auto)")
    ap.add_argument("--weight", type=float, default=0.5)
    ap.add_argument("--alpha", type=float, default=0.9)
    ap.add_argument("--out", type=Path, default=REPO / "out" / "benchmarks" / "cvar.json")
    args = ap.parse_args(argv)
    load_before = os.getloadavg()[0]
    rows = []

    def show(row):
        rows.append(row)
        print(f"{row['case']:32s} exit {row['exit']}  {row['wall_s']:8.1f} s  {row['peak_mib']:7.0f} MiB  "
              f"objective {row.get('objective', float('nan')):,.2f}  CVaR {row.get('cvar_cost', float('nan')):,.2f}  "
              f"{row.get('engine', row.get('stderr_tail'))}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for size in [s for s in args.sizes.split(",") if s]:
            show(solve(tmp, size, "auto", args.weight, args.alpha))
        if args.compare:
            ext = solve(tmp, args.compare, "extensive", args.weight, args.alpha)
            show(ext)
            cuts = next((r for r in rows if r["size"] == args.compare and r["formulation"] == "auto"), None)
            if cuts is not None and "objective" in cuts and "objective" in ext:
                ratio = ext["wall_s"] / cuts["wall_s"]
                diff = abs(cuts["objective"] - ext["objective"]) / abs(ext["objective"])
                print(f"{args.compare}: cuts {ratio:.1f}x faster end to end; relative objective difference {diff:.1e}")
                rows.append({"case": f"ratio {args.compare}", "speedup_end_to_end": ratio,
                             "relative_objective_difference": diff})
    result = {"weight": args.weight, "alpha": args.alpha, "loadavg_1min_before": load_before,
              "loadavg_1min_after": os.getloadavg()[0], "cores": os.cpu_count(), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"load average (1 min) {load_before:.2f} -> {result['loadavg_1min_after']:.2f}; wrote {args.out}")


if __name__ == "__main__":
    main()
