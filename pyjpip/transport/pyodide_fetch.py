"""HTTP for Python running under Pyodide, through the browser's (or Node's) fetch.

Bodies are read as a stream, so a JPIP client gets bytes while the response is still arriving.
fetch is called directly rather than through pyodide.http.pyfetch: that module's import (its
package loader, tarfile, zipfile...) took ~30 ms before a page's first request.

Every request passes FetchPolicy (configured by the page's worker from /viewer-config.json): only the
viewer's own origin and its configured pixel origins, no redirect followed, the bearer token only
where it is meant to go.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from pyjpip.errors import RedirectRefusedError, TransportError, UntrustedURLError
from pyjpip.jpip.client import HTTPRequest, JPIPClient, ResponseSummary, ViewWindow, fetch_window_async
from pyjpip.jpip.viewing import Superseded

log = logging.getLogger(__name__)

#: The fetch was abandoned on purpose (a newer view replaced it): not a failure to retry.
Cancelled = Superseded
_closing: set = set()  # cclose requests in flight, kept referenced until they finish


def _origin_of(url: str) -> str | None:
    """The origin (RFC 6454) a URL is fetched from, as a browser serialises it, or None."""
    from pyjpip.transport.viewer_config import origin

    parts = urlsplit(url)
    try:
        return origin(f"{parts.scheme}://{parts.netloc}")
    except ValueError:
        return None


@dataclass(frozen=True)
class FetchPolicy:
    """Where a page's Python may fetch, and where its bearer token goes: the one place every request
    of this transport passes (web/fetch-policy.js is the page's and workers' JavaScript side, with
    the same rule). ``origin`` is the viewer's own; ``others`` the configured pixel (and source)
    origins (pyjpip.transport.viewer_config); the token goes to the own origin and ``token_origins``."""

    origin: str
    others: frozenset = frozenset()
    token: str | None = None
    token_origins: frozenset = frozenset()

    def check(self, url: str) -> str:
        """The URL's origin, or UntrustedURLError (kind "refused") before any request is made."""
        where = _origin_of(url)
        if where is None or (where != self.origin and where not in self.others):
            shown = url if len(url) <= 120 else url[:120] + "..."
            raise PixelsNotListed(url, f"pixels at {shown} are not on this viewer's list of pixel servers "
                                       f"(its own site {self.origin}"
                                       f"{', ' + ', '.join(sorted(self.others)) if self.others else ''})")
        return where

    def options(self, url: str, method: str, headers: dict | None, body) -> dict:
        """fetch's init: redirects not followed (a 3xx is refused: RFC 9110 15.4 lets it lead anywhere),
        cookies only to the own origin, the token only where it is meant to go."""
        where = self.check(url)
        headers = dict(headers or {})
        if self.token and (where == self.origin or where in self.token_origins):
            headers["Authorization"] = f"Bearer {self.token}"
        options = {"method": method, "headers": headers, "redirect": "manual", "referrerPolicy": "no-referrer",
                   "credentials": "same-origin" if where == self.origin else "omit"}
        if body is not None:
            options["body"] = body
        return options


class PixelsNotListed(UntrustedURLError):
    """A URL outside the viewer's own site and its configured pixel servers: never fetched."""

    def __init__(self, url: str, message: str):
        self.url, self.reason = url, message
        TransportError.__init__(self, message)


#: Set by the page's worker (configure) before its first request. None outside a page (Node, tests
#: of the client alone): any origin, redirects still refused, no token.
_policy: FetchPolicy | None = None


def configure(origin: str, others=(), token: str | None = None, token_origins=()) -> None:
    """The viewer's fetch policy: its own origin, the other origins it may fetch, its token."""
    global _policy
    to_py = (lambda v: v.to_py() if hasattr(v, "to_py") else v)
    _policy = FetchPolicy(origin, frozenset(to_py(others) or ()), token or None, frozenset(to_py(token_origins) or ()))
    log.info("fetches limited to %s and %s", origin, sorted(_policy.others) or "no other origin")


