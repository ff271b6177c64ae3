"""The Image Pixel Module (PS3.3 C.7.6.3) and Number of Frames (C.7.6.6), as an object's pixels are
read by: each attribute parsed once, checked against the standard and against pyjpip's bounds, and
named when wrong.

Everything here comes from outside (a file, a C-STORE): a value that is not a number, or one that
would make a decoder allocate without bound (a small RLE or deflated frame claiming 65535 x 65535
samples of 64 bits in 10,000 frames), is a PixelAttributeError naming the attribute and its value,
before any pixel is decoded. pydicom's own ``int()`` of a bad IS value ("invalid literal for int()
with base 10: '1A'") never reaches a user.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyjpip.errors import PixelAttributeError

#: Bits Allocated values some transfer syntax allows (PS3.5 8.1.1, 8.2: 1, 8, 16, 32 native; 24, 40
#: for JPEG 2000; 64 for the float pixel data only and refused here).
BITS_ALLOCATED = (1, 8, 16, 24, 32, 40)
#: Photometric Interpretations of PS3.3 C.7.6.3.1.2 still in use (ARGB, CMYK and HSV are retired).
PHOTOMETRIC_INTERPRETATIONS = ("MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", "RGB", "YBR_FULL", "YBR_FULL_422",
                               "YBR_PARTIAL_420", "YBR_ICT", "YBR_RCT")
#: At most this many frames (IS is at most 2^31 - 1, PS3.5 6.2).
MAXIMUM_FRAMES = (1 << 31) - 1


@dataclass(frozen=True)
class ImagePixel:
    """What the pixels are, as the attributes say."""

    rows: int
    columns: int
    samples_per_pixel: int
    photometric_interpretation: str
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    number_of_frames: int
    planar_configuration: int

    @property
    def signed(self) -> bool:
        return self.pixel_representation == 1

    @property
    def frame_samples(self) -> int:
        return self.rows * self.columns * self.samples_per_pixel

    @property
    def decoded_bytes(self) -> int:
        """Bytes the decoded pixels take, all frames, at the bytes per sample of Bits Allocated (one
        byte for 1-bit samples, as decoders unpack them)."""
        return self.frame_samples * max(1, self.bits_allocated // 8) * self.number_of_frames


def named(keyword: str) -> str:
    """An attribute as the standard names it, with its tag: "Number of Frames (0028,0008)"."""
    from pydicom.datadict import dictionary_description, tag_for_keyword

    tag = tag_for_keyword(keyword)
    if tag is None:
        return keyword
    return f"{dictionary_description(tag)} ({tag >> 16:04X},{tag & 0xFFFF:04X})"


def integer(dataset, keyword: str, default: int | None = None, source: str = "") -> int:
    """One integer attribute (US or IS), or PixelAttributeError naming it and its value."""
    prefix = f"{source}: " if source else ""
    try:
        value = dataset.get(keyword, None)
    except (TypeError, ValueError) as error:  # pydicom converts IS/DS on access and may raise
        raw = dataset.get_item(keyword) if hasattr(dataset, "get_item") else None
        shown = getattr(raw, "value", None)
        shown = shown.decode("latin-1", "replace") if isinstance(shown, bytes) else shown
        raise PixelAttributeError(f"{prefix}{named(keyword)} is {str(shown)[:32]!r}, not a number ({error})",
                                  keyword) from None
    if value is None or value == "":
        if default is None:
            raise PixelAttributeError(f"{prefix}{named(keyword)} is missing", keyword)
        return default
    if isinstance(value, (list, tuple)) or hasattr(value, "__len__") and not isinstance(value, (str, bytes)):
        raise PixelAttributeError(f"{prefix}{named(keyword)} has {len(value)} values; one is allowed", keyword)
    try:
        number = int(value)
        if number != float(value):
            raise ValueError("not an integer")
    except (TypeError, ValueError):
        raise PixelAttributeError(f"{prefix}{named(keyword)} is {str(value)[:32]!r}, not an integer", keyword) from None
    return number


def read_image_pixel(dataset, source: str = "", maximum_bytes: int | None = None) -> ImagePixel:
    """The Image Pixel Module of ``dataset`` checked: each value in its range (C.7.6.3.1), Bits
    Stored within Bits Allocated, and the decoded size within ``maximum_bytes`` when given."""
    prefix = f"{source}: " if source else ""

    def bounded(keyword: str, low: int, high: int, default: int | None = None) -> int:
        value = integer(dataset, keyword, default, source)
        if not low <= value <= high:
            raise PixelAttributeError(f"{prefix}{named(keyword)} is {value}, outside {low} to {high}", keyword)
        return value

    rows = bounded("Rows", 1, 65535)
    columns = bounded("Columns", 1, 65535)
    samples = bounded("SamplesPerPixel", 1, 4)
    if samples not in (1, 3):
        raise PixelAttributeError(f"{prefix}{named('SamplesPerPixel')} is {samples}: only 1 (grey, palette) and 3 "
                                  "(colour) are in use (C.7.6.3.1.1)", "SamplesPerPixel")
    photometric = str(dataset.get("PhotometricInterpretation", "") or "").strip().upper()
    if photometric not in PHOTOMETRIC_INTERPRETATIONS:
        raise PixelAttributeError(f"{prefix}{named('PhotometricInterpretation')} is {photometric[:32] or '(missing)'!r}, "
                                  f"not one of {', '.join(PHOTOMETRIC_INTERPRETATIONS)}", "PhotometricInterpretation")
    expected_samples = 1 if photometric in ("MONOCHROME1", "MONOCHROME2", "PALETTE COLOR") else 3
    if samples != expected_samples:
        raise PixelAttributeError(f"{prefix}{named('SamplesPerPixel')} is {samples} but {photometric} has "
                                  f"{expected_samples} (C.7.6.3.1.2)", "SamplesPerPixel")
    bits_allocated = integer(dataset, "BitsAllocated", None, source)
    if bits_allocated not in BITS_ALLOCATED:
        raise PixelAttributeError(f"{prefix}{named('BitsAllocated')} is {bits_allocated}, not one of "
                                  f"{', '.join(map(str, BITS_ALLOCATED))}", "BitsAllocated")
    bits_stored = bounded("BitsStored", 1, bits_allocated)
    representation = bounded("PixelRepresentation", 0, 1, 0)
    frames = bounded("NumberOfFrames", 1, MAXIMUM_FRAMES, 1)
    planar = bounded("PlanarConfiguration", 0, 1, 0) if samples > 1 else 0
    pixels = ImagePixel(rows, columns, samples, photometric, bits_allocated, bits_stored, representation, frames,
                        planar)
    if maximum_bytes is not None and pixels.decoded_bytes > maximum_bytes:
        raise PixelAttributeError(
            f"{prefix}{frames} frame(s) of {rows} x {columns} x {samples} samples of {bits_allocated} bits would "
            f"decode to {pixels.decoded_bytes} bytes, over the limit of {maximum_bytes}", "NumberOfFrames")
    return pixels
