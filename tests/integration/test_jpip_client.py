"""pyjpip's JPIP client against pyjpip's server: exact pictures for every window, in session and
stateless modes, through faults, over HTTP, from the command line, and under Pyodide in Node."""

import json
import os
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest

from pyjpip.codestream.markers import read_main_header
from pyjpip.jpip.client import JPIPClient, JPIPClientError, ViewWindow, fetch_window
from pyjpip.jpip.picture import rebuild_served
from pyjpip.jpip.server import JPIPServer
from pyjpip.transport.http_client import HTTPTransport
from pyjpip.transport.http_server import make_server
from jpip_support import InProcessTransport
from paths import ROOT
from reference import cropped_reference, opj_decode_all, smooth_image
from test_engine_vs_openjpeg import GENERATED, generated
from test_jpip_server import REFERENCE_FAILS, windows

pytestmark = pytest.mark.cpython_only

FILES = ["p0_04.j2k", "p1_05.j2k", "p0_03.j2k"]


@pytest.fixture(scope="module")
def root(tmp_path_factory, conformance_files):
    folder = tmp_path_factory.mktemp("client-root")
    for path in conformance_files:
        if path.name in FILES:
            shutil.copy(path, folder / path.name)
    case = next(c for c in GENERATED if c[0] == "pcrl-tiles-with-offsets")
    (folder / "tiles-offsets.j2k").write_bytes(generated(*case))
    import imagecodecs
    image = smooth_image(300, 260, 12, 5).astype("uint16")
    (folder / "htj2k.j2c").write_bytes(imagecodecs.htj2k_encode(image, tile=(128, 128), reversible=True))
    return folder


def window_from(query: str) -> ViewWindow:
    fields = dict(part.split("=") for part in query.split("&"))
    pair = lambda name: tuple(map(int, fields[name].split(","))) if name in fields else None  # noqa: E731
    return ViewWindow(fsiz=pair("fsiz"), roff=pair("roff"), rsiz=pair("rsiz"), comps=fields.get("comps"),
                      layers=int(fields["layers"]) if "layers" in fields else None)


def assert_view_exact(view, data: bytes, layers: int, components: list[int], label: str):
    if view.region is None:
        actual = opj_decode_all(view.codestream, view.reduce)
        expected = opj_decode_all(data, view.reduce, layers)
        assert [actual[c] for c in components] == [expected[c] for c in components], label
    else:
        actual = cropped_reference(view.codestream, view.region, view.reduce)
        expected = cropped_reference(data, view.region, view.reduce, layers)
        for c in components:
            assert np.array_equal(actual[c], expected[c]), f"{label} component {c}"


@pytest.mark.parametrize("mode", ["session", "stateless", "session, len=1500"])
def test_every_window_rebuilds_exactly(root, mode):
    server = JPIPServer(str(root))
    for name in sorted(p.name for p in root.iterdir()):
        data = (root / name).read_bytes()
        header = read_main_header(data)
        size, layers = header.size, header.coding_style.layers
        levels = min(header.component_style(c).decomposition_levels for c in range(len(size.components)))
        for query, discard, window_layers in windows(size, levels, layers):
            if (name, discard) in REFERENCE_FAILS:
                continue
            client = JPIPClient(f"http://example.test/jpip?target={name}", stateless=mode == "stateless",
                                length_limit=1500 if "len" in mode else None)
            transport = InProcessTransport(server)
            window = window_from(query)
            requests = fetch_window(client, window, transport)
            assert client.bytes_received == client.cache.bytes, "no byte arrives twice"
            if "len" not in mode:
                assert requests == 1
            view = rebuild_served(client, window)
            assert view.reduce == discard
            fields = dict(part.split("=") for part in query.split("&"))
            components = [int(fields["comps"])] if "comps" in fields else list(range(len(size.components)))
            assert_view_exact(view, data, window_layers, components, f"{name} {query} ({mode})")


