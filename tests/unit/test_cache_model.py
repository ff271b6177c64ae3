"""The server's cache model (pyjpip.jpip.cache_model, 15444-9 C.9): model= statements folded into
what a client holds, explicit and implicit, additive and subtractive, byte and layer limits,
codestream qualifiers, and the limit on naming bins over and over."""

import time

import pytest

from pyjpip.codestream.databins import DataBinClass
from pyjpip.codestream.source import JPEG2000Source
from pyjpip.jpip.cache_model import CacheModel
from pyjpip.jpip.request import RequestError, parse_query

MAIN, TILE, PRECINCT, METADATA = (DataBinClass.MAIN_HEADER, DataBinClass.TILE_HEADER, DataBinClass.PRECINCT,
                                  DataBinClass.METADATA)


def source_of(conformance_files, name: str) -> JPEG2000Source:
    return JPEG2000Source(next(p for p in conformance_files if p.name == name).read_bytes(), name=name)


@pytest.fixture(scope="module")
def p0_04(conformance_files):
    """One tile, three components, 96 precincts of 20 layers; precinct id = c + 3 s (Eq. A-1)."""
    return source_of(conformance_files, "p0_04.j2k")


def held(model_field: str, source, codestreams=(0,), model=None) -> dict:
    model = model or CacheModel()
    model.apply(parse_query(f"model={model_field}").model, source, list(codestreams))
    return model.held


def test_add_and_limit_keep_one_prefix_per_bin():
    model = CacheModel()
    key = (PRECINCT, 0, 3)
    assert not model.knows(key) and model.bytes_held(key) == 0
    model.add(key, 10)
    model.add(key, 5)  # a shorter prefix is already held
    assert model.bytes_held(key) == 10
    model.limit(key, 20)
    assert model.bytes_held(key) == 10
    model.limit(key, 7)
    assert model.bytes_held(key) == 7
    model.limit(key, 0)
    assert not model.knows(key)
    model.add((TILE, 0, 0), 0)  # a zero-length bin is known complete with 0 bytes
    assert model.knows((TILE, 0, 0)) and model.bytes_held((TILE, 0, 0)) == 0


def test_explicit_bins_with_byte_and_layer_limits(p0_04):
    bins = p0_04.databins(0)
    ends = bins.precinct_by_identifier(6).packet_ends
    assert held("Hm,H*,M0,P0,P3:100,P9:99999,P6:L2", p0_04) == {
        (MAIN, 0, 0): bins.main_header().length, (TILE, 0, 0): 0, (METADATA, 0, 0): 0,
        (PRECINCT, 0, 0): bins.precinct_by_identifier(0).length, (PRECINCT, 0, 3): 100,
        (PRECINCT, 0, 9): bins.precinct_by_identifier(9).length, (PRECINCT, 0, 6): ends[1]}
    assert held("P*", p0_04).keys() == {(PRECINCT, 0, b.identifier) for b in bins.precincts()}
    assert held("P5000,H7", p0_04) == {}  # bins the codestream does not have name nothing


def test_subtractive_statements_bound_what_is_held(p0_04):
    bins = p0_04.databins(0)
    ends = bins.precinct_by_identifier(0).packet_ends
    after = held("P*,-P0:L1,-P3:50,-P6", p0_04)
    assert after[(PRECINCT, 0, 0)] == ends[0] and after[(PRECINCT, 0, 3)] == 50
    assert (PRECINCT, 0, 6) not in after  # "-P6": none of it (a client's eviction)
    assert after[(PRECINCT, 0, 9)] == bins.precinct_by_identifier(9).length
    # Merged into a session's model: subtractive statements take back, additive ones never shrink.
    model = CacheModel()
    model.add((PRECINCT, 0, 3), 400)
    held("-P3:100,P3:20,Hm:10", p0_04, model=model)
    assert model.bytes_held((PRECINCT, 0, 3)) == 100 and model.bytes_held((MAIN, 0, 0)) == 10


def test_implicit_form_walks_tiles_components_resolutions_and_precinct_rectangles(p0_04):
    bins = p0_04.databins(0)
    # Resolution 6 of component 1 has 5 x 4 precincts; p6-13 is the rectangle from (1, 1) to (3, 2).
    chosen = held("t0c1r6p6-13:L1", p0_04)
    expected = {bins.precinct(0, 1, 6, p).identifier for p in (6, 7, 8, 11, 12, 13)}
    assert {key[2] for key in chosen} == expected
    assert all(amount == bins.precinct_by_identifier(key[2]).packet_ends[0] for key, amount in chosen.items())
    assert len(held("t*c*r*p*:L1", p0_04)) == 96


def test_codestream_qualifiers_select_codestreams(p0_04):
    assert held("[0],Hm", p0_04, codestreams=()) == {(MAIN, 0, 0): 250}
    assert held("Hm", p0_04, codestreams=(0,)) == {(MAIN, 0, 0): 250}
    assert held("[1-5],Hm", p0_04) == {}  # codestreams the target does not have


def test_naming_bins_over_and_over_is_refused_quickly(conformance_files):
    """100,000 x P* on a 138-precinct file took 10 s, and a qualifier before each of many items was
    worked out again for each (quadratic); now the first is a 400 and the second is quick. A model
    naming each bin once, and a few wildcards over them, is taken (found by tests/hardening.py)."""
    source = source_of(conformance_files, "p1_06.j2k")
    started = time.monotonic()
    with pytest.raises(RequestError, match="times over") as refused:
        held(",".join(["P*"] * 100_000), source)
    assert refused.value.status == 400
    held("[" + "0," * 60_000 + "0]," + ",".join(["P1"] * 60_000), source)
    assert time.monotonic() - started < 20
    every = held(",".join(["Hm", "H*"] + [f"P{i}" for i in range(138)] + ["P*", "-P*:L1", "t*c*r*p*:L1"]), source)
    assert len([key for key in every if key[0] == PRECINCT]) == 138


def test_layer_limits_on_precincts_without_packets(conformance_files):
    """A codestream whose last tile has no tile-part: its precincts have no packets, and P*:L1 made
    CacheModel.apply raise IndexError (found by tests/hardening.py). They hold 0 bytes."""
    data = next(p for p in conformance_files if p.name == "p0_03.j2k").read_bytes()
    last = data.rindex(b"\xff\x90\x00\x0a")  # the last SOT
    source = JPEG2000Source(data[:last] + b"\xff\xd9", name="cut.j2k")
    for statement in ("P*:L1", "-P*:L2", "t*c*r*p*:L1"):
        model = held(statement, source)
        empty = [b for b in source.databins(0).precincts() if not b.packet_ends]
        assert empty and all(model.get((PRECINCT, 0, b.identifier), 0) == 0 for b in empty)
