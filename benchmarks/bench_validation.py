"""Validation time and memory on big tables (issue #16: "a 50 MB table of duplicated rows
takes minutes and 1.2 GB to validate").

    python benchmarks/bench_validation.py [--mb 50]

Builds, from the demo instance, a demand.csv of about ``--mb`` megabytes in two versions, one
of valid distinct rows (a generated instance with many depots and scenarios) and one of the
demo's rows repeated (millions of duplicate keys), and times ``load_instance`` on each (the
valid one to the typed instance, the duplicated one to its InstanceError). Prints a table and
writes out/benchmarks/validation.json (recorded: benchmarks/results/validation.json). Target: each within seconds (< 15 s here), peak
memory well under the 1.2 GB measured before. Wall-clock of one run on a shared machine (the
load average is recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from optplan import load_instance
from optplan.errors import InstanceError
from optplan.io.generate import generate_instance

REPO = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 15.0


def duplicated(folder: Path, mb: float) -> None:
    shutil.copytree(REPO / "instances" / "demo", folder)
    lines = (folder / "demand.csv").read_text().splitlines()
    body = "\n".join(lines[1:]) + "\n"
    (folder / "demand.csv").write_text(lines[0] + "\n" + body * int(mb * 1e6 / len(body) + 1))


def distinct(folder: Path, mb: float) -> None:
    # about 18 bytes per demand row: depots x weeks x scenarios rows
    rows = mb * 1e6 / 18
    depots = 500
    weeks = 104
    scenarios = max(1, int(rows / (depots * weeks)))
    generate_instance(depots=depots, weeks=weeks, scenarios=scenarios, seed=1).write(folder)


def timed(folder: Path) -> tuple[float, str]:
    t0 = time.perf_counter()
    try:
        load_instance(folder)
        outcome = "valid"
    except InstanceError as exc:
        outcome = f"{len(exc.problems) + exc.omitted:,} problems"
    return time.perf_counter() - t0, outcome


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=50.0)
    ap.add_argument("--out", type=Path, default=REPO / "out" / "benchmarks" / "validation.json")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, make in (("distinct rows", distinct), ("duplicated rows", duplicated)):
            folder = Path(tmp) / label.replace(" ", "_")
            make(folder, args.mb)
            size = (folder / "demand.csv").stat().st_size / 1e6
            seconds, outcome = timed(folder)
            rows.append({"table": label, "demand_csv_mb": round(size, 1), "seconds": round(seconds, 2),
                         "outcome": outcome, "within_target": seconds <= TARGET_SECONDS})
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{'table':<16} {'MB':>6} {'seconds':>8}  outcome")
    for r in rows:
        print(f"{r['table']:<16} {r['demand_csv_mb']:>6} {r['seconds']:>8}  {r['outcome']}")
    load = os.getloadavg()
    print(f"peak memory of the process {peak_mb:,.0f} MB; target <= {TARGET_SECONDS:g} s each; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"target_seconds": TARGET_SECONDS, "peak_memory_mb": peak_mb,
                                    "load_average": load, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
