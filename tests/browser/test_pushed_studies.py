"""Pushed and PACS-held hollow studies in the viewer: a study pushed to `pyjpip store-scp` opens by
/?study= from the receiver's DICOMweb with its pixels from the sender's JPIP server (another process,
another port); a study Orthanc holds opens from Orthanc's DICOMweb root; a sender that cannot be
reached is said in the viewport (PS3.5 10.8), not left blank."""

import json
import shutil
import subprocess
import urllib.request

import numpy as np
import pydicom
import pytest

from network_support import hollow_copies, orthanc, pyjpip_command, pyjpip_serve, store_scp, without_pixels
from paths import ROOT
from pyjpip.dicom.hollow import JPIP_REFERENCED_DEFLATE, read_hollow
from reference import opj_decode, windowed
from test_first_page import BOOT_TIMEOUT_MS, canvas_pixels

pytestmark = pytest.mark.cpython_only
DATA = ROOT / "static" / "data"


@pytest.fixture(scope="module")
def pushed(tmp_path_factory):
    """A sender's store served on its own port; its CR pushed (`pyjpip push`) to an SCP whose store
    `pyjpip serve` shows with the site. Yields (site, sender, sender's store, the CR study UID)."""
    sources, own = tmp_path_factory.mktemp("modality"), tmp_path_factory.mktemp("own-store")
    shutil.copy(DATA / "cr_mono1_1024.dcm", sources / "cr.dcm")
    receiving = tmp_path_factory.mktemp("receiver") / "store"
    with pyjpip_serve(own) as sender, store_scp(receiving) as scp:
        run = subprocess.run(pyjpip_command("push", "127.0.0.1", scp.port, sources, "--store", own, "--url-base",
                                            sender.http, "--deflate"), capture_output=True, text=True, cwd=ROOT,
                             timeout=300)
        assert run.returncode == 0, run.stdout + run.stderr
        # The receiver's viewer fetches pixels from the sender: its origin is configured (issue 23).
        with pyjpip_serve(receiving, "--viewer-pixel-origin", sender.http, static=True) as site:
            yield site, sender, own, str(pydicom.dcmread(sources / "cr.dcm").StudyInstanceUID)


def open_study(page, url):
    page.set_viewport_size({"width": 1000, "height": 700})
    page.goto(url)
    page.wait_for_function("document.querySelector('.cell canvas.base')?.dataset.state === 'painted'"
                           " || document.querySelector('.cell')?.dataset.state === 'error'", timeout=BOOT_TIMEOUT_MS)


def assert_shows(page, codestream: bytes, dataset) -> None:
    selector = ".cell canvas.base"
    reduce = int(page.locator(selector).get_attribute("data-reduce"))
    expected = windowed(opj_decode(codestream, reduce), dataset)
    actual = canvas_pixels(page, selector)
    assert actual.shape == expected.shape
    assert np.abs(actual.astype(int) - expected.astype(int)).max() <= 1
    assert np.ptp(expected) > 100


def test_a_pushed_study_opens_with_its_pixels_from_the_sender(watched_page, pushed):
    page = watched_page
    site, sender, own, study = pushed
    page.watch.origin = site.http
    page.watch.also = {sender.http}
    open_study(page, f"{site.http}/?study={study}")
    assert page.locator(".cell").first.get_attribute("data-state") != "error", page.locator(".cell").first.text_content()
    index = json.loads((own / "index.json").read_text())["instances"]
    (entry,) = index.values()
    assert_shows(page, (own / entry["image"]).read_bytes(), pydicom.dcmread(DATA / "cr_mono1_1024.dcm"))
    origins = {"/".join(u.split("/")[:3]) for u in page.watch.requests if u.startswith("http")}
    assert origins == {site.http, sender.http}  # layout from the receiver, pixels from the sender
    assert any("/dicomweb/studies/" in u and u.startswith(site.http) for u in page.watch.requests)
    assert any("/jpip?" in u and u.startswith(sender.http) for u in page.watch.requests)
    assert page.watch.errors == []


def test_a_sender_that_cannot_be_reached_is_said_in_the_viewport(watched_page, pushed):
    page = watched_page
    site, sender, _, study = pushed
    page.watch.origin = site.http
    page.watch.also = {sender.http}
    sender.stop()  # the sender went away; its URLs stay in the receiver's archive
    try:
        open_study(page, f"{site.http}/?study={study}")
        cell = page.locator(".cell").first
        assert cell.get_attribute("data-state") == "error"
        failure = page.locator(".cell .failure").first
        assert failure.is_visible()
        text = failure.text_content()
        assert f"127.0.0.1:{sender.port}" in text and "cannot be reached" in text and "PS3.5 10.8" in text
        assert page.locator(".cell .failure button").first.is_visible()  # Retry
    finally:
        sender.restart()


def test_a_study_held_by_orthanc_opens_from_its_dicomweb_root(watched_page, tmp_path):
    page = watched_page
    image_store = tmp_path / "images"
    image_store.mkdir()
    shutil.copy(DATA / "ct_phantom_2048.j2k", image_store / "ct.j2k")
    ct = without_pixels(DATA / "ct_phantom_2048.dcm")
    with pyjpip_serve(image_store) as pixels, orthanc(tmp_path / "orthanc") as (pacs, _, _):
        paths = hollow_copies(ct, tmp_path / "hollow", 3, JPIP_REFERENCED_DEFLATE, f"{pixels.http}/jpip?target=ct.j2k")
        for path in paths:
            request = urllib.request.Request(f"{pacs}/instances", data=path.read_bytes(), method="POST")
            assert json.loads(urllib.request.urlopen(request).read())["Status"] == "Success"
        study = str(read_hollow(paths[0].read_bytes()).dataset.StudyInstanceUID)
        # Orthanc sends no CORS headers: the viewer's site answers for it under /orthanc (pyjpip serve --proxy).
        with pyjpip_serve(tmp_path, "--proxy", f"/orthanc={pacs}/dicom-web", "--viewer-pixel-origin", pixels.http,
                          static=True) as site:
            page.watch.origin = site.http
            page.watch.also = {pixels.http}
            open_study(page, f"{site.http}/?study={study}&dicomweb=/orthanc")
            assert page.locator(".cell").first.get_attribute("data-state") != "error", \
                page.locator(".cell").first.text_content()
            assert_shows(page, (image_store / "ct.j2k").read_bytes(), ct)
            assert any(u.startswith(f"{site.http}/orthanc/studies/{study}/metadata") for u in page.watch.requests)
            assert page.locator(".cell .corner").first.text_content().strip() != ""
            assert page.watch.errors == []
