"""The CVaR cut loop round by round (issue #34 part 3): round 1 is a cold HiGHS solve of the
program without cuts; every later round adds one cut (a few rows and columns) to the same
persistent HiGHS object and starts from the previous round's basis. Prints each round's HiGHS
seconds and simplex iterations and its ratio to round 1 (target: at most 30 % at 200x52x50).
One run, in process; the load is noted.

    python benchmarks/bench_cvar_rounds.py [--size 200x52x50] [--weight 0.5] [--alpha 0.9] [--out out/benchmarks/cvar_rounds.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "out" / "benchmarks" / "cvar_rounds.json"
TARGET_RATIO = 0.30


def main() -> int:
    import optplan
    from optplan.solvers import SolveOptions, get_engine, solve_data

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="200x52x50")
    parser.add_argument("--weight", type=float, default=0.5)
    parser.add_argument("--alpha", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    D, T, S = (int(x) for x in args.size.split("x"))
    load = os.getloadavg()[0]
    inst = optplan.generate_instance(depots=D, weeks=T, scenarios=S, seed=args.seed, budget_tightness=0.8)
    t0 = time.perf_counter()
    result = solve_data(inst.model_data(), SolveOptions(cvar_weight=args.weight, cvar_alpha=args.alpha),
                        get_engine("highs"))
    wall = time.perf_counter() - t0
    rounds = result.extra["cvar_rounds"]
    first = rounds[0]["highs_s"]
    print(f"{args.size}, CVaR weight {args.weight}, alpha {args.alpha}: {len(rounds)} rounds in {wall:.1f} s "
          f"(load {load:.1f} at start); {result.status.engine}")
    for r in rounds:
        r["ratio_to_round_1"] = round(r["highs_s"] / first, 3) if first > 0 else None
        print(f"  round {r['round']:>2} ({r['cuts']} cuts): HiGHS {r['highs_s']:6.2f} s, "
              f"{r['simplex_iterations']:>7,} simplex iterations, {r['ratio_to_round_1']:.0%} of round 1")
    later = [r["ratio_to_round_1"] for r in rounds[1:]]
    met = bool(later) and max(later) <= TARGET_RATIO
    print(f"target (each warm round at most {TARGET_RATIO:.0%} of the cold round 1): "
          f"{'met' if met else 'NOT MET' if later else 'no warm round'}; load {os.getloadavg()[0]:.1f} at the end")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"size": args.size, "weight": args.weight, "alpha": args.alpha,
                                    "load_at_start": load, "load_at_end": os.getloadavg()[0], "wall_s": wall,
                                    "objective": result.status.objective, "engine": result.status.engine,
                                    "rounds": rounds, "target_ratio": TARGET_RATIO, "target_met": met}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
