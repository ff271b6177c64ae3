"""Hollow DICOM objects: the JPIP Referenced transfer syntaxes (PS3.5 A.6, A.7, A.11, A.12; PS3.5 8.4).

Every attribute but Pixel Data, which is replaced by a Pixel Data Provider URL (0028,7FE0) that a
JPIP client follows. The data set is Explicit VR Little Endian; for .95 and .205 it is deflated
(raw deflate, RFC 1951, as A.5 does it; a zlib header written by mistake is tolerated on reading).
pydicom 3.0.2 neither inflates nor deflates these two, so this module reads and writes them itself.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from dataclasses import dataclass
from urllib.parse import urlsplit

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import UID

from pyjpip.codestream.markers import MainHeader
from pyjpip.dicom.pixel_data import check_codestream_against_attributes
from pyjpip.errors import DicomError

JPIP_REFERENCED = UID("1.2.840.10008.1.2.4.94")
JPIP_REFERENCED_DEFLATE = UID("1.2.840.10008.1.2.4.95")
JPIP_HTJ2K_REFERENCED = UID("1.2.840.10008.1.2.4.204")
JPIP_HTJ2K_REFERENCED_DEFLATE = UID("1.2.840.10008.1.2.4.205")
JPIP_TRANSFER_SYNTAXES = frozenset({JPIP_REFERENCED, JPIP_REFERENCED_DEFLATE, JPIP_HTJ2K_REFERENCED,
                                    JPIP_HTJ2K_REFERENCED_DEFLATE})
DEFLATED = frozenset({JPIP_REFERENCED_DEFLATE, JPIP_HTJ2K_REFERENCED_DEFLATE})
#: Photometric Interpretations the JPIP syntaxes allow (A.6, A.11).
PHOTOMETRIC_INTERPRETATIONS = ("MONOCHROME1", "MONOCHROME2", "YBR_ICT", "YBR_RCT")
#: Inflated data sets larger than this are refused: hollow objects hold no pixels, so even rich
#: multi-frame headers stay far below it, and a deflate bomb is stopped early.
MAXIMUM_INFLATED_BYTES = 64 << 20


@dataclass(frozen=True)
class HollowObject:
    """A hollow object read from Part 10 bytes: its data set and where its pixels are."""

    dataset: Dataset
    transfer_syntax: UID
    url: str
    number_of_frames: int

    def frame_url(self, frame: int) -> str:
        """The JPIP target URL of frame ``frame`` (from 1): stream=n for multi-frame objects (PS3.5 8.4.1)."""
        if not 1 <= frame <= self.number_of_frames:
            raise DicomError(f"frame {frame} does not exist (the object has {self.number_of_frames})")
        if self.number_of_frames == 1:
            return self.url
        return f"{self.url}{'&' if '?' in self.url else '?'}stream={frame}"

    def check_codestream(self, header: MainHeader) -> list[str]:
        """Disagreements between a codestream that arrived and the attributes (report, do not refuse)."""
        return check_codestream_against_attributes(header, self.dataset)


def read_hollow(data: bytes, source: str = "<bytes>") -> HollowObject:
    """Read a hollow object in any of the four JPIP transfer syntaxes."""
    meta, body_start = _file_meta(data, source)
    transfer_syntax = UID(str(meta.get("TransferSyntaxUID", "")))
    if transfer_syntax not in JPIP_TRANSFER_SYNTAXES:
        raise DicomError(f"{source}: transfer syntax {transfer_syntax or '(none)'} is not a JPIP Referenced one")
    body = data[body_start:]
    if transfer_syntax in DEFLATED:
        body = _inflate(body, source)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            dataset = read_dataset(DicomBytesIO(body), is_implicit_VR=False, is_little_endian=True)
    except Exception as exc:  # pydicom reports damaged data sets with many exception types
        raise DicomError(f"{source}: data set is damaged ({type(exc).__name__}: {exc})") from exc
    for warning in caught:
        if "End of file" in str(warning.message) or "Expected explicit VR" in str(warning.message):
            raise DicomError(f"{source}: data set is damaged or cut short ({warning.message})")
    dataset.file_meta = meta
    if "PixelData" in dataset:
        raise DicomError(f"{source}: a JPIP Referenced object must not hold Pixel Data (7FE0,0010)")
    url = dataset.get("PixelDataProviderURL")
    if not url:
        raise DicomError(f"{source}: no Pixel Data Provider URL (0028,7FE0)")
    url = str(url).strip()
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        raise DicomError(f"{source}: Pixel Data Provider URL {url[:100]!r} is not http or https (PS3.5 8.4.1)")
    photometric = str(dataset.get("PhotometricInterpretation", "")).strip()
    if photometric not in PHOTOMETRIC_INTERPRETATIONS:
        raise DicomError(f"{source}: Photometric Interpretation {photometric or '(missing)'} is not allowed in "
                         f"JPIP Referenced objects ({', '.join(PHOTOMETRIC_INTERPRETATIONS)})")
    try:
        frames = int(dataset.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        raise DicomError(f"{source}: Number of Frames (0028,0008) is not a number") from None
    return HollowObject(dataset, transfer_syntax, url, frames)


def write_hollow(dataset: Dataset, url: str, transfer_syntax: UID = JPIP_REFERENCED) -> bytes:
    """Part 10 bytes of ``dataset`` made hollow: Pixel Data removed, the URL set (VR UR), the
    Photometric Interpretation checked, deflated for .95/.205. The caller's data set is not changed."""
    transfer_syntax = UID(transfer_syntax)
    if transfer_syntax not in JPIP_TRANSFER_SYNTAXES:
        raise DicomError(f"{transfer_syntax} is not a JPIP Referenced transfer syntax")
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        raise DicomError(f"Pixel Data Provider URL {url[:100]!r} must be http or https (PS3.5 8.4.1)")
    hollow = Dataset()
    hollow.update(dataset)  # shallow: the source keeps its elements
    for keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
        if keyword in hollow:
            del hollow[keyword]
    photometric = str(hollow.get("PhotometricInterpretation", "")).strip()
    if photometric == "RGB":
        raise DicomError("Photometric Interpretation RGB is not allowed in JPIP Referenced objects: "
                         "say YBR_RCT or YBR_ICT for the colour transform the codestream uses")
    if photometric not in PHOTOMETRIC_INTERPRETATIONS:
        raise DicomError(f"Photometric Interpretation {photometric or '(missing)'} is not allowed in JPIP "
                         f"Referenced objects ({', '.join(PHOTOMETRIC_INTERPRETATIONS)})")
    hollow.add_new(0x00287FE0, "UR", url)
    meta = FileMetaDataset()
    source_meta = getattr(dataset, "file_meta", None)
    sop_class = hollow.get("SOPClassUID") or (source_meta.get("MediaStorageSOPClassUID") if source_meta else None)
    sop_instance = hollow.get("SOPInstanceUID") or (source_meta.get("MediaStorageSOPInstanceUID") if source_meta else None)
    if not sop_class or not sop_instance:
        raise DicomError("a hollow object needs SOP Class UID and SOP Instance UID")
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    write_dataset(body, hollow)
    data = body.getvalue()
    if transfer_syntax in DEFLATED:
        compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)  # raw deflate: no zlib header
        data = compressor.compress(data) + compressor.flush()
        if len(data) % 2:
            data += b"\x00"  # even length, as for Deflated Explicit VR Little Endian (A.5)
    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = True, False
    out.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(out, meta, enforce_standard=True)
    out.write(data)
    return out.getvalue()


