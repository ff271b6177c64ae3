"""The viewer at work in headless Chromium: fit, real size and 4x zoom paint exactly what OpenJPEG
decodes for the visible region, the first picture costs no more than the data-bins it needs, zooming
and panning never fetch a byte twice, and the viewer can be embedded as an element and an iframe."""

import base64
import json

import numpy as np
import pytest

from local_site import served
from paths import ROOT
from reference import opj_decode
from test_first_page import BOOT_TIMEOUT_MS, canvas_pixels

pytestmark = pytest.mark.cpython_only
DATA = ROOT / "static" / "data"
TARGET = "ct_phantom_2048.j2k"


def bare_windowed(stored: np.ndarray, low: float, high: float) -> np.ndarray:
    """A bare JPEG 2000 image is shown over its own range (LINEAR_EXACT over the whole image's min..max)."""
    center, width = (low + high) / 2, max(high - low, 1e-9)
    return np.rint(np.clip(((stored.astype(np.float64) - center) / width + 0.5) * 255, 0, 255)).astype(np.uint8)


@pytest.fixture(scope="module")
def references():
    codestream = (DATA / TARGET).read_bytes()
    return {reduce: opj_decode(codestream, reduce) for reduce in (0, 1)}


def open_bare(page, jpip_site):
    page.watch.origin = jpip_site.rstrip("/")
    page.set_viewport_size({"width": 1280, "height": 720})
    page.goto(f"{jpip_site}?jpip=/jpip?target={TARGET}")
    page.wait_for_function("document.body.dataset.state === 'painted'", timeout=BOOT_TIMEOUT_MS)
    page.locator(".cell").focus()


def wait_for_detail(page, reduce: int) -> tuple[int, int, int, int]:
    page.wait_for_function(f"(() => {{ const c = document.querySelector('.cell canvas.detail');"
                           f" return c && !c.hidden && c.dataset.reduce === '{reduce}' && c.dataset.final === 'true'"
                           f" && ['painted', 'held'].includes(c.dataset.state); }})()",
                           timeout=60_000)
    return tuple(int(v) for v in page.locator(".cell canvas.detail").get_attribute("data-region").split(","))


def assert_detail_exact(page, references, reduce):
    region = wait_for_detail(page, reduce)
    x0, y0, x1, y1 = region
    whole = references[1]
    expected = bare_windowed(references[reduce][y0:y1, x0:x1], whole.min(), whole.max())
    actual = canvas_pixels(page, ".cell canvas.detail")
    assert actual.shape == expected.shape, region
    assert np.abs(actual.astype(int) - expected.astype(int)).max() <= 1, region
    return region


def test_the_first_picture_costs_only_the_bins_it_needs(watched_page, jpip_site):
    from pyjpip.jpip.cache_model import CacheModel
    from pyjpip.jpip.request import parse_query
    from pyjpip.jpip.server import JPIPServer

    page = watched_page
    bodies = []
    page.on("response", lambda r: "/jpip?" in r.url and bodies.append(len(r.body())))
    open_bare(page, jpip_site)
    assert page.locator(".cell canvas.base").get_attribute("data-reduce") == "1"
    server = JPIPServer(str(DATA), response_cache_bytes=0)
    source, tid = server.store.open(TARGET)
    plan, _, _ = server._plan(parse_query(f"target={TARGET}&fsiz=1024,1024"), source, tid, [0], CacheModel())
    needed = sum(item.end - item.start for item in plan)
    received = sum(bodies)
    assert needed > 100_000 and received <= 1.05 * needed, (received, needed)
    assert page.locator(".cell canvas.detail").is_hidden()  # the fit needs nothing finer
    assert page.watch.errors == []


