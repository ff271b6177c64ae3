"""JPP-stream messages (ISO/IEC 15444-9 A.2) and the end-of-response message (D.3).

A message carries a byte range of one data-bin: Bin-ID (with the completeness bit and the
class/codestream presence bits), [Class], [CSn], Msg-Offset, Msg-Length, [Aux], then the bytes.
Class and codestream are inherited from the previous message of the same response; every
response starts from class 0, codestream 0 and the encoder always states both first.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from pyjpip.jpip.vbas import JPPStreamError, decode_vbas, encode_vbas


class EndOfResponseReason(IntEnum):
    """EOR reason codes, Table D.2."""

    IMAGE_DONE = 1
    WINDOW_DONE = 2
    WINDOW_CHANGE = 3
    BYTE_LIMIT = 4
    QUALITY_LIMIT = 5
    SESSION_LIMIT = 6
    RESPONSE_LIMIT = 7
    NON_SPECIFIED = 255


@dataclass(frozen=True)
class Message:
    """Bytes [offset, offset + len(data)) of data-bin (class, codestream, identifier)."""

    bin_class: int
    codestream: int
    identifier: int
    offset: int
    data: bytes
    complete: bool  # this message holds the bin's last byte
    aux: int | None = None


@dataclass(frozen=True)
class EndOfResponse:
    reason: int
    body: bytes = b""


class MessageEncoder:
    """Writes message headers for one response, using class/codestream inheritance where it is safe."""

    def __init__(self):
        self.bin_class: int | None = None
        self.codestream: int | None = None

    def header(self, bin_class: int, codestream: int, identifier: int, offset: int, length: int,
               complete: bool, aux: int | None = None) -> bytes:
        if bin_class & 1 and aux is None:
            raise ValueError(f"class {bin_class} messages carry an Aux value")
        if codestream != self.codestream or self.codestream is None:
            presence = 3
        elif bin_class != self.bin_class:
            presence = 2
        else:
            presence = 1
        self.bin_class, self.codestream = bin_class, codestream
        out = bytearray(_bin_id(identifier, presence, complete))
        if presence >= 2:
            out += encode_vbas(bin_class)
        if presence == 3:
            out += encode_vbas(codestream)
        out += encode_vbas(offset)
        out += encode_vbas(length)
        if bin_class & 1:
            out += encode_vbas(aux)
        return bytes(out)

    @staticmethod
    def end_of_response(reason: int, body: bytes = b"") -> bytes:
        return bytes([0, reason]) + encode_vbas(len(body)) + body


def _bin_id(identifier: int, presence: int, complete: bool) -> bytes:
    """Bin-ID VBAS: first byte holds bb, c and the top 4 id bits; k bytes carry 7k - 3 id bits."""
    flags = (presence << 5) | (0x10 if complete else 0)
    if 0 <= identifier < 16:
        return _SINGLE[flags | identifier]
    if identifier < 0:
        raise ValueError("in-class identifiers are not negative")
    count = (identifier.bit_length() + 9) // 7  # smallest k with 7k - 3 >= bits
    out = bytearray(count)
    value = identifier
    for i in range(count - 1, 0, -1):
        out[i] = (value & 0x7F) | (0x80 if i < count - 1 else 0)
        value >>= 7
    out[0] = 0x80 | flags | value
    return bytes(out)


_SINGLE = [bytes([b]) for b in range(128)]


class JPPStreamParser:
    """Incremental parser: feed body bytes in pieces of any size and get messages as they arrive.

    A message body split across pieces comes out as several Message objects with increasing
    offsets (``complete`` only on the last), so a client can use bytes before a message ends.
    """

    def __init__(self):
        self.buffer = bytearray()
        self.consumed = 0  # stream offset of buffer[0], for error positions
        self.bin_class = 0
        self.codestream = 0
        self.pending: dict | None = None  # the message whose body is still arriving
        self.ended: EndOfResponse | None = None

    def feed(self, data: bytes) -> list:
        if self.ended is not None and data:
            raise JPPStreamError("bytes after the end-of-response message", self.consumed + len(self.buffer))
        self.buffer += data
        events = []
        while self.buffer and self.ended is None:
            if self.pending is not None:
                if not self._body(events):
                    break
                continue
            if not self._header(events):
                break
        return events

    def finish(self) -> None:
        """Call at the end of the body: anything left over means the stream was cut."""
        if self.pending is not None or self.buffer:
            raise JPPStreamError("the stream ends inside a message", self.consumed)

    def _take(self, count: int) -> None:
        del self.buffer[:count]
        self.consumed += count

    def _header(self, events: list) -> bool:
        data = self.buffer
        if data[0] == 0:
            if len(data) < 3:
                return False
            parsed = decode_vbas(data, 2)
            if parsed is None:
                return False
            length, position = parsed
            if len(data) < position + length:
                return False
            self.ended = EndOfResponse(data[1], bytes(data[position : position + length]))
            events.append(self.ended)
            self._take(position + length)
            return True
        first = data[0]
        presence = (first >> 5) & 3
        if presence == 0:
            raise JPPStreamError("Bin-ID with the prohibited class/codestream form 00", self.consumed)
        complete = bool(first & 0x10)
        identifier = first & 0x0F
        position = 1
        byte = first
        while byte & 0x80:
            if position >= len(data):
                return False
            if position > 9:
                raise JPPStreamError("Bin-ID longer than 9 bytes", self.consumed)
            byte = data[position]
            identifier = (identifier << 7) | (byte & 0x7F)
            position += 1
        bin_class, codestream = self.bin_class, self.codestream
        fields = []
        wanted = (1 if presence >= 2 else 0) + (1 if presence == 3 else 0) + 2
        for _ in range(wanted):
            parsed = decode_vbas(data, position)
            if parsed is None:
                return False
            value, position = parsed
            fields.append(value)
        if presence >= 2:
            bin_class = fields.pop(0)
        if presence == 3:
            codestream = fields.pop(0)
        offset, length = fields
        if bin_class in (3, 7) or bin_class > 8:
            raise JPPStreamError(f"message of unknown data-bin class {bin_class}", self.consumed)
        aux = None
        if bin_class & 1:
            parsed = decode_vbas(data, position)
            if parsed is None:
                return False
            aux, position = parsed
        self.bin_class, self.codestream = bin_class, codestream
        self._take(position)
        self.pending = {"bin_class": bin_class, "codestream": codestream, "identifier": identifier,
                        "offset": offset, "left": length, "complete": complete, "aux": aux}
        if length == 0:
            self._emit(events, b"", True)
        return True

    def _body(self, events: list) -> bool:
        pending = self.pending
        count = min(pending["left"], len(self.buffer))
        if count == 0:
            return False
        chunk = bytes(self.buffer[:count])
        self._take(count)
        self._emit(events, chunk, count == pending["left"])
        return True

    def _emit(self, events: list, chunk: bytes, last: bool) -> None:
        p = self.pending
        events.append(Message(p["bin_class"], p["codestream"], p["identifier"], p["offset"], chunk,
                              p["complete"] and last, p["aux"]))
        p["offset"] += len(chunk)
        p["left"] -= len(chunk)
        if last:
            self.pending = None
