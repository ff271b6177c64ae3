"""Reading encapsulated JPEG 2000 DICOM objects, and refusing the ones that are not."""

import io

import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian

from pyjpip.browser import describe_image
from pyjpip.codestream.markers import read_main_header
from pyjpip.dicom.pixel_data import check_codestream_against_attributes, read_encapsulated_image
from pyjpip.errors import DicomError


def test_demo_objects_give_one_codestream_per_frame(demo_files):
    for path in demo_files:
        image = read_encapsulated_image(path.read_bytes(), str(path))
        assert len(image.frames) == 1
        assert image.frames[0][:4] == b"\xff\x4f\xff\x51"  # SOC then SIZ
        assert image.frames[0].rstrip(b"\x00")[-2:] == b"\xff\xd9"  # EOC (fragments pad to even length)
        assert check_codestream_against_attributes(read_main_header(image.frames[0]), image.dataset) == []


def test_disagreeing_attributes_are_each_reported(demo_data):
    image = read_encapsulated_image((demo_data / "ct_phantom_2048.dcm").read_bytes())
    image.dataset.Rows = 1024
    image.dataset.PixelRepresentation = 1
    del image.dataset.BitsStored
    problems = check_codestream_against_attributes(read_main_header(image.frames[0]), image.dataset)
    assert problems == [
        "Rows is 1024 but the codestream says 2048",
        "BitsStored is missing; the codestream says 16",
        "PixelRepresentation is 1 but the codestream says 0",
    ]


def rewritten(path, change) -> bytes:
    ds = pydicom.dcmread(path)
    change(ds)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_not_dicom_is_refused_with_its_name():
    with pytest.raises(DicomError, match="page.html: not a readable DICOM file"):
        read_encapsulated_image(b"<html>nope</html>" * 20, "page.html")


def test_every_truncation_is_refused_or_read_whole(demo_data):
    """A file cut anywhere is a DicomError, never another exception or a silently shorter codestream."""
    data = (demo_data / "mr_small_jp2k.dcm").read_bytes()
    whole = read_encapsulated_image(data).frames
    for cut in range(0, len(data), 7):
        try:
            frames = read_encapsulated_image(data[:cut], "cut.dcm").frames
        except DicomError as error:
            assert str(error).startswith("cut.dcm: ")
        else:
            assert frames == whole, f"cut at {cut} gave a different codestream"


def test_other_transfer_syntax_is_named_in_the_error(demo_data):
    def to_uncompressed(ds):
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.PixelData = bytes(ds.Rows * ds.Columns * 2)
        ds["PixelData"].is_undefined_length = False
    data = rewritten(demo_data / "mr_small_jp2k.dcm", to_uncompressed)
    with pytest.raises(DicomError, match=r"1\.2\.840\.10008\.1\.2\.1 \(Explicit VR Little Endian\) is not JPEG 2000"):
        read_encapsulated_image(data, "mr.dcm")


def test_missing_pixel_data_is_refused(demo_data):
    data = rewritten(demo_data / "mr_small_jp2k.dcm", lambda ds: ds.__delattr__("PixelData"))
    with pytest.raises(DicomError, match=r"no Pixel Data \(7FE0,0010\)"):
        read_encapsulated_image(data, "hollow.dcm")


def test_frame_count_disagreement_is_refused(demo_data):
    data = rewritten(demo_data / "mr_small_jp2k.dcm", lambda ds: setattr(ds, "NumberOfFrames", 3))
    with pytest.raises(DicomError, match="Number of Frames"):
        read_encapsulated_image(data, "mr.dcm")


def test_describe_image_is_what_the_page_needs(demo_data):
    data = (demo_data / "cr_mono1_1024.dcm").read_bytes()
    description = describe_image(data, "cr.dcm")
    assert description["codestream"]["width"] == 1024
    assert description["codestream"]["decomposition_levels"] == 5
    assert description["greyscale"]["invert"] is True
    assert description["attributes"]["Modality"] == "CR"
    assert description["codestream_bytes"] == read_encapsulated_image(data).frames[0]
    with pytest.raises(DicomError, match="frame 2 does not exist"):
        describe_image(data, "cr.dcm", frame=2)
