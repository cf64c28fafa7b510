"""Property-based tests of every reader (issue #16 part 2): hypothesis draws mutations of a
valid input (tests/mutations.py: cells, header, rows, bytes, manifest) and checks the
invariant "a clean refusal (every problem one line naming its file), or a sound result"
(for an instance: infeasible, or a plan whose evaluator agrees with the LP within 1e-6 and
whose files hold no non-finite number). A failure shrinks to a minimal mutation. The
benchmark benchmarks/bench_mutations.py runs >= 10,000 of them and tallies by class.

Examples per reader: ``MUTATION_EXAMPLES`` (default 60 in the quick suite). The kinds issue #33
added (a multi-country instance, a long-lead one, the demo with targets, supply and a bonus menu,
re-plan states, pipeline configs) and issue #29's (the demo with committed decisions; the logs,
spend and demand seen of the state from the logs and the monitor) run a sixth of that in the
quick suite (a plan each). The slow step runs the rest of ``MUTATION_CI_PER_KIND`` (200) for
every kind, so CI runs 200 mutations per kind in its two steps (issue #33). The kinds are
tests/mutations.py's ``KINDS`` (twelve; the benchmark runs the same)."""

from __future__ import annotations

import os
import random
import shutil

import mutations as mut
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("MUTATION_EXAMPLES", "60"))
PROFILE = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

BASES = {kind: make for kind, (make, _) in mut.KINDS.items()}
CHECKS = {kind: check for kind, (_, check) in mut.KINDS.items()}
#: Input kinds added by issues #29 and #33 (multi-country, long-lead periods, targets, supply,
#: decisions, the loop's logs, re-plan states, pipeline configs): fewer examples in the quick
#: suite (a plan each), as many as the others in the slow step.
NEW_KINDS = mut.NEW_KINDS
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


@pytest.mark.parametrize("reader", sorted(set(CHECKS) - set(NEW_KINDS)))
@PROFILE
@given(**MUTATION)
def test_any_mutation_is_refused_cleanly_or_read_soundly(reader, kind, rng: random.Random, rounds):
    _mutate_and_check(reader, kind, rng, rounds)


@pytest.mark.parametrize("reader", sorted(NEW_KINDS))
@settings(PROFILE, max_examples=max(8, EXAMPLES // 6))
@given(**MUTATION)
def test_mutations_of_countries_periods_and_targets_are_refused_cleanly_or_planned_soundly(reader, kind, rng, rounds):
    _mutate_and_check(reader, kind, rng, rounds)


#: Mutations per kind across CI's two steps (issue #33: 200 per kind in CI); the slow step runs
#: what the quick suite did not (other examples: another test function draws other ones).
CI_PER_KIND = int(os.environ.get("MUTATION_CI_PER_KIND", "200"))


@pytest.mark.slow
@pytest.mark.parametrize("reader", sorted(set(CHECKS) - set(NEW_KINDS)))
@settings(PROFILE, max_examples=max(1, CI_PER_KIND - EXAMPLES))
@given(**MUTATION)
def test_many_more_mutations_are_refused_cleanly_or_read_soundly(reader, kind, rng: random.Random, rounds):
    _mutate_and_check(reader, kind, rng, rounds)


@pytest.mark.slow
@pytest.mark.parametrize("reader", sorted(NEW_KINDS))
@settings(PROFILE, max_examples=max(1, CI_PER_KIND - max(8, EXAMPLES // 6)))
@given(**MUTATION)
def test_many_more_mutations_of_the_newer_kinds_are_refused_cleanly_or_planned_soundly(reader, kind, rng, rounds):
    _mutate_and_check(reader, kind, rng, rounds)


@pytest.mark.parametrize("reader,kind,seed", [
    ("decisions", "row", 7523),  # a table whose rows carried repeated index labels: an IndexError in the key check
    ("state", "row", 8819),  # the same, in a re-plan state's drivers table
    ("supply", "cell", 7063),  # a region id 'nan': written back as a NaN-looking cell in drivers.csv
])
def test_the_mutations_the_campaign_found_are_refused_cleanly(reader, kind, seed, tmp_path):
    """benchmarks/bench_mutations.py's 10,000 mutations over the twelve kinds found these three
    (replayed exactly as the benchmark draws them: random.Random(seed), 1-3 rounds)."""
    rng = random.Random(seed)
    rounds = rng.randint(1, 3)
    _, mutated = mut.mutate(rng, base(reader), kind, rounds)
    assert CHECKS[reader](mutated, tmp_path) == "refused"
