"""More targets than the server keeps open: every answer must be the asked file's, whatever was evicted.

The files share one image size, so a window (fsiz, roff, rsiz) is the same request for all of them,
while their tiles, levels and precincts differ: a cache keyed by anything an evicted file can hand
on to a newly opened one (id() of its source object) answers with another file's precinct list.
"""

import gc
import time

import pytest

from pyjpip.codestream.markers import read_main_header
from pyjpip.codestream.rebuild import rebuild_codestream
from pyjpip.jpip.server import JPIPServer
from jpip_support import Receiver
from reference import cropped_reference, opj_decode_all, opj_encode, smooth_image
from test_jpip_server import region_of

pytestmark = pytest.mark.cpython_only

KEEP_OPEN = 4
# (opj_compress options) of 96 x 80 images with two levels or more: what differs is where their
# tiles, precincts and code-blocks are.
GEOMETRIES = [
    ["-n", "3"],
    ["-n", "3", "-t", "48,40"],
    ["-n", "4", "-c", "[32,32]"],
    ["-n", "5", "-t", "32,32"],
    ["-n", "3", "-t", "64,64", "-c", "[16,16]", "-b", "8,8"],
    ["-n", "4", "-c", "[64,32],[32,16]"],
]
WINDOWS = ["fsiz=96,80", "fsiz=48,40", "fsiz=96,80&roff=40,30&rsiz=30,20", "fsiz=24,20&roff=0,10&rsiz=12,8"]


def test_more_files_than_kept_open_each_answered_with_its_own_bins(tmp_path):
    files = {}
    for number in range(3 * KEEP_OPEN):
        options = GEOMETRIES[number % len(GEOMETRIES)]
        image = smooth_image(80, 96, 8, number)
        name = f"image-{number:02d}.j2k"
        files[name] = opj_encode([image], 8, [*options, "-r", "6,1"])
        (tmp_path / name).write_bytes(files[name])
    server = JPIPServer(str(tmp_path), keep_open=KEEP_OPEN, response_cache_bytes=0)
    for round_ in range(2):  # the second round reopens every file after it was evicted
        for name, data in files.items():
            for window in WINDOWS:
                gc.collect()  # an evicted source is freed now, so its memory (and id) can be handed on
                response = server.handle("GET", f"target={name}&{window}", time.monotonic())
                body = b"".join(response.body)
                assert response.status == 200, body
                receiver = Receiver()
                receiver.feed_body(body)
                main, tile_headers, precincts = receiver.codestream_bins()
                width = int(window.split("&")[0][5:].split(",")[0])
                discard = {96: 0, 48: 1, 24: 2}[width]
                rebuilt = rebuild_codestream(main, tile_headers, precincts, reduce=discard)
                if "roff" not in window:
                    assert opj_decode_all(rebuilt.codestream, discard) == opj_decode_all(data, discard), \
                        f"round {round_}: {name} {window}"
                else:
                    region = region_of(read_main_header(data).size, window, discard)
                    expected = cropped_reference(data, region, discard)
                    actual = cropped_reference(rebuilt.codestream, region, discard)
                    assert actual[0].shape == expected[0].shape and (actual[0] == expected[0]).all(), \
                        f"round {round_}: {name} {window}"
    assert len(server.store.opened) == KEEP_OPEN
