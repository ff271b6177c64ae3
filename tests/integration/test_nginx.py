"""The deployment of deploy/nginx/pyjpip.conf, on loopback: Debian's nginx in front of two "hosts"
(each the production command with two workers, nginx their --trusted-proxy) that share the image
folder and a PostgreSQL archive, over HTTPS with a certificate made for the test (openssl). The
configuration file is used as shipped; only its addresses, certificate paths and log path are
replaced."""

import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from network_support import free_port, hollow_copies, new_database, pyjpip_command, store_scp, wait_for_port, \
    without_pixels
from paths import ROOT, STATIC
from pyjpip.dicom.hollow import JPIP_REFERENCED, read_hollow
from pyjpip.jpip.client import JPIPClient, ViewWindow, fetch_window
from pyjpip.jpip.picture import rebuild_served
from pyjpip.transport.http_client import HTTPTransport
from reference import opj_decode_all
from serving import production
from tls_support import make_pki, tls11_handshake

pytestmark = pytest.mark.cpython_only

NGINX = "/usr/sbin/nginx"
CONFIGURATION = ROOT / "deploy" / "nginx" / "pyjpip.conf"
HOSTS = ("10.0.0.11:8000", "10.0.0.12:8000")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(autouse=True)
def trust_the_test_ca(pki, monkeypatch):
    """pyjpip's own HTTPS client (HTTPTransport) verifies against the default store: the test CA's."""
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca))


