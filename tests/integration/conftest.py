"""Fixtures of the push-workflow tests: a sender (its JPIP store served by `pyjpip serve` in a process
of its own) and a PostgreSQL server, started once for the session."""

import shutil

import pytest
from pydicom.data import get_testdata_file

from network_support import free_port, postgres_server, pyjpip_serve


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
