"""Ingest round trip: DICOM in, store and hollow objects out, every frame back through JPIP exactly."""

import json
import shutil

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from pyjpip.dicom.hollow import JPIP_REFERENCED, JPIP_REFERENCED_DEFLATE, read_hollow
from pyjpip.dicom.ingest import ingest
from pyjpip.dicom.pixel_data import read_encapsulated_image
from pyjpip.jpip.client import JPIPClient, ViewWindow, fetch_window
from pyjpip.jpip.picture import rebuild_served
from pyjpip.jpip.server import JPIPServer
from jpip_support import InProcessTransport

pytestmark = pytest.mark.cpython_only

PYDICOM_FILES = ["JPEG2000.dcm", "MR_small_jp2klossless.dcm", "GDCMJ2K_TextGBR.dcm", "693_J2KI.dcm",
                 "J2K_pixelrep_mismatch.dcm", "CT_small.dcm", "SC_rgb_small_odd.dcm"]


def cine(path, frames=6):
    """A multi-frame 8-bit ultrasound-like object, uncompressed."""
    ds = pydicom.Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.3.1"
    ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID = (generate_uid(entropy_srcs=[str(path), k])
                                                                   for k in "abc")
    ds.Modality, ds.Rows, ds.Columns, ds.NumberOfFrames = "US", 96, 80, frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    rng = np.random.default_rng(3)
    ds.PixelData = rng.integers(0, 256, (frames, 96, 80), dtype=np.uint8).tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    ds.save_as(path, enforce_file_format=True)


@pytest.fixture(scope="module")
def sources(tmp_path_factory, demo_data):
    folder = tmp_path_factory.mktemp("sources")
    for name in PYDICOM_FILES:
        shutil.copy(get_testdata_file(name), folder / name)
    shutil.copy(demo_data / "ct_phantom_2048.dcm", folder / "ct.dcm")
    cine(folder / "cine.dcm")
    (folder / "broken.dcm").write_bytes(open(get_testdata_file("MR_small.dcm"), "rb").read()[:700])
    return folder


def expected_frames(path) -> list[np.ndarray]:
    """pydicom's decoding of the source (pylibjpeg-openjpeg for JPEG 2000): J2K_pixelrep_mismatch.dcm's
    unsigned codestream under Pixel Representation 1 is read as signed, as the object says."""
    ds = pydicom.dcmread(path)
    pixels = ds.pixel_array
    return list(pixels) if int(ds.get("NumberOfFrames", 1) or 1) > 1 else [pixels]


@pytest.mark.parametrize("deflate", [False, True])
def test_every_frame_comes_back_exactly_through_jpip(sources, tmp_path, deflate):
    store = tmp_path / "store"
    report = ingest([str(sources)], str(store), "http://store.test", deflate=deflate)
    assert [p.split("/")[-1] for p, _ in report.failed] == ["broken.dcm"]
    assert len(report.ingested) == len(PYDICOM_FILES) + 2
    server = JPIPServer(str(store))
    import imagecodecs
    for path in report.ingested:
        sop = pydicom.dcmread(path).SOPInstanceUID
        entry = json.loads((store / "index.json").read_text())["instances"][sop]
        hollow = read_hollow((store / entry["hollow"]).read_bytes(), entry["hollow"])
        assert hollow.transfer_syntax == (JPIP_REFERENCED_DEFLATE if deflate else JPIP_REFERENCED)
        rows, columns = int(hollow.dataset.Rows), int(hollow.dataset.Columns)
        for frame, expected in enumerate(expected_frames(path), 1):
            client = JPIPClient(hollow.frame_url(frame))
            fetch_window(client, ViewWindow(fsiz=(columns, rows)), InProcessTransport(server))
            view = rebuild_served(client, ViewWindow(fsiz=(columns, rows)))
            assert view.reduce == 0
            decoded = imagecodecs.jpeg2k_decode(view.codestream)
            assert np.array_equal(decoded.reshape(expected.shape), expected), f"{path} frame {frame}"


def test_ingest_is_idempotent_and_refuses_what_it_cannot_take(sources, tmp_path):
    store = tmp_path / "store"
    first = ingest([str(sources)], str(store), "http://store.test")
    before = {p: p.stat().st_mtime_ns for p in store.rglob("*") if p.is_file() and p.name != "index.json"}
    second = ingest([str(sources)], str(store), "http://store.test")
    assert len(second.skipped) == len(first.ingested) and not second.ingested
    assert before == {p: p.stat().st_mtime_ns for p in store.rglob("*") if p.is_file() and p.name != "index.json"}
    hollow_file = next((store / "hollow").rglob("*.dcm"))
    third = ingest([str(hollow_file)], str(store), "http://store.test")
    assert "already a hollow" in third.failed[0][1]
    assert not list(store.rglob("*.part"))  # nothing half-written


