"""Measurements in the viewer (web/measure.js, web/annotations.js): a length drawn with the mouse is the
image points' distance with the series' Pixel Spacing (PS3.3 10.7.1.3), an angle is calibrated, a
rectangle or ellipse ROI's statistics are numpy's over the same samples (modality values, PS3.3 C.11.1,
by sample centre) at the resolution the viewer says it used: the original pixels at full resolution,
OpenJPEG's decode at 1/2; annotations follow zoom and pan, survive scrolling away and back, and delete."""

import json
import math

import numpy as np
import pydicom
import pytest

from local_site import ingested
from reference import opj_decode
from test_first_page import BOOT_TIMEOUT_MS

pytestmark = pytest.mark.cpython_only

ROWS, COLUMNS = 768, 1024
ROW_SPACING, COLUMN_SPACING = 0.6, 0.4  # anisotropic on purpose: y takes the row spacing, x the column's
CALIBRATION = "Pixel Spacing, in the patient"


@pytest.fixture(scope="module")
def ct_site(tmp_path_factory):
    """A three-slice CT series (12-bit stored HU + 1024, Rescale Intercept -1024, Pixel Spacing 0.6 \\ 0.4),
    textured so that statistics and the 1/2 resolution differ from slice to slice, ingested and served."""
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    sources, store = tmp_path_factory.mktemp("measure-sources"), tmp_path_factory.mktemp("measure-store")
    study = generate_uid(entropy_srcs=["measurement study"])
    series = generate_uid(entropy_srcs=["measurement series"])
    rng = np.random.default_rng(15)
    y, x = np.mgrid[0:ROWS, 0:COLUMNS]
    body = ((x - 512) / 430) ** 2 + ((y - 384) / 340) ** 2 <= 1
    stored = {}
    for k in range(3):
        hu = np.where(body, 40 + 30 * k + 300 * np.sin(x / 37.0) * np.cos(y / 23.0), -1000.0)
        hu = hu + rng.normal(0, 25, hu.shape)
        stored[k] = np.clip(np.rint(hu + 1024), 0, 4095).astype(np.uint16)
        ct = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        for keyword in ("SmallestImagePixelValue", "LargestImagePixelValue"):
            if keyword in ct:
                delattr(ct, keyword)
        ct.StudyInstanceUID, ct.SeriesInstanceUID, ct.StudyDescription = study, series, "Measurement test"
        ct.SOPInstanceUID = ct.file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=["measure", str(k)])
        ct.InstanceNumber, ct.ImagePositionPatient = k + 1, [0, 0, 5.0 * k]
        ct.Rows, ct.Columns = ROWS, COLUMNS
        ct.BitsAllocated, ct.BitsStored, ct.HighBit, ct.PixelRepresentation = 16, 12, 11, 0
        ct.RescaleSlope, ct.RescaleIntercept = 1, -1024
        ct.PixelSpacing = [ROW_SPACING, COLUMN_SPACING]
        ct.WindowCenter, ct.WindowWidth = 40, 400
        ct.PixelData = stored[k].tobytes()
        ct.save_as(sources / f"ct-{k}.dcm")
    with ingested(sources, store) as base:
        yield base, study, sources, store, stored


def open_study(page, site, study, layout=""):
    page.watch.origin = site.rstrip("/")
    page.set_viewport_size({"width": 1280, "height": 720})
    page.goto(f"{site}?study={study}{layout}")
    page.wait_for_function("['painted', 'error'].includes(document.body.dataset.state)", timeout=BOOT_TIMEOUT_MS)
    assert page.evaluate("document.body.dataset.state") == "painted", page.locator("#message").text_content()


class Screen:
    """A cell's fitted view: image point (full-resolution samples) <-> page point (CSS pixels)."""

    def __init__(self, cell):
        self.box = cell.bounding_box()
        self.scale = float(cell.get_attribute("data-zoom"))
        self.cx, self.cy = COLUMNS / 2, ROWS / 2

    def page(self, ix, iy):  # rounded to whole CSS pixels: where the mouse goes
        return (round(self.box["x"] + (ix - self.cx) * self.scale + self.box["width"] / 2),
                round(self.box["y"] + (iy - self.cy) * self.scale + self.box["height"] / 2))

    def image(self, px, py):  # web/geometry.js toImage
        return (self.cx + (px - self.box["x"] - self.box["width"] / 2) / self.scale,
                self.cy + (py - self.box["y"] - self.box["height"] / 2) / self.scale)


def drag(page, start, end, steps=6):
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=steps)
    page.mouse.up()


def item(cell, kind):
    return cell.locator(f".annotation-list li[data-kind='{kind}']")


def wait_stats(page, kind, reduce, cell_index=0):
    """Until the ROI's statistics in cell ``cell_index`` come from a final picture at ``reduce``."""
    page.wait_for_function(f"document.querySelectorAll('.cell')[{cell_index}].querySelector(\".annotation-list "
                           f"li[data-kind='{kind}'][data-final='true'][data-reduce='{reduce}']\") !== null",
                           timeout=60_000)


