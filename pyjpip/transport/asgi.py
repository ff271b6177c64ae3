"""pyjpip's Site (JPIP, DICOMweb, the built site) as an ASGI application: the production server.

    pyjpip serve ROOT --static static --workers 4 --sessions /shared/sessions

runs gunicorn (one process per core; a worker that dies is replaced) whose workers are uvicorn's
asyncio HTTP/1.1 server (h11) running this app. By hand, configured by PYJPIP_* variables:

    PYJPIP_ROOT=/images gunicorn -w 4 -k pyjpip.transport.asgi.Worker pyjpip.transport.asgi:application

Why an event loop in front and threads behind it: the JPIP core is synchronous Python, so
parallelism comes from processes; what a worker must not do is give a thread to a connection that
is idle, trickles its request or reads its answer slowly. Here a connection costs a coroutine: a
request runs in the worker's thread pool only while it computes, a response chunk is produced only
when the client has taken the one before (back-pressure through the transport's flow control, so
memory stays flat), and a client that takes nothing for ``send_seconds`` is dropped. A request head
must arrive within ``HEAD_SECONDS`` and ``HEAD_BYTES``; idle keep-alive connections close after the
keep-alive time. (gunicorn's threaded WSGI worker gives each new connection a thread for up to 5 s
while it waits for a request: 500 silent connections stalled every other client for minutes.)
"""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn_worker import UvicornH11Worker

from pyjpip.response import Response, close_body, error_response, status_line
from pyjpip.transport.site import CORSPolicy, Site, make_site

log = logging.getLogger(__name__)

#: A request line longer than this is answered 414, a head (line and fields) longer than HEAD_BYTES 431.
REQUEST_LINE_BYTES = 8190
HEAD_BYTES = 65536
HEADER_FIELDS = 100
#: A connection that has not sent a whole request head this long after opening, or after the first
#: byte of its next request, is closed (an idle kept-alive connection waits for the keep-alive time).
HEAD_SECONDS = 10.0
SERVER = "pyjpip"


class _Headers:
    """Request headers by name, case-insensitive, as the Site reads them."""

    def __init__(self, raw: list[tuple[bytes, bytes]]):
        self.values: dict[str, str] = {}
        for name, value in raw:
            self.values.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))

    def get(self, name: str, default=None):
        return self.values.get(name.lower(), default)


def asgi_app(site: Site, *, send_seconds: float = 60.0, threads: int = 32):
    """The ASGI application answering with ``site``. ``threads`` bound the requests computing at
    once (a request waiting for its channel's turn holds one)."""
    executor = ThreadPoolExecutor(threads, thread_name_prefix="pyjpip")
    list_iterator = type(iter([]))

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            return await _lifespan(receive, send, executor)
        if scope["type"] != "http":
            return
        loop = asyncio.get_running_loop()
        method = scope["method"]
        headers = _Headers(scope["headers"])
        if len(scope["headers"]) > HEADER_FIELDS:
            response = _closing(error_response(431, f"{len(scope['headers'])} header fields; "
                                                    f"this server takes {HEADER_FIELDS}"))
        else:
            body = await _request_body(method, headers, receive, site.limits.post)
            path = scope.get("raw_path", b"").decode("latin-1") or scope["path"]
            query = scope["query_string"].decode("latin-1")
            peer = (scope.get("client") or (None,))[0]
            response = await loop.run_in_executor(executor, site.handle, method, path, query, headers,
                                                  lambda n: body[:n], peer)
        gone = asyncio.create_task(_disconnected(receive))
        try:
            await asyncio.wait_for(send(_start(response)), send_seconds)
            chunks = iter(response.body)
            while method != "HEAD" and not gone.done():
                # Bodies made ahead (errors, cached answers) are read here; others produce each
                # chunk in the pool, and only when the client has taken the last one.
                if isinstance(chunks, list_iterator):
                    chunk = next(chunks, None)
                else:
                    chunk = await loop.run_in_executor(executor, next, chunks, None)
                if chunk is None:
                    break
                if chunk:
                    await asyncio.wait_for(send({"type": "http.response.body", "body": chunk, "more_body": True}),
                                           send_seconds)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except TimeoutError:
            log.info("%s %s: the client took nothing for %.0f s; dropped", method, scope["path"][:200], send_seconds)
            abort = scope.get("pyjpip.abort")  # closing would wait for the client to take what is queued
            if abort is not None:
                abort()
        finally:
            gone.cancel()
            close_body(response.body)  # a session's body takes back what did not go out

    app.site = site
    return app


