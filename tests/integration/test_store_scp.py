"""The push workflow between real processes over loopback: `pyjpip store-scu` and `push` to `pyjpip
store-scp`, kept as files, in SQLite and in a PostgreSQL server of the suite's own; what was sent
read back attribute by attribute and, for the deflated syntaxes, byte by byte."""

import json
import re
import subprocess
import urllib.request
import zlib

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from network_support import hollow_copies, pyjpip_command, pyjpip_serve, store_scp
from paths import ROOT
from pyjpip.archive.database import DatabaseArchive
from pyjpip.archive.files import FileArchive
from pyjpip.dicom.hollow import (
    DEFLATED,
    JPIP_HTJ2K_REFERENCED,
    JPIP_HTJ2K_REFERENCED_DEFLATE,
    JPIP_REFERENCED,
    JPIP_REFERENCED_DEFLATE,
    read_file_meta,
    read_hollow,
    write_hollow,
)
from pyjpip.network import scu
from reference import opj_decode

pytestmark = pytest.mark.cpython_only

SYNTAXES = [JPIP_REFERENCED, JPIP_REFERENCED_DEFLATE, JPIP_HTJ2K_REFERENCED, JPIP_HTJ2K_REFERENCED_DEFLATE]




def objects_in_every_syntax(ct_base, folder, base_url):
    """Two objects in each JPIP syntax; the HTJ2K ones point at the HTJ2K codestream."""
    made = {}
    for syntax in SYNTAXES:
        target = "ct_phantom_2048.jhc" if syntax in (JPIP_HTJ2K_REFERENCED, JPIP_HTJ2K_REFERENCED_DEFLATE) \
            else "ct_phantom_2048.j2k"
        made[syntax] = hollow_copies(ct_base, folder / syntax, 2, syntax, f"{base_url}/jpip?target={target}")
    return made


def body(data: bytes) -> bytes:
    return data[read_file_meta(data)[1]:]


def same_attributes(sent: pydicom.Dataset, stored: pydicom.Dataset) -> None:
    assert [e.tag for e in sent] == [e.tag for e in stored]
    for element in sent:
        assert stored[element.tag].VR == element.VR and stored[element.tag].value == element.value, element.tag


