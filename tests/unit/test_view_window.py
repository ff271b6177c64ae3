"""View windows (pyjpip.jpip.view_window, 15444-9 C.4): frame sizes, the three roundings, regions
scaled floor/ceil and carried back to the reference grid with the image offset; the server's
resolve_window and a client's view of the main header alone give the same answer."""

import pytest

from pyjpip.codestream.markers import ComponentSize, ImageAndTileSize, read_main_header
from pyjpip.codestream.source import JPEG2000Source
from pyjpip.jpip.request import CLOSEST, ROUND_DOWN, ROUND_UP, parse_query
from pyjpip.jpip.view_window import (choose_discard, frame_size, header_levels, map_view_window,
                                     requested_region, resolve_window)


def siz(x_size, y_size, x_offset=0, y_offset=0) -> ImageAndTileSize:
    return ImageAndTileSize(0, x_size, y_size, x_offset, y_offset, x_size, y_size, 0, 0,
                            (ComponentSize(8, False, 1, 1),))


#: Xsiz 1000, XOsiz 3, Ysiz 701: fx'(r) = ceil(1000 / 2^r) - ceil(3 / 2^r), fy'(r) = ceil(701 / 2^r).
SIZE = siz(1000, 701, 3, 0)
FRAMES = [(997, 701), (500 - 2, 351), (250 - 1, 176), (125 - 1, 88)]


def test_frame_size_is_c41_with_the_image_offset():
    assert [frame_size(SIZE, r) for r in range(4)] == FRAMES
    # Offsets on both axes: ceil(227 / 4) - ceil(128 / 4) = 57 - 32; ceil(127 / 4) - ceil(5 / 4) = 32 - 2.
    assert frame_size(siz(127, 227, 5, 128), 2) == (30, 25)


@pytest.mark.parametrize("fsiz, direction, discard", [
    ((600, 400), ROUND_DOWN, 1),  # the largest frame within 600 x 400 is 498 x 351
    ((997, 701), ROUND_DOWN, 0),  # exactly the full frame
    ((997, 700), ROUND_DOWN, 1),  # one row short of it
    ((1, 1), ROUND_DOWN, 3),  # nothing fits: the smallest resolution there is
    ((600, 400), ROUND_UP, 0),  # the smallest frame covering 600 x 400 is the full one
    ((249, 176), ROUND_UP, 2),
    ((250, 176), ROUND_UP, 1),
    ((5000, 5000), ROUND_UP, 0),  # nothing covers: the full resolution
    # closest by area: 240,000 is 65,702 from 498 x 351 and 458,897 from the full frame
    ((600, 400), CLOSEST, 1),
    ((800, 600), CLOSEST, 0),  # 480,000: 218,897 from the full frame, 305,202 from 498 x 351
])
def test_rounding_directions_pick_the_resolution(fsiz, direction, discard):
    assert choose_discard(SIZE, *fsiz, direction, 3) == discard


def test_closest_takes_the_larger_resolution_on_a_tie():
    size = siz(8, 1)  # frames 8 x 1, 4 x 1, 2 x 1: 6 x 1 is 2 from both of the first two
    assert choose_discard(size, 6, 1, CLOSEST, 2) == 0


def test_region_scales_offsets_down_and_ends_up_and_lands_on_the_grid():
    window = map_view_window(SIZE, 3, (600, 400), (100, 50), (201, 101))
    assert window.discard == 1 and window.frame == (498, 351)
    # ox' = floor(100 * 498 / 600) = 83, oy' = floor(50 * 351 / 400) = 43;
    # ex = ceil(301 * 498 / 600) = 250, ey = ceil(151 * 351 / 400) = 133.
    assert window.offset == (83, 43) and window.size == (250 - 83, 133 - 43)
    assert window.frame_region == (83, 43, 250, 133)
    # Canvas at r = 1 starts at ceil(3 / 2) = 2: X0 = (2 + 83) * 2, X1 = (2 + 250) * 2.
    assert window.region == (170, 86, 504, 266)


def test_region_defaults_and_clipping():
    whole = map_view_window(SIZE, 3, (498, 351))
    assert whole.offset == (0, 0) and whole.size == (498, 351)
    # X0 = max(2 * 2, XOsiz) = 4; Y1 = min(Ysiz, 351 * 2) = 701: the last odd row of the grid.
    assert whole.region == (4, 0, 1000, 701)
    tail = map_view_window(SIZE, 3, (498, 351), (400, 300), (1000, 1000))
    assert tail.size == (98, 51) and tail.region[2:] == (1000, 701)
    beyond = map_view_window(SIZE, 3, (498, 351), (600, 10))
    assert beyond.offset == (498, 10) and beyond.empty
    at_full = map_view_window(SIZE, 3, (997, 701), (0, 0), (1, 1))
    assert at_full.region == (3, 0, 4, 1)  # the grid starts at XOsiz


def test_requested_region_defaults_run_to_the_frame_edge():
    assert requested_region((100, 80), None, None) == (0, 0, 100, 80)
    assert requested_region((100, 80), (30, 90), None) == (30, 90, 70, 0)
    assert requested_region((100, 80), (30, 9), (5, 6)) == (30, 9, 5, 6)


