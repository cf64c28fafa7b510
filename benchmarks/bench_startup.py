"""Start-up time of the CLI against a bare interpreter, in one run.

    python benchmarks/bench_startup.py [--repeats 7]

Times, in interleaved rounds (so a load spike hits every command alike), `python -c pass`,
`optplan --version`, `optplan --help` and `optplan validate instances/demo`; prints the
median wall-clock seconds of each, its ratio to `python -c pass`, and the machine's load
average; writes out/benchmarks/startup.json (recorded: benchmarks/results/startup.json). Target (issue #10): --version, --help and
validate start in well under a second.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "optplan --version": [sys.executable, "-m", "optplan", "--version"],
    "optplan --help": [sys.executable, "-m", "optplan", "--help"],
    "optplan validate demo": [sys.executable, "-m", "optplan", "validate", str(REPO / "instances" / "demo")],
}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", type=Path, default=REPO / "out" / "benchmarks" / "startup.json")
    args = ap.parse_args(argv)
    times: dict[str, list[float]] = {k: [] for k in COMMANDS}
    load_before = os.getloadavg()
    for _ in range(args.repeats):
        for name, cmd in COMMANDS.items():
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True, cwd=REPO)
            times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["python -c pass"])
    rows = []
    print(f"{'command':24s} {'median s':>9s} {'min s':>7s} {'x python':>9s}")
    for name, ts in times.items():
        med = statistics.median(ts)
        rows.append({"command": name, "median_s": med, "min_s": min(ts), "ratio_to_python": med / base})
        print(f"{name:24s} {med:9.3f} {min(ts):7.3f} {med / base:9.1f}")
    load = {"loadavg_1min_before": load_before[0], "loadavg_1min_after": os.getloadavg()[0], "cores": os.cpu_count()}
    print(f"load average (1 min) {load['loadavg_1min_before']:.2f} -> {load['loadavg_1min_after']:.2f} on {load['cores']} cores")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"repeats": args.repeats, "rows": rows, **load}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
