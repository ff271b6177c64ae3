"""pyjpip's Site (JPIP, DICOMweb, the built site) as a WSGI application, for production:

    PYJPIP_ROOT=/data/images PYJPIP_STATIC=static PYJPIP_SESSIONS=/shared/sessions \\
        gunicorn -k gthread -w 4 --threads 16 'pyjpip.transport.wsgi:application'

Why WSGI under gunicorn's gthread worker: the JPIP core is synchronous CPU work in Python, so
parallelism comes from processes (-w, one per core) and an event loop (ASGI) would add nothing
but a thread pool in front of it. gthread keeps idle keep-alive connections in a selector, not in
a thread, so hundreds of idle clients cost no worker; a response body is a WSGI iterable written
chunk by chunk, so a slow reader is back-pressure on its own thread only (behind nginx, which
buffers it, not even that). Sessions live in PYJPIP_SESSIONS, a folder shared by every worker
and host, so no load balancer needs to be sticky; without it each worker keeps its own and a
client that meets another worker reopens with model= and loses nothing.
"""

from __future__ import annotations

import os

from pyjpip.response import status_line
from pyjpip.transport.site import CORSPolicy, Site, make_site

#: Hop-by-hop headers a WSGI application must not set (PEP 3333); the server frames the body.
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-authenticate", "proxy-authorization"}


class _Headers:
    """The request headers of a WSGI environ, read by name as http.server's are."""

    def __init__(self, environ):
        self.environ = environ

    def get(self, name: str, default=None):
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_LENGTH", "CONTENT_TYPE"):
            value = self.environ.get(key)
            return value if value else default
        return self.environ.get(f"HTTP_{key}", default)


def wsgi_app(site: Site):
    def app(environ, start_response):
        path = environ.get("PATH_INFO", "") or "/"
        try:  # PEP 3333 hands the path over as latin-1 of its bytes; the Site wants the URL's characters
            path = path.encode("latin-1").decode("utf-8", "replace")
        except UnicodeEncodeError:
            pass
        from urllib.parse import quote

        response = site.handle(environ["REQUEST_METHOD"], quote(path, safe="/:@!$&'()*+,;=-._~"),
                               environ.get("QUERY_STRING", ""), _Headers(environ),
                               lambda n: environ["wsgi.input"].read(n))
        headers = [(k, v) for k, v in response.headers if k.lower() not in HOP_BY_HOP]
        if response.length is not None and response.status not in (204, 304):
            headers.append(("Content-Length", str(response.length)))
        start_response(status_line(response.status), headers)
        if environ["REQUEST_METHOD"] == "HEAD":
            close = getattr(response.body, "close", None)
            if close:
                close()
            return []
        return response.body  # the server calls close() on it, as WSGI requires

    app.site = site
    app.jpip = site.jpip
    return app


def make_app(root: str | None = None, cache_dir: str | None = None, *, static_root: str | None = None,
             **options):
    return wsgi_app(make_site(static_root, root, cache_dir=cache_dir, **options))


def _origins(name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = os.environ.get(name)
    return default if value is None else tuple(o.strip() for o in value.split(",") if o.strip())


def app_from_environment():
    """The app as the environment configures it (every setting of `pyjpip serve`)."""
    root = os.environ.get("PYJPIP_ROOT")
    static = os.environ.get("PYJPIP_STATIC")
    if not root and not static:
        raise RuntimeError("set PYJPIP_ROOT to the folder of JPEG 2000 files (and PYJPIP_STATIC to the built site)")
    proxies = dict(item.split("=", 1) for item in os.environ.get("PYJPIP_PROXY", "").split() if "=" in item)
    defaults = CORSPolicy()
    cors = CORSPolicy(_origins("PYJPIP_CORS_JPIP", defaults.jpip), _origins("PYJPIP_CORS_DICOMWEB", defaults.dicomweb))
    return make_app(root or None, os.environ.get("PYJPIP_CACHE"), static_root=static or None,
                    database_url=os.environ.get("PYJPIP_DB") or None, proxies=proxies,
                    sessions_dir=os.environ.get("PYJPIP_SESSIONS") or None, cors=cors,
                    channel_path=os.environ.get("PYJPIP_CHANNEL_PATH", "jpip"))


def application(environ, start_response):
    """The app for ``gunicorn pyjpip.transport.wsgi:application`` (made on first use, per worker)."""
    global _application
    if _application is None:
        _application = app_from_environment()
    return _application(environ, start_response)


_application = None


def run_gunicorn(make, host: str, port: int, workers: int, *, threads: int = 16, idle_seconds: float = 60.0,
                 max_connections: int = 1024, on_ready=None) -> None:
    """Serve the app ``make()`` builds (once per worker, after the fork: no file or lock is shared
    by accident) with gunicorn's gthread workers; returns when gunicorn stops (SIGTERM, SIGINT).

    keepalive is the idle time; worker_connections the connections a worker holds open (idle ones
    in its selector); a worker that stops answering its master for 60 s is replaced."""
    from gunicorn.app.base import BaseApplication

    class Application(BaseApplication):
        def load_config(self):
            settings = {"bind": f"{host}:{port}", "workers": workers, "worker_class": "gthread",
                        "threads": threads, "keepalive": int(max(idle_seconds, 1)),
                        "worker_connections": max_connections, "timeout": 60, "graceful_timeout": 10,
                        "limit_request_line": 8190, "limit_request_fields": 100,
                        "limit_request_field_size": 8190, "accesslog": None,
                        "control_socket_disable": True}
            if on_ready is not None:
                settings["when_ready"] = lambda arbiter: on_ready(arbiter.LISTENERS[0].sock.getsockname())
            for key, value in settings.items():
                self.cfg.set(key, value)

        def load(self):
            return wsgi_app(make())

    Application().run()