def test_htj2k_sources_and_the_htj2k_option(tmp_path):
    import imagecodecs
    from pydicom.encaps import encapsulate

    from pyjpip.dicom.hollow import JPIP_HTJ2K_REFERENCED_DEFLATE

    source = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    pixels = source.pixel_array
    ht = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ht.SOPInstanceUID = generate_uid(entropy_srcs=["htj2k source"])
    ht.file_meta.MediaStorageSOPInstanceUID = ht.SOPInstanceUID
    ht.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.201"
    ht.PixelData = encapsulate([imagecodecs.htj2k_encode(pixels, reversible=True)])
    ht["PixelData"].VR, ht["PixelData"].is_undefined_length = "OB", True
    inputs = tmp_path / "in"
    inputs.mkdir()
    ht.save_as(inputs / "ht.dcm", enforce_file_format=True)
    shutil.copy(get_testdata_file("MR_small.dcm"), inputs / "mr.dcm")
    store = tmp_path / "store"
    report = ingest([str(inputs)], str(store), "http://store.test", deflate=True, high_throughput=True)
    assert not report.failed
    server = JPIPServer(str(store))
    index = json.loads((store / "index.json").read_text())["instances"]
    for path in report.ingested:
        original = pydicom.dcmread(path)
        entry = index[str(original.SOPInstanceUID)]
        hollow = read_hollow((store / entry["hollow"]).read_bytes())
        assert hollow.transfer_syntax == JPIP_HTJ2K_REFERENCED_DEFLATE
        client = JPIPClient(hollow.frame_url(1))
        window = ViewWindow(fsiz=(int(original.Columns), int(original.Rows)))
        fetch_window(client, window, InProcessTransport(server))
        decoded = imagecodecs.htj2k_decode(rebuild_served(client, window).codestream)
        expected = pixels if path.endswith("ht.dcm") else original.pixel_array
        assert np.array_equal(decoded, expected), path


@pytest.mark.parametrize("high_throughput", [False, True], ids=["part1", "htj2k"])
@pytest.mark.parametrize("shape, precision, signed", [((600, 700), 12, False), ((600, 700), 12, True),
                                                       ((300, 400, 3), 8, False), ((1955, 1841), 15, False),
                                                       ((257, 300), 16, False)])
def test_re_encoding_is_lossless_and_jpip_friendly(shape, precision, signed, high_throughput):
    """Re-encoding from samples, lossless by OpenJPEG's opj_decompress (what the browser decodes
    with, not the encoder that wrote it), with 128 x 128 precincts, RPCL and PLT: Part 1 through
    imagecodecs and the re-packetizer, HTJ2K through ojph_compress (imagecodecs for signed samples).
    1955 x 1841 at 15 bits is the CR that opj_compress's raw reader refused."""
    from pyjpip.codestream.friendliness import assess
    from pyjpip.codestream.markers import read_main_header
    from pyjpip.codestream.packet_index import index_codestream
    from pyjpip.codestream.tile_parts import read_codestream
    from pyjpip.dicom.encode import encode_frame
    from reference import opj_decode_all, pgx_array

    rng = np.random.default_rng(7)
    low, high = (-(1 << (precision - 1)), 1 << (precision - 1)) if signed else (0, 1 << precision)
    pixels = rng.integers(low, high, size=shape).astype(np.int16 if signed else np.uint16 if precision > 8 else np.uint8)
    codestream = encode_frame(pixels, precision, signed, high_throughput=high_throughput)
    header = read_main_header(codestream)
    assert header.high_throughput == high_throughput
    assert assess(index_codestream(read_codestream(codestream))).friendly
    assert header.coding_style.progression_order.name == "RPCL"
    assert set(header.coding_style.precinct_sizes[1:]) == {(128, 128)}
    if not (high_throughput and signed):
        assert header.size.components[0].precision == precision
    assert bool(header.coding_style.multiple_component_transform) == (len(shape) == 3)
    planes = [pgx_array(plane) for plane in opj_decode_all(codestream)]
    decoded = planes[0] if len(planes) == 1 else np.stack(planes, axis=-1)
    assert np.array_equal(decoded, pixels)


