"""The Storage SCP under faults, as separate processes over loopback: killed mid-batch it keeps every
instance it acknowledged; bad objects get a failure status and leave the store as it was; parallel
associations lose and duplicate nothing."""

import os
import threading
import time
import zlib
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import UID, generate_uid

from network_support import hollow_copies, new_database, sql_count, store_scp, without_pixels
from pyjpip.archive.database import DatabaseArchive
from pyjpip.archive.files import FileArchive
from pyjpip.dicom import storage
from pyjpip.dicom.hollow import JPIP_REFERENCED, JPIP_REFERENCED_DEFLATE, read_file_meta, read_hollow
from pyjpip.network import scu

pytestmark = pytest.mark.cpython_only

URL = "http://sender.test:8000/jpip?target=images/mr.j2k"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"


@pytest.fixture(scope="module")
def small_base(demo_data):
    """A small hollow MR data set (64 x 64): the many-instance tests measure the archive, not the bytes."""
    return without_pixels(demo_data / "mr_small_jp2k.dcm")


def modes(request, tmp_path):
    store = tmp_path / "scp-store"
    if request.param == "files":
        return store, ["--files"], lambda: FileArchive(str(store))
    if request.param == "sqlite":
        return store, [], lambda: DatabaseArchive(f"sqlite:///{store}/pyjpip.sqlite", create=False)
    url = new_database(request.getfixturevalue("postgres"))
    return store, ["--db", url], lambda: DatabaseArchive(url, create=False)


@pytest.fixture(params=["files", "sqlite", "postgresql"])
def mode(request, tmp_path):
    return modes(request, tmp_path)


def body(data: bytes) -> bytes:
    return data[read_file_meta(data)[1]:]


def test_an_scp_killed_mid_batch_keeps_every_instance_it_acknowledged(mode, small_base, tmp_path):
    store, options, open_archive = mode
    paths = hollow_copies(small_base, tmp_path / "outbox", 200, JPIP_REFERENCED_DEFLATE, URL, series=4)
    acknowledged = []
    with store_scp(store, *options) as scp:
        def progress(number, total, sent):
            if sent.ok:
                acknowledged.append(sent.path)
            if len(acknowledged) == 40:
                scp.kill()  # SIGKILL: no shutdown, no flush

        report = scu.store("127.0.0.1", scp.port, [str(p) for p in paths], progress=progress, timeout=10)
        assert 40 <= len(acknowledged) < 200 and report.failed  # the batch was cut off
        scp.restart()  # the store opened again after the crash
        archive = open_archive()
        try:
            for path in acknowledged:
                sent = Path(path).read_bytes()
                stored = archive.part10(str(read_hollow(sent).dataset.SOPInstanceUID))
                assert stored is not None, path
                assert body(stored) == body(sent) and read_hollow(stored).url == URL
        finally:
            archive.close()
        # and the restarted SCP takes the rest, the already stored ones updated in place
        assert not scu.store("127.0.0.1", scp.port, [str(p) for p in paths]).failed
    archive = open_archive()
    try:
        if isinstance(archive, FileArchive):
            assert len(list((store / "files").rglob("*.dcm"))) == 200
        else:
            assert archive.rows("SELECT COUNT(*) FROM instance")[0][0] == 200
    finally:
        archive.close()


def snapshot(store: Path) -> dict:
    """Everything an archive holds, to see that a refused object changed nothing."""
    files = sorted((str(p.relative_to(store)), p.read_bytes()) for p in store.rglob("*")
                   if p.is_file() and p.suffix not in (".log", ".sqlite-wal", ".sqlite-shm") and p.name != "pyjpip.sqlite")
    database = store / "pyjpip.sqlite"
    rows = None
    if database.exists():
        archive = DatabaseArchive(f"sqlite:///{database}", create=False)
        rows = [archive.rows(f"SELECT * FROM {t} ORDER BY pk") for t in ("patient", "study", "series", "instance",
                                                                          "location_history")]
        archive.close()
    return {"files": files, "rows": rows}


