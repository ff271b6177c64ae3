"""The web server over real sockets: JPIP at /jpip beside the static site, CORS, chunked sessions,
POST, and a battery of hostile requests that must each get a clear 4xx/5xx and never a 500."""

import http.client
import time
import os
import shutil
import socket
import subprocess
import sys
import urllib.parse
from contextlib import contextmanager

import pytest

from pyjpip.codestream.rebuild import rebuild_codestream
from pyjpip.transport.site import CORSPolicy
from jpip_support import Receiver
from network_support import free_port, wait_for_port
from serving import dev_server, production, server_end
from paths import STATIC
from reference import opj_decode_all

pytestmark = pytest.mark.cpython_only


@pytest.fixture(scope="module")
def root(tmp_path_factory, conformance_files):
    folder = tmp_path_factory.mktemp("root")
    outside = tmp_path_factory.mktemp("outside")
    for name in ("p0_01.j2k", "p0_04.j2k"):
        shutil.copy(next(p for p in conformance_files if p.name == name), folder / name)
    (folder / "sub").mkdir()
    shutil.copy(folder / "p0_01.j2k", folder / "sub" / "inner.j2c")
    (folder / "notes.txt").write_text("not an image")
    (folder / "broken.j2k").write_bytes(b"\xff\x4f\xff\x51\x00\x05garbage")
    shutil.copy(folder / "p0_01.j2k", outside / "secret.j2k")
    os.symlink(outside / "secret.j2k", folder / "escape.j2k")
    os.symlink(folder / "p0_01.j2k", folder / "alias.j2k")
    return folder


@pytest.fixture(scope="module", params=["dev", "production"])
def address(request, root, tmp_path_factory):
    """Every test here runs against the dev server and the production command (gunicorn, two
    workers sharing a session folder): they must answer alike."""
    if request.param == "dev":
        with dev_server(root, STATIC) as address:
            yield address
    else:
        with production(root, STATIC, workers=2, sessions=tmp_path_factory.mktemp("sessions")) as server:
            yield server.address


def fetch(address, path, method="GET", body=None, headers=None):
    connection = http.client.HTTPConnection(*address, timeout=30)
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response, data


def test_stateless_response_has_length_cors_and_parses(address):
    response, body = fetch(address, "/jpip?target=p0_04.j2k&fsiz=160,120&type=jpp-stream")
    assert response.status == 200
    assert response.getheader("Content-Type") == "image/jpp-stream"
    assert int(response.getheader("Content-Length")) == len(body)
    assert response.getheader("Access-Control-Allow-Origin") == "*"
    assert "JPIP-tid" in response.getheader("Access-Control-Expose-Headers")
    assert response.getheader("Server") in ("pyjpip", "gunicorn")  # no versions told
    receiver = Receiver()
    assert receiver.feed_body(body).reason == 2


def test_session_is_chunked_and_follows_the_channel_path(address, root):
    response, body = fetch(address, "/jpip?target=p0_04.j2k&fsiz=640,480&cnew=http&len=2000")
    assert response.getheader("Transfer-Encoding") == "chunked"
    fields = dict(item.split("=", 1) for item in response.getheader("JPIP-cnew").split(","))
    assert fields["transport"] == "http" and fields["path"] == "jpip"
    receiver = Receiver()
    reason = receiver.feed_body(body).reason
    while reason == 4:
        response, body = fetch(address, f"/{fields['path']}?cid={fields['cid']}&fsiz=640,480&len=50000")
        reason = receiver.feed_body(body).reason
    assert reason == 1 and receiver.duplicates == 0
    rebuilt = rebuild_codestream(*receiver.codestream_bins())
    assert opj_decode_all(rebuilt.codestream) == opj_decode_all((root / "p0_04.j2k").read_bytes())
    response, _ = fetch(address, f"/jpip?cid={fields['cid']}&cclose={fields['cid']}")
    assert response.status == 200


def without_date(response):
    return sorted((k.lower(), v) for k, v in response.getheaders() if k.lower() != "date")