def _start(response: Response) -> dict:
    headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in response.headers]
    headers.append((b"server", SERVER.encode()))
    if response.length is not None and response.status not in (204, 304):
        headers.append((b"content-length", str(response.length).encode()))
    if response.close_connection:
        headers.append((b"connection", b"close"))
    return {"type": "http.response.start", "status": response.status, "headers": headers}


def _closing(response: Response) -> Response:
    response.close_connection = True
    return response


async def _request_body(method: str, headers: _Headers, receive, limit: int) -> bytes:
    """A POST body the Site will read: only one with a Content-Length within the limit (the Site
    refuses the others unread, and the connection closes)."""
    length = headers.get("Content-Length", "")
    if method != "POST" or not length.strip().isdigit() or int(length) > limit:
        return b""
    parts, size = [], 0
    while size <= limit:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        parts.append(message.get("body", b""))
        size += len(parts[-1])
        if not message.get("more_body"):
            break
    return b"".join(parts)


async def _disconnected(receive) -> None:
    """Returns when the client has gone (uvicorn says so once the request body has been read)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _lifespan(receive, send, executor) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            executor.shutdown(wait=False, cancel_futures=True)
            await send({"type": "lifespan.shutdown.complete"})
            return


class HTTPProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with the limits a request head must keep: its size (414/431, said
    in words) and the time it may take to arrive (a silent or trickling connection is closed)."""

    head_seconds = HEAD_SECONDS

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self.head = bytearray()
        self.head_deadline = None
        self._expect_head()

    def _expect_head(self) -> None:
        if self.head_deadline is not None:
            self.head_deadline.cancel()
        self.head_deadline = self.loop.call_later(self.head_seconds, self._head_too_slow)

    def _head_too_slow(self) -> None:
        self.head_deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.logger.info("%s: no request within %.0f s; closed", self.client and self.client[0], self.head_seconds)
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:
            if self.head_deadline is None:  # a new request on a kept-alive connection: its head in time too
                self._expect_head()
            self.head += data
            line = self.head.find(b"\r\n")
            if (line < 0 and len(self.head) > REQUEST_LINE_BYTES) or line > REQUEST_LINE_BYTES:
                return self._refuse(414, f"a request line of over {REQUEST_LINE_BYTES} bytes; "
                                         "send long JPIP requests by POST")
            if len(self.head) > HEAD_BYTES:
                return self._refuse(431, f"a request head of over {HEAD_BYTES} bytes")
        super().data_received(data)
        if self.cycle is not None:  # the app (its task not yet run) may cut a stalled client off at once
            self.cycle.scope.setdefault("pyjpip.abort", self.transport.abort)
        if self.conn.their_state is not h11.IDLE:  # a whole head has arrived
            self.head.clear()
            if self.head_deadline is not None:
                self.head_deadline.cancel()
                self.head_deadline = None

    def connection_lost(self, exc) -> None:
        if self.head_deadline is not None:
            self.head_deadline.cancel()
        super().connection_lost(exc)

    def _refuse(self, status: int, message: str) -> None:
        body = (message + "\n").encode()
        self.transport.write(f"HTTP/1.1 {status_line(status)}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                             f"Content-Length: {len(body)}\r\nConnection: close\r\nServer: {SERVER}\r\n\r\n".encode()
                             + body)
        self.transport.close()


class Worker(UvicornH11Worker):
    """A gunicorn worker: uvicorn's asyncio server with HTTPProtocol; gunicorn's worker_connections
    caps the connections a worker holds (beyond it, requests are answered 503)."""

    CONFIG_KWARGS = {"loop": "asyncio", "http": HTTPProtocol, "server_header": False, "lifespan": "on",
                     "h11_max_incomplete_event_size": HEAD_BYTES + 1024, "access_log": False}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.config.limit_concurrency = self.cfg.worker_connections


