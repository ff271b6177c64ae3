"""The whole chain in headless Chromium: Pyodide reads DICOM, a worker decodes with OpenJPEG (WebAssembly),
the canvas shows the windowed image. Pixels are checked against opj_decompress plus numpy windowing."""

import base64

import numpy as np
import pydicom
import pytest

from local_site import ingested
from paths import ROOT
from reference import first_codestream, opj_decode, windowed

DATA = ROOT / "static" / "data"
BOOT_TIMEOUT_MS = 120_000

pytestmark = pytest.mark.cpython_only

READ_CANVAS = """(selector) => {
  const canvas = document.querySelector(selector);
  const rgba = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  const grey = new Uint8Array(rgba.length / 4);
  let coloured = 0, translucent = 0;
  for (let i = 0, j = 0; i < rgba.length; i += 4, j++) {
    grey[j] = rgba[i];
    if (rgba[i] !== rgba[i + 1] || rgba[i] !== rgba[i + 2]) coloured++;
    if (rgba[i + 3] !== 255) translucent++;
  }
  let text = "";
  for (let i = 0; i < grey.length; i += 0x8000) text += String.fromCharCode(...grey.subarray(i, i + 0x8000));
  return { width: canvas.width, height: canvas.height, coloured, translucent, grey: btoa(text) };
}"""


def wait_painted(page, reduce: int | None = None):
    condition = "document.body.dataset.state === 'painted' || document.body.dataset.state === 'error'"
    if reduce is not None:
        condition = f"({condition}) && (document.body.dataset.state === 'error' || document.body.dataset.reduce === '{reduce}')"
    page.wait_for_function(condition, timeout=BOOT_TIMEOUT_MS)
    assert page.evaluate("document.body.dataset.state") == "painted", page.locator("#message").text_content()


def canvas_pixels(page, selector: str = ".cell canvas.base") -> np.ndarray:
    canvas = page.evaluate(READ_CANVAS, selector)
    assert canvas["coloured"] == 0 and canvas["translucent"] == 0
    grey = np.frombuffer(base64.b64decode(canvas["grey"]), np.uint8)
    return grey.reshape(canvas["height"], canvas["width"])


def assert_matches_reference(page, name: str, reduce: int):
    path = DATA / name
    expected = windowed(opj_decode(first_codestream(path), reduce), pydicom.dcmread(path))
    actual = canvas_pixels(page)
    assert actual.shape == expected.shape
    difference = np.abs(actual.astype(int) - expected.astype(int))
    assert difference.max() <= 1, f"{name} at reduce {reduce}: {np.count_nonzero(difference > 1)} pixels differ by >1"
    assert np.ptp(expected) > 100, "the reference should not be flat, or the comparison proves little"


@pytest.mark.parametrize("name, reductions", [
    ("ct_phantom_2048.dcm", [0, 2]),  # 16-bit, rescale, first of two windows
    ("cr_mono1_1024.dcm", [0, 3]),  # 12-bit MONOCHROME1 without a window: min/max, inverted
    ("mr_small_jp2k.dcm", [0, 1]),  # signed 16-bit
])
def test_canvas_equals_reference_at_full_and_reduced_resolution(watched_page, site, name, reductions):
    page = watched_page
    page.goto(f"{site}?dicom=data/{name}&reduce={reductions[0]}")
    wait_painted(page, reductions[0])
    assert_matches_reference(page, name, reductions[0])
    for reduce in reductions[1:]:
        page.select_option("#reduce-choice", str(reduce))
        wait_painted(page, reduce)
        assert_matches_reference(page, name, reduce)
    assert page.watch.errors == []
    requested = {url.removeprefix(site) for url in page.watch.requests}
    assert {"pyodide/pyodide.asm.wasm", "wheels/python-core.zip", "wheels/python-dicom.zip", f"data/{name}",
            "openjpeg/region_decoder.wasm"} <= requested, "the request guard must see the worker's requests too"
    assert all(url.startswith(site) for url in page.watch.requests)


def test_default_page_fits_the_first_demo_image(watched_page, site):
    page = watched_page
    page.set_viewport_size({"width": 1280, "height": 720})
    page.goto(site)
    wait_painted(page)
    # The viewport is about 1280x650: a 2048² image fits at scale ~0.32, so 1/2 resolution is the coarsest
    # that still gives a pixel per screen pixel.
    assert page.evaluate("document.body.dataset.reduce") == "1"
    assert_matches_reference(page, "ct_phantom_2048.dcm", 1)
    assert "whole image at 1/2" in page.locator("#status").text_content()
    assert page.locator("#reduce-choice option:checked").text_content() == "fit"
    assert "1/2 (1024×1024)" in page.locator("#reduce-choice").text_content()
    assert page.watch.errors == []


