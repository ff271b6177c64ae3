"""The client's data-bin cache: exact whatever the order, splits, repeats and overlaps of messages."""

import random

import pytest

from pyjpip.jpip.client_cache import CacheConflictError, DataBinCache
from pyjpip.jpip.request import parse_query
from pyjpip.jpip.messages import Message

BINS = {(6, 0, 0): bytes(range(200)), (2, 0, 0): b"", (0, 0, 3): bytes(range(255, 0, -1)) * 3,
        (0, 0, 9): b"precinct nine" * 11, (8, 0, 0): b"metadata"}


def messages_for(rng: random.Random) -> list[Message]:
    """Every bin cut into random pieces, some repeated or overlapping, all shuffled."""
    out = []
    for (bin_class, codestream, identifier), data in BINS.items():
        cuts = sorted({0, len(data), *(rng.randrange(len(data) + 1) for _ in range(rng.randint(0, 6)))})
        for a, b in zip(cuts, cuts[1:]):
            out.append(Message(bin_class, codestream, identifier, a, data[a:b], b == len(data)))
            if rng.random() < 0.3:  # a repeat, or a piece overlapping its neighbours
                a2, b2 = max(0, a - rng.randint(0, 5)), min(len(data), b + rng.randint(0, 5))
                out.append(Message(bin_class, codestream, identifier, a2, data[a2:b2], b2 == len(data)))
        if not data:
            out.append(Message(bin_class, codestream, identifier, 0, b"", True))
    rng.shuffle(out)
    return out


def test_any_order_split_repeat_or_overlap_gives_the_same_cache():
    reference = None
    for seed in range(300):
        cache = DataBinCache()
        added = sum(cache.add(m) for m in messages_for(random.Random(seed)))
        assert added == sum(len(d) for d in BINS.values())  # every byte counted once
        for key, data in BINS.items():
            assert cache.prefix(key) == data and cache.complete(key)
        snapshot = cache.snapshot()
        assert reference is None or snapshot == reference
        reference = snapshot


def test_prefix_is_only_what_starts_at_zero():
    cache = DataBinCache()
    cache.add(Message(0, 0, 1, 10, b"later", False))
    assert cache.prefix((0, 0, 1)) == b"" and cache.model_statements([0]) == []
    cache.add(Message(0, 0, 1, 0, b"0123456789", False))
    assert cache.prefix((0, 0, 1)) == b"0123456789later"
    assert cache.model_statements([0]) == ["[0]", "P1:15"]


def test_changed_bytes_are_a_conflict():
    cache = DataBinCache()
    cache.add(Message(0, 0, 1, 0, b"abcdef", False))
    with pytest.raises(CacheConflictError):
        cache.add(Message(0, 0, 1, 3, b"XYZ", False))
    cache.add(Message(0, 0, 2, 0, b"ab", True))
    with pytest.raises(CacheConflictError):
        cache.add(Message(0, 0, 2, 0, b"abc", True))  # the bin ended at 2 bytes


def test_eviction_keeps_headers_and_reports_what_went():
    cache = DataBinCache(byte_limit=100)
    cache.add(Message(6, 0, 0, 0, b"h" * 60, True))
    cache.add(Message(0, 0, 5, 0, b"a" * 30, True))
    cache.add(Message(0, 0, 6, 0, b"b" * 30, True))  # over budget: the oldest precinct goes
    assert cache.prefix((6, 0, 0)) == b"h" * 60 and cache.prefix((0, 0, 5)) == b""
    assert cache.model_statements([0]) == ["[0]", "Hm", "P6", "-P5"]
    cache.add(Message(0, 0, 5, 0, b"a" * 10, False))  # fetched again: no longer reported evicted
    assert "-P5" not in cache.model_statements([0])


def test_statements_group_codestreams_and_keep_metadata_with_zero():
    cache = DataBinCache()
    cache.add(Message(8, 0, 0, 0, b"boxes", True))
    cache.add(Message(6, 2, 0, 0, b"main", True))
    cache.add(Message(2, 2, 1, 0, b"", True))
    assert cache.model_statements([2]) == ["[0]", "M0", "[2]", "H1", "Hm"]


def test_codestream_bytes_count_only_that_codestreams_bins():
    """A viewer sets these against the codestream's length: the metadata-bin (a JPX's boxes) and
    other frames' codestreams must not be in it (a SEG's status once said 1,373 of 1,193 bytes)."""
    cache = DataBinCache()
    cache.add(Message(8, 0, 0, 0, b"m" * 180, True))  # metadata-bin 0
    cache.add(Message(6, 0, 0, 0, b"h" * 100, True))  # main header of codestream 0
    cache.add(Message(2, 0, 0, 0, b"t" * 10, True))  # tile header
    cache.add(Message(0, 0, 3, 0, b"p" * 500, False))  # a precinct, in part
    cache.add(Message(6, 1, 0, 0, b"h" * 100, True))  # codestream 1
    cache.add(Message(0, 1, 0, 0, b"p" * 300, True))
    assert cache.codestream_bytes(0) == 610
    assert cache.codestream_bytes(1) == 400
    assert cache.codestream_bytes(2) == 0


def test_statements_name_extended_precinct_and_tile_bins():
    """A JPP-stream may carry classes 1, 4 and 5 (A.2.2); the next request's model= once raised
    KeyError on them instead of naming their bins (found by tests/hardening.py)."""
    cache = DataBinCache()
    cache.add(Message(1, 0, 7, 0, b"extended", True, aux=3))
    cache.add(Message(4, 0, 2, 0, b"tile", False))
    cache.add(Message(5, 0, 3, 0, b"extended tile", True, aux=0))
    statements = cache.model_statements([0])
    assert statements == ["[0]", "P7", "T2:4", "T3"]
    assert len(parse_query("model=" + ",".join(statements)).model) == 3


def test_many_small_messages_in_any_order_cost_what_their_bytes_do():
    """Every message once scanned every range of its bin and sorted them: 16,000 one-byte messages
    leaving gaps (a 100 KB response) took 41 s (found by tests/hardening.py)."""
    import time

    cache = DataBinCache()
    started = time.perf_counter()
    order = list(range(0, 20_000, 2)) + list(range(19_999, 0, -2))
    assert sum(cache.add(Message(0, 0, 5, i, bytes([i % 251]), i == 19_999)) for i in order) == 20_000
    assert cache.prefix((0, 0, 5)) == bytes(i % 251 for i in range(20_000)) and cache.complete((0, 0, 5))
    assert time.perf_counter() - started < 10