@contextmanager
def nginx(folder: Path, port: int, upstreams: list[int], pki, http_port: int | None = None):
    """nginx in the foreground with the shipped configuration, its hosts replaced by loopback ports:
    HTTPS on ``port``, the redirecting plain HTTP on ``http_port``."""
    folder.mkdir(parents=True, exist_ok=True)
    text = CONFIGURATION.read_text()
    for shipped, local in zip(HOSTS, upstreams):
        text = text.replace(shipped, f"127.0.0.1:{local}")
    text = text.replace("listen 80;", f"listen 127.0.0.1:{http_port or free_port()};")
    text = text.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{port} ssl http2;")
    text = text.replace("/etc/ssl/certs/pyjpip.pem", str(pki.certificate))
    text = text.replace("/etc/ssl/private/pyjpip.key", str(pki.key))
    text = text.replace("/var/log/nginx/pyjpip.log", str(folder / "access.log"))
    directives = "\n".join(line.split("#")[0] for line in text.splitlines())
    assert "10.0.0." not in directives and "/etc/ssl" not in directives
    (folder / "pyjpip.conf").write_text(text)
    temporary = {name: folder / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    for path in temporary.values():
        path.mkdir(exist_ok=True)
        path.chmod(0o777)
    (folder / "nginx.conf").write_text(f"""
{"user root;" if os.geteuid() == 0 else ""}
worker_processes 1;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    client_body_temp_path {temporary['body']};
    proxy_temp_path {temporary['proxy']};
    fastcgi_temp_path {temporary['fastcgi']};
    uwsgi_temp_path {temporary['uwsgi']};
    scgi_temp_path {temporary['scgi']};
    include {folder}/pyjpip.conf;
}}
""")
    check = subprocess.run([NGINX, "-t", "-p", str(folder), "-c", str(folder / "nginx.conf")],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    process = subprocess.Popen([NGINX, "-p", str(folder), "-c", str(folder / "nginx.conf")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process)
        yield folder / "access.log"
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="module")
def site(tmp_path_factory, demo_data, postgres):
    """Images on a "shared" folder, hollow objects pushed into a PostgreSQL archive by the real Storage
    SCP, their Pixel Data Provider URLs pointing at nginx."""
    top = tmp_path_factory.mktemp("deployment")
    images = top / "images"
    images.mkdir()
    shutil.copy(demo_data / "ct_phantom_2048.j2k", images / "ct.j2k")
    port = free_port()
    database = new_database(postgres)
    outbox = hollow_copies(without_pixels(demo_data / "ct_phantom_2048.dcm"), top / "outbox", 3, JPIP_REFERENCED,
                           f"https://127.0.0.1:{port}/jpip?target=ct.j2k", seed="nginx")
    with store_scp(top / "received", "--db", database) as scp:
        sent = subprocess.run(pyjpip_command("store-scu", "127.0.0.1", scp.port, *outbox, "--called-ae", "PYJPIP"),
                              capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    return top, images, port, database, [read_hollow(p.read_bytes()) for p in outbox]


def get(port: int, path: str, headers=None, source: str | None = None):
    connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=30, source_address=(source, 0) if source else None)
    connection.request("GET", path, headers=headers or {})
    response = connection.getresponse()
    return response, response.read()


def upstreams_of(log: Path, pattern: str) -> list[str]:
    time.sleep(0.2)  # nginx writes its log line after the response
    return [line.rsplit("upstream=", 1)[1].split()[0] for line in log.read_text().splitlines() if pattern in line]


def hosts(site, sessions_of, channel_path_of, extra=()):
    top, images, _, database, _ = site
    stack = ExitStack()
    running = [stack.enter_context(production(images, STATIC, workers=2, sessions=sessions_of(n),
                                              extra=["--db", database, "--channel-path", channel_path_of(n),
                                                     "--trusted-proxy", "127.0.0.1",
                                                     # nginx relays other hosts' requests: without a choice
                                                     # they would be refused (only this host is answered)
                                                     "--no-auth", *extra]))
               for n in (1, 2)]
    return stack, running


def test_round_robin_over_two_hosts_sharing_sessions_dicomweb_from_postgresql(site, tmp_path, demo_data, pki):
    top, images, port, database, pushed = site
    shared = tmp_path / "shared-sessions"
    stack, running = hosts(site, lambda n: shared, lambda n: "jpip")
    with stack, nginx(tmp_path / "nginx", port, [h.port for h in running], pki) as log:
        # DICOMweb from the archive, through nginx, same-origin only.
        response, body = get(port, "/dicomweb/studies", {"Origin": "https://elsewhere.example"})
        assert response.status == 200 and response.getheader("Access-Control-Allow-Origin") is None
        (study,) = json.loads(body)
        study_uid = study["0020000D"]["Value"][0]
        assert study_uid == str(pushed[0].dataset.StudyInstanceUID)
        series_uid = str(pushed[0].dataset.SeriesInstanceUID)
        instances = json.loads(get(port, f"/dicomweb/studies/{study_uid}/series/{series_uid}/instances")[1])
        assert len(instances) == 3
        sop = instances[0]["00080018"]["Value"][0]
        response, part10 = get(port, f"/dicomweb/studies/{study_uid}/series/{series_uid}/instances/{sop}")
        hollow = read_hollow(part10)
        assert response.status == 200 and hollow.url == f"https://127.0.0.1:{port}/jpip?target=ct.j2k"
        # The site itself.
        response, body = get(port, "/")
        assert response.status == 200 and b"<title>pyjpip viewer</title>" in body
        # A session whose requests nginx spreads over both hosts: one session, nothing twice, exact.
        client = JPIPClient(hollow.url, length_limit=120_000)
        transport = HTTPTransport(timeout=30)
        for window in (ViewWindow(fsiz=(512, 512)), ViewWindow(fsiz=(2048, 2048), roff=(600, 600), rsiz=(800, 600)),
                       ViewWindow(fsiz=(2048, 2048))):
            fetch_window(client, window, transport)
        assert client.bytes_received == client.bytes_new
        view = rebuild_served(client, ViewWindow(fsiz=(2048, 2048)))
        assert opj_decode_all(view.codestream) == opj_decode_all((images / "ct.j2k").read_bytes())
        channel = upstreams_of(log, f"cid={client.cid}")
        assert len(channel) > 10 and len(set(channel)) == 2, channel  # both hosts answered the channel
        assert len(upstreams_of(log, "cnew=http")) == 1


def test_each_host_names_its_channel_path_and_its_sessions_come_back_to_it(site, tmp_path, pki):
    """No shared session folder: JPIP-cnew's path= leads a session's requests to the host that opened it."""
    top, images, port, database, pushed = site
    stack, running = hosts(site, lambda n: tmp_path / f"host{n}-sessions", lambda n: f"host{n}/jpip")
    with stack, nginx(tmp_path / "nginx", port, [h.port for h in running], pki) as log:
        owners = set()
        for attempt in range(4):  # round robin hands the cnew to each host in turn
            client = JPIPClient(pushed[0].url, length_limit=60_000)
            transport = HTTPTransport(timeout=30)
            fetch_window(client, ViewWindow(fsiz=(1024, 1024)), transport)
            assert client.channel_path in ("host1/jpip", "host2/jpip") and client.bytes_received == client.bytes_new
            requests = upstreams_of(log, f"cid={client.cid}")
            assert len(requests) > 3 and len(set(requests)) == 1, requests
            owner = running[int(client.channel_path[4]) - 1].port
            assert requests[0] == f"127.0.0.1:{owner}"
            owners.add(owner)
            transport.close()
        assert owners == {h.port for h in running}


def test_limits_hold_behind_nginx(site, tmp_path, pki):
    top, images, port, database, pushed = site
    stack, running = hosts(site, lambda n: tmp_path / "sessions", lambda n: "jpip")
    with stack, nginx(tmp_path / "nginx", port, [h.port for h in running], pki):
        connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=30)
        connection.request("POST", "/jpip", body=b"x" * (2 << 20), headers={"Content-Type": "text/plain"})
        assert connection.getresponse().status == 413
        response, body = get(port, "/jpip?target=ct.j2k&fsiz=8,8&model=" + "P0," * 2660)
        assert response.status == 414 and b"POST" in body
        response, body = get(port, "/jpip?target=..%2f..%2fetc%2fpasswd")
        assert response.status == 404 and b"not a file name" in body
        response, body = get(port, "/jpip?cid=" + "0" * 24 + "&fsiz=8,8")
        assert response.status == 503 and b"does not exist" in body  # passed on, not retried elsewhere


def test_https_redirect_hsts_tls_versions_and_the_client_address_behind_nginx(site, tmp_path, pki):
    """Port 80 only redirects; HTTPS answers carry HSTS once (nginx's; pyjpip behind it speaks plain
    HTTP and adds none); TLS 1.1 is refused; pyjpip sees each client's own address (the trusted
    proxy's X-Forwarded-For, which nginx sets and a client cannot forge), so one client's session
    share does not take another's."""
    top, images, port, database, pushed = site
    http_port = free_port()
    stack, running = hosts(site, lambda n: tmp_path / "sessions", lambda n: "jpip", ["--max-sessions-per-client", "2"])
    with stack, nginx(tmp_path / "nginx", port, [h.port for h in running], pki, http_port):
        plain = http.client.HTTPConnection("127.0.0.1", http_port, timeout=30)
        plain.request("GET", "/jpip?target=ct.j2k&fsiz=8,8")
        response = plain.getresponse()
        assert response.status == 301
        assert response.getheader("Location") == f"https://127.0.0.1/jpip?target=ct.j2k&fsiz=8,8"
        response, body = get(port, "/jpip?target=ct.j2k&fsiz=64,64")
        assert response.status == 200 and body.endswith(b"\x00\x02\x00")
        assert response.msg.get_all("Strict-Transport-Security") == ["max-age=31536000"]
        assert response.getheader("X-Content-Type-Options") == "nosniff"
        response, _ = get(port, "/jpip?target=..%2fx")
        assert response.status == 404 and response.getheader("Strict-Transport-Security") == "max-age=31536000"
        with pytest.raises(ssl.SSLError):
            tls11_handshake(("127.0.0.1", port))
        cids = []
        for n in range(3):  # 127.0.0.2 claims to be someone else: nginx replaces the header
            response, body = get(port, "/jpip?target=ct.j2k&fsiz=8,8&cnew=http", {"X-Forwarded-For": f"10.9.9.{n}"},
                                 source="127.0.0.2")
            if n < 2:
                assert response.status == 200, body[:300]
                cids.append(response.getheader("JPIP-cnew").split(",")[0].split("=")[1])
        assert response.status == 503 and b"127.0.0.2 holds 2 sessions" in body, body[:300]
        assert int(response.getheader("Retry-After")) > 0
        response, body = get(port, "/jpip?target=ct.j2k&fsiz=8,8&cnew=http", source="127.0.0.3")
        assert response.status == 200 and response.getheader("JPIP-cnew"), body[:300]
