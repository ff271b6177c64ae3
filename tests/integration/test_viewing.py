"""What the viewer asks of JPIP (pyjpip.jpip.viewing) against pyjpip's server core: pictures of
zoomed and panned windows equal OpenJPEG's decode of the original, nothing is received twice, a
newer window for an image abandons the older one, and a prefetch makes the next picture instant.
A zoomed detail gets one picture at its first quality layer (against a reference codestream made
without pyjpip), none when one piece of body brings every layer."""

import asyncio

import numpy as np
import pytest

from pyjpip.jpip.server import JPIPServer
from pyjpip.jpip.viewing import ImageStreams, Superseded
from pyjpip.transport.local import LocalTransport
from reference import finest_resolution_at_first_layer, opj_decode_all, opj_encode, pgx_array, smooth_image

pytestmark = pytest.mark.cpython_only
NAME = "image.j2k"
SIZE = (768, 640)  # width, height


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    folder = tmp_path_factory.mktemp("viewing")
    image = smooth_image(SIZE[1], SIZE[0], 12, 3)
    (folder / NAME).write_bytes(opj_encode([image], 12, ["-n", "5", "-c", "[64,64]", "-r", "20,5,1", "-p", "RPCL"]))
    return folder


def run(coroutine):
    """asyncio.run in a thread of its own: Playwright's sync API may hold this thread's event loop."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as executor:
        return executor.submit(asyncio.run, coroutine).result()


def reference(root, reduce):
    return pgx_array(opj_decode_all((root / NAME).read_bytes(), reduce)[0])


def decoded_region(picture):
    """What the browser does with a picture: decode the frame at ``reduce``, keep the region."""
    import tempfile
    from pathlib import Path
    import shutil
    import subprocess

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "in.j2k"
        source.write_bytes(picture.codestream)
        subprocess.run([shutil.which("opj_decompress"), "-i", str(source), "-o", str(Path(tmp) / "o.pgx"),
                        "-r", str(picture.reduce)], check=True, capture_output=True)
        frame = pgx_array(next(Path(tmp).glob("o*.pgx")).read_bytes())
    assert frame.shape == (picture.frame[1], picture.frame[0])
    x0, y0, x1, y1 = picture.region
    return frame[y0:y1, x0:x1]


def test_zoom_and_pan_pictures_are_exact_and_nothing_comes_twice(root):
    streams = ImageStreams(LocalTransport(JPIPServer(str(root)), 4000), every_seconds=0)
    url = f"http://viewer.test/jpip?target={NAME}"
    pictures = []
    info = run(streams.show(url))
    assert (info["width"], info["height"], info["levels"]) == (*SIZE, 4)
    assert info["frames"][2] == [192, 160]
    steps = [(2, None), (1, (100, 60, 300, 220)), (0, (300, 200, 700, 560)), (0, (340, 200, 740, 560)),
             (1, (100, 60, 300, 220))]  # fit, zoom in twice, pan, zoom back out
    client = streams.client(url)
    for step, (reduce, region) in enumerate(steps):
        before = client.body_bytes
        run(streams.show(url, reduce, region, pictures.append))
        final = pictures[-1]
        assert final.final and final.reduce == reduce
        assert final.codestream_length == (root / NAME).stat().st_size  # the server says, for "x of y bytes"
        full = reference(root, reduce)
        x0, y0, x1, y1 = final.region
        assert np.array_equal(decoded_region(final), full[y0:y1, x0:x1]), (reduce, region)
        if step == len(steps) - 1:
            assert client.body_bytes - before < 100, "a window already seen needs nothing but EOR"
    assert any(not p.final for p in pictures), "pictures come while bytes arrive, not only at the end"
    assert client.bytes_new == client.bytes_received, "nothing was received twice"


def test_a_stopped_window_gives_way_to_the_next_and_nothing_is_lost(root):
    transport = LocalTransport(JPIPServer(str(root)), piece=1500)
    streams = ImageStreams(transport, every_seconds=0)
    url = f"http://viewer.test/jpip?target={NAME}"
    run(streams.show(url))
    pictures = []

    stopped = []

    async def zoom_while_loading():
        older = asyncio.ensure_future(streams.show(url, 0, None, pictures.append, lambda: bool(stopped)))
        for _ in range(20):  # let the older one get some bytes
            await asyncio.sleep(0)
        stopped.append(True)  # what the viewer does when a gesture makes a window stale
        newer = asyncio.ensure_future(streams.show(url, 0, (200, 100, 500, 400), pictures.append))
        results = await asyncio.gather(older, newer, return_exceptions=True)
        return results

    older, newer = run(zoom_while_loading())
    assert isinstance(older, Superseded)
    assert isinstance(newer, dict) and transport.closed == 1
    final = pictures[-1]
    assert final.final and final.region == (200, 100, 500, 400)
    assert 0 < client_bytes_before_newer(pictures) < streams.client(url).body_bytes
    assert np.array_equal(decoded_region(final), reference(root, 0)[100:400, 200:500])
    client = streams.client(url)
    assert client.bytes_new == client.bytes_received


def client_bytes_before_newer(pictures):
    """Bytes the older window had when it was stopped: it had begun."""
    return max(p.body_bytes for p in pictures if p.region == (0, 0, 768, 640))


def test_a_prefetched_preview_is_shown_from_the_cache_before_any_request(root):
    streams = ImageStreams(LocalTransport(JPIPServer(str(root)), 4000))
    url = f"http://viewer.test/jpip?target={NAME}"
    run(streams.show(url, 3))  # the preview, as a neighbour in a stack is prefetched
    pictures = []
    run(streams.show(url, 1, None, pictures.append))
    assert pictures[0].from_cache and not pictures[0].final and pictures[0].layers == 0
    assert pictures[-1].final and pictures[-1].layers == 3
    assert np.array_equal(decoded_region(pictures[-1]), reference(root, 1))


def test_windows_of_one_image_from_two_viewers_take_turns(root):
    """A thumbnail and a viewport asking for the same image at once both get their pictures."""
    streams = ImageStreams(LocalTransport(JPIPServer(str(root)), piece=1500))
    url = f"http://viewer.test/jpip?target={NAME}"
    thumbnail, viewport = [], []

    async def both():
        return await asyncio.gather(streams.show(url, 4, None, thumbnail.append), streams.show(url, 1, None, viewport.append),
                                    streams.show(url))

    run(both())
    assert thumbnail[-1].final and viewport[-1].final
    assert np.array_equal(decoded_region(viewport[-1]), reference(root, 1))


def test_a_missing_image_is_a_clear_error(root):
    from pyjpip.jpip.client import JPIPClientError

    streams = ImageStreams(LocalTransport(JPIPServer(str(root)), 4000))
    with pytest.raises(JPIPClientError, match="404"):
        run(streams.show("http://viewer.test/jpip?target=missing.j2k", 0))


def test_the_header_request_brings_the_first_picture_and_a_window_held_asks_nothing(root):
    streams = ImageStreams(LocalTransport(JPIPServer(str(root)), 4000), every_seconds=0)
    url = f"http://viewer.test/jpip?target={NAME}"
    run(streams.show(url, first_size=(200, 170)))  # JPIP round-down: 192x160, two levels discarded
    client = streams.client(url)
    asked, pictures = client.requests_sent, []
    run(streams.show(url, 2, None, pictures.append))
    assert client.requests_sent == asked, "the first picture's bins came with the header"
    assert [(p.final, p.from_cache, p.layers) for p in pictures] == [(True, True, 3)]
    assert np.array_equal(decoded_region(pictures[0]), reference(root, 2))
    # Fewer layers held than the window wants: it is asked for, and only what is missing comes.
    region = (100, 60, 400, 300)
    run(streams.show(url, 0, region, layers=1))
    asked = client.requests_sent
    run(streams.show(url, 0, region, pictures.append))
    assert client.requests_sent == asked + 1 and pictures[-1].final and pictures[-1].layers == 3
    x0, y0, x1, y1 = region
    assert np.array_equal(decoded_region(pictures[-1]), reference(root, 0)[y0:y1, x0:x1])
    run(streams.show(url, 0, region, pictures.append))
    assert client.requests_sent == asked + 1, "held whole now: nothing asked"
    assert client.bytes_new == client.bytes_received, "nothing was received twice"


# The detail's layer picture (layer_picture): the 2048² demo CT, fitted at 1/2, zoomed 2x.

CT = "ct_phantom_2048.j2k"
ZOOM = (30, 511, 2018, 1536)  # the region of a 2x zoom (reduce 0) of the CT fitted in 1280x720 at reduce 1
PIECE = 1000  # body bytes the transport hands the client at a time


def still_clock():
    """A clock that does not move: no timed pictures, only the ones a rule posts."""
    return 0.0


def region_of(codestream: bytes, region, reduce=0, layers=None):
    """opj_decompress's samples of a region (the whole frame decoded, then cut)."""
    from reference import cropped_reference

    return cropped_reference(codestream, region, reduce, layers)[0]


