"""Position progressions over components subsampled by factors not powers of two apart, through pyjpip's
JPIP server and client, against opj_decompress of the original (15444-1 B.6, B.7, B.12).

A seeded generator makes codestreams with opj_compress: RPCL, PCRL or CPRL, 1-4 components each with
XRsiz and YRsiz from 1 to 5, odd image and tile offsets, tiles, precincts, code-blocks, layers, SOP,
EPH, PLT. OpenJPEG's position loops skip precincts where factors are not powers of two apart
(pyjpip.codestream.progression), so many of these codestreams lack packets the standard requires,
and pyjpip must read them as OpenJPEG wrote them. Each is served by a JPIPServer and fetched by a
JPIPClient: the whole image at full resolution and at the coarsest, and a random region at a
random resolution; the picture rebuilt from the client's cache is decoded by opj_decompress and
compared tile-component by tile-component with opj_decompress of the original.

Not compared, and counted: the tile-components whose finest resolution decoded OpenJPEG's loops
left without any packet. OpenJPEG's decoder decodes a tile-component to the finest resolution it
read a packet of, so it returns those at a lower resolution, written into the image at that size
and place (pinned below: a one-tile image whose components 1 and 2 come out 2 samples wide of 8,
zeros beside; tile 6's component 0 written over tiles 2 and 3). The standard's meaning, which
pyjpip's picture decodes to, is that resolution with its packets empty. The other tiles of such a
component are compared with opj_decompress of each tile alone (-t), which is not overwritten.
"""

import random
import shutil
import struct

import pytest

from pyjpip.codestream import packet_index
from pyjpip.codestream.markers import read_main_header
from pyjpip.codestream.packet_index import index_codestream
from pyjpip.codestream.progression import position_order_is_portable
from pyjpip.codestream.tile_parts import read_codestream
from pyjpip.jpip.client import JPIPClient, ViewWindow
from pyjpip.jpip.server import JPIPServer
from pyjpip.jpip.view_window import frame_size
from exact_windows import (
    differences,
    fetch,
    levels_of,
    opj_planes,
    random_regions,
    tile_by_tile_differences,
    tile_count,
    tiles_without_samples,
)
from test_engine_vs_openjpeg import encode_subsampled, split
from pyjpip.codestream.rebuild import rebuild_codestream

pytestmark = pytest.mark.cpython_only

SEEDS = range(160)


def generated_case(seed: int):
    """(reference-grid width, height, (XRsiz, YRsiz) per component, opj_compress options)."""
    rng = random.Random(seed)
    subsampling = [(rng.randint(1, 5), rng.randint(1, 5)) for _ in range(rng.randint(1, 4))]
    width, height = rng.randint(40, 400), rng.randint(40, 400)
    options = ["-n", str(rng.randint(1, 6)), "-p", rng.choice(["RPCL", "PCRL", "RPCL", "PCRL", "CPRL"])]
    dx, dy = rng.randint(0, 40), rng.randint(0, 40)
    if dx or dy:
        options += ["-d", f"{dx},{dy}"]
    if rng.random() < 0.6:
        tw, th = rng.randint(30, 200), rng.randint(30, 200)
        options += ["-t", f"{tw},{th}"]
        tx, ty = rng.randint(0, min(dx, tw - 1)), rng.randint(0, min(dy, th - 1))
        if tx or ty:
            options += ["-T", f"{tx},{ty}"]
    if rng.random() < 0.8:
        options += ["-c", ",".join(f"[{1 << rng.randint(2, 7)},{1 << rng.randint(2, 7)}]"
                                   for _ in range(rng.randint(1, 3)))]
    options += ["-b", f"{1 << rng.randint(2, 6)},{1 << rng.randint(2, 6)}"]
    if rng.random() < 0.5:
        rates = sorted(rng.sample(range(2, 40), rng.randint(1, 3)), reverse=True)
        options += ["-r", ",".join(map(str, rates)) + ",1"]
    options += [flag for flag in ("-SOP", "-EPH", "-PLT") if rng.random() < 0.2]
    return width, height, subsampling, options


