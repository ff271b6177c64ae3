"""Hollow DICOM objects: the JPIP Referenced transfer syntaxes (PS3.5 A.6, A.7, A.11, A.12; PS3.5 8.4).

Every attribute but Pixel Data, which is replaced by a Pixel Data Provider URL (0028,7FE0) that a
JPIP client follows. The data set is Explicit VR Little Endian; for .95 and .205 it is deflated
(raw deflate, RFC 1951, as A.5 does it; a zlib header written by mistake is tolerated on reading).
pydicom 3.0.2 neither inflates nor deflates these two, so this module reads and writes them itself.
"""

from __future__ import annotations

import io
import struct
import sys
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
from pyjpip.dicom.image_pixel import MAXIMUM_FRAMES
from pyjpip.dicom.limits import MAXIMUM_HOLLOW_BYTES, MAXIMUM_HOLLOW_FILE_BYTES, check_size, read_limited
from pyjpip.dicom.pixel_data import check_codestream_against_attributes
from pyjpip.errors import (DamagedDatasetError, DatasetTooLargeError, DicomError, NotHollowError,
                           NotJPIPReferencedError, NotPart10Error)

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
#: multi-frame headers stay far below it, and a deflate bomb is stopped early (pyjpip.dicom.limits).
MAXIMUM_INFLATED_BYTES = MAXIMUM_HOLLOW_BYTES
#: Longer Pixel Data Provider URLs are refused: browsers and servers stop near 8 KB anyway.
MAXIMUM_URL_LENGTH = 8192


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


def read_hollow(data: bytes, source: str = "<bytes>", limit: int = MAXIMUM_INFLATED_BYTES) -> HollowObject:
    """Read a hollow object in any of the four JPIP transfer syntaxes; a data set (inflated) over
    ``limit`` bytes is a DatasetTooLargeError, found before it is parsed or inflated past the limit."""
    meta, body_start = read_file_meta(data, source)
    transfer_syntax = UID(str(meta.get("TransferSyntaxUID", "")))
    if transfer_syntax not in JPIP_TRANSFER_SYNTAXES:
        raise NotJPIPReferencedError(f"{source}: transfer syntax {transfer_syntax or '(none)'} is not a JPIP "
                                     "Referenced one")
    body = data[body_start:]
    if transfer_syntax in DEFLATED:
        body = inflate(body, source, limit)
    else:
        check_size(len(body), limit, source, "hollow data set")
    dataset = parse_explicit_little_endian(body, source)
    dataset.file_meta = meta
    url, frames = check_hollow(dataset, source)
    return HollowObject(dataset, transfer_syntax, url, frames)


def read_hollow_file(path: str, limit: int = MAXIMUM_INFLATED_BYTES) -> HollowObject:
    """read_hollow of a file, refused by its size (os.stat) before it is read when it is larger than
    a hollow object with a data set of ``limit`` bytes can be."""
    return read_hollow(read_limited(path, limit + MAXIMUM_HOLLOW_FILE_BYTES - MAXIMUM_HOLLOW_BYTES,
                                    "hollow object"), path, limit)


def parse_explicit_little_endian(body: bytes, source: str = "<bytes>") -> Dataset:
    """A data set encoded as every JPIP syntax encodes it (A.6: Explicit VR Little Endian), read at
    once so that damage is found here and not when an element is first used."""
    check_explicit_little_endian(body, source)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            dataset = read_dataset(DicomBytesIO(body), is_implicit_VR=False, is_little_endian=True)
            for element in dataset.iterall():  # pydicom parses lazily: make it parse now
                element.value
    except Exception as exc:  # pydicom reports damaged data sets with many exception types
        raise DamagedDatasetError(f"{source}: data set is damaged ({type(exc).__name__}: {exc})") from exc
    for warning in caught:
        if "End of file" in str(warning.message) or "Expected explicit VR" in str(warning.message):
            raise DamagedDatasetError(f"{source}: data set is damaged or cut short ({warning.message})")
    return dataset


