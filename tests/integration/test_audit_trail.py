"""The audit trail (pyjpip.security.audit): PS3.15 A.5 messages to a file and to real syslog collectors
over UDP (RFC 5426), TCP (RFC 6587 octet counting) and TLS (RFC 5425, a certificate made here by openssl)."""

import re
import socket
import ssl
import subprocess
import threading
import xml.etree.ElementTree as ElementTree

import pytest

from pyjpip.security import audit

pytestmark = pytest.mark.cpython_only

STUDY, PATIENT = "1.2.826.0.1.3680043.8.498.1", "PAT-7"
INSTANCES = [("1.2.840.10008.5.1.4.1.1.2", "1.2.826.0.1.3680043.8.498.1.1"),
             ("1.2.840.10008.5.1.4.1.1.2", "1.2.826.0.1.3680043.8.498.1.2"),
             ("1.2.840.10008.5.1.4.1.1.7", "1.2.826.0.1.3680043.8.498.1.3")]
#: RFC 5424 6: HEADER = PRI VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID, then SD, then MSG.
SYSLOG = re.compile(rb"^<(\d{1,3})>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (\S{1,255}) pyjpip (\d+) "
                    rb"DICOM\+RFC3881 - \xef\xbb\xbf(<AuditMessage>.*</AuditMessage>)$", re.S)


def stored(trail):
    return [audit.parse(xml) for d in trail.destinations for xml in getattr(d, "xml", [])]


def test_a_transfer_carries_its_participants_study_patient_and_instances():
    trail = audit.AuditTrail.in_memory()
    source = audit.Participant("MODALITY", True, "192.0.2.7", role=audit.SOURCE)
    destination = audit.Participant("PYJPIP", False, "192.0.2.1", role=audit.DESTINATION)
    trail.record(audit.instances_transferred("C", audit.SUCCESS, [source, destination], STUDY, PATIENT, "Doe^Jane",
                                             INSTANCES))
    (message,) = stored(trail)
    assert message["event_id"] == "110104" and message["action"] == "C" and message["outcome"] == 0
    assert [(p["UserID"], p["UserIsRequestor"], p["NetworkAccessPointID"], p["NetworkAccessPointTypeCode"], p["role"])
            for p in message["participants"]] == [("MODALITY", "true", "192.0.2.7", "2", "110153"),
                                                  ("PYJPIP", "false", "192.0.2.1", "2", "110152")]
    study, patient = message["objects"]
    assert (study["id"], study["type"]) == (STUDY, "110180")
    assert sorted(study["instances"]) == sorted(INSTANCES)
    assert (patient["id"], patient["type"], patient["name"]) == (PATIENT, "2", "Doe^Jane")
    root = ElementTree.fromstring(trail.destinations[0].xml[0])
    # A.5.1: the order of the parts, and one SOPClass per class with its count.
    assert [child.tag for child in root] == ["EventIdentification", "ActiveParticipant", "ActiveParticipant",
                                             "AuditSourceIdentification", "ParticipantObjectIdentification",
                                             "ParticipantObjectIdentification"]
    counts = {s.get("UID"): s.get("NumberOfInstances") for s in root.iter("SOPClass")}
    assert counts == {"1.2.840.10008.5.1.4.1.1.2": "2", "1.2.840.10008.5.1.4.1.1.7": "1"}


def test_every_builder_names_its_event_and_type():
    user = audit.Participant("alice", True, "198.51.100.4")
    made = [audit.application_activity(True, [user]), audit.application_activity(False, [user]),
            audit.instances_accessed("R", audit.MINOR_FAILURE, [user], STUDY, detail="not this user's study"),
            audit.query(audit.SUCCESS, [user], "/dicomweb/studies?PatientID=PAT-7"),
            audit.user_authentication(audit.SERIOUS_FAILURE, [user], "token expired"),
            audit.security_alert(audit.MINOR_FAILURE, [user], audit.NODE_AUTHENTICATION, "calling AE not known")]
    trail = audit.AuditTrail.in_memory()
    for message in made:
        trail.record(message)
    got = [(m["event_id"], m["event_type"], m["outcome"], m["detail"]) for m in stored(trail)]
    assert got == [("110100", "110120", 0, None), ("110100", "110121", 0, None),
                   ("110103", None, 4, "not this user's study"), ("110112", None, 0, None),
                   ("110114", "110122", 8, "token expired"), ("110113", "110126", 4, "calling AE not known")]
    query = ElementTree.fromstring(trail.destinations[0].xml[3]).find("ParticipantObjectIdentification")
    import base64

    assert base64.b64decode(query.findtext("ParticipantObjectQuery")) == b"/dicomweb/studies?PatientID=PAT-7"


def test_values_from_outside_are_bounded_and_cannot_break_the_xml():
    hostile = "x<y>&\"'\x00\x1b" + "A" * 100000
    trail = audit.AuditTrail.in_memory()
    trail.record(audit.instances_accessed("R", 0, [audit.Participant(hostile, True, hostile)], hostile, hostile,
                                          hostile, [(hostile, hostile)]))
    xml = trail.destinations[0].xml[0]
    message = audit.parse(xml)  # well-formed
    assert len(xml) < 10 * audit.MAXIMUM_TEXT
    assert message["participants"][0]["UserID"].startswith("x<y>&\"'??")
    assert "\n" not in xml
    with pytest.raises(ValueError, match="EventActionCode 'X'"):
        audit.instances_accessed("X", 0, [])


