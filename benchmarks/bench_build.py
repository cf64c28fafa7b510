"""Build + hand-off cost of the Pyomo model versus the HiGHS solve, against a direct baseline.

For each instance size (depots x weeks x scenarios) the instance is generated once (fixed
seed) and then each route runs in a FRESH spawned process, so peak memory is per route:

    pyomo:  formulations.two_stage.build_model -> optplan.solvers.highs.compile_to_highs -> Highs.run
    direct: direct_highspy.lp_arrays (benchmarks/direct_highspy.py) -> highs_from_arrays (one passModel) -> Highs.run

Both routes solve the same LP (same columns, rows and order) with the same HiGHS options:
defaults, output off, default threads. Reported per route: variables, constraints,
nonzeros, build seconds, hand-off seconds, solve seconds (``Highs.run``; its CPU seconds
and the load average go to the JSON, to tell a slow solve from a busy machine), objective
(currency), peak RSS MiB (``ru_maxrss`` of the child, which includes the interpreter and
imports; the RSS before the build is reported too). Per size, the ratios

    (pyomo build + hand-off) / (pyomo solve)      target <= 0.5 at 50x52x20 and above
    pyomo peak RSS / direct peak RSS              target <= 2
    pyomo build + hand-off / direct build + hand-off   (no target)

are printed with met / not met and written, with machine information, to
``out/benchmarks/build_vs_solve.json (recorded: benchmarks/results/build_vs_solve.json)`` (atomically: temporary file, then os.replace).

``--check`` instead verifies the baseline: on generated instances (3x6x4 and 10x26x10,
several seeds, plus data variants that switch on the optional rows) the direct LP must
have the Pyomo route's variable, row and nonzero counts and its optimal objective to
1e-7 relative; the exit status is 1 on any mismatch.

Usage:
    python benchmarks/bench_build.py --check
    python benchmarks/bench_build.py                      # 10x26x10, 50x52x20, 200x52x50
    python benchmarks/bench_build.py --quick              # the first two sizes only
    python benchmarks/bench_build.py --sizes 10x26x10,50x52x20 --repeat 3

Timings are wall-clock and noisy on a shared machine; nothing here asserts on them.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import datetime as dt
import json
import math
import multiprocessing
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # direct_highspy lives next to this script, not in the package
    sys.path.insert(0, str(HERE))

DEFAULT_SIZES = "10x26x10,50x52x20,200x52x50"
DEFAULT_OUT = HERE.parent / "out" / "benchmarks" / "build_vs_solve.json"
SEED = 0
ROUTES = ("pyomo", "direct")
#: (pyomo build + hand-off) / (pyomo solve) must be at most this ...
BUILD_SOLVE_TARGET = 0.5
#: ... at sizes with at least this many depot-week-scenario cells (50x52x20).
BUILD_SOLVE_FROM_CELLS = 50 * 52 * 20
#: pyomo peak RSS / direct peak RSS must be at most this.
MEMORY_TARGET = 2.0
#: --check: relative objective tolerance.
CHECK_RTOL = 1e-7

MIB = 1024.0 * 1024.0


# --------------------------------------------------------------------------- helpers


def parse_sizes(text: str) -> list[tuple[int, int, int]]:
    """'10x26x10,50x52x20' -> [(10, 26, 10), (50, 52, 20)] (depots, weeks, scenarios)."""
    sizes = []
    for part in text.split(","):
        part = part.strip().lower()
        if not part:
            continue
        fields = part.split("x")
        if len(fields) != 3 or not all(f.isdigit() and int(f) > 0 for f in fields):
            raise argparse.ArgumentTypeError(f"size {part!r} is not DEPOTSxWEEKSxSCENARIOS")
        sizes.append(tuple(int(f) for f in fields))
    if not sizes:
        raise argparse.ArgumentTypeError("no sizes given")
    return sizes


def size_label(size: tuple[int, int, int]) -> str:
    return "x".join(str(n) for n in size)


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, MiB (Linux reports ru_maxrss in KiB)."""
    import resource

    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024.0 if sys.platform != "darwin" else kib / MIB


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process so far (all threads)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def rel_diff(a: float | None, b: float | None) -> float:
    """|a - b| / max(1, |a|, |b|); inf when either is missing."""
    if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
        return math.inf
    return abs(a - b) / max(1.0, abs(a), abs(b))


