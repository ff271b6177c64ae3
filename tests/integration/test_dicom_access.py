"""Who may store into `pyjpip store-scp` (issue 23, point 4 and the hostile tester's findings): its own
called AE title only, the senders configured (AE title and address), no update of another sender's
instance without permission (in both archives, inside their transaction), each study's own patient
attributes with conflicts flagged, and silent connections that cannot shut other senders out.

Peers are real: `pyjpip store-scp` as its own process, pynetdicom associations bound to other loopback
addresses (127.0.0.2, 127.0.0.3) so that one machine has several senders."""

import json
import socket
import threading
import time

import pydicom
import pytest
from pydicom.uid import generate_uid

from network_support import free_port, new_database, store_scp
from pyjpip.archive import ArrivedInstance, open_archive
from pyjpip.archive.database import DatabaseArchive
from pyjpip.dicom import storage
from pyjpip.dicom.hollow import JPIP_REFERENCED, read_hollow, write_hollow
from pyjpip.security import audit

pytestmark = pytest.mark.cpython_only

URL_A = "http://pixels-a.test/jpip?target=a.j2k"
URL_B = "http://pixels-b.test/jpip?target=b.j2k"




def hollow(base, url: str, study: str | None = None, sop: str | None = None, patient_name: str | None = None,
           patient_id: str | None = None, birth_date: str | None = None) -> bytes:
    ds = pydicom.Dataset()
    ds.update(base)
    ds.file_meta = pydicom.dataset.FileMetaDataset(base.file_meta)
    ds.StudyInstanceUID = study or generate_uid()
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[ds.StudyInstanceUID, "series"])
    ds.SOPInstanceUID = sop or generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if patient_name is not None:
        ds.PatientName = patient_name
    if patient_id is not None:
        ds.PatientID = patient_id
    if birth_date is not None:
        ds.PatientBirthDate = birth_date
    return write_hollow(ds, url, JPIP_REFERENCED)


def send(port: int, part10: bytes, calling: str = "SENDER", called: str = "PYJPIP", source: str = "127.0.0.1",
         tmp=None):
    """One association from ``source`` (a loopback address) as ``calling``: the C-STORE status and Error
    Comment, or ('rejected', (result, source, diagnostic)) / ('aborted', None)."""
    from pynetdicom import AE

    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    ae.add_requested_context(str(pydicom.dcmread(_io(part10)).SOPClassUID), [str(JPIP_REFERENCED)])
    assoc = ae.associate("127.0.0.1", port, ae_title=called, bind_address=(source, 0))
    if assoc.is_rejected:
        primitive = assoc.acceptor.primitive
        return "rejected", (primitive.result, primitive.result_source, primitive.diagnostic)
    if not assoc.is_established:
        return "aborted", None
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".dcm") as f:
        f.write(part10)
        f.flush()
        try:
            status = assoc.send_c_store(f.name)
            return int(status.Status), str(status.get("ErrorComment", ""))
        finally:
            assoc.release()


def _io(data: bytes):
    from io import BytesIO

    return BytesIO(data)


def sop_of(part10: bytes) -> str:
    return str(read_hollow(part10).dataset.SOPInstanceUID)


# --- called and calling AE titles ----------------------------------------------------------------

def test_only_its_own_called_ae_title_unless_any_is_allowed(ct_base, tmp_path):
    with store_scp(tmp_path / "strict") as scp:
        assert send(scp.port, hollow(ct_base, URL_A), called="ANY-SCP") == ("rejected", (1, 1, 7))
        assert send(scp.port, hollow(ct_base, URL_A), called="PYJPIP")[0] == 0
        log = scp.log.read_text()
    assert "association from SENDER@127.0.0.1 rejected: called AE title 'ANY-SCP' is not this SCP's (PYJPIP)" in log
    with store_scp(tmp_path / "lenient", "--any-called-ae") as scp:
        assert send(scp.port, hollow(ct_base, URL_A), called="ANY-SCP")[0] == 0


