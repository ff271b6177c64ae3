"""HTTP for Python running under Pyodide, through the browser's (or Node's) fetch."""

from __future__ import annotations

import logging

from pyjpip.errors import TransportError

log = logging.getLogger(__name__)


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
