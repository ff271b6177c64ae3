"""An ordinary object's pixels as its own encoding gives them (CPython tooling: numpy, pydicom's
pixel handlers): what ingest encodes when a source must be encoded, and the reference every served
frame is proven against (pyjpip.dicom.pixel_proof).

pydicom 3.0.2 decodes native (PS3.5 8.1), deflated data sets (A.5), RLE (Annex G), JPEG (A.4.1-A.4.3
through pylibjpeg-libjpeg), JPEG-LS (A.4.3, pyjpegls) and JPEG 2000 (A.4.4, pylibjpeg-openjpeg). This
module adds what it lacks, each by the clause it implements:

- Deflated Image Frame Compression (1.2.840.10008.1.2.8.1, PS3.5 8.2.16, A.4.13): each frame one
  fragment, raw deflate (RFC 1951) of the frame's native little-endian bytes; a 1-bit frame starts
  on a byte boundary. Inflated with a bound (the frame's size), then read as native pixels.
- RLE Lossless with Bits Allocated 1 (PS3.5 8.2.2, Annex G as pydicom's later releases read it):
  one byte-segment per sample, a byte per pixel, each 0 or 1.
- JPEG Extended 12-bit grey (A.4.1, process 4) that libjpeg refuses: decoded by libjpeg-turbo in
  imagecodecs (the result equals DCMTK's dcmdjpeg, a test says).

and what the JPIP Referenced syntaxes need of the samples (PS3.5 A.6: grey or a colour transform,
no palette): samples in native byte order (pydicom keeps big-endian arrays big-endian), YBR_FULL and
YBR_FULL_422 as RGB (pydicom's conversion), PALETTE COLOR expanded through its lookup tables to RGB
at the tables' precision (lossless; the object says so as derived).

A sample value outside what Bits Stored and Pixel Representation allow is refused naming the
frame, since no codestream of that precision can hold it.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from pydicom.uid import UID

from pyjpip.dicom.image_pixel import ImagePixel, named, read_image_pixel
from pyjpip.errors import DicomError, UnsupportedPixelsError

log = logging.getLogger(__name__)

DEFLATED_IMAGE_FRAME_COMPRESSION = UID("1.2.840.10008.1.2.8.1")
RLE_LOSSLESS = UID("1.2.840.10008.1.2.5")
EXPLICIT_VR_LITTLE_ENDIAN = UID("1.2.840.10008.1.2.1")
#: Native (not encapsulated) encodings of Pixel Data (PS3.5 A.1-A.3, A.5).
NATIVE = frozenset(UID(u) for u in ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2",
                                    "1.2.840.10008.1.2.1.99"))
#: JPEG processes (PS3.5 A.4.1) whose grey 12-bit frames libjpeg-turbo decodes when libjpeg will not.
JPEG_LOSSY = frozenset(UID(u) for u in ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"))
#: The most bits per sample a JPEG 2000 codestream reproduces exactly here: OpenJPEG (the server's
#: check and the viewer's WebAssembly decoder) and its encoder in imagecodecs round-trip 24-bit
#: samples losslessly and not 25 or more (measured; 15444-1 allows 38).
MAXIMUM_EXACT_PRECISION = 24
#: The lookup table attributes PALETTE COLOR carries (PS3.3 C.7.6.3.1.5, C.7.9): gone once expanded.
PALETTE_ATTRIBUTES = tuple(f"{colour}PaletteColorLookupTable{part}" for colour in ("Red", "Green", "Blue")
                           for part in ("Descriptor", "Data")) + tuple(
    f"Segmented{colour}PaletteColorLookupTableData" for colour in ("Red", "Green", "Blue")) + (
    "PaletteColorLookupTableUID",)


@dataclass
class SourcePixels:
    """An object's frames as samples: ``frames()`` yields each, (rows, columns) or (rows, columns, 3),
    integers in native byte order, grey or RGB. ``precision`` and ``signed`` are what a codestream
    holding them says; ``photometric`` what they are (MONOCHROME1, MONOCHROME2 or RGB);
    ``derivation`` why they are a re-representation of the source's (None when they are not)."""

    image: ImagePixel
    source: str
    photometric: str
    precision: int
    signed: bool
    derivation: str | None = None
    notes: list[str] = field(default_factory=list)
    _decode: object = None  # () -> iterator of raw frames (before to_served)
    _palette: object = None  # the dataset whose palette expands index frames

    @property
    def count(self) -> int:
        return self.image.number_of_frames

    @property
    def palette_expanded(self) -> bool:
        """Whether the frames are PALETTE COLOR indices expanded through their tables."""
        return self._palette is not None

    def frames(self) -> Iterator:
        for number, frame in enumerate(self._decode(), 1):
            yield self._served(frame, number)

    def _served(self, frame, number: int):
        import numpy

        frame = numpy.asarray(frame)
        if frame.dtype.byteorder not in ("=", "|"):
            frame = frame.astype(frame.dtype.newbyteorder("="))  # big-endian sources (PS3.5 A.3)
        if self._palette is not None:
            from pydicom.pixels import apply_color_lut

            frame = apply_color_lut(frame, self._palette)
        if frame.dtype.kind not in "iu":
            raise UnsupportedPixelsError(f"{self.source}: frame {number} decodes to {frame.dtype} samples, not integers",
                                         "PixelData")
        return frame


