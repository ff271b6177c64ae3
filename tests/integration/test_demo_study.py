"""The demo study set end to end: made, ingested, every frame back through JPIP exactly, laid out."""

import json

import numpy as np
import pydicom
import pytest

from pyjpip.dicom.hollow import read_hollow
from pyjpip.dicom.ingest import ingest
from pyjpip.jpip.client import JPIPClient, ViewWindow, fetch_window
from pyjpip.jpip.picture import rebuild_served
from pyjpip.jpip.server import JPIPServer
from pyjpip.layout.hanging import hang
from pyjpip.layout.ordering import group_studies
from pyjpip.layout.spatial import frame_of_reference_links, nearest_slice, read_image_plane, reference_line
from jpip_support import InProcessTransport
from paths import ROOT

pytestmark = pytest.mark.cpython_only


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    import importlib.util
    spec = importlib.util.spec_from_file_location("demo_study", ROOT / "tools" / "demo_study.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sources = tmp_path_factory.mktemp("demo-study")
    files = module.write(str(sources))
    store = tmp_path_factory.mktemp("demo-store")
    report = ingest([str(sources)], str(store), "http://demo.test")
    assert not report.failed and len(report.ingested) == len(files) == 153
    return sources, store


def test_every_frame_of_the_demo_set_comes_back_exactly(demo):
    import imagecodecs
    sources, store = demo
    index = json.loads((store / "index.json").read_text())["instances"]
    server = JPIPServer(str(store))
    frames_checked = 0
    for path in sorted(sources.glob("*.dcm")):
        source = pydicom.dcmread(path)
        entry = index[str(source.SOPInstanceUID)]
        hollow = read_hollow((store / entry["hollow"]).read_bytes())
        pixels = source.pixel_array  # pydicom's decoding (pylibjpeg-openjpeg for JPEG 2000), as the object says
        expected = list(pixels) if hollow.number_of_frames > 1 else [pixels]
        for frame, pixels in enumerate(expected, 1):
            client = JPIPClient(hollow.frame_url(frame))
            window = ViewWindow(fsiz=(int(source.Columns), int(source.Rows)))
            fetch_window(client, window, InProcessTransport(server))
            decoded = imagecodecs.jpeg2k_decode(rebuild_served(client, window).codestream)
            assert np.array_equal(decoded.reshape(pixels.shape), pixels), f"{path.name} frame {frame}"
            frames_checked += 1
    assert frames_checked == 152 + 30


def test_the_demo_set_lays_itself_out_from_the_hollow_objects(demo):
    _, store = demo
    datasets = [read_hollow(p.read_bytes()).dataset for p in sorted((store / "hollow").rglob("*.dcm"))]
    studies = {s.description: s for s in group_studies(datasets)}
    head = studies["CT head and MR brain"]
    scout, ct, mr = head.series  # by Series Number: the localizer is 1
    assert (ct.modality, len(ct.instances), mr.modality, len(mr.instances)) == ("CT", 120, "MR", 24)
    assert (scout.description, len(scout.instances)) == ("Scout", 1)
    positions = [i.position for i in ct.instances]
    assert positions == sorted(positions)
    # The axial stack takes the first viewport, the localizer the last (hanging.is_localizer).
    hanging = hang(head)
    assert (hanging.rows, hanging.columns) == (2, 2)
    assert [v.series_instance_uid for v in hanging.viewports] == [s.series_instance_uid for s in (ct, mr, scout)]
    # One Frame of Reference: every axial slice crosses the localizer and the middle sagittal slice,
    # as a horizontal reference line at its own height; the sagittal slices cross the axial ones.
    assert frame_of_reference_links(head) == {ct.frame_of_reference_uid: [s.series_instance_uid for s in head.series]}
    scout_plane = read_image_plane(scout.instances[0].dataset)
    mr_plane = read_image_plane(mr.instances[12].dataset)
    crossing = {"scout": 0, "mr": 0}
    for instance in ct.instances:
        axial = read_image_plane(instance.dataset)
        for name, target in (("scout", scout_plane), ("mr", mr_plane)):
            line = reference_line(axial, target)
            if not target.point(0, target.rows - 0.5)[2] <= axial.position[2] <= target.point(0, -0.5)[2]:
                assert line is None  # above or below the image
                continue
            (c0, r0), (c1, r1) = line
            assert r0 == r1 and {c0, c1} == {-0.5, target.columns - 0.5}
            assert abs(target.point(c0, r0)[2] - axial.position[2]) < 1e-9
            crossing[name] += 1
        assert reference_line(mr_plane, axial) is not None
    assert crossing == {"scout": 120, "mr": 96}  # the localizer covers the stack, the MR's 240 mm part of it
    assert nearest_slice([read_image_plane(i.dataset) for i in ct.instances], mr_plane.point(100, 130)) == \
        round((mr_plane.point(100, 130)[2] + 150) / 2.5)
    chest = hang(studies["Chest two views"])
    assert (chest.rows, chest.columns, len(chest.viewports)) == (1, 2, 2)
    echo = hang(studies["Echo"])
    assert echo.viewports[0].cine


def test_the_browser_lays_out_each_study_from_dicomweb_json_as_from_pydicom(demo):
    """The study page reads the DICOMweb metadata without pydicom (pyjpip.dicom.json_model); every
    attribute the layout reads, and every study's layout, must equal what pydicom's reading gives."""
    from pyjpip.browser import study_layout
    from pyjpip.dicom.dicomweb import DicomWebStore
    from pyjpip.dicom.json_model import TAGS, datasets_from_json

    _, store = demo
    web = DicomWebStore(str(store))
    listing = json.loads(b"".join(web.handle("/dicomweb/studies", "").body))
    assert len(listing) == 8  # the four demo studies and pydicom's four JPEG 2000 files
    for entry in listing:
        uid = entry["0020000D"]["Value"][0]
        metadata = json.loads(b"".join(web.handle(f"/dicomweb/studies/{uid}/metadata", "").body))
        by_pydicom = [pydicom.Dataset.from_json(item) for item in metadata]
        by_view = datasets_from_json(metadata)
        for expected, view in zip(by_pydicom, by_view):
            for keyword in TAGS:
                got, want = view.get(keyword), expected.get(keyword)
                if keyword != "VOILUTSequence":
                    want = list(want) if isinstance(want, pydicom.multival.MultiValue) else want
                    assert got == want or str(got) == str(want), (keyword, got, want)
        assert study_layout(by_view) == study_layout(by_pydicom), uid
