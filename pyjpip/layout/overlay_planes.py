"""Overlay planes (PS3.3 C.9.2): graphics and regions of interest drawn over an image, one bit a pixel.

Up to 16 planes live in the repeating groups 6000-601E. They travel in the attributes (a hollow
object keeps them, and DICOM JSON carries them inline), so a viewer draws them over whatever
resolution and region it shows without any pixel data of its own. Overlays embedded in unused bits
of Pixel Data (retired, Bits Allocated 16 in the overlay group) cannot be read from attributes: a
hollow object has no Pixel Data, and they are left out (logged).
"""

from __future__ import annotations

import logging

from pyjpip.errors import DicomError

log = logging.getLogger(__name__)

_ROWS, _COLUMNS, _DESCRIPTION, _TYPE, _ORIGIN = 0x0010, 0x0011, 0x0022, 0x0040, 0x0050
_FRAMES, _FRAME_ORIGIN, _BITS_ALLOCATED, _BIT_POSITION = 0x0015, 0x0051, 0x0100, 0x0102
_LABEL, _DATA = 0x1500, 0x3000


def _reader(dataset):
    """``value(tag)`` for a pydicom Dataset or a JSONDataset."""
    tag_value = getattr(dataset, "tag_value", None)
    if tag_value is not None:
        return tag_value

    def value(tag: int, default=None):
        element = dataset.get(tag)
        return default if element is None else element.value
    return value


def overlay_planes(dataset, frame: int = 1) -> list[dict]:
    """The planes over ``frame`` (counted from 1; a plane of one frame lies over its Image Frame
    Origin, C.9.2.1.3): rows, columns, origin (row, column, counted from 1,
    may be negative), type ("G" graphics or "R" region of interest), label and the plane's bits
    packed eight a byte, first pixel in the lowest bit (PS3.5 8.1.2), as a list of byte values."""
    value = _reader(dataset)
    planes = []
    for group in range(0x6000, 0x6020, 2):
        data = value((group << 16) | _DATA)
        if data is None:
            continue
        where = f"overlay {group:04X}"
        try:
            rows, columns = int(value((group << 16) | _ROWS)), int(value((group << 16) | _COLUMNS))
            origin = value((group << 16) | _ORIGIN, [1, 1])
            origin = [int(v) for v in ([origin] if isinstance(origin, (int, float, str)) else origin)][:2]
            bits = int(value((group << 16) | _BITS_ALLOCATED, 1) or 1)
            frames = int(value((group << 16) | _FRAMES, 1) or 1)
            first_frame = int(value((group << 16) | _FRAME_ORIGIN, 1) or 1)
        except (TypeError, ValueError) as error:
            raise DicomError(f"{where}: rows, columns or origin are not numbers ({error})") from None
        if len(origin) != 2 or rows <= 0 or columns <= 0:
            raise DicomError(f"{where}: needs Overlay Rows, Columns and a two-value Overlay Origin")
        if bits != 1:
            log.info("%s: embedded in Pixel Data (Overlay Bits Allocated %d); not shown", where, bits)
            continue
        if not first_frame <= frame < first_frame + frames:
            continue
        data = bytes(data) if not isinstance(data, bytes) else data
        count = rows * columns
        start = (frame - first_frame) * count
        if len(data) * 8 < start + count:
            raise DicomError(f"{where}: Overlay Data holds {len(data) * 8} bits; {rows} x {columns} x {frames} "
                             "are needed")
        planes.append({"group": group, "rows": rows, "columns": columns, "origin": origin,
                       "type": str(value((group << 16) | _TYPE, "G") or "G").strip(),
                       "label": str(value((group << 16) | _LABEL, "") or value((group << 16) | _DESCRIPTION, "")
                                    or "").strip(),
                       "data": list(_bits(data, start, count))})
    return planes


def _bits(data: bytes, start: int, count: int) -> bytes:
    """``count`` bits from bit ``start``, packed again from the lowest bit of the first byte."""
    if start % 8 == 0:
        return data[start // 8 : (start + count + 7) // 8]
    whole = int.from_bytes(data, "little") >> start
    return (whole & ((1 << count) - 1)).to_bytes((count + 7) // 8, "little")