def read_source_pixels(dataset, syntax: UID, source: str, maximum_bytes: int | None = None) -> SourcePixels:
    """The pixels of ``dataset`` (encoded in ``syntax``) as samples to serve, frame by frame, or a
    one-line DicomError saying which attribute or frame makes that impossible."""
    image = read_image_pixel(dataset, source, maximum_bytes)
    photometric = image.photometric_interpretation
    precision, signed = image.bits_stored, image.signed
    pixels = SourcePixels(image, source, "RGB" if image.samples_per_pixel == 3 else photometric, precision, signed)
    if photometric == "PALETTE COLOR":
        bits = _palette_bits(dataset, source)
        pixels.photometric, pixels.precision, pixels.signed, pixels._palette = "RGB", bits, False, dataset
        pixels.derivation = ("PALETTE COLOR expanded losslessly to RGB through its Palette Color Lookup Tables "
                             f"({bits} bits): JPIP Referenced objects hold grey or a colour transform (PS3.5 A.6)")
    if image.samples_per_pixel == 3 and image.signed:
        raise UnsupportedPixelsError(f"{source}: colour with {named('PixelRepresentation')} 1 (signed); C.7.6.3.1 "
                                     "allows only unsigned colour samples", "PixelRepresentation")
    if syntax in NATIVE and "PixelData" in dataset:
        held = len(dataset.PixelData)
        per_frame = image.frame_samples * 2 // 3 if photometric == "YBR_FULL_422" else image.frame_samples  # C.7.6.3.1.2
        bits = per_frame * image.number_of_frames * image.bits_allocated
        if held < (bits + 7) // 8:
            raise DicomError(f"{source}: Pixel Data (7FE0,0010) holds {held} bytes; {image.number_of_frames} frame(s) "
                             f"of {image.rows} x {image.columns} x {image.samples_per_pixel} samples of "
                             f"{image.bits_allocated} bits need {(bits + 7) // 8} (the object is cut short)")
    if syntax == DEFLATED_IMAGE_FRAME_COMPRESSION:
        pixels._decode = lambda: _deflated_frames(dataset, image, source)
    elif syntax in NATIVE and image.bits_allocated == 1:
        pixels._decode = lambda: _native_single_bit_frames(dataset, syntax, image)
    elif syntax == RLE_LOSSLESS and image.bits_allocated == 1:
        pixels._decode = lambda: _rle_single_bit_frames(dataset, image, source)
    else:
        pixels._decode = lambda: _pydicom_frames(dataset, syntax, image, source)
    return pixels


