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
import ipaddress
import logging
import os
import socket
from concurrent.futures import ThreadPoolExecutor

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn_worker import UvicornH11Worker

from pyjpip.response import Response, close_body, error_response, status_line
from pyjpip.transport.site import CORSPolicy, Site, make_site
from pyjpip.transport.tls import HSTS_SECONDS, hsts_headers, server_context

log = logging.getLogger(__name__)

#: A request line longer than this is answered 414, a head (line and fields) longer than HEAD_BYTES 431.
REQUEST_LINE_BYTES = 8190
HEAD_BYTES = 65536
HEADER_FIELDS = 100
#: A connection that has not sent a whole request head this long after opening, or after the first
#: byte of its next request, is closed (an idle kept-alive connection waits for the keep-alive time).
HEAD_SECONDS = 10.0
#: Connections one address may hold at once (per process); a trusted proxy's are not counted.
PER_ADDRESS_CONNECTIONS = 64
SERVER = "pyjpip"


class _Headers:
    """Request headers by name, case-insensitive, as the Site reads them."""

    def __init__(self, raw: list[tuple[bytes, bytes]]):
        self.values: dict[str, str] = {}
        for name, value in raw:
            self.values.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))

    def get(self, name: str, default=None):
        return self.values.get(name.lower(), default)


def asgi_app(site: Site, *, send_seconds: float = 60.0, threads: int = 32, hsts_seconds: int = HSTS_SECONDS,
             trusted=()):
    """The ASGI application answering with ``site``. ``threads`` bound the requests computing at
    once (a request waiting for its channel's turn holds one). Answers over TLS carry
    Strict-Transport-Security with ``hsts_seconds`` (0: none). The Site gets the TCP peer as
    ``peer`` and, as ``client``, the address a ``trusted`` proxy's X-Forwarded-For names (else the peer)."""
    hsts = hsts_headers(hsts_seconds)
    trusted = trusted_networks(trusted)
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
            peer = scope["client"][0] if scope.get("client") else None
            client = forwarded_client(peer, headers.get("X-Forwarded-For"), trusted)
            response = await loop.run_in_executor(executor, site.handle, method, path, query, headers,
                                                  lambda n: body[:n], peer, client)
        if scope.get("scheme") == "https":
            response.headers.extend(hsts)
        gone = None
        try:
            # One deadline, moved on whenever the client has taken a piece (asyncio.timeout: no task
            # and no timer per send, as wait_for made).
            async with asyncio.timeout(send_seconds) as deadline:
                await send(_start(response))
                chunks = iter(response.body)
                if isinstance(chunks, list_iterator):  # made ahead (errors, cached answers): sent in one piece
                    body = b"" if method == "HEAD" else b"".join(chunks)
                    await send({"type": "http.response.body", "body": body, "more_body": False})
                    return
                gone = asyncio.create_task(_disconnected(receive))
                while method != "HEAD" and not gone.done():
                    # Each chunk is produced in the pool, and only when the client has taken the last one.
                    chunk = await loop.run_in_executor(executor, next, chunks, None)
                    if chunk is None:
                        break
                    if chunk:
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                        deadline.reschedule(loop.time() + send_seconds)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except TimeoutError:
            log.info("%s %s: the client took nothing for %.0f s; dropped", method, scope["path"][:200], send_seconds)
            abort = scope.get("pyjpip.abort")  # closing would wait for the client to take what is queued
            if abort is not None:
                abort()
        finally:
            if gone is not None:
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


class StrictConnection(h11.Connection):
    """h11's server side, stricter where front ends and back ends must not disagree (RFC 9112 2.2,
    11.2): before h11 reads a request head, the head is checked here: CRLF line endings only (a bare
    LF is 400: h11, as RFC 9112 allows, takes it), a request line of at most REQUEST_LINE_BYTES (414),
    a head of at most HEAD_BYTES (431). Checked on what h11 holds unread, so a request pipelined
    behind another is checked too. ``refusal`` says why the last head was refused."""

    refusal: tuple[int, str] | None = None

    def next_event(self):
        if self.their_state is h11.IDLE:
            data = self.trailing_data[0]
            problem = head_problem(data) if data else None
            if problem is not None:
                self.refusal = problem
                raise h11.RemoteProtocolError(problem[1], error_status_hint=problem[0])
        return super().next_event()