def secondary_capture(path, pixels, **attributes):
    """An HTJ2K RGB secondary-capture object carrying only ``attributes`` beyond the basics."""
    import imagecodecs
    from pydicom.encaps import encapsulate

    ds = pydicom.Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = generate_uid(entropy_srcs=[str(path)])
    ds.Modality = "OT"
    ds.Rows, ds.Columns = pixels.shape[:2]
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "YBR_RCT", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.PixelData = encapsulate([imagecodecs.htj2k_encode(pixels, reversible=True, rgb=True)])
    ds["PixelData"].VR, ds["PixelData"].is_undefined_length = "OB", True
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.201"
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    ds.save_as(path, enforce_file_format=True)


def test_objects_without_study_or_series_uids_are_taken(tmp_path, caplog):
    import imagecodecs

    rng = np.random.default_rng(3)
    pixels = {name: rng.integers(0, 256, (90, 130, 3)).astype(np.uint8) for name in ("a", "b", "c")}
    inputs = tmp_path / "in"
    inputs.mkdir()
    secondary_capture(inputs / "a.dcm", pixels["a"], PatientID="P1", StudyDate="20260101", SeriesNumber=1)
    secondary_capture(inputs / "b.dcm", pixels["b"], PatientID="P1", StudyDate="20260101", SeriesNumber=1)
    secondary_capture(inputs / "c.dcm", pixels["c"])  # nothing to group it by: a study of its own
    store = tmp_path / "store"
    with caplog.at_level("WARNING", logger="pyjpip.dicom.ingest"):
        report = ingest([str(inputs)], str(store), "http://store.test")
    assert not report.failed and len(report.ingested) == 3 and len(report.supplied) == 3
    index = json.loads((store / "index.json").read_text())["instances"]
    server = JPIPServer(str(store))
    studies = {}
    for path in report.ingested:
        entry = index[str(pydicom.dcmread(path).SOPInstanceUID)]
        hollow = read_hollow((store / entry["hollow"]).read_bytes())
        study, series = str(hollow.dataset.StudyInstanceUID), str(hollow.dataset.SeriesInstanceUID)
        assert study.startswith("2.25.") and series.startswith("2.25.") and len(study) <= 64
        assert entry["study"] == study and entry["series"] == series
        studies[path.rsplit("/", 1)[-1]] = (study, series)
        client = JPIPClient(hollow.frame_url(1))
        window = ViewWindow(fsiz=(130, 90))
        fetch_window(client, window, InProcessTransport(server))
        name = path.rsplit("/", 1)[-1][0]
        assert np.array_equal(imagecodecs.htj2k_decode(rebuild_served(client, window).codestream), pixels[name])
    assert studies["a.dcm"] == studies["b.dcm"] != studies["c.dcm"]
    said = [r for r in caplog.records if "objects without" in r.getMessage()]
    assert len(said) <= 2  # said once per attribute in a process, not once per object


NON_JPEG2000 = ["MR_small_RLE.dcm", "image_dfl.dcm", "SC_rgb_rle_16bit.dcm", "SC_ybr_full_422_uncompressed.dcm",
                "rtdose.dcm", "examples_overlay.dcm", "liver_1frame.dcm", "ExplVR_BigEnd.dcm",
                "SC_rgb_jpeg_dcmtk.dcm", "JPGExtended.dcm", "JPEGLSNearLossless_16.dcm", "SC_rgb_jls_lossy_line.dcm",
                "MR_small_jpeg_ls_lossless.dcm"]


def jpeg_lossless(path):
    """A 12-bit CT slice in JPEG Lossless (Process 14, 1.2.840.10008.1.2.4.57), coded by imagecodecs."""
    import imagecodecs
    from pydicom.encaps import encapsulate

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    pixels = (ds.pixel_array.astype(np.int32) - ds.pixel_array.min()).astype(np.uint16) & 0x0FFF
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=["jpeg lossless"])
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, 0
    ds.PixelData = encapsulate([imagecodecs.ljpeg_encode(pixels, bitspersample=12)])
    ds["PixelData"].VR, ds["PixelData"].is_undefined_length = "OB", True
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.57"
    ds.save_as(path, enforce_file_format=True)


