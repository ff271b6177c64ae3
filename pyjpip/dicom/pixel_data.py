"""Encapsulated JPEG 2000 pixel data (PS3.5 A.4: fragments, frames) and its agreement with the attributes.

The viewer needs each frame's codestream as bytes and nothing decoded: decoding happens in the
browser's WebAssembly decoder, so this module never touches pixel values (and needs no numpy).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from pyjpip.codestream.file_format import SIGNATURE, read_file_layout
from pyjpip.codestream.markers import MainHeader
from pyjpip.dicom.limits import MAXIMUM_ORDINARY_BYTES, dcmread, transfer_syntax as file_transfer_syntax
from pyjpip.errors import CodestreamError, DatasetTooLargeError, DicomError

log = logging.getLogger(__name__)

#: JPEG 2000 (PS3.5 A.4.4) and HTJ2K (A.4.11) encapsulated transfer syntaxes.
JPEG2000_TRANSFER_SYNTAXES = frozenset(
    UID(uid)
    for uid in (
        "1.2.840.10008.1.2.4.90",  # JPEG 2000 Image Compression (Lossless Only)
        "1.2.840.10008.1.2.4.91",  # JPEG 2000 Image Compression
        "1.2.840.10008.1.2.4.201",  # High-Throughput JPEG 2000 Image Compression (Lossless Only)
        "1.2.840.10008.1.2.4.202",  # High-Throughput JPEG 2000 with RPCL Options (Lossless Only)
        "1.2.840.10008.1.2.4.203",  # High-Throughput JPEG 2000 Image Compression
    )
)


@dataclass(frozen=True)
class EncapsulatedImage:
    """A DICOM image with its attributes and one JPEG 2000 codestream per frame."""

    dataset: Dataset
    transfer_syntax: UID
    frames: tuple[bytes, ...]


def read_encapsulated_image(data: bytes, source: str = "<bytes>",
                            limit: int = MAXIMUM_ORDINARY_BYTES) -> EncapsulatedImage:
    """Read a DICOM Part 10 object whose Pixel Data is encapsulated JPEG 2000 or HTJ2K.

    ``source`` names the object in error messages (a path or URL). Objects over ``limit`` bytes are
    refused (DatasetTooLargeError), and so is any other transfer syntax before its data set is read
    (a deflated one is never inflated).
    """
    syntax = file_transfer_syntax(data)
    if syntax is not None and syntax not in JPEG2000_TRANSFER_SYNTAXES:
        raise DicomError(f"{source}: transfer syntax {syntax} ({UID(syntax).name}) is not JPEG 2000 or HTJ2K")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            dataset = dcmread(data, source, limit)
    except DatasetTooLargeError:
        raise
    except InvalidDicomError as exc:
        raise DicomError(f"{source}: not a readable DICOM file ({exc})") from exc
    except Exception as exc:  # pydicom reports truncation as struct.error, EOFError, ValueError, ...
        raise DicomError(f"{source}: DICOM file is damaged or cut short ({type(exc).__name__}: {exc})") from exc
    for warning in caught:
        if "End of file reached" in str(warning.message):
            raise DicomError(f"{source}: DICOM file is cut short ({warning.message})")
        log.warning("%s: %s", source, warning.message)
    meta = getattr(dataset, "file_meta", None)
    transfer_syntax = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    if transfer_syntax is None:
        raise DicomError(f"{source}: no Transfer Syntax UID in the file meta information")
    if transfer_syntax not in JPEG2000_TRANSFER_SYNTAXES:
        raise DicomError(
            f"{source}: transfer syntax {transfer_syntax} ({transfer_syntax.name}) is not JPEG 2000 or HTJ2K"
        )
    if "PixelData" not in dataset:
        raise DicomError(f"{source}: no Pixel Data (7FE0,0010)")
    try:
        number_of_frames = int(dataset.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError) as exc:
        raise DicomError(f"{source}: Number of Frames (0028,0008) is not a number") from exc
    try:
        frames = tuple(generate_frames(dataset.PixelData, number_of_frames=number_of_frames))
    except Exception as exc:  # pydicom raises ValueError, EOFError or struct.error on bad items
        raise DicomError(f"{source}: encapsulated Pixel Data is malformed ({type(exc).__name__}: {exc})") from exc
    if len(frames) != number_of_frames:
        raise DicomError(f"{source}: {len(frames)} frames in Pixel Data but Number of Frames is {number_of_frames}")
    return EncapsulatedImage(dataset, transfer_syntax, tuple(frame_codestream(f, source) for f in frames))


def frame_codestream(frame: bytes, source: str = "<bytes>") -> bytes:
    """The codestream of one encapsulated frame. PS3.5 A.4.4 wants a bare codestream, but some writers
    (GDCM among them) wrap it in JP2 boxes: take the contiguous codestream box out of those."""
    if frame[:12] != SIGNATURE:
        return frame
    if len(frame) % 2 == 0 and frame.endswith(b"\x00"):
        try:  # fragments are padded to an even length (PS3.5 A.4): the pad is not a box
            read_file_layout(frame[:-1])
            frame = frame[:-1]
        except CodestreamError:
            pass
    try:
        layout = read_file_layout(frame)
    except CodestreamError as error:
        raise DicomError(f"{source}: a frame in JP2 boxes is damaged: {error}") from None
    (start, end), = layout.codestreams[0]
    return frame[start:end]


def check_codestream_against_attributes(header: MainHeader, dataset: Dataset) -> list[str]:
    """List every disagreement between a codestream's SIZ and the Image Pixel Module (PS3.5 A.4.4 rules).

    An empty list means they agree. Disagreements are reported, not raised: real archives hold
    such files (pydicom's J2K_pixelrep_mismatch.dcm) and a viewer should still show them.
    """
    size = header.size
    problems = []
    expected = {
        "Columns": size.width,
        "Rows": size.height,
        "SamplesPerPixel": len(size.components),
        "BitsStored": size.components[0].precision,
        "PixelRepresentation": int(size.components[0].signed),
    }
    for keyword, value in expected.items():
        actual = dataset.get(keyword)
        if actual is None:
            problems.append(f"{keyword} is missing; the codestream says {value}")
        elif int(actual) != value:
            problems.append(f"{keyword} is {int(actual)} but the codestream says {value}")
    return problems