def test_a_file_gets_one_message_per_line(tmp_path):
    path = tmp_path / "audit.log"
    trail = audit.AuditTrail.from_options(file=str(path))
    for n in range(3):
        trail.record(audit.instances_accessed("R", 0, [audit.Participant(f"user{n}", True)], STUDY))
    lines = path.read_text().splitlines()
    assert [audit.parse(line)["participants"][0]["UserID"] for line in lines] == ["user0", "user1", "user2"]
    assert path.stat().st_mode & 0o077 == 0  # patient data: owner only
    with pytest.raises(FileNotFoundError, match="does not exist"):
        audit.AuditTrail.from_options(file=str(tmp_path / "no" / "audit.log"))


def test_a_failing_destination_is_logged_once_and_never_fails_the_caller(tmp_path, caplog):
    path = tmp_path / "audit.log"
    trail = audit.AuditTrail([audit.FileDestination(str(path)), audit.MemoryDestination()])
    path.mkdir()  # the file cannot be opened for writing now
    for _ in range(3):
        trail.record(audit.query(0, [audit.Participant("u", True)], "/dicomweb/studies"))
    assert len(trail.messages) == 3  # the other destination still has every message
    assert sum("are failing" in r.message for r in caplog.records) == 1
    path.rmdir()
    trail.record(audit.query(0, [audit.Participant("u", True)], "/dicomweb/studies"))
    assert len(path.read_text().splitlines()) == 1
    assert any("written again" in r.message for r in caplog.records)


def test_syslog_over_udp_is_one_rfc5424_message_per_datagram():
    collector = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    collector.bind(("127.0.0.1", 0))
    collector.settimeout(5)
    trail = audit.AuditTrail.from_options(syslog=f"udp://127.0.0.1:{collector.getsockname()[1]}")
    trail.record(audit.user_authentication(audit.SERIOUS_FAILURE, [audit.Participant("mallory", True)], "bad signature"))
    trail.record(audit.user_authentication(audit.SUCCESS, [audit.Participant("alice", True)]))
    first, second = collector.recvfrom(65535)[0], collector.recvfrom(65535)[0]
    collector.close()
    for datagram, severity, user in ((first, 4, "mallory"), (second, 5, "alice")):
        match = SYSLOG.match(datagram)
        assert match, datagram[:120]
        assert int(match[1]) == 10 * 8 + severity  # facility 10 (security/authorization)
        assert audit.parse(match[5].decode())["participants"][0]["UserID"] == user


def _octet_counted(stream: bytes) -> list[bytes]:
    """RFC 6587 3.4.1 / RFC 5425 4.3: MSG-LEN SP SYSLOG-MSG, repeated."""
    frames = []
    while stream:
        length, _, rest = stream.partition(b" ")
        frames.append(rest[:int(length)])
        stream = rest[int(length):]
    return frames


def _collector(wrap=None):
    server = socket.create_server(("127.0.0.1", 0))
    received = bytearray()
    done = threading.Event()

    def run():
        connection, _ = server.accept()
        if wrap is not None:
            connection = wrap(connection)
        if connection is None:  # the handshake failed
            done.set()
            return
        with connection:
            while chunk := connection.recv(65536):
                received.extend(chunk)
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return server, received, done


def test_syslog_over_tcp_frames_by_octet_count():
    server, received, done = _collector()
    trail = audit.AuditTrail.from_options(syslog=f"tcp://127.0.0.1:{server.getsockname()[1]}")
    for n in range(5):
        trail.record(audit.instances_accessed("R", 0, [audit.Participant(f"reader {n}", True)], STUDY))
    trail.close()
    assert done.wait(5)
    frames = _octet_counted(bytes(received))
    assert [audit.parse(SYSLOG.match(f)[5].decode())["participants"][0]["UserID"] for f in frames] == \
        [f"reader {n}" for n in range(5)]


@pytest.fixture(scope="module")
def collector_certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 made by openssl (the collector's; the trail trusts it as CA)."""
    folder = tmp_path_factory.mktemp("syslog-tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return key, cert


def test_syslog_over_tls_verifies_the_collector(collector_certificate):
    key, cert = collector_certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server, received, done = _collector(lambda c: context.wrap_socket(c, server_side=True))
    url = f"tls://127.0.0.1:{server.getsockname()[1]}"
    trail = audit.AuditTrail.from_options(syslog=url, syslog_ca=str(cert))
    trail.record(audit.instances_transferred("C", 0, [audit.Participant("MODALITY", True, role=audit.SOURCE)], STUDY))
    trail.close()
    assert done.wait(5)
    (frame,) = _octet_counted(bytes(received))
    assert audit.parse(SYSLOG.match(frame)[5].decode())["event_id"] == "110104"


def test_syslog_over_tls_refuses_a_collector_it_cannot_verify(collector_certificate, caplog):
    key, cert = collector_certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    def wrap(connection):
        try:
            return context.wrap_socket(connection, server_side=True)
        except (ssl.SSLError, OSError):
            return None

    server, received, done = _collector(wrap)
    trail = audit.AuditTrail.from_options(syslog=f"tls://127.0.0.1:{server.getsockname()[1]}")  # system CAs only
    trail.record(audit.query(0, [audit.Participant("u", True)], "/dicomweb/studies"))
    assert any("are failing" in r.message and "CERTIFICATE_VERIFY_FAILED" in r.message for r in caplog.records)
    assert not received


def test_a_bad_syslog_address_is_refused_when_configured():
    for url in ("syslog://host", "udp://", "http://host:514"):
        with pytest.raises(ValueError, match="udp://HOST"):
            audit.AuditTrail.from_options(syslog=url)
