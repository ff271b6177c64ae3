// Measurements on an image: lengths, angles and region-of-interest statistics. Pure functions, no DOM.
//
// Points are image points in full-resolution samples, continuous, as web/geometry.js gives them
// ([x, y], sample i covering [i, i + 1)). A calibration is pyjpip.layout.measurement's, per series:
// {row, column: mm per pixel, name}, row spacing along y and column spacing along x (PS3.3 10.7.1.3);
// null or undefined: lengths in pixels. Python chooses it (Pixel Spacing in the patient, Imager Pixel
// Spacing at the detector...); this file never guesses one.
import { modalityOf, samplesOf, storedValue } from "./paint.js";
import { measuredLength } from "./spatial.js";

/** mm per pixel along x and y, and the units, from a calibration (or pixels without one). */
function spacing(calibration) {
  return calibration ? { x: calibration.column, y: calibration.row, unit: "mm", areaUnit: "mm²" }
    : { x: 1, y: 1, unit: "px", areaUnit: "px²" };
}

/**
 * The length between two image points: {value, unit ("mm" or "px"), name (the calibration's)}. The
 * arithmetic is web/spatial.js's, which tests/integration/test_spatial_js.py holds to Python's.
 */
export function lengthOf(a, b, calibration) {
  return measuredLength(calibration || null, a, b);
}

/**
 * The angle at ``vertex`` between the arms to ``a`` and ``c``, in degrees [0, 180]. Measured in the
 * patient's millimetres: with anisotropic spacing an angle in pixels is not the angle in the body.
 */
export function angleOf(a, vertex, c, calibration) {
  const s = spacing(calibration);
  const ux = (a[0] - vertex[0]) * s.x, uy = (a[1] - vertex[1]) * s.y;
  const vx = (c[0] - vertex[0]) * s.x, vy = (c[1] - vertex[1]) * s.y;
  // atan2 of cross and dot: accurate near 0° and 180°, where acos is not.
  return { value: (Math.atan2(Math.abs(ux * vy - uy * vx), ux * vx + uy * vy) * 180) / Math.PI, unit: "°" };
}

/** The bounding box [x0, y0, x1, y1] of a rectangle or ellipse given by two opposite corners. */
export function boxOf([[ax, ay], [bx, by]]) {
  return [Math.min(ax, bx), Math.min(ay, by), Math.max(ax, bx), Math.max(ay, by)];
}

/**
 * Whether image point (x, y) lies in the shape ({kind: "rectangle" | "ellipse", points: two corners}).
 * Rectangles are half-open like samples ([x0, x1) × [y0, y1)); the ellipse is the one inscribed in the
 * box, boundary included. tests/browser/test_measurement.py applies the same rule in numpy.
 */
export function insideOf({ kind, points }) {
  const [x0, y0, x1, y1] = boxOf(points);
  if (kind === "rectangle") return (x, y) => x >= x0 && x < x1 && y >= y0 && y < y1;
  const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2, rx = (x1 - x0) / 2, ry = (y1 - y0) / 2;
  return (x, y) => {
    const dx = (x - cx) / rx, dy = (y - cy) / ry;
    return dx * dx + dy * dy <= 1;
  };
}

/**
 * The samples of resolution ``reduce`` whose centres ((i + 0.5)·2^r, (j + 0.5)·2^r) may lie in the shape:
 * index ranges [i0, i1) × [j0, j1), clipped to the frame at that resolution ([width, height]).
 */
export function sampleRange(shape, reduce, [width, height]) {
  const [x0, y0, x1, y1] = boxOf(shape.points);
  const k = 2 ** reduce;
  const first = (v) => Math.max(0, Math.ceil(v / k - 0.5));
  const last = (v, top) => Math.min(top, Math.floor(v / k - 0.5) + 1);
  return [first(x0), first(y0), last(x1, width), last(y1, height)];
}

/** Whether a layer's tile ({reduce, region}) holds every sample of the shape at its resolution. */
export function tileCovers(tile, shape, frame) {
  const [i0, j0, i1, j1] = sampleRange(shape, tile.reduce, frame);
  const [x0, y0, x1, y1] = tile.region;
  return i0 >= i1 || j0 >= j1 || (i0 >= x0 && j0 >= y0 && i1 <= x1 && j1 <= y1);
}

/**
 * The tile to measure in: of those that cover the shape (the detail layer's and the base's), the finest
 * resolution, then a final picture (every quality layer) over a partial one. frames[r]: frame sizes.
 */
export function chooseTile(tiles, shape, frames) {
  const covering = tiles.filter((tile) => tile && frames[tile.reduce] && tileCovers(tile, shape, frames[tile.reduce]));
  const rank = (tile) => (completeness(tile).final ? 0 : 1);
  covering.sort((a, b) => a.reduce - b.reduce || rank(a) - rank(b));
  return covering[0] || null;
}

/** How complete a tile's samples are: its picture is final (every quality layer asked for), its layers. */
export function completeness(tile) {
  return { final: tile.picture?.final !== false, layers: tile.picture?.layers ?? 0 };
}

/**
 * Statistics of the modality values (stored value, then rescale or the Modality LUT, PS3.3 C.11.1) of
 * the tile's samples whose centres lie in the shape. SD is the population standard deviation (the
 * ROI's samples are all there is, divided by n). Padding values (C.7.5.1.1.2) are left out and counted.
 * area = count × (2^r)² × row × column spacing (mm², or px² without a calibration).
 * Returns {mean, sd, min, max, count, padding, area, areaUnit, reduce, final, layers}; count 0: no sample.
 */
export function roiStatistics(shape, tile, greyscale, calibration, frame) {
  const { reduce, region, decoded } = tile;
  const k = 2 ** reduce;
  const inside = insideOf(shape);
  const samples = samplesOf(decoded);
  const stored = storedValue(greyscale, decoded);
  const modality = modalityOf(greyscale);
  const [plow, phigh] = greyscale.padding || [Infinity, -Infinity];
  const [i0, j0, i1, j1] = sampleRange(shape, reduce, frame);
  const values = [];
  let padding = 0;
  for (let j = j0; j < j1; j++) {
    const row = (j - region[1]) * decoded.width - region[0];
    for (let i = i0; i < i1; i++) {
      if (!inside((i + 0.5) * k, (j + 0.5) * k)) continue;
      const s = stored(samples[row + i]);
      if (s >= plow && s <= phigh) padding++;
      else values.push(modality(s));
    }
  }
  const n = values.length;
  let sum = 0, min = Infinity, max = -Infinity;
  for (const v of values) {
    sum += v;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const mean = n ? sum / n : NaN;
  let squares = 0;  // two passes: the sum of squared deviations, not of squares, keeps precision
  for (const v of values) squares += (v - mean) ** 2;
  const s = spacing(calibration);
  return { mean, sd: n ? Math.sqrt(squares / n) : NaN, min: n ? min : NaN, max: n ? max : NaN, count: n, padding,
           area: n * k * k * s.x * s.y, areaUnit: s.areaUnit, reduce, ...completeness(tile) };
}

/**
 * Whether samples {reduce, final, layers} would measure better than the statistics held: a finer
 * resolution, or as fine and more complete (the final picture, or more quality layers of a partial one).
 */
export function better(next, held) {
  if (!held) return true;
  if (next.reduce !== held.reduce) return next.reduce < held.reduce;
  return !held.final && (next.final || next.layers > held.layers);
}
