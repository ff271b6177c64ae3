"""Hollow objects (JPIP Referenced transfer syntaxes): written and read in all four, deflate done right."""

import io
import struct
import warnings
import zlib
from pathlib import Path

import pydicom
import pytest
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info

from pyjpip.codestream.markers import read_main_header
from pyjpip.dicom.hollow import (
    JPIP_HTJ2K_REFERENCED,
    JPIP_HTJ2K_REFERENCED_DEFLATE,
    JPIP_REFERENCED,
    JPIP_REFERENCED_DEFLATE,
    MAXIMUM_INFLATED_BYTES,
    read_hollow,
    write_hollow,
)
from pyjpip.dicom.pixel_data import read_encapsulated_image
from pyjpip.errors import DicomError

URL = "http://pacs.example/jpip?target=studies/1/ct.j2k"
ALL = [JPIP_REFERENCED, JPIP_REFERENCED_DEFLATE, JPIP_HTJ2K_REFERENCED, JPIP_HTJ2K_REFERENCED_DEFLATE]


@pytest.fixture(scope="module")
def ct(demo_data):
    return pydicom.dcmread(demo_data / "ct_phantom_2048.dcm")


def body_of(data: bytes) -> bytes:
    (length,) = struct.unpack_from("<I", data, 140)
    return data[144 + length :]


