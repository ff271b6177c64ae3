// Where an image lies in the patient, and how images of one Frame of Reference relate
// (PS3.3 C.7.6.2 Image Plane Module, C.7.6.2.1.1, C.7.4.1 Frame of Reference).
//
// The mirror of pyjpip/layout/spatial.py, same names in camelCase, same arithmetic in the same
// order: tests/integration/test_spatial_js.py checks one against the other. Pure functions, no DOM,
// no dependencies. They work from the numbers Python gives each stack item (pyjpip.browser's
// `plane`, ImagePlane.to_dict): {position: [x, y, z], row: [3], column: [3], spacing: [between rows,
// between columns], rows, columns}; a stack item without geometry has plane null.
//
// Conventions: patient coordinates in mm, LPS (+x left, +y posterior, +z head). Pixels are
// (column, row), zero-based, integers at pixel centres: `position` (Image Position (Patient)) is the
// centre of the top-left pixel. `row` cosines point along a row (column index increasing), `column`
// cosines down a column. Pixel Spacing's first value is the spacing between rows, so
//   P(column, row) = position + row * spacing[1] * column + column * spacing[0] * row.

/** Planes whose normals make a smaller angle (its sine) are parallel: no reference line. */
export const PARALLEL_TOLERANCE = 1e-6;
/** A crossing shorter than this (pixels) only touches the image: no reference line. */
export const TOUCHING_TOLERANCE = 1e-9;

function dot(a, b) {
  return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

function cross(a, b) {
  return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
}

/** The patient displacement (mm) of one column and of one row. */
function steps(plane) {
  const [betweenRows, betweenColumns] = plane.spacing;
  return [plane.row.map((v) => v * betweenColumns), plane.column.map((v) => v * betweenRows)];
}

/** The unit normal, row x column. */
export function normal(plane) {
  const n = cross(plane.row, plane.column);
  const length = Math.sqrt(dot(n, n));
  return [n[0] / length, n[1] / length, n[2] / length];
}

/** The patient point (mm) of pixel coordinates (column, row). */
export function patientPoint(plane, column, row) {
  const [u, v] = steps(plane);
  const p = plane.position;
  return [p[0] + u[0] * column + v[0] * row, p[1] + u[1] * column + v[1] * row,
    p[2] + u[2] * column + v[2] * row];
}

/** The pixel coordinates [column, row] of a patient point projected onto the plane along its normal. */
export function pixelOf(plane, point) {
  const [u, v] = steps(plane);
  const d = [point[0] - plane.position[0], point[1] - plane.position[1], point[2] - plane.position[2]];
  const uu = dot(u, u), uv = dot(u, v), vv = dot(v, v), ud = dot(u, d), vd = dot(v, d);
  const determinant = uu * vv - uv * uv;
  return [(ud * vv - vd * uv) / determinant, (vd * uu - ud * uv) / determinant];
}

/** Signed distance (mm) of a patient point from the plane, along the normal. */
export function distanceToPlane(plane, point) {
  const n = normal(plane);
  return (point[0] - plane.position[0]) * n[0] + (point[1] - plane.position[1]) * n[1]
    + (point[2] - plane.position[2]) * n[2];
}

/** The patient point at the middle of the image: what linked series look for. */
export function centre(plane) {
  return patientPoint(plane, (plane.columns - 1) / 2, (plane.rows - 1) / 2);
}

/**
 * Where the plane of `source` crosses the image of `target` (the reference line): two ends
 * [[column, row], [column, row]] in the target's pixel coordinates, clipped to the image (half a pixel
 * beyond the edge centres), or null when the planes are parallel or the plane passes by the image.
 */
export function referenceLine(source, target) {
  const n = normal(source);
  const sine = cross(n, normal(target));
  if (Math.sqrt(dot(sine, sine)) < PARALLEL_TOLERANCE) return null;
  const [u, v] = steps(target);
  const a = dot(n, u), b = dot(n, v);
  const d0 = distanceToPlane(source, target.position); // d(c, r) = d0 + a c + b r
  const length = Math.sqrt(a * a + b * b);
  const direction = [b / length, -a / length];
  const start = [-d0 * a / (length * length), -d0 * b / (length * length)];
  let low = -Infinity, high = Infinity;
  for (const [axis, extent] of [[0, target.columns], [1, target.rows]]) {
    const edgeLow = -0.5, edgeHigh = extent - 0.5;
    if (direction[axis] === 0) {
      if (!(edgeLow <= start[axis] && start[axis] <= edgeHigh)) return null;
      continue;
    }
    const t0 = (edgeLow - start[axis]) / direction[axis];
    const t1 = (edgeHigh - start[axis]) / direction[axis];
    low = Math.max(low, Math.min(t0, t1));
    high = Math.min(high, Math.max(t0, t1));
  }
  if (high - low <= TOUCHING_TOLERANCE) return null;
  return [[start[0] + low * direction[0], start[1] + low * direction[1]],
    [start[0] + high * direction[0], start[1] + high * direction[1]]];
}

/**
 * Index of the plane nearest a patient point, measured along each plane's own normal (for a stack of
 * parallel slices, the nearest position along the normal): how linked series follow each other. The
 * first wins a tie; planes may be null; null when none is known.
 */
export function nearestSlice(planes, point) {
  let best = null, bestDistance = Infinity;
  planes.forEach((plane, index) => {
    if (!plane) return;
    const distance = Math.abs(distanceToPlane(plane, point));
    if (distance < bestDistance) {
      best = index;
      bestDistance = distance;
    }
  });
  return best;
}

/** Whether two series views (pyjpip.browser's) may be compared in space: one Frame of Reference UID. */
export function sharesFrameOfReference(a, b) {
  return Boolean(a.frame_of_reference) && a.frame_of_reference === b.frame_of_reference;
}

/**
 * A length between two pixel positions [column, row]: {value, unit, name} in mm with the series'
 * calibration ({row, column, name}: spacing between rows and between columns, pyjpip.layout.measurement),
 * in pixels without one. The name says which spacing it is (in the patient, at the detector, ...).
 */
export function measuredLength(calibration, start, end) {
  const dc = end[0] - start[0], dr = end[1] - start[1];
  if (!calibration) return { value: Math.hypot(dc, dr), unit: "px", name: "pixels (no spacing)" };
  return { value: Math.hypot(dc * calibration.column, dr * calibration.row), unit: "mm", name: calibration.name };
}
