"""No wrong pixel: every object ingest takes comes back through its hollow object, the JPIP server and
client, exactly as its own encoding gives it, every frame, or is refused with one line saying why.

References are independent of pyjpip: the samples a generated object was made from (tests/pixel_sources.py),
pydicom's decoding of a real file, DCMTK's dcmdjpeg for lossy JPEG; what was served is decoded by
Debian's opj_decompress from the codestream the client rebuilt.
"""

import json
import shutil
import warnings

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_files

from pixel_sources import (BIG_ENDIAN, DEFLATED, DEFLATED_IMAGE_FRAME, EXPLICIT, HTJ2K_LOSSLESS, IMPLICIT,
                           J2K_LOSSLESS, JPEG_EXTENDED, JPEG_LOSSLESS_SV1, JPEG_LS_LOSSLESS, RLE, Case, dcmtk_decoded,
                           expected_samples, make, opj_decode_components)
from jpip_support import InProcessTransport
from pyjpip.codestream.markers import read_main_header
from pyjpip.dicom.hollow import read_hollow
from pyjpip.dicom.ingest import ingest
from pyjpip.jpip.client import JPIPClient, ViewWindow, fetch_window
from pyjpip.jpip.picture import rebuild_served
from pyjpip.jpip.server import JPIPServer

pytestmark = pytest.mark.cpython_only

CASES = [
    # native, little endian: 8/12/16/24/32 bits, signed and unsigned, single and multi-frame
    Case("le_8u", EXPLICIT, 8, 8), Case("le_12u_3f", EXPLICIT, 16, 12, frames=3), Case("le_12s", EXPLICIT, 16, 12, True),
    Case("le_16u", EXPLICIT, 16, 16), Case("le_16s_2f", EXPLICIT, 16, 16, True, frames=2),
    Case("le_24u_in_32", EXPLICIT, 32, 24), Case("le_32u_narrow_2f", EXPLICIT, 32, 32, frames=2, full_range=False),
    Case("le_32s_narrow", EXPLICIT, 32, 32, True, full_range=False),
    Case("le_32u_full", EXPLICIT, 32, 32, refused="need 32 bits"),
    Case("le_1bit_3f", EXPLICIT, 1, 1, frames=3, rows=5, columns=7), Case("le_rgb8", EXPLICIT, 8, 8, colour=True),
    Case("implicit_16s", IMPLICIT, 16, 16, True), Case("deflated_set_12u", DEFLATED, 16, 12),
    # native, big endian: the byte order of every sample width
    Case("be_12u", BIG_ENDIAN, 16, 12), Case("be_16s_2f", BIG_ENDIAN, 16, 16, True, frames=2),
    Case("be_16u_rgb", BIG_ENDIAN, 16, 16, colour=True), Case("be_32u_narrow", BIG_ENDIAN, 32, 32, full_range=False),
    Case("be_32s_narrow_2f", BIG_ENDIAN, 32, 32, True, frames=2, full_range=False),
    Case("be_8u", BIG_ENDIAN, 8, 8),
    # RLE
    Case("rle_8u", RLE, 8, 8), Case("rle_16s_2f", RLE, 16, 16, True, frames=2), Case("rle_rgb16", RLE, 16, 16, colour=True),
    Case("rle_32u_narrow", RLE, 32, 32, full_range=False), Case("rle_32u_full_rgb", RLE, 32, 32, colour=True,
                                                                 refused="need 32 bits"),
    Case("rle_1bit_2f", RLE, 1, 1, frames=2, rows=9, columns=11),
    # Deflated Image Frame Compression (PS3.5 8.2.16)
    Case("dif_1bit_3f", DEFLATED_IMAGE_FRAME, 1, 1, frames=3, rows=5, columns=7),
    Case("dif_8u", DEFLATED_IMAGE_FRAME, 8, 8), Case("dif_16s_2f", DEFLATED_IMAGE_FRAME, 16, 16, True, frames=2),
    Case("dif_rgb8", DEFLATED_IMAGE_FRAME, 8, 8, colour=True),
    # JPEG (lossless process 14, extended 12-bit lossy), JPEG-LS
    Case("jpeg_lossless_12u", JPEG_LOSSLESS_SV1, 16, 12), Case("jpeg_lossless_16u_2f", JPEG_LOSSLESS_SV1, 16, 16, frames=2),
    Case("jpeg_extended_12u", JPEG_EXTENDED, 16, 12, rows=64, columns=48),
    Case("jpegls_8u", JPEG_LS_LOSSLESS, 8, 8), Case("jpegls_12u_2f", JPEG_LS_LOSSLESS, 16, 12, frames=2),
    Case("jpegls_16s", JPEG_LS_LOSSLESS, 16, 16, True),
    # JPEG 2000 and HTJ2K: kept, and where the codestream disagrees with the attributes, re-encoded
    Case("j2k_12s", J2K_LOSSLESS, 16, 12, True), Case("j2k_16u_2f", J2K_LOSSLESS, 16, 16, frames=2),
    Case("j2k_pixelrep_mismatch", J2K_LOSSLESS, 16, 12, True, mismatch=True),
    Case("j2k_rgb_without_mct", J2K_LOSSLESS, 8, 8, colour=True, no_mct=True),
    Case("j2k_rgb_rct", J2K_LOSSLESS, 8, 8, colour=True),
    Case("htj2k_12u", HTJ2K_LOSSLESS, 16, 12), Case("htj2k_16s_2f", HTJ2K_LOSSLESS, 16, 16, True, frames=2),
    # PALETTE COLOR, expanded losslessly at the tables' precision
    Case("palette_16", EXPLICIT, 8, 8, palette=16), Case("palette_8_rle_2f", RLE, 8, 8, palette=8, frames=2),
    # no File Meta Information (read as pydicom's force=True does)
    Case("no_meta_16s", EXPLICIT, 16, 16, True, no_meta=True), Case("no_meta_implicit_12u", IMPLICIT, 16, 12, no_meta=True),
    Case("no_meta_be_16u", BIG_ENDIAN, 16, 16, no_meta=True),
]


