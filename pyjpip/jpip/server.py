"""The JPIP server core (ISO/IEC 15444-9 Annexes C, D): a request in, status, headers and body chunks out.

No sockets and no threads: an adapter (the dev server, the production ASGI app) hands in the method, the
query and the time, and sends what comes back. Sessions (cnew/cid) keep a cache model updated
with every byte that actually leaves: the body is a generator, and bytes it never yields are
taken back out of the model. Stateless requests start from their model= statements.

What a response carries, in order: metadata-bin 0, then per codestream the main header, the
tile headers of the window's tiles, then precinct bytes layer by layer, lowest resolutions first,
so that a response cut anywhere (by len, or by the client) is the best picture for its bytes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterator

from pyjpip.codestream.databins import DataBin, DataBinClass, DataBins
from pyjpip.codestream.source import JPEG2000Source
from pyjpip.errors import CodestreamError
from pyjpip.jpip.cache_model import CacheModel
from pyjpip.jpip.messages import EndOfResponseReason, MessageEncoder
from pyjpip.jpip.request import JPIPRequest, RequestError, parse_query
from pyjpip.jpip.session import Session, SessionStore
from pyjpip.jpip.view_window import resolve_window, window_precincts
from pyjpip.response import Response, error_response

__all__ = ["JPIPServer", "Response", "error_response", "Session", "CODESTREAM_LENGTH_HEADER"]

log = logging.getLogger(__name__)

JPP_TYPES = {"jpp-stream", "image/jpp-stream"}
CHUNK_BYTES = 1 << 16


#: A header of ours, not of JPIP: the byte length of the (first) codestream asked for, sent with
#: JPIP-tid, so a viewer can show how much of an image it holds.
CODESTREAM_LENGTH_HEADER = "Pyjpip-Codestream-Length"


@dataclass(slots=True)
class _Planned:
    """One message to send: bytes [start, end) of a data-bin (its header is written when sent)."""

    key: tuple[int, int, int]
    databin: DataBin
    source_data: object
    start: int
    end: int
    header: bytes = b""


class JPIPServer:
    """Answers JPIP requests for the targets of a store.

    ``targets`` is what resolves names to sources and target ids (pyjpip.archive.targets.TargetStore;
    a folder name makes one); ``sessions`` where sessions live (pyjpip.archive.sessions: this
    process's memory by default, a shared folder for many workers). Both, and the two caches, are
    given to the core: it does no file or lock work of its own."""

    def __init__(self, targets, *, sessions: SessionStore | None = None, cache_dir: str | None = None,
                 session_limit: int = 256, client_session_limit: int = 32, idle_timeout: float = 600.0, channel_path: str = "jpip",
                 response_cache_bytes: int = 64 << 20, session_model_limit: int = 1 << 20, keep_open: int = 64):
        from pyjpip.archive.caches import LRU, ResponseCache
        from pyjpip.archive.sessions import MemorySessions

        if isinstance(targets, str):
            from pyjpip.archive.targets import TargetStore

            targets = TargetStore(targets, cache_dir, keep_open)
        self.store = targets
        self.sessions = sessions if sessions is not None else MemorySessions()
        self.responses = ResponseCache(response_cache_bytes)
        self.windows = LRU(256)  # (tid, codestream, window) -> the precincts it needs
        self.message_headers = MessageHeaderCache(LRU(MESSAGE_HEADERS_KEPT))
        self.session_limit = session_limit
        self.client_session_limit = client_session_limit  # sessions one client may hold (of session_limit)
        self.session_model_limit = session_model_limit  # data-bins a session may track before it must end
        self.idle_timeout = idle_timeout
        self.channel_path = channel_path.strip("/")

    def handle(self, method: str, query: str | bytes, now: float, path_target: str | None = None, *,
               owner: str | None = None, authorize=None, client: str | None = None) -> Response:
        """Answer one request. ``query`` is the URL query for GET or the body for POST; ``path_target``
        is the target named by the URL path, used when the query has no target field (C.2.2).

        ``owner`` is who asks (an identity's key; None: no authentication): a channel opened by one
        owner is refused to every other (403). ``authorize(target)`` is called with the target of
        every request, before anything of it is read or a cached answer is sent, and raises
        RequestError to refuse it. ``client`` is the key sessions are shared out by (the
        authenticated subject, else the peer address; None: no share is kept, e.g. a caller in
        this process)."""
        if method not in ("GET", "POST"):
            return error_response(405, f"method {method} is not used by JPIP; send GET or POST")
        try:
            request = parse_query(query)
            return self._serve(request, now, path_target, owner, authorize, client)
        except RequestError as error:
            log.info("JPIP %d: %s", error.status, error)
            retry = [("Retry-After", str(error.retry_after))] if error.retry_after is not None else None
            return error_response(error.status, str(error), retry)

    def _serve(self, request: JPIPRequest, now: float, path_target: str | None, owner: str | None = None,
               authorize=None, client: str | None = None) -> Response:
        self.sessions.expire(now, self.idle_timeout)
        if request.type is not None and not any(t.split(";")[0].strip() in JPP_TYPES and ";" not in t
                                                 for t in request.type):
            raise RequestError(415, f"type={','.join(request.type)!r}: this server returns image/jpp-stream only")
        if owner is not None and request.cclose is not None and (
                request.cid is None or any(c not in ("*", request.cid) for c in request.cclose)):
            raise RequestError(403, "cclose: an authenticated user closes only the channel of its request "
                                    "(cid=C&cclose=C)")
        if request.cid is None:
            return self._answer(request, now, path_target, None, 0, owner, authorize, client)
        entered = self.sessions.enter(request.cid, now)
        if entered is None:
            raise RequestError(503, f"channel {request.cid!r} does not exist or has been closed")
        session, ticket = entered
        if session.owner != owner:
            self.sessions.leave(session)
            raise RequestError(403, f"channel {request.cid!r} was opened by another user; open your own (cnew)")
        try:
            response = self._answer(request, now, path_target, session, ticket, owner, authorize)
        except BaseException:
            self.sessions.leave(session)
            raise
        if not isinstance(response.body, _ChannelBody):
            self.sessions.leave(session)
        return response

    def _answer(self, request: JPIPRequest, now: float, path_target: str | None, session: Session | None,
                ticket: int, owner: str | None = None, authorize=None, client: str | None = None) -> Response:
        headers: list[tuple[str, str]] = []
        if session is not None and request.target and request.target != session.target:
            raise RequestError(400, f"channel {request.cid!r} is bound to target {session.target!r}, "
                                    f"not {request.target!r}")
        target = session.target if session else (request.target or path_target)
        if not target:
            raise RequestError(400, "no target: give target=<file> (or a cid from JPIP-cnew)")
        if authorize is not None:
            authorize(target)
        source, tid = self.store.open(target)
        cache_key = None
        if session is None and request.cnew is None:  # a stateless answer depends only on the request
            cache_key = (target, tid, tuple(sorted((k, v) for k, v in request.fields.items() if k != "qid")))
            cached = self.responses.get(cache_key)
            if cached is not None:
                headers, body = cached
                headers = list(headers)  # the adapter adds its own (CORS): never to the cached list
                if request.qid is not None:
                    headers.append(("JPIP-qid", str(request.qid)))
                return Response(200, headers, iter([body]), len(body))
        changed = False
        if session is not None and session.tid != tid:
            session.model = CacheModel()  # the file changed under the session: nothing held is valid
            session.tid = tid
            changed = True
        if request.cnew is not None and session is None:
            if "http" in request.cnew:
                session = self.sessions.open(target, tid, now, self.session_limit, client,
                                             self.client_session_limit)
                if owner is not None:
                    session.owner = owner
                    self.sessions.save(session)
                entered = self.sessions.enter(session.cid, now)
                if entered is None:
                    raise RequestError(503, "the new channel was closed at once (the session store is full)")
                session, ticket = entered
                log.info("session %s opened for %s", session.cid, target)
                headers.append(("JPIP-cnew", f"cid={session.cid},path={self.channel_path},transport=http"))
                try:
                    response = self._window(request, headers, source, tid, session, ticket, False)
                except BaseException:
                    self.sessions.leave(session)
                    raise
                if not isinstance(response.body, _ChannelBody):
                    self.sessions.leave(session)
                return response
            log.info("cnew=%s: no transport offered that this server has; answering statelessly",
                     ",".join(request.cnew))
        response = self._window(request, headers, source, tid, session, ticket, changed)
        if cache_key is not None and response.length is not None and response.length <= self.responses.largest:
            body = b"".join(response.body)
            self.responses.put(cache_key, [h for h in response.headers if h[0] != "JPIP-qid"], body)
            response.body = iter([body])
        return response

    def _window(self, request: JPIPRequest, headers: list, source: JPEG2000Source, tid: str,
                session: Session | None, ticket: int, changed: bool) -> Response:
        if request.qid is not None:
            headers.append(("JPIP-qid", str(request.qid)))
        if request.tid != tid:
            headers.append(("JPIP-tid", tid))
        if request.quality is not None:
            headers.append(("JPIP-quality", "-1"))
        codestreams = self._codestreams(request, source, headers)
        model = session.model if session else CacheModel()
        if request.model and (request.tid is None or request.tid in (tid, "0")):
            model.apply(request.model, source, codestreams)  # a client with another tid holds nothing valid
            changed = True
        if session is not None and changed:
            self.sessions.save(session)
        plan, reason, window_headers = self._plan(request, source, tid, codestreams, model)
        headers.extend(window_headers)
        if request.tid != tid and codestreams:  # not JPIP: lets a viewer say "x of y bytes"
            headers.append((CODESTREAM_LENGTH_HEADER, str(len(source.codestream(codestreams[0]).data))))
        closing = request.cclose is not None
        if closing:
            self._close(request)
        if session is not None and not closing and len(session.model.held) + len(plan) > self.session_model_limit:
            # Session resources exhausted (EOR 6): answer this request, then the session is over.
            # The answer goes out as a stateless one: nothing is left to record it in.
            reason = EndOfResponseReason.SESSION_LIMIT
            self.sessions.close(session.cid)
            closing = True
            log.info("session %s ended: its cache model reached %d data-bins", session.cid, self.session_model_limit)
        return self._respond(headers, plan, reason, session if not closing else None, ticket, request, tid)

    def _close(self, request: JPIPRequest) -> None:
        names = [request.cid] if "*" in request.cclose else list(request.cclose)
        for cid in names:
            if cid is None or not self.sessions.close(cid):
                raise RequestError(503, f"cclose: channel {cid!r} does not exist")
            log.info("session %s closed by the client", cid)

    def _codestreams(self, request: JPIPRequest, source: JPEG2000Source, headers: list) -> list[int]:
        count = source.codestream_count
        if request.stream is None:
            return [0]
        chosen = sorted({n for r in request.stream for n in r.values(count)})
        asked_beyond = any(r.first >= count or (r.last is not None and r.last >= count) for r in request.stream)
        if not chosen:
            raise RequestError(400, f"stream={request.fields.get('stream')!r} names no codestream of the target, "
                                    f"which has {count} (numbered from 0)")
        if asked_beyond:
            headers.append(("JPIP-stream", ",".join(map(str, chosen))))
        return chosen

    def _plan(self, request: JPIPRequest, source: JPEG2000Source, tid: str, codestreams: list[int],
              model: CacheModel):
        """Every message the window needs that the model does not hold, in delivery order."""
        plan: list[_Planned] = []
        window_headers: list[tuple[str, str]] = []

        def add(key, databin: DataBin, data, start: int, end: int) -> None:
            plan.append(_Planned(key, databin, data, start, end))

        def whole(key, databin: DataBin, data) -> None:
            held = model.bytes_held(key)
            if model.knows(key) and held >= databin.length:
                return
            add(key, databin, data, min(held, databin.length), databin.length)

        metadata = source.metadata_bin()
        key = (DataBinClass.METADATA, 0, 0)
        if request.align and not (model.knows(key) and model.bytes_held(key) >= metadata.length):
            position = 0  # align=yes: one message per top-level box (C.7.3's natural boundaries)
            for piece in metadata.pieces:
                size = len(piece) if isinstance(piece, bytes) else piece[1]
                if position + size > model.bytes_held(key):
                    add(key, metadata, source.data, max(position, model.bytes_held(key)), position + size)
                position += size
            if not metadata.pieces:
                add(key, metadata, source.data, 0, 0)
        else:
            whole(key, metadata, source.data)
        image_done = True
        for number in codestreams:
            try:
                bins = source.databins(number)
                view = source.codestream(number).data
            except CodestreamError as error:
                raise RequestError(404, f"target is not a readable JPEG 2000 file: {error.reason}") from None
            whole((DataBinClass.MAIN_HEADER, number, 0), bins.main_header(), view)
            if request.metadata_only:
                continue
            window = resolve_window(request, bins.index)
            window_headers.extend(window.changed.items())
            chosen = self._window_precincts(tid, number, bins, window)
            all_components = len(window.components) == len(bins.index.size.components)
            layers_total = max(t.tile.coding_style.layers for t in bins.index.tiles)
            image_done &= (not window.empty and window.discard == 0 and all_components
                           and window.region == _image_box(bins) and window.layers == layers_total)
            for tile in sorted({item[1] for item in chosen}):
                whole((DataBinClass.TILE_HEADER, number, tile), bins.tile_header(tile), view)
            wanted = []  # (key, bin, packet ends, bytes held) of precincts still short of the window's layers
            for _, t, c, r, k in chosen:
                databin = bins.precinct(t, c, r, k)
                key = (DataBinClass.PRECINCT, number, databin.identifier)
                ends = databin.packet_ends
                if not ends:
                    if not model.knows(key):
                        add(key, databin, view, 0, 0)  # a precinct with no packets: empty and complete
                    continue
                held = model.bytes_held(key)
                if held < ends[min(window.layers, len(ends)) - 1]:
                    wanted.append((key, databin, ends, held))
            for layer in range(window.layers):
                for key, databin, ends, held in wanted:
                    if layer < len(ends) and held < ends[layer]:
                        add(key, databin, view, max(ends[layer - 1] if layer else 0, held), ends[layer])
        reason = EndOfResponseReason.IMAGE_DONE if image_done and not request.metadata_only \
            else EndOfResponseReason.WINDOW_DONE
        return plan, reason, window_headers

    def _window_precincts(self, tid: str, number: int, bins: DataBins, window) -> list:
        key = (tid, number, window.discard, window.region, window.components, window.empty)
        chosen = self.windows.get(key)
        if chosen is None:
            chosen = window_precincts(bins.index, window)
            self.windows.put(key, chosen)
        return chosen

    def _respond(self, headers: list, plan: list[_Planned], reason: int, session: Session | None, ticket: int,
                 request: JPIPRequest, tid: str) -> Response:
        plan, cut = _write_headers(plan, request.len, self.message_headers, tid)
        if cut:
            reason = EndOfResponseReason.BYTE_LIMIT
            if not plan and request.len:
                headers.append(("JPIP-len", str(USABLE_LENGTH)))
        eor = MessageEncoder.end_of_response(reason)
        headers[:0] = [("Content-Type", "image/jpp-stream"), ("Cache-Control", "no-cache")]
        if session is None:
            length = sum(len(p.header) + p.end - p.start for p in plan) + len(eor)
            return Response(200, headers, _body(plan, eor), length)
        body = _ChannelBody(self.sessions, session, _session_body(plan, eor, self.sessions, session, ticket,
                                                                   request.wait))
        return Response(200, headers, body, None)


class _ChannelBody:
    """A session's body: whether it is sent whole, cut or never started, ``close()`` hands the
    channel back to the session store (a generator's ``finally`` runs only once it has started)."""

    def __init__(self, sessions: SessionStore, session: Session, chunks: Iterator[bytes]):
        self.sessions, self.session, self.chunks = sessions, session, chunks
        self.open = True

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        try:
            return next(self.chunks)
        except StopIteration:
            self.close()
            raise

    def close(self) -> None:
        if self.open:
            self.open = False
            try:
                self.chunks.close()
            finally:
                self.sessions.leave(self.session)


def _image_box(bins: DataBins) -> tuple[int, int, int, int]:
    size = bins.index.size
    return (size.x_offset, size.y_offset, size.x_size, size.y_size)


#: The least len that lets a response make progress: a message header and a few bytes.
USABLE_LENGTH = 64


#: Message headers a server keeps for reuse (MessageHeaderCache): about 360 bytes each with their
#: keys, so some 12 MB at most.
MESSAGE_HEADERS_KEPT = 1 << 15


class MessageHeaderCache:
    """Encoded message headers (A.2), reused across responses. A message of the same class and
    codestream as the one before inherits both, and its header then depends only on the target
    (tid), the bin and the byte range; the same layers of the same precincts are sent over and over.

    Kept only for ranges starting at 0 or at a packet end: a bin has few of those, whereas what a
    client holds (model=P5:123, a cut answer) can end anywhere, and a client stating a new offset
    each time would grow this without end. ``store`` (an LRU) bounds the count besides."""

    def __init__(self, store):
        self.store = store

    def header(self, encoder: MessageEncoder, tid: str, item: _Planned) -> bytes:
        key, start, end = item.key, item.start, item.end
        complete = end >= item.databin.length
        if (encoder.bin_class, encoder.codestream) != (key[0], key[1]) or \
                not (start == 0 or start in item.databin.packet_ends):
            return encoder.header(*key, start, end - start, complete)
        name = (tid, key, start, end)
        header = self.store.get(name)
        if header is None:
            header = encoder.header(*key, start, end - start, complete)
            self.store.put(name, header)
        return header


def _write_headers(plan: list[_Planned], budget: int | None, cache: MessageHeaderCache,
                   tid: str) -> tuple[list[_Planned], bool]:
    """Give each message its header, in order (``cache`` keeps those that recur); with a byte
    budget (len), keep what fits, headers included, and cut the message that does not fit at the
    exact byte. Returns (messages, cut)."""
    encoder = MessageEncoder()
    kept, used = [], 0
    for item in plan:
        key, start, end = item.key, item.start, item.end
        state = (encoder.bin_class, encoder.codestream)
        header = cache.header(encoder, tid, item)
        size = len(header) + end - start
        if budget is None or used + size <= budget:
            item.header = header
            kept.append(item)
            used += size
            continue
        room = budget - used
        body = room - len(header)  # a shorter length field can only shorten the header
        while body > 0:
            encoder.bin_class, encoder.codestream = state
            header = encoder.header(*key, start, body, False)
            if len(header) + body <= room:
                kept.append(_Planned(key, item.databin, item.source_data, start, start + body, header))
                break
            body -= 1
        return kept, True
    return kept, False


def _body(plan: list[_Planned], eor: bytes) -> Iterator[bytes]:
    parts, size = [], 0
    for item in plan:
        parts.append(item.header)
        if item.end > item.start:
            data = _read(item, item.start, item.end)
            parts.append(data)
            size += len(data)
        if size >= CHUNK_BYTES:
            yield b"".join(parts)
            parts, size = [], 0
    parts.append(eor)
    yield b"".join(parts)


def _session_body(plan: list[_Planned], eor: bytes, sessions: SessionStore, session: Session, ticket: int,
                  wait: bool) -> Iterator[bytes]:
    """Stream a session's response, adding to the model what has gone out. A newer request on the
    channel (wait=no) stops it with EOR 3; if the adapter stops asking (the client left), the bytes
    of the chunk it could not deliver are taken back out of the model."""
    unconfirmed: list[_Planned] = []
    chunk = bytearray()

    def confirmed() -> None:
        sessions.delivered(session, [(item.key, item.end) for item in unconfirmed])
        unconfirmed.clear()

    try:
        for item in plan:
            if not wait and sessions.superseded(session, ticket):
                eor = MessageEncoder.end_of_response(EndOfResponseReason.WINDOW_CHANGE)
                break
            chunk += item.header
            if item.end > item.start:
                chunk += _read(item, item.start, item.end)
            session.model.add(item.key, item.end)
            unconfirmed.append(item)
            if len(chunk) >= CHUNK_BYTES:
                data = bytes(chunk)
                chunk.clear()
                yield data
                confirmed()  # asked for more: the chunk went out
        yield bytes(chunk) + eor
        confirmed()
    finally:
        for item in unconfirmed:
            session.model.limit(item.key, item.start)


def _read(item: _Planned, start: int, end: int) -> bytes:
    """Bytes [start, end) of a data-bin, gathered from its pieces."""
    pieces = item.databin.pieces
    if len(pieces) == 1 and not isinstance(pieces[0], bytes):  # one range of the file: a view, no copy yet
        offset = pieces[0][0]
        return item.source_data[offset + start : offset + end]
    out = bytearray()
    position = 0
    for piece in item.databin.pieces:
        size = len(piece) if isinstance(piece, bytes) else piece[1]
        if position + size > start and position < end:
            a, b = max(start - position, 0), min(end - position, size)
            if isinstance(piece, bytes):
                out += piece[a:b]
            else:
                out += item.source_data[piece[0] + a : piece[0] + b]
        position += size
        if position >= end:
            break
    return bytes(out)
