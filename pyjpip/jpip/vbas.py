"""Variable-length byte-aligned segments, VBAS (ISO/IEC 15444-9 A.2.1).

Seven value bits a byte, most significant group first; bit 7 set on every byte but the last.
"""

from __future__ import annotations

from pyjpip.errors import PyjpipError

#: Longest VBAS accepted when parsing: 9 bytes carry 63 bits, more than any real length or id.
MAXIMUM_VBAS_BYTES = 9


class JPPStreamError(PyjpipError):
    """A JPP-stream is malformed (bad VBAS, prohibited Bin-ID form, message past the end)."""

    kind = "damaged"

    def __init__(self, message: str, offset: int | None = None):
        self.offset = offset
        super().__init__(f"{message}" + (f" at byte {offset} of the stream" if offset is not None else ""))


_SMALL = [bytes([v]) for v in range(128)]


def encode_vbas(value: int) -> bytes:
    if 0 <= value < 128:
        return _SMALL[value]
    if value < 0:
        raise ValueError(f"VBAS cannot hold a negative value ({value})")
    groups = [value & 0x7F]
    value >>= 7
    while value:
        groups.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(groups))


def decode_vbas(data, position: int) -> tuple[int, int] | None:
    """(value, position after it), or None when ``data`` ends before the VBAS does."""
    value = 0
    for count in range(MAXIMUM_VBAS_BYTES):
        if position + count >= len(data):
            return None
        byte = data[position + count]
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            return value, position + count + 1
    raise JPPStreamError(f"VBAS longer than {MAXIMUM_VBAS_BYTES} bytes", position)