def raw_file(folder: Path, name: str, syntax: str, encoded: bytes, sop_class=MR_IMAGE, sop=None) -> Path:
    """A Part 10 file whose meta says ``syntax`` and whose data set bytes are ``encoded``, whatever
    they are: sent as they are (pynetdicom's chunked sending), as a careless or hostile SCU would."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop or generate_uid())
    meta.TransferSyntaxUID = UID(syntax)
    meta.ImplementationClassUID = UID("1.2.3.4")
    head = DicomBytesIO()
    head.is_little_endian, head.is_implicit_VR = True, False
    write_file_meta_info(head, meta, enforce_standard=True)
    path = folder / name
    path.write_bytes(b"\0" * 128 + b"DICM" + head.getvalue() + encoded)
    return path


def encoded(dataset, implicit=False) -> bytes:
    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = True, implicit
    write_dataset(out, dataset)
    return out.getvalue()


@pytest.mark.parametrize("files", [False, True], ids=["sqlite", "files"])
def test_bad_objects_get_a_failure_status_and_leave_the_store_as_it_was(small_base, tmp_path, demo_data, files):
    from pynetdicom import AE, _config

    folder = tmp_path / "bad"
    folder.mkdir()

    def hollow(**changes):
        ds = pydicom.Dataset()
        ds.update(small_base)
        ds.SOPInstanceUID = generate_uid()
        ds.add_new(0x00287FE0, "UR", URL)
        for keyword, value in changes.items():
            if value is None:
                del ds[keyword]
            else:
                setattr(ds, keyword, value)
        return ds

    bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb_bytes = bomb.compress(encoded(hollow())) + bomb.compress(b"\0" * (300 << 20)) + bomb.flush()
    big = hollow()
    big.add_new(0x00291010, "OB", b"\1" * (3 << 20))
    with_pixels = pydicom.dcmread(demo_data / "mr_small_jp2k.dcm")
    cases = [  # (name, syntax, data set bytes, status expected, words in the log)
        ("cut short", JPIP_REFERENCED, encoded(hollow())[:-9], storage.CANNOT_UNDERSTAND, "cut short"),
        ("no URL", JPIP_REFERENCED, encoded(hollow(PixelDataProviderURL=None)),
         storage.DATA_SET_DOES_NOT_MATCH_SOP_CLASS, "no Pixel Data Provider URL"),
        ("file URL", JPIP_REFERENCED, encoded(hollow(PixelDataProviderURL="file:///etc/passwd")),
         storage.DATA_SET_DOES_NOT_MATCH_SOP_CLASS, "not http or https"),
        ("implicit VR under .94", JPIP_REFERENCED, encoded(hollow(), implicit=True), storage.CANNOT_UNDERSTAND,
         "not Explicit VR Little Endian"),
        ("not deflated under .95", JPIP_REFERENCED_DEFLATE, encoded(hollow()), storage.CANNOT_UNDERSTAND,
         "cannot be inflated"),
        ("deflate bomb", JPIP_REFERENCED_DEFLATE, bomb_bytes, storage.OUT_OF_RESOURCES, "inflates past"),
        ("huge", JPIP_REFERENCED, encoded(big), storage.OUT_OF_RESOURCES, "limit"),
        ("pixels under .94", JPIP_REFERENCED, encoded(with_pixels), storage.DATA_SET_DOES_NOT_MATCH_SOP_CLASS,
         "must not hold Pixel Data"),
        ("no pixels, no URL", "1.2.840.10008.1.2.1", encoded(hollow(PixelDataProviderURL=None)),
         storage.DATA_SET_DOES_NOT_MATCH_SOP_CLASS, "neither Pixel Data nor"),
        ("garbage", JPIP_REFERENCED, os.urandom(5000), storage.CANNOT_UNDERSTAND, ""),
    ]
    paths = []
    for n, (name, syntax, data, _, _) in enumerate(cases):
        sop = generate_uid()
        paths.append(raw_file(folder, f"{n}.dcm", syntax, data, sop=sop))
    store = tmp_path / "scp-store"
    with store_scp(store, *(["--files"] if files else []), "--max-hollow-bytes", 2 << 20) as scp:
        good = hollow_copies(small_base, tmp_path / "good", 3, JPIP_REFERENCED, URL)
        assert not scu.store("127.0.0.1", scp.port, [str(p) for p in good]).failed
        before = snapshot(store)
        _config.STORE_SEND_CHUNKED_DATASET = True
        ae = AE(ae_title="HOSTILE")
        for syntax in {c[1] for c in cases}:
            ae.add_requested_context(MR_IMAGE, [syntax])
        assoc = ae.associate("127.0.0.1", scp.port, ae_title="PYJPIP")
        assert assoc.is_established
        try:
            for (name, _, _, status, _), path in zip(cases, paths):
                answer = assoc.send_c_store(str(path))
                assert int(answer.Status) == status, (name, answer)
                assert answer.ErrorComment, name
        finally:
            assoc.release()
        # a syntax it does not take is refused at negotiation: nothing is sent
        ae = AE(ae_title="HOSTILE")
        ae.add_requested_context(MR_IMAGE, ["1.2.840.10008.1.2.4.100"])  # MPEG2 video: no JPIP image from it
        assoc = ae.associate("127.0.0.1", scp.port, ae_title="PYJPIP")
        assert not assoc.is_established and not assoc.accepted_contexts  # pynetdicom aborts with none accepted
        time.sleep(0.2)
        assert snapshot(store) == before
        log = scp.log.read_text()
    for name, _, _, status, words in cases:
        assert "from HOSTILE@127.0.0.1" in log and f"refused 0x{status:04X}: " in log
        if words:
            assert any(words in line and f"0x{status:04X}" in line for line in log.splitlines()), name


@pytest.fixture(scope="module")
def twenty_batches(tmp_path_factory, small_base):
    folder = tmp_path_factory.mktemp("parallel")
    return [hollow_copies(small_base, folder / f"outbox{n}", 50, JPIP_REFERENCED, URL, series=2) for n in range(20)]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_mode(request, tmp_path):
    return modes(request, tmp_path)


def test_twenty_parallel_associations_of_fifty_instances_store_exactly_a_thousand(database_mode, twenty_batches):
    """Every instance one transaction: parallel associations neither lose nor duplicate a row. (All
    twenty come from one address and connect at once: the per-peer cap is raised to let them.)"""
    store, options, open_archive = database_mode
    batches = twenty_batches
    with store_scp(store, *options, "--max-connecting-per-peer", "20") as scp:
        reports = [None] * 20

        def send(n):
            reports[n] = scu.store("127.0.0.1", scp.port, [str(p) for p in batches[n]], f"SCU{n}")

        threads = [threading.Thread(target=send, args=(n,)) for n in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        if "--db" in options:  # every association had its thread; the SCP keeps few connections open
            import psycopg

            from pyjpip.archive.database import MAXIMUM_IDLE

            url = options[options.index("--db") + 1]
            with psycopg.connect(url) as connection:
                (count,) = connection.execute("SELECT COUNT(*) FROM pg_stat_activity WHERE datname = "
                                              "current_database() AND pid <> pg_backend_pid()").fetchone()
            assert count <= MAXIMUM_IDLE
    assert all(r is not None and not r.failed for r in reports), [r and [s.describe() for s in r.failed][:3]
                                                                  for r in reports]
    sops = {str(read_hollow(p.read_bytes()).dataset.SOPInstanceUID) for batch in batches for p in batch}
    assert len(sops) == 1000
    archive = open_archive()
    try:
        rows = archive.rows("SELECT sop_instance_uid, calling_ae_title FROM instance")
        assert len(rows) == 1000 and {r[0] for r in rows} == sops
        assert {r[1] for r in rows} == {f"SCU{n}" for n in range(20)}
        assert archive.rows("SELECT COUNT(*) FROM study")[0][0] == 20
        assert archive.rows("SELECT COUNT(*) FROM series")[0][0] == 40
        assert archive.rows("SELECT COUNT(*) FROM patient")[0][0] == 1
    finally:
        archive.close()


def test_an_archive_of_an_older_schema_is_migrated_and_a_newer_one_refused(tmp_path, small_base):
    from pyjpip.archive import ArrivedInstance
    from pyjpip.archive.database import SCHEMA_VERSION, Database, migrate
    from pyjpip.errors import ArchiveError

    url = f"sqlite:///{tmp_path}/old.sqlite"
    database = Database(url)
    assert migrate(database, upto=1) == 1
    with database.transaction() as cursor:
        tables = {r[0] for r in cursor.all("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "instance" in tables and "location_history" not in tables
    database.close()
    archive = DatabaseArchive(url)  # opened by this pyjpip: migrated
    assert [r[0] for r in archive.rows("SELECT version FROM schema_migrations ORDER BY version")] == \
        list(range(1, SCHEMA_VERSION + 1))
    (path,) = hollow_copies(small_base, tmp_path / "one", 1, JPIP_REFERENCED, URL)
    data = path.read_bytes()
    meta, start = read_file_meta(data)
    decision = storage.classify(storage.Received(str(meta.TransferSyntaxUID), str(meta.MediaStorageSOPClassUID),
                                                 str(meta.MediaStorageSOPInstanceUID), data[start:]))
    assert archive.record(ArrivedInstance.from_hollow(decision)).outcome == "created"
    with archive.database.transaction() as cursor:
        cursor.execute("INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)",
                       (SCHEMA_VERSION + 1, "from the future", "2030-01-01"))
    archive.close()
    with pytest.raises(ArchiveError, match="newer than this pyjpip knows"):
        DatabaseArchive(url)


def test_postgresql_schema_is_migrated_once_by_concurrent_openers(postgres):
    url = new_database(postgres)
    archives, errors = [], []

    def open_one():
        try:
            archives.append(DatabaseArchive(url))
        except Exception as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors and len(archives) == 6
    from pyjpip.archive.database import SCHEMA_VERSION

    assert [r[0] for r in archives[0].rows("SELECT version FROM schema_migrations ORDER BY version")] == \
        list(range(1, SCHEMA_VERSION + 1))
    for archive in archives:
        archive.close()
    assert sql_count(url) == 0