def test_every_jpip_syntax_in_every_archive(archive_mode, ct_base, sender, tmp_path):
    mode, store, options, open_archive = archive_mode
    _, base_url = sender
    made = objects_in_every_syntax(ct_base, tmp_path / "outbox", base_url)
    with store_scp(store, *options) as scp:
        run = subprocess.run(pyjpip_command("store-scu", "127.0.0.1", scp.port, tmp_path / "outbox",
                                            "--ae-title", "SENDER", "--called-ae", "PYJPIP"),
                             capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "8 of 8 stored" in run.stdout and "[8/8]" in run.stderr  # progress while sending, summary at the end
    archive = open_archive()
    try:
        for syntax, paths in made.items():
            for path in paths:
                sent_bytes = path.read_bytes()
                sent = read_hollow(sent_bytes)
                stored_bytes = archive.part10(str(sent.dataset.SOPInstanceUID))
                stored = read_hollow(stored_bytes)
                assert stored.transfer_syntax == syntax and stored.url == sent.url
                same_attributes(sent.dataset, stored.dataset)
                assert body(stored_bytes) == body(sent_bytes)  # the sender's own bytes, deflate stream included
                if syntax in DEFLATED:
                    raw = body(stored_bytes)
                    assert not (raw[0] & 0x0F == 8 and (raw[0] << 8 | raw[1]) % 31 == 0)  # no zlib header
                    assert zlib.decompress(raw, -15) == zlib.decompress(body(sent_bytes), -15)
        if mode != "files":
            rows = archive.rows("SELECT calling_ae_title, called_ae_title, received_at, location, "
                                "transfer_syntax_uid FROM instance")
            assert len(rows) == 8 and {r[0] for r in rows} == {"SENDER"} and {r[1] for r in rows} == {"PYJPIP"}
            assert all(r[2] for r in rows)
            assert {r[3] for r in rows} == {read_hollow(p.read_bytes()).url for ps in made.values() for p in ps}
            assert sorted(r[4] for r in rows) == sorted(str(s) for s in SYNTAXES for _ in range(2))
            assert archive.rows("SELECT COUNT(*) FROM patient")[0][0] == 1
    finally:
        archive.close()


@pytest.mark.parametrize("stored, accepted", [(JPIP_REFERENCED_DEFLATE, JPIP_REFERENCED),
                                              (JPIP_REFERENCED, JPIP_REFERENCED_DEFLATE),
                                              (JPIP_HTJ2K_REFERENCED_DEFLATE, JPIP_HTJ2K_REFERENCED)])
def test_an_scp_taking_only_the_other_jpip_syntax_gets_the_data_set_inflated_or_deflated(
        stored, accepted, ct_base, sender, tmp_path):
    _, base_url = sender
    paths = hollow_copies(ct_base, tmp_path / "outbox", 2, stored, f"{base_url}/jpip?target=ct_phantom_2048.j2k")
    store = tmp_path / "scp-store"
    with store_scp(store, "--files", "--transfer-syntax", str(accepted)) as scp:
        report = scu.store("127.0.0.1", scp.port, [str(p) for p in paths])
    assert not report.failed and {s.transfer_syntax for s in report.sent} == {str(accepted)}
    archive = FileArchive(str(store))
    for path in paths:
        sent = path.read_bytes()
        kept = archive.part10(str(read_hollow(sent).dataset.SOPInstanceUID))
        assert read_hollow(kept).transfer_syntax == accepted
        plain = [zlib.decompress(body(b), -15) if s in DEFLATED else body(b) for b, s in ((sent, stored),
                                                                                           (kept, accepted))]
        assert plain[0] == plain[1]  # the same data set, only inflated or deflated


def test_ordinary_objects_are_ingested_and_served_by_the_scp(archive_mode, tmp_path, sender):
    """Objects with their pixels (uncompressed, JPEG 2000) are ingested; the SCP then answers their JPIP."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    sources = {"CT_small.dcm": get_testdata_file("CT_small.dcm"),
               "MR_small_jp2klossless.dcm": get_testdata_file("MR_small_jp2klossless.dcm")}
    for name, path in sources.items():
        (outbox / name).write_bytes(open(path, "rb").read())
    _, store, options, open_archive = archive_mode
    with store_scp(store, *options, http=True) as scp:
        report = scu.store("127.0.0.1", scp.port, [str(outbox)], "MODALITY", "PYJPIP")
        assert not report.failed, [s.describe() for s in report.sent]
        assert {s.transfer_syntax for s in report.sent} == {"1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.90"}
        studies = json.loads(urllib.request.urlopen(f"{scp.http}/dicomweb/studies").read())
        assert len(studies) == 2
        for name, path in sources.items():
            original = pydicom.dcmread(path)
            metadata = json.loads(urllib.request.urlopen(
                f"{scp.http}/dicomweb/studies/{original.StudyInstanceUID}/metadata").read())
            (instance,) = metadata
            url = instance["00287FE0"]["Value"][0]
            assert url.startswith(f"{scp.http}/jpip?target=images/")
            codestream = scu.fetch_codestream(url, pydicom.Dataset.from_json(instance))
            if name == "CT_small.dcm":
                expected = original.pixel_array
            else:
                from pyjpip.dicom.pixel_data import read_encapsulated_image

                expected = opj_decode(read_encapsulated_image(open(path, "rb").read()).frames[0])
            assert np.array_equal(opj_decode(codestream), expected), name
    archive = open_archive()  # the ordinary objects are in the archive as hollow objects pointing at the SCP
    try:
        for path in sources.values():
            original = pydicom.dcmread(path)
            kept = read_hollow(archive.part10(str(original.SOPInstanceUID)))
            assert kept.url.startswith(f"{scp.http}/jpip?target=images/")
            assert kept.dataset.PatientID == original.PatientID and "PixelData" not in kept.dataset
    finally:
        archive.close()


def test_push_ingests_into_the_senders_store_and_the_urls_point_back(tmp_path, demo_data):
    """`pyjpip push`: ordinary DICOM into the sender's store, hollow objects to the SCP whose URLs
    reach the sender's JPIP server (another process, another port)."""
    import shutil

    sources = tmp_path / "modality"
    sources.mkdir()
    shutil.copy(demo_data / "cr_mono1_1024.dcm", sources / "cr.dcm")
    shutil.copy(get_testdata_file("MR_small_jp2klossless.dcm"), sources / "mr.dcm")
    (sources / "notes.txt").write_text("not DICOM")
    own = tmp_path / "own-store"
    own.mkdir()
    from network_support import free_port

    port = free_port()
    with pyjpip_serve(own, port=port) as mine, store_scp(tmp_path / "scp-store", http=True) as scp:
        run = subprocess.run(pyjpip_command("push", "127.0.0.1", scp.port, sources, "--store", own, "--url-base",
                                            mine.http, "--deflate"), capture_output=True, text=True, cwd=ROOT,
                             timeout=300)
        assert run.returncode == 1, run.stdout + run.stderr  # notes.txt could not be ingested: said, exit 1
        assert "notes.txt: not ingested" in run.stderr and "2 of 2 pushed" in run.stdout
        studies = json.loads(urllib.request.urlopen(f"{scp.http}/dicomweb/studies").read())
        assert len(studies) == 2
        for study in studies:
            (instance,) = json.loads(urllib.request.urlopen(
                f"{scp.http}/dicomweb/studies/{study['0020000D']['Value'][0]}/metadata").read())
            url = instance["00287FE0"]["Value"][0]
            assert url.startswith(f"{mine.http}/jpip?target=images/")
            pixels = opj_decode(scu.fetch_codestream(url, pydicom.Dataset.from_json(instance)))
            source = next(p for p in sources.glob("*.dcm")
                          if pydicom.dcmread(p).SOPInstanceUID == instance["00080018"]["Value"][0])
            from pyjpip.dicom.pixel_data import read_encapsulated_image

            expected = opj_decode(read_encapsulated_image(source.read_bytes()).frames[0])
            assert np.array_equal(pixels, expected)
        archive = DatabaseArchive(f"sqlite:///{tmp_path}/scp-store/pyjpip.sqlite", create=False)
        syntaxes = {r[0] for r in archive.rows("SELECT transfer_syntax_uid FROM instance")}
        archive.close()
        assert syntaxes <= {str(JPIP_REFERENCED_DEFLATE), str(JPIP_HTJ2K_REFERENCED_DEFLATE)}


def test_push_says_when_its_jpip_server_does_not_answer(tmp_path, demo_data):
    import shutil

    sources = tmp_path / "modality"
    sources.mkdir()
    shutil.copy(demo_data / "mr_small_jp2k.dcm", sources / "mr.dcm")
    with store_scp(tmp_path / "scp-store") as scp:
        run = subprocess.run(pyjpip_command("push", "127.0.0.1", scp.port, sources, "--store", tmp_path / "own",
                                            "--url-base", "http://127.0.0.1:9"), capture_output=True, text=True,
                             cwd=ROOT, timeout=120)
    assert run.returncode == 0 and "1 of 1 pushed" in run.stdout
    assert "warning: no JPIP server answers at http://127.0.0.1:9/jpip?target=images/" in run.stderr


def test_an_scu_summary_names_every_failure_and_exits_non_zero(tmp_path, ct_base, sender):
    _, base_url = sender
    good = hollow_copies(ct_base, tmp_path / "outbox", 2, JPIP_REFERENCED, f"{base_url}/jpip?target=x.j2k")
    (tmp_path / "outbox" / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\1" * 40)
    with store_scp(tmp_path / "scp-store") as scp:
        run = subprocess.run(pyjpip_command("store-scu", "127.0.0.1", scp.port, tmp_path / "outbox"),
                             capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 1
    assert re.search(r"broken\.dcm +not sent: not a DICOM Part 10 file", run.stdout) and "2 of 3 stored" in run.stdout
    for path in good:
        assert re.search(rf"{read_hollow(path.read_bytes()).dataset.SOPInstanceUID} +stored \(0x0000\)", run.stdout)
    run = subprocess.run(pyjpip_command("store-scu", "127.0.0.1", 9, good[0]), capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    assert run.returncode == 1 and re.search(r" +not sent: no association with 127\.0\.0\.1:9", run.stdout)


def test_a_resent_instance_updates_in_place_and_a_changed_url_is_recorded(archive_mode, ct_base, tmp_path, sender):
    mode, store, options, open_archive = archive_mode
    _, base_url = sender
    first = hollow_copies(ct_base, tmp_path / "first", 3, JPIP_REFERENCED, f"{base_url}/jpip?target=a.j2k")
    with store_scp(store, *options) as scp:
        assert not scu.store("127.0.0.1", scp.port, [str(p) for p in first]).failed
        again = tmp_path / "again"
        again.mkdir()
        for n, path in enumerate(first):  # the same instances, two of them with a new URL
            ds = read_hollow(path.read_bytes()).dataset
            (again / f"{n}.dcm").write_bytes(write_hollow(ds, "http://elsewhere.test/jpip?target=a.j2k" if n else
                                                          str(ds.PixelDataProviderURL), JPIP_REFERENCED))
        assert not scu.store("127.0.0.1", scp.port, [str(again)]).failed
    archive = open_archive()
    try:
        changes = archive.location_changes()
        assert len(changes) == 2 and {c["location"] for c in changes} == {"http://elsewhere.test/jpip?target=a.j2k"}
        assert {c["previous_location"] for c in changes} == {f"{base_url}/jpip?target=a.j2k"}
        for n, path in enumerate(first):
            sop = str(read_hollow(path.read_bytes()).dataset.SOPInstanceUID)
            url = read_hollow(archive.part10(sop)).url
            assert url == ("http://elsewhere.test/jpip?target=a.j2k" if n else f"{base_url}/jpip?target=a.j2k")
        if mode == "files":
            assert len(list((store / "files").rglob("*.dcm"))) == 3
        else:
            assert archive.rows("SELECT COUNT(*), SUM(times_received) FROM instance")[0] == (3, 6)
    finally:
        archive.close()