def test_the_best_so_far_codestream_always_decodes(root):
    server = JPIPServer(str(root))
    data = (root / "p0_04.j2k").read_bytes()
    client = JPIPClient("http://example.test/jpip?target=p0_04.j2k")
    window = ViewWindow(fsiz=(640, 480))
    checked = []
    transport = InProcessTransport(server, piece=3001)
    original = client.receive_body

    def watch(piece):
        events = original(piece)
        if client.cache.complete((6, 0, 0)) and len(checked) < 12 and client.bytes_received > 8000 * len(checked):
            view = rebuild_served(client, window)
            opj_decode_all(view.codestream)  # must decode, whatever has arrived
            checked.append(view.rebuilt.packets_present)
        return events

    client.receive_body = watch
    fetch_window(client, window, transport)
    assert len(checked) >= 10 and checked == sorted(checked) and checked[-1] > checked[0]
    assert opj_decode_all(rebuild_served(client, window).codestream) == opj_decode_all(data)


def test_a_restarted_server_and_a_dropped_connection_lose_nothing(root):
    data = (root / "p0_04.j2k").read_bytes()
    window = ViewWindow(fsiz=(640, 480))
    client = JPIPClient("http://example.test/jpip?target=p0_04.j2k", length_limit=20000)
    transport = InProcessTransport(JPIPServer(str(root)), fail_after=7000)  # the first body breaks off
    for _ in range(2):
        try:
            transport(client.next_request(window), client)
        except ConnectionError:
            client.connection_lost()
    assert client.cache.bytes > 7000
    transport.server = JPIPServer(str(root))  # the server restarts: the session is gone (503)
    fetch_window(client, window, transport)
    assert client.bytes_received == client.cache.bytes, "bytes held were downloaded again"
    assert opj_decode_all(rebuild_served(client, window).codestream) == opj_decode_all(data)


def test_long_models_go_by_post(root):
    client = JPIPClient("http://example.test/jpip?target=p1_05.j2k", stateless=True, length_limit=3000)
    transport = InProcessTransport(JPIPServer(str(root)))
    fetch_window(client, ViewWindow(fsiz=(512, 512)), transport)
    assert "POST" in transport.methods and transport.methods[0] == "GET"
    assert client.bytes_received == client.cache.bytes


def test_refusals_are_errors_that_say_why(root):
    transport = InProcessTransport(JPIPServer(str(root)))
    with pytest.raises(JPIPClientError, match="HTTP 404: target 'missing.j2k' does not exist"):
        fetch_window(JPIPClient("http://example.test/jpip?target=missing.j2k"), ViewWindow(fsiz=(8, 8)), transport)
    with pytest.raises(JPIPClientError, match="http or https"):
        JPIPClient("ftp://example.test/x.j2k")


@pytest.fixture(scope="module")
def live(root):
    server = make_server(None, "127.0.0.1", 0, jpip_root=str(root))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_over_http_with_the_cpython_transport(live, root):
    data = (root / "tiles-offsets.j2k").read_bytes()
    for stateless in (False, True):
        client = JPIPClient(f"{live}/jpip?target=tiles-offsets.j2k", stateless=stateless, length_limit=2500)
        transport = HTTPTransport()
        fetch_window(client, ViewWindow(fsiz=(257, 193)), transport)
        transport(client.close_request(), client) if client.cid else None
        transport.close()
        assert opj_decode_all(rebuild_served(client, ViewWindow(fsiz=(257, 193))).codestream) == opj_decode_all(data)


def pyjpip_cli(*args):
    return subprocess.run([sys.executable, "-m", "pyjpip", *args], capture_output=True, text=True, timeout=120)


