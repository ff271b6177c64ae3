"""JPIP without a network: a JPIPServer core answering in the same process.

Two uses. In the browser, an ordinary DICOM object (its JPEG 2000 frames fetched whole) is served
from Pyodide's in-memory file system to the very JPIP client that streams hollow objects, so zoom,
pan and region decoding work the same for both. In tests, it is a transport that can pause between
pieces of body, so a viewer's windows can overlap.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import unquote, urlsplit

from pyjpip.jpip.server import JPIPServer
from pyjpip.jpip.viewing import Superseded


class LocalTransport:
    """An async transport (``send(request, client, on_bytes)``) onto a JPIPServer core."""

    def __init__(self, server: JPIPServer, piece: int = 1 << 16):
        self.server = server
        self.piece = piece
        self.closed = 0  # channels closed because a window was abandoned

    async def __call__(self, http_request, client, on_bytes=None):
        parts = urlsplit(http_request.url)
        query = http_request.body.decode("latin-1") if http_request.method == "POST" else parts.query
        prefix = f"/{self.server.channel_path}/"
        target = unquote(parts.path[len(prefix):]) if parts.path.startswith(prefix) else None
        response = self.server.handle(http_request.method, query, time.monotonic(), target)
        summary = client.receive_headers(response.status, dict(response.headers))
        if response.status != 200:
            summary.message = b"".join(response.body).decode("utf-8", "replace")
            return summary
        try:
            for chunk in response.body:
                for start in range(0, len(chunk), self.piece):
                    events = client.receive_body(chunk[start : start + self.piece])
                    if events and on_bytes is not None:
                        on_bytes(events)
                    await asyncio.sleep(0)  # let a newer window, or the page, have a turn
        except Superseded:
            getattr(response.body, "close", lambda: None)()
            close = client.abandon()
            if close is not None:
                self.closed += 1
                self.server.handle("GET", urlsplit(close.url).query, time.monotonic())
            raise
        return client.end_of_body()