def test_real_size_and_zoom_paint_the_visible_region_exactly_and_fetch_nothing_twice(watched_page, jpip_site,
                                                                                     references):
    import imagecodecs

    page = watched_page
    open_bare(page, jpip_site)
    page.keyboard.press("r")  # real size: one sample per screen pixel
    x0, y0, x1, y1 = assert_detail_exact(page, references, 0)
    assert (x1 - x0, y1 - y0) < (1300, 700), "only the visible region is asked for"
    # What the screen shows at real size is the samples themselves, unresampled.
    cell = page.locator(".cell").bounding_box()
    shift = page.evaluate("(() => { const m = new DOMMatrix(getComputedStyle(document.querySelector('.cell canvas.detail')).transform);"
                          " return [m.e, m.f, m.a]; })()")
    assert shift[2] == 1 and shift[0] == int(shift[0]) and shift[1] == int(shift[1])
    shot = imagecodecs.png_decode(page.screenshot(clip=cell))[..., 0]
    whole = references[1]
    expected = bare_windowed(references[0][y0:y1, x0:x1], whole.min(), whole.max())
    tx, ty = int(shift[0]), int(shift[1])
    top, left = max(0, ty), max(0, tx)
    height = min(shot.shape[0], ty + expected.shape[0]) - top - 1
    width = min(shot.shape[1], tx + expected.shape[1]) - left - 1
    on_screen = shot[top : top + height, left : left + width].astype(int)
    difference = np.abs(on_screen - expected[top - ty : top - ty + height, left - tx : left - tx + width])
    middle = difference[height // 5 : -height // 5, width // 5 : -width // 5]  # corner text and focus ring left out
    assert middle.size > 300_000 and middle.max() <= 1
    page.keyboard.press("f")
    for _ in range(4):  # four steps of √2: 4x the fitted scale
        page.keyboard.press("+")
    zoom = float(page.locator(".cell").get_attribute("data-zoom"))
    assert abs(zoom / (cell["height"] / 2048) - 4) < 0.05
    assert_detail_exact(page, references, 0)
    box = page.locator(".cell").bounding_box()
    page.keyboard.down("Shift")
    page.mouse.move(box["x"] + 600, box["y"] + 300)
    page.mouse.down()
    page.mouse.move(box["x"] + 400, box["y"] + 200, steps=4)
    page.mouse.up()
    page.keyboard.up("Shift")
    region = assert_detail_exact(page, references, 0)
    assert region[0] > 0
    data = page.locator(".cell").evaluate("(c) => ({...c.dataset})")
    assert int(data["newBytes"]) == int(data["receivedBytes"]), "a byte came twice"
    assert int(data["bodyBytes"]) < (DATA / TARGET).stat().st_size
    assert page.watch.errors == []


EMBEDDING = """<!doctype html><meta charset="utf-8"><title>host</title>
<body style="margin:0">
<jpip-viewer id="element" src="/jpip?target={target}" style="width:640px;height:400px"></jpip-viewer>
<iframe id="frame" src="/?jpip=/jpip?target={target}" style="width:640px;height:400px;border:0"></iframe>
<script>
  window.hostNamesBefore = Object.keys(window).length;
  window.events = [];
  window.replies = [];
  window.addEventListener("message", (e) => {{
    if (e.data && e.data.pyjpip === 1) (e.data.event ? events : replies).push(e.data);
  }});
  document.getElementById("element").addEventListener("jpip-painted", () => window.elementPainted = true);
  document.getElementById("element").addEventListener("jpip-window", (e) => window.elementWindow = e.detail);
</script>
<script type="module">
  const before = new Set(Object.keys(window));
  await import("/jpip-viewer.js");
  window.newGlobals = Object.keys(window).filter((name) => !before.has(name));
</script>
"""


def test_the_viewer_embeds_as_an_element_and_in_an_iframe(watched_page, jpip_site, references):
    page = watched_page
    page.watch.origin = jpip_site.rstrip("/")
    page.route(f"{jpip_site}host.html", lambda route: route.fulfill(
        status=200, content_type="text/html", body=EMBEDDING.format(target=TARGET)))
    page.set_viewport_size({"width": 1300, "height": 900})
    page.goto(f"{jpip_site}host.html")
    page.wait_for_function("window.elementPainted === true", timeout=BOOT_TIMEOUT_MS)
    assert page.evaluate("window.newGlobals") == [], "the element module must not add global names"
    assert page.evaluate("customElements.get('jpip-viewer') !== undefined")
    # The element: its base canvas at the resolution 640x400 needs (2048 / 2^2 = 512 >= 400).
    page.evaluate("document.getElementById('element').setWindow(1000, 500)")
    assert page.evaluate("window.elementWindow") == {"center": 1000, "width": 500, "fn": "LINEAR"}
    grey = page.evaluate("""(() => {
      const c = document.getElementById('element').canvas;
      const rgba = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      const g = new Uint8Array(rgba.length / 4);
      for (let i = 0; i < g.length; i++) g[i] = rgba[4 * i];
      return {w: c.width, h: c.height, data: btoa(String.fromCharCode(...g.subarray(0, 65536)))}; })()""")
    assert (grey["w"], grey["h"]) == (512, 512)
    stored = opj_decode((DATA / TARGET).read_bytes(), 2).astype(np.float64)
    c, w = 1000 - 0.5, 500 - 1
    expected = np.rint(np.where(stored <= c - w / 2, 0, np.where(stored > c + w / 2, 255, ((stored - c) / w + 0.5) * 255)))
    actual = np.frombuffer(base64.b64decode(grey["data"]), np.uint8)
    assert np.abs(actual.astype(int) - expected.reshape(-1)[: actual.size].astype(int)).max() <= 1
    # The iframe: subscribe, set a window, get the reply and the event.
    frame = page.frame_locator("#frame")
    frame.locator("body[data-state='painted']").wait_for(timeout=BOOT_TIMEOUT_MS)
    page.evaluate("""(() => { const f = document.getElementById('frame').contentWindow;
      f.postMessage({pyjpip: 1, id: 1, command: 'subscribe'}, '*');
      f.postMessage({pyjpip: 1, id: 2, command: 'window', center: 1000, width: 500}, '*');
      f.postMessage({pyjpip: 1, id: 3, command: 'nonsense'}, '*'); })()""")
    page.wait_for_function("window.replies.length === 3 && window.events.some((e) => e.event === 'window')")
    replies = sorted(page.evaluate("window.replies"), key=lambda r: r["id"])
    assert [r["ok"] for r in replies] == [True, True, False] and "unknown command" in replies[2]["error"]
    event = next(e for e in page.evaluate("window.events") if e["event"] == "window")
    assert (event["center"], event["width"]) == (1000, 500)
    assert "W: 500 L: 1000" in frame.locator(".corner.bottom-right").text_content()
    assert page.watch.errors == []


def read_rgb(page, selector):
    data = page.evaluate("""(selector) => { const c = document.querySelector(selector);
      const rgba = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let text = ''; for (let i = 0; i < rgba.length; i += 0x8000) text += String.fromCharCode(...rgba.subarray(i, i + 0x8000));
      return {w: c.width, h: c.height, data: btoa(text)}; }""", selector)
    return np.frombuffer(base64.b64decode(data["data"]), np.uint8).reshape(data["h"], data["w"], 4)


def test_demo_study_monochrome1_colour_and_screenshots(watched_page, demo_site):
    import pydicom

    from reference import windowed

    page = watched_page
    site, sources, store = demo_site
    page.watch.origin = site.rstrip("/")
    page.set_viewport_size({"width": 1280, "height": 800})
    index = json.loads((store / "index.json").read_text())["instances"]
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in sources.rglob("*.dcm")]
    study = next(ds.StudyInstanceUID for ds in headers if ds.get("Modality") == "CR")  # the demo study proper
    page.goto(f"{site}?study={study}&layout=2x2")
    page.wait_for_function("document.body.dataset.state === 'painted'", timeout=BOOT_TIMEOUT_MS)
    shots = ROOT / "test-output" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "demo-study-fit.png"))
    assert page.locator("#series-strip button").count() == len({ds.SeriesInstanceUID for ds in headers
                                                                 if ds.StudyInstanceUID == study})
    assert page.locator(".cell").count() == 4
    # MONOCHROME1: the chest radiograph, put in the first viewport from the series strip.
    by_modality = {}
    for path in sources.rglob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        by_modality.setdefault((ds.get("Modality"), str(ds.get("PhotometricInterpretation"))), []).append(path)
    (cr_path, *_) = sorted(by_modality[("CR", "MONOCHROME1")])
    cr = pydicom.dcmread(cr_path)
    page.locator(".cell").first.focus()
    page.locator(f"#series-strip button[data-series='{cr.SeriesInstanceUID}']").click()
    selector = f"#viewport > .cell:first-child canvas.base[data-series='{cr.SeriesInstanceUID}']"
    page.wait_for_function(f"document.querySelector(\"{selector}\")?.dataset.state === 'painted'", timeout=60_000)
    instance = int(page.locator(selector).get_attribute("data-instance"))
    shown = sorted((p for p in sources.rglob("*.dcm") if pydicom.dcmread(p, stop_before_pixels=True).SeriesInstanceUID
                    == cr.SeriesInstanceUID), key=lambda p: int(pydicom.dcmread(p, stop_before_pixels=True).InstanceNumber))
    cr = pydicom.dcmread(shown[instance])
    reduce = int(page.locator(selector).get_attribute("data-reduce"))
    expected = windowed(opj_decode((store / index[cr.SOPInstanceUID]["image"]).read_bytes(), reduce), cr)
    actual = canvas_pixels(page, selector)
    assert np.abs(actual.astype(int) - expected.astype(int)).max() <= 1
    # Colour: pydicom's YBR_RCT object, decoded to RGB by the codestream's component transform.
    colour = next(pydicom.dcmread(p) for p in sources.rglob("*.dcm")
                  if str(pydicom.dcmread(p, stop_before_pixels=True).PhotometricInterpretation).startswith("YBR_RCT"))
    page.goto(f"{site}?study={colour.StudyInstanceUID}")  # pydicom's object is a study of its own
    page.wait_for_function("document.body.dataset.state === 'painted'", timeout=BOOT_TIMEOUT_MS)
    selector = f"#viewport > .cell:first-child canvas.base[data-series='{colour.SeriesInstanceUID}']"
    page.wait_for_function(f"document.querySelector(\"{selector}\")?.dataset.state === 'painted'", timeout=60_000)
    reduce = int(page.locator(selector).get_attribute("data-reduce"))
    from reference import opj_decode_all, pgx_array
    planes = [pgx_array(p) for p in opj_decode_all((store / index[colour.SOPInstanceUID]["image"]).read_bytes(), reduce)]
    rgb = read_rgb(page, selector)
    assert rgb.shape[:2] == planes[0].shape
    for channel, plane in enumerate(planes):
        assert np.abs(rgb[..., channel].astype(int) - plane.astype(int)).max() <= 1
    assert len({tuple(v) for v in rgb[..., :3].reshape(-1, 3)[::97]}) > 8, "a colour image, not grey"
    # Zoomed: the CR at 4x of fit, for a person to look at.
    page.goto(f"{site}?study={study}&layout=1x2")
    page.wait_for_function("document.body.dataset.state === 'painted'", timeout=BOOT_TIMEOUT_MS)
    page.locator(".cell").first.focus()
    for _ in range(4):
        page.keyboard.press("+")
    page.wait_for_function("(() => { const c = document.querySelector('.cell canvas.detail');"
                           " return c && !c.hidden && c.dataset.final === 'true'; })()", timeout=60_000)
    page.screenshot(path=str(shots / "demo-study-zoomed.png"))
    assert (shots / "demo-study-zoomed.png").stat().st_size > 10_000
    assert page.watch.errors == []