#: VRs whose explicit-VR header has two reserved bytes and a 32-bit length (PS3.5 7.1.2).
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV", b"UV"})
_UNDEFINED = 0xFFFFFFFF


def check_explicit_little_endian(body, source: str = "<bytes>") -> None:
    """Walk every element header (PS3.5 7.1.2, 7.5): each value must fit in the bytes, sequences and
    items of undefined length must end with their delimiters. pydicom reads a value cut short
    without a word, so a data set broken off mid-element is found here."""
    data = memoryview(body)
    end = _walk_elements(data, 0, len(data), source, depth=0, until_delimiter=False)
    if end != len(data):
        raise DamagedDatasetError(f"{source}: data set has {len(data) - end} stray bytes at byte {end}")


def _walk_elements(data, offset: int, end: int, source: str, depth: int, until_delimiter: bool,
                   implicit: bool = False) -> int:
    if depth > 32:
        raise DamagedDatasetError(f"{source}: sequences nested more than 32 deep at byte {offset}")
    while offset < end:
        if end - offset < 8:
            raise DamagedDatasetError(f"{source}: data set is cut short inside an element header at byte {offset}")
        group, element = struct.unpack_from("<HH", data, offset)
        start = offset
        if group == 0xFFFE:  # item delimiter ends an item of undefined length
            if element == 0xE00D and until_delimiter:
                return offset + 8
            raise DamagedDatasetError(f"{source}: unexpected delimiter ({group:04X},{element:04X}) at byte {offset}")
        if implicit:  # inside an undefined-length UN: implicit VR (PS3.5 6.2.2)
            vr = b"UN"
            (length,) = struct.unpack_from("<I", data, offset + 4)
            offset += 8
        else:
            vr = bytes(data[offset + 4:offset + 6])
            if not (65 <= vr[0] <= 90 and 65 <= vr[1] <= 90):
                raise DamagedDatasetError(f"{source}: element ({group:04X},{element:04X}) at byte {offset} has no "
                                          f"explicit VR (found {vr!r}): not Explicit VR Little Endian")
            if vr in _LONG_VRS:
                if end - offset < 12:
                    raise DamagedDatasetError(f"{source}: data set is cut short inside an element header at byte "
                                              f"{offset}")
                (length,) = struct.unpack_from("<I", data, offset + 8)
                offset += 12
            else:
                (length,) = struct.unpack_from("<H", data, offset + 6)
                offset += 8
        if length == _UNDEFINED:
            if vr in (b"OB", b"OW") and (group, element) == (0x7FE0, 0x0010):
                offset = _walk_items(data, offset, end, source, depth + 1, fragments=True)
            elif vr in (b"SQ", b"UN"):
                offset = _walk_items(data, offset, end, source, depth + 1, implicit=implicit or vr == b"UN")
            else:
                raise DamagedDatasetError(f"{source}: ({group:04X},{element:04X}) {vr.decode()} has an undefined "
                                          f"length at byte {start}")
            continue
        if length > end - offset:
            raise DamagedDatasetError(f"{source}: ({group:04X},{element:04X}) says {length} bytes but only "
                                      f"{end - offset} remain at byte {offset}: the data set is cut short")
        if vr == b"SQ":
            _walk_items(data, offset, offset + length, source, depth + 1, defined=True, implicit=implicit)
        offset += length
    if until_delimiter:
        raise DamagedDatasetError(f"{source}: an item of undefined length has no Item Delimitation Item")
    return offset


