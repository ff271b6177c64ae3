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
    ds = pydicom.dcmread(path)
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        import imagecodecs
        return [imagecodecs.jpeg2k_decode(c) for c in read_encapsulated_image(open(path, "rb").read()).frames]
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
            view = client.rebuild(ViewWindow(fsiz=(columns, rows)))
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
        decoded = imagecodecs.htj2k_decode(client.rebuild(window).codestream)
        expected = pixels if path.endswith("ht.dcm") else original.pixel_array
        assert np.array_equal(decoded, expected), path


@pytest.mark.parametrize("shape, precision, signed", [((600, 700), 12, False), ((600, 700), 12, True),
                                                       ((300, 400, 3), 8, False)])
def test_htj2k_re_encoding_is_lossless_and_jpip_friendly(shape, precision, signed):
    """HTJ2K re-encoding, lossless by OpenJPEG's opj_decompress (what the browser decodes with, not
    OpenJPH, which wrote it); unsigned samples get 128 x 128 precincts (a zoomed view fetches only
    its own), signed ones go through imagecodecs (Debian's ojph_compress writes them wrongly)."""
    from pyjpip.codestream.markers import read_main_header
    from pyjpip.dicom.encode import encode_frame, is_jpip_friendly
    from reference import opj_decode_all, pgx_array

    rng = np.random.default_rng(7)
    low, high = (-(1 << (precision - 1)), 1 << (precision - 1)) if signed else (0, 1 << precision)
    pixels = rng.integers(low, high, size=shape).astype(np.int16 if signed else np.uint16 if precision > 8 else np.uint8)
    codestream = encode_frame(pixels, precision, signed, high_throughput=True)
    header = read_main_header(codestream)
    assert header.high_throughput
    if not signed:
        assert is_jpip_friendly(header) and header.coding_style.progression_order.name == "RPCL"
        assert set(header.coding_style.precinct_sizes[1:]) == {(128, 128)}
    assert bool(header.coding_style.multiple_component_transform) == (len(shape) == 3)
    planes = [pgx_array(plane) for plane in opj_decode_all(codestream)]
    decoded = planes[0] if len(planes) == 1 else np.stack(planes, axis=-1)
    assert np.array_equal(decoded, pixels)
