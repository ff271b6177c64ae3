"""JPIP as a WSGI application, for production servers (gunicorn, uWSGI, mod_wsgi).

    PYJPIP_ROOT=/data/images gunicorn -w 4 'pyjpip.transport.wsgi:application'

Each worker process has its own sessions, so a session's requests must reach the same worker
(a single worker, or sticky routing by cid). Stateless requests carry their model= and work on
any worker: that is how a multi-worker deployment scales.
"""

from __future__ import annotations

import os
import time
from urllib.parse import unquote

from pyjpip.jpip.server import JPIPServer, error_response
from pyjpip.transport.http_server import CORS_HEADERS, JPIP_PATH, MAXIMUM_POST_BYTES

_REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            411: "Length Required", 413: "Content Too Large", 415: "Unsupported Media Type",
            501: "Not Implemented", 503: "Service Unavailable"}


def make_app(root: str, cache_dir: str | None = None, **options):
    server = JPIPServer(root, cache_dir=cache_dir, **options)

    def app(environ, start_response):
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "")
        if method == "OPTIONS":
            start_response("204 No Content", [("Access-Control-Allow-Origin", "*"),
                                              ("Access-Control-Allow-Methods", "GET, POST, OPTIONS"),
                                              ("Access-Control-Allow-Headers", "Content-Type"),
                                              ("Content-Length", "0")])
            return [b""]
        if path != JPIP_PATH and not path.startswith(JPIP_PATH + "/"):
            response = error_response(404, "JPIP is served at /jpip")
        elif method == "POST":
            length = environ.get("CONTENT_LENGTH") or ""
            if not length.isdigit() or int(length) > MAXIMUM_POST_BYTES:
                response = error_response(413, f"a JPIP POST needs a Content-Length of at most {MAXIMUM_POST_BYTES}")
            else:
                response = server.handle("POST", environ["wsgi.input"].read(int(length)), time.monotonic())
        else:
            path_target = unquote(path[len(JPIP_PATH) + 1 :]) if path.startswith(JPIP_PATH + "/") else None
            response = server.handle(method, environ.get("QUERY_STRING", ""), time.monotonic(), path_target)
        headers = response.headers + CORS_HEADERS
        if response.length is not None:
            headers.append(("Content-Length", str(response.length)))
        start_response(f"{response.status} {_REASONS.get(response.status, 'Error')}", headers)
        return response.body  # the server calls close() on it, as WSGI requires

    app.jpip = server
    return app


def application(environ, start_response):
    """The app for ``PYJPIP_ROOT=... gunicorn pyjpip.transport.wsgi:application`` (made on first use)."""
    global _application
    if _application is None:
        root = os.environ.get("PYJPIP_ROOT")
        if not root:
            raise RuntimeError("set PYJPIP_ROOT to the folder of JPEG 2000 files to serve")
        _application = make_app(root, cache_dir=os.environ.get("PYJPIP_CACHE"))
    return _application(environ, start_response)


_application = None