def enhanced_ct(path, frames=4):
    """A multi-frame Enhanced CT (PS3.3 A.38): per-frame functional groups, one Pixel Data of 16-bit frames."""
    from pydicom.dataset import Dataset

    source = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2.1"
    ds.SOPInstanceUID = generate_uid(entropy_srcs=["enhanced ct"])
    ds.StudyInstanceUID, ds.SeriesInstanceUID = source.StudyInstanceUID, generate_uid(entropy_srcs=["enhanced series"])
    ds.Modality, ds.NumberOfFrames = "CT", frames
    ds.Rows, ds.Columns = source.Rows, source.Columns
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    per_frame = []
    for k in range(frames):
        item, position, transform = Dataset(), Dataset(), Dataset()
        position.ImagePositionPatient = [0, 0, 2.5 * k]
        transform.RescaleIntercept, transform.RescaleSlope, transform.RescaleType = -1024, 1, "HU"
        item.PlanePositionSequence, item.PixelValueTransformationSequence = [position], [transform]
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = per_frame
    ds.PixelData = np.stack([source.pixel_array.astype(np.int16) + np.int16(50 * k) for k in range(frames)]).tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    ds.save_as(path, enforce_file_format=True)


def test_other_pixel_encodings_come_back_equal_to_pydicoms_decoding(tmp_path):
    """Native (little and big endian, deflated), RLE, JPEG baseline, extended (12 bits) and lossless,
    JPEG-LS lossless and near-lossless, YBR_FULL_422, 32-bit multi-frame (RT dose), Enhanced CT,
    overlays, PALETTE COLOR (expanded to RGB): ingested losslessly, every frame equal to pydicom's own
    decoding (its pixel handlers: pylibjpeg, pyjpegls, Pillow); a damaged JPEG is refused with one line
    naming what its decoders said."""
    import imagecodecs

    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in NON_JPEG2000 + ["examples_palette.dcm"]:
        ds = pydicom.dcmread(get_testdata_file(name))
        ds.SOPInstanceUID = generate_uid(entropy_srcs=[name])  # pydicom's MR_small variants share one
        ds.save_as(inputs / name)
    jpeg_lossless(inputs / "jpeg_lossless.dcm")
    enhanced_ct(inputs / "enhanced_ct.dcm")
    damaged = pydicom.dcmread(get_testdata_file("SC_rgb_jpeg_dcmtk.dcm"))
    damaged.SOPInstanceUID = generate_uid(entropy_srcs=["damaged"])
    from pydicom.encaps import encapsulate, generate_frames
    fragment = next(generate_frames(damaged.PixelData, number_of_frames=1))
    damaged.PixelData = encapsulate([fragment[:2] + bytes(range(256)) * 4])  # SOI, then no JPEG at all
    damaged.save_as(inputs / "damaged_jpeg.dcm")
    store = tmp_path / "store"
    report = ingest([str(inputs)], str(store), "http://store.test")
    failed = {p.split("/")[-1]: reason for p, reason in report.failed}
    assert set(failed) == {"damaged_jpeg.dcm"}, failed
    assert all("\n" not in reason for reason in failed.values())
    assert "cannot be decoded here" in failed["damaged_jpeg.dcm"] and "pylibjpeg" in failed["damaged_jpeg.dcm"]
    assert len(report.ingested) == len(NON_JPEG2000) + 3
    server = JPIPServer(str(store))
    index = json.loads((store / "index.json").read_text())["instances"]
    for path in report.ingested:
        original = pydicom.dcmread(path)
        pixels = original.pixel_array
        if original.PhotometricInterpretation == "PALETTE COLOR":  # expanded to RGB at ingest, losslessly
            pixels = pydicom.pixels.apply_color_lut(pixels, original)
        frames = list(pixels) if int(original.get("NumberOfFrames", 1) or 1) > 1 else [pixels]
        hollow = read_hollow((store / index[str(original.SOPInstanceUID)]["hollow"]).read_bytes())
        if (0x6000, 0x3000) in original:
            assert (0x6000, 0x3000) in hollow.dataset, f"{path}: the overlay is kept"
        if "PerFrameFunctionalGroupsSequence" in original:
            assert hollow.dataset.PerFrameFunctionalGroupsSequence == original.PerFrameFunctionalGroupsSequence
        rows, columns = int(hollow.dataset.Rows), int(hollow.dataset.Columns)
        for frame, expected in enumerate(frames, 1):
            client = JPIPClient(hollow.frame_url(frame))
            fetch_window(client, ViewWindow(fsiz=(columns, rows)), InProcessTransport(server))
            decoded = imagecodecs.jpeg2k_decode(rebuild_served(client, ViewWindow(fsiz=(columns, rows))).codestream)
            assert np.array_equal(decoded.reshape(expected.shape), expected), f"{path} frame {frame}"
