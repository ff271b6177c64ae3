"""Where an image lies in the patient, and how images of one Frame of Reference relate
(PS3.3 C.7.6.2 Image Plane Module; C.7.6.2.1.1 Image Position and Orientation; C.7.4.1 Frame of Reference).

Why: a viewer that knows each slice's plane draws the focused slice on the other viewports (the
reference line), scrolls linked series to the slice nearest a point and turns a pixel into millimetres
of the patient, all from attributes, before any pixel arrives. web/spatial.js mirrors these functions
for the numbers ``ImagePlane.to_dict`` gives (tests/integration/test_spatial_js.py checks one against
the other).

Conventions (C.7.6.2.1.1): patient coordinates in mm, LPS (+x left, +y posterior, +z head). A pixel is
addressed as (column, row), zero-based, integers at pixel centres: Image Position (Patient) is the
centre of the top-left pixel (0, 0). The row direction cosines point along a row (column index
increasing), the column direction cosines down a column (row index increasing). Pixel Spacing is
[spacing between rows, spacing between columns]: its first value goes with the column direction
cosines, its second with the row direction cosines:

    P(column, row) = IPP + row_cosines * PixelSpacing[1] * column + column_cosines * PixelSpacing[0] * row

Enhanced multi-frame objects carry the same attributes per frame, in the Plane Position (Patient),
Plane Orientation (Patient) and Pixel Measures functional groups (C.7.6.16.2.3, .4, .1), per frame or
shared; they win over the top-level attributes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from pyjpip.errors import DicomError, GeometryError

if TYPE_CHECKING:
    from pyjpip.layout.attributes import Attributes
    from pyjpip.layout.ordering import Series, Study

Vector = tuple[float, float, float]

#: How far from unit length and from perpendicular direction cosines may be (they are written as
#: decimal strings of at most 16 characters, often rounded to six places).
ORTHONORMAL_TOLERANCE = 1e-3
#: Planes whose normals make a smaller angle (its sine) are parallel: no reference line.
PARALLEL_TOLERANCE = 1e-6
#: A crossing shorter than this (pixels) only touches the image (a corner): no reference line.
TOUCHING_TOLERANCE = 1e-9


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _cross(a: Sequence[float], b: Sequence[float]) -> Vector:
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def slice_normal(orientation) -> Vector | None:
    """Row direction × column direction of Image Orientation (Patient) (C.7.6.2.1.1), not normalised:
    what ordering along the normal needs. None without six values or with parallel cosines."""
    if orientation is None or len(orientation) != 6:
        return None
    try:
        values = [float(v) for v in orientation]
    except (TypeError, ValueError):
        return None
    normal = _cross(values[:3], values[3:])
    return normal if any(abs(v) > 1e-9 for v in normal) else None


@dataclass(frozen=True)
class ImagePlane:
    """The plane and extent of one frame (C.7.6.2): ``position`` Image Position (Patient), ``row`` and
    ``column`` the two halves of Image Orientation (Patient), ``spacing`` Pixel Spacing in its own order
    (between rows, between columns), mm; ``rows`` and ``columns`` the matrix."""

    position: Vector
    row: Vector
    column: Vector
    spacing: tuple[float, float]
    rows: int
    columns: int

    @classmethod
    def from_values(cls, position, orientation, spacing, rows, columns) -> ImagePlane:
        """A plane from the attributes' values, checked; GeometryError names what is unusable."""
        position = _numbers(position, 3, "ImagePositionPatient")
        orientation = _numbers(orientation, 6, "ImageOrientationPatient")
        spacing = _numbers(spacing, 2, "PixelSpacing")
        row, column = orientation[:3], orientation[3:]
        for name, vector in (("row", row), ("column", column)):
            if abs(math.sqrt(_dot(vector, vector)) - 1) > ORTHONORMAL_TOLERANCE:
                raise GeometryError(f"ImageOrientationPatient: the {name} direction cosines {list(vector)} are not "
                                    "a unit vector", "ImageOrientationPatient")
        if abs(_dot(row, column)) > ORTHONORMAL_TOLERANCE:
            raise GeometryError("ImageOrientationPatient: the row and column direction cosines are not "
                                "perpendicular", "ImageOrientationPatient")
        if not all(s > 0 and math.isfinite(s) for s in spacing):
            raise GeometryError(f"PixelSpacing {list(spacing)} is not positive", "PixelSpacing")
        size = []
        for keyword, value in (("Rows", rows), ("Columns", columns)):
            try:
                count = int(value)
            except (TypeError, ValueError):
                raise GeometryError(f"{keyword} is missing or not a number ({value!r})", keyword) from None
            if count < 1:
                raise GeometryError(f"{keyword} is {count}", keyword)
            size.append(count)
        return cls(position, row, column, spacing, size[0], size[1])

    @classmethod
    def from_dict(cls, numbers: dict) -> ImagePlane:
        """The plane ``to_dict`` described (what the browser's JavaScript receives)."""
        return cls.from_values(numbers.get("position"), list(numbers.get("row") or ()) + list(numbers.get("column") or ()),
                               numbers.get("spacing"), numbers.get("rows"), numbers.get("columns"))

    def to_dict(self) -> dict:
        """The numbers web/spatial.js works from: position, row, column, spacing [between rows, between
        columns], rows, columns."""
        return {"position": list(self.position), "row": list(self.row), "column": list(self.column),
                "spacing": list(self.spacing), "rows": self.rows, "columns": self.columns}

    @property
    def normal(self) -> Vector:
        """The unit normal, row × column: the direction slices of an ordinary stack follow."""
        n = _cross(self.row, self.column)
        length = math.sqrt(_dot(n, n))
        return (n[0] / length, n[1] / length, n[2] / length)

    def _steps(self) -> tuple[Vector, Vector]:
        """The patient displacement of one column and of one row (mm)."""
        between_rows, between_columns = self.spacing
        return (tuple(v * between_columns for v in self.row), tuple(v * between_rows for v in self.column))

    def point(self, column: float, row: float) -> Vector:
        """The patient point (mm) of pixel coordinates (column, row); (0, 0) is the centre of the top-left pixel."""
        u, v = self._steps()
        p = self.position
        return (p[0] + u[0] * column + v[0] * row, p[1] + u[1] * column + v[1] * row,
                p[2] + u[2] * column + v[2] * row)

    def pixel(self, point: Sequence[float]) -> tuple[float, float]:
        """The pixel coordinates (column, row) of ``point`` projected onto the plane along its normal
        (least squares, so cosines a little off perpendicular still invert ``point`` exactly)."""
        u, v = self._steps()
        d = (point[0] - self.position[0], point[1] - self.position[1], point[2] - self.position[2])
        uu, uv, vv, ud, vd = _dot(u, u), _dot(u, v), _dot(v, v), _dot(u, d), _dot(v, d)
        determinant = uu * vv - uv * uv
        return ((ud * vv - vd * uv) / determinant, (vd * uu - ud * uv) / determinant)

    def distance(self, point: Sequence[float]) -> float:
        """Signed distance (mm) of ``point`` from the plane along the normal."""
        n = self.normal
        return (point[0] - self.position[0]) * n[0] + (point[1] - self.position[1]) * n[1] + \
            (point[2] - self.position[2]) * n[2]

    def centre(self) -> Vector:
        """The patient point at the middle of the image: what linked series look for."""
        return self.point((self.columns - 1) / 2, (self.rows - 1) / 2)

    def contains(self, column: float, row: float) -> bool:
        """Whether pixel coordinates fall on the image: pixels reach half a pixel beyond their centres."""
        return -0.5 <= column <= self.columns - 0.5 and -0.5 <= row <= self.rows - 0.5