def test_plain_wheels_install_the_same_packages(watched_page, site):
    page = watched_page
    page.goto(f"{site}?packages=wheels&dicom=data/mr_small_jp2k.dcm&reduce=0")
    wait_painted(page, 0)
    assert_matches_reference(page, "mr_small_jp2k.dcm", 0)
    requested = {url.removeprefix(site) for url in page.watch.requests}
    assert not {"wheels/python-core.zip", "wheels/python-dicom.zip"} & requested
    assert any(url.startswith("wheels/pydicom-") and url.endswith(".whl") for url in requested)
    assert page.watch.errors == []


@pytest.mark.parametrize("target, message", [
    ("data/missing.dcm", "HTTP 404"),
    ("index.html", "not a readable DICOM file"),
])
def test_faults_are_shown_in_the_viewport(watched_page, site, target, message):
    page = watched_page
    page.goto(f"{site}?dicom={target}")
    page.wait_for_function("document.body.dataset.state === 'error'", timeout=BOOT_TIMEOUT_MS)
    assert page.locator("#message").is_visible()
    assert message in page.locator("#message").text_content()
    assert message in page.locator("#status").text_content()


def test_a_bare_jpeg2000_image_streams_in_by_jpip_and_refines(watched_page, jpip_site):
    page = watched_page
    page.watch.origin = jpip_site.rstrip("/")
    page.set_viewport_size({"width": 1280, "height": 720})
    page.goto(f"{jpip_site}?jpip=/jpip?target=ct_phantom_2048.j2k")
    page.wait_for_function("['painted', 'error'].includes(document.body.dataset.state)", timeout=BOOT_TIMEOUT_MS)
    assert page.evaluate("document.body.dataset.state") == "painted", page.locator("#message").text_content()
    assert int(page.evaluate("document.body.dataset.paints")) >= 2  # a coarser picture came first
    reduce = int(page.evaluate("document.body.dataset.reduce"))
    assert reduce == 1  # a ~650 px tall viewport needs the 1024² resolution
    stored = opj_decode(first_codestream(DATA / "ct_phantom_2048.dcm"), reduce)
    plain = pydicom.Dataset()
    plain.PhotometricInterpretation = "MONOCHROME2"
    expected = windowed(stored, plain)  # no attributes: the image's own range, black to white
    actual = canvas_pixels(page, ".cell canvas.base")
    assert actual.shape == expected.shape and np.abs(actual.astype(int) - expected.astype(int)).max() <= 1
    assert page.watch.errors == []
    requested = [u for u in page.watch.requests if "/jpip?" in u]
    assert len(requested) >= 2 and all(u.startswith(jpip_site) for u in page.watch.requests)
    assert not any(u.endswith("python-dicom.zip") for u in page.watch.requests), "no DICOM: pydicom never loads"


@pytest.fixture(scope="module")
def study_site(tmp_path_factory):
    """One study of two series (CT and MR from pydicom's files), ingested and served with the site."""
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    sources, store = tmp_path_factory.mktemp("study-sources"), tmp_path_factory.mktemp("study-store")
    study = generate_uid(entropy_srcs=["browser study"])
    mr = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    mr.StudyInstanceUID, mr.StudyDescription = study, "Browser test study"
    mr.save_as(sources / "MR_small.dcm")
    for k in range(5):  # a five-slice CT stack, each slice distinguishable
        ct = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        ct.StudyInstanceUID, ct.StudyDescription = study, "Browser test study"
        ct.SOPInstanceUID = ct.file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=["slice", str(k)])
        ct.InstanceNumber = k + 1
        ct.ImagePositionPatient = [0, 0, 5.0 * k]
        ct.PixelData = (ct.pixel_array.astype(np.int16) + np.int16(80 * k)).tobytes()
        ct.save_as(sources / f"ct-{k}.dcm")
    with ingested(sources, store) as base:
        yield base, study, sources, store


