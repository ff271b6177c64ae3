"""web/geometry.js chooses windows as pyjpip.jpip.view_window resolves them (ISO/IEC 15444-9 C.4): the
round-down resolution for a size, and a visible region that the server keeps exactly as asked and
that covers what is on screen. Sizes and offsets come from the conformance codestreams' SIZ and from
odd sizes made up here; views from a seeded generator."""

import json
import random
import shutil
import subprocess

import pytest

from paths import ROOT
from pyjpip.codestream.markers import read_main_header
from pyjpip.jpip.request import ROUND_DOWN
from pyjpip.jpip.view_window import choose_discard, frame_size, header_levels, map_view_window

pytestmark = [pytest.mark.cpython_only,
              pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")]

RUNNER = """
const geometry = await import(process.argv[1]);
let input = "";
for await (const chunk of process.stdin) input += chunk;
process.stdout.write(JSON.stringify(JSON.parse(input).map(([name, args]) => geometry[name](...args))));
"""


def run_js(calls: list) -> list:
    result = subprocess.run(["node", "--input-type=module", "--eval", RUNNER, (ROOT / "web" / "geometry.js").as_uri()],
                            input=json.dumps(calls), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def sizes(conformance_files):
    """(SIZ, levels) of every conformance codestream, and odd made-up ones (offsets, 1-sample frames)."""
    from pyjpip.codestream.markers import ImageAndTileSize

    found = []
    for path in conformance_files:
        header = read_main_header(path.read_bytes())
        found.append((header.size, header_levels(header)))
    template = found[0][0]
    for x_size, y_size, x_offset, y_offset, levels in ((2048, 2048, 0, 0, 5), (513, 257, 3, 7, 4), (1, 1, 0, 0, 0),
                                                       (4097, 3, 1000, 0, 6), (600, 800, 599, 799, 3)):
        size = ImageAndTileSize(**{**template.__dict__, "x_size": x_size, "y_size": y_size,
                                   "x_offset": x_offset, "y_offset": y_offset})
        found.append((size, levels))
    return found


def test_round_down_reduce_is_view_window_s(sizes):
    rng = random.Random(15)
    calls, expected = [], []
    for size, levels in sizes:
        frames = [frame_size(size, r) for r in range(levels + 1)]
        for _ in range(40):
            w, h = rng.randint(1, frames[0][0] + 8), rng.randint(1, frames[0][1] + 8)
            calls.append(["roundDownReduce", [frames, levels, [w, h]]])
            expected.append(choose_discard(size, w, h, ROUND_DOWN, levels))
    assert run_js(calls) == expected


def test_visible_region_is_kept_by_the_server_and_covers_the_screen(sizes):
    rng = random.Random(9)
    calls, cases = [], []
    for size, levels in sizes:
        width, height = size.x_size - size.x_offset, size.y_size - size.y_offset
        for _ in range(30):
            screen = {"width": rng.randint(50, 1600), "height": rng.randint(50, 1000)}
            view = {"scale": rng.uniform(0.01, 8) * min(screen["width"] / width, screen["height"] / height),
                    "cx": rng.uniform(-0.2, 1.2) * width, "cy": rng.uniform(-0.2, 1.2) * height}
            dpr = rng.choice([1, 1.25, 2])
            calls.append(["neededReduce", [view["scale"], levels, dpr]])
            cases.append((size, levels, screen, view, dpr))
    reduces = run_js(calls)
    calls = []
    for (size, levels, screen, view, dpr), reduce in zip(cases, reduces):
        per_sample = view["scale"] * dpr
        # The most levels discarded that still give a sample per device pixel.
        assert reduce == 0 or 2 ** -reduce >= per_sample
        assert reduce == levels or 2 ** -(reduce + 1) < per_sample
        calls.append(["visibleRegion", [view, screen, frame_size(size, reduce), reduce]])
    regions = run_js(calls)
    for (size, levels, screen, view, _), reduce, (x0, y0, x1, y1) in zip(cases, reduces, regions):
        frame = frame_size(size, reduce)
        window = map_view_window(size, levels, frame, (x0, y0), (x1 - x0, y1 - y0))
        # Asked as the server will serve it: same resolution, same region (no JPIP-roff/rsiz change).
        assert (window.discard, window.offset, window.size) == (reduce, (x0, y0), (x1 - x0, y1 - y0))
        assert 0 <= x0 < x1 <= frame[0] and 0 <= y0 < y1 <= frame[1]
        # What is on screen (in that resolution's samples, clipped to the frame) is inside it.
        k = 2 ** reduce
        left, right = (view["cx"] - screen["width"] / 2 / view["scale"]) / k, (view["cx"] + screen["width"] / 2 / view["scale"]) / k
        top, bottom = (view["cy"] - screen["height"] / 2 / view["scale"]) / k, (view["cy"] + screen["height"] / 2 / view["scale"]) / k
        if right > 0 and left < frame[0] and bottom > 0 and top < frame[1]:
            assert x0 <= max(left, 0) and min(right, frame[0]) <= x1
            assert y0 <= max(top, 0) and min(bottom, frame[1]) <= y1
