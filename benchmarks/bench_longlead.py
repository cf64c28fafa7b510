"""Long-lead periods against the weekly model of the same 3-year instance (issue #14 part 3).

    python benchmarks/bench_longlead.py [--depots 8] [--seeds 1,2,3] [--tightness 0.8,1.2]

For each generated weekly instance of 156 weeks and its long-lead version (weekly for 13
weeks, 4-4-5 months to week 52, then 13-week quarters: 30 periods; ``optplan.io.periods``):

- size and time: columns, rows, build and solve seconds of each (arrays build, HiGHS);
- the decisions that a rolling planner acts on: the long-lead plan's first 13 weeks fixed in
  the weekly model, the rest re-optimised weekly; its optimum against the weekly optimum
  (how much the coarse far future costs the near-term decisions);
- the whole long-lead plan executed week by week (each period's applicants and incentives
  spread evenly over its weeks) on the weekly model, against the weekly optimum;
- the long-lead objective against the weekly optimum, with the weekly demand kept (each
  period's recourse settled week by week, capacity even within it: the default of
  ``in_periods``) and with period totals only (weeks inside a period net out: it reads lower).

Prints a table and writes out/benchmarks/longlead.json (recorded: benchmarks/results/longlead.json) with the load average. Times are
one run on a shared machine: read the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
WEEKS = 156
FIRST_WEEKS = 13


def solve_arrays(data, fix=None):
    """(objective, SolveResult, build s, solve s) of the aggregated LP by the arrays build;
    ``fix``: a Decisions whose first FIRST_WEEKS weeks are fixed."""
    from formulations.two_stage.matrix import aggregated_standard_form
    from optplan.solvers.base import SolveOptions
    from optplan.solvers.highs import highs_from_standard_form, import_highspy, run_compiled

    t0 = time.perf_counter()
    sf = aggregated_standard_form(data)
    compiled = highs_from_standard_form(sf, SolveOptions())
    t1 = time.perf_counter()
    if fix is not None:
        dd, cc, tt = sf.layout.recruit
        sel = tt < FIRST_WEEKS
        cols = [sf.columns["applicants"][sel]]
        vals = [fix.applicants[dd[sel], cc[sel], tt[sel]]]
        sd, sg = sf.layout.segment_pairs
        if len(sd):
            cols.append(sf.columns["incentive_spend"].reshape(len(sd), -1)[:, :FIRST_WEEKS].ravel())
            vals.append(fix.incentive_spend[sd[:, None], np.arange(FIRST_WEEKS)[None, :], sg[:, None]].ravel())
        c, v = np.concatenate(cols), np.concatenate(vals)
        compiled.highs.changeColsBounds(len(c), c.astype(np.int32), v, v)
        import_highspy()
    result = run_compiled(data, compiled, SolveOptions(), diagnose=fix is not None)
    return result.status.objective, result, t1 - t0, result.timings.solve_s


def main(argv=None) -> None:
    import optplan
    from formulations.data import Decisions
    from optplan.evaluation.evaluator import evaluate_decisions
    from optplan.io.periods import in_periods, long_lead_runs

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--depots", type=int, default=8)
    ap.add_argument("--scenarios", type=int, default=10)
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--tightness", default="0.8,1.2")
    ap.add_argument("--out", type=Path, default=REPO / "out" / "benchmarks" / "longlead.json")
    args = ap.parse_args(argv)
    runs = long_lead_runs(WEEKS)
    rows = []
    load = os.getloadavg()[0]
    for tight in (float(x) for x in args.tightness.split(",")):
        for seed in (int(x) for x in args.seeds.split(",")):
            inst = optplan.generate_instance(depots=args.depots, weeks=WEEKS, scenarios=args.scenarios, seed=seed,
                                             budget_tightness=tight)
            weekly = inst.model_data()
            period = in_periods(inst, runs).model_data()
            totals = in_periods(inst, runs, week_profile=False).model_data()
            ow, rw, bw, sw = solve_arrays(weekly)
            op, rp, bp, spp = solve_arrays(period)
            ot, _, _, _ = solve_arrays(totals)
            L = period.period_length.astype(int)
            spread = Decisions(np.repeat(rp.decisions.applicants / L, L, axis=2),
                               np.repeat(rp.decisions.incentive_spend / L[None, :, None], L, axis=1))
            try:
                of, _, _, _ = solve_arrays(weekly, fix=spread)
                fixed_note = "optimal"
            except optplan.InfeasibleError as exc:  # the weekly caps may not hold the coarse plan's first quarter
                of, fixed_note = float("nan"), f"infeasible: {', '.join(exc.families) or 'a combination'}"
            executed = evaluate_decisions(weekly, spread)
            row = {
                "seed": seed, "budget_tightness": tight, "weekly_periods": weekly.n_weeks, "long_lead_periods": period.n_weeks,
                "weekly_columns": rw.size["variables"], "long_lead_columns": rp.size["variables"],
                "weekly_build_s": bw, "weekly_solve_s": sw, "long_lead_build_s": bp, "long_lead_solve_s": spp,
                "weekly_optimum": ow, "long_lead_objective": op,
                "first_quarter_fixed_optimum": of,
                "first_quarter_gap_pct": 100 * (of / ow - 1),
                "first_quarter_fixed": fixed_note,
                "executed_weekly_cost": executed.expected_cost,
                "executed_gap_pct": 100 * (executed.expected_cost / ow - 1),
                "executed_violations": sorted(executed.violations),
                "objective_vs_weekly_pct": 100 * (op / ow - 1),
                "totals_only_objective": ot,
                "totals_only_objective_vs_weekly_pct": 100 * (ot / ow - 1),
            }
            rows.append(row)
            print(f"seed {seed} tightness {tight}: columns {row['weekly_columns']} -> {row['long_lead_columns']}; "
                  f"time {bw + sw:.2f}s -> {bp + spp:.2f}s; first quarter fixed +{row['first_quarter_gap_pct']:.2f}%; "
                  f"whole plan executed weekly +{row['executed_gap_pct']:.1f}%; objective "
                  f"{row['objective_vs_weekly_pct']:+.1f}% of the weekly optimum (period totals only: "
                  f"{row['totals_only_objective_vs_weekly_pct']:+.1f}%)", flush=True)
    summary = {
        "time_ratio_median": float(np.median([(r["weekly_build_s"] + r["weekly_solve_s"])
                                              / (r["long_lead_build_s"] + r["long_lead_solve_s"]) for r in rows])),
        "column_ratio_median": float(np.median([r["weekly_columns"] / r["long_lead_columns"] for r in rows])),
        "first_quarter_gap_pct_max": float(np.nanmax([r["first_quarter_gap_pct"] for r in rows])),
        "first_quarter_infeasible": sum(r["first_quarter_fixed"] != "optimal" for r in rows),
        "executed_gap_pct_range": [float(min(r["executed_gap_pct"] for r in rows)),
                                   float(max(r["executed_gap_pct"] for r in rows))],
        "objective_vs_weekly_pct_range": [float(min(r["objective_vs_weekly_pct"] for r in rows)),
                                          float(max(r["objective_vs_weekly_pct"] for r in rows))],
        "totals_only_objective_vs_weekly_pct_range": [float(min(r["totals_only_objective_vs_weekly_pct"] for r in rows)),
                                                      float(max(r["totals_only_objective_vs_weekly_pct"] for r in rows))],
    }
    print("\n| seed | tightness | columns weekly/long-lead | seconds weekly/long-lead | first quarter fixed | "
          "plan executed weekly | long-lead objective | period totals only |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['seed']} | {r['budget_tightness']} | {r['weekly_columns']}/{r['long_lead_columns']} | "
              f"{r['weekly_build_s'] + r['weekly_solve_s']:.2f}/{r['long_lead_build_s'] + r['long_lead_solve_s']:.2f} | "
              f"+{r['first_quarter_gap_pct']:.2f}% | +{r['executed_gap_pct']:.1f}% | {r['objective_vs_weekly_pct']:+.1f}% | "
              f"{r['totals_only_objective_vs_weekly_pct']:+.1f}% |")
    print(f"\nsummary: {summary}; load average at start {load:.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"load_average_1min": load, "depots": args.depots, "scenarios": args.scenarios,
                                    "weeks": WEEKS, "periods": runs, "rows": rows, "summary": summary}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
