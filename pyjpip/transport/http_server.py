"""The dev server: pyjpip's Site (pyjpip.transport.site) over the standard library's http.server.

Threaded, HTTP/1.1 with keep-alive, for development and small installations; production runs the
same Site as an ASGI app under gunicorn and uvicorn (pyjpip.transport.asgi). JPIP body chunks go out as they
come: with Content-Length when the core knows the length, chunked otherwise. A connection idle
(or unable to take bytes) for ``idle_seconds`` is closed; beyond ``max_connections`` a new one is
answered 503 at once, so no client can starve the others of threads.
"""

from __future__ import annotations

import logging
import sys
import threading
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from pyjpip.response import Response, close_body
from pyjpip.transport.site import (CORSPolicy, Limits, Site, make_site, CONTENT_TYPES, JPIP_PATH,  # noqa: F401
                                   EXPOSED_HEADERS)

log = logging.getLogger(__name__)


class RequestHandler(BaseHTTPRequestHandler):
    """Hands every request to the Site and sends its Response."""

    server_version = "pyjpip"
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes: do not wait for ACKs

    def version_string(self) -> str:
        return self.server_version  # no Python version for scanners to match

    def __init__(self, *args, site: Site, **kwargs):
        self.site = site
        super().__init__(*args, **kwargs)

    def setup(self):
        self.timeout = self.server.idle_seconds
        super().setup()

    def _dispatch(self):
        parts = urlsplit(self.path)
        response = self.site.handle(self.command, parts.path, parts.query, self.headers,
                                    lambda n: self.rfile.read(n), peer=self.client_address[0])
        self._send(response, body=self.command != "HEAD")

    do_GET = do_POST = do_HEAD = do_OPTIONS = do_PUT = do_DELETE = do_PATCH = _dispatch

    def _send(self, response: Response, body: bool = True) -> None:
        if response.close_connection:
            self.close_connection = True
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        chunked = response.length is None and response.status not in (204, 304)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif response.status not in (204, 304) or response.length:
            self.send_header("Content-Length", str(response.length or 0))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not body:
            close_body(response.body)
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
        except (BrokenPipeError, ConnectionResetError, TimeoutError) as exc:
            log.info("client left during a response: %s", exc)
            self.close_connection = True
        finally:
            close_body(response.body)  # a session body takes back what it could not deliver

    def log_message(self, format, *args):
        log.info("%s %s", self.address_string(), format % args)


class Server(ThreadingHTTPServer):
    """Threads per connection, capped; a client that hangs up is a log line, not a traceback."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address, handler, max_connections: int = 1024, idle_seconds: float = 60.0):
        self.max_connections = max_connections
        self.idle_seconds = idle_seconds
        self.active = 0
        self.active_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request, client_address):
        with self.active_lock:
            full = self.active >= self.max_connections
            if not full:
                self.active += 1
        if full:
            log.warning("%s: refused, %d connections open", client_address[0], self.max_connections)
            try:
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
                                b"Connection: close\r\nContent-Length: 38\r\n\r\n"
                                b"too many connections open; try again\r\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.active_lock:
                self.active -= 1

    def handle_error(self, request, client_address):
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            log.info("%s: connection ended: %s", client_address[0], error)
        else:
            log.exception("%s: the request failed", client_address[0])


def make_server(static_root: str | None = None, host: str = "127.0.0.1", port: int = 8000,
                jpip_root: str | None = None, cache_dir: str | None = None, database_url: str | None = None,
                proxies: dict[str, str] | None = None, *, max_connections: int = 1024,
                idle_seconds: float = 60.0, **site_options) -> ThreadingHTTPServer:
    """A bound, not yet running server; call ``serve_forever`` (the caller owns the thread)."""
    site = make_site(static_root, jpip_root, cache_dir=cache_dir, database_url=database_url, proxies=proxies,
                     **site_options)
    return Server((host, port), partial(RequestHandler, site=site), max_connections, idle_seconds)