def test_configured_senders_by_ae_title_and_address(ct_base, tmp_path):
    senders = tmp_path / "senders.json"
    senders.write_text(json.dumps({"senders": [{"ae_title": "CT2", "addresses": ["127.0.0.3"]}]}))
    with store_scp(tmp_path / "store", "--sender", "CT1@127.0.0.2", "--senders-file", senders,
                   "--audit-file", tmp_path / "audit.log") as scp:
        assert send(scp.port, hollow(ct_base, URL_A), "CT1", source="127.0.0.2")[0] == 0
        assert send(scp.port, hollow(ct_base, URL_A), "CT2", source="127.0.0.3")[0] == 0
        # Another AE title, or a known one from another address: rejected, calling AE title not recognised.
        assert send(scp.port, hollow(ct_base, URL_A), "OTHER", source="127.0.0.2") == ("rejected", (1, 1, 3))
        assert send(scp.port, hollow(ct_base, URL_A), "CT1", source="127.0.0.3") == ("rejected", (1, 1, 3))
        assert send(scp.port, hollow(ct_base, URL_A), "CT2", source="127.0.0.1") == ("rejected", (1, 1, 3))
        log = scp.log.read_text()
    assert "association from OTHER@127.0.0.2 rejected: calling AE title 'OTHER' is not a configured sender" in log
    assert "association from CT1@127.0.0.3 rejected: calling AE title 'CT1' may not connect from 127.0.0.3" in log
    alerts = [audit.parse(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    alerts = [a for a in alerts if a["event_id"] == "110113"]
    assert len(alerts) == 3
    assert [(p["UserID"], p["NetworkAccessPointID"]) for a in alerts for p in a["participants"]
            if p["UserIsRequestor"] == "true"] == [("OTHER", "127.0.0.2"), ("CT1", "127.0.0.3"), ("CT2", "127.0.0.1")]


def test_a_bad_sender_option_is_said_before_listening(tmp_path):
    import subprocess

    from network_support import pyjpip_command
    from paths import ROOT

    run = subprocess.run(pyjpip_command("store-scp", "--store", tmp_path, "--port", free_port(), "--sender",
                                        "CT1@10.0.0.0/8:delete"), capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert run.returncode == 1 and "--sender 'CT1@10.0.0.0/8:delete': the permission after ':' is one of create, " \
                                   "update" in run.stderr


# --- updates -------------------------------------------------------------------------------------

def test_another_sender_cannot_replace_an_instance(archive_mode, ct_base, tmp_path):
    """The finding: re-sending an existing SOP Instance UID from another AE replaced its Pixel Data
    Provider URL. Now Refused: Not Authorized (0x0124) and nothing changes, in every archive; the
    first sender's own re-sends are Success (identical: unchanged; changed: its own update); a sender
    with update permission may replace it."""
    mode, store, options, open_archive_again = archive_mode
    first = hollow(ct_base, URL_A)
    sop = sop_of(first)
    study = str(read_hollow(first).dataset.StudyInstanceUID)
    forged = hollow(ct_base, URL_B, study=study, sop=sop)
    with store_scp(store, *options, "--sender", "MODALITY", "--sender", "INTRUDER", "--sender", "FIXER:update",
                   "--audit-file", tmp_path / "audit.log") as scp:
        assert send(scp.port, first, "MODALITY") == (0, "")
        status, comment = send(scp.port, forged, "INTRUDER")
        assert status == storage.NOT_AUTHORIZED and comment.startswith("update refused: stored by MODALITY@"), comment
        # The same AE title from another address is another sender.
        assert send(scp.port, forged, "MODALITY", source="127.0.0.2")[0] == storage.NOT_AUTHORIZED
        assert send(scp.port, first, "MODALITY") == (0, "")  # identical again: unchanged
        archive = open_archive_again()
        try:
            assert read_hollow(archive.part10(sop)).url == URL_A
        finally:
            archive.close()
        assert send(scp.port, forged, "FIXER") == (0, "")
        log = scp.log.read_text()
    archive = open_archive_again()
    try:
        assert read_hollow(archive.part10(sop)).url == URL_B
        assert [c["location"] for c in archive.location_changes()] == [URL_B]
    finally:
        archive.close()
    assert log.count("update refused: stored by MODALITY@127.0.0.1; INTRUDER@127.0.0.1 may not replace") == 2
    assert "updated an instance first stored by MODALITY@127.0.0.1" in log
    messages = [audit.parse(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    transfers = [m for m in messages if m["event_id"] == "110104"]
    assert [(m["action"], m["outcome"]) for m in transfers] == [("C", 0), ("U", 8), ("U", 8), ("U", 0), ("U", 0)]
    for message, who in zip(transfers, ["MODALITY", "INTRUDER", "MODALITY", "MODALITY", "FIXER"]):
        source, destination = message["participants"]
        assert (source["UserID"], source["UserIsRequestor"], source["role"]) == (who, "true", "110153")
        assert (destination["UserID"], destination["role"]) == ("PYJPIP", "110152")
        assert [i for o in message["objects"] for i in o["instances"]] == [(str(ct_base.SOPClassUID), sop)]
        assert study in [o["id"] for o in message["objects"]]


@pytest.mark.parametrize("mode", ["files", "sqlite", "postgresql"])
def test_two_senders_racing_for_one_new_instance_one_wins(mode, ct_base, tmp_path, request):
    """Two associations store the same new SOP Instance UID at once from different senders: the
    archive decides inside its transaction, so exactly one creates it and the other is refused."""
    store = tmp_path / "store"
    url = new_database(request.getfixturevalue("postgres")) if mode == "postgresql" else None
    archive = open_archive(str(store), url, mode == "files")
    try:
        for round_ in range(5):
            sop = generate_uid()
            arrived = []
            for name, pixels in (("A", URL_A), ("B", URL_B)):
                decision = storage.classify(storage.Received(str(JPIP_REFERENCED), str(ct_base.SOPClassUID), sop,
                                                             _body(hollow(ct_base, pixels, sop=sop)), name))
                arrived.append(ArrivedInstance.from_hollow(decision, name, "PYJPIP", sender_address="127.0.0.1"))
            results = [None, None]
            barrier = threading.Barrier(2)

            def store_one(n):
                barrier.wait()
                results[n] = archive.record(arrived[n])

            threads = [threading.Thread(target=store_one, args=(n,)) for n in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            outcomes = sorted(r.outcome for r in results)
            assert outcomes == ["created", "refused"], (round_, outcomes)
            winner = arrived[[r.outcome for r in results].index("created")]
            assert read_hollow(archive.part10(sop)).url == winner.url
    finally:
        archive.close()


def _body(part10: bytes) -> bytes:
    from pyjpip.dicom.hollow import read_file_meta

    return part10[read_file_meta(part10)[1]:]


# --- patients ------------------------------------------------------------------------------------

def test_a_new_study_does_not_rename_the_patient_of_another(archive_mode, ct_base, tmp_path):
    """The finding: a new study with an existing Patient ID renamed that patient across studies.
    Each study keeps its own patient attributes (QIDO-RS answers them per study); the disagreement
    is recorded as a conflict, logged and audited; instances of one study that disagree likewise."""
    mode, store, options, open_archive_again = archive_mode
    first = hollow(ct_base, URL_A, patient_id="PID-7", patient_name="Doe^Jane", birth_date="19700101")
    second = hollow(ct_base, URL_A, patient_id="PID-7", patient_name="Roe^Richard", birth_date="19800202")
    study_1 = str(read_hollow(first).dataset.StudyInstanceUID)
    study_2 = str(read_hollow(second).dataset.StudyInstanceUID)
    odd = hollow(ct_base, URL_A, study=study_1, patient_id="PID-7", patient_name="Doe^Janet",
                 birth_date="19700101")
    with store_scp(store, *options, http=True, log_name="patients.log") as scp:
        assert send(scp.port, first, "RIS")[0] == 0
        assert send(scp.port, second, "OTHERSITE", source="127.0.0.2")[0] == 0
        assert send(scp.port, odd, "RIS")[0] == 0
        import urllib.request

        studies = json.loads(urllib.request.urlopen(f"{scp.http}/dicomweb/studies").read())
        log = scp.log.read_text()
    by_study = {s["0020000D"]["Value"][0]: s for s in studies}
    assert by_study[study_1]["00100010"]["Value"] == [{"Alphabetic": "Doe^Jane"}]
    assert by_study[study_1]["00100030"]["Value"] == ["19700101"]
    assert by_study[study_2]["00100010"]["Value"] == [{"Alphabetic": "Roe^Richard"}]
    assert by_study[study_2]["00100030"]["Value"] == ["19800202"]
    archive = open_archive_again()
    try:
        conflicts = [(c.study_instance_uid, c.other_study_instance_uid, c.attribute, c.value, c.other_value,
                      c.sender.split("@")[0]) for c in archive.patient_conflicts()]
    finally:
        archive.close()
    assert conflicts == [(study_2, study_1, "PatientName", "Roe^Richard", "Doe^Jane", "OTHERSITE"),
                         (study_2, study_1, "PatientBirthDate", "19800202", "19700101", "OTHERSITE"),
                         (study_1, study_1, "PatientName", "Doe^Janet", "Doe^Jane", "RIS")]
    assert log.count("patient conflict: Patient ID 'PID-7'") == 3


def test_an_archive_made_before_is_migrated_with_each_studys_own_patient(ct_base, tmp_path, request):
    """A database written by the code before this change (schema 2, its record() taken from git):
    the patient row holds the name the later study gave; after migration each study answers its own."""
    import importlib.util
    import subprocess

    from paths import ROOT

    source = subprocess.run(["git", "show", "d6b2b64:pyjpip/archive/database.py"], capture_output=True, text=True,
                            cwd=ROOT, check=True).stdout
    spec = importlib.util.spec_from_loader("pyjpip.archive.database_schema2", loader=None)
    old = importlib.util.module_from_spec(spec)
    exec(compile(source, "database_schema2.py", "exec"), old.__dict__)
    for mode in ("sqlite", "postgresql"):
        url = (f"sqlite:///{tmp_path}/{mode}.sqlite" if mode == "sqlite"
               else new_database(request.getfixturevalue("postgres")))
        before = old.DatabaseArchive(url)
        studies = []
        for name in ("Doe^Jane", "Roe^Richard"):
            part10 = hollow(ct_base, URL_A, patient_id="PID-9", patient_name=name)
            decision = storage.classify(storage.Received(str(JPIP_REFERENCED), str(ct_base.SOPClassUID),
                                                         sop_of(part10), _body(part10), "OLD"))
            before.record(old.ArrivedInstance.from_hollow(decision, "OLD", "PYJPIP"))
            studies.append(str(read_hollow(part10).dataset.StudyInstanceUID))
        names = {s["0020000D"]["Value"][0]: s["00100010"]["Value"][0]["Alphabetic"]
                 for s in before.catalog().studies()}
        assert names == {studies[0]: "Roe^Richard", studies[1]: "Roe^Richard"}  # the finding, in the old code
        before.close()
        after = DatabaseArchive(url, create=False)
        try:
            assert after.version == 3
            names = {s["0020000D"]["Value"][0]: s["00100010"]["Value"][0]["Alphabetic"]
                     for s in after.catalog().studies()}
            assert names == {studies[0]: "Doe^Jane", studies[1]: "Roe^Richard"}, mode
            # The old instances' sender is kept as their creator: another AE cannot replace them.
            part10 = hollow(ct_base, URL_B, study=studies[0], sop=str(after.rows(
                "SELECT sop_instance_uid FROM instance ORDER BY pk")[0][0]))
            decision = storage.classify(storage.Received(str(JPIP_REFERENCED), str(ct_base.SOPClassUID),
                                                         sop_of(part10), _body(part10), "NEW"))
            assert after.record(ArrivedInstance.from_hollow(decision, "NEW", "PYJPIP", sender_address="127.0.0.1")
                                ).outcome == "refused"
        finally:
            after.close()


# --- silent connections --------------------------------------------------------------------------

def test_silent_connections_from_one_host_do_not_shut_out_another_sender(ct_base, tmp_path):
    """The finding: 70 silent TCP connections blocked store-scp's associations for ~50 s. A peer
    address holds at most --max-connecting-per-peer connections; ARTIM closes silent ones."""
    with store_scp(tmp_path / "store") as scp:  # the default ARTIM (10 s)
        silent = []
        for _ in range(70):
            s = socket.create_connection(("127.0.0.1", scp.port))
            silent.append(s)
        try:
            time.sleep(0.5)
            started = time.monotonic()
            assert send(scp.port, hollow(ct_base, URL_A), "OTHER", source="127.0.0.2")[0] == 0
            assert time.monotonic() - started < 2.0
            # The connections over the per-peer cap were closed at once, the others by ARTIM.
            closed = 0
            for s in silent:
                s.settimeout(12)
                try:
                    closed += s.recv(1) == b""
                except (ConnectionResetError, TimeoutError):
                    closed += 1
            assert closed == 70
        finally:
            for s in silent:
                s.close()
        assert send(scp.port, hollow(ct_base, URL_A), "SAMEHOST")[0] == 0
        log = scp.log.read_text()
    assert "connections from 127.0.0.1 are not associated yet (at most 8 a peer)" in log


# --- audit ---------------------------------------------------------------------------------------

def test_every_store_refusal_rejection_start_and_stop_is_one_audit_message(ct_base, tmp_path):
    """PS3.15 A.5.3: each event of store-scp's life is exactly one message with the right participants
    and objects, in the order the events happened."""
    log_path = tmp_path / "audit.log"
    stored = hollow(ct_base, URL_A, patient_id="PID-1", patient_name="Doe^Jane")
    sop = sop_of(stored)
    dataset = read_hollow(stored).dataset
    study = str(dataset.StudyInstanceUID)
    forged = hollow(ct_base, URL_B, study=study, sop=sop, patient_id="PID-1", patient_name="Doe^Jane")
    credentials = hollow(ct_base, "http://user:secret@pixels.test/jpip?target=a.j2k")
    with store_scp(tmp_path / "store", "--audit-file", log_path) as scp:
        assert send(scp.port, stored, "MODALITY") == (0, "")
        assert send(scp.port, forged, "INTRUDER", source="127.0.0.2")[0] == storage.NOT_AUTHORIZED
        assert send(scp.port, credentials, "MODALITY")[0] == storage.NOT_AUTHORIZED
        assert send(scp.port, stored, "MODALITY", called="WRONG") == ("rejected", (1, 1, 7))
        time.sleep(0.3)
    messages = [audit.parse(line) for line in log_path.read_text().splitlines()]
    assert [(m["event_id"], m["action"], m["outcome"]) for m in messages] == [
        ("110100", "E", 0),   # application start
        ("110104", "C", 0),   # stored
        ("110104", "U", 8),   # an update refused: not this sender's instance
        ("110104", "C", 8),   # refused: its Pixel Data Provider URL carries credentials
        ("110113", "E", 4),   # association rejected: called AE title
        ("110100", "E", 0),   # application stop
    ]
    assert [m["event_type"] for m in (messages[0], messages[4], messages[5])] == ["110120", "110126", "110121"]

    def requestor(message):
        (found,) = [(p["UserID"], p.get("NetworkAccessPointID")) for p in message["participants"]
                    if p["UserIsRequestor"] == "true"]
        return found

    assert [requestor(m) for m in messages[1:5]] == [("MODALITY", "127.0.0.1"), ("INTRUDER", "127.0.0.2"),
                                                     ("MODALITY", "127.0.0.1"), ("MODALITY", "127.0.0.1")]
    for message in messages[1:4]:
        assert [(p["UserID"], p["role"]) for p in message["participants"] if p["UserIsRequestor"] == "false"] == \
            [("PYJPIP", "110152")]
    for message, instance in zip(messages[1:4], (sop, sop, sop_of(credentials))):
        assert [i for o in message["objects"] for i in o["instances"]] == [(str(ct_base.SOPClassUID), instance)]
    assert {o["id"] for o in messages[1]["objects"]} == {study, "PID-1"}
    assert {o["id"] for o in messages[2]["objects"]} == {study, "PID-1"}
    assert [p["UserID"] for p in messages[0]["participants"]] == ["PYJPIP"]
