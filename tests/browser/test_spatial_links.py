"""Spatial relationships in headless Chromium on the demo study (CT axial stack, MR sagittal registered
to it, a lateral CT localizer; one Frame of Reference): reference lines, linked scrolling and the
cross-reference cursor are what pyjpip.layout.spatial computes on CPython from the source files'
attributes (PS3.3 C.7.6.2)."""

import pydicom
import pytest

from pyjpip.layout.ordering import group_studies
from pyjpip.layout.spatial import image_plane, nearest_slice, reference_line
from test_first_page import BOOT_TIMEOUT_MS

pytestmark = pytest.mark.cpython_only


@pytest.fixture(scope="module")
def head(demo_site):
    """The demo's CT and MR study: its UID and series (ordered as the viewer orders them) by description."""
    base, sources, _ = demo_site
    datasets = [pydicom.dcmread(path, stop_before_pixels=True) for path in sorted(sources.glob("*.dcm"))]
    (study,) = [s for s in group_studies(datasets) if any(series.description == "Head 2.5 mm" for series in s.series)]
    series = {s.description: s for s in study.series}
    return base, study.study_instance_uid, series


def cell_of(page, series):
    return page.locator(".cell", has=page.locator(f"canvas.base[data-series='{series.series_instance_uid}']")).first


def shown(cell) -> int:
    return int(cell.locator("canvas.base").get_attribute("data-instance"))


def planes(series):
    return [image_plane(instance.dataset) for instance in series.instances]


def line_of(cell):
    text = cell.get_attribute("data-reference-line")
    return None if text is None else [float(v) for v in text.split(",")]


def assert_line(cell, source_plane, target_plane):
    expected = reference_line(source_plane, target_plane)
    assert expected is not None
    actual = line_of(cell)
    assert actual is not None, "no reference line drawn"
    assert actual == pytest.approx([v for end in expected for v in end], abs=2e-3)


def wait_instance(page, cell, index: int):
    handle = cell.element_handle()
    page.wait_for_function("([cell, index]) => cell.querySelector('canvas.base').dataset.instance === String(index)",
                           arg=[handle, index], timeout=30_000)


def test_reference_lines_linked_scrolling_and_the_cursor_follow_the_geometry(watched_page, head):
    base, study, series = head
    page = watched_page
    page.watch.origin = base.rstrip("/")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{base}?study={study}&layout=2x2")
    page.wait_for_function("document.body.dataset.state === 'painted'", timeout=BOOT_TIMEOUT_MS)
    ct, mr, scout = series["Head 2.5 mm"], series["Sag T1"], series["Scout"]
    ct_cell, mr_cell, scout_cell = cell_of(page, ct), cell_of(page, mr), cell_of(page, scout)
    assert page.locator("#link-toggle").is_visible()

    # The focused CT slice across the MR and the localizer.
    ct_planes, mr_planes, scout_plane = planes(ct), planes(mr), planes(scout)[0]
    index = shown(ct_cell)
    assert_line(mr_cell, ct_planes[index], mr_planes[shown(mr_cell)])
    assert_line(scout_cell, ct_planes[index], scout_plane)
    assert line_of(ct_cell) is None  # the focused image has no line of its own
    # Scrolling moves them.
    ct_cell.focus()
    for _ in range(6):
        page.keyboard.press("ArrowDown")
    wait_instance(page, ct_cell, index + 6)
    assert_line(scout_cell, ct_planes[index + 6], scout_plane)
    assert_line(mr_cell, ct_planes[index + 6], mr_planes[shown(mr_cell)])

    # Linked: the MR leads, the CT goes to its slice nearest the MR image's centre.
    mr_cell.focus()
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowUp")
    mr_index = shown(mr_cell)
    page.keyboard.press("l")
    assert page.evaluate("document.body.dataset.linked") == "true"
    assert page.locator("#link-toggle").get_attribute("aria-pressed") == "true"
    expected = nearest_slice(ct_planes, mr_planes[mr_index].centre())
    assert expected != index + 6
    wait_instance(page, ct_cell, expected)
    assert_line(ct_cell, mr_planes[mr_index], ct_planes[expected])  # now the MR's plane crosses the CT
    page.locator("#link-toggle").click()
    assert page.evaluate("document.body.dataset.linked") == "false"

    # The cursor: shift+click on the localizer puts the point in the patient; the CT goes to it.
    box = scout_cell.bounding_box()
    x, y = box["width"] * 0.5, box["height"] * 0.3
    page.mouse.move(box["x"] + x, box["y"] + y)
    page.keyboard.down("Shift")
    page.mouse.down()
    page.mouse.up()
    page.keyboard.up("Shift")
    page.wait_for_function("document.body.dataset.cursor !== undefined")
    point = [float(v) for v in page.evaluate("document.body.dataset.cursor").split(",")]
    assert abs(scout_plane.distance(point)) < 1e-3  # on the localizer's plane...
    column, row = scout_plane.pixel(point)
    scale = min(box["width"] / scout_plane.columns, box["height"] / scout_plane.rows)  # the fitted view
    assert (column + 0.5 - scout_plane.columns / 2) * scale + box["width"] / 2 == pytest.approx(x, abs=1)
    assert (row + 0.5 - scout_plane.rows / 2) * scale + box["height"] / 2 == pytest.approx(y, abs=1)  # ...where clicked
    target = nearest_slice(ct_planes, point)
    wait_instance(page, ct_cell, target)
    page.wait_for_function("(cell) => cell.dataset.cursor !== undefined", arg=ct_cell.element_handle())
    cursor = [float(v) for v in ct_cell.get_attribute("data-cursor").split(",")]
    assert cursor == pytest.approx(list(ct_planes[target].pixel(point)), abs=2e-3)
    assert abs(ct_planes[target].distance(point)) <= 2.5 / 2 + 1e-6  # within half the slice spacing
    assert page.watch.errors == []
