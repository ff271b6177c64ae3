"""pyjpip against the DICOM peers a site has (../shared/notes/dicom-networking.md): DCMTK's storescu
and storescp, GDCM's gdcmscu, Orthanc over DIMSE, REST and DICOMweb. Each peer does what the note
says, and pyjpip does the right thing with what it sends or serves. Where a peer fails, the test
asserts the failure, so a fixed peer shows up here."""

import json
import subprocess
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from network_support import free_port, hollow_copies, orthanc, store_scp, wait_for_port, without_pixels
from pyjpip.archive.database import DatabaseArchive
from pyjpip.archive.files import FileArchive
from pyjpip.dicom.hollow import (
    JPIP_HTJ2K_REFERENCED,
    JPIP_HTJ2K_REFERENCED_DEFLATE,
    JPIP_REFERENCED,
    JPIP_REFERENCED_DEFLATE,
    read_file_meta,
    read_hollow,
)
from pyjpip.dicom.pixel_data import read_encapsulated_image
from pyjpip.network import scu
from reference import opj_decode

pytestmark = pytest.mark.cpython_only

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
DCMTK_JPIP_CONFIG = """[[TransferSyntaxes]]
[JPIP]
TransferSyntax1 = 1.2.840.10008.1.2.4.94
[[PresentationContexts]]
[JPIPContexts]
PresentationContext1 = 1.2.840.10008.5.1.4.1.1.2\\JPIP
[[Profiles]]
[JPIP]
PresentationContexts = JPIPContexts
"""


@pytest.fixture(scope="module")
def ct_base(demo_data):
    return without_pixels(demo_data / "ct_phantom_2048.dcm")


@pytest.fixture
def hollow_ct(ct_base, sender, tmp_path):
    """Hollow CT objects (.94) whose pixels the sender serves (the demo CT, JPEG 2000 Part 1)."""
    _, base_url = sender
    return hollow_copies(ct_base, tmp_path / "outbox", 2, JPIP_REFERENCED, f"{base_url}/jpip?target=ct_phantom_2048.j2k")


def body(data: bytes) -> bytes:
    return data[read_file_meta(data)[1]:]


def demo_ct_pixels(demo_data):
    return opj_decode((demo_data / "ct_phantom_2048.j2k").read_bytes())


def test_dcmtk_storescu_converts_to_explicit_vr_and_the_scp_keeps_the_hollow_object(hollow_ct, tmp_path):
    store = tmp_path / "scp-store"
    with store_scp(store, "--files") as scp:
        run = subprocess.run(["storescu", "-v", "-aec", "PYJPIP", "127.0.0.1", str(scp.port), *map(str, hollow_ct)],
                             capture_output=True, text=True, timeout=60)
        time.sleep(0.2)
        log = scp.log.read_text()
    # The peer: silently converts JPIP Referenced to Explicit VR Little Endian (a non-conformant object).
    assert "Converting transfer syntax: JPIP Referenced -> Little Endian Explicit" in run.stdout + run.stderr
    assert run.stdout.count("Received Store Response (Success)") + run.stderr.count(
        "Received Store Response (Success)") == 2
    # pyjpip: recognised, stored as the hollow object it is, with a warning in the log.
    assert log.count("as DCMTK's storescu converts JPIP objects): stored as JPIP Referenced") == 2
    archive = FileArchive(str(store))
    for path in hollow_ct:
        sent = path.read_bytes()
        stored = archive.part10(str(read_hollow(sent).dataset.SOPInstanceUID))
        assert read_hollow(stored).transfer_syntax == JPIP_REFERENCED and body(stored) == body(sent)


def test_dcmtk_storescu_with_a_jpip_profile_negotiates_then_aborts(hollow_ct, tmp_path):
    config = tmp_path / "jpip.cfg"
    config.write_text(DCMTK_JPIP_CONFIG)
    store = tmp_path / "scp-store"
    with store_scp(store) as scp:
        run = subprocess.run(["storescu", "-v", "-xf", str(config), "JPIP", "-aec", "PYJPIP", "127.0.0.1",
                              str(scp.port), str(hollow_ct[0])], capture_output=True, text=True, timeout=60)
    out = run.stdout + run.stderr
    assert "Association Accepted" in out  # pyjpip accepts .94 ...
    assert "0006:0212 DIMSE Unsupported transfer syntax: 1.2.840.10008.1.2.4.94" in out  # ... DCMTK cannot send it
    archive = DatabaseArchive(f"sqlite:///{store}/pyjpip.sqlite", create=False)
    assert archive.rows("SELECT COUNT(*) FROM instance")[0][0] == 0
    archive.close()


def test_gdcmscu_sends_jpip_referenced_then_crashes(hollow_ct, tmp_path):
    store = tmp_path / "scp-store"
    with store_scp(store, "--files") as scp:
        run = subprocess.run(["gdcmscu", "--store", "-i", str(hollow_ct[0]), "--call", "PYJPIP", "127.0.0.1",
                              str(scp.port)], capture_output=True, text=True, timeout=60)
        time.sleep(0.2)
    assert run.returncode != 0 and "gdcm::Exception" in run.stderr  # the peer crashes after sending
    sent = hollow_ct[0].read_bytes()
    stored = FileArchive(str(store)).part10(str(read_hollow(sent).dataset.SOPInstanceUID))
    assert stored is not None and body(stored) == body(sent)  # what it sent is stored exactly