def test_a_cached_answer_is_sent_with_the_same_headers_every_time(address):
    first, body = fetch(address, "/jpip?target=p0_01.j2k&fsiz=32,32&type=jpp-stream")
    for _ in range(3):  # later ones come from the response cache
        again, same = fetch(address, "/jpip?target=p0_01.j2k&fsiz=32,32&type=jpp-stream")
        assert same == body and without_date(again) == without_date(first)


def test_post_path_targets_and_preflight(address):
    response, body = fetch(address, "/jpip", "POST", b"target=p0_01.j2k&fsiz=64,64",
                           {"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status == 200 and body.endswith(b"\x00\x02\x00")
    response, body = fetch(address, "/jpip/sub/inner.j2c?fsiz=64,64")
    assert response.status == 200 and body.endswith(b"\x00\x02\x00")
    response, body = fetch(address, "/jpip/sub/inner.j2c", "POST", b"fsiz=64,64",  # a path target on POST too
                           {"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status == 200 and body.endswith(b"\x00\x02\x00")
    response, _ = fetch(address, "/jpip", "OPTIONS", headers={"Origin": "http://elsewhere.example",
                                                                "Access-Control-Request-Method": "POST"})
    assert response.status == 204 and "POST" in response.getheader("Access-Control-Allow-Methods")


def test_the_static_site_is_served_by_the_same_server(address):
    response, body = fetch(address, "/")
    assert response.status == 200 and b"<title>pyjpip viewer</title>" in body
    assert response.getheader("Content-Type") == "text/html; charset=utf-8"
    assert response.getheader("Cache-Control") == "no-cache"
    assert response.getheader("Access-Control-Allow-Origin") is None
    response, body = fetch(address, "/index.html", headers={"If-Modified-Since": response.getheader("Last-Modified")})
    assert response.status == 304 and body == b""
    response, body = fetch(address, "/openjpeg/")
    assert response.status == 404  # no listings
    response, body = fetch(address, "/index.html", "HEAD")
    assert response.status == 200 and body == b"" and int(response.getheader("Content-Length")) > 1000
    wasm = next(p for p in (STATIC / "openjpeg").iterdir() if p.suffix == ".wasm")
    response, body = fetch(address, f"/openjpeg/{wasm.name}")
    assert response.getheader("Content-Type") == "application/wasm" and body == wasm.read_bytes()


def test_dicomweb_is_same_origin_unless_configured(address):
    response, _ = fetch(address, "/dicomweb/studies", headers={"Origin": "http://elsewhere.example"})
    assert response.getheader("Access-Control-Allow-Origin") is None
    response, _ = fetch(address, "/dicomweb/studies", "OPTIONS", headers={"Origin": "http://elsewhere.example"})
    assert response.status == 204 and response.getheader("Access-Control-Allow-Methods") is None


def test_cors_origins_are_configurable(root):
    with dev_server(root, cors=CORSPolicy(jpip=("https://portal.example",), dicomweb=("https://portal.example",))) \
            as address:
        response, _ = fetch(address, "/jpip?target=p0_01.j2k&fsiz=8,8", headers={"Origin": "https://portal.example"})
        assert response.getheader("Access-Control-Allow-Origin") == "https://portal.example"
        assert "Origin" in response.getheader("Vary")
        response, _ = fetch(address, "/jpip?target=p0_01.j2k&fsiz=8,8", headers={"Origin": "https://evil.example"})
        assert response.getheader("Access-Control-Allow-Origin") is None
        response, _ = fetch(address, "/dicomweb/studies", headers={"Origin": "https://portal.example"})
        assert response.getheader("Access-Control-Allow-Origin") == "https://portal.example"


HOSTILE = [
    ("/jpip?target=../p0_01.j2k", 404, b"not a file name under the server's root"),
    ("/jpip?target=%2e%2e%2fp0_01.j2k", 404, b"not a file name under the server's root"),
    ("/jpip?target=sub/../p0_01.j2k", 404, b"not a file name"),
    ("/jpip?target=/etc/passwd", 404, b"not a JPEG 2000 file"),
    ("/jpip?target=//etc/x.j2k", 404, b"not a file name"),
    ("/jpip?target=escape.j2k&fsiz=8,8", 404, b"leads outside the server's root"),
    ("/jpip?target=sub%5c..%5cp0_01.j2k", 404, b"not a file name"),
    ("/jpip?target=p0_01.j2k%00.txt", 404, b"not a"),
    ("/jpip?target=p0_01.j2k%00", 404, b"not a file name"),
    ("/jpip?target=%252e%252e%252fp0_01.j2k", 404, b"does not exist"),  # decoded once, never twice
    ("/jpip?target=%c0%ae%c0%ae%c0%afp0_01.j2k", 400, b"not valid text"),  # overlong UTF-8 for ../
    ("/jpip?target=%e0%80%ae%e0%80%ae/p0_01.j2k", 400, b"not valid text"),
    ("/jpip/%c0%ae%c0%ae%c0%afp0_01.j2k?fsiz=8,8", 404, b"not a file name"),  # a path target: U+FFFD
    ("/jpip?target=.%2e/p0_01.j2k", 404, b"not a file name"),
    ("/jpip?target=sub/%2e%2e/%2e%2e/p0_01.j2k", 404, b"not a file name"),
    ("/jpip?target=SUB/INNER.J2C", 404, b"does not exist"),  # names are case-sensitive, no folding to find one
    ("/jpip?target=p0_01.j2k%e2%80%ae", 404, b"not a"),  # a right-to-left override
    ("/jpip?target=.hidden.j2k", 404, b"not a file name"),
    ("/jpip/..%2fp0_01.j2k?fsiz=8,8", 404, b"not a file name"),
    ("/jpip/%2e%2e/outside.j2k?fsiz=8,8", 404, b"not a file name"),
    ("/jpip/escape.j2k?fsiz=8,8", 404, b"leads outside the server's root"),
    ("/..%2f..%2fetc/passwd", 404, b"no such file"),
    ("/%2e%2e/%2e%2e/etc/passwd", 404, b"no such file"),
    ("/index.html%00", 404, b"no such file"),
    ("/.git/config", 404, b"no such file"),
    ("/jpip?target=missing.j2k", 404, b"does not exist"),
    ("/jpip?target=notes.txt", 404, b"not a JPEG 2000 file"),
    ("/jpip?target=broken.j2k&fsiz=8,8", 404, b"not a readable JPEG 2000 file"),
    ("/jpip?fsiz=8,8", 400, b"no target"),
    ("/jpip?target=p0_01.j2k&fsiz=99999999999,1", 400, b"fsiz"),
    ("/jpip?target=p0_01.j2k&fsiz=8,8&fsiz=9,9", 400, b"more than once"),
    ("/jpip?target=p0_01.j2k&" + "&".join(f"f{i}=1" for i in range(10000)), (400, 414), b""),
    ("/jpip?cid=nosuchchannel&fsiz=8,8", 503, b"does not exist or has been closed"),
    ("/jpip?target=p0_01.j2k&model=P%5B%5B%5B", 400, b"model"),
    ("/jpip?target=p0_01.j2k&upload=x", 501, b"not supported"),
    ("/jpip?target=p0_01.j2k&type=raw", 415, b"image/jpp-stream only"),
    ("/jpip?target=p0_01.j2k&stream=3", 400, b"names no codestream"),
    ("/jpip?target=p0_01.j2k&len=-1", 400, b"len"),
    ("/jpip?target=p0_01.j2k&model=" + "P0," * 2660, 414, b"send long JPIP requests by POST"),
]


@pytest.mark.parametrize("path, status, words", HOSTILE, ids=[h[0][:50] for h in HOSTILE])
def test_hostile_requests_get_clear_errors(address, path, status, words):
    response, body = fetch(address, path)
    assert response.status in (status if isinstance(status, tuple) else (status,)), body[:300]
    assert words in body, body[:300]


def test_absurd_but_valid_windows_are_served(address):
    response, body = fetch(address, "/jpip?target=p0_01.j2k&fsiz=4294967295,4294967295,round-up&rsiz=1,1")
    assert response.status == 200 and response.getheader("JPIP-fsiz") == "128,128"
    response, body = fetch(address, "/jpip?target=alias.j2k&fsiz=8,8")  # a link that stays inside is fine
    assert response.status == 200


def test_a_huge_post_and_a_huge_url_are_refused_and_the_server_lives_on(address):
    with socket.create_connection(address, timeout=10) as raw:
        raw.sendall(b"POST /jpip HTTP/1.1\r\nHost: x\r\nContent-Length: 2097152\r\n\r\n" + b"x" * 1000)
        assert b" 413 " in raw.recv(200)
    with socket.create_connection(address, timeout=10) as raw:  # no length: chunked
        raw.sendall(b"POST /jpip HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfsiz=\r\n0\r\n\r\n")
        answer = b""
        while chunk := raw.recv(4096):  # the connection closes after it (the body was not read)
            answer += chunk
        assert b" 411 " in answer and b"needs a Content-Length" in answer
    with socket.create_connection(address, timeout=10) as raw:
        raw.sendall(b"POST /jpip HTTP/1.1\r\nHost: x\r\nContent-Length: 12abc\r\n\r\n")
        assert b" 400 " in raw.recv(200)
    with socket.create_connection(address, timeout=10) as raw:
        raw.sendall(b"POST /jpip HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200))
                    + b"Content-Length: 0\r\n\r\n")
        assert b" 431 " in raw.recv(200)
    with socket.create_connection(address, timeout=10) as raw:
        raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n")
        assert raw.recv(200).split(b" ")[1] in (b"400", b"431")
    with socket.create_connection(address, timeout=10) as raw:
        raw.sendall(b"GET /jpip?target=" + b"a" * 100000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b" 414 " in raw.recv(200)
    response, _ = fetch(address, "/jpip?target=p0_01.j2k&fsiz=8,8")
    assert response.status == 200


def test_the_app_configured_by_environment_under_gunicorn_by_hand(root, tmp_path):
    """The README's by-hand command: gunicorn with pyjpip's worker class and the PYJPIP_* settings."""
    port = free_port()
    gunicorn = os.path.join(os.path.dirname(sys.executable), "gunicorn")
    process = subprocess.Popen([gunicorn, "-w", "2", "-b", f"127.0.0.1:{port}", "-k", "pyjpip.transport.asgi.Worker",
                                "pyjpip.transport.asgi:application"],
                               env={**os.environ, "PYJPIP_ROOT": str(root), "PYJPIP_CORS_JPIP": "https://portal.example"},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process)
        receiver, rounds = Receiver(), 0
        reason = 4
        while reason == 4:  # stateless: each request carries what the client holds
            query = "target=p0_04.j2k&fsiz=640,480&len=4000"
            if receiver.bins:
                query += "&model=" + urllib.parse.quote(receiver.model())
            response, body = fetch(("127.0.0.1", port), f"/jpip?{query}", headers={"Origin": "https://portal.example"})
            assert response.status == 200, body[:200]
            assert response.getheader("Access-Control-Allow-Origin") == "https://portal.example"
            reason = receiver.feed_body(body).reason
            rounds += 1
        assert rounds > 10 and receiver.duplicates == 0
        rebuilt = rebuild_codestream(*receiver.codestream_bins())
        assert opj_decode_all(rebuilt.codestream) == opj_decode_all((root / "p0_04.j2k").read_bytes())
    finally:
        process.terminate()
        process.wait(timeout=20)


class _Dev:
    def __init__(self, address):
        self.address, self.port = address, address[1]


@contextmanager
def _timed_server(kind, root):
    """--head-seconds 1 --idle-seconds 3 on either server."""
    if kind == "production":
        with production(root, workers=1, extra=["--head-seconds", "1", "--idle-seconds", "3"]) as server:
            yield server
    else:
        with dev_server(root, head_seconds=1, idle_seconds=3) as address:
            yield _Dev(address)


@pytest.mark.parametrize("kind", ["dev", "production"])
def test_silent_and_trickling_connections_are_closed_but_idle_ones_kept(root, kind):
    """A request head must come whole within --head-seconds; a kept-alive connection between
    requests waits for --idle-seconds; a client that stops reading is dropped after --idle-seconds
    (the dev server kept a silent connection for --idle-seconds before it ran on this stack)."""
    import numpy as np
    from reference import opj_encode

    noise = np.random.default_rng(3).integers(0, 1 << 16, (2048, 2048), dtype=np.uint16)
    (root / "noise.j2k").write_bytes(opj_encode([noise], 16, ["-n", "3"]))  # 8 MB: more than the kernel queues
    with _timed_server(kind, root) as server:
        silent = socket.create_connection(server.address, timeout=10)
        trickling = socket.create_connection(server.address, timeout=10)
        kept = http.client.HTTPConnection(*server.address, timeout=10)
        kept.request("GET", "/jpip?target=p0_01.j2k&fsiz=8,8")
        assert kept.getresponse().read().endswith(b"\x00\x02\x00")
        answered = time.monotonic()
        for byte in b"GET /jpip?target=p0_01.j2k HTTP/1.1\r\n":  # a byte every 0.1 s: cut after 1 s
            try:
                trickling.send(bytes([byte]))
            except OSError:
                break
            time.sleep(0.1)
        assert silent.recv(100) == b"" and trickling.recv(100) == b""  # closed, nothing answered
        time.sleep(max(0.0, answered + 3.7 - time.monotonic()))
        kept.request("GET", "/jpip?target=p0_01.j2k&fsiz=8,8")  # 3.7 s idle on a 3 s keep-alive: closed
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            kept.getresponse()
        kept = http.client.HTTPConnection(*server.address, timeout=10)
        kept.request("GET", "/jpip?target=p0_01.j2k&fsiz=8,8")
        assert kept.getresponse().read().endswith(b"\x00\x02\x00")
        time.sleep(2)  # past --head-seconds, within --idle-seconds: still open
        kept.request("GET", "/jpip?target=p0_01.j2k&fsiz=8,8")
        assert kept.getresponse().read().endswith(b"\x00\x02\x00")
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(server.address)
        stalled.sendall(b"GET /jpip?target=noise.j2k&fsiz=2048,2048 HTTP/1.1\r\nHost: x\r\n\r\n")
        stalled.recv(100)
        ends = (server.port, stalled.getsockname()[1])
        assert server_end(*ends)[0] == "01"  # established, the server blocked on a full window
        time.sleep(4.5)  # the client takes nothing more: after 3 s the server lets go of the connection
        assert server_end(*ends) is None or server_end(*ends)[0] != "01"  # its end closed, not waiting
        stalled.close()


def answers(raw: socket.socket, seconds: float = 1.5) -> bytes:
    """Everything the server sends on ``raw`` until it closes or is quiet for ``seconds``."""
    raw.settimeout(seconds)
    data = b""
    try:
        while chunk := raw.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data


def test_a_get_body_is_never_read_as_a_second_request(address):
    """Request smuggling (RFC 9112 6.3): a GET's Content-Length frames its body, which the server
    drops; the dev server on http.server parsed the body as the next request and answered it."""
    smuggled = b"GET /jpip?target=p0_04.j2k&fsiz=8,8 HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(address, timeout=10) as raw:
        raw.sendall(b"GET /jpip?target=p0_01.j2k&fsiz=8,8 HTTP/1.1\r\nHost: x\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(smuggled), smuggled))
        data = answers(raw)
    assert data.count(b"HTTP/1.1 ") == 1 and data.startswith(b"HTTP/1.1 200 "), data[:400]
    assert b"JPIP-tid" in data or b"jpip-tid" in data


def test_bare_lf_line_endings_are_refused(address):
    """RFC 9112 2.2 lets a server take a bare LF; taking it is how front and back ends come to
    disagree about where a request ends, so this server answers 400."""
    with socket.create_connection(address, timeout=10) as raw:
        raw.sendall(b"GET /jpip?target=p0_01.j2k&fsiz=8,8 HTTP/1.1\nHost: x\n\n")
        data = answers(raw)
    assert data.startswith(b"HTTP/1.1 400 "), data[:300]
    assert b"bare LF" in data
    with socket.create_connection(address, timeout=10) as raw:  # one bare LF among CRLFs too
        raw.sendall(b"GET /jpip?target=p0_01.j2k&fsiz=8,8 HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n")
        assert answers(raw).startswith(b"HTTP/1.1 400 ")


def test_a_20_kB_request_line_is_answered_414(address):
    """The dev server answered a 20 kB path with 500 (the static site's open() raised 'File name too
    long'); a request line over 8190 bytes is 414 on both servers, and a shorter path that no file
    system takes is just not found."""
    for target in (b"/" + b"a" * 20000, b"/jpip?target=p0_01.j2k&model=" + b"P0," * 6700):
        with socket.create_connection(address, timeout=10) as raw:
            raw.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            data = answers(raw)
        assert data.startswith(b"HTTP/1.1 414 "), data[:300]
        assert b"POST" in data
    for path in ("/" + "a" * 5000, "/" + "a/" * 3000, "/jpip/" + "b" * 5000 + "?fsiz=8,8"):
        response, body = fetch(address, path)
        assert response.status == 404, body[:300]


def silent_sockets(address, count: int, source: str) -> list[socket.socket]:
    opened = []
    for _ in range(count):
        raw = socket.socket()
        raw.bind((source, 0))
        raw.settimeout(10)
        raw.connect(address)
        opened.append(raw)
    return opened


def test_one_address_silent_sockets_do_not_shut_out_another(address):
    """1,024 silent connections from 127.0.0.2 (every slot of --max-connections 1024): past the
    per-address cap they are closed at once, and 127.0.0.1 is answered at once."""
    opened = silent_sockets(address, 1024, "127.0.0.2")
    try:
        started = time.monotonic()
        connection = http.client.HTTPConnection(*address, timeout=10, source_address=("127.0.0.1", 0))
        connection.request("GET", "/jpip?target=p0_01.j2k&fsiz=8,8")
        response = connection.getresponse()
        assert response.status == 200, response.read()[:300]
        assert response.read().endswith(b"\x00\x02\x00")
        assert time.monotonic() - started < 2.0
        connection.close()
        refused, waiting, deadline = 0, list(opened), time.monotonic() + 10
        while waiting and refused < 1024 - 64 * 2 and time.monotonic() < deadline:
            for raw in list(waiting):  # those over the cap are told why and closed, as they are accepted
                raw.setblocking(False)
                try:
                    data = raw.recv(300)
                except BlockingIOError:
                    continue
                waiting.remove(raw)
                refused += 1
                assert data.startswith(b"HTTP/1.1 503 ") and b"connections from 127.0.0.2" in data, data
            time.sleep(0.05)
        assert refused >= 1024 - 64 * 2  # 64 per worker at most are held (two workers in production)
    finally:
        for raw in opened:
            raw.close()


def test_one_address_cannot_take_every_jpip_session(address):
    """Sessions are shared out per client: the peer address here (no authentication)."""
    def cnew(source):
        connection = http.client.HTTPConnection(*address, timeout=10, source_address=(source, 0))
        connection.request("GET", "/jpip?target=p0_01.j2k&fsiz=8,8&cnew=http")
        response = connection.getresponse()
        body = response.read()
        connection.close()
        return response, body

    opened = []
    try:
        for _ in range(256):
            response, body = cnew("127.0.0.2")
            if response.status != 200:
                break
            opened.append(("127.0.0.2", response.getheader("JPIP-cnew").split(",")[0].split("=")[1]))
        assert response.status == 503 and b"127.0.0.2 holds" in body, body[:300]
        assert 0 < len(opened) <= 32 and int(response.getheader("Retry-After")) > 0
        response, body = cnew("127.0.0.1")
        assert response.status == 200 and response.getheader("JPIP-cnew"), body[:300]
        opened.append(("127.0.0.1", response.getheader("JPIP-cnew").split(",")[0].split("=")[1]))
    finally:
        for source, cid in opened:
            fetch(address, f"/jpip?cid={cid}&cclose={cid}")


def test_secure_headers_on_every_answer(address):
    """nosniff and no-referrer on every answer (JPIP, DICOMweb, the site, errors); patient data
    (JPIP and DICOMweb answers) no-store; the site's files revalidated (no-cache). No CSP or frame
    headers here: the viewer's pages set those."""
    for path, cache in (("/jpip?target=p0_01.j2k&fsiz=8,8", "no-store"), ("/dicomweb/studies", "no-store"),
                        ("/jpip?target=missing.j2k", "no-store"), ("/", "no-cache"), ("/no-such-file", "no-cache")):
        response, _ = fetch(address, path)
        assert response.getheader("X-Content-Type-Options") == "nosniff", path
        assert response.getheader("Referrer-Policy") == "no-referrer", path
        assert response.getheader("Cache-Control") == cache, path
        assert len(response.msg.get_all("Cache-Control")) == 1, path
    with socket.create_connection(address, timeout=10) as raw:  # refused by the HTTP layer itself
        raw.sendall(b"GET / HTTP/1.1\nHost: x\n\n")
        assert b"\r\nX-Content-Type-Options: nosniff\r\n" in answers(raw)


def test_serve_without_the_server_extra_says_what_to_install(root):
    """The dev server is uvicorn and h11 now: without them, `pyjpip serve` names the extra."""
    blocked = ("import sys; sys.modules['uvicorn'] = None; from pyjpip.cli import main; "
               f"sys.exit(main(['serve', {str(root)!r}, '--port', '0']))")
    result = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "install it with: pip install 'pyjpip[server]'" in result.stderr, result.stderr


def test_the_client_address_behind_a_trusted_proxy():
    """Site.handle gets the TCP peer as peer (a header-based authentication pins the proxy by it)
    and, as client, the address a trusted proxy's X-Forwarded-For names: the rightmost hop that is
    not itself a trusted proxy (what stands left of it may be the client's own invention)."""
    from pyjpip.transport.asgi import forwarded_client, trusted_networks

    proxies = trusted_networks(["127.0.0.1", "10.0.0.0/24"])
    assert forwarded_client("192.0.2.7", "198.51.100.1", proxies) == "192.0.2.7"  # not a proxy: header ignored
    assert forwarded_client("127.0.0.1", None, proxies) == "127.0.0.1"
    assert forwarded_client("127.0.0.1", "198.51.100.1", proxies) == "198.51.100.1"
    assert forwarded_client("127.0.0.1", "203.0.113.9, 198.51.100.1", proxies) == "198.51.100.1"
    assert forwarded_client("10.0.0.5", "203.0.113.9, 198.51.100.1, 10.0.0.7", proxies) == "198.51.100.1"
    assert forwarded_client("127.0.0.1", "x, 198.51.100.1", proxies) == "198.51.100.1"
    assert forwarded_client("127.0.0.1", "198.51.100.1, not-an-address", proxies) == "127.0.0.1"
    assert forwarded_client("127.0.0.1", "10.0.0.9, 10.0.0.8", proxies) == "10.0.0.9"
    assert forwarded_client("::1", "198.51.100.1", trusted_networks(["*"])) == "198.51.100.1"
    with pytest.raises(ValueError, match="not an IP address or network"):
        trusted_networks(["nginx.example"])
