"""The JPIP client core (ISO/IEC 15444-9 Annex C seen from the client): sans-IO.

A ``JPIPClient`` is given a target URL (often a DICOM Pixel Data Provider URL, whose query is kept
verbatim and never repeated) and view windows. It says which HTTP request to send next, takes
the response's status, headers and body in pieces of any size, keeps every byte in its cache and
says what happened. A transport (CPython HTTP, Pyodide fetch) moves the bytes; ``fetch_window``
drives one with the usual loop.

Session mode asks for a channel (cnew=http) and follows JPIP-cnew; if none is granted it goes on
statelessly, sending model= from its cache (by POST when the query would be long). A lost channel
(503) or a dropped connection opens a new session that is told, with model=, what is held.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

from pyjpip.errors import PyjpipError
from pyjpip.jpip.client_cache import DataBinCache
from pyjpip.jpip.messages import EndOfResponse, EndOfResponseReason, JPPStreamParser, Message
from pyjpip.jpip.response_headers import read_window_headers

log = logging.getLogger(__name__)

#: Longest query sent by GET; longer ones (big model= statements) go by POST.
MAXIMUM_GET_QUERY = 2000


class JPIPClientError(PyjpipError):
    """The server refused a request or answered something that is not a usable JPIP response."""

    kind = "network"

    def __init__(self, message: str, status: int | None = None):
        self.status = status
        super().__init__(message)


@dataclass(frozen=True)
class ViewWindow:
    """What to look at: a frame size (with rounding), a region of it, components, layers, codestream."""

    fsiz: tuple[int, int] | None = None
    round: str = "round-down"
    roff: tuple[int, int] | None = None
    rsiz: tuple[int, int] | None = None
    comps: str | None = None  # as in the request field, e.g. "0,2-3"
    layers: int | None = None
    stream: int | None = None  # codestream number (DICOM frame n is stream n)

    def fields(self) -> list[tuple[str, str]]:
        out = []
        if self.fsiz is not None:
            fsiz = f"{self.fsiz[0]},{self.fsiz[1]}"
            out.append(("fsiz", fsiz if self.round == "round-down" else f"{fsiz},{self.round}"))
        if self.roff is not None:
            out.append(("roff", f"{self.roff[0]},{self.roff[1]}"))
        if self.rsiz is not None:
            out.append(("rsiz", f"{self.rsiz[0]},{self.rsiz[1]}"))
        if self.comps is not None:
            out.append(("comps", self.comps))
        if self.layers is not None:
            out.append(("layers", str(self.layers)))
        if self.stream is not None:
            out.append(("stream", str(self.stream)))
        return out


@dataclass
class HTTPRequest:
    method: str
    url: str
    body: bytes | None = None
    headers: dict = field(default_factory=dict)


@dataclass
class ResponseSummary:
    """What one response did: bytes it added, its end-of-response reason, whether to ask again."""

    status: int
    new_bytes: int = 0
    reason: int | None = None
    message: str = ""  # the server's words when it refused
    retry: bool = False  # a refusal the client has already worked around: ask again
    answered: ViewWindow | None = None  # the window served, when JPIP-fsiz/roff/rsiz/layers/comps changed it

    @property
    def more(self) -> bool:
        """The window is not finished: ask again (EOR 4 byte limit, 7 response limit, or none)."""
        return self.reason in (EndOfResponseReason.BYTE_LIMIT, EndOfResponseReason.RESPONSE_LIMIT, None) \
            and self.status == 200


class JPIPClient:
    """One client of one target. Not thread-safe; one request at a time."""

    def __init__(self, url: str, *, stateless: bool = False, cache: DataBinCache | None = None,
                 length_limit: int | None = None):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise JPIPClientError(f"{url[:200]}: JPIP needs an http or https URL")
        self.url = url
        self.base = parts
        given = dict(parse_qsl(parts.query, keep_blank_values=True))
        self.given_fields = set(given)
        # A DICOM Pixel Data Provider URL of a multi-frame object names its frame with stream=n.
        self.url_stream = int(given["stream"]) if given.get("stream", "").isdigit() else None
        self.stateless = stateless
        self.cache = cache or DataBinCache()
        self.length_limit = length_limit
        self.cid: str | None = None
        self.channel_path: str | None = None
        self.tid: str | None = None
        self.qid = 0
        self.requests_sent = 0
        self.bytes_received = 0  # message bodies, as they arrive
        self.bytes_new = 0  # of which not already held (a repeat would show as the difference)
        self.body_bytes = 0  # response bodies as sent, message headers and EOR included
        self.codestream_length: int | None = None  # when a pyjpip server says (not part of JPIP)
        self._parser: JPPStreamParser | None = None
        self._summary: ResponseSummary | None = None
        self._reopen_with_model = False
        self._asked: ViewWindow | None = None  # the window of the request in progress
        self._served: tuple[ViewWindow, ViewWindow] | None = None  # (asked, as last served)

    # --- requests -----------------------------------------------------------------------------

    def next_request(self, window: ViewWindow) -> HTTPRequest:
        """The HTTP request that asks for (more of) ``window``."""
        fields: list[tuple[str, str]] = []
        if self.cid is not None:
            fields.append(("cid", self.cid))
            self.qid += 1
            fields.append(("qid", str(self.qid)))
        else:
            if not self.stateless:
                fields.append(("cnew", "http"))
            fields.append(("type", "jpp-stream"))
            if self.tid is not None:
                fields.append(("tid", self.tid))
        fields.extend(window.fields())
        if self.cid is not None and window.stream is None and self.url_stream is not None:
            # The channel binds the target, not the view: a stream named by the URL must be repeated.
            fields.append(("stream", str(self.url_stream)))
        if self.length_limit is not None:
            fields.append(("len", str(self.length_limit)))
        if self.cid is None or self._reopen_with_model:
            model = self.cache.model_statements([self.stream_of(window)])
            if model:
                fields.append(("model", ",".join(model)))
        query = "&".join(f"{name}={quote(value, safe=',:-*[]')}" for name, value in fields
                         if name not in self.given_fields or self.cid is not None)
        if self.cid is not None:  # the channel is bound to the target: the URL's own fields stay out
            path = "/" + self.channel_path.lstrip("/") if self.channel_path else self.base.path
        else:
            path = self.base.path
            query = f"{self.base.query}&{query}" if self.base.query else query
        self._begin()
        self._asked = window
        if len(query) > MAXIMUM_GET_QUERY:
            return HTTPRequest("POST", urlunsplit((self.base.scheme, self.base.netloc, path, "", "")), query.encode(),
                               {"Content-Type": "application/x-www-form-urlencoded"})
        return HTTPRequest("GET", urlunsplit((self.base.scheme, self.base.netloc, path, query, "")))

    def stream_of(self, window: ViewWindow) -> int:
        """The codestream ``window`` looks at: its stream, the URL's, or the first."""
        if window.stream is not None:
            return window.stream
        return self.url_stream if self.url_stream is not None else 0

    def served(self, window: ViewWindow) -> ViewWindow:
        """``window`` as the latest response to it was served: what JPIP-fsiz, JPIP-roff, JPIP-rsiz,
        JPIP-layers and JPIP-comps changed (D.2), else ``window`` itself."""
        if self._served is not None and self._served[0] == window:
            return self._served[1]
        return window

    def close_request(self) -> HTTPRequest | None:
        """The request that closes the session (cclose), if there is one."""
        if self.cid is None:
            return None
        path = "/" + self.channel_path.lstrip("/") if self.channel_path else self.base.path
        url = urlunsplit((self.base.scheme, self.base.netloc, path, f"cid={self.cid}&cclose={self.cid}", ""))
        self.cid = None
        self._begin()
        self._asked = None
        return HTTPRequest("GET", url)

    def _begin(self) -> None:
        self.requests_sent += 1
        self._summary = None

    # --- responses ----------------------------------------------------------------------------

    def receive_headers(self, status: int, headers: dict) -> ResponseSummary:
        headers = {k.lower(): v for k, v in headers.items()}
        summary = self._summary = ResponseSummary(status)
        self._parser = JPPStreamParser()  # every response starts from class 0, codestream 0
        if status == 503 and self.cid is not None:
            log.info("channel %s is gone (503); opening a new session", self.cid)
            self._lose_channel()
            summary.retry = True
            return summary
        if status == 503 and not self.stateless:
            log.info("the server grants no session (503); going on statelessly")
            self.stateless = True
            self._reopen_with_model = False
            summary.retry = True
            return summary
        if status == 202:
            return summary  # superseded by a later request: nothing more comes for this one
        if status != 200:
            return summary
        tid = headers.get("jpip-tid")
        if tid is not None and tid != self.tid:
            if self.tid is not None and tid != "0":
                log.info("target changed (JPIP-tid %s -> %s): cache dropped", self.tid, tid)
                self.cache.clear()
            self.tid = tid
        length = headers.get("pyjpip-codestream-length", "")
        if length.isdigit():
            self.codestream_length = int(length)
        channel = headers.get("jpip-cnew")
        if channel:
            values = dict(item.split("=", 1) for item in channel.split(",") if "=" in item)
            if values.get("transport", "http") == "http" and "cid" in values:
                self.cid = values["cid"]
                self.channel_path = values.get("path")
                self._reopen_with_model = False
        elif self.cid is None and not self.stateless:
            log.info("no channel granted: going on statelessly")
            self.stateless = True
        if self._asked is not None:
            changes = read_window_headers(headers)
            summary.answered = replace(self._asked, **changes) if changes else None
            self._served = (self._asked, summary.answered or self._asked)
        return summary

    def receive_body(self, data: bytes) -> list:
        """Feed response body bytes; returns the messages (and EOR) they completed."""
        if self._summary is None or self._summary.status != 200:
            return []
        self.body_bytes += len(data)
        events = self._parser.feed(data)
        for event in events:
            if isinstance(event, Message):
                new = self.cache.add(event)
                self._summary.new_bytes += new
                self.bytes_new += new
                self.bytes_received += len(event.data)
            elif isinstance(event, EndOfResponse):
                self._summary.reason = event.reason
                if event.reason == EndOfResponseReason.SESSION_LIMIT:
                    self._lose_channel()
        return events

    def end_of_body(self) -> ResponseSummary:
        summary = self._summary
        if summary is not None and summary.status == 200:
            self._parser.finish()
        return summary

    def connection_lost(self) -> None:
        """The body stopped short: what arrived is kept; the next request reopens with a model."""
        if self.cid is not None:
            self._lose_channel()

    def abandon(self) -> HTTPRequest | None:
        """Give up the response in progress because a newer view replaced it. What arrived is kept.
        The server may count bytes still in flight as delivered, so the channel is closed (the
        request returned says cclose; sending it is a courtesy) and the next request opens a new
        session told with model= what is held."""
        if self.cid is None:
            return None
        path = "/" + self.channel_path.lstrip("/") if self.channel_path else self.base.path
        url = urlunsplit((self.base.scheme, self.base.netloc, path, f"cid={self.cid}&cclose={self.cid}", ""))
        self._lose_channel()
        return HTTPRequest("GET", url)

    def _lose_channel(self) -> None:
        self.cid = None
        self.channel_path = None
        self._reopen_with_model = True


