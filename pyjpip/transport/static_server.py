"""The development web server: serves the built site (``static/``) over HTTP.

Standard library only (http.server), threaded so a page's parallel requests do not queue.
JPIP answering joins this server when the protocol core exists; there is one server, not two.
"""

from __future__ import annotations

import logging
import os
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

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


class StaticRequestHandler(SimpleHTTPRequestHandler):
    """Files only: no directory listings, and revalidation so a rebuilt site is never stale."""

    server_version = "pyjpip"

    def guess_type(self, path):
        return CONTENT_TYPES.get(os.path.splitext(path)[1].lower()) or super().guess_type(path)

    def list_directory(self, path):
        self.send_error(404, "No directory listings")
        return None

    def end_headers(self):
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Content-Type-Options", "nosniff")
        super().end_headers()

    def log_message(self, format, *args):
        log.info("%s %s", self.address_string(), format % args)


def make_server(static_root: str, host: str = "127.0.0.1", port: int = 8000) -> ThreadingHTTPServer:
    """A bound, not yet running server; call ``serve_forever`` (the caller owns the thread)."""
    if not os.path.isfile(os.path.join(static_root, "index.html")):
        raise FileNotFoundError(f"{static_root} has no index.html; run `python3 build.py build` first")
    handler = partial(StaticRequestHandler, directory=os.path.abspath(static_root))
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server