def _palette_bits(dataset, source: str) -> int:
    """The bits per entry of the palette's tables (C.7.6.3.1.5: the descriptor's third value, 8 or 16)."""
    bits = set()
    for colour in ("Red", "Green", "Blue"):
        descriptor = dataset.get(f"{colour}PaletteColorLookupTableDescriptor")
        if descriptor is None or len(descriptor) != 3:
            keyword = f"{colour}PaletteColorLookupTableDescriptor"
            raise UnsupportedPixelsError(f"{source}: PALETTE COLOR without a three-valued {named(keyword)}", keyword)
        bits.add(int(descriptor[2]))
    if len(bits) != 1 or not bits <= {8, 16}:
        raise UnsupportedPixelsError(f"{source}: Palette Color Lookup Table Descriptors give {sorted(bits)} bits per "
                                     "entry; 8 or 16, the same for the three, are allowed (C.7.6.3.1.5)",
                                     "RedPaletteColorLookupTableDescriptor")
    return bits.pop()


def _quiet_pydicom():
    """pydicom's decoders log a traceback per failed plugin: the one-line reason is said here."""
    pydicom_log = logging.getLogger("pydicom")
    level = pydicom_log.level
    pydicom_log.setLevel(logging.CRITICAL)
    return pydicom_log, level


def _pydicom_frames(dataset, syntax: UID, image: ImagePixel, source: str, options: dict | None = None):
    """pydicom's decoding, frame by frame (its iter_pixels: one frame in memory at a time)."""
    from pydicom.pixels import iter_pixels

    pydicom_log, level = _quiet_pydicom()
    number = 0
    try:
        for number, frame in enumerate(iter_pixels(dataset, **(options or {})), 1):
            pydicom_log.setLevel(level)
            yield frame
            pydicom_log.setLevel(logging.CRITICAL)
    except ImportError:
        raise
    except DicomError:
        raise
    except Exception as error:  # noqa: BLE001 - every plugin's own failure
        if number == 0 and syntax in JPEG_LOSSY and image.samples_per_pixel == 1 and not image.signed:
            pydicom_log.setLevel(level)
            yield from _jpeg_turbo_frames(dataset, image, source, error)
            return
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        plugins = [line for line in lines if ": " in line and not line.startswith("Unable to decode")]
        reason = "; ".join(plugins or lines[-1:]) or type(error).__name__  # what each plugin said, one line
        where = f"frame {number + 1} of " if image.number_of_frames > 1 else ""
        raise DicomError(f"{source}: {where}its pixel data ({syntax.name}) cannot be decoded here: "
                         f"{reason[:400]}") from None
    finally:
        pydicom_log.setLevel(level)


def _jpeg_turbo_frames(dataset, image: ImagePixel, source: str, first_error: Exception):
    """Grey JPEG (8 or 12 bits) through libjpeg-turbo in imagecodecs: pydicom's libjpeg is strict about
    scan parameters some 12-bit writers got wrong; libjpeg-turbo and DCMTK read them."""
    import imagecodecs
    from pydicom.encaps import generate_frames

    for number, fragment in enumerate(generate_frames(dataset.PixelData, number_of_frames=image.number_of_frames), 1):
        try:
            frame = imagecodecs.jpeg8_decode(fragment)
        except Exception as error:  # noqa: BLE001 - both decoders failed: say both
            raise DicomError(f"{source}: frame {number}: JPEG cannot be decoded here (libjpeg: "
                             f"{str(first_error).splitlines()[-1].strip()}; libjpeg-turbo: {error})") from None
        if frame.shape != (image.rows, image.columns):
            raise DicomError(f"{source}: frame {number}: the JPEG is {frame.shape[1]} x {frame.shape[0]}, but Rows x "
                             f"Columns say {image.columns} x {image.rows}")
        yield frame


def _frame_bytes(image: ImagePixel) -> int:
    if image.bits_allocated == 1:
        return (image.frame_samples + 7) // 8
    return image.frame_samples * image.bits_allocated // 8