def atomic_write_json(path: Path, payload: Any) -> None:
    """Write JSON atomically: ``optplan.io.atomic`` writes a temporary file in the same folder
    (with the usual permissions), fsyncs it, then os.replace()s it into place."""
    from optplan.io.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(payload, indent=2) + "\n")


def machine_info() -> dict[str, Any]:
    """CPU, memory and library versions of this machine (for reading the timings)."""
    from importlib import metadata

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    cpu_model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_total_mib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_total_mib = round(int(line.split()[1]) / 1024.0, 1)
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "-C", str(HERE.parent), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    import highspy

    from optplan.solvers.highs import import_highspy

    import_highspy()  # silences the licence banner of the first Highs()
    return {
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": cpu_model,
        "mem_total_mib": mem_total_mib,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "pyomo": version("pyomo"),
        "highspy": version("highspy"),
        "highs": highspy.Highs().version(),
        "numpy": version("numpy"),
        "scipy": version("scipy"),
        "git_commit": commit,
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


# --------------------------------------------------------------------------- child process


def measure_route(route: str, data: Any, time_limit: float | None = None) -> dict[str, Any]:
    """Run one route in this (fresh) process and report sizes, seconds and MiB.

    Both routes import the same modules before the RSS baseline is read, so the peaks are
    comparable; ``data`` (a ModelData) has been unpickled by then too.
    """
    import direct_highspy
    import highspy  # noqa: F401  (same imports for both routes)
    import pyomo.environ  # noqa: F401

    from formulations import two_stage
    from optplan.solvers.base import SolveOptions
    from optplan.solvers.highs import compile_to_highs, import_highspy

    import_highspy()  # first Highs() prints a banner; construct it silenced
    rss_start = peak_rss_mib()
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    out: dict[str, Any] = {"route": route, "pid": os.getpid(), "rss_start_mib": rss_start}
    if route == "pyomo":
        t0 = time.perf_counter()
        model = two_stage.build_model(data)
        t1 = time.perf_counter()
        compiled = compile_to_highs(model, SolveOptions())
        t2 = time.perf_counter()
        h = compiled.highs
        n_cols, n_rows, n_nz = compiled.n_cols, compiled.n_rows, compiled.n_nonzeros
        # as optplan.solve does: HiGHS has its copy, so the Pyomo model is released first
        compiled.model = None
        del model
        import gc

        gc.collect()
    elif route == "direct":
        t0 = time.perf_counter()
        arrays = direct_highspy.lp_arrays(data)
        t1 = time.perf_counter()
        h = direct_highspy.highs_from_arrays(arrays)
        t2 = time.perf_counter()
        del arrays
        n_cols, n_rows, n_nz = h.getNumCol(), h.getNumRow(), h.getNumNz()
    else:
        raise ValueError(f"unknown route {route!r}")
    rss_handoff = peak_rss_mib()
    if time_limit is not None:
        h.setOptionValue("time_limit", float(time_limit))
    cpu3 = _cpu_seconds()
    t3 = time.perf_counter()
    h.run()
    t4 = time.perf_counter()
    cpu4 = _cpu_seconds()
    info = h.getInfo()
    status = h.modelStatusToString(h.getModelStatus())
    out.update(
        variables=int(n_cols),
        constraints=int(n_rows),
        nonzeros=int(n_nz),
        build_s=t1 - t0,  # seconds: Pyomo model / numpy arrays
        handoff_s=t2 - t1,  # seconds: standard-form compile + passModel / passModel only
        build_handoff_s=t2 - t0,  # seconds
        solve_s=t4 - t3,  # seconds: Highs.run (a lower bound when time_limited)
        time_limited=status == "Time limit reached",
        solve_cpu_s=cpu4 - cpu3,  # CPU seconds (all threads) of Highs.run; << solve_s means CPU contention
        objective=float(info.objective_function_value) if status == "Optimal" else None,
        highs_status=status,
        simplex_iterations=int(info.simplex_iteration_count),
        ipm_iterations=int(info.ipm_iteration_count),
        rss_after_handoff_mib=rss_handoff,  # MiB, high-water mark after the hand-off
        peak_rss_mib=peak_rss_mib(),  # MiB, high-water mark of the whole child
        load_average_1min_before=load_before,
        load_average_1min_after=os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    )
    return out


def run_in_fresh_process(route: str, data: Any, time_limit: float | None = None) -> dict[str, Any]:
    """``measure_route`` in a new spawned interpreter (one process per call)."""
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(measure_route, route, data, time_limit).result()


# --------------------------------------------------------------------------- benchmark


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Best of the repeats: minimum of each time, maximum of each RSS, first run's counts."""
    first = dict(runs[0])
    for key in ("build_s", "handoff_s", "build_handoff_s", "solve_s"):
        first[key] = min(r[key] for r in runs)
    for key in ("rss_start_mib", "rss_after_handoff_mib", "peak_rss_mib"):
        first[key] = max(r[key] for r in runs)
    first["repeats"] = len(runs)
    first.pop("pid", None)
    return first


def ratios(size: tuple[int, int, int], pyomo: dict[str, Any], direct: dict[str, Any]) -> dict[str, Any]:
    """The per-size ratios and whether each target is met (None: no target at this size)."""
    D, T, S = size
    bh_solve = pyomo["build_handoff_s"] / pyomo["solve_s"] if pyomo["solve_s"] > 0 else math.inf
    applies = D * T * S >= BUILD_SOLVE_FROM_CELLS
    mem = pyomo["peak_rss_mib"] / direct["peak_rss_mib"]
    mem_delta_direct = direct["peak_rss_mib"] - direct["rss_start_mib"]
    mem_delta = (
        (pyomo["peak_rss_mib"] - pyomo["rss_start_mib"]) / mem_delta_direct if mem_delta_direct > 0 else None
    )
    return {
        "pyomo_build_handoff_over_solve": bh_solve,
        # a time-limited solve is a lower bound on the solve time, so the ratio is an upper bound
        "pyomo_build_handoff_over_solve_is_upper_bound": bool(pyomo.get("time_limited")),
        "pyomo_build_handoff_over_solve_target": BUILD_SOLVE_TARGET if applies else None,
        "pyomo_build_handoff_over_solve_met": (bh_solve <= BUILD_SOLVE_TARGET) if applies else None,
        "peak_rss_pyomo_over_direct": mem,
        "peak_rss_pyomo_over_direct_target": MEMORY_TARGET,
        "peak_rss_pyomo_over_direct_met": mem <= MEMORY_TARGET,
        "rss_growth_pyomo_over_direct": mem_delta,  # (peak - start) ratio, for reference
        "build_handoff_pyomo_over_direct": pyomo["build_handoff_s"] / direct["build_handoff_s"],
        "solve_pyomo_over_direct": pyomo["solve_s"] / direct["solve_s"] if direct["solve_s"] > 0 else None,
        "objective_rel_diff": rel_diff(pyomo["objective"], direct["objective"]),
    }


def _fmt(value: Any, spec: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return "inf"
    return format(value, spec)


def _met(flag: bool | None) -> str:
    return "n/a" if flag is None else ("met" if flag else "NOT MET")


def render_table(results: list[dict[str, Any]]) -> str:
    """Plain-text, aligned tables: one row per (size, route), then one row per size of ratios."""
    head = ("size", "route", "vars", "rows", "nonzeros", "build s", "handoff s", "build+ho s",
            "solve s", "objective", "start MiB", "peak MiB")
    rows = []
    for res in results:
        for route in ROUTES:
            r = res["routes"][route]
            rows.append((
                res["size"], route, _fmt(r["variables"], ","), _fmt(r["constraints"], ","),
                _fmt(r["nonzeros"], ","), _fmt(r["build_s"], ".3f"), _fmt(r["handoff_s"], ".3f"),
                _fmt(r["build_handoff_s"], ".3f"), _fmt(r["solve_s"], ".3f"),
                _fmt(r["objective"], ".6f"), _fmt(r["rss_start_mib"], ".0f"), _fmt(r["peak_rss_mib"], ".0f"),
            ))
    head2 = ("size", "pyomo (b+h)/solve", "target <= 0.5", "peak MiB pyomo/direct", "target <= 2",
             "growth MiB p/d", "(b+h) pyomo/direct", "solve p/d", "objective rel diff")
    rows2 = []
    for res in results:
        q = res["ratios"]
        rows2.append((
            res["size"], _fmt(q["pyomo_build_handoff_over_solve"], ".3f"),
            _met(q["pyomo_build_handoff_over_solve_met"]), _fmt(q["peak_rss_pyomo_over_direct"], ".2f"),
            _met(q["peak_rss_pyomo_over_direct_met"]), _fmt(q["rss_growth_pyomo_over_direct"], ".2f"),
            _fmt(q["build_handoff_pyomo_over_direct"], ".1f"), _fmt(q["solve_pyomo_over_direct"], ".2f"),
            _fmt(q["objective_rel_diff"], ".1e"),
        ))
    return _align(head, rows, n_left=2) + "\n\n" + _align(head2, rows2)


def _align(head: tuple[str, ...], rows: list[tuple[str, ...]], n_left: int = 1) -> str:
    """Columns padded to width; the first ``n_left`` (labels) left-aligned, the rest right."""
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=True)]
    left = set(range(n_left))

    def line(cells):
        return "  ".join(str(c).ljust(w) if i in left else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    return "\n".join([line(head), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])


def run_benchmark(sizes: list[tuple[int, int, int]], repeat: int, out: Path, time_limit: float | None = None) -> int:
    import optplan

    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    machine = machine_info()
    results = []
    for size in sizes:
        D, T, S = size
        t0 = time.perf_counter()
        data = optplan.generate_instance(depots=D, weeks=T, scenarios=S, seed=SEED).model_data()
        gen_s = time.perf_counter() - t0
        print(f"[{size_label(size)}] instance generated in {gen_s:.1f} s", flush=True)
        raw: dict[str, list[dict[str, Any]]] = {route: [] for route in ROUTES}
        for i in range(repeat):
            for route in ROUTES:
                r = run_in_fresh_process(route, data, time_limit)
                raw[route].append(r)
                print(
                    f"[{size_label(size)}] {route:6s} run {i + 1}/{repeat}: build+handoff "
                    f"{r['build_handoff_s']:.2f} s, solve {r['solve_s']:.2f} s, peak {r['peak_rss_mib']:.0f} MiB",
                    flush=True,
                )
        summary = {route: summarize(raw[route]) for route in ROUTES}
        results.append({
            "size": size_label(size),
            "depots": D, "weeks": T, "scenarios": S, "seed": SEED,
            "generate_s": gen_s,
            "routes": summary,
            "ratios": ratios(size, summary["pyomo"], summary["direct"]),
            "runs": raw,
        })
        # keep partial results on disk as the big sizes go by
        _write(out, started, machine, sizes, repeat, results)

    print()
    print(render_table(results))
    print(f"\nwrote {out}")
    return 0


def _write(out: Path, started: str, machine: dict, sizes, repeat: int, results: list) -> None:
    payload = {
        "benchmark": "build_vs_solve",
        "started_utc": started,
        "finished_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
        "settings": {
            "sizes": [size_label(s) for s in sizes],
            "seed": SEED,
            "repeat": repeat,
            "summary": "min of each time over repeats, max of each RSS",
            "highs_options": "defaults, output_flag=false, threads default",
            "process": "fresh spawned process per (size, route, repeat)",
            "units": {"*_s": "seconds (wall clock)", "*_mib": "MiB", "objective": "instance currency"},
            "targets": {
                "pyomo_build_handoff_over_solve": f"<= {BUILD_SOLVE_TARGET} at >= 50x52x20 cells",
                "peak_rss_pyomo_over_direct": f"<= {MEMORY_TARGET}",
            },
        },
        "results": results,
    }
    atomic_write_json(out, _jsonable(payload))


def _jsonable(obj: Any) -> Any:
    """inf/nan -> None (strict JSON), tuples -> lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


# --------------------------------------------------------------------------- --check


def _variants(data: Any) -> dict[str, Any]:
    """Data variants that switch on rows and bounds the generator leaves off."""
    import numpy as np

    D = len(data.depots)
    regions = sorted(set(data.regions))
    cap = data.applicant_cap.copy()
    cap[:, -1] = np.inf  # an uncapped channel
    onboarding = data.onboarding_cap.copy()
    onboarding[::2] = np.inf  # every other depot uncapped
    weekly = data.budget_weekly.copy()
    weekly[1::3] = np.inf  # some weeks without a weekly cap
    cost = data.cost_per_applicant.copy()
    cost[0] = 0.0  # a free channel: its terms leave the budget rows
    return {
        "region budgets": dataclasses.replace(
            data, budget_region={r: 0.3 * data.budget_total / len(regions) for r in regions} | {"nowhere": 1.0}
        ),
        "no surge, no budgets": dataclasses.replace(
            data, surge_cap_share=0.0, budget_total=math.inf, budget_weekly=np.full(data.n_weeks, math.inf)
        ),
        "inf caps, free channel": dataclasses.replace(
            data, applicant_cap=cap, onboarding_cap=onboarding, budget_weekly=weekly, cost_per_applicant=cost,
        ),
        "one scenario": data.with_scenarios([0]) if D else data,
    }


def run_check() -> int:
    """Direct LP vs the Pyomo route on small instances; 0 if all agree, 1 otherwise."""
    import direct_highspy
    import numpy as np

    import optplan
    from formulations import two_stage
    from optplan.solvers import SolveOptions, solve_data
    from optplan.solvers.highs import compile_to_highs, import_highspy

    import_highspy()
    cases = []
    for D, T, S, seeds in ((3, 6, 4, (0, 1, 2, 3)), (10, 26, 10, (0, 1, 2, 3))):
        for seed in seeds:
            data = optplan.generate_instance(depots=D, weeks=T, scenarios=S, seed=seed).model_data()
            cases.append((f"{D}x{T}x{S} seed {seed}", data))
            if seed == 0:
                cases.extend((f"{D}x{T}x{S} seed 0, {name}", v) for name, v in _variants(data).items())

    head = ("case", "vars p/d", "rows p/d", "nnz p/d", "objective pyomo", "objective direct", "rel diff",
            "same LP", "ok")
    rows, failures = [], 0
    for label, data in cases:
        raw = solve_data(data, SolveOptions(), "highs")  # the production Pyomo route
        h = direct_highspy.build_direct(data)
        h.run()
        status = h.modelStatusToString(h.getModelStatus())
        obj_d = float(h.getInfo().objective_function_value) if status == "Optimal" else None
        obj_p = raw.status.objective if raw.status.optimal else None
        counts_p = (raw.size["variables"], raw.size["constraints"], raw.size["nonzeros"])
        counts_d = (h.getNumCol(), h.getNumRow(), h.getNumNz())
        diff = rel_diff(obj_p, obj_d)
        # stronger than required: the arrays themselves (our column/row order matches Pyomo's)
        lp_p = compile_to_highs(two_stage.build_model(data), SolveOptions()).highs.getLp()
        lp_d = h.getLp()
        same = all(
            np.array_equal(np.asarray(getattr(lp_p, k)), np.asarray(getattr(lp_d, k)))
            for k in ("col_cost_", "col_lower_", "col_upper_", "row_lower_", "row_upper_")
        ) and all(
            np.array_equal(np.asarray(getattr(lp_p.a_matrix_, k)), np.asarray(getattr(lp_d.a_matrix_, k)))
            for k in ("start_", "index_", "value_")
        )
        ok = counts_p == counts_d and diff <= CHECK_RTOL
        failures += not ok
        rows.append((
            label, f"{counts_p[0]}/{counts_d[0]}", f"{counts_p[1]}/{counts_d[1]}", f"{counts_p[2]}/{counts_d[2]}",
            _fmt(obj_p, ".8f"), _fmt(obj_d, ".8f"), _fmt(diff, ".1e"), "yes" if same else "no",
            "ok" if ok else "MISMATCH",
        ))
    print(_align(head, rows))
    print(
        f"\n{len(cases) - failures}/{len(cases)} cases agree (counts equal, objective within "
        f"{CHECK_RTOL:g} relative); 'same LP' = identical HiGHS arrays (informational)."
    )
    return 1 if failures else 0


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="verify the direct baseline against Pyomo and exit")
    parser.add_argument("--sizes", type=parse_sizes, default=parse_sizes(DEFAULT_SIZES),
                        help=f"comma-separated DEPOTSxWEEKSxSCENARIOS (default {DEFAULT_SIZES})")
    parser.add_argument("--quick", action="store_true", help="only the first two sizes")
    parser.add_argument("--repeat", type=int, default=1, help="fresh-process runs per (size, route); best is kept")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output path")
    parser.add_argument("--time-limit", type=float, default=None,
                        help="cap each HiGHS solve (seconds): the solve time is then a lower bound, so "
                             "(build+hand-off)/solve is an upper bound; peak memory is still measured")
    args = parser.parse_args(argv)
    if args.check:
        return run_check()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    sizes = args.sizes[:2] if args.quick else args.sizes
    return run_benchmark(sizes, args.repeat, args.out, args.time_limit)


if __name__ == "__main__":
    sys.exit(main())