def head_problem(data: bytes) -> tuple[int, str] | None:
    """Why the start of ``data`` (a request head, whole or in part) is refused, or None."""
    line = data.find(b"\n")
    if (line < 0 and len(data) > REQUEST_LINE_BYTES + 2) or line > REQUEST_LINE_BYTES + 2:
        return 414, f"a request line of over {REQUEST_LINE_BYTES} bytes; send long JPIP requests by POST"
    end = data.find(b"\r\n\r\n")
    head = data[:end + 2] if end >= 0 else data
    if head.count(b"\n") != head.count(b"\r\n"):
        return 400, "a line of the request head ends in a bare LF; HTTP/1.1 lines end in CRLF (RFC 9112 2.2)"
    if (end < 0 and len(data) > HEAD_BYTES) or end > HEAD_BYTES:
        return 431, f"a request head of over {HEAD_BYTES} bytes"
    return None


class HTTPProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol (h11) with the limits a connection must keep: its request head's
    size and syntax (StrictConnection: 400/414/431, said in words), the time the head may take to
    arrive (a silent or trickling connection is closed), and how many connections one address may
    hold (``per_address``; beyond, 503 and closed at once, so one host's silent or slow sockets
    cannot take every connection). Addresses in ``trusted`` (the reverse proxy, which keeps its
    own per-client limits) are not counted; their X-Forwarded-For names the client. Configured by
    subclassing (``configured``): one class per server, its counts its own."""

    head_seconds = HEAD_SECONDS
    per_address = PER_ADDRESS_CONNECTIONS
    trusted: tuple = ()
    hsts_seconds = 0
    open_by_address: dict[str, int] = {}

    @classmethod
    def configured(cls, *, head_seconds: float = HEAD_SECONDS, per_address: int = PER_ADDRESS_CONNECTIONS,
                   trusted=(), hsts_seconds: int = 0) -> type["HTTPProtocol"]:
        return type("HTTPProtocol", (cls,), {"head_seconds": head_seconds, "per_address": per_address,
                                              "trusted": trusted_networks(trusted), "hsts_seconds": hsts_seconds,
                                              "open_by_address": {}})

    def __init__(self, config, server_state, app_state, _loop=None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.conn = StrictConnection(h11.SERVER, config.h11_max_incomplete_event_size or h11.DEFAULT_MAX_INCOMPLETE_EVENT_SIZE)
        self.counted = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self.head_deadline = None
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # Headers and body go out as separate writes: without this, Nagle's algorithm holds the
            # body until the client's delayed ACK (40 ms a request on Linux). asyncio sets it only on
            # sockets made with proto=IPPROTO_TCP, which neither gunicorn's nor create_server's are.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        address = self.client[0] if self.client else None
        if address is not None and not is_trusted(address, self.trusted):
            held = self.open_by_address.get(address, 0)
            if held >= self.per_address:
                self.logger.warning("%s: refused, it holds %d connections", address, held)
                return self._refuse(503, f"{held} connections from {address} are open, this server's limit per "
                                         "address; close some and try again", [("Retry-After", "1")])
            self.open_by_address[address] = held + 1
            self.counted = address
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
        if self.conn.their_state is h11.IDLE and self.head_deadline is None:
            self._expect_head()  # a new request on a kept-alive connection: its head in time too
        super().data_received(data)
        if self.cycle is not None:  # the app (its task not yet run) may cut a stalled client off at once
            self.cycle.scope.setdefault("pyjpip.abort", self.transport.abort)
        if self.conn.their_state is not h11.IDLE and self.head_deadline is not None:  # a whole head has arrived
            self.head_deadline.cancel()
            self.head_deadline = None

    def send_400_response(self, msg: str) -> None:
        refusal = self.conn.refusal or (400, f"not an HTTP/1.1 request: {msg}")
        self._refuse(*refusal)

    def connection_lost(self, exc) -> None:
        if self.head_deadline is not None:
            self.head_deadline.cancel()
            self.head_deadline = None
        if self.counted is not None:
            left = self.open_by_address.pop(self.counted) - 1
            if left:
                self.open_by_address[self.counted] = left
            self.counted = None
        super().connection_lost(exc)

    def _refuse(self, status: int, message: str, headers=()) -> None:
        body = (message + "\n").encode()
        extra = [*headers, ("X-Content-Type-Options", "nosniff")]
        if self.scheme == "https":
            extra += hsts_headers(self.hsts_seconds)
        self.transport.write(f"HTTP/1.1 {status_line(status)}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                             f"Content-Length: {len(body)}\r\nConnection: close\r\nServer: {SERVER}\r\n".encode()
                             + "".join(f"{name}: {value}\r\n" for name, value in extra).encode() + b"\r\n" + body)
        self.transport.close()


def trusted_networks(addresses) -> tuple:
    """Addresses or networks (``10.0.0.5``, ``10.0.0.0/24``, ``*``) as ip_network objects ('*': all)."""
    networks = []
    for item in addresses:
        item = item.strip()
        if item == "*":
            networks.append("*")
        elif item:
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(f"trusted proxy {item!r} is not an IP address or network") from None
    return tuple(networks)


def forwarded_client(peer: str | None, forwarded_for: str | None, trusted: tuple) -> str | None:
    """The client's address: ``peer``, unless ``peer`` is a trusted proxy that sent X-Forwarded-For;
    then the last address in it that is not a trusted proxy (each proxy appends the peer it saw, so
    what stands left of the first untrusted entry may be the client's own invention)."""
    if not forwarded_for or peer is None or not is_trusted(peer, trusted):
        return peer
    hops = [hop.strip() for hop in forwarded_for[:1000].split(",")]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer  # not an address list pyjpip's proxy writes: believe none of it
        if not is_trusted(hop, trusted):
            return hop
    return hops[0]


def is_trusted(address: str, networks: tuple) -> bool:
    if not networks:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(n == "*" or ip in n for n in networks)


def uvicorn_settings(*, idle_seconds: float, max_connections: int, head_seconds: float = HEAD_SECONDS,
                     per_address: int = PER_ADDRESS_CONNECTIONS, trusted=(), tls=None, hsts_seconds: int = 0) -> dict:
    """uvicorn's Config keywords for pyjpip's HTTP layer, the same for the dev server and every
    production worker: h11 through StrictConnection, the limits above, proxy headers only from
    ``trusted`` addresses, TLS from ``tls`` (an ssl.SSLContext made by pyjpip.transport.tls)."""
    settings = {"loop": "asyncio", "ws": "none", "lifespan": "on", "server_header": False, "access_log": False,
                "log_config": None, "h11_max_incomplete_event_size": HEAD_BYTES + 1024,
                "http": HTTPProtocol.configured(head_seconds=head_seconds, per_address=per_address, trusted=trusted,
                                                hsts_seconds=hsts_seconds if tls is not None else 0),
                "timeout_keep_alive": idle_seconds, "limit_concurrency": max_connections,
                "proxy_headers": False}  # X-Forwarded-For is read by the app (forwarded_client): the peer stays known
    if tls is not None:
        settings["ssl_context_factory"] = lambda config, default: tls
    return settings


class Worker(UvicornH11Worker):
    """A gunicorn worker: uvicorn's asyncio server with HTTPProtocol. gunicorn's worker_connections
    caps the connections a worker holds (beyond it, requests are answered 503), keepalive is the
    idle keep-alive time, forwarded_allow_ips the trusted proxies, certfile/keyfile TLS (with
    pyjpip's context, pyjpip.transport.tls). PYJPIP_HEAD_SECONDS, PYJPIP_MAX_CONNECTIONS_PER_CLIENT
    and PYJPIP_HSTS_SECONDS set the rest (``pyjpip serve`` sets them from its options)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        cfg = self.cfg
        tls = server_context(cfg.certfile, cfg.keyfile) if cfg.is_ssl else None
        settings = uvicorn_settings(
            idle_seconds=cfg.keepalive, max_connections=cfg.worker_connections,
            head_seconds=float(os.environ.get("PYJPIP_HEAD_SECONDS", HEAD_SECONDS)),
            per_address=int(os.environ.get("PYJPIP_MAX_CONNECTIONS_PER_CLIENT", PER_ADDRESS_CONNECTIONS)),
            trusted=[a for a in cfg.forwarded_allow_ips if a], tls=tls,
            hsts_seconds=int(os.environ.get("PYJPIP_HSTS_SECONDS", HSTS_SECONDS)))
        settings.pop("log_config")  # gunicorn's logging stays
        # The app (made in the worker, pyjpip serve's or app_from_environment's) reads the same list.
        os.environ.setdefault("PYJPIP_TRUSTED_PROXIES", ",".join(a for a in cfg.forwarded_allow_ips if a))
        for name, value in settings.items():
            if name == "ssl_context_factory" or hasattr(self.config, name):
                setattr(self.config, name, value)


def run_gunicorn(make, host: str, port: int, workers: int, *, idle_seconds: float = 60.0,
                 max_connections: int = 1024, head_seconds: float = HEAD_SECONDS,
                 per_address: int = PER_ADDRESS_CONNECTIONS, trusted=(), certfile: str | None = None,
                 keyfile: str | None = None, hsts_seconds: int = HSTS_SECONDS, on_ready=None) -> None:
    """Serve the Site ``make()`` builds (once per worker, after the fork: no file, lock or database
    connection is shared by accident); returns when gunicorn stops (SIGTERM, SIGINT)."""
    from gunicorn.app.base import BaseApplication

    if certfile:
        server_context(certfile, keyfile)  # a wrong certificate stops here, before any worker starts
    trusted_networks(trusted)
    os.environ.update(PYJPIP_HEAD_SECONDS=str(head_seconds), PYJPIP_MAX_CONNECTIONS_PER_CLIENT=str(per_address),
                      PYJPIP_HSTS_SECONDS=str(hsts_seconds))  # read by each worker (Worker.__init__)

    class Application(BaseApplication):
        def load_config(self):
            settings = {"bind": f"{host}:{port}", "workers": workers, "worker_class": Worker,
                        "keepalive": int(max(idle_seconds, 1)), "worker_connections": max_connections,
                        "timeout": 60, "graceful_timeout": 10, "accesslog": None, "control_socket_disable": True,
                        "forwarded_allow_ips": ",".join(trusted), "certfile": certfile, "keyfile": keyfile}
            if on_ready is not None:
                settings["when_ready"] = lambda arbiter: on_ready(arbiter.LISTENERS[0].sock.getsockname())
            for key, value in settings.items():
                self.cfg.set(key, value)

        def load(self):
            # HSTS only where the workers end TLS themselves (behind a proxy that does, it sends it).
            return asgi_app(make(), send_seconds=idle_seconds, hsts_seconds=hsts_seconds if certfile else 0,
                            trusted=trusted)

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
                     viewer=_viewer_from_environment(),
                     session_limit=int(os.environ.get("PYJPIP_MAX_SESSIONS", "256")),
                     client_session_limit=int(os.environ.get("PYJPIP_MAX_SESSIONS_PER_CLIENT", "32")))
    return asgi_app(site, send_seconds=float(os.environ.get("PYJPIP_IDLE_SECONDS", "60")),
                    hsts_seconds=int(os.environ.get("PYJPIP_HSTS_SECONDS", HSTS_SECONDS)),
                    trusted=list(access.trusted_proxies))


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
