"""The viewer as an attacker would use it (issue 23), in headless Chromium against real servers:

- a study whose hollow objects name a foreign host: no request leaves the browser for it, and the
  viewport says why; a configured pixel origin works; a redirecting JPIP server is refused;
- ?dicom=, ?jpip=, ?dicomweb= of another origin: refused unless configured;
- the settings the site serves (/viewer-config.json) as the viewer reads them: one contract;
- the Content-Security-Policy: the viewer works under it; a page of another origin cannot frame it,
  a configured one can; the iframe API obeys only the site's own and configured embedders.
"""

import json
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pydicom
import pytest

from local_site import served
from test_first_page import BOOT_TIMEOUT_MS

pytestmark = pytest.mark.cpython_only
REFUSED = "are not on this viewer's list of pixel servers"
TOKEN = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ0ZXN0In0.c2lnbmF0dXJl"  # its shape only: no server here checks it


def origin_of(base: str) -> str:
    parts = urlsplit(base)
    return f"{parts.scheme}://{parts.netloc}"


@contextmanager
def little_server(answer, host="127.0.0.1"):
    """A real HTTP server of the test's own: ``answer(handler)`` writes each GET's response; every
    request path is kept in the yielded object's ``hits``."""
    hits = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            hits.append(self.path)
            answer(self)

        do_POST = do_GET

        def do_OPTIONS(self):  # noqa: N802 - a CORS preflight (the JPIP client's requests need one)
            hits.append(self.path)
            self.send_response(204)
            for name, value in (("Access-Control-Allow-Origin", "*"), ("Access-Control-Allow-Headers", "*"),
                                ("Access-Control-Allow-Methods", "GET, POST"), ("Content-Length", "0")):
                self.send_header(name, value)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield type("Little", (), {"port": server.server_address[1], "hits": hits})
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def foreign_study(tmp_path_factory):
    """A study ingested with its pixels on a second real pyjpip server (the "foreign host", counting
    its hits); yields (study UID, store, pixel server base, hits, sources)."""
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    from pyjpip.dicom.ingest import ingest
    from pyjpip.transport.site import CORSPolicy

    sources, store = tmp_path_factory.mktemp("foreign-sources"), tmp_path_factory.mktemp("foreign-store")
    study = generate_uid(entropy_srcs=["foreign pixels"])
    mr = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    mr.StudyInstanceUID, mr.StudyDescription = study, "Foreign pixels"
    mr.save_as(sources / "MR_small.dcm")
    (store / "index.json").write_text('{"instances": {}}')
    hits = []
    with served(store, static=False, cors=CORSPolicy(("*",), ("*",)), hits=hits) as pixels:
        assert not ingest([str(sources)], str(store), pixels.rstrip("/")).failed
        hits.clear()
        yield study, store, pixels, hits, sources


@pytest.fixture
def foreign(foreign_study):
    """foreign_study with its hit list emptied (a previous test's page may have closed a channel late)."""
    import time

    time.sleep(0.3)
    foreign_study[3].clear()
    return foreign_study


