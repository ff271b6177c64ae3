"""The JP2 Header box: how a JP2 file's components become the colours shown (ISO/IEC 15444-1 I.5.3).

Image Header (ihdr, I.5.3.1), Colour Specification (colr, I.5.3.3), Palette (pclr, I.5.3.4),
Component Mapping (cmap, I.5.3.5) and Channel Definition (cdef, I.5.3.6). Channels are the
components (after the codestream's component transform), or with a palette the columns cmap maps
components through; cdef says which colour of the colour space each channel is (without it,
channel i is colour i + 1). A JP2 reader uses the first colr box and ignores the rest (I.5.3.3).

What the viewer is told (``describe_colour``): the colour space, the channels in the colour
space's order with where each comes from, the palette, and a note when what is shown is not
exactly what the file specifies. Enumerated sRGB, greyscale and sYCC (16, 17, 18; Table I.10)
are shown as they are. A restricted ICC profile (I.5.3.3, method 2: a monochrome or three-component
matrix-based input profile) is not applied: the image is shown in the enumerated space of its
kind (greyscale for a 'GRAY' profile, sRGB for an 'RGB ' one), and the note says so. Nothing
here is a decoder: the page applies the palette and converts sYCC (web/jp2colour.js).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pyjpip.codestream.file_format import read_boxes
from pyjpip.errors import CodestreamError

SRGB, GREYSCALE, SYCC = 16, 17, 18
_ENUMERATED = {SRGB: "sRGB", GREYSCALE: "greyscale", SYCC: "sYCC"}
_ICC_SPACES = {b"GRAY": "greyscale", b"RGB ": "sRGB"}
_COLOURS = {"sRGB": 3, "greyscale": 1, "sYCC": 3}
_LIMIT = 1 << 20  # palette entries times columns: a damaged pclr must not make millions of values


@dataclass(frozen=True)
class Channel:
    """A channel: component ``component`` as it is, or mapped through palette column ``column``."""

    component: int
    column: int | None = None


@dataclass(frozen=True)
class Palette:
    """pclr: ``columns[k][i]`` is entry i of column k; each column's bit depth and sign."""

    columns: tuple[tuple[int, ...], ...]
    bits: tuple[int, ...]
    signed: tuple[bool, ...]


@dataclass(frozen=True)
class JP2Colour:
    """How to show a JP2 file's samples."""

    space: str | None  # "sRGB", "greyscale", "sYCC"; None when it cannot be shown (then ``note`` says why)
    method: int  # colr METH: 1 enumerated, 2 restricted ICC (3, 4: JPX's other methods)
    enumerated: int | None  # EnumCS
    channels: tuple[Channel, ...]  # the colour space's colours in order (R, G, B; Y, Cb, Cr; grey)
    palette: Palette | None
    components: int  # ihdr NC
    note: str | None = None

    def to_dict(self) -> dict:
        palette = None if self.palette is None else {
            "columns": [list(c) for c in self.palette.columns], "bits": list(self.palette.bits),
            "signed": list(self.palette.signed)}
        return {"space": self.space, "method": self.method, "enumerated": self.enumerated,
                "channels": [{"component": c.component, "column": c.column} for c in self.channels],
                "palette": palette, "components": self.components, "note": self.note}


def describe_colour(metadata: bytes) -> JP2Colour | None:
    """The colour of a JP2-family file from its top-level boxes (metadata-bin 0, or the file's
    start); None for a raw codestream (no boxes) or a file without a JP2 Header box. A header box
    that cannot be read gives no space, and a note saying why."""
    if not metadata:
        return None
    try:
        top = read_boxes(metadata, 0, len(metadata))
    except CodestreamError:
        return None
    header = next((box for box in top if box.box_type == b"jp2h"), None)
    if header is None:
        return None
    start, end = header.contents
    try:
        boxes: dict[bytes, list[bytes]] = {}
        for box in read_boxes(metadata, start, end, 1):
            a, b = box.contents
            boxes.setdefault(box.box_type, []).append(bytes(metadata[a:b]))
        return _colour(boxes)
    except CodestreamError as error:
        return JP2Colour(None, 0, None, (), None, 0, f"the JP2 Header box cannot be read: {error.reason}")