def goto_study(page, site: str, study: str) -> None:
    """``?study=`` opened in a 1280x720 page, until it is painted (or fails the test with its message)."""
    page.watch.origin = site.rstrip("/")
    page.set_viewport_size({"width": 1280, "height": 720})
    page.goto(f"{site}?study={study}")
    page.wait_for_function("['painted', 'error'].includes(document.body.dataset.state)", timeout=BOOT_TIMEOUT_MS)
    assert page.evaluate("document.body.dataset.state") == "painted", page.locator("#message").text_content()


def test_a_study_lays_out_from_attributes_and_streams_each_viewport(watched_page, study_site):
    page = watched_page
    site, study, sources, store = study_site
    goto_study(page, site, study)
    assert page.locator(".cell").count() == 2  # two series: side by side
    assert "CompressedSamples" in page.locator(".corner.top-left").first.text_content()
    for name in ("ct-2.dcm", "MR_small.dcm"):  # a stack opens at its middle slice
        assert_viewport_shows(page, sources / name, store)
    assert page.watch.errors == []
    assert any("/dicomweb/studies/" in u for u in page.watch.requests)
    # The layout reads the DICOMweb JSON itself (pyjpip.dicom.json_model): pydicom is never fetched.
    assert not any(u.endswith("python-dicom.zip") for u in page.watch.requests)


def test_an_unknown_study_says_so(page, study_site):
    site, _, _, _ = study_site
    page.goto(f"{site}?study=1.2.3.404")
    page.wait_for_function("['painted', 'error'].includes(document.body.dataset.state)", timeout=BOOT_TIMEOUT_MS)
    assert page.evaluate("document.body.dataset.state") == "error"
    message = page.locator("#message").text_content()
    assert "/dicomweb/studies/1.2.3.404/metadata" in message and "404" in message, message


def open_study(page, study_site):
    """The test study opened in a 1280x720 page, every viewport painted; returns (page, sources, store)."""
    site, study, sources, store = study_site
    page.watch.origin = site.rstrip("/")
    page.set_viewport_size({"width": 1280, "height": 720})
    page.goto(f"{site}?study={study}")
    page.wait_for_function("document.body.dataset.state === 'painted'", timeout=BOOT_TIMEOUT_MS)
    return page, sources, store


def wait_for_image(page, selector: str, instance: int) -> None:
    """Until the viewport's canvas shows image ``instance`` (from 0) completely."""
    page.wait_for_function(f"document.querySelector(\"{selector}\").dataset.instance === '{instance}' && "
                           f"document.querySelector(\"{selector}\").dataset.state === 'painted'",
                           timeout=BOOT_TIMEOUT_MS)


def assert_viewport_shows(page, source_path, store):
    import json

    source = pydicom.dcmread(source_path)
    selector = f"canvas[data-series='{source.SeriesInstanceUID}']"
    index = json.loads((store / "index.json").read_text())["instances"]
    reduce = int(page.locator(selector).get_attribute("data-reduce"))
    codestream = (store / index[str(source.SOPInstanceUID)]["image"]).read_bytes()
    expected = windowed(opj_decode(codestream, reduce), source)
    actual = canvas_pixels(page, selector)
    assert actual.shape == expected.shape and np.abs(actual.astype(int) - expected.astype(int)).max() <= 1, \
        source_path.name


def test_stack_scroll_by_keys_and_wheel(watched_page, study_site):
    page, sources, store = open_study(watched_page, study_site)
    ct = pydicom.dcmread(sources / "ct-0.dcm")
    selector = f"canvas[data-series='{ct.SeriesInstanceUID}']"
    cell = page.locator(".cell", has=page.locator(selector))
    cell.focus()
    # Opened at slice 3 of 5: its four neighbours are prefetched at preview resolution...
    page.wait_for_function(f"document.querySelector(\"{selector}\").parentElement.parentElement.dataset.prefetched === '4'",
                           timeout=30_000)
    page.keyboard.press("ArrowDown")
    wait_for_image(page, selector, 3)
    # ...so the next one shows something from the cache before any request for it is answered.
    assert page.locator(selector).get_attribute("data-preview") == "cache"
    page.keyboard.press("ArrowDown")
    wait_for_image(page, selector, 4)
    assert_viewport_shows(page, sources / "ct-4.dcm", store)
    assert "Im: 5/5" in cell.locator(".corner.bottom-left").text_content()
    cell.hover()
    page.mouse.wheel(0, -120)
    wait_for_image(page, selector, 3)
    assert_viewport_shows(page, sources / "ct-3.dcm", store)
    assert page.watch.errors == []


