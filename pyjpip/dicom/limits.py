"""Size limits on DICOM input, wherever pyjpip reads it: a file's size is checked (os.stat) before it is
read, bytes already in memory before they are parsed, and a deflated data set is inflated only
through pyjpip.dicom.hollow.inflate, which stops at its limit. Going over a limit is a
DatasetTooLargeError naming the object, its size and the limit.

pydicom 3.0.2 inflates Deflated Explicit VR Little Endian (1.2.840.10008.1.2.1.99, PS3.5 A.5) whole
and unbounded (zlib.decompress in pydicom.filereader.read_partial): a few kilobytes may claim
gigabytes. ``dcmread`` here inflates such a data set itself, bounded, and gives pydicom the result.
"""

from __future__ import annotations

import io
import os

from pyjpip.errors import DatasetTooLargeError

#: A hollow object's data set holds no pixels: even rich multi-frame headers stay far below this.
MAXIMUM_HOLLOW_BYTES = 64 << 20
#: A hollow object's file: its data set (deflated, smaller still) and its file meta information.
MAXIMUM_HOLLOW_FILE_BYTES = MAXIMUM_HOLLOW_BYTES + (1 << 16)
#: Objects with their pixels: a whole-slide image or a long cine can be this large.
MAXIMUM_ORDINARY_BYTES = 4 << 30
DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1.99"


def check_size(size: int, limit: int, source: str, what: str = "DICOM object") -> None:
    if size > limit:
        raise DatasetTooLargeError(f"{source}: {what} of {size} bytes is over the limit of {limit} bytes; refused")


def read_limited(path: str, limit: int, what: str = "DICOM object") -> bytes:
    """The bytes of the file at ``path``, refused before reading when its size is over ``limit``
    (and never more than ``limit`` + 1 read, should it grow meanwhile)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        check_size(size, limit, path, what)
        data = f.read(size + 1)  # read(n) sets n bytes aside first: the size, never the limit
        if len(data) <= size:
            return data
        pieces, total = [data], len(data)  # the file grows as it is read: on, in pieces, up to the limit
        while total <= limit:
            piece = f.read(min(1 << 20, limit + 1 - total))
            if not piece:
                break
            pieces.append(piece)
            total += len(piece)
    check_size(total, limit, path, what)
    return b"".join(pieces)


def dcmread(data: bytes, source: str = "<bytes>", limit: int = MAXIMUM_ORDINARY_BYTES, force: bool = False,
            stop_before_pixels: bool = False):
    """pydicom.dcmread of Part 10 bytes at most ``limit`` long, a deflated data set inflating to at
    most ``limit``. pydicom's own exceptions come through as they are, for the caller to word.

    The file meta information is read as pydicom reads it (the same functions, in the same order),
    so the transfer syntax seen here is the one pydicom would act on."""
    import pydicom
    from pydicom.filereader import _read_command_set_elements, _read_file_meta_info, read_preamble

    check_size(len(data), limit, source)
    stream = io.BytesIO(data)
    try:
        preamble = read_preamble(stream, force)
        meta = _read_file_meta_info(stream)
        command_set = _read_command_set_elements(stream)
    except Exception:  # noqa: BLE001 - pydicom.dcmread below fails the same way, and says it its way
        meta = None
    if meta is None or str(meta.get("TransferSyntaxUID", "")) != DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN:
        return pydicom.dcmread(io.BytesIO(data), force=force, stop_before_pixels=stop_before_pixels)
    from pydicom.dataset import FileDataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.filereader import read_dataset

    from pyjpip.dicom.hollow import inflate

    inflated = inflate(stream.read(), source, limit=limit)
    stop = (lambda tag, vr, length: tag >= 0x7FE00010) if stop_before_pixels else None
    dataset = read_dataset(DicomBytesIO(inflated), is_implicit_VR=False, is_little_endian=True, stop_when=stop)
    if command_set:
        dataset.update(command_set)
    result = FileDataset(source, dataset, preamble, meta, is_implicit_VR=False, is_little_endian=True)
    result.set_original_encoding(False, True, dataset._character_set)
    return result


def transfer_syntax(data: bytes, force: bool = False) -> str | None:
    """The Transfer Syntax UID in the file meta information of Part 10 bytes, read as pydicom reads
    it, without touching the data set; None when there is none or it cannot be read."""
    from pydicom.filereader import _read_file_meta_info, read_preamble

    stream = io.BytesIO(data)
    try:
        read_preamble(stream, force)
        return str(_read_file_meta_info(stream).get("TransferSyntaxUID", "")) or None
    except Exception:  # noqa: BLE001 - pydicom's reading of the data set will say what is wrong
        return None