def set_token(token: str | None) -> None:
    """A new (refreshed) access token, or None after sign-out."""
    global _policy
    if _policy is not None:
        _policy = replace(_policy, token=token or None)


def policy() -> FetchPolicy | None:
    return _policy


async def _fetch(url: str, method: str = "GET", headers: dict | None = None, body: str | None = None):
    """The browser's fetch (a JavaScript Response) under the page's FetchPolicy; a refused URL raises
    PixelsNotListed with no request made, a redirect RedirectRefusedError; a network failure raises
    whatever fetch rejects with."""
    import js  # only importable under Pyodide
    from pyodide.ffi import to_js

    if _policy is not None:
        options = _policy.options(url, method, headers, body)
    else:
        options = {"method": method, "headers": headers or {}, "redirect": "manual"}
        if body is not None:
            options["body"] = body
    response = await js.fetch(url, to_js(options, dict_converter=js.Object.fromEntries))
    if response.type == "opaqueredirect" or 300 <= response.status < 400:
        # The browser hides an opaque redirect's status and Location (Fetch standard 4.3): say what is known.
        location = None if response.type == "opaqueredirect" else response.headers.get("Location")
        raise RedirectRefusedError(url, response.status or 300, location)
    return response


async def fetch_bytes(url: str) -> bytes:
    """GET ``url`` and return the body; any network failure or non-2xx status is a TransportError."""
    try:
        response = await _fetch(url)
    except TransportError:
        raise
    except Exception as exc:  # fetch rejects with a JS TypeError on network failure
        raise TransportError(f"GET {url} failed: {exc}") from exc
    if response.status in (401, 403):
        from pyjpip.browser import refused_access

        raise refused_access(url, response.status)
    if not response.ok:
        raise TransportError(f"GET {url}: HTTP {response.status} {response.statusText}".rstrip())
    try:
        body = (await response.arrayBuffer()).to_bytes()
    except Exception as exc:
        raise TransportError(f"GET {url}: the body broke off ({exc})") from exc
    log.debug("GET %s: %d bytes", url, len(body))
    return body


async def send(request: HTTPRequest, client: JPIPClient, on_bytes=None) -> ResponseSummary:
    """Send one JPIP request with fetch and stream its body into the client; ``on_bytes(events)``
    is called as each piece arrives (a viewer repaints from there)."""
    body = None if request.body is None else request.body.decode("latin-1")
    try:
        response = await _fetch(request.url, request.method, request.headers, body)
    except TransportError:
        raise  # refused: not a connection to try again
    except Exception as exc:
        raise ConnectionError(f"{request.method} {request.url[:200]}: {exc}") from None
    headers = {str(name): str(value) for name, value in response.headers.entries()}
    summary = client.receive_headers(response.status, headers)
    if response.status != 200:
        summary.message = await response.text()
        return summary
    reader = response.body.getReader()
    try:
        while True:
            chunk = await reader.read()
            if chunk.done:
                break
            events = client.receive_body(chunk.value.to_bytes())
            if on_bytes is not None and events:
                on_bytes(events)
    except Superseded:
        await reader.cancel()
        close = client.abandon()
        if close is not None:  # tell the server the old channel is done with, without waiting for it
            task = asyncio.ensure_future(_quietly(_fetch(close.url)))
            _closing.add(task)
            task.add_done_callback(_closing.discard)
        raise
    except Exception as exc:
        client.connection_lost()
        raise ConnectionError(f"the response to {request.url[:200]} broke off: {exc}") from None
    return client.end_of_body()


async def _quietly(awaitable) -> None:
    try:
        await awaitable
    except Exception as exc:  # the channel is abandoned either way
        log.debug("cclose failed: %s", exc)


async def fetch_window(client: JPIPClient, window: ViewWindow, maximum_requests: int = 10000, on_bytes=None) -> int:
    """pyjpip.jpip.client.fetch_window for Pyodide: ask until the window is complete."""
    return await fetch_window_async(client, window, send, on_bytes, maximum_requests)
