"""Test helpers for JPIP: a minimal, independent receiver of JPP-streams (not pyjpip's client)."""

from __future__ import annotations

import time

from pyjpip.jpip.messages import EndOfResponse, JPPStreamParser
from pyjpip.jpip.server import JPIPServer


class Receiver:
    """Keeps every data-bin's bytes exactly; a message that leaves a gap or rewrites bytes fails."""

    def __init__(self):
        self.bins: dict[tuple[int, int, int], bytearray] = {}
        self.complete: set[tuple[int, int, int]] = set()
        self.received = 0  # body bytes of messages
        self.duplicates = 0  # bytes received more than once

    def feed_body(self, body: bytes) -> EndOfResponse:
        parser = JPPStreamParser()
        events = parser.feed(body)
        parser.finish()
        assert isinstance(events[-1], EndOfResponse), "a response ends with EOR"
        for message in events[:-1]:
            key = (message.bin_class, message.codestream, message.identifier)
            held = self.bins.setdefault(key, bytearray())
            assert message.offset <= len(held), f"gap in bin {key}: message at {message.offset}, held {len(held)}"
            overlap = len(held) - message.offset
            if overlap > 0:
                assert held[message.offset : message.offset + len(message.data)] == message.data[:overlap]
                self.duplicates += min(overlap, len(message.data))
            held[message.offset : message.offset + len(message.data)] = message.data
            self.received += len(message.data)
            if message.complete:
                self.complete.add(key)
        return events[-1]

    def codestream_bins(self, codestream: int = 0):
        main = bytes(self.bins[(6, codestream, 0)])
        tile_headers = {i: bytes(b) for (c, n, i), b in self.bins.items() if c == 2 and n == codestream
                        and (c, n, i) in self.complete}
        precincts = {i: bytes(b) for (c, n, i), b in self.bins.items() if c == 0 and n == codestream}
        return main, tile_headers, precincts

    def model(self, codestream: int = 0) -> str:
        """model= statements for everything held (what a stateless client sends)."""
        items = []
        for (c, n, i), data in sorted(self.bins.items()):
            name = {6: "Hm", 2: f"H{i}", 0: f"P{i}", 8: f"M{i}"}[c]
            if (c, n, i) in self.complete:
                items.append(name)
            elif data:
                items.append(f"{name}:{len(data)}")
        return ",".join(items)


def request(server: JPIPServer, query: str):
    response = server.handle("GET", query, time.monotonic())
    body = b"".join(response.body)
    if response.length is not None:
        assert response.length == len(body), "Content-Length must be exact"
    return response, body


class InProcessTransport:
    """A transport for pyjpip's client that calls a JPIPServer core directly, in small pieces,
    and can misbehave: drop the connection after ``fail_after`` body bytes (once)."""

    def __init__(self, server: JPIPServer, piece: int = 997, fail_after: int | None = None):
        self.server = server
        self.piece = piece
        self.fail_after = fail_after
        self.methods: list[str] = []

    def __call__(self, http_request, client):
        from urllib.parse import unquote, urlsplit

        parts = urlsplit(http_request.url)
        self.methods.append(http_request.method)
        query = http_request.body if http_request.method == "POST" else parts.query
        path_target = unquote(parts.path[len("/jpip/"):]) if parts.path.startswith("/jpip/") else None
        response = self.server.handle(http_request.method, query, time.monotonic(), path_target)
        summary = client.receive_headers(response.status, dict(response.headers))
        if response.status != 200:
            summary.message = b"".join(response.body).decode()
            return summary
        sent = 0
        for chunk in response.body:
            for start in range(0, len(chunk), self.piece):
                piece = chunk[start : start + self.piece]
                if self.fail_after is not None and sent + len(piece) > self.fail_after:
                    client.receive_body(piece[: self.fail_after - sent])
                    self.fail_after = None
                    response.body.close()
                    raise ConnectionError("connection dropped by the test")
                client.receive_body(piece)
                sent += len(piece)
        return client.end_of_body()
