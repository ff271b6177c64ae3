"""Fixtures of the push-workflow tests: a sender (its JPIP store served by `pyjpip serve` in a process
of its own) and a PostgreSQL server, started once for the session."""

import shutil

import pytest
from pydicom.data import get_testdata_file

from network_support import free_port, new_database, postgres_server, pyjpip_serve, without_pixels


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server of the suite's own (Debian's postgresql package); yields its base URL."""
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def sender(tmp_path_factory, demo_data):
    """The sending site: ordinary objects ingested into its store, and the demo CT as bare Part 1 and
    HTJ2K codestreams, served by `pyjpip serve` on a port of its own. Yields (store, base URL)."""
    from pyjpip.dicom.ingest import ingest

    store = tmp_path_factory.mktemp("sender-store")
    sources = tmp_path_factory.mktemp("sender-sources")
    for name in ("cr_mono1_1024.dcm", "mr_small_jp2k.dcm"):
        shutil.copy(demo_data / name, sources / name)
    shutil.copy(get_testdata_file("CT_small.dcm"), sources / "CT_small.dcm")
    for name in ("ct_phantom_2048.j2k", "ct_phantom_2048.jhc"):
        shutil.copy(demo_data / name, store / name)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    report = ingest([str(sources)], str(store), base)
    assert not report.failed, report.failed
    with pyjpip_serve(store, port=port):
        yield store, base


@pytest.fixture(scope="module")
def ct_base(demo_data):
    """The demo CT without its pixels: the base of the hollow objects the storage tests make."""
    return without_pixels(demo_data / "ct_phantom_2048.dcm")


@pytest.fixture(params=["files", "sqlite", "postgresql"])
def archive_mode(request, tmp_path):
    """(kind, store folder, store-scp options, a function opening the archive to read it back), for
    each archive store-scp can fill."""
    from pyjpip.archive.database import DatabaseArchive
    from pyjpip.archive.files import FileArchive

    store = tmp_path / "scp-store"
    if request.param == "files":
        return request.param, store, ["--files"], lambda: FileArchive(str(store))
    if request.param == "sqlite":
        return request.param, store, [], lambda: DatabaseArchive(f"sqlite:///{store}/pyjpip.sqlite", create=False)
    url = new_database(request.getfixturevalue("postgres"))
    return request.param, store, ["--db", url], lambda: DatabaseArchive(url, create=False)
