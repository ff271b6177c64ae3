"""The dev server: pyjpip's Site on the production HTTP stack, in one process.

The same ASGI app (pyjpip.transport.asgi) and the same HTTP/1.1 protocol (uvicorn's asyncio server
with h11 through pyjpip's StrictConnection and HTTPProtocol) as every production worker, without
gunicorn's processes: one HTTP implementation, one set of limits (request line 414, head 431, bare
LF 400, head deadline, idle keep-alive, connections per address, send deadline, TLS). It replaced a
server on the standard library's http.server, which parsed a GET's body as a second request, took
bare LF line endings and gave a thread to every silent connection.

``make_server`` returns a bound server whose ``serve_forever`` runs in the calling thread (tests
and ``store-scp --http-port`` run it in a thread of their own; ``shutdown`` stops it from another).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading

from pyjpip.transport.asgi import HEAD_SECONDS, PER_ADDRESS_CONNECTIONS, asgi_app, uvicorn_settings
from pyjpip.transport.site import (CORSPolicy, Limits, Site, make_site, CONTENT_TYPES, JPIP_PATH,  # noqa: F401
                                   EXPOSED_HEADERS)
from pyjpip.transport.tls import HSTS_SECONDS, server_context

log = logging.getLogger(__name__)

#: Seconds a stopping server waits for responses under way before it cancels them.
SHUTDOWN_SECONDS = 5


class DevServer:
    """A uvicorn server on a socket bound at construction (so ``server_address`` is known and a busy
    port fails here), with socketserver's verbs."""

    def __init__(self, app, host: str, port: int, settings: dict):
        import uvicorn

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.create_server((host, port), family=family, backlog=1024)
        self.server_address = self.socket.getsockname()
        self.app = app
        self.server = uvicorn.Server(uvicorn.Config(app, timeout_graceful_shutdown=SHUTDOWN_SECONDS, **settings))
        self.running = threading.Event()
        self.stopped = threading.Event()

    def serve_forever(self) -> None:
        """Serve until ``shutdown`` (or, in the main thread, SIGINT/SIGTERM)."""
        self.running.set()
        try:
            asyncio.run(self.server.serve(sockets=[self.socket]))
        finally:
            self.stopped.set()

    def shutdown(self) -> None:
        """Stop ``serve_forever`` (from another thread) and wait until it has returned."""
        self.server.should_exit = True
        if self.running.is_set():
            self.stopped.wait()

    def server_close(self) -> None:
        self.socket.close()


def make_server(static_root: str | None = None, host: str = "127.0.0.1", port: int = 8000,
                jpip_root: str | None = None, cache_dir: str | None = None, database_url: str | None = None,
                proxies: dict[str, str] | None = None, *, max_connections: int = 1024,
                idle_seconds: float = 60.0, head_seconds: float = HEAD_SECONDS,
                max_connections_per_client: int = PER_ADDRESS_CONNECTIONS, trusted_proxies=(),
                certfile: str | None = None, keyfile: str | None = None, hsts_seconds: int = HSTS_SECONDS,
                **site_options) -> DevServer:
    """A bound, not yet running server; call ``serve_forever`` (the caller owns the thread). With
    ``certfile`` (and ``keyfile``), HTTPS only (pyjpip.transport.tls)."""
    tls = server_context(certfile, keyfile) if certfile else None
    site = make_site(static_root, jpip_root, cache_dir=cache_dir, database_url=database_url, proxies=proxies,
                     **site_options)
    settings = uvicorn_settings(idle_seconds=idle_seconds, max_connections=max_connections, head_seconds=head_seconds,
                                per_address=max_connections_per_client, trusted=trusted_proxies, tls=tls,
                                hsts_seconds=hsts_seconds)
    # HSTS only where this server ends TLS itself (behind a proxy that does, the proxy sends it).
    app = asgi_app(site, send_seconds=idle_seconds, hsts_seconds=hsts_seconds if tls else 0, trusted=trusted_proxies)
    return DevServer(app, host, port, settings)