def samples_inside(values: np.ndarray, kind: str, points, reduce: int) -> np.ndarray:
    """The samples of a resolution whose centres ((i + 0.5)·2^r, (j + 0.5)·2^r) lie in the shape: the
    rectangle half-open, the inscribed ellipse closed (web/measure.js insideOf, same arithmetic)."""
    k = 2 ** reduce
    (ax, ay), (bx, by) = points
    x0, y0, x1, y1 = min(ax, bx), min(ay, by), max(ax, bx), max(ay, by)
    height, width = values.shape
    xs, ys = np.meshgrid((np.arange(width) + 0.5) * k, (np.arange(height) + 0.5) * k)
    if kind == "rectangle":
        inside = (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)
    else:
        cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
        dx, dy = (xs - cx) / rx, (ys - cy) / ry
        inside = dx * dx + dy * dy <= 1
    return values[inside]


def assert_statistics(listed, modality: np.ndarray, reduce: int):
    """The viewer's numbers (data- attributes of its list item) against numpy's over ``modality``."""
    data = {name: listed.get_attribute(f"data-{name}") for name in
            ("kind", "points", "mean", "sd", "min", "max", "count", "area", "reduce", "unit")}
    assert int(data["reduce"]) == reduce and data["unit"] == "HU"
    values = samples_inside(modality, data["kind"], json.loads(data["points"]), reduce)
    assert values.size > 100 and int(data["count"]) == values.size
    assert float(data["mean"]) == pytest.approx(values.mean(), rel=1e-9, abs=1e-9)
    assert float(data["sd"]) == pytest.approx(values.std(ddof=0), rel=1e-9)  # population SD
    assert float(data["min"]) == values.min() and float(data["max"]) == values.max()
    area = values.size * 4 ** reduce * ROW_SPACING * COLUMN_SPACING
    assert float(data["area"]) == pytest.approx(area, rel=1e-12)
    return values


def shown_points(cell, kind):
    """The screen points (cell CSS pixels) of the first drawn measurement of a kind."""
    polyline = cell.locator(f"svg.annotations g.{kind} polyline").first.get_attribute("points")
    return [tuple(map(float, p.split(","))) for p in polyline.split()]