#: Cases that once went wrong, kept whatever the generator becomes (found by it at the seeds that also
#: make their samples: 254, 223, 1329).
PINNED = {
    # Both position orders account for every byte of tile 2 (48 packets or 33); the standard's
    # gives a code-block more coding passes than its bit-planes allow (quantization).
    "both-readings-exact": (254, 171, 61, [(5, 3), (4, 3)], ["-n", "4", "-p", "PCRL", "-d", "37,11", "-t", "56,94",
                                                        "-T", "15,10", "-c", "[32,8],[32,128],[8,8]", "-b", "32,4",
                                                        "-r", "10,3,1"]),
    # OpenJPEG's loops write no packet of tile 6 component 0's finest resolution: its decoder puts
    # that tile-component, at half resolution, over tiles 2 and 3's samples.
    "opj-decodes-tile-6-at-half-resolution": (223, 332, 382, [(3, 4), (2, 4)],
                                              ["-n", "2", "-p", "RPCL", "-d", "38,39", "-t", "47,69", "-T", "5,22",
                                               "-c", "[32,32],[64,32],[8,16]", "-b", "32,32"]),
    "opj-decodes-components-1-2-small": (1329, 41, 248, [(4, 2), (5, 4), (5, 1), (4, 3)],
                                         ["-n", "6", "-p", "RPCL", "-d", "18,3", "-c", "[4,128],[8,32],[32,8]",
                                          "-b", "8,16", "-r", "4,1", "-SOP"]),
}


def lower_resolution_in_openjpeg(index, reduce: int) -> set:
    """(tile, component) whose finest resolution at ``reduce``, above the lowest, has precincts but,
    laid out in OpenJPEG's loops, not one packet (see the module's docstring)."""
    found = set()
    for tile in index.tiles:
        if not tile.openjpeg_positions:
            continue
        for tc in tile.tile.components:
            resolution = tc.resolutions[max(0, tc.decomposition_levels - reduce)]
            if resolution.level and resolution.precinct_count and not any(tile.precincts.get((tc.component, resolution.level, k))
                                                     for k in range(resolution.precinct_count)):
                found.add((tile.tile.index, tc.component))
    return found


class Run:
    """One folder of generated codestreams behind one server; opj_decompress of originals cached."""

    def __init__(self, folder):
        self.folder = folder
        self.server = JPIPServer(str(folder))
        self.references = {}
        self.skipped: list[tuple[str, int, tuple]] = []  # (name, reduce, tile-component) not compared
        self.sampleless: list[tuple[str, int]] = []  # (name, reduce) where no component has a sample
        self.openjpeg_order = 0  # codestreams laid out in OpenJPEG's position loops

    def reference(self, name: str, data: bytes, reduce: int):
        if (name, reduce) not in self.references:
            self.references[(name, reduce)] = opj_planes(data, reduce)
        return self.references[(name, reduce)]

    def check(self, name: str, data: bytes, windows: int = 3) -> str | None:
        """None when every window equals opj_decompress; else what differs. Windows: the whole image
        at full resolution, a random region at a random resolution, the whole image at the coarsest."""
        (self.folder / name).write_bytes(data)
        size = read_main_header(data).size
        levels = levels_of(data)
        index = index_codestream(read_codestream(data))
        self.openjpeg_order += any(t.openjpeg_positions for t in index.tiles)
        session = JPIPClient(f"http://example.test/jpip?target={name}")
        chosen = [(ViewWindow(fsiz=frame_size(size, 0)), session)]
        chosen += [(window, None) for _, window in random_regions(size, levels, name, 1)]
        chosen += [(ViewWindow(fsiz=frame_size(size, levels)), None)]
        for window, client in chosen[:windows]:
            view = fetch(self.server, name, window, client)
            expected, error = self.reference(name, data, view.reduce)
            if expected is None and len(tiles_without_samples(size, view.reduce)) == tile_count(size):
                self.sampleless.append((name, view.reduce))  # nothing to decode, for OpenJPEG or anyone
                continue
            if expected is None:
                return f"{window}: opj_decompress cannot decode the original at -r {view.reduce}: {error}"
            actual, error = opj_planes(view.codestream, view.reduce)
            if actual is None:
                return f"{window}: the picture does not decode: {error}"
            skip = lower_resolution_in_openjpeg(index, view.reduce)
            self.skipped += [(name, view.reduce, s) for s in skip]
            components = {c for _, c in skip}
            apart = {(t, c) for t in range(len(index.tiles)) for c in components} - skip
            differ = differences(expected, actual, size, view.reduce, view.region, skip | apart)
            differ += tile_by_tile_differences(data, actual, size, view.reduce, view.region, apart)
            if differ:
                return f"{window} (discard {view.reduce}): (tile, component) {differ[:8]} differ"
        return None