def zoomed(demo_data, transport, preview=False):
    """Fit the CT at reduce 1 (the header's request brings it), then zoom 2x: the detail's pictures."""
    streams = ImageStreams(transport, every_seconds=1e9, clock=still_clock)
    url = f"http://viewer.test/jpip?target={CT}"
    base, detail = [], []
    run(streams.show(url, first_size=(1024, 1024)))
    run(streams.show(url, 1, None, base.append))
    assert [(p.final, p.layers) for p in base] == [(True, 4)], "the fitted base is held whole"
    run(streams.show(url, 0, ZOOM, detail.append, preview=preview))
    return detail


def test_a_zoomed_detail_gets_one_picture_at_its_first_quality_layer_before_the_final_one(demo_data):
    """The layer picture against references made without pyjpip: opj_decompress decodes it, and its
    samples are exactly those of the original with the finest resolution's packets above layer 1
    emptied (not the lossless ones, nor those of every resolution at one layer); the final picture's
    are the original's. A window asked with preview (a base) gets no layer picture."""
    original = (demo_data / CT).read_bytes()
    reference, second_packets = finest_resolution_at_first_layer(original)
    # Every layer-2 packet of the finest resolution is longer than a piece: the piece in which one
    # begins (when the layer picture is made) cannot complete it, so the picture holds layer 1 only.
    assert min(second_packets) > PIECE
    detail = zoomed(demo_data, LocalTransport(JPIPServer(str(demo_data)), PIECE))
    assert [(p.final, p.layers, p.from_cache) for p in detail] == [(False, 1, False), (True, 4, False)]
    layer, final = detail
    assert (layer.reduce, layer.region, layer.frame, layer.grid_region) == (0, ZOOM, (2048, 2048), ZOOM)
    assert layer.body_bytes < final.body_bytes / 2, "the first layer is a small part of the bytes"

    x0, y0, x1, y1 = ZOOM
    got = region_of(layer.codestream, ZOOM)
    assert got.shape == (y1 - y0, x1 - x0)
    lossless = region_of(original, ZOOM)
    assert np.array_equal(got, region_of(reference, ZOOM))
    assert not np.array_equal(got, lossless)
    assert not np.array_equal(got, region_of(original, ZOOM, layers=1)), "lower resolutions are the base's, lossless"
    # Nearer the lossless samples than the base's (every other sample repeated): what the picture is for.
    base = np.repeat(np.repeat(region_of(original, (0, 0, 2048, 2048), 1), 2, 0), 2, 1)[y0:y1, x0:x1]
    error = lambda samples: np.abs(samples.astype(np.int64) - lossless).mean()  # noqa: E731
    assert error(got) < error(base)
    assert np.array_equal(region_of(final.codestream, ZOOM), lossless)

    previewed = zoomed(demo_data, LocalTransport(JPIPServer(str(demo_data)), PIECE), preview=True)
    assert [(p.final, p.layers) for p in previewed if not p.from_cache] == [(True, 4)]


