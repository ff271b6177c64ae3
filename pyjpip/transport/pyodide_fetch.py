"""HTTP for Python running under Pyodide, through the browser's (or Node's) fetch.

Bodies are read as a stream, so a JPIP client gets bytes while the response is still arriving.
fetch is called directly rather than through pyodide.http.pyfetch: that module's import (its
package loader, tarfile, zipfile...) took ~30 ms before a page's first request.
"""

from __future__ import annotations

import asyncio
import logging

from pyjpip.errors import TransportError
from pyjpip.jpip.client import HTTPRequest, JPIPClient, ResponseSummary, ViewWindow, fetch_window_async
from pyjpip.jpip.viewing import Superseded

log = logging.getLogger(__name__)

#: The fetch was abandoned on purpose (a newer view replaced it): not a failure to retry.
Cancelled = Superseded
_closing: set = set()  # cclose requests in flight, kept referenced until they finish


async def _fetch(url: str, method: str = "GET", headers: dict | None = None, body: str | None = None):
    """The browser's fetch (a JavaScript Response); a network failure raises whatever fetch rejects with."""
    import js  # only importable under Pyodide
    from pyodide.ffi import to_js

    options = {"method": method, "headers": headers or {}}
    if body is not None:
        options["body"] = body
    return await js.fetch(url, to_js(options, dict_converter=js.Object.fromEntries))


async def fetch_bytes(url: str) -> bytes:
    """GET ``url`` and return the body; any network failure or non-2xx status is a TransportError."""
    try:
        response = await _fetch(url)
    except Exception as exc:  # fetch rejects with a JS TypeError on network failure
        raise TransportError(f"GET {url} failed: {exc}") from exc
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