def _numbers(values, count: int, keyword: str) -> tuple:
    """``count`` finite numbers from an attribute's value (a pydicom MultiValue, a list, a bare number)."""
    if values is None or isinstance(values, (str, bytes)) and not values.strip():
        raise GeometryError(f"{keyword} is missing", keyword)
    if isinstance(values, (str, bytes, int, float)):
        values = [values]
    try:
        numbers = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise GeometryError(f"{keyword} {values!r} is not {count} numbers", keyword) from None
    if len(numbers) != count or not all(math.isfinite(v) for v in numbers):
        raise GeometryError(f"{keyword} {list(numbers)} is not {count} finite numbers", keyword)
    return numbers


def _first_item(dataset, keyword: str):
    """The first item of a sequence attribute, or None."""
    if dataset is None:
        return None
    items = dataset.get(keyword)
    return items[0] if items else None


def functional_group_value(dataset: Attributes, frame: int, group: str, keyword: str):
    """``keyword`` for ``frame`` (from 1): in the frame's functional group item, else the shared one
    (C.7.6.16), else the top-level attribute."""
    per_frame = dataset.get("PerFrameFunctionalGroupsSequence")
    shared = _first_item(dataset, "SharedFunctionalGroupsSequence")
    for functional_groups in ((per_frame[frame - 1] if per_frame and 0 < frame <= len(per_frame) else None), shared):
        item = _first_item(functional_groups, group)
        if item is not None and item.get(keyword) is not None:
            return item.get(keyword)
    return dataset.get(keyword)