class WholeAnswer:
    """A transport onto a JPIPServer core that hands the client each answer's body in one piece."""

    def __init__(self, server):
        self.server = server

    async def __call__(self, http_request, client, on_bytes=None):
        import time
        from urllib.parse import unquote, urlsplit

        parts = urlsplit(http_request.url)
        query = http_request.body.decode("latin-1") if http_request.method == "POST" else parts.query
        prefix = f"/{self.server.channel_path}/"
        target = unquote(parts.path[len(prefix):]) if parts.path.startswith(prefix) else None
        response = self.server.handle(http_request.method, query, time.monotonic(), target)
        summary = client.receive_headers(response.status, dict(response.headers))
        assert response.status == 200
        events = client.receive_body(b"".join(response.body))
        if events and on_bytes is not None:
            on_bytes(events)
        return client.end_of_body()


def test_no_layer_picture_when_one_piece_of_body_brings_every_layer(demo_data):
    """The answer in one piece: the layer is complete in the same piece as the rest, so only the final
    picture is posted (decoding another first would only delay it)."""
    detail = zoomed(demo_data, WholeAnswer(JPIPServer(str(demo_data))))
    assert [(p.final, p.layers) for p in detail] == [(True, 4)]
    assert np.array_equal(region_of(detail[0].codestream, ZOOM), region_of((demo_data / CT).read_bytes(), ZOOM))