def served_frames(store, entry) -> tuple[object, list[np.ndarray]]:
    """The hollow object, and each frame fetched whole through the JPIP server and client, decoded by opj_decompress."""
    hollow = read_hollow((store / entry["hollow"]).read_bytes(), entry["hollow"])
    server = JPIPServer(str(store))
    rows, columns = int(hollow.dataset.Rows), int(hollow.dataset.Columns)
    frames = []
    for frame in range(1, hollow.number_of_frames + 1):
        client = JPIPClient(hollow.frame_url(frame))
        fetch_window(client, ViewWindow(fsiz=(columns, rows)), InProcessTransport(server))
        view = rebuild_served(client, ViewWindow(fsiz=(columns, rows)))
        assert view.reduce == 0
        frames.append((view.codestream, opj_decode_components(view.codestream)))
    return hollow, frames


def assert_served_as(store, entry, expected: list[np.ndarray], name: str) -> None:
    hollow, frames = served_frames(store, entry)
    assert len(frames) == len(expected), f"{name}: {len(frames)} frames served, {len(expected)} expected"
    for number, ((codestream, got), want) in enumerate(zip(frames, expected), 1):
        assert got.shape == want.shape, f"{name} frame {number}: {got.shape} against {want.shape}"
        differs = got != want.astype(np.int64)
        assert not differs.any(), (f"{name} frame {number}: first difference at "
                                   f"{tuple(int(i) for i in np.argwhere(differs)[0])}")
        # the hollow object says what the codestream holds (PS3.5 8.2.4, A.6)
        size = read_main_header(codestream).size
        ds = hollow.dataset
        assert int(ds.BitsStored) == size.components[0].precision, name
        assert int(ds.PixelRepresentation) == int(size.components[0].signed), name
        assert int(ds.SamplesPerPixel) == len(size.components), name
        assert int(ds.HighBit) == int(ds.BitsStored) - 1 or "HighBit" not in ds, name
        assert ds.PhotometricInterpretation in (("YBR_RCT", "YBR_ICT") if len(size.components) == 3
                                                else ("MONOCHROME1", "MONOCHROME2")), name


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("generated")
    made = {case.name: make(case, folder) for case in CASES}
    store = tmp_path_factory.mktemp("store")
    report = ingest([str(folder)], str(store), "http://store.test")
    index = json.loads((store / "index.json").read_text())["instances"]
    by_source = {entry["source"]: entry for entry in index.values()}
    return made, report, store, by_source


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_encoding_comes_back_exactly_or_is_refused_in_one_line(generated, case):
    made, report, store, by_source = generated
    path, values = made[case.name]
    failed = {p: reason for p, reason in report.failed}
    if case.refused:
        assert str(path) in failed, f"{case.name} was served, but must be refused ({case.refused})"
        reason = failed[str(path)]
        assert case.refused in reason and "\n" not in reason, reason
        assert str(path) not in by_source, "a refused object leaves nothing in the store"
        return
    assert str(path) not in failed, f"{case.name}: {failed.get(str(path))}"
    assert_served_as(store, by_source[str(path)], expected_samples(case, values, path), case.name)


