// A viewport's geometry: where the image is on screen and which JPIP window that asks for.
//
// Pure functions, no DOM. The frame sizes per resolution come from Python (pyjpip.jpip.viewing's
// header description, computed by pyjpip.jpip.view_window.frame_size, ISO/IEC 15444-9 C.4.1); this
// module only chooses among them, and tests/integration/test_geometry_js.py checks its choices
// against Python's view_window for the same numbers.
//
// A view is {scale: CSS pixels per full-resolution sample, cx, cy: the image point (full-resolution
// samples) at the viewport's centre, fitted: follows the viewport's size}.

/** The view that shows the whole image, centred. size: {width, height} of the viewport (CSS pixels). */
export function fitView(size, { width, height }) {
  return { scale: Math.min(size.width / width, size.height / height), cx: width / 2, cy: height / 2, fitted: true };
}

/**
 * The resolution JPIP's fsiz=w,h with round-down gives (C.4.1): the least number of levels
 * discarded whose frame fits in [w, h]; all of them (``levels``) when none fits.
 * frames[r] is the frame size [fx', fy'] with r levels discarded.
 */
export function roundDownReduce(frames, levels, [width, height]) {
  for (let reduce = 0; reduce < levels; reduce++) {
    if (frames[reduce][0] <= width && frames[reduce][1] <= height) return reduce;
  }
  return levels;
}

/** The most levels that can be discarded while keeping at least one sample per device pixel. */
export function neededReduce(scale, levels, devicePixelRatio = 1) {
  const perSample = scale * devicePixelRatio;
  let reduce = 0;
  while (reduce < levels && 2 ** -(reduce + 1) >= perSample) reduce++;
  return reduce;
}

/** The first, coarse picture fits a quarter of the viewport in device pixels. */
export function firstSize(size, devicePixelRatio = 1) {
  return [Math.max(1, Math.floor((size.width * devicePixelRatio) / 4)),
          Math.max(1, Math.floor((size.height * devicePixelRatio) / 4))];
}

/**
 * The part of the frame at ``reduce`` that is on screen: [x0, y0, x1, y1] in that resolution's
 * samples, rounded outwards and clipped to ``frame`` [fx', fy'] (never empty). It becomes
 * fsiz=frame, roff=x0,y0, rsiz=x1-x0,y1-y0 (C.4.2-C.4.3), which the server keeps as asked.
 */
export function visibleRegion(view, size, frame, reduce) {
  const { scale, cx, cy } = view;
  const [fw, fh] = frame;
  const k = 2 ** reduce;
  const clamp = (v, top) => Math.min(Math.max(v, 0), top);
  const x0 = clamp(Math.floor((cx - size.width / 2 / scale) / k), fw - 1);
  const y0 = clamp(Math.floor((cy - size.height / 2 / scale) / k), fh - 1);
  const x1 = clamp(Math.ceil((cx + size.width / 2 / scale) / k), fw);
  const y1 = clamp(Math.ceil((cy + size.height / 2 / scale) / k), fh);
  return [x0, y0, Math.max(x1, x0 + 1), Math.max(y1, y0 + 1)];
}

/** Screen point (CSS pixels in the viewport) → image point (full-resolution samples, continuous). */
export function toImage(view, size, x, y) {
  return [view.cx + (x - size.width / 2) / view.scale, view.cy + (y - size.height / 2) / view.scale];
}

/** Image point (full-resolution samples, continuous) → screen point (CSS pixels in the viewport). */
export function toScreen(view, size, ix, iy) {
  return [(ix - view.cx) * view.scale + size.width / 2, (iy - view.cy) * view.scale + size.height / 2];
}

/** The view zoomed by ``factor`` about screen point (x, y), that image point staying where it is. */
export function zoomedView(view, size, scale, x, y) {
  const [ix, iy] = toImage(view, size, x, y);
  return { scale, cx: ix - (x - size.width / 2) / scale, cy: iy - (y - size.height / 2) / scale, fitted: false };
}

/**
 * Where a decoded window goes: {x, y} its top-left in CSS pixels (whole device pixels, so that at
 * real size the screen shows samples unresampled) and s, CSS pixels per sample of its resolution.
 */
export function placement(view, size, { reduce, region }, devicePixelRatio = 1) {
  const k = 2 ** reduce, s = view.scale * k;
  const [sx, sy] = toScreen(view, size, region[0] * k, region[1] * k);
  return { x: Math.round(sx * devicePixelRatio) / devicePixelRatio, y: Math.round(sy * devicePixelRatio) / devicePixelRatio, s };
}