@contextmanager
def pyjpip_serve(*options):
    """`pyjpip serve --static static` with ``options``, as a real process on a free port."""
    import re
    import subprocess
    import sys

    from paths import ROOT

    process = subprocess.Popen([sys.executable, "-m", "pyjpip", "serve", "--static", str(ROOT / "static"), "--port", "0",
                                *options], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = process.stdout.readline()
        found = re.search(r"(http://[^ ]+/)", line)
        assert found, line + process.stdout.read() if process.poll() is not None else line
        yield found.group(1)
    finally:
        process.terminate()
        process.wait(10)


def viewer_page(page, base, *others):
    page.watch.origin = base.rstrip("/")
    page.watch.also.update(others)
    seen = []
    page.on("request", lambda request: seen.append(request.url))
    page.set_viewport_size({"width": 800, "height": 600})
    return seen


def wait_settled(page):
    page.wait_for_function("['painted', 'error'].includes(document.body.dataset.state) || "
                           "[...document.querySelectorAll('.cell .failure')].some((f) => !f.hidden)",
                           timeout=BOOT_TIMEOUT_MS)


def test_a_hollow_object_naming_a_foreign_host_is_not_fetched_and_the_viewport_says_why(watched_page, foreign):
    study, store, pixels, hits, _ = foreign
    with served(store) as viewer:  # the viewer's site: DICOMweb of the same store, no pixel origin configured
        page = watched_page
        seen = viewer_page(page, viewer)
        page.goto(f"{viewer}?study={study}")
        wait_settled(page)
        failure = page.locator(".cell .failure").first
        failure.wait_for(state="visible", timeout=BOOT_TIMEOUT_MS)
        text = failure.text_content()
        assert REFUSED in text and pixels.rstrip("/") in text, text
        assert failure.get_attribute("data-kind") == "refused"
        page.wait_for_timeout(500)  # anything late would show up here
    foreign = origin_of(pixels)
    assert hits == [], f"the foreign pixel server was asked: {hits}"
    assert not [u for u in seen if u.startswith(foreign)], "a request to the foreign host left the browser"


def test_a_configured_pixel_origin_is_fetched(watched_page, foreign):
    from pyjpip.transport.viewer_config import ViewerConfig

    study, store, pixels, hits, sources = foreign
    foreign = origin_of(pixels)
    with served(store, viewer=ViewerConfig.from_options(pixel_origins=[foreign])) as viewer:
        page = watched_page
        viewer_page(page, viewer, foreign)
        page.goto(f"{viewer}?study={study}")
        page.wait_for_function("['painted', 'error'].includes(document.body.dataset.state)", timeout=BOOT_TIMEOUT_MS)
        assert page.evaluate("document.body.dataset.state") == "painted", page.locator("#message").text_content()
    assert any(path.startswith("/jpip") for _, path in hits), hits
    assert page.watch.errors == []


def test_a_redirecting_jpip_server_is_refused(watched_page):
    """The JPIP server answers 302 to the viewer's own /jpip (the one place the Content-Security-Policy
    lets a redirect go): a fetch that followed it would paint; the viewer says why it does not."""
    from paths import ROOT
    from pyjpip.transport.viewer_config import ViewerConfig

    where = {}

    def redirect(handler):
        handler.send_response(302)
        handler.send_header("Location", f"{where['viewer']}jpip?target=ct_phantom_2048.j2k")
        handler.send_header("Access-Control-Allow-Origin", "*")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    with little_server(redirect) as jumper:
        jumping = f"http://127.0.0.1:{jumper.port}"
        config = ViewerConfig.from_options(pixel_origins=[jumping], source_origins=[jumping])
        hits = []
        with served(ROOT / "static" / "data", viewer=config, hits=hits) as viewer:
            where["viewer"] = viewer
            page = watched_page
            viewer_page(page, viewer, jumping)
            page.goto(f"{viewer}?jpip={jumping}/jpip?target=ct_phantom_2048.j2k")
            wait_settled(page)
            failure = page.locator(".cell .failure").first
            failure.wait_for(state="visible", timeout=BOOT_TIMEOUT_MS)
            assert "redirect" in failure.text_content(), failure.text_content()
            assert failure.get_attribute("data-kind") == "refused"
        assert [path for path in jumper.hits if path.startswith("/jpip")], "the redirecting server was asked"
        assert not [path for _, path in hits if path.startswith("/jpip")], "the redirect was followed"
    assert page.evaluate("document.body.dataset.state") != "painted"


@pytest.mark.parametrize("parameter", ["dicom", "jpip", "dicomweb"])
def test_a_foreign_source_is_refused_unless_configured(watched_page, foreign, parameter):
    study, store, pixels, hits, sources = foreign
    ds = pydicom.dcmread(sources / "MR_small.dcm", stop_before_pixels=True)
    foreign = origin_of(pixels)
    query = {"dicom": f"dicom={foreign}/dicomweb/studies/{study}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}",
             "jpip": f"jpip={foreign}/jpip?target=x.j2k",
             "dicomweb": f"study={study}&dicomweb={foreign}/dicomweb"}[parameter]
    with served(store) as viewer:
        page = watched_page
        seen = viewer_page(page, viewer)
        page.goto(f"{viewer}?{query}")
        page.wait_for_function("document.body.dataset.state === 'error'", timeout=BOOT_TIMEOUT_MS)
        message = page.locator("#message").text_content()
        assert f"?{parameter}=" in message and "--viewer-allow-origin" in message, message
    assert hits == [] and not [u for u in seen if u.startswith(foreign)]


def test_a_configured_source_origin_opens(watched_page, foreign):
    from pyjpip.transport.viewer_config import ViewerConfig

    study, store, pixels, hits, sources = foreign
    ds = pydicom.dcmread(sources / "MR_small.dcm", stop_before_pixels=True)
    foreign = origin_of(pixels)
    url = f"{foreign}/dicomweb/studies/{study}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    with served(store, viewer=ViewerConfig.from_options(source_origins=[foreign])) as viewer:
        page = watched_page
        viewer_page(page, viewer, foreign)
        page.goto(f"{viewer}?dicom={url}")
        page.wait_for_function("['painted', 'error'].includes(document.body.dataset.state)", timeout=BOOT_TIMEOUT_MS)
        assert page.evaluate("document.body.dataset.state") == "painted", page.locator("#message").text_content()
    assert any("/dicomweb/" in path for _, path in hits) and any(path.startswith("/jpip") for _, path in hits)


# --- the settings contract ------------------------------------------------------------------------

def test_the_settings_contract_is_the_same_on_both_sides(page):
    """The Python side's keys are the JavaScript reader's, what `pyjpip serve`'s options make is what the
    page reads, and the reader refuses a document outside the contract."""
    from pyjpip.transport.viewer_config import KEYS, OIDC_KEYS

    with pyjpip_serve("--viewer-pixel-origin", "https://pacs.example:443/", "--viewer-token-origin", "https://pacs.example",
                      "--viewer-allow-origin", "http://other.example:8080", "--embed-origin", "https://portal.example",
                      "--oidc-issuer", "https://id.example/realms/h", "--oidc-client-id", "viewer",
                      "--oidc-scope", "openid profile") as base:
        document = json.loads(page.request.get(f"{base}viewer-config.json").text())
        page.goto(base + "data/index.json")
        read = page.evaluate("""async (document) => {
          const m = await import('/viewer-config.js');
          const refused = (d) => { try { m.readConfig(d); return null; } catch (e) { return e.message; } };
          const { oidc, ...withoutOidc } = document;
          return {keys: m.CONFIG_KEYS, oidcKeys: m.OIDC_KEYS, read: m.readConfig(document), loaded: await m.loadConfig(),
                  extra: refused({...document, more: 1}), missing: refused(withoutOidc),
                  path: refused({...document, pixel_origins: ['https://pacs.example/path']})};
        }""", document)
    assert read["keys"] == list(KEYS) and read["oidcKeys"] == list(OIDC_KEYS)
    expected = {"pixelOrigins": ["https://pacs.example"], "tokenOrigins": ["https://pacs.example"],
                "sourceOrigins": ["http://other.example:8080"], "embedOrigins": ["https://portal.example"],
                "oidc": {"issuer": "https://id.example/realms/h", "clientId": "viewer", "scope": "openid profile",
                         "audience": None, "issuerOrigin": "https://id.example"}}
    assert read["read"] == expected and read["loaded"] == expected
    assert "unknown keys more" in read["extra"] and "missing keys oidc" in read["missing"]
    assert "not an http(s) origin" in read["path"]


# --- Content Security Policy, framing, the iframe API ----------------------------------------------

HOST_PAGE = """<!doctype html><title>host</title>
<iframe id="frame" src="{frame}" width="640" height="480"></iframe>
<script>
  window.replies = []; window.events = [];
  window.addEventListener("message", (e) => {{ if (e.data && e.data.pyjpip === 1) (e.data.event ? window.events : window.replies).push(e.data); }});
  document.getElementById("frame").addEventListener("load", () => {{ window.frameLoaded = true; }});
</script>"""


def host_page(holder):
    """A handler answering the embedder's page, framing ``holder["frame"]`` (known once the viewer runs)."""
    def answer(handler):
        body = HOST_PAGE.format(frame=holder["frame"]).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html; charset=utf-8")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return answer


@contextmanager
def host_site(viewer):
    """A page of another origin (localhost, another port) framing the viewer (127.0.0.1)."""
    with little_server(host_page({"frame": f"{viewer}?layout=1x1"})) as host:
        yield f"http://localhost:{host.port}"


def test_the_site_sends_its_content_security_policy(page, site):
    response = page.goto(site)
    policy = response.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["script-src"] == "'self' 'wasm-unsafe-eval'"
    assert directives["frame-ancestors"] == "'self'" and directives["object-src"] == "'none'"
    assert directives["base-uri"] == "'none'" and directives["connect-src"] == "'self'"
    worker = page.request.get(f"{site}python-worker.js")
    assert worker.headers["content-security-policy"] == policy  # a worker's policy is its own response's


def test_a_page_of_another_origin_cannot_frame_the_viewer(page, site):
    with host_site(site) as host:
        blocked = []
        page.on("console", lambda m: "frame-ancestors" in m.text and blocked.append(m.text))
        page.goto(f"{host}/host.html")
        page.wait_for_function("window.frameLoaded === true", timeout=30_000)
        page.wait_for_timeout(500)
        frame = page.frames[1]
        assert frame.url.startswith("chrome-error:") or frame.evaluate("document.body.dataset.state") is None
        assert blocked, "Chromium said nothing of frame-ancestors"


def embed_commands(page):
    page.evaluate("""(() => { const f = document.getElementById('frame').contentWindow;
      f.postMessage({pyjpip: 1, id: 1, command: 'subscribe'}, '*');
      f.postMessage({pyjpip: 1, id: 2, command: 'layout', layout: '1x2'}, '*'); })()""")


def test_a_configured_embedder_frames_and_drives_the_viewer(page, site):
    from pyjpip.transport.viewer_config import ViewerConfig

    # The host first, then the viewer configured with the host's origin.
    holder = {}

    with little_server(host_page(holder)) as host:
        embedder = f"http://localhost:{host.port}"
        with served(viewer=ViewerConfig.from_options(embed_origins=[embedder])) as viewer:
            holder["frame"] = f"{viewer}?layout=1x1"
            page.goto(f"{embedder}/host.html")
            page.frame_locator("#frame").locator("body[data-state='painted']").wait_for(timeout=BOOT_TIMEOUT_MS)
            embed_commands(page)
            page.wait_for_function("window.replies.length === 2", timeout=30_000)
            assert all(r["ok"] for r in page.evaluate("window.replies"))
            page.frame_locator("#frame").locator("#viewport[data-layout='1x2']").wait_for(timeout=30_000)
            page.wait_for_function("window.events.some((e) => e.event === 'state')", timeout=BOOT_TIMEOUT_MS)


def test_the_embedder_gives_the_token_and_it_goes_with_this_sites_requests(page):
    """{command: "token"} from a configured embedder: the viewer's next JPIP requests carry it."""
    from paths import ROOT
    from pyjpip.transport.viewer_config import ViewerConfig

    holder, seen = {}, []

    with little_server(host_page(holder)) as host:
        embedder = f"http://localhost:{host.port}"
        config = ViewerConfig.from_options(embed_origins=[embedder])
        with served(ROOT / "static" / "data", viewer=config, authorization=seen) as viewer:
            holder["frame"] = f"{viewer}?jpip=/jpip?target=ct_phantom_2048.j2k"
            page.goto(f"{embedder}/host.html")
            page.frame_locator("#frame").locator("body[data-state='painted']").wait_for(timeout=BOOT_TIMEOUT_MS)
            assert seen and all(value is None for _, value in seen)
            before = len(seen)
            page.evaluate("""(token) => document.getElementById('frame').contentWindow.postMessage(
              {pyjpip: 1, id: 7, command: 'token', token, expires_at: Date.now() / 1000 + 600}, '*')""", TOKEN)
            page.wait_for_function("window.replies.some((r) => r.id === 7)", timeout=30_000)
            assert page.evaluate("window.replies")[0]["ok"] is True
            page.evaluate("""document.getElementById('frame').contentWindow.postMessage(
              {pyjpip: 1, id: 8, command: 'zoom', factor: 8}, '*')""")
            deadline = time.monotonic() + 60
            while not [v for path, v in seen[before:] if path == "/jpip"] and time.monotonic() < deadline:
                page.wait_for_timeout(200)
            after = [value for path, value in seen[before:] if path == "/jpip"]
            assert after and set(after) == {f"Bearer {TOKEN}"}


@contextmanager
def static_without_policy():
    """static/ served by a plain web server (no Content-Security-Policy, no /viewer-config.json), as
    a deployment might put the built site behind another server."""
    from paths import ROOT
    from pyjpip.transport.site import CONTENT_TYPES

    static = (ROOT / "static").resolve()

    def answer(handler):
        path = (static / urlsplit(handler.path).path.lstrip("/")).resolve()
        if path.is_dir():
            path = path / "index.html"
        if static not in path.parents or not path.is_file():
            handler.send_error(404)
            return
        body = path.read_bytes()
        handler.send_response(200)
        handler.send_header("Content-Type", CONTENT_TYPES.get(path.suffix, "application/octet-stream"))
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    with little_server(answer) as server:
        yield f"http://127.0.0.1:{server.port}/"


def test_the_iframe_api_ignores_an_origin_that_is_not_an_embedder(page):
    """Framing allowed (no CSP: static/ behind another web server), the API still answers only this
    site and configured embedders: none here."""
    warnings = []
    page.on("console", lambda m: "not an embedder" in m.text and warnings.append(m.text))
    with static_without_policy() as viewer, host_site(viewer) as host:
        page.goto(f"{host}/host.html")
        page.frame_locator("#frame").locator("body[data-state='painted']").wait_for(timeout=BOOT_TIMEOUT_MS)
        embed_commands(page)
        page.wait_for_timeout(1500)
        assert page.evaluate("window.replies") == [] and page.evaluate("window.events") == []
        assert page.frame_locator("#frame").locator("#viewport").get_attribute("data-layout") == "1x1"
        assert len(warnings) == 2


# --- tokens ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("token_origin", [False, True])
def test_a_token_from_the_address_fragment_goes_to_this_site_only(watched_page, foreign, token_origin):
    """#access_token= is taken once and leaves the address bar; the token goes with this site's requests,
    to a pixel origin only when it is declared to take it (--viewer-token-origin)."""
    from pyjpip.transport.viewer_config import ViewerConfig

    study, store, pixels, hits, _ = foreign
    pixel_origin = origin_of(pixels)
    config = ViewerConfig.from_options([pixel_origin], token_origins=[pixel_origin] if token_origin else [])
    own = []
    with served(store, viewer=config, authorization=own) as viewer:
        page = watched_page
        viewer_page(page, viewer, pixel_origin)
        pixel_requests = []
        page.on("request", lambda r: r.url.startswith(pixel_origin) and r.method != "OPTIONS"
                and pixel_requests.append(r.all_headers().get("authorization")))
        page.goto(f"{viewer}?study={study}#access_token={TOKEN}&expires_in=600")
        page.wait_for_function("['painted', 'error'].includes(document.body.dataset.state)", timeout=BOOT_TIMEOUT_MS)
        assert page.evaluate("document.body.dataset.state") == "painted", page.locator("#message").text_content()
        assert page.evaluate("location.href") == f"{viewer}?study={study}", "the token stayed in the address"
    metadata = [value for path, value in own if path.endswith("/metadata")]
    assert metadata == [f"Bearer {TOKEN}"]
    assert pixel_requests and set(pixel_requests) == ({f"Bearer {TOKEN}"} if token_origin else {None})


def test_a_token_in_the_query_is_never_taken(watched_page):
    own = []
    with served(None, authorization=own) as viewer:
        page = watched_page
        viewer_page(page, viewer)
        page.goto(f"{viewer}?access_token={TOKEN}&dicom=data/ct_phantom_2048.dcm")
        page.wait_for_function("['painted', 'error'].includes(document.body.dataset.state)", timeout=BOOT_TIMEOUT_MS)
    assert own and all(value is None for _, value in own)


def test_wasm_unsafe_eval_is_the_one_script_source_beyond_self_the_viewer_needs(page, jpip_site):
    """Under the site's policy a bare image paints (test_first_page and test_viewer run under it too);
    the same policy without 'wasm-unsafe-eval' stops Pyodide's and OpenJPEG's WebAssembly."""
    from paths import ROOT
    from pyjpip.transport.content_security import content_security_policy
    from pyjpip.transport.viewer_config import ViewerConfig

    strict = content_security_policy(ViewerConfig()).replace(" 'wasm-unsafe-eval'", "")
    assert "script-src 'self';" in strict
    with served(ROOT / "static" / "data") as viewer:
        page.goto(f"{viewer}?jpip=/jpip?target=ct_phantom_2048.j2k")
        page.wait_for_function("['painted', 'error'].includes(document.body.dataset.state)", timeout=BOOT_TIMEOUT_MS)
        assert page.evaluate("document.body.dataset.state") == "painted"
    hits = []
    with served(ROOT / "static" / "data", hits=hits) as viewer:
        violations = []
        page.on("console", lambda m: "WebAssembly" in m.text and "Content Security" in m.text
                and violations.append(m.text))
        page.route(f"{viewer}**", lambda route: route.fulfill(
            response=(fetched := route.fetch()), headers={**fetched.headers, "content-security-policy": strict}))
        page.goto(f"{viewer}?jpip=/jpip?target=ct_phantom_2048.j2k")
        for _ in range(100):
            if violations:
                break
            page.wait_for_timeout(200)
        assert violations, "Chromium did not say the WebAssembly was refused"
        page.wait_for_timeout(2000)
        assert page.evaluate("document.body.dataset.state") != "painted"
        assert not [path for _, path in hits if path == "/jpip"], "no image is asked for without Python"


ELEMENT_PAGE = """<!doctype html><meta charset="utf-8"><title>element</title>
<script type="module">
  await import("/jpip-viewer.js");
  const viewer = document.createElement("jpip-viewer");
  viewer.token = new URLSearchParams(location.hash.slice(1)).get("t");
  viewer.setAttribute("src", "/jpip?target=ct_phantom_2048.j2k");
  viewer.style.cssText = "display:block;width:300px;height:300px";
  viewer.addEventListener("jpip-painted", () => { window.painted = true; });
  document.body.append(viewer);
</script>"""


def test_the_elements_token_property_goes_with_its_requests(watched_page):
    from paths import ROOT

    seen = []
    with served(ROOT / "static" / "data", authorization=seen) as viewer:
        page = watched_page
        viewer_page(page, viewer)
        page.route(f"{viewer}element.html", lambda route: route.fulfill(status=200, content_type="text/html",
                                                                          body=ELEMENT_PAGE))
        page.goto(f"{viewer}element.html#t={TOKEN}")
        page.wait_for_function("window.painted === true", timeout=BOOT_TIMEOUT_MS)
    jpip = [value for path, value in seen if path == "/jpip"]
    assert jpip and set(jpip) == {f"Bearer {TOKEN}"}
