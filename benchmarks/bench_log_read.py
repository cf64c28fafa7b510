"""How long does reading an applicant log take? (issue #30: a 55,000-row log in at most 3 s)

A synthetic signup log of ``--applicants`` rows (default 54,681, the size of the real-shaped
public log the issue was found on) written three ways and read by
``optplan.estimate.logs.read_applicant_log`` with every check: ISO dates; day-first dates with
the log's own column names (``column_map``) and 2% of rows with stage dates out of order
(``on_out_of_order="reorder"``); and the long format (one row per applicant and stage).
Best of ``--repeats`` reads each (the machine is shared: the best read is the one least
disturbed), with the load average at the start. Prints a table, writes JSON.

    python benchmarks/bench_log_read.py [--applicants 54681] [--repeats 3] [--out out/benchmarks/log_read.json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parents[1] / "out" / "benchmarks" / "log_read.json"
TARGET_SECONDS = 3.0


def main() -> int:
    from optplan.estimate.logs import read_applicant_log
    from optplan.estimate.synthetic import generate_applicant_log

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--applicants", type=int, default=54_681)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    apps, _, observed = generate_applicant_log(args.applicants, seed=1, depots=5)
    stages = ["applied", "background_check", "onboarding", "first_block"]
    rng = np.random.default_rng(1)
    folder = Path(tempfile.mkdtemp(prefix="log_read_"))
    iso = folder / "iso.csv"
    apps.to_csv(iso, index=False)
    # day-first dates, their own column names, 2% of rows with two stages swapped
    raw = apps.copy()
    swap = rng.random(len(raw)) < 0.02
    swap &= (raw["background_check"] != "") & (raw["onboarding"] != "") & (raw["background_check"] != raw["onboarding"])
    raw.loc[swap, ["background_check", "onboarding"]] = raw.loc[swap, ["onboarding", "background_check"]].to_numpy()
    for s in stages:
        d = pd.to_datetime(raw[s], errors="coerce")
        raw[s] = d.dt.strftime("%d-%m-%Y").fillna("")
    raw = raw.rename(columns={"applicant_id": "signup_id", "applied": "signup_date", "first_block": "first_trip"})
    dayfirst = folder / "dayfirst.csv"
    raw.to_csv(dayfirst, index=False)
    long = apps.melt(id_vars=[c for c in apps.columns if c not in stages], value_vars=stages, var_name="stage",
                     value_name="date")
    long = long[long["date"] != ""]
    long_path = folder / "long.csv"
    long.to_csv(long_path, index=False)
    cases = {
        "wide, ISO dates": (iso, {}),
        "wide, day-first dates, own column names, 2% out of order (reordered)": (dayfirst, {
            "date_format": "%d-%m-%Y", "on_out_of_order": "reorder",
            "column_map": {"signup_id": "applicant_id", "signup_date": "applied", "first_trip": "first_block"}}),
        "long (a row per applicant and stage)": (long_path, {"fmt": "long"}),
    }
    rows = []
    for name, (path, options) in cases.items():
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            log, _, notes = read_applicant_log(path, observed_until=observed, **options)
            times.append(time.perf_counter() - t0)
        rows.append({"case": name, "rows_in_file": int(sum(1 for _ in open(path)) - 1), "applicants": int(len(log)),
                     "best_seconds": round(min(times), 3), "seconds": [round(t, 3) for t in times],
                     "notes": {k: v for k, v in notes.items() if v}, "within_target": min(times) <= TARGET_SECONDS})
    print(f"{args.applicants:,} applicants, best of {args.repeats} reads, load {load:.1f} at start "
          f"(target: at most {TARGET_SECONDS:g} s)")
    for r in rows:
        print(f"  {r['best_seconds']:6.2f} s  {r['rows_in_file']:>8,} rows  {r['case']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"applicants": args.applicants, "repeats": args.repeats, "load_at_start": load,
                                    "target_seconds": TARGET_SECONDS, "rows": rows}, indent=2, default=str))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