def test_window_level_by_dragging(watched_page, study_site):
    import json

    page, sources, store = open_study(watched_page, study_site)
    mr = pydicom.dcmread(sources / "MR_small.dcm")  # Window 600/1600 in its attributes
    selector = f"canvas[data-series='{mr.SeriesInstanceUID}']"
    cell = page.locator(".cell", has=page.locator(selector))
    assert "W: 1600 L: 600" in cell.locator(".corner.bottom-right").text_content()
    box = cell.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x - 128, y + 64, steps=4)  # narrower and higher: 1600 - 128 * 6.25, 600 + 64 * 6.25
    page.mouse.up()
    page.wait_for_function(f"document.querySelector(\"{selector}\").dataset.window !== undefined")
    window = json.loads(page.locator(selector).get_attribute("data-window"))
    assert window == {"center": 1000, "width": 800}
    assert "W: 800 L: 1000" in cell.locator(".corner.bottom-right").text_content()
    mr.WindowCenter, mr.WindowWidth = 1000, 800
    index = json.loads((store / "index.json").read_text())["instances"]
    reduce = int(page.locator(selector).get_attribute("data-reduce"))
    expected = windowed(opj_decode((store / index[str(mr.SOPInstanceUID)]["image"]).read_bytes(), reduce), mr)
    actual = canvas_pixels(page, selector)
    assert np.abs(actual.astype(int) - expected.astype(int)).max() <= 1
    assert page.watch.errors == []


def test_a_viewport_that_cannot_load_says_why_and_retries(watched_page, study_site):
    page = watched_page
    site, study, sources, store = study_site
    page.watch.origin = site.rstrip("/")
    mr = pydicom.dcmread(sources / "MR_small.dcm")
    image = next(store.glob(f"images/*/{mr.SeriesInstanceUID}/*.j2k"))
    hidden = image.with_suffix(".moved")
    image.rename(hidden)
    try:
        page.goto(f"{site}?study={study}")
        selector = f"canvas[data-series='{mr.SeriesInstanceUID}']"
        page.wait_for_function(f"document.querySelector(\"{selector}\")?.dataset.state === 'error'",
                               timeout=BOOT_TIMEOUT_MS)
        cell = page.locator(".cell", has=page.locator(selector))
        assert "HTTP 404" in cell.locator(".failure").text_content()
        assert cell.locator(".failure").is_visible()
    finally:
        hidden.rename(image)
    cell.locator(".failure button").click()
    page.wait_for_function(f"document.querySelector(\"{selector}\").dataset.state === 'painted'",
                           timeout=BOOT_TIMEOUT_MS)
    assert not cell.locator(".failure").is_visible()
    assert_viewport_shows(page, sources / "MR_small.dcm", store)


