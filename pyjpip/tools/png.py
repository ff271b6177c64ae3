"""A rebuilt view as a PNG: decoded by OpenJPEG through glymur, windowed to 8 bits, written with zlib.

CPython only (glymur loads the system's libopenjp2); the browser decodes with WebAssembly instead.
"""

from __future__ import annotations

import os
import struct
import tempfile
import zlib

from pyjpip.errors import PyjpipError


def decode_view(view):
    """The view's samples (height, width[, components]) at its resolution and region.

    The whole image is decoded at the view's resolution and the region cut out here: OpenJPEG
    2.5.0's own area decoding returns blank tiles for tiled HTJ2K."""
    try:
        import glymur
    except ImportError as exc:
        raise ImportError("writing PNG needs glymur and numpy: pip install 'pyjpip[png]'") from exc
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "view.j2k")
        with open(path, "wb") as f:
            f.write(view.codestream)
        image = glymur.Jp2k(path)
        step = 1 << view.reduce
        samples = image[::step, ::step]
        if view.region is None:
            return samples
        siz = image.codestream.segment[1]
        x0, y0, x1, y1 = view.region
        origin_x, origin_y = -(-siz.xosiz // step), -(-siz.yosiz // step)
        return samples[-(-y0 // step) - origin_y : -(-y1 // step) - origin_y,
                       -(-x0 // step) - origin_x : -(-x1 // step) - origin_x]


def to_8_bits(samples):
    """Map the samples' own range to 0..255 (more than 8 bits cannot go in a plain PNG)."""
    import numpy

    samples = numpy.asarray(samples)
    if samples.dtype == numpy.uint8:
        return samples
    low, high = float(samples.min()), float(samples.max())
    scale = 255.0 / (high - low) if high > low else 0.0
    return numpy.clip(numpy.rint((samples.astype(numpy.float64) - low) * scale), 0, 255).astype(numpy.uint8)


def write_png(path: str, pixels) -> None:
    """Grey (H, W) or RGB (H, W, 3) uint8 to a PNG file."""
    if pixels.ndim == 3 and pixels.shape[2] not in (1, 3):
        pixels = pixels[:, :, :3] if pixels.shape[2] > 3 else pixels[:, :, 0]
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    height, width = pixels.shape[:2]
    colour = 0 if pixels.ndim == 2 else 2
    rows = b"".join(b"\x00" + pixels[y].tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(rows, 6)) + chunk(b"IEND", b""))


def write_view_png(view, path: str) -> None:
    try:
        samples = decode_view(view)
    except ImportError:
        raise
    except Exception as exc:  # glymur/OpenJPEG report failures with their own exception types
        raise PyjpipError(f"the rebuilt codestream could not be decoded: {exc}") from exc
    write_png(path, to_8_bits(samples))