def read_image_plane(dataset: Attributes, frame: int = 1) -> ImagePlane:
    """The plane of ``frame`` (counted from 1), or GeometryError saying which attribute is missing or unusable."""
    return ImagePlane.from_values(
        functional_group_value(dataset, frame, "PlanePositionSequence", "ImagePositionPatient"),
        functional_group_value(dataset, frame, "PlaneOrientationSequence", "ImageOrientationPatient"),
        functional_group_value(dataset, frame, "PixelMeasuresSequence", "PixelSpacing"),
        dataset.get("Rows"), dataset.get("Columns"))


def image_plane(dataset: Attributes, frame: int = 1) -> ImagePlane | None:
    """The plane of ``frame``, or None when the attributes do not give one (a projection radiograph, a
    cine, damaged values): such an image takes no part in spatial relationships."""
    try:
        return read_image_plane(dataset, frame)
    except DicomError:
        return None


def reference_line(source: ImagePlane, target: ImagePlane) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """Where the plane of ``source`` crosses the image of ``target``: the segment's two ends in the target's
    pixel coordinates (column, row), clipped to the image (half a pixel beyond the edge centres). None when
    the planes are parallel or the plane passes by the image. The ends run along (b, -a), (a, b) being the
    gradient of the distance to the source plane over the target's columns and rows."""
    sine = _cross(source.normal, target.normal)  # its length: the sine of the angle between the planes
    if math.sqrt(_dot(sine, sine)) < PARALLEL_TOLERANCE:
        return None
    n = source.normal
    u, v = target._steps()
    a, b = _dot(n, u), _dot(n, v)
    d0 = source.distance(target.position)  # distance at pixel (0, 0); d(c, r) = d0 + a c + b r
    length = math.sqrt(a * a + b * b)
    direction = (b / length, -a / length)
    start = (-d0 * a / (length * length), -d0 * b / (length * length))  # the line's point nearest (0, 0)
    low, high = -math.inf, math.inf
    for axis, extent in ((0, target.columns), (1, target.rows)):
        edge_low, edge_high = -0.5, extent - 0.5
        if direction[axis] == 0:
            if not edge_low <= start[axis] <= edge_high:
                return None
            continue
        t0 = (edge_low - start[axis]) / direction[axis]
        t1 = (edge_high - start[axis]) / direction[axis]
        low, high = max(low, min(t0, t1)), min(high, max(t0, t1))
    if high - low <= TOUCHING_TOLERANCE:
        return None
    return ((start[0] + low * direction[0], start[1] + low * direction[1]),
            (start[0] + high * direction[0], start[1] + high * direction[1]))


def nearest_slice(planes: Sequence[ImagePlane | None], point: Sequence[float]) -> int | None:
    """Index of the plane nearest ``point``, measured along each plane's own normal (for a stack of
    parallel slices: the nearest position along the normal). How linked series follow each other; the
    first wins a tie; None when no plane is known."""
    best, best_distance = None, math.inf
    for index, plane in enumerate(planes):
        if plane is None:
            continue
        distance = abs(plane.distance(point))
        if distance < best_distance:
            best, best_distance = index, distance
    return best


def frame_of_reference(dataset: Attributes) -> str | None:
    """Frame of Reference UID (C.7.4.1.1.1): images sharing it share patient coordinates."""
    uid = dataset.get("FrameOfReferenceUID")
    return (str(uid).strip() or None) if uid else None


def shares_frame_of_reference(a: Series, b: Series) -> bool:
    """Whether two series' coordinates may be compared: both have one Frame of Reference UID, the same."""
    return bool(a.frame_of_reference_uid) and a.frame_of_reference_uid == b.frame_of_reference_uid


def frame_of_reference_links(study: Study) -> dict[str, list[str]]:
    """Series UIDs that share a Frame of Reference with at least one other series, by Frame of Reference UID."""
    groups: dict[str, list[str]] = {}
    for series in study.series:
        if series.frame_of_reference_uid:
            groups.setdefault(series.frame_of_reference_uid, []).append(series.series_instance_uid)
    return {uid: members for uid, members in groups.items() if len(members) > 1}
