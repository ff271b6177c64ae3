"""Proof at ingest: every frame about to be served, decoded at full resolution, equals the source's
own decoding (CPython tooling: numpy, imagecodecs).

The served codestream is decoded by OpenJPEG (imagecodecs' build: the library the viewer's
WebAssembly decoder is built from, Part 1 and HTJ2K), the source by its own decoder
(pyjpip.dicom.source_pixels: pydicom's pixel handlers). Any difference, in shape or in one sample,
is a PixelMismatchError naming the object, the frame (from 1) and the first differing sample, with
both values; the caller then stores nothing. ``pyjpip ingest --no-verify`` skips it for trusted
bulk loads (bench/ingest_proof.py measures what it costs).
"""

from __future__ import annotations

from pyjpip.errors import PixelMismatchError, UnsupportedPixelsError


def decode_served(codestream: bytes):
    """A served codestream decoded whole, at full resolution, components last."""
    import imagecodecs

    return imagecodecs.jpeg2k_decode(codestream)


def first_difference(served, expected) -> tuple[tuple[int, ...], int, int] | None:
    """Where two equally shaped sample arrays first differ (in C order), with both values; None if nowhere."""
    import numpy

    if served.dtype == expected.dtype:
        unequal = served != expected
    else:  # compare values, whatever the integer types (uint16 against int32, say)
        unequal = served.astype(numpy.int64) != expected.astype(numpy.int64)
    if not unequal.any():
        return None
    position = tuple(int(i) for i in numpy.unravel_index(int(numpy.argmax(unequal)), unequal.shape))
    return position, int(served[position]), int(expected[position])


def prove_frame(codestream: bytes, expected, number: int, source: str) -> None:
    """Raise PixelMismatchError unless ``codestream`` decodes to exactly ``expected`` (frame ``number``)."""
    try:
        served = decode_served(codestream)
    except Exception as error:  # noqa: BLE001 - a decoder's refusal is a failed proof
        raise PixelMismatchError(f"{source}: frame {number}: what would be served does not decode ({error})",
                                 number) from None
    if served.shape != expected.shape and served.size == expected.size and expected.ndim == 2:
        served = served.reshape(expected.shape)  # one component decoded as (rows, columns, 1)
    if served.shape != expected.shape:
        raise PixelMismatchError(f"{source}: frame {number}: would be served as {_shape(served.shape)} samples, the "
                                 f"source has {_shape(expected.shape)}", number)
    difference = first_difference(served, expected)
    if difference is not None:
        position, got, want = difference
        where = f"row {position[0]}, column {position[1]}" + (f", component {position[2]}" if len(position) > 2 else "")
        raise PixelMismatchError(f"{source}: frame {number}: served pixels differ from the source's own decoding, "
                                 f"first at {where}: {got} instead of {want}", number, position)


def _shape(shape) -> str:
    return " x ".join(str(n) for n in shape)


def check_range(frame, precision: int, signed: bool, number: int, source: str) -> None:
    """Raise UnsupportedPixelsError if a sample of ``frame`` lies outside what ``precision`` bits
    (signed or not) hold: a codestream of that precision could not carry it."""
    import numpy

    if frame.size == 0:
        return
    low, high = (-(1 << (precision - 1)), (1 << (precision - 1)) - 1) if signed else (0, (1 << precision) - 1)
    smallest, largest = int(frame.min()), int(frame.max())
    if low <= smallest and largest <= high:
        return
    outside = (frame < low) | (frame > high)
    position = tuple(int(i) for i in numpy.unravel_index(int(numpy.argmax(outside)), outside.shape))
    raise UnsupportedPixelsError(
        f"{source}: frame {number}: sample {int(frame[position])} at (row, column) {position[:2]} is outside the "
        f"{precision} bits{' signed' if signed else ''} Bits Stored (0028,0101) and Pixel Representation (0028,0103) "
        "say", "BitsStored")


def bits_needed(smallest: int, largest: int, signed: bool) -> int:
    """The fewest bits that hold every value from ``smallest`` to ``largest`` (two's complement if signed)."""
    if signed:
        return max(1, max(largest, 0).bit_length() + 1, (-min(smallest, 0) - 1).bit_length() + 1)
    return max(1, largest.bit_length())