def encode(width, height, subsampling, options, seed):
    """opj_compress, or None where it gives up (it cannot make some of these: tiny tiles, huge precincts)."""
    try:
        return encode_subsampled(width, height, subsampling, options, seed)
    except AssertionError:
        return None


def test_generated_position_orders_over_mixed_subsampling_equal_opj_decompress(tmp_path):
    run = Run(tmp_path)
    failures, made, mixed, undecodable = [], 0, 0, []
    for seed in SEEDS:
        case = generated_case(seed)
        data = encode(*case, seed)
        if data is None:
            continue
        made += 1
        if run.reference(f"seed-{seed}.j2k", data, 0)[0] is None:
            # opj_compress wrote a file its own decoder refuses (the writer's defect): said, counted, bounded.
            undecodable.append(seed)
            continue
        mixed += not position_order_is_portable(read_main_header(data).size)
        problem = run.check(f"seed-{seed}.j2k", data, 3 if seed % 3 == 0 else 2)
        if problem:
            failures.append(f"seed {seed} {case}: {problem}")
    print(f"{made} codestreams, {mixed} with factors not powers of two apart, {run.openjpeg_order} laid out in "
          f"OpenJPEG's position loops; opj_decompress cannot decode {len(undecodable)} (seeds {undecodable}); "
          f"{len(run.skipped)} tile-components OpenJPEG decodes at a lower resolution, not compared; "
          f"{len(run.sampleless)} windows at a resolution without samples {run.sampleless}")
    assert not failures, "\n".join(failures)
    assert made >= 0.8 * len(SEEDS) and mixed >= 0.5 * made and run.openjpeg_order >= 0.1 * made, \
        "the generator no longer makes what it should"
    assert len(undecodable) <= 0.05 * made and len(run.skipped) <= 0.05 * made * 3


@pytest.mark.parametrize("name", list(PINNED))
def test_pinned_cases_equal_opj_decompress(tmp_path, name):
    run = Run(tmp_path)
    seed, *case = PINNED[name]
    data = encode(*case, seed)
    assert data is not None
    assert run.check(f"{name}.j2k", data) is None
    index = index_codestream(read_codestream(data))
    assert all(t.openjpeg_positions for t in index.tiles)
    skipped = {s for _, _, s in run.skipped}
    if name.startswith("opj-decodes"):
        # OpenJPEG's whole decode there is not those tile-components at their resolution, and only
        # their components differ from the standard's reading that pyjpip's pictures decode to.
        assert skipped, f"{name}: OpenJPEG's loops now reach every finest resolution"
        main, tile_headers, precincts = split(data)
        expected, _ = opj_planes(data, 0)
        actual, _ = opj_planes(rebuild_codestream(main, tile_headers, precincts).codestream, 0)
        differ = differences(expected, actual, read_main_header(data).size, 0)
        assert differ and {c for _, c in differ} <= {c for _, c in skipped}, differ
    else:
        assert not skipped


def without_comment(data: bytes) -> bytes:
    """The codestream with its main header's COM segments cut out (A.9)."""
    position, out = 2, bytearray(data[:2])
    while True:
        marker, length = struct.unpack(">HH", data[position : position + 4])
        if marker == 0xFF90:
            return bytes(out) + data[position:]
        if marker != 0xFF64:
            out += data[position : position + 2 + length]
        position += 2 + length


def test_an_implausible_reading_is_refused_without_the_encoders_name(tmp_path, monkeypatch):
    """The both-readings-exact case without its COM segment (which names OpenJPEG, the last
    tie-break): the bit-plane budget alone picks OpenJPEG's reading; without that check the
    standard's would be taken, and samples would differ."""
    seed, *case = PINNED["both-readings-exact"]
    data = without_comment(encode(*case, seed))
    assert b"OpenJPEG" not in data
    assert all(t.openjpeg_positions for t in index_codestream(read_codestream(data)).tiles)
    assert Run(tmp_path).check("no-comment.j2k", data) is None
    monkeypatch.setattr(packet_index, "_plausible", lambda *arguments: True)
    assert not any(t.openjpeg_positions for t in index_codestream(read_codestream(data)).tiles)
    main, tile_headers, precincts = split(data)
    rebuilt = rebuild_codestream(main, tile_headers, precincts)
    assert opj_planes(rebuilt.codestream, 0)[0] is not None
    expected, actual = opj_planes(data, 0)[0], opj_planes(rebuilt.codestream, 0)[0]
    assert differences(expected, actual, read_main_header(data).size, 0), "the ambiguity is real"