def test_palette_colour_is_expanded_and_marked_derived(generated):
    made, _, store, by_source = generated
    hollow = read_hollow((store / by_source[str(made["palette_16"][0])]["hollow"]).read_bytes())
    ds = hollow.dataset
    assert ds.ImageType[0] == "DERIVED"
    assert "PALETTE COLOR expanded losslessly" in ds.DerivationDescription
    assert "RedPaletteColorLookupTableData" not in ds and "RedPaletteColorLookupTableDescriptor" not in ds
    assert (int(ds.BitsAllocated), int(ds.BitsStored), int(ds.SamplesPerPixel)) == (16, 16, 3)


def test_narrow_32_bit_samples_are_served_at_the_precision_they_need(generated):
    made, _, store, by_source = generated
    path, values = made["le_32u_narrow_2f"]
    entry = by_source[str(path)]
    ds = read_hollow((store / entry["hollow"]).read_bytes()).dataset
    needed = int(values.max()).bit_length()
    assert needed < 24 and int(ds.BitsAllocated) == 32 and int(ds.BitsStored) == needed
    assert any(f"Bits Stored 32 served as {needed}" in note for note in entry["notes"])


# --- every DICOM file bundled with pydicom ---------------------------------------------------------------

#: Files of pydicom's wheel that are refused, and a part of the one line that says why. Every other file
#: with pixels must be served exactly; files without pixels are refused as such.
REFUSED = {
    "SC_rgb_rle_32bit.dcm": "need 32 bits", "SC_rgb_rle_32bit_2frame.dcm": "need 32 bits",
    "badVR.dcm": "Number of Frames (0028,0008) is '1A'",
    "MR_truncated.dcm": "Pixel Data (7FE0,0010) holds 8130 bytes",
    "JPEG2000-embedded-sequence-delimiter.dcm": "frame 1's JPEG 2000 codestream",
}
NO_PIXELS = ("no Pixel Data to serve", "not a readable DICOM file", "no SOPInstanceUID")


def pydicom_frames(path) -> list[np.ndarray]:
    """pydicom's decoding of the original; PALETTE COLOR through its tables (pydicom's apply_color_lut);
    where pydicom has no decoder for it (12-bit JPEG that libjpeg refuses), DCMTK's."""
    ds = pydicom.dcmread(path, force=True)
    try:
        pixels = ds.pixel_array
    except Exception:  # noqa: BLE001
        assert ds.file_meta.TransferSyntaxUID == JPEG_EXTENDED, path
        return list(dcmtk_decoded(path))
    if ds.PhotometricInterpretation == "PALETTE COLOR":
        pixels = pydicom.pixels.apply_color_lut(pixels, ds)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    return list(pixels) if frames > 1 else [pixels]


