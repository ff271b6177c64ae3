"""web/spatial.js computes what pyjpip.layout.spatial computes (within 1e-6), for the demo study's planes
(CT axial stack, its lateral localizer, the registered MR sagittal stack) and a few oblique ones."""

import json
import math
import shutil
import subprocess
import sys

import pydicom
import pytest

from pyjpip.layout.measurement import Calibration
from pyjpip.layout.spatial import ImagePlane, image_plane, nearest_slice, reference_line
from paths import ROOT

pytestmark = [pytest.mark.cpython_only,
              pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")]

RUNNER = """
const spatial = await import(process.argv[1]);
let input = "";
for await (const chunk of process.stdin) input += chunk;
const {calls} = JSON.parse(input);
const results = calls.map(([name, args]) => {
  const value = spatial[name](...args);
  return value === undefined ? null : value;
});
process.stdout.write(JSON.stringify(results));
"""


@pytest.fixture(scope="module")
def demo_planes(tmp_path_factory):
    """The planes of the demo study's head series, by series description, in stack order."""
    sources = tmp_path_factory.mktemp("spatial-demo")
    subprocess.run([sys.executable, str(ROOT / "tools" / "demo_study.py"), str(sources)], check=True, capture_output=True)
    series: dict[str, list] = {}
    for path in sources.glob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if ds.get("StudyDescription") == "CT head and MR brain":
            series.setdefault(str(ds.SeriesDescription), []).append((int(ds.InstanceNumber), image_plane(ds)))
    planes = {name: [p for _, p in sorted(members, key=lambda m: m[0])] for name, members in series.items()}
    assert sorted(planes) == ["Head 2.5 mm", "Sag T1", "Scout"] and all(p for ps in planes.values() for p in ps)
    return planes


def oblique_planes() -> list[ImagePlane]:
    """Planes tilted about one and two axes, with unequal spacings and non-square matrices."""
    planes = []
    for degrees, (rows, columns), spacing in ((20, (300, 200), (0.7, 0.9)), (55, (128, 256), (1.5, 1.25)),
                                              (-35, (512, 512), (0.5, 0.5))):
        c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
        row = (c, s, 0.0)
        column = (-s * 0.6, c * 0.6, -0.8)  # perpendicular to row, unit length
        planes.append(ImagePlane.from_values((-60.0 + degrees, -40.5, 30.25), (*row, *column), spacing, rows, columns))
    return planes


def run_js(calls: list) -> list:
    result = subprocess.run(["node", "--input-type=module", "--eval", RUNNER, (ROOT / "web" / "spatial.js").as_uri()],
                            input=json.dumps({"calls": calls}), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def assert_close(got, expected, what):
    if expected is None or got is None:
        assert got is None and expected is None, (what, got, expected)
    elif isinstance(expected, (list, tuple)):
        assert isinstance(got, list) and len(got) == len(expected), (what, got, expected)
        for g, e in zip(got, expected):
            assert_close(g, e, what)
    elif isinstance(expected, str):
        assert got == expected, (what, got, expected)
    else:
        assert abs(got - expected) <= 1e-6, (what, got, expected)


def test_spatial_js_mirrors_python(demo_planes):
    ct, mr, scout = demo_planes["Head 2.5 mm"], demo_planes["Sag T1"], demo_planes["Scout"]
    obliques = oblique_planes()
    sample = ct[::11] + [ct[-1]] + mr[::5] + scout + obliques
    cases: list[tuple[str, list, object]] = []  # (function, arguments, Python's answer)
    for plane in sample:
        d = plane.to_dict()
        cases.append(("normal", [d], plane.normal))
        cases.append(("centre", [d], plane.centre()))
        for column, row in ((0, 0), (plane.columns - 1, plane.rows - 1), (12.25, 300.75), (-3, 5.5)):
            cases.append(("patientPoint", [d, column, row], plane.point(column, row)))
        for point in ((0.0, 0.0, 0.0), (10.5, -20.25, 33.0), (-90.0, 75.0, -140.0), plane.centre()):
            cases.append(("pixelOf", [d, list(point)], plane.pixel(point)))
            cases.append(("distanceToPlane", [d, list(point)], plane.distance(point)))
    lines = 0
    for source in sample:
        for target in sample:
            expected = reference_line(source, target)
            lines += expected is not None
            cases.append(("referenceLine", [source.to_dict(), target.to_dict()], expected))
    assert 200 < lines < len(sample) ** 2  # crossings and misses (parallel, beside the image) both tried
    stacks = {"ct": ct, "mr": mr, "with gaps": [None if n % 3 else p for n, p in enumerate(ct)], "none": [None, None]}
    points = [p.centre() for p in sample] + [p.point(7, 400) for p in mr[::4]] + [(0.0, 0.0, 1000.0)]
    for name, stack in stacks.items():
        dicts = [p.to_dict() if p else None for p in stack]
        for point in points:
            cases.append(("nearestSlice", [dicts, list(point)], nearest_slice(stack, point)))
    calibration = Calibration(0.8, 0.6, "Pixel Spacing, in the patient")
    for start, end in (((0, 0), (3, 4)), ((10.5, 2), (-7, 300.25))):
        cases.append(("measuredLength", [calibration.to_dict(), list(start), list(end)],
                      {"value": calibration.length(start, end), "unit": "mm", "name": calibration.name}))
    results = run_js([[name, args] for name, args, _ in cases])
    assert len(results) == len(cases)
    for (name, args, expected), got in zip(cases, results):
        if name == "measuredLength":
            assert got["unit"] == "mm" and got["name"] == expected["name"]
            got, expected = got["value"], expected["value"]
        assert_close(got, expected, name)
    assert sum(1 for name, _, _ in cases if name == "nearestSlice") == len(stacks) * len(points)


def test_spatial_js_reads_the_browser_layout_planes(demo_planes):
    """The dict the layout sends (ImagePlane.to_dict) is what the JavaScript takes: a round trip through JSON."""
    scout = demo_planes["Scout"][0]
    axial = demo_planes["Head 2.5 mm"][60]
    assert ImagePlane.from_dict(json.loads(json.dumps(scout.to_dict()))) == scout
    (got,) = run_js([["referenceLine", [json.loads(json.dumps(axial.to_dict())), scout.to_dict()]]])
    (c0, r0), (c1, r1) = got
    assert r0 == r1 == pytest.approx(scout.pixel(axial.position)[1]) and {c0, c1} == {-0.5, 511.5}
