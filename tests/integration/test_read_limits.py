"""DICOM read limits wherever pyjpip reads DICOM (pyjpip.dicom.limits), as a user meets them: deflate
bombs and oversized files refused by ingest (API and command), by the DICOMweb listing of an
ingested store and of received files, and by `pyjpip dicom`, each with its typed error, the good
objects beside them kept. The commands run with their address space capped, so a limit checked
after reading, or an inflation left unbounded, would fail here as a MemoryError."""

import logging
import os
import resource
import shutil
import subprocess
import sys
import zlib

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import UID

from paths import ROOT
from pyjpip.dicom.dicomweb import DicomWebStore
from pyjpip.dicom.hollow import JPIP_REFERENCED_DEFLATE, read_hollow
from pyjpip.dicom.ingest import ingest, ingest_one
from pyjpip.dicom.limits import MAXIMUM_HOLLOW_BYTES, MAXIMUM_HOLLOW_FILE_BYTES, MAXIMUM_ORDINARY_BYTES
from pyjpip.errors import DatasetTooLargeError

pytestmark = pytest.mark.cpython_only

DEFLATED_EXPLICIT = UID("1.2.840.10008.1.2.1.99")
#: The address space a command gets here: room for Python, pydicom and an ordinary object, not for
#: what a bomb claims or an oversized file holds.
ADDRESS_SPACE = 384 << 20


def pyjpip(*args):
    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    return subprocess.run([sys.executable, "-m", "pyjpip", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, preexec_fn=cap)


def part10(meta_source: pydicom.Dataset, syntax, body: bytes) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = meta_source.SOPClassUID
    meta.MediaStorageSOPInstanceUID = meta_source.SOPInstanceUID
    meta.TransferSyntaxUID = UID(syntax)
    meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = True, False
    out.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(out, meta, enforce_standard=True)
    return out.getvalue() + body


def bomb_body(dataset: pydicom.Dataset, inflated_bytes: int) -> bytes:
    """Raw deflate of ``dataset`` in Explicit VR Little Endian followed by a private OB element of
    ``inflated_bytes`` zeros: a few hundred kilobytes that claim ``inflated_bytes``."""
    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = True, False
    write_dataset(out, dataset)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    pieces = [compressor.compress(out.getvalue()),
              compressor.compress(b"\x09\x00\x10\x10OB\0\0" + inflated_bytes.to_bytes(4, "little"))]
    zeros = b"\0" * (1 << 20)
    pieces += [compressor.compress(zeros) for _ in range(inflated_bytes >> 20)]
    pieces.append(compressor.flush())
    return b"".join(pieces)


@pytest.fixture(scope="module")
def ct_small():
    return pydicom.dcmread(get_testdata_file("CT_small.dcm"))


@pytest.fixture(scope="module")
def deflated_bomb(tmp_path_factory, ct_small):
    """An ordinary CT in Deflated Explicit VR Little Endian (1.2.840.10008.1.2.1.99) claiming 512 MiB,
    more than a command's address space here: pydicom's own reading would end in a MemoryError."""
    path = tmp_path_factory.mktemp("bombs") / "bomb-99.dcm"
    path.write_bytes(part10(ct_small, DEFLATED_EXPLICIT, bomb_body(ct_small, 512 << 20)))
    assert path.stat().st_size < 1_000_000
    return path


def sparse(path, size: int):
    """A file of ``size`` bytes that takes no disk (and would take ``size`` of memory if read)."""
    with open(path, "wb") as f:
        f.write(open(get_testdata_file("CT_small.dcm"), "rb").read())
        f.truncate(size)
    return path


def test_ingest_refuses_a_deflate_bomb_and_an_oversized_file_and_ingests_the_rest(tmp_path, deflated_bomb):
    sources = tmp_path / "sources"
    sources.mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), sources / "good.dcm")
    shutil.copy(deflated_bomb, sources / "bomb.dcm")
    sparse(sources / "huge.dcm", MAXIMUM_ORDINARY_BYTES + 1)
    store = tmp_path / "store"
    limit = 64 << 20  # the bomb's 512 MiB are over it; the good object is far under
    with pytest.raises(DatasetTooLargeError, match=r"bomb\.dcm: deflated data set inflates past 67108864 bytes"):
        ingest_one(str(sources / "bomb.dcm"), str(store), "http://store.test", maximum_bytes=limit)
    with pytest.raises(DatasetTooLargeError, match=rf"huge\.dcm: DICOM object of {MAXIMUM_ORDINARY_BYTES + 1} "
                                                   rf"bytes is over the limit of {MAXIMUM_ORDINARY_BYTES} bytes"):
        ingest_one(str(sources / "huge.dcm"), str(store), "http://store.test")  # the default limit
    report = ingest([str(sources)], str(store), "http://store.test", maximum_bytes=limit)
    assert report.ingested == [str(sources / "good.dcm")]
    failed = dict(report.failed)
    assert failed[str(sources / "bomb.dcm")].startswith("deflated data set inflates past 67108864 bytes")
    assert failed[str(sources / "huge.dcm")] == f"DICOM object of {MAXIMUM_ORDINARY_BYTES + 1} bytes is over the " \
                                                f"limit of {limit} bytes; refused"
    assert len(list((store / "hollow").rglob("*.dcm"))) == 1 and len(list((store / "images").rglob("*"))) >= 1