def _colour(boxes: dict[bytes, list[bytes]]) -> JP2Colour:
    if b"ihdr" not in boxes or len(boxes[b"ihdr"][0]) < 14:
        raise CodestreamError("the JP2 Header box has no Image Header box (I.5.3.1)")
    components = struct.unpack(">H", boxes[b"ihdr"][0][8:10])[0]
    if b"colr" not in boxes:
        raise CodestreamError("the JP2 Header box has no Colour Specification box (I.5.3.3)")
    colr = boxes[b"colr"][0]  # the first; a JP2 reader ignores the others
    if len(colr) < 3:
        raise CodestreamError("Colour Specification box cut short")
    method, note, enumerated = colr[0], None, None
    if method == 1:
        if len(colr) < 7:
            raise CodestreamError("Colour Specification box cut short")
        enumerated = struct.unpack(">I", colr[3:7])[0]
        space = _ENUMERATED.get(enumerated)
        if space is None:
            note = f"enumerated colour space {enumerated} is not one a JP2 reader shows (Table I.10)"
    elif method == 2:
        profile = colr[3:]
        kind = profile[16:20] if len(profile) >= 20 else b""
        space = _ICC_SPACES.get(kind)
        if space is None:
            note = f"restricted ICC profile of colour space {kind!r} is not one JP2 allows (I.5.3.3)"
        else:
            note = f"restricted ICC profile not applied: shown as {space}"
    else:
        space, note = None, f"colour specification method {method} is JPX's, not JP2's"
    palette = _palette(boxes[b"pclr"][0]) if b"pclr" in boxes else None
    channels = _channels(boxes, palette, components)
    channels = _ordered(boxes, channels)
    if space is not None and len(channels) < _COLOURS[space]:
        note, space = f"{space} needs {_COLOURS[space]} channels; the file has {len(channels)}", None
    if space is not None:
        channels = channels[: _COLOURS[space]]
    return JP2Colour(space, method, enumerated, tuple(channels), palette, components, note)


def _palette(pclr: bytes) -> Palette:
    """pclr: NE, NPC, then B_i per column and NE rows of NPC values of ceil(B_i / 8) bytes (I.5.3.4)."""
    if len(pclr) < 3:
        raise CodestreamError("Palette box cut short")
    entries, count = struct.unpack(">HB", pclr[:3])
    if not 1 <= entries <= 1024 or count == 0 or entries * count > _LIMIT or len(pclr) < 3 + count:
        raise CodestreamError(f"Palette box with {entries} entries of {count} columns (I.5.3.4)")
    bits = [(b & 0x7F) + 1 for b in pclr[3 : 3 + count]]
    signed = [bool(b & 0x80) for b in pclr[3 : 3 + count]]
    sizes = [(b + 7) // 8 for b in bits]
    position, rows = 3 + count, []
    if len(pclr) < position + entries * sum(sizes):
        raise CodestreamError("Palette box cut short")
    for _ in range(entries):
        row = []
        for size, depth, sign in zip(sizes, bits, signed):
            # B bits of the field (sign-extended or not); two's complement when signed
            value = int.from_bytes(pclr[position : position + size], "big") & ((1 << depth) - 1)
            if sign and value >= 1 << (depth - 1):
                value -= 1 << depth
            row.append(value)
            position += size
        rows.append(row)
    return Palette(tuple(tuple(r[k] for r in rows) for k in range(count)), tuple(bits), tuple(signed))


def _channels(boxes, palette: Palette | None, components: int) -> list[Channel]:
    """The channels before cdef: cmap's mapping with a palette (I.5.3.5), else the components."""
    if palette is None:
        return [Channel(c) for c in range(components)]
    if b"cmap" not in boxes:
        raise CodestreamError("a Palette box without a Component Mapping box (I.5.3.5)")
    cmap = boxes[b"cmap"][0]
    channels = []
    for i in range(0, len(cmap) - 3, 4):
        component, kind, column = struct.unpack(">HBB", cmap[i : i + 4])
        if component >= components or kind > 1 or (kind == 1 and column >= len(palette.columns)):
            raise CodestreamError(f"Component Mapping entry {i // 4} maps component {component} by type {kind} "
                                  f"through column {column}")
        channels.append(Channel(component, column if kind == 1 else None))
    return channels


def _ordered(boxes, channels: list[Channel]) -> list[Channel]:
    """Channels in the colour space's order by cdef (I.5.3.6): colour channels by association;
    opacity and unspecified channels are not shown."""
    if b"cdef" not in boxes:
        return channels
    cdef = boxes[b"cdef"][0]
    count = struct.unpack(">H", cdef[:2])[0] if len(cdef) >= 2 else 0
    if len(cdef) < 2 + 6 * count:
        raise CodestreamError("Channel Definition box cut short")
    colours = {}
    for i in range(count):
        channel, kind, association = struct.unpack(">HHH", cdef[2 + 6 * i : 8 + 6 * i])
        if kind == 0 and 1 <= association < 65535 and channel < len(channels):
            colours[association] = channels[channel]
    return [colours[a] for a in sorted(colours)]