def _walk_items(data, offset: int, end: int, source: str, depth: int, defined: bool = False,
                fragments: bool = False, implicit: bool = False) -> int:
    """Items of a sequence (or the fragments of encapsulated Pixel Data) up to the Sequence
    Delimitation Item, or to ``end`` for a sequence of defined length."""
    while offset < end:
        if end - offset < 8:
            raise DamagedDatasetError(f"{source}: data set is cut short inside an item header at byte {offset}")
        group, element, length = struct.unpack_from("<HHI", data, offset)
        offset += 8
        if (group, element) == (0xFFFE, 0xE0DD):
            if defined:
                raise DamagedDatasetError(f"{source}: a sequence of defined length holds a delimiter at byte "
                                          f"{offset - 8}")
            return offset
        if (group, element) != (0xFFFE, 0xE000):
            raise DamagedDatasetError(f"{source}: expected an item at byte {offset - 8}, found "
                                      f"({group:04X},{element:04X})")
        if length == _UNDEFINED:
            if fragments:
                raise DamagedDatasetError(f"{source}: a fragment of undefined length at byte {offset - 8}")
            offset = _walk_elements(data, offset, end, source, depth, until_delimiter=True, implicit=implicit)
            continue
        if length > end - offset:
            raise DamagedDatasetError(f"{source}: an item says {length} bytes but only {end - offset} remain at "
                                      f"byte {offset}: the data set is cut short")
        if not fragments:
            _walk_elements(data, offset, offset + length, source, depth, until_delimiter=False, implicit=implicit)
        offset += length
    if not defined:
        raise DamagedDatasetError(f"{source}: a sequence of undefined length has no Sequence Delimitation Item")
    return offset


def check_url(url: str, source: str = "<bytes>") -> str:
    """A Pixel Data Provider URL as PS3.5 8.4.1 allows it: http or https, a host, nothing a URL cannot
    hold. Returned stripped of the padding a DICOM string may carry."""
    url = str(url).strip().rstrip("\x00")
    if not url:
        raise NotHollowError(f"{source}: no Pixel Data Provider URL (0028,7FE0)", "PixelDataProviderURL")
    if len(url) > MAXIMUM_URL_LENGTH:
        raise NotHollowError(f"{source}: Pixel Data Provider URL is {len(url)} characters long (at most "
                             f"{MAXIMUM_URL_LENGTH} are taken)", "PixelDataProviderURL")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise NotHollowError(f"{source}: Pixel Data Provider URL {url[:100]!r} holds spaces or control "
                             "characters", "PixelDataProviderURL")
    try:
        parts = urlsplit(url)
        parts.port  # raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise NotHollowError(f"{source}: Pixel Data Provider URL {url[:100]!r} is malformed ({exc})",
                             "PixelDataProviderURL") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise NotHollowError(f"{source}: Pixel Data Provider URL {url[:100]!r} is not http or https "
                             "(PS3.5 8.4.1)", "PixelDataProviderURL")
    if not parts.hostname:
        raise NotHollowError(f"{source}: Pixel Data Provider URL {url[:100]!r} names no host",
                             "PixelDataProviderURL")
    return url