def run_gunicorn(make, host: str, port: int, workers: int, *, idle_seconds: float = 60.0,
                 max_connections: int = 1024, head_seconds: float = HEAD_SECONDS, on_ready=None) -> None:
    """Serve the Site ``make()`` builds (once per worker, after the fork: no file, lock or database
    connection is shared by accident); returns when gunicorn stops (SIGTERM, SIGINT)."""
    from gunicorn.app.base import BaseApplication

    protocol = type("HTTPProtocol", (HTTPProtocol,), {"head_seconds": head_seconds})
    worker = type("Worker", (Worker,), {"CONFIG_KWARGS": {**Worker.CONFIG_KWARGS, "http": protocol}})

    class Application(BaseApplication):
        def load_config(self):
            settings = {"bind": f"{host}:{port}", "workers": workers, "worker_class": worker,
                        "keepalive": int(max(idle_seconds, 1)), "worker_connections": max_connections,
                        "timeout": 60, "graceful_timeout": 10, "accesslog": None, "control_socket_disable": True}
            if on_ready is not None:
                settings["when_ready"] = lambda arbiter: on_ready(arbiter.LISTENERS[0].sock.getsockname())
            for key, value in settings.items():
                self.cfg.set(key, value)

        def load(self):
            return asgi_app(make(), send_seconds=idle_seconds)

    Application().run()


def _origins(name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = os.environ.get(name)
    return default if value is None else tuple(o.strip() for o in value.split(",") if o.strip())


def app_from_environment():
    """The app as the environment configures it (the settings of `pyjpip serve`)."""
    root, static = os.environ.get("PYJPIP_ROOT") or None, os.environ.get("PYJPIP_STATIC") or None
    if not root and not static:
        raise RuntimeError("set PYJPIP_ROOT to the folder of JPEG 2000 files (and PYJPIP_STATIC to the built site)")
    proxies = dict(item.split("=", 1) for item in os.environ.get("PYJPIP_PROXY", "").split() if "=" in item)
    defaults = CORSPolicy()
    cors = CORSPolicy(_origins("PYJPIP_CORS_JPIP", defaults.jpip), _origins("PYJPIP_CORS_DICOMWEB", defaults.dicomweb))
    from pyjpip.security.access import AccessSettings

    access = AccessSettings.from_environment()
    site = make_site(static, root, cache_dir=os.environ.get("PYJPIP_CACHE") or None,
                     database_url=os.environ.get("PYJPIP_DB") or None, proxies=proxies,
                     sessions_dir=os.environ.get("PYJPIP_SESSIONS") or None, cors=cors,
                     channel_path=os.environ.get("PYJPIP_CHANNEL_PATH", "jpip"), access=access,
                     viewer=_viewer_from_environment())
    return asgi_app(site, send_seconds=float(os.environ.get("PYJPIP_IDLE_SECONDS", "60")))


def _viewer_from_environment():
    """The viewer's settings: PYJPIP_VIEWER_PIXEL_ORIGINS, PYJPIP_VIEWER_TOKEN_ORIGINS,
    PYJPIP_VIEWER_ALLOW_ORIGINS, PYJPIP_EMBED_ORIGINS (comma-separated origins), PYJPIP_OIDC_ISSUER,
    PYJPIP_OIDC_CLIENT_ID, PYJPIP_OIDC_SCOPE, PYJPIP_OIDC_AUDIENCE (as `pyjpip serve`'s options)."""
    from pyjpip.transport.viewer_config import ViewerConfig

    env = os.environ.get
    return ViewerConfig.from_options(_origins("PYJPIP_VIEWER_PIXEL_ORIGINS", ()), _origins("PYJPIP_VIEWER_ALLOW_ORIGINS", ()),
                                     _origins("PYJPIP_EMBED_ORIGINS", ()), _origins("PYJPIP_VIEWER_TOKEN_ORIGINS", ()),
                                     env("PYJPIP_OIDC_ISSUER") or (_single_issuer(env("PYJPIP_AUTH_ISSUER"))
                                                                   if env("PYJPIP_OIDC_CLIENT_ID") else None),
                                     env("PYJPIP_OIDC_CLIENT_ID") or None, env("PYJPIP_OIDC_SCOPE") or "openid",
                                     env("PYJPIP_OIDC_AUDIENCE") or None)


def _single_issuer(value: str | None) -> str | None:
    """The one issuer PYJPIP_AUTH_ISSUER names (the viewer signs in there), or None for none or several."""
    issuers = (value or "").replace(",", " ").split()
    return issuers[0] if len(issuers) == 1 else None


_application = None


async def application(scope, receive, send):
    """The app for ``gunicorn -k pyjpip.transport.asgi.Worker pyjpip.transport.asgi:application``
    (made on first use, in each worker)."""
    global _application
    if _application is None:
        _application = app_from_environment()
    await _application(scope, receive, send)