def test_length_angle_and_rois_at_full_resolution_persist_and_delete(watched_page, ct_site):
    page = watched_page
    site, study, sources, store, stored = ct_site
    open_study(page, site, study)
    cell = page.locator(".cell").first
    canvas = cell.locator("canvas.base")
    assert canvas.get_attribute("data-reduce") == "0" and canvas.get_attribute("data-instance") == "1"
    modality = stored[1].astype(np.float64) - 1024  # the middle slice, rescaled (C.11.1)
    screen = Screen(cell)
    cell.focus()

    # A length: drawn between two page points; the image points they mean are known.
    page.keyboard.press("m")
    a, b = screen.page(300.3, 200.7), screen.page(700.2, 520.1)
    drag(page, a, b)
    length = item(cell, "length")
    length.wait_for()
    assert length.get_attribute("data-unit") == "mm" and length.get_attribute("data-calibration") == CALIBRATION
    (ax, ay), (bx, by) = screen.image(*a), screen.image(*b)
    expected = math.hypot((bx - ax) * COLUMN_SPACING, (by - ay) * ROW_SPACING)
    one_pixel = max(ROW_SPACING, COLUMN_SPACING) / screen.scale  # a screen pixel's worth of mm at this zoom
    assert float(length.get_attribute("data-value")) == pytest.approx(expected, abs=one_pixel)
    (px, py), (qx, qy) = json.loads(length.get_attribute("data-points"))
    assert float(length.get_attribute("data-value")) == pytest.approx(
        math.hypot((qx - px) * COLUMN_SPACING, (qy - py) * ROW_SPACING), rel=1e-12)
    assert f"mm · {CALIBRATION}" in length.text_content()  # the calibration is named with the length

    # An angle: its first arm dragged to the vertex, then a click at the end of the second arm.
    page.keyboard.press("a")
    a, v, c = screen.page(200, 600), screen.page(500, 300), screen.page(850, 450)
    drag(page, a, v)
    page.mouse.move(*c, steps=4)
    page.mouse.down()
    page.mouse.up()
    angle = item(cell, "angle")
    angle.wait_for()
    (ax, ay), (vx, vy), (cx, cy) = screen.image(*a), screen.image(*v), screen.image(*c)
    u, w = ((ax - vx) * COLUMN_SPACING, (ay - vy) * ROW_SPACING), ((cx - vx) * COLUMN_SPACING, (cy - vy) * ROW_SPACING)
    expected = math.degrees(math.acos((u[0] * w[0] + u[1] * w[1]) / math.hypot(*u) / math.hypot(*w)))
    assert float(angle.get_attribute("data-value")) == pytest.approx(expected, abs=0.5)
    uncalibrated = math.degrees(math.atan2(abs((ax - vx) * (cy - vy) - (ay - vy) * (cx - vx)),
                                           (ax - vx) * (cx - vx) + (ay - vy) * (cy - vy)))
    assert abs(expected - uncalibrated) > 5, "the spacings must matter for this angle"

    # Rectangle and ellipse ROIs: statistics over the original pixels, exactly.
    page.keyboard.press("b")
    drag(page, screen.page(350.5, 250.5), screen.page(610.2, 470.8))
    wait_stats(page, "rectangle", 0)
    assert_statistics(item(cell, "rectangle"), modality, 0)
    page.keyboard.press("e")
    drag(page, screen.page(620.4, 300.1), screen.page(820.7, 560.3))
    wait_stats(page, "ellipse", 0)
    assert_statistics(item(cell, "ellipse"), modality, 0)
    assert "at 1/" not in item(cell, "ellipse").text_content()
    assert cell.locator("svg.annotations g.annotation").count() == 4

    # Zoom (about the centre) and pan (shift+drag, even with a tool on) move the drawings with the image.
    before = shown_points(cell, "length")
    page.keyboard.press("+")
    zoom = float(cell.get_attribute("data-zoom")) / screen.scale
    centre = (screen.box["width"] / 2, screen.box["height"] / 2)
    for (x0, y0), (x1, y1) in zip(before, shown_points(cell, "length")):
        assert (x1, y1) == pytest.approx((centre[0] + (x0 - centre[0]) * zoom, centre[1] + (y0 - centre[1]) * zoom), abs=1e-6)
    zoomed = shown_points(cell, "length")
    middle = (screen.box["x"] + centre[0], screen.box["y"] + centre[1])
    page.keyboard.down("Shift")
    drag(page, middle, (middle[0] + 40, middle[1] - 30))
    page.keyboard.up("Shift")
    for (x0, y0), (x1, y1) in zip(zoomed, shown_points(cell, "length")):
        assert (x1, y1) == pytest.approx((x0 + 40, y0 - 30), abs=1e-6)
    assert cell.locator(".annotation-list li").count() == 4, "a shift+drag pans; it draws nothing"
    page.keyboard.press("f")

    # Scrolled away, the next image has none; scrolled back, all four are there again.
    listed = {li.get_attribute("data-id"): li.get_attribute("data-mean") for li in cell.locator(".annotation-list li").all()}
    page.keyboard.press("ArrowDown")
    page.wait_for_function("document.querySelector('.cell canvas.base').dataset.instance === '2'")
    assert cell.locator(".annotation-list li").count() == 0 and cell.locator("svg.annotations g.annotation").count() == 0
    assert cell.locator(".annotation-list").is_hidden()
    page.keyboard.press("ArrowUp")
    page.wait_for_function("document.querySelector('.cell canvas.base').dataset.instance === '1'")
    assert {li.get_attribute("data-id"): li.get_attribute("data-mean")
            for li in cell.locator(".annotation-list li").all()} == listed
    assert cell.locator("svg.annotations g.annotation").count() == 4
    assert_statistics(item(cell, "rectangle"), modality, 0)

    # Deleted by its button, or selected in the list and deleted by the key.
    length.locator("button").click()
    assert item(cell, "length").count() == 0 and cell.locator("svg.annotations g.annotation").count() == 3
    item(cell, "ellipse").click()
    assert "selected" in item(cell, "ellipse").get_attribute("class")
    page.keyboard.press("Delete")
    assert item(cell, "ellipse").count() == 0
    assert cell.locator(".annotation-list li").count() == 2 and cell.locator("svg.annotations g.annotation").count() == 2
    page.keyboard.press("Escape")
    assert cell.get_attribute("data-measure") == "none"
    assert page.watch.errors == []


def test_roi_statistics_at_half_resolution_then_refined_to_full(watched_page, ct_site):
    page = watched_page
    site, study, sources, store, stored = ct_site
    open_study(page, site, study, "&layout=2x2")
    cell = page.locator(".cell").first
    assert cell.locator("canvas.base").get_attribute("data-reduce") == "1"  # a quarter of the screen: 1/2 fits
    source = pydicom.dcmread(sources / "ct-1.dcm", stop_before_pixels=True)
    index = json.loads((store / "index.json").read_text())["instances"]
    codestream = (store / index[str(source.SOPInstanceUID)]["image"]).read_bytes()
    assert np.array_equal(opj_decode(codestream, 0), stored[1]), "ingest is lossless"
    screen = Screen(cell)
    cell.focus()
    page.keyboard.press("b")
    drag(page, screen.page(430.3, 310.6), screen.page(600.8, 450.2), steps=4)
    wait_stats(page, "rectangle", 1)
    rectangle = item(cell, "rectangle")
    assert "at 1/2 resolution" in rectangle.text_content()
    half = opj_decode(codestream, 1).astype(np.float64) - 1024  # what the viewer decoded, rescaled
    coarse = assert_statistics(rectangle, half, 1)
    # Real size: the detail layer brings the visible region at full resolution, and the statistics follow.
    page.keyboard.press("r")
    wait_stats(page, "rectangle", 0)
    fine = assert_statistics(rectangle, stored[1].astype(np.float64) - 1024, 0)
    assert "at 1/" not in rectangle.text_content()
    assert fine.size == pytest.approx(4 * coarse.size, rel=0.05) and fine.std() != coarse.std()
    assert page.watch.errors == []
