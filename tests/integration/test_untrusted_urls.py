"""Pixel Data Provider URLs are untrusted (pyjpip.network.url_policy), between real processes and real
HTTP servers on loopback: a redirect to another host is refused by every fetcher (the HTTP transport
under the JPIP client, the SCU's gateway fetch, `pyjpip fetch`, push's check of its own server) and
that host never hears a thing; a Storage SCP with an allow-list refuses objects pointing elsewhere
with Refused: Not Authorized and stores nothing of them, and stores the others."""

import re
import subprocess
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pydicom
import pytest

from network_support import hollow_copies, pyjpip_command, sql_count, store_scp, without_pixels
from paths import ROOT
from pyjpip.dicom import storage
from pyjpip.dicom.hollow import JPIP_REFERENCED, JPIP_REFERENCED_DEFLATE, read_hollow
from pyjpip.errors import RedirectRefusedError, UntrustedURLError
from pyjpip.jpip.client import JPIPClient, ViewWindow, fetch_window
from pyjpip.network import push, scu
from pyjpip.network.url_policy import URLPolicy
from pyjpip.transport.http_client import HTTPTransport

pytestmark = pytest.mark.cpython_only

JPEG2000_LOSSLESS = "1.2.840.10008.1.2.4.90"


class CountingServer(ThreadingHTTPServer):
    """An HTTP server that counts the connections it accepts."""

    daemon_threads = True

    def __init__(self, address, handler):
        super().__init__(address, handler)
        self.connections = 0
        self.paths: list[str] = []

    def verify_request(self, request, client_address) -> bool:
        self.connections += 1
        return True


def handler(status: int, location: str | None = None):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.server.paths.append(self.path)
            body = b"moved" if location else b"the other host"
            self.send_response(status)
            if location:
                self.send_header("Location", location)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET

        def log_message(self, *args):
            pass

    return Handler


@contextmanager
def serving(server: CountingServer):
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(params=[301, 302, 303, 307, 308])
def redirect(request):
    """(the redirecting server, the other host it points to, a JPIP URL on the first): the other host
    is another loopback address, 127.0.0.2, as a host of the site's own network would be."""
    with serving(CountingServer(("127.0.0.2", 0), handler(200))) as other:
        elsewhere = f"http://127.0.0.2:{other.server_address[1]}/jpip?target=secret.j2k"
        with serving(CountingServer(("127.0.0.1", 0), handler(request.param, elsewhere))) as first:
            url = f"http://127.0.0.1:{first.server_address[1]}/jpip?target=ct.j2k"
            yield first, other, url, request.param, elsewhere


def image(columns: int = 64, rows: int = 64) -> pydicom.Dataset:
    ds = pydicom.Dataset()
    ds.Columns, ds.Rows = columns, rows
    return ds


def test_the_http_transport_refuses_a_redirect_and_the_jpip_client_stops(redirect):
    first, other, url, status, elsewhere = redirect
    client = JPIPClient(url)
    transport = HTTPTransport(timeout=10)
    try:
        with pytest.raises(RedirectRefusedError) as caught:
            fetch_window(client, ViewWindow(fsiz=(64, 64)), transport)
    finally:
        transport.close()
    error = caught.value
    assert error.status == status and error.location == elsewhere and error.url.startswith(url)
    assert f"the server answered {status}, a redirect to {elsewhere!r}; redirects are not followed" in str(error)
    assert first.connections == 1 and len(first.paths) == 1  # asked once: a refusal is not retried
    assert other.connections == 0


def test_the_gateway_fetch_refuses_a_redirect(redirect):
    first, other, url, status, elsewhere = redirect
    with pytest.raises(RedirectRefusedError, match=f"answered {status}"):
        scu.fetch_codestream(url, image())
    assert first.connections == 1 and other.connections == 0


def test_a_url_outside_the_policy_is_never_connected_to(redirect):
    first, other, url, _, elsewhere = redirect
    policy = URLPolicy.from_options(["pacs.example"])
    with pytest.raises(UntrustedURLError, match=r"host 127\.0\.0\.1:\d+ is not allowed \(allowed hosts: pacs"):
        scu.fetch_codestream(url, image(), policy=policy)
    transport = HTTPTransport(policy=policy)
    with pytest.raises(UntrustedURLError):
        fetch_window(JPIPClient(url), ViewWindow(fsiz=(64, 64)), transport)
    with pytest.raises(UntrustedURLError, match="is not allowed"):  # the redirect's target, asked directly
        scu.fetch_codestream(elsewhere, image(), policy=URLPolicy.from_options(["127.0.0.1"]))
    assert first.connections == 0 and other.connections == 0