def test_every_dicom_file_bundled_with_pydicom_is_served_exactly_or_refused(tmp_path):
    files = sorted(p for p in map(__import__("pathlib").Path, get_testdata_files()) if p.is_file())
    assert len(files) > 150, "pydicom's wheel brings its test files"
    served, refused = [], {}
    for number, path in enumerate(files):
        store = tmp_path / f"store{number}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = ingest([str(path)], str(store), "http://store.test")
        if report.failed:
            (_, reason), = report.failed
            assert "\n" not in reason and reason, f"{path.name}: {reason!r}"
            refused[path.name] = reason
            continue
        assert len(report.ingested) == 1, path
        entry, = json.loads((store / "index.json").read_text())["instances"].values()
        assert_served_as(store, entry, pydicom_frames(path), path.name)
        served.append(path.name)
        shutil.rmtree(store)
    for name, part in REFUSED.items():
        assert part in refused.get(name, ""), f"{name}: {refused.get(name, 'served')!r}"
    unexpected = {n: r for n, r in refused.items() if n not in REFUSED and not any(r.startswith(p) for p in NO_PIXELS)}
    assert not unexpected, unexpected
    # the classes of the issue are among those served exactly
    for name in ("MR_small_bigendian.dcm", "rtdose_expb.dcm", "J2K_pixelrep_mismatch.dcm", "examples_palette.dcm",
                 "JPEG-lossy.dcm", "SC_rgb_gdcm_KY.dcm", "rtdose_rle.dcm", "GDCMJ2K_TextGBR.dcm"):
        assert name in served, f"{name}: {refused.get(name)}"


# --- proof at ingest ----------------------------------------------------------------------------------------

def tampered(encode, frames: int = 3):
    """An encoder with a defect: frame 2 (of each object of ``frames``) has its sample at row 3, column 4 off by one."""
    calls = []

    def encode_frame(pixels, precision, signed, high_throughput=False):
        calls.append(1)
        if (len(calls) - 1) % frames == 1:
            pixels = pixels.copy()
            pixels[3, 4] = pixels[3, 4] + 1 if pixels[3, 4] < (1 << (precision - 1)) - 1 else pixels[3, 4] - 1
        return encode(pixels, precision, signed, high_throughput)
    return encode_frame


def test_a_served_frame_that_differs_is_refused_naming_file_frame_and_sample_and_nothing_is_stored(
        tmp_path, monkeypatch):
    import pyjpip.dicom.ingest as ingest_module

    case = Case("proof_16s_3f", EXPLICIT, 16, 16, True, frames=3)
    path, values = make(case, tmp_path)
    monkeypatch.setattr(ingest_module, "encode_frame", tampered(ingest_module.encode_frame))
    store = tmp_path / "store"
    report = ingest([str(path)], str(store), "http://store.test")
    (failed_path, reason), = report.failed
    assert failed_path == str(path)
    assert "frame 2" in reason and "row 3, column 4" in reason and "\n" not in reason, reason
    assert f"instead of {int(values[1, 3, 4])}" in reason, reason
    assert sorted(p.name for p in store.rglob("*") if p.is_file()) == ["index.json"]
    assert json.loads((store / "index.json").read_text())["instances"] == {}

    # --no-verify: the proof is skipped (trusted bulk loads) and the index says the instance was not proven
    trusted = ingest([str(path)], str(store), "http://store.test", verify=False)
    assert trusted.ingested == [str(path)]
    entry, = json.loads((store / "index.json").read_text())["instances"].values()
    assert entry["verified"] is False
    # proving it later re-does the instance, with the proof
    proven = ingest([str(path)], str(store), "http://store.test")
    assert proven.failed, "the defective encoder is still in place: the proof refuses"