def test_fetch_command_writes_codestreams_and_pngs(live, root, tmp_path):
    out = tmp_path / "view.j2k"
    result = pyjpip_cli("fetch", f"{live}/jpip?target=p0_04.j2k", "--fsiz", "320,240", "--len", "4000",
                        "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "request(s)" in result.stdout and "bytes received" in result.stdout
    assert opj_decode_all(out.read_bytes(), 1) == opj_decode_all((root / "p0_04.j2k").read_bytes(), 1)
    png = tmp_path / "view.png"
    result = pyjpip_cli("fetch", f"{live}/jpip?target=htj2k.j2c", "--fsiz", "260,300", "--roff", "40,50",
                        "--rsiz", "100,80", "--stateless", "-o", str(png))
    assert result.returncode == 0, result.stderr
    import imagecodecs
    picture = imagecodecs.png_decode(png.read_bytes())
    assert picture.shape == (80, 100) and picture.dtype == np.uint8 and np.ptp(picture) > 100
    result = pyjpip_cli("fetch", f"{live}/jpip?target=nothing.j2k", "-o", str(out))
    assert result.returncode == 1 and "HTTP 404" in result.stderr and len(result.stderr.splitlines()) == 1


def test_the_same_client_runs_under_pyodide_in_node(live, root, tmp_path):
    out = tmp_path / "pyodide.j2k"
    result = subprocess.run(["node", str(ROOT / "tests" / "pyodide" / "fetch_window.mjs"),
                             f"{live}/jpip?target=p1_05.j2k", "256,256", "4000", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["requests"] > 3 and report["received"] == report["held"]
    client = JPIPClient(f"{live}/jpip?target=p1_05.j2k", length_limit=4000)
    transport = HTTPTransport()
    fetch_window(client, ViewWindow(fsiz=(256, 256)), transport)
    transport.close()
    assert out.read_bytes() == rebuild_served(client, ViewWindow(fsiz=(256, 256))).codestream
    assert opj_decode_all(out.read_bytes(), 1) == opj_decode_all((root / "p1_05.j2k").read_bytes(), 1)


def test_a_server_without_sessions_is_used_statelessly(root):
    data = (root / "p0_04.j2k").read_bytes()
    client = JPIPClient("http://example.test/jpip?target=p0_04.j2k", length_limit=30000)
    transport = InProcessTransport(JPIPServer(str(root), session_limit=0))  # every cnew gets 503
    fetch_window(client, ViewWindow(fsiz=(640, 480)), transport)
    assert client.stateless and client.cid is None and client.bytes_received == client.cache.bytes
    assert opj_decode_all(rebuild_served(client, ViewWindow(fsiz=(640, 480))).codestream) == opj_decode_all(data)


def test_a_changed_target_empties_the_cache(root, tmp_path):
    folder = tmp_path / "changing"
    folder.mkdir()
    shutil.copy(root / "p0_04.j2k", folder / "image.j2k")
    server = JPIPServer(str(folder))
    client = JPIPClient("http://example.test/jpip?target=image.j2k", stateless=True)
    transport = InProcessTransport(server)
    fetch_window(client, ViewWindow(fsiz=(320, 240)), transport)
    first_tid = client.tid
    shutil.copy(root / "tiles-offsets.j2k", folder / "image.j2k")
    os.utime(folder / "image.j2k", ns=(5, 5))
    fetch_window(client, ViewWindow(fsiz=(257, 193)), transport)
    assert client.tid != first_tid
    new = (folder / "image.j2k").read_bytes()
    assert opj_decode_all(rebuild_served(client, ViewWindow(fsiz=(257, 193))).codestream) == opj_decode_all(new)


def test_a_stream_named_by_the_url_is_kept_on_the_channel(root, tmp_path):
    import struct

    from pyjpip.codestream.file_format import SIGNATURE

    def box(kind, contents):
        return struct.pack(">I4s", 8 + len(contents), kind) + contents
    first, second = (root / "p0_03.j2k").read_bytes(), (root / "p0_04.j2k").read_bytes()
    (tmp_path / "two.jpx").write_bytes(SIGNATURE + box(b"ftyp", b"jpx \0\0\0\0jpx ") + box(b"jp2c", first)
                                       + box(b"jp2c", second))
    transport = InProcessTransport(JPIPServer(str(tmp_path)))
    client = JPIPClient("http://example.test/jpip?target=two.jpx&stream=1")
    fetch_window(client, ViewWindow(), transport)  # headers first: this opens the channel
    assert client.cid is not None
    fetch_window(client, ViewWindow(fsiz=(640, 480)), transport)  # then the view, on the channel
    assert opj_decode_all(rebuild_served(client, ViewWindow(fsiz=(640, 480))).codestream) == opj_decode_all(second)