def _file_meta(data: bytes, source: str) -> tuple[FileMetaDataset, int]:
    if len(data) < 144 or data[128:132] != b"DICM":
        raise DicomError(f"{source}: not a DICOM Part 10 file (no 'DICM' prefix)")
    group, element = struct.unpack_from("<HH", data, 132)
    if (group, element) != (2, 0) or data[136:138] != b"UL":
        raise DicomError(f"{source}: file meta information does not start with its group length (0002,0000)")
    (length,) = struct.unpack_from("<I", data, 140)
    end = 144 + length
    if end > len(data):
        raise DicomError(f"{source}: file meta information runs past the end of the file")
    try:
        meta = pydicom.dcmread(io.BytesIO(data[:end]), force=True).file_meta
    except Exception as exc:
        raise DicomError(f"{source}: file meta information is damaged ({exc})") from exc
    return meta, end


def _inflate(body: bytes, source: str) -> bytes:
    """Raw deflate per A.7/A.12; a zlib-wrapped stream (a common mistake) is accepted too."""
    zlib_header = len(body) >= 2 and body[0] & 0x0F == 8 and (body[0] << 8 | body[1]) % 31 == 0
    decompressor = zlib.decompressobj(zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS)
    try:
        data = decompressor.decompress(body, MAXIMUM_INFLATED_BYTES + 1)
    except zlib.error as exc:
        raise DicomError(f"{source}: deflated data set cannot be inflated ({exc})") from None
    if len(data) > MAXIMUM_INFLATED_BYTES or decompressor.unconsumed_tail:
        raise DicomError(f"{source}: deflated data set inflates past {MAXIMUM_INFLATED_BYTES} bytes; refused "
                         "(a hollow object holds no pixels)")
    if not decompressor.eof:
        raise DicomError(f"{source}: deflated data set is cut short")
    return data