def test_re_packetized_jpeg2000_is_proven_too(tmp_path, monkeypatch):
    """A JPEG 2000 source whose code-blocks are kept: a defect in re-packetizing is caught the same way."""
    import pyjpip.dicom.ingest as ingest_module

    case = Case("proof_j2k", J2K_LOSSLESS, 16, 12, rows=64, columns=80)
    path, _ = make(case, tmp_path)
    (tmp_path / "other").mkdir()
    other, _ = make(Case("proof_j2k_other", J2K_LOSSLESS, 16, 12, rows=64, columns=80), tmp_path / "other")
    from pyjpip.dicom.pixel_data import read_encapsulated_image
    wrong = read_encapsulated_image(other.read_bytes()).frames[0]
    real = ingest_module.repacketize
    monkeypatch.setattr(ingest_module, "repacketize", lambda codestream, index=None: real(wrong))
    report = ingest([str(path)], str(tmp_path / "store"), "http://store.test")
    (_, reason), = report.failed
    assert "frame 1: served pixels differ from the source's own decoding, first at row 0" in reason, reason
    assert not list((tmp_path / "store").rglob("*.j2k"))


def test_the_command_line_switch_and_the_storage_scp_prove_before_success(tmp_path, monkeypatch):
    """`pyjpip ingest --no-verify` is the documented switch; a Storage SCP (in this process, DCMTK's
    storescu as the sender) answers a refusal, not Success, when the proof fails, and keeps nothing."""
    import subprocess
    import sys

    import pyjpip.dicom.ingest as ingest_module
    from network_support import free_port
    from pyjpip.archive import open_archive
    from pyjpip.network.scp import StorageSCP

    case = Case("proof_scp_2f", EXPLICIT, 16, 12, frames=2)
    path, _ = make(case, tmp_path)
    help_text = subprocess.run([sys.executable, "-m", "pyjpip", "ingest", "--help"], capture_output=True, text=True,
                               check=True).stdout
    assert "--no-verify" in help_text
    run = subprocess.run([sys.executable, "-m", "pyjpip", "ingest", str(path), "--store", str(tmp_path / "cli"),
                          "--url-base", "http://store.test", "--no-verify"], capture_output=True, text=True)
    assert run.returncode == 0 and "1 ingested" in run.stdout, run.stdout + run.stderr
    entry, = json.loads((tmp_path / "cli" / "index.json").read_text())["instances"].values()
    assert entry["verified"] is False

    monkeypatch.setattr(ingest_module, "encode_frame", tampered(ingest_module.encode_frame, frames=2))
    store = tmp_path / "received"
    archive = open_archive(str(store), None, False)
    port = free_port()
    server = StorageSCP("PROOF", str(store), archive, "http://store.test").start("127.0.0.1", port)
    try:
        storescu = shutil.which("storescu")
        assert storescu, "storescu (Debian dcmtk) is needed"
        sent = subprocess.run([storescu, "-d", "-aec", "PROOF", "127.0.0.1", str(port), str(path)], capture_output=True,
                              text=True)
    finally:
        server.shutdown()
    try:
        said = sent.stdout + sent.stderr
        assert "0xc000: Error: Cannot understand" in said and "[its pixels cannot be served: frame 2" in said, said
        assert not list(store.rglob("*.j2k")) and not list(store.rglob("*.jpx"))
        assert archive.part10(str(pydicom.dcmread(path).SOPInstanceUID)) is None
    finally:
        archive.close()


def test_push_sends_only_what_its_proof_passed(tmp_path, monkeypatch):
    """`pyjpip push` ingests into the sender's store with the proof: an object whose served frames would
    differ is not ingested, so never sent; the others are sent and stored by the receiver."""
    import pyjpip.dicom.ingest as ingest_module
    from network_support import free_port
    from pyjpip.archive import open_archive
    from pyjpip.network.push import push
    from pyjpip.network.scp import StorageSCP

    outbox = tmp_path / "outbox"
    outbox.mkdir()
    good, _ = make(Case("push_good_8u", EXPLICIT, 8, 8), outbox)  # ingested after push_bad_2f: its one frame (the
    # encoder's third call) is untouched, push_bad_2f's second frame is not
    bad, _ = make(Case("push_bad_2f", EXPLICIT, 16, 12, frames=2), outbox)
    monkeypatch.setattr(ingest_module, "encode_frame", tampered(ingest_module.encode_frame, frames=2))
    received = tmp_path / "received"
    archive = open_archive(str(received), None, False)
    port = free_port()
    server = StorageSCP("RECEIVER", str(received), archive).start("127.0.0.1", port)
    try:
        report, ingested, _ = push("127.0.0.1", port, [str(good), str(bad)], str(tmp_path / "own"), "http://own.test",
                                   called_ae_title="RECEIVER", timeout=10)
    finally:
        server.shutdown()
    try:
        assert [p for p, _ in ingested.failed] == [str(bad)] and "frame 2" in ingested.failed[0][1]
        assert [s.sop_instance_uid for s in report.sent] == [str(pydicom.dcmread(good).SOPInstanceUID)]
        assert not report.failed
        assert archive.part10(str(pydicom.dcmread(bad).SOPInstanceUID)) is None
        assert archive.part10(str(pydicom.dcmread(good).SOPInstanceUID)) is not None
    finally:
        archive.close()