@pytest.mark.parametrize("syntax", ALL, ids=lambda s: s.name)
def test_every_syntax_round_trips_without_pixels(ct, syntax):
    data = write_hollow(ct, URL, syntax)
    hollow = read_hollow(data, "ct.dcm")
    assert hollow.transfer_syntax == syntax and hollow.url == URL
    assert "PixelData" not in hollow.dataset and "PixelData" in ct  # the source is untouched
    assert hollow.dataset["PixelDataProviderURL"].VR == "UR"
    for keyword in ("PatientName", "Rows", "Columns", "BitsStored", "WindowCenter", "RescaleIntercept",
                    "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        assert hollow.dataset.get(keyword) == ct.get(keyword), keyword


@pytest.mark.parametrize("syntax", [JPIP_REFERENCED_DEFLATE, JPIP_HTJ2K_REFERENCED_DEFLATE], ids=lambda s: s.name)
def test_deflated_syntaxes_are_raw_deflate_of_explicit_little_endian(ct, syntax):
    data = write_hollow(ct, URL, syntax)
    body = body_of(data)
    assert len(body) % 2 == 0 and body[:1] != b"\x78"  # no zlib header
    inflated = zlib.decompressobj(-zlib.MAX_WBITS).decompress(body)
    plain = body_of(write_hollow(ct, URL, JPIP_REFERENCED))
    assert inflated == plain  # exactly the .94 encoding of the same data set
    try:  # pydicom 3.0.2 itself does not inflate .95/.205: garbage, or an error on 32-bit Pyodide
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            misread = pydicom.dcmread(io.BytesIO(data)).get("PatientName")
    except Exception:  # noqa: BLE001 - any failure shows the same thing
        misread = None
    assert misread != ct.PatientName


def test_a_zlib_header_written_by_mistake_is_tolerated(ct):
    data = write_hollow(ct, URL, JPIP_REFERENCED_DEFLATE)
    plain = body_of(write_hollow(ct, URL, JPIP_REFERENCED))
    wrapped = data[: len(data) - len(body_of(data))] + zlib.compress(plain)
    assert read_hollow(wrapped).dataset.PatientName == ct.PatientName


def test_a_deflate_bomb_is_refused(ct):
    head = write_hollow(ct, URL, JPIP_REFERENCED_DEFLATE)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    bomb = compressor.compress(b"\x00" * (MAXIMUM_INFLATED_BYTES + (1 << 20))) + compressor.flush()
    assert len(bomb) < 200_000
    with pytest.raises(DicomError, match="inflates past"):
        read_hollow(head[: len(head) - len(body_of(head))] + bomb, "bomb.dcm")


def test_frames_are_streams_numbered_from_one(ct):
    multi = pydicom.Dataset()
    multi.update(ct)
    multi.NumberOfFrames = 3
    hollow = read_hollow(write_hollow(multi, URL, JPIP_REFERENCED))
    assert hollow.frame_url(1) == URL + "&stream=1" and hollow.frame_url(3) == URL + "&stream=3"
    with pytest.raises(DicomError, match="frame 4 does not exist"):
        hollow.frame_url(4)
    single = read_hollow(write_hollow(ct, "http://x.example/image.j2k", JPIP_REFERENCED))
    assert single.frame_url(1) == "http://x.example/image.j2k"
    multi.NumberOfFrames = "9999999999"  # an IS, but past 2^31 - 1: no archive column holds it
    with pytest.raises(DicomError, match="outside 1 to 2147483647"):
        read_hollow(write_hollow(multi, URL, JPIP_REFERENCED))


def test_the_codestream_is_checked_against_the_attributes(ct, demo_data):
    hollow = read_hollow(write_hollow(ct, URL, JPIP_REFERENCED))
    codestream = read_encapsulated_image((demo_data / "ct_phantom_2048.dcm").read_bytes()).frames[0]
    assert hollow.check_codestream(read_main_header(codestream)) == []
    other = read_encapsulated_image((demo_data / "cr_mono1_1024.dcm").read_bytes()).frames[0]
    assert "Rows is 2048 but the codestream says 1024" in hollow.check_codestream(read_main_header(other))


def plain_part10(dataset, meta, syntax) -> bytes:
    """A file written under a JPIP syntax holding whatever the data set holds (as a careless writer would)."""
    meta = pydicom.dataset.FileMetaDataset(meta)
    meta.TransferSyntaxUID = syntax
    body, head = DicomBytesIO(), DicomBytesIO()
    for stream in (body, head):
        stream.is_little_endian, stream.is_implicit_VR = True, False
    write_dataset(body, dataset)
    write_file_meta_info(head, meta, enforce_standard=True)
    return b"\x00" * 128 + b"DICM" + head.getvalue() + body.getvalue()


def test_bad_hollow_objects_say_what_is_wrong(ct):
    with_pixels = plain_part10(ct, ct.file_meta, JPIP_REFERENCED)
    with pytest.raises(DicomError, match="must not hold Pixel Data"):
        read_hollow(with_pixels, "x.dcm")
    no_url = pydicom.Dataset(ct)
    del no_url.PixelData
    with pytest.raises(DicomError, match="no Pixel Data Provider URL"):
        read_hollow(plain_part10(no_url, ct.file_meta, JPIP_REFERENCED), "x.dcm")
    with pytest.raises(DicomError, match="not http or https"):
        read_hollow(write_hollow(ct, URL, JPIP_REFERENCED).replace(b"http://pacs", b"file://pacs"), "x.dcm")
    with pytest.raises(DicomError, match="is not a JPIP Referenced one"):
        read_hollow(Path(ct.filename).read_bytes(), "x.dcm")
    good = write_hollow(ct, URL, JPIP_REFERENCED_DEFLATE)
    with pytest.raises(DicomError, match="cut short|cannot be inflated"):
        read_hollow(good[:-40], "cut.dcm")
    with pytest.raises(DicomError, match="not a DICOM Part 10 file"):
        read_hollow(b"hello" * 100, "text.dcm")


def test_writing_refuses_what_the_syntaxes_forbid(ct):
    rgb = pydicom.Dataset(ct)
    rgb.PhotometricInterpretation = "RGB"
    with pytest.raises(DicomError, match="RGB is not allowed"):
        write_hollow(rgb, URL)
    with pytest.raises(DicomError, match="must be http or https"):
        write_hollow(ct, "ftp://pacs.example/x.j2k")
    with pytest.raises(DicomError, match="not a JPIP Referenced transfer syntax"):
        write_hollow(ct, URL, "1.2.840.10008.1.2.1")
