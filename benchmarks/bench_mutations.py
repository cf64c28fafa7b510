"""Mutation campaign over every input kind (issue #16 part 2, issue #33): >= 10,000 mutated
inputs, the invariant of tests/mutations.py checked on each, tallied by kind and mutation class
(the kinds: ``mutations.KINDS``, the same the property tests run).

    python benchmarks/bench_mutations.py [--n 10000] [--seed 0]

Prints a table (reader x class: refused / solved or read / infeasible / BUG) and writes
out/benchmarks/mutations.json (recorded: benchmarks/results/mutations.json) with the first few bugs of each kind (reader, class, seed,
error) so that any one can be replayed with ``--replay READER:CLASS:SEED``. Deterministic:
mutation i uses random.Random(seed * 1_000_003 + i). Time is wall-clock of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
import traceback
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import mutations as mut  # noqa: E402

READERS = mut.KINDS  # every input kind: its base files and the invariant's check
#: Share of the mutations given to each kind: the first four (no plan for the logs and the history)
#: half, the eight that plan or check a pipeline the other half.
SHARE = {"instance": 0.14, "history": 0.12, "applicants": 0.12, "activity": 0.12,
         **dict.fromkeys(mut.NEW_KINDS, 0.5 / len(mut.NEW_KINDS))}


def effective(kind: str, files: dict[str, bytes]) -> str:
    """Readers without a manifest get cell mutations in the manifest's turn."""
    return "cell" if kind == "manifest" and "instance.yaml" not in files else kind


def one(reader: str, kind: str, seed: int, files: dict[str, bytes]) -> tuple[str, str | None]:
    rng = random.Random(seed)
    rounds = rng.randint(1, 3)
    kind = effective(kind, files)
    _, mutated = mut.mutate(rng, files, kind, rounds)
    folder = mut.fresh_dir()
    try:
        return READERS[reader][1](mutated, folder), None
    except Exception as exc:  # noqa: BLE001 - the campaign counts every failure
        return "BUG", f"{type(exc).__name__}: {str(exc)[:300]} @ {traceback.extract_tb(exc.__traceback__)[-1].name}"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--replay", default=None, help="READER:CLASS:SEED of one mutation to re-run with its traceback")
    ap.add_argument("--out", type=Path, default=REPO / "out" / "benchmarks" / "mutations.json")
    args = ap.parse_args()
    import warnings

    warnings.simplefilter("ignore")
    bases = {r: make() for r, (make, _) in READERS.items()}
    if args.replay:
        reader, kind, seed = args.replay.split(":")
        rng = random.Random(int(seed))
        rounds = rng.randint(1, 3)
        _, mutated = mut.mutate(rng, bases[reader], kind, rounds)
        folder = mut.fresh_dir()
        print(f"replaying in {folder}")
        print(READERS[reader][1](mutated, folder))
        return
    tally: dict[tuple[str, str], Counter] = defaultdict(Counter)
    bugs: dict[str, list] = defaultdict(list)
    t0 = time.perf_counter()
    kinds = sorted(mut.MUTATIONS)
    i = 0
    for reader, share in SHARE.items():
        for _ in range(int(args.n * share)):
            seed = args.seed * 1_000_003 + i
            kind = kinds[i % len(kinds)]
            i += 1
            outcome, error = one(reader, kind, seed, bases[reader])
            tally[(reader, effective(kind, bases[reader]))][outcome] += 1
            if error is not None:
                key = error.split(":")[0] + " " + error.rsplit("@", 1)[-1].strip()
                if len(bugs[key]) < 3:
                    bugs[key].append({"reader": reader, "class": kind, "seed": seed, "error": error})
            if i % 500 == 0:
                print(f"  {i} mutations, {sum(c['BUG'] for c in tally.values())} bugs, "
                      f"{time.perf_counter() - t0:.0f} s", file=sys.stderr)
    seconds = time.perf_counter() - t0
    outcomes = ["refused", "solved", "read", "infeasible", "BUG"]
    print(f"{'reader':<11} {'class':<15}" + "".join(f"{o:>11}" for o in outcomes))
    for (reader, kind), c in sorted(tally.items()):
        print(f"{reader:<11} {kind:<15}" + "".join(f"{c[o]:>11}" for o in outcomes))
    total = Counter()
    for c in tally.values():
        total.update(c)
    print(f"{'all':<27}" + "".join(f"{total[o]:>11}" for o in outcomes))
    load = os.getloadavg()
    print(f"{i} mutations in {seconds:.0f} s; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    for key, examples in bugs.items():
        print(f"BUG {key}: e.g. --replay {examples[0]['reader']}:{examples[0]['class']}:{examples[0]['seed']}  "
              f"{examples[0]['error'][:160]}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "mutations": i, "seconds": seconds, "load_average": load,
        "tally": [{"reader": r, "class": k, **c} for (r, k), c in sorted(tally.items())],
        "bugs": bugs,
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
