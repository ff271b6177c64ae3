"""DICOM over TLS (PS3.15 B.9/B.10, BCP 195) between real peers: `pyjpip store-scp --tls-certfile`
with pyjpip's SCU (store-scu, push's sender) and DCMTK's storescu `+tls`; mutual TLS; a plain TCP
client and a silent one against a TLS SCP. The CA and certificates are made here with the openssl
command line (Debian's openssl)."""

import json
import shutil
import socket
import subprocess
import time
import urllib.request

import pydicom
import pytest
from pydicom.data import get_testdata_file

from network_support import hollow_copies, pyjpip_command, store_scp, without_pixels
from paths import ROOT
from pyjpip.archive.files import FileArchive
from pyjpip.dicom.hollow import JPIP_REFERENCED, JPIP_REFERENCED_DEFLATE, read_hollow
from pyjpip.network import scu
from pyjpip.network.secure_transport import requestor_context
from pyjpip.security import audit

pytestmark = pytest.mark.cpython_only

URL = "http://pixels.test/jpip?target=a.j2k"


def openssl(*arguments, cwd):
    run = subprocess.run(["openssl", *map(str, arguments)], capture_output=True, text=True, cwd=cwd)
    assert run.returncode == 0, run.stderr


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA; the SCP's certificate for 127.0.0.1 and localhost; a client certificate; a second CA
    that signed none of them."""
    assert shutil.which("openssl"), "openssl (Debian's openssl package) is needed"
    folder = tmp_path_factory.mktemp("pki")
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                "-subj", f"/CN=pyjpip test {ca}", "-keyout", f"{ca}.key", "-out", f"{ca}.pem",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
                cwd=folder)
    for name, extensions in (("server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"),
                             ("client", "extendedKeyUsage=clientAuth")):
        (folder / f"{name}.ext").write_text(extensions + "\n")
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj",
                f"/CN={name.upper()}", "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=folder)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=folder)
    return folder


@pytest.fixture(scope="module")
def ct_base(demo_data):
    return without_pixels(demo_data / "ct_phantom_2048.dcm")


def tls_options(pki, mutual=False):
    options = ["--tls-certfile", pki / "server.pem", "--tls-keyfile", pki / "server.key"]
    return options + (["--tls-ca", pki / "ca.pem"] if mutual else [])


def test_pyjpip_scu_to_pyjpip_scp_over_tls_hollow_and_ordinary(pki, ct_base, tmp_path):
    hollow = hollow_copies(ct_base, tmp_path / "outbox", 2, JPIP_REFERENCED, URL)
    hollow += hollow_copies(ct_base, tmp_path / "outbox-deflated", 1, JPIP_REFERENCED_DEFLATE, URL)
    ordinary = tmp_path / "ordinary" / "ct.dcm"
    ordinary.parent.mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), ordinary)
    store = tmp_path / "store"
    with store_scp(store, "--files", *tls_options(pki), http=True) as scp:
        report = scu.store("127.0.0.1", scp.port, [str(p) for p in hollow] + [str(ordinary)], "MODALITY",
                           tls_context=requestor_context(str(pki / "ca.pem")))
        assert not report.failed, [s.describe() for s in report.sent]
        # The command line, with its own context.
        run = subprocess.run(pyjpip_command("store-scu", "127.0.0.1", scp.port, hollow[0], "--tls", "--tls-ca",
                                            pki / "ca.pem"), capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert run.returncode == 0 and "1 of 1 stored" in run.stdout, run.stdout + run.stderr
        original = pydicom.dcmread(ordinary)
        (instance,) = json.loads(urllib.request.urlopen(
            f"{scp.http}/dicomweb/studies/{original.StudyInstanceUID}/metadata").read())
        assert instance["00287FE0"]["Value"][0].startswith(f"{scp.http}/jpip?target=images/")
    archive = FileArchive(str(store))
    for path in hollow:
        assert read_hollow(archive.part10(str(read_hollow(path.read_bytes()).dataset.SOPInstanceUID))).url == URL


def test_mutual_tls_refuses_a_client_without_a_certificate(pki, ct_base, tmp_path):
    paths = hollow_copies(ct_base, tmp_path / "outbox", 1, JPIP_REFERENCED, URL)
    with store_scp(tmp_path / "store", *tls_options(pki, mutual=True), "--audit-file", tmp_path / "audit.log") as scp:
        without = scu.store("127.0.0.1", scp.port, [str(paths[0])], tls_context=requestor_context(str(pki / "ca.pem")))
        assert [s.status for s in without.sent] == [None]
        with_certificate = scu.store("127.0.0.1", scp.port, [str(paths[0])], tls_context=requestor_context(
            str(pki / "ca.pem"), str(pki / "client.pem"), str(pki / "client.key")))
        assert not with_certificate.failed, [s.describe() for s in with_certificate.sent]
        time.sleep(0.3)
        log = scp.log.read_text()
    assert "TLS handshake failed" in log and "CERTIFICATE" in log.upper()
    messages = [audit.parse(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    alerts = [a for a in messages if a["event_id"] == "110113"]
    assert len(alerts) == 1 and "TLS handshake failed" in open(tmp_path / "audit.log").read()
    (stored,) = [m for m in messages if m["event_id"] == "110104"]
    (source,) = [p for p in stored["participants"] if p["UserIsRequestor"] == "true"]
    assert (source["UserID"], source["AlternativeUserID"]) == ("PYJPIP", "CN=CLIENT")  # the certificate's subject


def test_the_scu_verifies_the_scps_certificate(pki, ct_base, tmp_path):
    paths = hollow_copies(ct_base, tmp_path / "outbox", 1, JPIP_REFERENCED, URL)
    with store_scp(tmp_path / "store", *tls_options(pki)) as scp:
        report = scu.store("127.0.0.1", scp.port, [str(paths[0])],
                           tls_context=requestor_context(str(pki / "other-ca.pem")))
        assert [s.status for s in report.sent] == [None]
        time.sleep(0.3)
        assert "TLS handshake failed" in scp.log.read_text()


def test_plain_and_silent_clients_of_a_tls_scp_fail_alone(pki, ct_base, tmp_path):
    """A plain TCP association to a TLS SCP fails cleanly (not stored, said); a client that opens a
    TCP connection and says nothing does not hold up anyone (the handshake is in its own thread)."""
    paths = hollow_copies(ct_base, tmp_path / "outbox", 2, JPIP_REFERENCED, URL)
    with store_scp(tmp_path / "store", *tls_options(pki), "--artim-timeout", "5") as scp:
        plain = scu.store("127.0.0.1", scp.port, [str(paths[0])], timeout=10)
        assert [s.status for s in plain.sent] == [None] and plain.sent[0].comment
        silent = socket.create_connection(("127.0.0.1", scp.port))
        try:
            started = time.monotonic()
            report = scu.store("127.0.0.1", scp.port, [str(paths[1])],
                               tls_context=requestor_context(str(pki / "ca.pem")))
            assert not report.failed and time.monotonic() - started < 3
            silent.settimeout(10)
            assert silent.recv(1) == b""  # closed by ARTIM
        finally:
            silent.close()


def test_dcmtk_storescu_over_tls_to_pyjpip(pki, tmp_path):
    """DCMTK's storescu (BCP 195 non-downgrading profile, its default) with a client certificate,
    to a mutual-TLS pyjpip SCP: an ordinary Explicit VR Little Endian object, ingested and served."""
    ordinary = tmp_path / "ct.dcm"
    shutil.copy(get_testdata_file("CT_small.dcm"), ordinary)
    with store_scp(tmp_path / "store", "--files", *tls_options(pki, mutual=True), http=True) as scp:
        run = subprocess.run(["storescu", "-v", "+tls", str(pki / "client.key"), str(pki / "client.pem"), "+cf",
                              str(pki / "ca.pem"), "-aet", "DCMTK", "-aec", "PYJPIP", "127.0.0.1", str(scp.port),
                              str(ordinary)], capture_output=True, text=True, timeout=60)
        said = run.stdout + run.stderr
        assert run.returncode == 0 and "Received Store Response (Success)" in said, said
        original = pydicom.dcmread(ordinary)
        (instance,) = json.loads(urllib.request.urlopen(
            f"{scp.http}/dicomweb/studies/{original.StudyInstanceUID}/metadata").read())
        assert instance["00100020"]["Value"] == [original.PatientID]
        url = instance["00287FE0"]["Value"][0]
        codestream = scu.fetch_codestream(url, pydicom.Dataset.from_json(instance))
        from reference import opj_decode

        assert (opj_decode(codestream) == original.pixel_array).all()
        # Without a client certificate DCMTK is refused by the same SCP.
        run = subprocess.run(["storescu", "+tla", "+cf", str(pki / "ca.pem"), "-aec", "PYJPIP", "127.0.0.1",
                              str(scp.port), str(ordinary)], capture_output=True, text=True, timeout=60)
        assert run.returncode != 0


def test_push_over_mutual_tls(pki, tmp_path):
    """`pyjpip push --tls --tls-ca --tls-certfile --tls-keyfile`: ingested into the sender's store, its
    hollow object sent over mutual TLS; without the client certificate nothing is stored."""
    sources = tmp_path / "modality"
    sources.mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), sources / "ct.dcm")
    store = tmp_path / "scp-store"
    with store_scp(store, "--files", *tls_options(pki, mutual=True)) as scp:
        common = ["push", "127.0.0.1", scp.port, sources, "--store", tmp_path / "own", "--url-base",
                  "http://127.0.0.1:9", "--tls", "--tls-ca", pki / "ca.pem"]
        run = subprocess.run(pyjpip_command(*common), capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert run.returncode == 1 and "0 of 1 pushed" in run.stdout, run.stdout + run.stderr
        run = subprocess.run(pyjpip_command(*common, "--tls-certfile", pki / "client.pem", "--tls-keyfile",
                                            pki / "client.key"), capture_output=True, text=True, cwd=ROOT,
                             timeout=300)
        assert run.returncode == 0 and "1 of 1 pushed" in run.stdout, run.stdout + run.stderr
    kept = FileArchive(str(store)).part10(str(pydicom.dcmread(sources / "ct.dcm").SOPInstanceUID))
    assert read_hollow(kept).url.startswith("http://127.0.0.1:9/jpip?target=images/")
