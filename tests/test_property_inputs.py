"""Property-based tests of every reader (issue #16 part 2): hypothesis draws mutations of a
valid input (tests/mutations.py: cells, header, rows, bytes, manifest) and checks the
invariant "a clean refusal (every problem one line naming its file), or a sound result"
(for an instance: infeasible, or a plan whose evaluator agrees with the LP within 1e-6 and
whose files hold no non-finite number). A failure shrinks to a minimal mutation. The
benchmark benchmarks/bench_mutations.py runs >= 10,000 of them and tallies by class.

Examples per reader: ``MUTATION_EXAMPLES`` (default 60 in the quick suite, 240 in the slow
step, so CI runs 1,200 mutations over both steps)."""

from __future__ import annotations

import os
import random
import shutil

import mutations as mut
import pytest
from conftest import REPO
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("MUTATION_EXAMPLES", "60"))
PROFILE = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

BASES = {
    "instance": lambda: mut.folder_files(REPO / "instances" / "demo"),
    "history": mut.history_files,
    "applicants": lambda: {"applicants.csv": mut.log_files()["applicants.csv"]},
    "activity": lambda: {"activity.csv": mut.log_files()["activity.csv"]},
}
CHECKS = {
    "instance": mut.check_instance,
    "history": mut.check_history,
    "applicants": mut.check_applicant_log,
    "activity": mut.check_activity_log,
}
_cache: dict[str, dict[str, bytes]] = {}


def base(reader: str) -> dict[str, bytes]:
    if reader not in _cache:
        _cache[reader] = BASES[reader]()
    return _cache[reader]


@pytest.mark.parametrize("reader", sorted(CHECKS))
def test_the_unmutated_base_is_accepted(reader, tmp_path):
    """The invariant's other side: the bases themselves read (and the demo solves)."""
    assert CHECKS[reader](base(reader), tmp_path) in ("solved", "read")


def _mutate_and_check(reader: str, kind: str, rng: random.Random, rounds: int) -> None:
    files = base(reader)
    if kind == "manifest" and "instance.yaml" not in files:
        kind = "cell"
    _, mutated = mut.mutate(rng, files, kind, rounds)
    folder = mut.fresh_dir()
    try:
        CHECKS[reader](mutated, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


MUTATION = {"kind": st.sampled_from(sorted(mut.MUTATIONS)), "rng": st.randoms(use_true_random=False),
            "rounds": st.integers(1, 3)}


@pytest.mark.parametrize("reader", sorted(CHECKS))
@PROFILE
@given(**MUTATION)
def test_any_mutation_is_refused_cleanly_or_read_soundly(reader, kind, rng: random.Random, rounds):
    _mutate_and_check(reader, kind, rng, rounds)


@pytest.mark.slow
@pytest.mark.parametrize("reader", sorted(CHECKS))
@settings(PROFILE, max_examples=4 * EXAMPLES)
@given(**MUTATION)
def test_many_more_mutations_are_refused_cleanly_or_read_soundly(reader, kind, rng: random.Random, rounds):
    _mutate_and_check(reader, kind, rng, rounds)
