"""Size limits on DICOM input (pyjpip.dicom.limits): files refused by their size before they are read,
deflated data sets (1.2.840.10008.1.2.1.99, which pydicom inflates unbounded) inflated only up to the
limit, and the readers built on them (hollow objects, encapsulated JPEG 2000 objects)."""

import io
import tracemalloc
import zlib

import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import UID, generate_uid

from pyjpip.dicom import limits
from pyjpip.dicom.hollow import JPIP_REFERENCED, read_hollow, read_hollow_file, write_hollow
from pyjpip.dicom.pixel_data import read_encapsulated_image
from pyjpip.errors import DatasetTooLargeError, DicomError

DEFLATED = UID("1.2.840.10008.1.2.1.99")
URL = "http://sender.example:8000/jpip?target=images/ct.j2k"


def small_image() -> pydicom.Dataset:
    ds = pydicom.Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName = "Limits^Test"
    ds.Modality = "OT"
    ds.Rows = ds.Columns = 16
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = bytes(range(256)) * 2
    return ds


def part10(ds: pydicom.Dataset, syntax, body: bytes | None = None) -> bytes:
    """Part 10 bytes; a deflated syntax's data set raw-deflated (PS3.5 A.5). ``body`` replaces the data set."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = UID(syntax)
    meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
    if body is None:
        out = DicomBytesIO()
        out.is_little_endian, out.is_implicit_VR = True, False
        write_dataset(out, ds)
        body = out.getvalue()
        if syntax == DEFLATED:
            compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
            body = compressor.compress(body) + compressor.flush()
    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = True, False
    out.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(out, meta, enforce_standard=True)
    return out.getvalue() + body


def deflate_bomb(ds: pydicom.Dataset, inflated_bytes: int) -> bytes:
    """A deflated data set: ``ds``, then a private OB element of ``inflated_bytes`` zeros."""
    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = True, False
    write_dataset(out, ds)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    pieces = [compressor.compress(out.getvalue()), compressor.compress(b"\x09\x00\x10\x10OB\0\0"
                                                                       + inflated_bytes.to_bytes(4, "little"))]
    zeros = b"\0" * (1 << 20)
    for _ in range(inflated_bytes >> 20):
        pieces.append(compressor.compress(zeros))
    pieces.append(compressor.flush())
    return b"".join(pieces)


def test_a_deflated_object_is_read_as_pydicom_reads_it():
    ds = small_image()
    data = part10(ds, DEFLATED)
    ours, theirs = limits.dcmread(data, "small.dcm"), pydicom.dcmread(io.BytesIO(data))
    assert ours == theirs and ours.PixelData == ds.PixelData
    assert ours.file_meta.TransferSyntaxUID == DEFLATED and ours.original_encoding == (False, True)
    assert "PixelData" not in limits.dcmread(data, "small.dcm", stop_before_pixels=True)


def test_a_deflate_bomb_stops_at_the_limit_without_inflating_it():
    data = part10(small_image(), DEFLATED, deflate_bomb(small_image(), 48 << 20))
    assert len(data) < 100_000  # 48 MiB in under 100 kB
    tracemalloc.start()
    try:
        with pytest.raises(DatasetTooLargeError, match=r"bomb\.dcm: deflated data set inflates past 1048576 bytes"):
            limits.dcmread(data, "bomb.dcm", limit=1 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, peak  # never near the 48 MiB it claims


def test_bytes_over_the_limit_are_refused_before_they_are_parsed():
    data = part10(small_image(), "1.2.840.10008.1.2.1")
    assert limits.dcmread(data, "x.dcm", limit=len(data)).PatientName == "Limits^Test"
    with pytest.raises(DatasetTooLargeError, match=rf"x\.dcm: DICOM object of {len(data)} bytes is over the limit "
                                                    rf"of {len(data) - 1} bytes"):
        limits.dcmread(data, "x.dcm", limit=len(data) - 1)


def test_a_file_over_the_limit_is_refused_by_its_size(tmp_path):
    path = tmp_path / "big.dcm"
    path.write_bytes(b"\0" * 5000)
    assert len(limits.read_limited(str(path), 5000)) == 5000
    with pytest.raises(DatasetTooLargeError, match=r"big\.dcm: hollow object of 5000 bytes is over the limit of 4999"):
        limits.read_limited(str(path), 4999, "hollow object")


def test_hollow_objects_over_the_limit_are_refused(tmp_path):
    ds = small_image()
    del ds.PixelData
    ds.add_new(0x00091010, "OB", b"\1" * 4000)
    data = write_hollow(ds, URL, JPIP_REFERENCED)
    assert read_hollow(data).url == URL
    with pytest.raises(DatasetTooLargeError, match="hollow data set of .* over the limit of 2000 bytes"):
        read_hollow(data, "h.dcm", limit=2000)
    path = tmp_path / "h.dcm"
    path.write_bytes(data)
    assert read_hollow_file(str(path)).url == URL


def test_an_encapsulated_image_reader_refuses_other_syntaxes_before_reading_them():
    """`pyjpip dicom` and the viewer's ?dicom= objects: a deflated bomb is refused as what it is, not
    inflated; a JPEG 2000 object over the limit is refused by its size."""
    bomb = part10(small_image(), DEFLATED, deflate_bomb(small_image(), 48 << 20))
    tracemalloc.start()
    try:
        with pytest.raises(DicomError, match=r"1\.2\.840\.10008\.1\.2\.1\.99 .* is not JPEG 2000 or HTJ2K"):
            read_encapsulated_image(bomb, "bomb.dcm")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, peak
    j2k = part10(small_image(), "1.2.840.10008.1.2.4.90")
    with pytest.raises(DatasetTooLargeError, match="over the limit of 100 bytes"):
        read_encapsulated_image(j2k, "j.dcm", limit=100)
