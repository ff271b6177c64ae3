"""What the viewer asks of JPIP (pyjpip.jpip.viewing) against pyjpip's server core: pictures of
zoomed and panned windows equal OpenJPEG's decode of the original, nothing is received twice, a
newer window for an image abandons the older one, and a prefetch makes the next picture instant."""

import asyncio

import numpy as np
import pytest

from pyjpip.jpip.server import JPIPServer
from pyjpip.jpip.viewing import ImageStreams, Superseded
from pyjpip.transport.local import LocalTransport
from reference import opj_decode_all, opj_encode, pgx_array, smooth_image

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
