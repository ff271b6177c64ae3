"""JPIP over HTTP for CPython: http.client with keep-alive, bodies streamed into the client as they arrive.

Every request URL is checked by a URLPolicy (pyjpip.network.url_policy) before a connection is made,
and a redirect (3xx) is never followed: it is a RedirectRefusedError naming where it pointed.
"""

from __future__ import annotations

import http.client
import logging
from urllib.parse import urlsplit

from pyjpip.errors import RedirectRefusedError
from pyjpip.jpip.client import HTTPRequest, JPIPClient, ResponseSummary
from pyjpip.network.url_policy import DEFAULT_POLICY, URLPolicy

log = logging.getLogger(__name__)

READ_BYTES = 1 << 16


class HTTPTransport:
    """Sends a client's requests; one persistent connection per host, reopened when it breaks.
    ``policy`` says which URLs may be fetched (default: http(s), any host, no credentials)."""

    def __init__(self, timeout: float = 60.0, on_bytes=None, policy: URLPolicy | None = None):
        self.timeout = timeout
        self.policy = policy or DEFAULT_POLICY
        self.on_bytes = on_bytes  # called with each piece of body read (progress; tests cut a response with it)
        self.connections: dict[tuple[str, str], http.client.HTTPConnection] = {}

    def _connection(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        key = (scheme, netloc)
        connection = self.connections.get(key)
        if connection is None:
            kind = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
            connection = self.connections[key] = kind(netloc, timeout=self.timeout)
        return connection

    def __call__(self, request: HTTPRequest, client: JPIPClient) -> ResponseSummary:
        self.policy.check(request.url)  # UntrustedURLError before any connection
        parts = urlsplit(request.url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        for attempt in (1, 2):  # a kept-alive connection the server has closed fails once: reconnect
            connection = self._connection(parts.scheme, parts.netloc)
            try:
                connection.request(request.method, target or "/", body=request.body, headers=request.headers)
                response = connection.getresponse()
                break
            except (http.client.HTTPException, OSError) as error:
                connection.close()
                del self.connections[(parts.scheme, parts.netloc)]
                if attempt == 2:
                    raise ConnectionError(f"{request.method} {request.url[:200]}: {error}") from None
        if 300 <= response.status < 400:
            location = response.getheader("Location")
            connection.close()  # the body is not wanted: the connection goes rather than being drained
            self.connections.pop((parts.scheme, parts.netloc), None)
            raise RedirectRefusedError(request.url, response.status, location)
        summary = client.receive_headers(response.status, dict(response.getheaders()))
        try:
            if response.status != 200:
                summary.message = response.read().decode("utf-8", "replace")
                return summary
            while True:
                data = response.read1(READ_BYTES)
                if not data:
                    break
                client.receive_body(data)
                if self.on_bytes is not None:
                    self.on_bytes(len(data))
            return client.end_of_body()
        except (http.client.HTTPException, OSError, ValueError) as error:
            connection.close()
            self.connections.pop((parts.scheme, parts.netloc), None)
            client.connection_lost()
            raise ConnectionError(f"the response to {request.url[:200]} broke off: {error}") from None

    def close(self) -> None:
        for connection in self.connections.values():
            connection.close()
        self.connections.clear()
