"""Thousands of damaged real files: every one is read, indexed, split and rebuilt or refused with a
CodestreamError. Never another exception, never a hang (each case is timed)."""

import random
import struct
import time

import pytest

from pyjpip.codestream.file_format import SIGNATURE
from pyjpip.codestream.rebuild import rebuild_codestream
from pyjpip.codestream.source import JPEG2000Source
from pyjpip.errors import CodestreamError

pytestmark = pytest.mark.cpython_only

SMALL = ["p0_01.j2k", "p0_02.j2k", "p0_03.j2k", "p0_09.j2k", "p0_11.j2k", "p0_12.j2k", "p0_16.j2k", "p1_01.j2k",
         "p1_06.j2k", "p1_07.j2k"]
CASES_PER_FILE = 600


def mutate(data: bytes, rng: random.Random) -> bytes:
    data = bytearray(data)
    kind = rng.randrange(6)
    if kind == 0:  # flip bytes anywhere
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif kind == 1:  # damage the headers, where lengths and counts live
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(min(len(data), 200))] = rng.choice([0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)])
    elif kind == 2:  # cut short
        del data[rng.randrange(len(data)):]
    elif kind == 3:  # insert markers in the data
        position = rng.randrange(len(data))
        data[position:position] = rng.choice([b"\xff\x90", b"\xff\xd9", b"\xff\x91\x00\x04\x00\x00", b"\xff"])
    elif kind == 4:  # absurd 32-bit fields (SIZ sizes, Psot)
        position = rng.randrange(min(len(data) - 4, 120))
        data[position : position + 4] = rng.choice([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\xff\xff\xff"])
    else:  # remove a slice
        start = rng.randrange(len(data))
        del data[start : start + rng.randint(1, 64)]
    return bytes(data)


def exercise(data: bytes) -> None:
    source = JPEG2000Source(data, "fuzz.j2k")
    bins = source.databins(0)
    view = source.codestream(0).data
    main = bins.main_header().read(view)
    headers = {t: bins.tile_header(t).read(view) for t in range(bins.tiles)}
    precincts = {b.identifier: b.read(view) for b in bins.precincts()}
    rebuild_codestream(main, headers, precincts, layers=1)


def as_jp2(codestream: bytes) -> bytes:
    def box(kind: bytes, contents: bytes) -> bytes:
        return struct.pack(">I4s", 8 + len(contents), kind) + contents
    header = box(b"jp2h", box(b"ihdr", bytes(14)) + box(b"colr", b"\x01\x00\x00\x00\x00\x00\x11"))
    return SIGNATURE + box(b"ftyp", b"jp2 \0\0\0\0jp2 ") + header + box(b"jp2c", codestream)


@pytest.mark.parametrize("name", SMALL + ["p0_01.j2k as JP2"])
def test_mutated_files_fail_only_with_codestream_errors(conformance_files, name):
    original = next(p for p in conformance_files if p.name == name.split()[0]).read_bytes()
    if name.endswith("as JP2"):
        original = as_jp2(original)
    rng = random.Random(name)
    refused = 0
    slowest = 0.0
    for case in range(CASES_PER_FILE):
        data = mutate(original, rng)
        started = time.perf_counter()
        try:
            exercise(data)
        except CodestreamError as error:
            refused += 1
            assert str(error), "an error must say what was wrong"
        except Exception as error:  # noqa: BLE001 - this is what the test hunts for
            pytest.fail(f"{name} case {case}: {type(error).__name__}: {error}")
        slowest = max(slowest, time.perf_counter() - started)
    assert refused > CASES_PER_FILE // 10, "mutations should mostly be caught"
    assert slowest < 5.0, f"a damaged file took {slowest:.1f} s"
