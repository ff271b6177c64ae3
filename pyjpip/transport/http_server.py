"""The pyjpip web server: JPIP at /jpip, a store's studies at /dicomweb/, configured upstreams (a PACS's
DICOMweb, for pages of this origin) under their prefixes, and, when given, the built site (static/)
everywhere else.

Standard library only (http.server), threaded, HTTP/1.1 with keep-alive. JPIP requests go to the
sans-IO core (pyjpip.jpip.server) and its body chunks go out as they come: with Content-Length
when the core knows the length, chunked otherwise. CORS lets a page on another origin use it.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

from pyjpip.dicom.dicomweb import PREFIX as DICOMWEB_PREFIX
from pyjpip.dicom.dicomweb import DicomWebStore
from pyjpip.jpip.server import JPIPServer, Response, error_response

log = logging.getLogger(__name__)

#: Types the browser insists on (module scripts, streaming WebAssembly compilation) or that
#: Python's mimetypes may not know on a bare machine.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".wasm": "application/wasm",
    ".zip": "application/zip",
    ".whl": "application/zip",
    ".dcm": "application/dicom",
    ".j2k": "image/j2c",
    ".j2c": "image/j2c",
    ".jp2": "image/jp2",
    ".map": "application/json",
}
JPIP_PATH = "/jpip"
EXPOSED_HEADERS = ("Pyjpip-Codestream-Length, JPIP-cnew, JPIP-tid, JPIP-qid, JPIP-fsiz, JPIP-roff, JPIP-rsiz, JPIP-comps, JPIP-layers, "
                   "JPIP-stream, JPIP-len, JPIP-quality")
CORS_HEADERS = [("Access-Control-Allow-Origin", "*"), ("Access-Control-Expose-Headers", EXPOSED_HEADERS)]
MAXIMUM_POST_BYTES = 1 << 20
#: A proxied DICOMweb answer (a study's metadata) larger than this is refused.
MAXIMUM_PROXIED_BYTES = 256 << 20


class RequestHandler(SimpleHTTPRequestHandler):
    """Files from the static folder (no listings, revalidated), JPIP at /jpip."""

    server_version = "pyjpip"
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes: do not wait for ACKs

    def __init__(self, *args, jpip: JPIPServer | None, static_root: str | None, dicomweb=None, proxies=None,
                 **kwargs):
        self.jpip = jpip
        self.dicomweb = dicomweb
        self.proxies = proxies or {}
        self.static_root = static_root
        super().__init__(*args, directory=static_root or os.devnull, **kwargs)

    # --- JPIP ---------------------------------------------------------------------------------

    def _is_jpip(self) -> bool:
        path = urlsplit(getattr(self, "path", "")).path  # unset when the request line itself was refused
        return path == JPIP_PATH or path.startswith(JPIP_PATH + "/")

    def do_GET(self):
        parts = urlsplit(self.path)
        proxied = self._proxied(parts.path)
        if proxied is not None:
            self._answer(lambda: forward(proxied + (f"?{parts.query}" if parts.query else ""),
                                         self.headers.get("Accept")))
        elif self._is_jpip():
            self._jpip("GET", parts.query)
        elif parts.path.startswith(DICOMWEB_PREFIX):
            if self.dicomweb is None:
                self._send(error_response(404, "this server has no store to list"))
            else:
                self._answer(lambda: self.dicomweb.handle(unquote(parts.path), parts.query))
        elif self.static_root:
            super().do_GET()
        else:
            self._send(error_response(404, "this server has no static site; JPIP is at /jpip"))

    def _proxied(self, path: str) -> str | None:
        """The upstream URL for a path under a --proxy prefix (never a path that leaves it)."""
        for prefix, upstream in self.proxies.items():
            if path == prefix or path.startswith(prefix + "/"):
                rest = path[len(prefix):]
                if ".." in unquote(rest).split("/"):
                    return None
                return upstream + rest
        return None

    def do_HEAD(self):
        if self._is_jpip() or not self.static_root:
            self._send(error_response(405, "HEAD is not answered for JPIP; send GET or POST"), body=False)
        else:
            super().do_HEAD()

    def do_POST(self):
        if not self._is_jpip():
            self._send(error_response(405, "POST is only for JPIP requests at /jpip"))
            return
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit() or int(length) > MAXIMUM_POST_BYTES:
            self.close_connection = True  # the body is not read: this connection cannot go on
            self._send(error_response(411 if length is None else 413,
                                      f"a JPIP POST needs a Content-Length of at most {MAXIMUM_POST_BYTES} bytes"))
            return
        self._jpip("POST", self.rfile.read(int(length)))

    def do_OPTIONS(self):
        self.send_response(204)
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
        self.send_header("Access-Control-Allow-Headers", "Content-Type")
        self.send_header("Access-Control-Max-Age", "86400")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _jpip(self, method: str, query) -> None:
        if self.jpip is None:
            self._send(error_response(404, "this server was started without a JPIP root"))
            return
        path = urlsplit(self.path).path
        path_target = unquote(path[len(JPIP_PATH) + 1 :]) if path.startswith(JPIP_PATH + "/") else None
        self._answer(lambda: self.jpip.handle(method, query, time.monotonic(), path_target))

    def _answer(self, produce) -> None:
        """Send what ``produce`` makes; an unexpected failure is a 500 that says so, not a dropped line."""
        try:
            response = produce()
        except Exception as error:  # noqa: BLE001 - the last line of defence of a server
            log.exception("%s failed", self.path[:200])
            response = error_response(500, f"internal error: {type(error).__name__}: {error}")
        self._send(response)

    def _send(self, response: Response, body: bool = True) -> None:
        self.send_response(response.status)
        for name, value in response.headers + CORS_HEADERS:
            self.send_header(name, value)
        chunked = response.length is None
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(response.length))
        self.end_headers()
        if not body:
            response.body.close() if hasattr(response.body, "close") else None
            return
        try:
            for chunk in response.body:
                if not chunk:
                    continue
                if chunked:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                else:
                    self.wfile.write(chunk)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError) as exc:
            log.info("client left during a response: %s", exc)
            self.close_connection = True
        finally:
            close = getattr(response.body, "close", None)
            if close:
                close()  # a session body takes back what it could not deliver

    # --- static files -------------------------------------------------------------------------

    def guess_type(self, path):
        return CONTENT_TYPES.get(os.path.splitext(path)[1].lower()) or super().guess_type(path)

    def list_directory(self, path):
        self.send_error(404, "No directory listings")
        return None

    def end_headers(self):
        if not self._is_jpip():
            self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Content-Type-Options", "nosniff")
        super().end_headers()

    def log_message(self, format, *args):
        log.info("%s %s", self.address_string(), format % args)


def forward(url: str, accept: str | None) -> Response:
    """GET ``url`` from a configured upstream (a PACS's DICOMweb) for a page of this origin: status,
    type and body passed on; redirects are not followed (they could lead anywhere)."""
    import http.client

    parts = urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = kind(parts.netloc, timeout=30)
    try:
        connection.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""),
                           headers={"Accept": accept or "*/*"})
        upstream = connection.getresponse()
        body = upstream.read(MAXIMUM_PROXIED_BYTES + 1)
    except (OSError, http.client.HTTPException) as error:
        return error_response(502, f"the upstream {parts.scheme}://{parts.netloc} did not answer ({error})")
    finally:
        connection.close()
    if len(body) > MAXIMUM_PROXIED_BYTES:
        return error_response(502, f"the upstream's answer is over {MAXIMUM_PROXIED_BYTES} bytes")
    if 300 <= upstream.status < 400:
        return error_response(502, f"the upstream answered {upstream.status} (a redirect, not followed)")
    headers = [("Content-Type", upstream.getheader("Content-Type") or "application/octet-stream"),
               ("Cache-Control", "no-cache")]
    return Response(upstream.status, headers, iter([body]), len(body))


class Server(ThreadingHTTPServer):
    """Threads per connection; a client that hangs up is a log line, not a traceback."""

    daemon_threads = True

    def handle_error(self, request, client_address):
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            log.info("%s: connection ended: %s", client_address[0], error)
        else:
            log.exception("%s: the request failed", client_address[0])


def make_server(static_root: str | None = None, host: str = "127.0.0.1", port: int = 8000,
                jpip_root: str | None = None, cache_dir: str | None = None, database_url: str | None = None,
                proxies: dict[str, str] | None = None) -> ThreadingHTTPServer:
    """A bound, not yet running server; call ``serve_forever`` (the caller owns the thread)."""
    if static_root is not None and not os.path.isfile(os.path.join(static_root, "index.html")):
        raise FileNotFoundError(f"{static_root} has no index.html; run `python3 build.py build` first")
    if jpip_root is not None and not os.path.isdir(jpip_root):
        raise FileNotFoundError(f"JPIP root {jpip_root} is not a folder")
    if static_root is None and jpip_root is None:
        raise ValueError("nothing to serve: give a JPIP root, a static folder or both")
    jpip = JPIPServer(jpip_root, cache_dir=cache_dir) if jpip_root else None
    # The store's catalog: an archive database, received files or an ingested store's index.json
    # (answers 404 when ROOT is none of them).
    dicomweb = DicomWebStore(jpip_root, database_url) if jpip_root else None
    handler = partial(RequestHandler, jpip=jpip, dicomweb=dicomweb, proxies=proxies,
                      static_root=os.path.abspath(static_root) if static_root else None)
    return Server((host, port), handler)
