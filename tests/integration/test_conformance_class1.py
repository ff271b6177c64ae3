"""Every ISO/IEC 15444-4 conformance file through pyjpip's JPIP server and client, against opj_decompress.

The class-1 codestreams a1-g4 and JP2 files file1-9 of ../shared/data/j2k-conformance-class1 (component
subsampling up to 17x7 with offsets, b2_mono's 25 tiles of which 9 hold no sample, colour transforms,
tile-parts, layers, precincts, every progression) and the Part 1 codestreams of
../shared/data/j2k-conformance. For each file, one in-process JPIPServer; the whole image at every
resolution that has a frame size of its own, coarse to fine through one client session (as a viewer
zooms), then three seeded random regions at random resolutions, each by a new client. Every picture
is rebuilt from the client's cache (pyjpip.jpip.picture.rebuild_served), decoded by opj_decompress at
the resolution served, and compared tile-component by tile-component with opj_decompress of the
original at that resolution (a JP2 file: the codestream of its jp2c box; its palette and colour
boxes are the viewer's, tests/browser/test_jp2_boxes.py), over the region for a region.

Where opj_decompress cannot decode an original, the test says so and checks that it still cannot:
- a tile with no sample at a resolution (p1_06's 3x3 tiles at -r 2 and 3) makes OpenJPEG fail
  ("Failed to decode tile"); the reference there is the original with those tiles' tile-parts cut
  out, here, on its bytes (they hold nothing at that resolution), and pyjpip's pictures leave them
  out too (geometry.Tile.has_samples);
- UNDECODABLE lists the rest, with the reason; those pictures must decode, and are not compared.
"""

import functools
from pathlib import Path

import pytest

from pyjpip.codestream.markers import read_main_header
from pyjpip.jpip.client import JPIPClient, ViewWindow
from pyjpip.jpip.server import JPIPServer
from exact_windows import (
    contiguous_codestream,
    differences,
    fetch,
    full_windows,
    levels_of,
    opj_planes,
    random_regions,
    tiles_without_samples,
    without_tile_parts,
)
from paths import CONFORMANCE, ROOT

pytestmark = pytest.mark.cpython_only

CLASS1 = ROOT.parent / "shared" / "data" / "j2k-conformance-class1"
FILES = ([CLASS1 / n for n in sorted(p.name for p in CLASS1.glob("*.j2c"))]
         + [CLASS1 / n for n in sorted(p.name for p in CLASS1.glob("*.jp2"))]
         + sorted(CONFORMANCE.glob("*.j2k")))

#: (file, reduce) opj_decompress 2.5.0 cannot decode even with its tiles without samples cut out.
UNDECODABLE = {
    ("p1_05.j2k", 5): "after the tiles without samples at -r 5 it stops at tile 16: 'Expected EPH marker'",
    ("p1_05.j2k", 6): "after the tiles without samples at -r 6 it stops at tile 17: 'Expected EPH marker'",
}


def test_every_file_is_here():
    assert len([p for p in FILES if p.parent == CLASS1]) == 30, "a1-g4 .j2c (21) and file1-9.jp2 (9)"
    assert len([p for p in FILES if p.parent == CONFORMANCE]) >= 20


@functools.lru_cache(maxsize=None)
def reference(path: Path, reduce: int) -> tuple[list | None, str]:
    """opj_decompress of the original at -r reduce, and what was done to get it (see the docstring)."""
    codestream = contiguous_codestream(path.read_bytes())
    planes, error = opj_planes(codestream, reduce)
    if planes is not None:
        return planes, ""
    size = read_main_header(codestream).size
    empty = tiles_without_samples(size, reduce)
    note = f"opj_decompress fails on the original at -r {reduce} ({error})"
    if empty:
        planes, error = opj_planes(without_tile_parts(codestream, empty), reduce)
        note += f"; tiles {empty} have no sample at that resolution and are cut out"
        if planes is not None:
            return planes, note
    assert (path.name, reduce) in UNDECODABLE, f"{path.name}: {note}, and then: {error}"
    return None, note + f"; then {error}"


def check(path: Path, window: ViewWindow, view, expected_discard: int | None, label: str, notes: list) -> None:
    codestream = contiguous_codestream(path.read_bytes())
    size = read_main_header(codestream).size
    if expected_discard is not None:
        assert view.reduce == expected_discard, f"{label}: served at discard {view.reduce}"
    actual, error = opj_planes(view.codestream, view.reduce)
    assert actual is not None, f"{label}: opj_decompress cannot decode the picture: {error}"
    expected, note = reference(path, view.reduce)
    if note:
        notes.append(f"{path.name} -r {view.reduce}: {note}")
    if expected is None:
        return  # UNDECODABLE: said in notes, checked below
    differ = differences(expected, actual, size, view.reduce, view.region)
    assert not differ, f"{label}: (tile, component) {differ[:12]} differ from opj_decompress of the original"


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_windows_through_server_and_client_equal_opj_decompress(path):
    server = JPIPServer(str(path.parent))
    codestream = contiguous_codestream(path.read_bytes())
    size = read_main_header(codestream).size
    levels = levels_of(codestream)
    notes: list[str] = []
    session = JPIPClient(f"http://example.test/jpip?target={path.name}")
    for discard, frame in full_windows(size, levels):
        window = ViewWindow(fsiz=frame)
        view = fetch(server, path.name, window, session)
        check(path, window, view, discard, f"{path.name} fsiz={frame}", notes)
    for discard, window in random_regions(size, levels, path.name, 3):
        view = fetch(server, path.name, window)
        check(path, window, view, None, f"{path.name} {window}", notes)
    for name, reduce in UNDECODABLE:
        if name == path.name:
            assert reference(path, reduce)[0] is None, f"opj_decompress now decodes {name} at -r {reduce}"
    if notes:
        print("\n".join(sorted(set(notes))))


def test_repacketized_b2_mono_decodes_like_the_original():
    """The re-packetizer (what ingest serves) writes no tile-part for b2_mono's 9 tiles without
    samples either (a tile-part there made opj_decompress fail: "Failed to decode tile 1/25")."""
    from pyjpip.codestream.repacketize import repacketize
    from pyjpip.codestream.tile_parts import read_codestream

    original = (CLASS1 / "b2_mono.j2c").read_bytes()
    rewritten = repacketize(original).codestream
    size = read_main_header(original).size
    assert sorted(read_codestream(rewritten).tiles) == sorted(set(range(25)) - set(tiles_without_samples(size, 0)))
    for reduce in range(levels_of(original) + 1):
        expected, actual = opj_planes(original, reduce)[0], opj_planes(rewritten, reduce)[0]
        assert actual is not None and not differences(expected, actual, size, reduce), f"reduce {reduce}"
