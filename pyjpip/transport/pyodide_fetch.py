"""HTTP for Python running under Pyodide, through the browser's (or Node's) fetch.

Bodies are read as a stream, so a JPIP client gets bytes while the response is still arriving.
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


async def fetch_bytes(url: str) -> bytes:
    """GET ``url`` and return the body; any network failure or non-2xx status is a TransportError."""
    from pyodide.http import pyfetch  # only importable under Pyodide

    try:
        response = await pyfetch(url)
    except Exception as exc:  # fetch rejects with a JS TypeError on network failure
        raise TransportError(f"GET {url} failed: {exc}") from exc
    if not response.ok:
        raise TransportError(f"GET {url}: HTTP {response.status} {response.status_text}".rstrip())
    body = await response.bytes()
    log.debug("GET %s: %d bytes", url, len(body))
    return body


async def send(request: HTTPRequest, client: JPIPClient, on_bytes=None) -> ResponseSummary:
    """Send one JPIP request with fetch and stream its body into the client; ``on_bytes(events)``
    is called as each piece arrives (a viewer repaints from there)."""
    from pyodide.http import pyfetch

    options = {"method": request.method, "headers": request.headers}
    if request.body is not None:
        options["body"] = request.body.decode("latin-1")
    try:
        response = await pyfetch(request.url, **options)
    except Exception as exc:
        raise ConnectionError(f"{request.method} {request.url[:200]}: {exc}") from None
    summary = client.receive_headers(response.status, dict(response.headers))
    if response.status != 200:
        summary.message = await response.string()
        return summary
    reader = response.js_response.body.getReader()
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
            task = asyncio.ensure_future(_quietly(pyfetch(close.url)))
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
