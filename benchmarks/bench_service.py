"""optplan serve: latency of status and output reads under load, and a solve's overhead
through the service against the CLI, in one run (issue #27).

    python benchmarks/bench_service.py [--big-depots 200] [--db URL] [--out out/benchmarks/service.json]

Starts a real server (2 workers, a fresh data dir, SQLite unless --db) and:

1. overhead: the demo and a generated national instance (--big-depots x 52 weeks x 50
   scenarios) solved by the CLI (``optplan solve``, wall clock of the process) and through the
   service (submit to finished, as a client polling every POLL_S = 0.2 s sees it), interleaved; the
   medians of --repeats (demo) and --big-repeats. Targets: demo <= 1.5 s more; big <= 10 % more;
2. latency: 200 status reads (GET /runs/{id}) and 100 output reads (applicants.csv as JSON) from
   8 client processes at once, first with the service idle, then while two big solves run. Target: p95 <= 100 ms.

Prints a table and the machine's load average; writes JSON (recorded runs: benchmarks/results/).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "service"))
sys.path.insert(0, str(REPO / "tests"))

from service_support import Server  # noqa: E402 - the tests' real-server harness

from optplan.client import Client  # noqa: E402

#: Seconds between two looks at a run while timing it (each look costs the server a few ms of
#: CPU that the solve, at a lower priority, gives up: 50 ms polls cost a big solve ~10 %).
POLL_S = 0.2
TARGET_DEMO_OVERHEAD_S = 1.5
TARGET_BIG_OVERHEAD = 0.10
TARGET_P95_MS = 100.0


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def cli_seconds(instance: Path, out: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "optplan", "solve", str(instance), "--out", str(out), "--quiet"],
                   check=True, capture_output=True)
    return time.perf_counter() - t0


def service_seconds(c: Client, dataset_id: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    run = c.submit("solve", dataset_id)
    while True:
        r = c.run(run["id"])
        if r["state"] in ("finished", "failed", "cancelled"):
            break
        time.sleep(POLL_S)
    assert r["state"] == "finished", r
    return time.perf_counter() - t0, run["id"]


def _reads(args) -> list[float]:
    """One client process: its share of the reads, one after another on one kept connection."""
    url, token, paths = args
    out = []
    with httpx.Client(base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=60) as h:
        h.get("/health")  # the connection, not counted
        for path in paths:
            t0 = time.perf_counter()
            r = h.get(path)
            out.append((time.perf_counter() - t0) * 1000.0)
            assert r.status_code == 200, (path, r.status_code)
    return out


def latencies(url: str, token: str, paths: list[str], clients: int = 8) -> list[float]:
    """Milliseconds of each GET, from ``clients`` client processes at once (separate processes,
    so the load generator's own interpreter lock does not add to the latency), each keeping its
    connection as a BI tool or a browser does. Returned in the order of ``paths``."""
    shares = [paths[i::clients] for i in range(clients)]
    with ProcessPoolExecutor(max_workers=clients) as pool:
        parts = list(pool.map(_reads, [(url, token, share) for share in shares]))
    out = [0.0] * len(paths)
    for i, part in enumerate(parts):
        out[i::clients] = part
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--big-depots", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5, help="solves of the demo each way (the median is kept)")
    ap.add_argument("--big-repeats", type=int, default=3, help="solves of the big instance each way")
    ap.add_argument("--db", default=None)
    ap.add_argument("--out", type=Path, default=REPO / "out" / "benchmarks" / "service.json")
    args = ap.parse_args(argv)
    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="bench-service-"))
    big = tmp / "big"
    subprocess.run([sys.executable, "-m", "optplan", "generate", "--depots", str(args.big_depots), "--weeks", "52",
                    "--scenarios", "50", "--seed", "1", "--out", str(big)], check=True, capture_output=True)
    demo = REPO / "instances" / "demo"
    server = Server(tmp / "data", args.db, workers=2).start()
    result: dict = {"big": f"{args.big_depots} depots x 52 weeks x 50 scenarios", "db": "postgresql" if args.db else "sqlite"}
    try:
        c = server.client()
        ids = {name: c.upload(path, kind="instance")["id"] for name, path in (("demo", demo), ("big", big))}
        # 1. overhead
        rows = []
        for name, path, n in (("demo", demo, args.repeats), ("big", big, args.big_repeats)):
            cli, svc = [], []
            for i in range(n):  # interleaved, so a load spike hits both alike
                cli.append(cli_seconds(path, tmp / f"cli-{name}-{i}"))
                svc.append(service_seconds(c, ids[name])[0])
            row = {"instance": name, "cli_s": statistics.median(cli), "service_s": statistics.median(svc)}
            row["overhead_s"] = row["service_s"] - row["cli_s"]
            row["overhead_ratio"] = row["overhead_s"] / row["cli_s"]
            rows.append(row)
        result["overhead"] = rows
        # 2. latency, idle and with two big solves running
        _, demo_run = service_seconds(c, ids["demo"])
        paths = [f"/runs/{demo_run}"] * 200 + [f"/runs/{demo_run}/outputs/applicants.csv?format=json"] * 100
        idle = latencies(server.url, server.admin, paths)
        busy_runs = [c.submit("solve", ids["big"])["id"] for _ in range(2)]
        while any(c.run(r)["state"] == "queued" for r in busy_runs):
            time.sleep(0.1)
        busy = latencies(server.url, server.admin, paths)
        states = [c.run(r)["state"] for r in busy_runs]
        result["latency_ms"] = {
            label: {"status_p50": pct(v[:200], 0.5), "status_p95": pct(v[:200], 0.95),
                    "output_p50": pct(v[200:], 0.5), "output_p95": pct(v[200:], 0.95)}
            for label, v in (("idle", idle), ("two_big_solves_running", busy))}
        result["big_solves_still_running_after_the_reads"] = states.count("running")
        for r in busy_runs:
            c.wait(r)
    finally:
        server.stop()
    load = {"loadavg_1min_before": load_before[0], "loadavg_1min_after": os.getloadavg()[0], "cores": os.cpu_count()}
    result.update(load)
    print(f"{'instance':10s} {'CLI s':>8s} {'service s':>10s} {'overhead s':>11s} {'overhead':>9s}")
    for r in result["overhead"]:
        print(f"{r['instance']:10s} {r['cli_s']:8.2f} {r['service_s']:10.2f} {r['overhead_s']:11.2f} {r['overhead_ratio']:9.1%}")
    print(f"{'reads (ms)':30s} {'status p50':>10s} {'p95':>7s} {'output p50':>11s} {'p95':>7s}")
    for label, v in result["latency_ms"].items():
        print(f"{label:30s} {v['status_p50']:10.1f} {v['status_p95']:7.1f} {v['output_p50']:11.1f} {v['output_p95']:7.1f}")
    demo_row, big_row = result["overhead"]
    result["targets"] = {
        "demo_overhead_s<=1.5": demo_row["overhead_s"] <= TARGET_DEMO_OVERHEAD_S,
        "big_overhead<=10%": big_row["overhead_ratio"] <= TARGET_BIG_OVERHEAD,
        "p95<=100ms_busy": all(v <= TARGET_P95_MS for k, v in result["latency_ms"]["two_big_solves_running"].items()
                               if k.endswith("p95")),
    }
    print("targets:", ", ".join(f"{k} {'met' if ok else 'MISSED'}" for k, ok in result["targets"].items()))
    print(f"load average (1 min) {load['loadavg_1min_before']:.2f} -> {load['loadavg_1min_after']:.2f} on {load['cores']} cores")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