@pytest.fixture(scope="module")
def cine_site(tmp_path_factory):
    """A study of one ultrasound cine (multi-frame, uncompressed source), ingested and served."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    sources, store = tmp_path_factory.mktemp("cine-sources"), tmp_path_factory.mktemp("cine-store")
    ds = pydicom.Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.3.1"
    ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID = (generate_uid(entropy_srcs=["cine", k])
                                                                   for k in "abc")
    ds.Modality, ds.PatientName, ds.Rows, ds.Columns, ds.NumberOfFrames, ds.FrameTime = "US", "Cine^Test", 64, 80, 6, 50
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    frames = np.stack([np.clip(np.add.outer(np.arange(64), np.arange(80)) * 2 + 30 * k, 0, 255) for k in range(6)])
    ds.PixelData = frames.astype(np.uint8).tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    ds.save_as(sources / "cine.dcm", enforce_file_format=True)
    with ingested(sources, store) as base:
        yield base, ds, store


def test_multi_frame_objects_scroll_by_frame_and_play_as_cine(watched_page, cine_site):
    import json

    page = watched_page
    site, ds, store = cine_site
    page.watch.origin = site.rstrip("/")
    page.goto(f"{site}?study={ds.StudyInstanceUID}")
    page.wait_for_function("document.body.dataset.state === 'painted'", timeout=BOOT_TIMEOUT_MS)
    selector = f"canvas[data-series='{ds.SeriesInstanceUID}']"
    cell = page.locator(".cell", has=page.locator(selector))
    assert "Fr: 1/6" in cell.locator(".corner.bottom-left").text_content()
    cell.focus()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    wait_for_image(page, selector, 2)
    assert "Fr: 3/6" in cell.locator(".corner.bottom-left").text_content()
    image = store / json.loads((store / "index.json").read_text())["instances"][ds.SOPInstanceUID]["image"]
    from pyjpip.codestream.source import JPEG2000Source
    third = JPEG2000Source(image.read_bytes()).codestream(3).data  # frame 3 is stream 3
    expected = windowed(opj_decode(bytes(third)), ds)
    actual = canvas_pixels(page, selector)
    assert np.abs(actual.astype(int) - expected.astype(int)).max() <= 1
    page.keyboard.press("c")
    page.wait_for_function(f"document.querySelector(\"{selector}\").dataset.instance !== '2'", timeout=10_000)
    page.keyboard.press("c")
    assert page.locator(selector).get_attribute("data-cine") == "stopped"
    assert page.watch.errors == []


def test_presets_and_the_shortcut_list(watched_page, study_site):
    import json

    page, sources, store = open_study(watched_page, study_site)
    ct = pydicom.dcmread(sources / "ct-2.dcm")  # the middle slice, where the stack opens
    selector = f"canvas[data-series='{ct.SeriesInstanceUID}']"
    cell = page.locator(".cell", has=page.locator(selector))
    cell.focus()
    page.keyboard.press("3")  # bone
    assert "W: 2000 L: 400" in cell.locator(".corner.bottom-right").text_content()
    ct.WindowCenter, ct.WindowWidth = 400, 2000
    index = json.loads((store / "index.json").read_text())["instances"]
    reduce = int(page.locator(selector).get_attribute("data-reduce"))
    expected = windowed(opj_decode((store / index[str(ct.SOPInstanceUID)]["image"]).read_bytes(), reduce), ct)
    assert np.abs(canvas_pixels(page, selector).astype(int) - expected.astype(int)).max() <= 1
    page.keyboard.press("1")  # back to the object's own (none: the image's range)
    assert page.locator(selector).get_attribute("data-window") == "null"
    assert "W: 2000" not in cell.locator(".corner.bottom-right").text_content()
    page.keyboard.press("?")
    assert page.locator("#help").is_visible() and "window / level" in page.locator("#help").text_content()
    page.keyboard.press("Escape")
    assert not page.locator("#help").is_visible()
    assert "bytes" in page.locator("#status").text_content()
    assert page.watch.errors == []


def test_dicom_objects_by_url_hollow_and_ordinary(watched_page, study_site):
    """?dicom=<url>,<url>...: hollow objects (pixels by JPIP) laid out like a study, and an ordinary
    object whose frames are served inside the worker, zoomed to real size exactly."""
    page = watched_page
    site, study, sources, store = study_site
    page.watch.origin = site.rstrip("/")
    page.set_viewport_size({"width": 1280, "height": 720})
    urls = []
    for path in sorted(sources.glob("*.dcm")):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        urls.append(f"/dicomweb/studies/{study}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}")
    page.goto(f"{site}?dicom={','.join(urls)}")
    page.wait_for_function("['painted', 'error'].includes(document.body.dataset.state)", timeout=BOOT_TIMEOUT_MS)
    assert page.evaluate("document.body.dataset.state") == "painted", page.locator("#status").text_content()
    assert page.locator(".cell").count() == 2
    for name in ("ct-2.dcm", "MR_small.dcm"):
        assert_viewport_shows(page, sources / name, store)
    # An ordinary object: JPEG 2000 frames fetched whole, streamed to the same client in the worker.
    page.goto(f"{site}?dicom=data/ct_phantom_2048.dcm")
    page.wait_for_function("['painted', 'error'].includes(document.body.dataset.state)", timeout=BOOT_TIMEOUT_MS)
    assert page.evaluate("document.body.dataset.state") == "painted", page.locator("#status").text_content()
    ds = pydicom.dcmread(DATA / "ct_phantom_2048.dcm")
    codestream = first_codestream(DATA / "ct_phantom_2048.dcm")
    reduce = int(page.locator(".cell canvas.base").get_attribute("data-reduce"))
    actual = canvas_pixels(page, ".cell canvas.base")
    assert np.abs(actual.astype(int) - windowed(opj_decode(codestream, reduce), ds).astype(int)).max() <= 1
    page.locator(".cell").focus()
    page.keyboard.press("r")
    page.wait_for_function("(() => { const c = document.querySelector('.cell canvas.detail');"
                           " return c && !c.hidden && c.dataset.final === 'true' && c.dataset.reduce === '0'; })()",
                           timeout=60_000)
    x0, y0, x1, y1 = map(int, page.locator(".cell canvas.detail").get_attribute("data-region").split(","))
    expected = windowed(opj_decode(codestream, 0), ds)[y0:y1, x0:x1]
    actual = canvas_pixels(page, ".cell canvas.detail")
    assert actual.shape == expected.shape and np.abs(actual.astype(int) - expected.astype(int)).max() <= 1
    assert not any("local.pyjpip" in url for url in page.watch.requests), "frames served in the worker are not fetched"
    assert page.watch.errors == []


@pytest.fixture(scope="module")
def annotated_site(tmp_path_factory):
    """An MR whose modality values come from a Modality LUT Sequence (a square root, not a rescale)
    and which carries a graphics overlay plane (a frame and a diagonal, offset by its origin)."""
    from pydicom.data import get_testdata_file
    from pydicom.dataset import Dataset
    from pydicom.uid import generate_uid

    sources, store = tmp_path_factory.mktemp("annotated-sources"), tmp_path_factory.mktemp("annotated-store")
    mr = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    mr.StudyInstanceUID = generate_uid(entropy_srcs=["annotated study"])
    for keyword in ("RescaleSlope", "RescaleIntercept", "WindowCenter", "WindowWidth"):
        if keyword in mr:
            delattr(mr, keyword)
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 16]
    item.add_new(0x00283006, "US", [int(1000 * (v ** 0.5)) for v in range(4096)])  # LUT Data
    item.ModalityLUTType = "US"
    mr.ModalityLUTSequence = [item]
    mr.WindowCenter, mr.WindowWidth = 30000, 50000
    rows, columns = 40, 50
    bits = np.zeros((rows, columns), np.uint8)
    bits[0, :] = bits[-1, :] = bits[:, 0] = bits[:, -1] = 1
    bits[np.arange(rows), np.arange(rows)] = 1
    mr.add_new(0x60000010, "US", rows)
    mr.add_new(0x60000011, "US", columns)
    mr.add_new(0x60000040, "CS", "G")
    mr.add_new(0x60000050, "SS", [11, 6])
    mr.add_new(0x60000100, "US", 1)
    mr.add_new(0x60000102, "US", 0)
    mr.add_new(0x60003000, "OW", np.packbits(bits.ravel(), bitorder="little").tobytes())
    mr.save_as(sources / "annotated.dcm")
    with ingested(sources, store) as base:
        yield base, mr, bits, store


def test_modality_lut_and_overlay_planes_are_applied(watched_page, annotated_site):
    """By ?study= (the layout reads DICOM JSON) the canvas is the stored values through the Modality
    LUT, then the window; the overlay's set pixels are white where its origin puts them."""
    import json

    page = watched_page
    site, mr, bits, store = annotated_site
    goto_study(page, site, mr.StudyInstanceUID)
    selector = f"canvas[data-series='{mr.SeriesInstanceUID}']"
    assert page.locator(selector).get_attribute("data-reduce") == "0"
    index = json.loads((store / "index.json").read_text())["instances"]
    stored = opj_decode((store / index[str(mr.SOPInstanceUID)]["image"]).read_bytes(), 0).astype(np.int64)
    table = np.array(mr.ModalityLUTSequence[0].LUTData)
    modality = table[np.clip(stored, 0, len(table) - 1)]
    plain = pydicom.Dataset()
    plain.PhotometricInterpretation, plain.WindowCenter, plain.WindowWidth = "MONOCHROME2", 30000, 50000
    expected = windowed(modality, plain)
    top, left = 11 - 1, 6 - 1
    expected[top : top + bits.shape[0], left : left + bits.shape[1]][bits == 1] = 255
    actual = canvas_pixels(page, selector)
    assert actual.shape == expected.shape and np.abs(actual.astype(int) - expected.astype(int)).max() <= 1
    assert np.count_nonzero(actual[top : top + bits.shape[0], left : left + bits.shape[1]][bits == 1] == 255) == \
        np.count_nonzero(bits)
    assert np.ptp(expected[bits.shape[0] + top :]) > 100  # the LUT-windowed image is not flat
    assert page.watch.errors == []