def test_pyjpip_fetch_refuses_a_redirect_and_writes_nothing(redirect, tmp_path):
    first, other, url, status, elsewhere = redirect
    output = tmp_path / "out.j2k"
    run = subprocess.run(pyjpip_command("fetch", url, "-o", output), capture_output=True, text=True, cwd=ROOT,
                         timeout=60)
    assert run.returncode == 1
    assert run.stderr.strip() == (f"pyjpip fetch: {url}&cnew=http&type=jpp-stream: the server answered {status}, a "
                                  f"redirect to {elsewhere!r}; redirects are not followed (give the URL of the "
                                  "server that answers)")
    assert not output.exists() and other.connections == 0
    run = subprocess.run(pyjpip_command("fetch", url, "-o", output, "--allow-pixel-host", "pacs.example",
                                        "--allow-pixel-host", "127.0.0.2"), capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    assert run.returncode == 1 and re.search(r"pyjpip fetch: '.*': refused, host 127\.0\.0\.1:\d+ is not allowed "
                                             r"\(allowed hosts: pacs\.example, 127\.0\.0\.2\)", run.stderr)
    assert first.connections == 1 and other.connections == 0


def test_push_s_check_of_its_own_server_follows_no_redirect(redirect):
    first, other, url, status, elsewhere = redirect
    warning = push.unreachable(url)
    assert f"answers {status}" in warning and f"a redirect to {elsewhere}" in warning
    assert "receivers follow no redirects" in warning
    assert first.connections == 1 and other.connections == 0


def test_push_refuses_a_url_base_outside_its_own_policy_before_ingesting(tmp_path, demo_data):
    own = tmp_path / "own"
    run = subprocess.run(pyjpip_command("push", "127.0.0.1", 9, demo_data / "mr_small_jp2k.dcm", "--store", own,
                                        "--url-base", "http://me.example:8000", "--allow-pixel-host",
                                        "pacs.example"), capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert run.returncode == 1
    assert "pyjpip push: 'http://me.example:8000/jpip': refused, host me.example:8000 is not allowed" in run.stderr
    assert not own.exists()  # nothing ingested, nothing sent


@pytest.fixture(scope="module")
def ct_base(demo_data):
    return without_pixels(demo_data / "ct_phantom_2048.dcm")


def test_the_scu_gateway_sends_nothing_whose_pixels_it_may_not_fetch(tmp_path, ct_base):
    """An SCP taking no JPIP syntax: the SCU would fetch the pixels and send them (PS3.17 GG). Pixels
    behind a redirect, or on a host outside the SCU's allow-list, are not fetched and the object
    is not sent; the report says why."""
    with serving(CountingServer(("127.0.0.2", 0), handler(200))) as other:
        elsewhere = f"http://127.0.0.2:{other.server_address[1]}/jpip?target=secret.j2k"
        with serving(CountingServer(("127.0.0.1", 0), handler(302, elsewhere))) as first:
            redirecting = f"http://127.0.0.1:{first.server_address[1]}/jpip?target=ct.j2k"
            paths = hollow_copies(ct_base, tmp_path / "redirected", 1, JPIP_REFERENCED, redirecting)
            paths += hollow_copies(ct_base, tmp_path / "internal", 1, JPIP_REFERENCED,
                                   "http://intranet.example/jpip?target=ct.j2k")
            store = tmp_path / "scp-store"
            with store_scp(store, "--transfer-syntax", JPEG2000_LOSSLESS) as scp:
                report = scu.store("127.0.0.1", scp.port, [str(p) for p in paths],
                                   url_policy=URLPolicy.from_options([f"127.0.0.1:{first.server_address[1]}"]))
                run = subprocess.run(pyjpip_command("store-scu", "127.0.0.1", scp.port, paths[1],
                                                    "--allow-pixel-host", "pacs.example"),
                                     capture_output=True, text=True, cwd=ROOT, timeout=120)
    internal, redirected = sorted(report.sent, key=lambda s: s.path)  # by folder name
    assert redirected.status is None and "the server answered 302, a redirect to" in redirected.comment
    assert internal.status is None and "host intranet.example:80 is not allowed" in internal.comment
    assert run.returncode == 1 and "not sent: 'http://intranet.example/jpip?target=ct.j2k': refused, host " \
                                   "intranet.example:80 is not allowed (allowed hosts: pacs.example)" in run.stdout
    assert first.connections == 1 and other.connections == 0
    assert sql_count(f"sqlite:///{store}/pyjpip.sqlite") == 0


def test_a_store_scp_with_an_allow_list_stores_only_what_points_inside_it(tmp_path, ct_base):
    allowed_base = "http://127.0.0.1:8000"
    outbox = tmp_path / "outbox"
    good = hollow_copies(ct_base, outbox / "good", 2, JPIP_REFERENCED, f"{allowed_base}/jpip?target=ct.j2k")
    good += hollow_copies(ct_base, outbox / "good-deflated", 1, JPIP_REFERENCED_DEFLATE,
                          f"{allowed_base}/jpip?target=ct.j2k")
    bad = {}
    for name, url in (("other-host", "http://169.254.169.254/latest/meta-data?target=x.j2k"),
                      ("other-port", "http://127.0.0.1:8001/jpip?target=ct.j2k"),
                      ("credentials", "http://user:secret@127.0.0.1:8000/jpip?target=ct.j2k"),
                      ("hidden-address", "http://2130706433:8000/jpip?target=ct.j2k")):
        bad[name] = hollow_copies(ct_base, outbox / name, 1, JPIP_REFERENCED_DEFLATE, url)[0]
    store = tmp_path / "scp-store"
    with store_scp(store, "--files", "--db", f"sqlite:///{store}/pyjpip.sqlite", "--allow-pixel-host",
                   "127.0.0.1:8000") as scp:
        report = scu.store("127.0.0.1", scp.port, [str(outbox)])
        log = scp.log
    by_path = {s.path: s for s in report.sent}
    for path in good:
        assert by_path[str(path)].status == storage.SUCCESS
    reasons = {"other-host": "host 169.254.169.254:80 is not allowed (allowed hosts: 127.0.0.1:8000)",
               "other-port": "host 127.0.0.1:8001 is not allowed (allowed hosts: 127.0.0.1:8000)",
               "credentials": "it carries credentials (user:password@); give them", "hidden-address": "host '2130706433' is an IPv4 address "
                                                                          "written in a form that hides it"}
    for name, path in bad.items():
        sent = by_path[str(path)]
        assert sent.status == storage.NOT_AUTHORIZED == 0x0124, (name, sent.describe())
        # Error Comment (0000,0902) is LO: the reason's first 64 characters
        assert sent.comment == f"Pixel Data Provider URL: {reasons[name]}"[:64].rstrip()
    text = log.read_text()
    assert "Pixel Data Provider URLs taken: schemes http, https; hosts 127.0.0.1:8000" in text
    for name, path in bad.items():  # a log line each, with the whole reason
        sop = str(read_hollow(path.read_bytes()).dataset.SOPInstanceUID)
        assert re.search(rf"C-STORE {sop} .* refused 0x0124: Pixel Data Provider URL: .*{re.escape(reasons[name])}",
                         text), name
    assert sql_count(f"sqlite:///{store}/pyjpip.sqlite") == len(good)  # the refused ones: nothing at all
    kept = sorted(p.name for p in (store / "files").rglob("*.dcm"))
    assert kept == sorted(f"{read_hollow(p.read_bytes()).dataset.SOPInstanceUID}.dcm" for p in good)


def test_a_store_scp_may_take_https_only(tmp_path, ct_base):
    plain = hollow_copies(ct_base, tmp_path / "outbox" / "http", 1, JPIP_REFERENCED, "http://pacs.example/jpip")
    secure = hollow_copies(ct_base, tmp_path / "outbox" / "https", 1, JPIP_REFERENCED, "https://pacs.example/jpip")
    store = tmp_path / "scp-store"
    with store_scp(store, "--allow-pixel-scheme", "https") as scp:
        report = scu.store("127.0.0.1", scp.port, [str(tmp_path / "outbox")])
    by_path = {s.path: s for s in report.sent}
    assert by_path[str(secure[0])].status == storage.SUCCESS
    refused = by_path[str(plain[0])]
    assert refused.status == 0x0124 and refused.comment == "Pixel Data Provider URL: scheme 'http' is not allowed (allowed:"
    assert sql_count(f"sqlite:///{store}/pyjpip.sqlite") == 1