def _deflated_frames(dataset, image: ImagePixel, source: str):
    """PS3.5 8.2.16: each frame, inflated (no zlib header), is that frame's native pixel data."""
    import numpy
    from pydicom.encaps import generate_frames

    expected = _frame_bytes(image)
    fragments = generate_frames(dataset.PixelData, number_of_frames=image.number_of_frames)
    for number, fragment in enumerate(fragments, 1):
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            native = inflater.decompress(fragment, expected + 1)
        except zlib.error as error:
            raise DicomError(f"{source}: frame {number} is not raw deflate data (PS3.5 8.2.16): {error}") from None
        if len(native) != expected and not (len(native) == expected + 1 and expected % 2):
            raise DicomError(f"{source}: frame {number} inflates to {len(native)}{'+' if inflater.unconsumed_tail else ''}"
                             f" bytes; Rows, Columns, Samples per Pixel and Bits Allocated give {expected}")
        native = native[:expected]
        if image.bits_allocated == 1:
            bits = numpy.unpackbits(numpy.frombuffer(native, numpy.uint8), bitorder="little")[:image.frame_samples]
            yield bits.reshape(image.rows, image.columns)
            continue
        yield _native_frame(dataset, image, native, source)


def _native_frame(dataset, image: ImagePixel, native: bytes, source: str):
    """One frame's native little-endian bytes read as pydicom reads Explicit VR Little Endian: the same
    attributes, a data set of this one frame."""
    from pydicom.dataset import Dataset, FileMetaDataset

    one = Dataset()
    for keyword in ("Rows", "Columns", "SamplesPerPixel", "PhotometricInterpretation", "PlanarConfiguration",
                    "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation"):
        if keyword in dataset:
            one[keyword] = dataset[keyword]
    one.NumberOfFrames = 1
    one.file_meta = FileMetaDataset()
    one.file_meta.TransferSyntaxUID = EXPLICIT_VR_LITTLE_ENDIAN
    one.PixelData = native + (b"\0" if len(native) % 2 else b"")
    one["PixelData"].VR = "OB" if image.bits_allocated <= 8 else "OW"
    return next(_pydicom_frames(one, EXPLICIT_VR_LITTLE_ENDIAN, image, source))


def _native_single_bit_frames(dataset, syntax: UID, image: ImagePixel):
    """Native 1-bit pixels (PS3.5 8.1.1, D.1): packed from the least significant bit, frames one after the
    other with no padding between them (a frame of 35 pixels starts mid-byte; pydicom 3.0.2's frame by
    frame reading gets that wrong). In Explicit VR Big Endian an OW value's 16-bit words are swapped."""
    import numpy

    data = numpy.frombuffer(dataset.PixelData, numpy.uint8)
    if syntax == "1.2.840.10008.1.2.2" and dataset["PixelData"].VR == "OW":
        even = data[: len(data) // 2 * 2]
        data = numpy.concatenate([even.reshape(-1, 2)[:, ::-1].reshape(-1), data[len(even):]])
    bits = numpy.unpackbits(data, bitorder="little")
    per_frame = image.rows * image.columns
    for number in range(image.number_of_frames):
        yield bits[number * per_frame:(number + 1) * per_frame].reshape(image.rows, image.columns)


def _rle_single_bit_frames(dataset, image: ImagePixel, source: str):
    """RLE with Bits Allocated 1: each segment holds a byte per pixel, 0 or 1 (pydicom 3.0.2 refuses
    it: it is read here as 8-bit RLE, then each value checked)."""
    import numpy
    from pydicom.dataset import Dataset

    eight = Dataset()
    eight.update(dataset)
    eight.file_meta = dataset.file_meta
    eight.BitsAllocated, eight.BitsStored, eight.HighBit, eight.PixelRepresentation = 8, 8, 7, 0
    for number, frame in enumerate(_pydicom_frames(eight, RLE_LOSSLESS, image, source), 1):
        if frame.size and int(frame.max()) > 1:
            position = tuple(int(i) for i in numpy.argwhere(frame > 1)[0])
            raise DicomError(f"{source}: RLE frame {number} of a 1-bit object holds {int(frame[position])} at "
                             f"(row, column) {position}; a 1-bit sample is 0 or 1")
        yield frame