def test_the_ingest_command_says_so_in_a_line_each(tmp_path, deflated_bomb):
    sources = tmp_path / "sources"
    sources.mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), sources / "good.dcm")
    shutil.copy(deflated_bomb, sources / "bomb.dcm")
    sparse(sources / "huge.dcm", 3 << 30)
    run = pyjpip("ingest", sources, "--store", tmp_path / "store", "--url-base", "http://store.test",
                 "--max-ordinary-bytes", 100 << 20)
    assert run.returncode == 0, run.stderr
    lines = run.stderr.strip().splitlines()
    assert f"pyjpip ingest: {sources / 'bomb.dcm'}: deflated data set inflates past 104857600 bytes; refused (a " \
           "deflate bomb, or a data set over this limit)" in lines
    assert f"pyjpip ingest: {sources / 'huge.dcm'}: DICOM object of {3 << 30} bytes is over the limit of 104857600 " \
           "bytes; refused" in lines
    assert "1 ingested, 0 already in the store, 2 failed" in run.stdout


def test_the_dicom_command_refuses_an_oversized_file_before_reading_it(tmp_path, demo_data):
    huge = sparse(tmp_path / "huge.dcm", MAXIMUM_ORDINARY_BYTES + 1)
    run = pyjpip("dicom", huge)
    assert run.returncode == 1 and "MemoryError" not in run.stderr
    assert run.stderr.strip() == (f"pyjpip dicom: {huge}: DICOM object of {MAXIMUM_ORDINARY_BYTES + 1} bytes is "
                                  f"over the limit of {MAXIMUM_ORDINARY_BYTES} bytes; refused")
    ct = demo_data / "ct_phantom_2048.dcm"
    run = pyjpip("dicom", ct, "--max-ordinary-bytes", 1 << 20)
    assert run.returncode == 1 and run.stderr.strip() == (
        f"pyjpip dicom: {ct}: DICOM object of {ct.stat().st_size} bytes is over the limit of 1048576 bytes; refused")
    assert pyjpip("dicom", ct).returncode == 0  # in the same address space, the object itself is read


def test_the_dicom_command_never_inflates_a_deflate_bomb(deflated_bomb):
    run = pyjpip("dicom", deflated_bomb)
    assert run.returncode == 1 and "MemoryError" not in run.stderr
    assert run.stderr.strip() == (f"pyjpip dicom: {deflated_bomb}: transfer syntax 1.2.840.10008.1.2.1.99 (Deflated "
                                  "Explicit VR Little Endian) is not JPEG 2000 or HTJ2K")


def hollow_bomb(dataset: pydicom.Dataset) -> bytes:
    """A .95 hollow object whose deflated data set claims more than a hollow object may hold."""
    return part10(dataset, JPIP_REFERENCED_DEFLATE, bomb_body(dataset, MAXIMUM_HOLLOW_BYTES + (1 << 20)))


def listed_instances(root) -> set[str]:
    import json

    web = DicomWebStore(str(root))
    studies = json.loads(b"".join(web.handle("/dicomweb/studies", "").body))
    found = set()
    for study in studies:
        uid = study["0020000D"]["Value"][0]
        for entry in json.loads(b"".join(web.handle(f"/dicomweb/studies/{uid}/metadata", "").body)):
            found.add(entry["00080018"]["Value"][0])
    return found


@pytest.mark.parametrize("layout", ["ingested", "received files"])
def test_dicomweb_leaves_out_bombs_and_oversized_hollow_objects(layout, tmp_path, caplog):
    """What a store holds is read for listing only within the limits: a hollow object inflating past
    64 MiB, or a file larger than a hollow object can be, is left out with a warning that says why;
    the others are listed and served."""
    sources = tmp_path / "sources"
    sources.mkdir()
    for name in ("CT_small.dcm", "MR_small_jp2klossless.dcm", "JPEG2000.dcm"):
        shutil.copy(get_testdata_file(name), sources / name)
    store = tmp_path / "store"
    assert not ingest([str(sources)], str(store), "http://store.test").failed
    hollows = sorted((store / "hollow").rglob("*.dcm"))
    if layout == "received files":  # as `store-scp --files` keeps them: STORE/files/<study>/<series>/<sop>.dcm
        (store / "files").mkdir()
        for path in hollows:
            shutil.copy(path, store / "files" / path.name)
        hollows = sorted((store / "files").glob("*.dcm"))
        os.unlink(store / "index.json")
    datasets = {path: read_hollow(path.read_bytes()).dataset for path in hollows}
    good, bomb, huge = hollows
    bomb.write_bytes(hollow_bomb(datasets[bomb]))
    assert bomb.stat().st_size < 200_000
    sparse(huge, MAXIMUM_HOLLOW_FILE_BYTES + 1)
    with caplog.at_level(logging.WARNING):
        listed = listed_instances(store)
    assert listed == {str(datasets[good].SOPInstanceUID)}
    warnings = "\n".join(r.getMessage() for r in caplog.records)
    assert f"deflated data set inflates past {MAXIMUM_HOLLOW_BYTES} bytes" in warnings
    assert f"hollow object of {MAXIMUM_HOLLOW_FILE_BYTES + 1} bytes is over the limit of " \
           f"{MAXIMUM_HOLLOW_FILE_BYTES} bytes" in warnings
    web = DicomWebStore(str(store))
    for path, status in ((good, 200), (bomb, 404), (huge, 404)):
        ds = datasets[path]
        answer = web.handle(f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/"
                            f"{ds.SOPInstanceUID}", "")
        assert answer.status == status, path
        if status == 200:
            assert b"".join(answer.body) == good.read_bytes()
