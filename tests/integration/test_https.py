"""HTTPS on pyjpip's own servers (`pyjpip serve --certfile/--keyfile`, the dev server and the
production workers): a CA and a server certificate made by the openssl command, fetched with the
standard library's client trusting that CA; Strict-Transport-Security on every answer; TLS 1.1
refused (RFC 9325), shown against a control server that takes it from the same client."""

import http.client
import ssl
import subprocess
import sys

import pytest

from jpip_support import Receiver
from paths import ROOT, STATIC
from serving import dev_server, production
from tls_support import make_pki, permissive_server, tls11_handshake

pytestmark = pytest.mark.cpython_only


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def root(tmp_path_factory, conformance_files):
    folder = tmp_path_factory.mktemp("root")
    source = next(p for p in conformance_files if p.name == "p0_01.j2k")
    (folder / "p0_01.j2k").write_bytes(source.read_bytes())
    return folder


def get(address, pki, path, context=None):
    connection = http.client.HTTPSConnection("localhost", address[1], timeout=30, context=context or pki.client())
    connection.request("GET", path)
    response = connection.getresponse()
    return response, response.read()


def check_https(address, pki, max_age):
    response, body = get(address, pki, "/jpip?target=p0_01.j2k&fsiz=8,8")
    assert response.status == 200 and Receiver().feed_body(body).reason == 2
    assert response.getheader("Strict-Transport-Security") == f"max-age={max_age}"
    response, body = get(address, pki, "/no-such-page")  # an error carries it too
    assert response.status == 404 and response.getheader("Strict-Transport-Security") == f"max-age={max_age}"
    response, _ = get(address, pki, "/")
    assert response.status == 200 and response.getheader("Strict-Transport-Security") == f"max-age={max_age}"
    # TLS 1.1: the same client completes a handshake with a server that allows it, not with pyjpip.
    assert tls11_handshake(permissive_server(pki)) == "TLSv1.1"
    with pytest.raises(ssl.SSLError):
        tls11_handshake(address)
    # Not trusted without the CA: the certificate is the one made for this test.
    with pytest.raises(ssl.SSLCertVerificationError):
        get(address, pki, "/", ssl.create_default_context())
    # Plain HTTP on the TLS port gets no answer.
    plain = http.client.HTTPConnection(*address, timeout=10)
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        plain.request("GET", "/jpip?target=p0_01.j2k&fsiz=8,8")
        plain.getresponse().read()


def test_dev_server_over_tls(root, pki):
    with dev_server(root, STATIC, certfile=str(pki.certificate), keyfile=str(pki.key)) as address:
        check_https(address, pki, 31536000)
        response, _ = get(address, pki, "/jpip?target=p0_01.j2k&fsiz=8,8")
        assert response.version == 11


def test_hsts_seconds_zero_sends_none_and_plain_http_sends_none(root, pki):
    with dev_server(root, certfile=str(pki.certificate), keyfile=str(pki.key), hsts_seconds=0) as address:
        response, _ = get(address, pki, "/jpip?target=p0_01.j2k&fsiz=8,8")
        assert response.status == 200 and response.getheader("Strict-Transport-Security") is None
    with dev_server(root) as address:  # RFC 6797 7.2: never over plain HTTP
        connection = http.client.HTTPConnection(*address, timeout=10)
        connection.request("GET", "/jpip?target=p0_01.j2k&fsiz=8,8")
        response = connection.getresponse()
        assert response.status == 200 and response.getheader("Strict-Transport-Security") is None


def test_production_over_tls(root, pki):
    with production(root, STATIC, workers=1, extra=["--certfile", str(pki.certificate), "--keyfile", str(pki.key),
                                                    "--hsts-seconds", "600"]) as server:
        check_https(server.address, pki, 600)


def test_a_wrong_key_stops_serve_with_a_clear_message(root, pki, tmp_path):
    other = make_pki(tmp_path / "other")
    for extra in (["--workers", "1"], []):
        result = subprocess.run([sys.executable, "-m", "pyjpip", "serve", str(root), "--port", "0",
                                 "--certfile", str(pki.certificate), "--keyfile", str(other.key), *extra],
                                capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert result.returncode == 1 and "cannot be used" in \
            result.stderr, result.stderr[-2000:]


def test_store_scp_http_port_is_the_same_strict_server_over_tls(pki, tmp_path):
    """store-scp --http-port runs the dev server: the same parser and limits (a GET's body is not a
    request, bare LF is 400), and HTTPS with --http-certfile/--http-keyfile."""
    import socket
    import time

    from network_support import store_scp

    with store_scp(tmp_path / "store", "--http-certfile", str(pki.certificate), "--http-keyfile", str(pki.key),
                   http=True) as scp:
        address = ("127.0.0.1", scp.http_port)
        response, body = get(address, pki, "/dicomweb/studies")
        assert response.status == 200 and body == b"[]"
        assert response.getheader("Strict-Transport-Security") == "max-age=31536000"
        assert response.getheader("Cache-Control") == "no-store"

        def exchange(data: bytes) -> bytes:
            with pki.client().wrap_socket(socket.create_connection(address, timeout=10),
                                          server_hostname="localhost") as raw:
                raw.sendall(data)
                raw.settimeout(1.5)
                received = b""
                try:
                    while chunk := raw.recv(65536):
                        received += chunk
                except (TimeoutError, ssl.SSLError, ConnectionError):
                    pass
                return received

        smuggled = b"GET /dicomweb/studies HTTP/1.1\r\nHost: x\r\n\r\n"
        answer = exchange(b"GET /dicomweb/studies HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                          % (len(smuggled), smuggled))
        assert answer.count(b"HTTP/1.1 ") == 1 and answer.startswith(b"HTTP/1.1 200 "), answer[:300]
        assert exchange(b"GET /dicomweb/studies HTTP/1.1\nHost: x\n\n").startswith(b"HTTP/1.1 400 ")


def test_silent_sockets_do_not_shut_out_https_clients(root, pki):
    """1,024 connections from 127.0.0.2 that never start a TLS handshake: 127.0.0.1 is answered at once.
    (They are closed by the event loop's handshake timeout, not counted per address: only a
    connection that finished its handshake reaches the HTTP layer.)"""
    import socket
    import time

    with dev_server(root, certfile=str(pki.certificate), keyfile=str(pki.key)) as address:
        opened = []
        try:
            for _ in range(1024):
                raw = socket.socket()
                raw.bind(("127.0.0.2", 0))
                raw.connect(address)
                opened.append(raw)
            started = time.monotonic()
            connection = http.client.HTTPSConnection("localhost", address[1], timeout=10, context=pki.client(),
                                                     source_address=("127.0.0.1", 0))
            connection.request("GET", "/jpip?target=p0_01.j2k&fsiz=8,8")
            response = connection.getresponse()
            assert response.status == 200 and response.read().endswith(b"\x00\x02\x00")
            assert time.monotonic() - started < 2.0
        finally:
            for raw in opened:
                raw.close()