def test_resolve_window_reports_what_it_changed():
    # A one-tile codestream of SIZE is not needed: resolve_window's geometry is map_view_window's,
    # checked against real codestreams below; here the headers a request gets back.
    from types import SimpleNamespace

    tile = SimpleNamespace(tile=SimpleNamespace(components=[SimpleNamespace(decomposition_levels=3)],
                                                coding_style=SimpleNamespace(layers=4)))
    index = SimpleNamespace(size=SIZE, tiles=[tile])
    served = resolve_window(parse_query("fsiz=600,400&roff=100,50&rsiz=201,101&layers=9"), index)
    assert served.changed == {"JPIP-layers": "4", "JPIP-fsiz": "498,351", "JPIP-roff": "83,43",
                              "JPIP-rsiz": "167,90"}
    assert served.layers == 4 and served.region == (170, 86, 504, 266)
    assert resolve_window(parse_query("fsiz=498,351&roff=10,10&rsiz=20,20"), index).changed == {}
    assert resolve_window(parse_query("fsiz=0,0"), index).empty


def test_a_component_range_costs_what_the_image_has_not_what_it_names():
    """comps=0-4294967295 (issue 23): the ranges were expanded into sets before being clamped to the
    image's components, so one request could take gigabytes. Now the work and memory are bounded by the
    component count whatever the range says."""
    import tracemalloc
    from types import SimpleNamespace

    tile = SimpleNamespace(tile=SimpleNamespace(components=[SimpleNamespace(decomposition_levels=3)],
                                                coding_style=SimpleNamespace(layers=1)))
    index = SimpleNamespace(size=SIZE, tiles=[tile])
    tracemalloc.start()
    try:
        served = resolve_window(parse_query("fsiz=498,351&comps=0-3000000"), index)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert served.components == (0,) and served.changed == {"JPIP-comps": "0"}
    assert peak < 1 << 20, f"{peak} bytes for a one-component image"
    huge = resolve_window(parse_query("fsiz=498,351&comps=0-4294967295,7-,5"), index)
    assert huge.components == (0,) and huge.changed == {"JPIP-comps": "0"}
    assert resolve_window(parse_query("fsiz=498,351&comps=0"), index).changed == {}
    assert resolve_window(parse_query("fsiz=498,351&comps=0-"), index).changed == {}
    assert resolve_window(parse_query("fsiz=498,351&comps=3-9"), index).changed == {"JPIP-comps": ""}


def windows_of(size, levels):
    """fsiz, roff, rsiz, round: whole frames, regions, roundings between levels."""
    full = frame_size(size, 0)
    out = []
    for r in range(levels + 1):
        fx, fy = frame_size(size, r)
        out.append(((fx, fy), None, None, ROUND_DOWN))
        out.append(((fx, fy), (fx // 3, fy // 4), (fx // 2 + 1, fy // 3 + 1), ROUND_DOWN))
        out.append(((fx + 1, fy + 1), (fx // 5, 0), None, ROUND_UP))
        out.append(((max(1, fx - 1), max(1, fy - 1)), (1, 1), (fx, fy), CLOSEST))
    out.append((full, (full[0] - 1, full[1] - 1), (5, 5), ROUND_DOWN))
    out.append((full, (full[0] + 3, 0), None, ROUND_DOWN))
    return out


def _query(fsiz, roff, rsiz, direction) -> str:
    fields = [f"fsiz={fsiz[0]},{fsiz[1]},{direction}"]
    if roff is not None:
        fields.append(f"roff={roff[0]},{roff[1]}")
    if rsiz is not None:
        fields.append(f"rsiz={rsiz[0]},{rsiz[1]}")
    return "&".join(fields)


def test_every_conformance_file_client_and_server_agree(conformance_files):
    """A client knows only the main header; the server knows every tile. For every conformance
    file they resolve each window the same, and the region on the grid maps back (C.4.1's
    ceil(X / 2^r) - ceil(XOsiz / 2^r)) to the region in the frame."""
    checked = 0
    for path in conformance_files:
        source = JPEG2000Source(path.read_bytes(), name=path.name)
        index = source.index(0)
        header = read_main_header(bytes(source.codestream(0).data))
        size, levels = header.size, header_levels(header)
        assert levels == min(tc.decomposition_levels for t in index.tiles for tc in t.tile.components), path.name
        for fsiz, roff, rsiz, direction in windows_of(size, levels):
            client = map_view_window(size, levels, fsiz, roff, rsiz, direction)
            server = resolve_window(parse_query(_query(fsiz, roff, rsiz, direction)), index)
            assert (server.discard, server.frame, server.offset, server.size, server.region, server.empty) == \
                (client.discard, client.frame, client.offset, client.size, client.region, client.empty), \
                (path.name, fsiz, roff, rsiz, direction)
            x0, y0, x1, y1 = client.region
            assert size.x_offset <= x0 <= x1 <= size.x_size and size.y_offset <= y0 <= y1 <= size.y_size
            if not client.empty:
                scale = 1 << client.discard
                canvas = (-(-size.x_offset // scale), -(-size.y_offset // scale))
                back = (-(-x0 // scale) - canvas[0], -(-y0 // scale) - canvas[1],
                        -(-x1 // scale) - canvas[0], -(-y1 // scale) - canvas[1])
                assert back == client.frame_region, (path.name, fsiz, roff, rsiz, direction)
            checked += 1
    assert checked > 100