def next_step(client: JPIPClient, summary: ResponseSummary | None, failures: int) -> tuple[bool, int]:
    """After one request (summary None: the connection failed): (finished, failures so far).
    Recovers from a lost channel (503), a refused session, a dropped connection and a server
    restart, and never asks again for bytes the cache holds; gives up with JPIPClientError after
    repeated failures."""
    if summary is None or summary.retry:
        failures += 1
        if failures > 5:
            what = "the connection failed" if summary is None else f"HTTP {summary.status} again"
            raise JPIPClientError(f"{client.url[:200]}: {what} ({failures} times)",
                                  None if summary is None else summary.status)
        if summary is None:
            client.connection_lost()
        return False, failures
    if summary.status not in (200, 202):
        raise JPIPClientError(f"{client.url[:200]}: HTTP {summary.status}: {summary.message.strip()[:300]}",
                              summary.status)
    return not summary.more, failures


def fetch_window(client: JPIPClient, window: ViewWindow, send, maximum_requests: int = 10000) -> int:
    """Ask until ``window`` is complete through ``send(request, client)``, a transport that sends the
    request, feeds the client its headers and body, and returns the client's summary (raising
    ConnectionError when the connection fails). Returns the number of requests made."""
    failures = 0
    for count in range(1, maximum_requests + 1):
        try:
            summary = send(client.next_request(window), client)
        except (ConnectionError, OSError, TimeoutError) as error:
            log.info("connection failed (%s); asking again", error)
            summary = None
        finished, failures = next_step(client, summary, failures)
        if finished:
            return count
    raise JPIPClientError(f"{client.url[:200]}: the window was not complete after {maximum_requests} requests")


def fetch_whole_window(client: JPIPClient, window: ViewWindow, send, maximum_requests: int = 10000) -> int:
    """fetch_window for a one-shot fetch (a command line, an SCU fetching pixels): the session's
    channel is closed afterwards (cclose), so nothing is left open on the server."""
    count = fetch_window(client, window, send, maximum_requests)
    closing = client.close_request()
    if closing is not None:
        try:
            send(closing, client)
        except ConnectionError:
            pass  # the server forgets an idle session anyway
    return count


async def fetch_window_async(client: JPIPClient, window: ViewWindow, send, on_bytes=None,
                             maximum_requests: int = 10000) -> int:
    """fetch_window for an async transport ``send(request, client, on_bytes)`` (Pyodide's fetch,
    an in-process server): the same loop and the same recovery, awaited."""
    failures = 0
    for count in range(1, maximum_requests + 1):
        try:
            summary = await send(client.next_request(window), client, on_bytes)
        except (ConnectionError, OSError, TimeoutError) as error:
            log.info("connection failed (%s); asking again", error)
            summary = None
        finished, failures = next_step(client, summary, failures)
        if finished:
            return count
    raise JPIPClientError(f"{client.url[:200]}: the window was not complete after {maximum_requests} requests")
