"""A store's hollow objects listed as QIDO-RS/WADO-RS would, over HTTP from the same server as JPIP."""

import http.client
import json
import shutil
import threading

import pydicom
import pytest
from pydicom.data import get_testdata_file

from pyjpip.dicom.hollow import read_hollow
from pyjpip.dicom.ingest import ingest
from pyjpip.transport.http_server import make_server

pytestmark = pytest.mark.cpython_only


@pytest.fixture(scope="module")
def served(tmp_path_factory, demo_data):
    sources = tmp_path_factory.mktemp("sources")
    for name in ("CT_small.dcm", "MR_small_jp2klossless.dcm", "JPEG2000.dcm"):
        shutil.copy(get_testdata_file(name), sources / name)
    shutil.copy(demo_data / "cr_mono1_1024.dcm", sources / "cr.dcm")
    store = tmp_path_factory.mktemp("store")
    report = ingest([str(sources)], str(store), "http://store.test")
    assert not report.failed
    server = make_server(None, "127.0.0.1", 0, jpip_root=str(store))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[:2], sources
    server.shutdown()
    server.server_close()


def get(address, path):
    connection = http.client.HTTPConnection(*address, timeout=30)
    connection.request("GET", path)
    response = connection.getresponse()
    return response, response.read()


def test_studies_series_instances_and_metadata(served):
    address, sources = served
    response, body = get(address, "/dicomweb/studies")
    assert response.status == 200 and response.getheader("Content-Type") == "application/dicom+json"
    studies = json.loads(body)
    ct = pydicom.dcmread(sources / "CT_small.dcm")
    expected = {str(pydicom.dcmread(p).StudyInstanceUID) for p in sources.iterdir()}
    assert {s["0020000D"]["Value"][0] for s in studies} == expected
    study = ct.StudyInstanceUID
    (one,) = json.loads(get(address, f"/dicomweb/studies?PatientID={ct.PatientID}")[1])
    assert one["0020000D"]["Value"] == [study] and one["00080061"]["Value"] == ["CT"]
    series = json.loads(get(address, f"/dicomweb/studies/{study}/series")[1])
    assert [s["0020000E"]["Value"][0] for s in series] == [ct.SeriesInstanceUID]
    instances = json.loads(get(address, f"/dicomweb/studies/{study}/series/{ct.SeriesInstanceUID}/instances")[1])
    assert instances[0]["00080018"]["Value"] == [ct.SOPInstanceUID]
    url = instances[0]["00287FE0"]["Value"][0]
    assert url.startswith("http://store.test/jpip?target=images/")
    metadata = json.loads(get(address, f"/dicomweb/studies/{study}/series/{ct.SeriesInstanceUID}/metadata")[1])
    assert pydicom.Dataset.from_json(metadata[0]).PatientName == ct.PatientName
    response, body = get(address, f"/dicomweb/studies/{study}/series/{ct.SeriesInstanceUID}/instances/"
                                  f"{ct.SOPInstanceUID}")
    assert response.getheader("Content-Type") == "application/dicom"
    assert read_hollow(body).dataset.SOPInstanceUID == ct.SOPInstanceUID


def test_unknown_resources_are_404(served):
    address, _ = served
    assert get(address, "/dicomweb/studies/1.2.3.4")[0].status == 404
    assert get(address, "/dicomweb/frobnicate")[0].status == 404


def test_metadata_is_kept_until_the_store_changes(tmp_path):
    import json

    import pydicom
    from pydicom.uid import generate_uid

    from pyjpip.dicom.dicomweb import DicomWebStore

    sources, store = tmp_path / "sources", tmp_path / "store"
    sources.mkdir()
    first = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    first.save_as(sources / "one.dcm")
    assert not ingest([str(sources)], str(store), "http://store.test").failed
    web = DicomWebStore(str(store))
    path = f"/dicomweb/studies/{first.StudyInstanceUID}/metadata"

    def metadata():
        return b"".join(web.handle(path, "").body)

    once = metadata()
    assert metadata() == once and len(json.loads(once)) == 1
    second = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    second.SOPInstanceUID = second.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    second.InstanceNumber = 2
    second.save_as(sources / "two.dcm")
    assert not ingest([str(sources)], str(store), "http://store.test").failed  # index.json rewritten
    instances = json.loads(metadata())
    assert len(instances) == 2 and {i["00080018"]["Value"][0] for i in instances} == {
        str(first.SOPInstanceUID), str(second.SOPInstanceUID)}


@pytest.mark.parametrize("files", [False, True], ids=["database", "files"])
def test_a_person_name_with_an_empty_value_is_stored_and_listed(tmp_path, files):
    """A backslash in a Person Name (issue 23): 'Doe^John\\' is two values, the second empty. pydicom 3.0.2's
    DICOM JSON raised IndexError on it, which a Storage SCP returned to the peer as the C-STORE's failure.
    It is stored, and listed with the empty value as null (PS3.18 F.2.5)."""
    from pyjpip.archive import ArrivedInstance, open_archive
    from pyjpip.dicom import storage
    from pyjpip.dicom.dicomweb import dicom_json
    from pyjpip.dicom.hollow import JPIP_REFERENCED, read_file_meta, write_hollow

    ds = pydicom.dcmread(get_testdata_file("MR_small_jp2klossless.dcm"))
    del ds.PixelData
    ds.PatientName = "Doe^John\\"
    data = write_hollow(ds, "http://sender.example/jpip?target=a.j2k", JPIP_REFERENCED)
    _, start = read_file_meta(data)
    decision = storage.classify(storage.Received(JPIP_REFERENCED, str(ds.SOPClassUID), str(ds.SOPInstanceUID),
                                                 data[start:], "SENDER", "PYJPIP"))
    assert isinstance(decision, storage.Hollow)
    assert dicom_json(decision.dataset)["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "Doe^John"}, None]}
    archive = open_archive(str(tmp_path / "store"), None, files)
    try:
        assert archive.record(ArrivedInstance.from_hollow(decision, "SENDER", "PYJPIP")).outcome == "created"
        catalog = archive.catalog()
        catalog.generation()  # what a server asks first: the files catalog reads the store then
        listed = catalog.metadata(str(ds.StudyInstanceUID))
        (listed,) = json.loads(listed) if isinstance(listed, (bytes, str)) else listed
        assert listed["00100010"]["Value"] == [{"Alphabetic": "Doe^John"}, None]
    finally:
        archive.close()