SENT_BY_NETWORK = [Case("net_jpeg_lossless_12u", JPEG_LOSSLESS_SV1, 16, 12), Case("net_jpegls_16s", JPEG_LS_LOSSLESS, 16, 16, True),
                   Case("net_dif_1bit_2f", DEFLATED_IMAGE_FRAME, 1, 1, frames=2, rows=5, columns=7),
                   Case("net_rle_32u_narrow", RLE, 32, 32, full_range=False), Case("net_be_16s", BIG_ENDIAN, 16, 16, True),
                   Case("net_palette_16", EXPLICIT, 8, 8, palette=16),
                   Case("net_pixelrep_mismatch", J2K_LOSSLESS, 16, 12, True, mismatch=True)]


def test_a_storage_scp_takes_every_encoding_and_serves_it_exactly(tmp_path):
    """Objects sent by C-STORE (pynetdicom's SCU, each in its own transfer syntax) to `pyjpip store-scp`
    are ingested with the proof and served exactly."""
    from network_support import store_scp
    from pyjpip.network import scu

    outbox = tmp_path / "outbox"
    outbox.mkdir()
    made = {case.name: make(case, outbox) for case in SENT_BY_NETWORK}
    store = tmp_path / "received"
    with store_scp(store, "--url-base", "http://store.test") as scp:
        report = scu.store("127.0.0.1", scp.port, [str(outbox)], "MODALITY", "PYJPIP")
    assert not report.failed, [s.describe() for s in report.sent]
    assert {s.transfer_syntax for s in report.sent} == {c.syntax for c in SENT_BY_NETWORK}
    index = json.loads((store / "index.json").read_text())["instances"]
    for case in SENT_BY_NETWORK:
        path, values = made[case.name]
        entry = index[str(pydicom.dcmread(path).SOPInstanceUID)]
        assert entry["verified"] is True
        assert_served_as(store, entry, expected_samples(case, values, path), case.name)


# --- paths from DICOM values (issue 23) ---------------------------------------------------------------------

@pytest.mark.parametrize("keyword, value", [("StudyInstanceUID", "../../outside"), ("SeriesInstanceUID", "/tmp/abs"),
                                            ("SOPInstanceUID", "1.2/../../3"), ("StudyInstanceUID", "1." + "2" * 70),
                                            ("SeriesInstanceUID", "..\\..\\x")])
def test_ingest_and_push_name_files_only_by_uids(tmp_path, keyword, value):
    """A data set's UIDs become folders and file names only when they are UIDs (PS3.5 9.1): a relative,
    absolute or otherwise odd value is refused naming the attribute, and nothing is written anywhere."""
    path, _ = make(Case("hostile_uid", EXPLICIT, 8, 8), tmp_path)
    ds = pydicom.dcmread(path)
    setattr(ds, keyword, value)
    ds.save_as(path)
    before = sorted(p for p in tmp_path.rglob("*"))
    store = tmp_path / "a" / "b" / "store"
    report = ingest([str(path)], str(store), "http://store.test")
    (_, reason), = report.failed
    assert reason.startswith(f"{keyword} ") and "is not a UID" in reason, reason
    written = sorted(p for p in tmp_path.rglob("*") if p not in before)
    assert set(written) <= {store / "index.json", store, *store.parents}, written
