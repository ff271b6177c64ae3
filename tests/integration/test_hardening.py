"""Counted hardening (tests/hardening.py): thousands of seeded cases for each parser that takes bytes
from outside (the request parser with the server's answer, model= with the cache model, JPP-streams
with the client's cache, hollow DICOM objects in all four JPIP syntaxes, the codestream indexer),
each accepted or refused with a typed error that says why, none over the time bound, memory bounded.

bench/hardening.py runs 100,000 of each (the same generators and runner) and prints the table."""

import pytest

from hardening import PARSERS, run

pytestmark = pytest.mark.cpython_only

SEED = 14
#: A few seconds each on an idle core (the whole file well under a minute on a busy one).
COUNTS = {"request": 3000, "model": 2500, "jpp": 3000, "dicom": 2000, "codestream": 2500}


def check(name: str, cases: int, seed: int) -> None:
    result = run(PARSERS[name](), cases, seed, bound=2.0, memory_every=32, memory_bound=256 << 20)
    print(f"\n{name}: {result.cases} cases, {result.accepted} accepted, {result.refused} refused "
          f"({dict(result.refusal_kinds)}), {result.other} other, {result.hangs} hangs, median "
          f"{result.median * 1000:.2f} ms, slowest {result.slowest * 1000:.0f} ms (case {result.slowest_index}), "
          f"traced peak {result.traced_peak >> 10} KiB, {result.rate:.0f} cases/s")
    assert not result.failures, "\n".join(str(f) for f in result.failures[:20]) + \
        f"\n(replay one with: .venv/bin/python bench/hardening.py --replay {name} {seed} INDEX)"
    assert result.cases == cases and result.accepted + result.refused == cases
    assert result.other == 0 and result.hangs == 0
    # Not vacuous: the generators reach past the first check, and damage is found.
    assert result.accepted >= cases // 20, f"only {result.accepted} of {cases} cases were accepted"
    assert result.refused >= cases // 20, f"only {result.refused} of {cases} cases were refused"


@pytest.mark.parametrize("name", list(COUNTS))
def test_every_case_is_accepted_or_refused_with_a_typed_error(name):
    check(name, COUNTS[name], SEED)