def check_hollow(dataset: Dataset, source: str = "<bytes>") -> tuple[str, int]:
    """The rules of A.6/A.11 a hollow data set must keep; returns its URL and number of frames."""
    for keyword, name, tag in (("PixelData", "Pixel Data", "7FE0,0010"),
                               ("FloatPixelData", "Float Pixel Data", "7FE0,0008"),
                               ("DoubleFloatPixelData", "Double Float Pixel Data", "7FE0,0009")):
        if keyword in dataset:
            raise NotHollowError(f"{source}: a JPIP Referenced object must not hold {name} ({tag})", keyword)
    url = check_url(dataset.get("PixelDataProviderURL") or "", source)
    photometric = str(dataset.get("PhotometricInterpretation", "")).strip()
    if photometric not in PHOTOMETRIC_INTERPRETATIONS:
        raise NotHollowError(f"{source}: Photometric Interpretation {photometric or '(missing)'} is not allowed "
                             f"in JPIP Referenced objects ({', '.join(PHOTOMETRIC_INTERPRETATIONS)})",
                             "PhotometricInterpretation")
    for group in range(0x6000, 0x6020, 2):  # A.6: overlays only in Overlay Data, never in Pixel Data's bits
        if (group << 16 | 0x0100) in dataset and (group << 16 | 0x3000) not in dataset:
            raise NotHollowError(f"{source}: overlay group {group:04X} has no Overlay Data ({group:04X},3000); "
                                 "in JPIP Referenced objects overlays cannot be kept in pixel bits", "OverlayData")
    try:
        frames = int(dataset.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        raise NotHollowError(f"{source}: Number of Frames (0028,0008) is not a number", "NumberOfFrames") from None
    if not 1 <= frames <= MAXIMUM_FRAMES:
        raise NotHollowError(f"{source}: Number of Frames (0028,0008) is {frames}, outside 1 to {MAXIMUM_FRAMES} "
                             "(an IS value, PS3.5 6.2)", "NumberOfFrames")
    return url, frames


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
    return part10(meta, data)


def part10(meta: FileMetaDataset, dataset_bytes: bytes) -> bytes:
    """Part 10 bytes: preamble, file meta, then ``dataset_bytes`` (Explicit VR Little Endian, not
    deflated) deflated when the meta's transfer syntax says so."""
    if UID(str(meta.TransferSyntaxUID)) in DEFLATED:
        dataset_bytes = deflate(dataset_bytes)
    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = True, False
    out.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(out, meta, enforce_standard=True)
    out.write(dataset_bytes)
    return out.getvalue()


def read_file_meta(data: bytes, source: str = "<bytes>") -> tuple[FileMetaDataset, int]:
    """The file meta information of Part 10 bytes, and where the data set starts."""
    if len(data) < 144 or data[128:132] != b"DICM":
        raise NotPart10Error(f"{source}: not a DICOM Part 10 file (no 'DICM' prefix)")
    group, element = struct.unpack_from("<HH", data, 132)
    if (group, element) != (2, 0) or data[136:138] != b"UL":
        raise DamagedDatasetError(f"{source}: file meta information does not start with its group length (0002,0000)")
    (length,) = struct.unpack_from("<I", data, 140)
    end = 144 + length
    if end > len(data):
        raise DamagedDatasetError(f"{source}: file meta information runs past the end of the file")
    try:
        meta = pydicom.dcmread(io.BytesIO(data[:end]), force=True).file_meta
    except Exception as exc:
        raise DamagedDatasetError(f"{source}: file meta information is damaged ({exc})") from exc
    return meta, end


def deflate(data: bytes) -> bytes:
    """A.7/A.12 (as A.5): raw deflate, no zlib header, padded to an even length."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    data = compressor.compress(data) + compressor.flush()
    return data + b"\x00" if len(data) % 2 else data


def inflate(body: bytes, source: str = "<bytes>", limit: int | None = None) -> bytes:
    """Raw deflate per A.7/A.12; a zlib-wrapped stream (a common mistake) is accepted too. Stops at
    ``limit`` bytes (MAXIMUM_INFLATED_BYTES by default): a deflate bomb is refused, never inflated."""
    limit = MAXIMUM_INFLATED_BYTES if limit is None else limit
    zlib_header = len(body) >= 2 and body[0] & 0x0F == 8 and (body[0] << 8 | body[1]) % 31 == 0
    decompressor = zlib.decompressobj(zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS)
    try:
        data = decompressor.decompress(body, min(limit + 1, sys.maxsize))  # 2 GiB - 1 on 32-bit WebAssembly
    except zlib.error as exc:
        raise DamagedDatasetError(f"{source}: deflated data set cannot be inflated ({exc})") from None
    if len(data) > limit or decompressor.unconsumed_tail:
        raise DatasetTooLargeError(f"{source}: deflated data set inflates past {limit} bytes; refused (a deflate "
                                   "bomb, or a data set over this limit)")
    if not decompressor.eof:
        raise DamagedDatasetError(f"{source}: deflated data set is cut short")
    return data