@pytest.fixture(scope="module")
def htj2k_site(tmp_path_factory):
    """An HTJ2K (Part 15) image, encoded by OpenJPH (imagecodecs), served with the site."""
    import imagecodecs

    from reference import smooth_image

    folder = tmp_path_factory.mktemp("htj2k")
    image = smooth_image(1800, 2400, 12, 7).astype(np.uint16)
    (folder / "image.jhc").write_bytes(imagecodecs.htj2k_encode(image, reversible=True, resolutions=6))
    with served(folder) as base:
        yield base, folder / "image.jhc"


def test_htj2k_streams_fits_and_zooms_exactly(watched_page, htj2k_site):
    page = watched_page
    site, path = htj2k_site
    page.watch.origin = site.rstrip("/")
    page.set_viewport_size({"width": 1280, "height": 720})
    page.goto(f"{site}?jpip=/jpip?target={path.name}")
    page.wait_for_function("['painted', 'error'].includes(document.body.dataset.state)", timeout=BOOT_TIMEOUT_MS)
    assert page.evaluate("document.body.dataset.state") == "painted", page.locator("#status").text_content()
    reduce = int(page.locator(".cell canvas.base").get_attribute("data-reduce"))
    assert reduce == 1  # 2400x1800 into about 1280x660 needs the half resolution
    fitted = opj_decode(path.read_bytes(), reduce)
    expected = bare_windowed(fitted, fitted.min(), fitted.max())
    actual = canvas_pixels(page, ".cell canvas.base")
    assert actual.shape == expected.shape and np.abs(actual.astype(int) - expected.astype(int)).max() <= 1
    page.locator(".cell").focus()
    page.keyboard.press("r")
    x0, y0, x1, y1 = wait_for_detail(page, 0)
    expected = bare_windowed(opj_decode(path.read_bytes(), 0)[y0:y1, x0:x1], fitted.min(), fitted.max())
    actual = canvas_pixels(page, ".cell canvas.detail")
    assert actual.shape == expected.shape and np.abs(actual.astype(int) - expected.astype(int)).max() <= 1
    assert page.watch.errors == []


def test_undecodable_image_says_so_in_its_viewport(watched_page, htj2k_site):
    page = watched_page
    site, path = htj2k_site
    page.watch.origin = site.rstrip("/")
    good = (DATA / TARGET).read_bytes()
    (path.parent / "broken.j2k").write_bytes(good[:4000] + bytes(range(256)) * 40)  # packets cut and garbled
    page.goto(f"{site}?jpip=/jpip?target=broken.j2k")
    page.wait_for_function("document.querySelector('.cell')?.dataset.state === 'error'", timeout=BOOT_TIMEOUT_MS)
    failure = page.locator(".cell .failure")
    assert failure.is_visible() and "could not be loaded" in failure.text_content()
    assert page.locator(".cell .failure button").is_visible()  # Retry
    assert page.locator(".cell .notice").is_hidden()  # no "Loading…" left over a failure