def test_an_scp_without_jpip_gets_the_pixels_fetched_by_jpip(hollow_ct, tmp_path, demo_data):
    """DCMTK's storescp accepts no JPIP syntax: PS3.17 GG's other context, the pixels themselves."""
    received = tmp_path / "storescp"
    received.mkdir()
    port = free_port()
    process = subprocess.Popen(["storescp", "+xv", "-od", str(received), "-aet", "DCMTK", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, process)
        report = scu.store("127.0.0.1", port, [str(p) for p in hollow_ct], "PYJPIP", "DCMTK")
    finally:
        process.terminate()
        process.wait(10)
    assert not report.failed, [s.describe() for s in report.sent]
    assert {s.transfer_syntax for s in report.sent} == {"1.2.840.10008.1.2.4.90"}  # reversible: lossless
    files = sorted(received.iterdir())
    assert len(files) == 2
    expected = demo_ct_pixels(demo_data)
    for path in files:
        image = read_encapsulated_image(path.read_bytes())
        assert str(image.transfer_syntax) == "1.2.840.10008.1.2.4.90" and "PixelDataProviderURL" not in image.dataset
        assert np.array_equal(opj_decode(image.frames[0]), expected)


def test_orthanc_over_dimse_accepts_jpip_aborts_and_gets_the_pixels(hollow_ct, tmp_path, demo_data):
    with orthanc(tmp_path / "orthanc", jpip=True) as (http, dicom_port, log):
        report = scu.store("127.0.0.1", dicom_port, [str(p) for p in hollow_ct], "PYJPIP", "ORTHANC")
        assert not report.failed, [s.describe() for s in report.sent]
        # The peer: negotiates .94, then its DCMTK layer aborts; pyjpip opens again without JPIP.
        assert all("aborted on 1.2.840.10008.1.2.4.94" in s.comment for s in report.sent)
        assert {s.transfer_syntax for s in report.sent} == {"1.2.840.10008.1.2.4.90"}
        instances = json.loads(urllib.request.urlopen(f"{http}/instances").read())
        assert len(instances) == 2
        expected = demo_ct_pixels(demo_data)
        for instance in instances:
            data = urllib.request.urlopen(f"{http}/instances/{instance}/file").read()
            assert np.array_equal(opj_decode(read_encapsulated_image(data).frames[0]), expected)


def test_orthanc_holds_hollow_objects_over_rest_and_serves_them_as_dicomweb(ct_base, sender, tmp_path, demo_data):
    """REST POST takes .94, .95 (raw deflate) and .204; .205 is refused (DCMTK 3.6.7 knows no .205).
    Its DICOMweb metadata then carries the URL, and the pixels come from the sender by JPIP."""
    from pyjpip.browser import study_layout
    from pyjpip.dicom.json_model import datasets_from_json

    _, base_url = sender
    made = {}
    for n, syntax in enumerate((JPIP_REFERENCED, JPIP_REFERENCED_DEFLATE, JPIP_HTJ2K_REFERENCED,
                                JPIP_HTJ2K_REFERENCED_DEFLATE)):
        target = "ct_phantom_2048.jhc" if syntax in (JPIP_HTJ2K_REFERENCED, JPIP_HTJ2K_REFERENCED_DEFLATE) \
            else "ct_phantom_2048.j2k"
        (path,) = hollow_copies(ct_base, tmp_path / f"rest{n}", 1, syntax, f"{base_url}/jpip?target={target}")
        made[syntax] = path
    with orthanc(tmp_path / "orthanc") as (http, _, log):
        outcome = {}
        for syntax, path in made.items():
            request = urllib.request.Request(f"{http}/instances", data=path.read_bytes(), method="POST")
            try:
                outcome[syntax] = json.loads(urllib.request.urlopen(request).read())["Status"]
            except urllib.error.HTTPError as error:
                outcome[syntax] = error.code
        assert outcome == {JPIP_REFERENCED: "Success", JPIP_REFERENCED_DEFLATE: "Success",
                           JPIP_HTJ2K_REFERENCED: "Success", JPIP_HTJ2K_REFERENCED_DEFLATE: 400}
        expected = demo_ct_pixels(demo_data)
        for syntax in (JPIP_REFERENCED, JPIP_REFERENCED_DEFLATE, JPIP_HTJ2K_REFERENCED):
            sent = read_hollow(made[syntax].read_bytes())
            study = str(sent.dataset.StudyInstanceUID)
            metadata = json.loads(urllib.request.urlopen(f"{http}/dicom-web/studies/{study}/metadata").read())
            (instance,) = metadata
            assert instance["00287FE0"] == {"vr": "UR", "Value": [sent.url]}
            assert instance["00100010"]["Value"][0]["Alphabetic"] == str(sent.dataset.PatientName)
            layout = study_layout(datasets_from_json(metadata))  # the viewer's layout, from Orthanc's JSON
            assert layout["viewports"][0]["url"] == sent.url
            codestream = scu.fetch_codestream(sent.url, sent.dataset)
            assert np.array_equal(opj_decode(codestream), expected)


def test_dcmtk_echoscu_verifies_the_scp(tmp_path):
    with store_scp(tmp_path / "scp-store") as scp:
        run = subprocess.run(["echoscu", "-v", "-aec", "PYJPIP", "127.0.0.1", str(scp.port)], capture_output=True,
                             text=True, timeout=60)
        time.sleep(0.2)
        log = scp.log.read_text()
    assert run.returncode == 0 and "Received Echo Response (Success)" in run.stdout + run.stderr
    assert "C-ECHO from ECHOSCU@127.0.0.1" in log
