// Painting decoded samples: grey-scale through stored value → modality value (rescale, PS3.3 C.11.1)
// → VOI (window: C.11.2.1.2 LINEAR, C.11.2.1.3 LINEAR_EXACT and SIGMOID; or the VOI LUT Sequence,
// C.11.2.1.1) → 8-bit grey, MONOCHROME1 inverted, padding (C.7.5.1.1.2) black; colour as RGB.
// Python decides the parameters; this file applies them through one lookup table over every value
// the samples can take, so a new window costs one table and one pass over the pixels (above 16 bits,
// a table would be too large: each sample goes through the same mapping on its own).

/** Typed view of decoded samples: the decoder hands out 16-bit words above 8 bits, 32-bit above 16. */
export function samplesOf(decoded) {
  if (decoded.bitsPerSample > 16) {
    return decoded.signed ? new Int32Array(decoded.pixels) : new Uint32Array(decoded.pixels);
  }
  if (decoded.bitsPerSample > 8) {
    return decoded.signed ? new Int16Array(decoded.pixels) : new Uint16Array(decoded.pixels);
  }
  return decoded.signed ? new Int8Array(decoded.pixels) : new Uint8Array(decoded.pixels);
}

/** The VOI transfer function mapping a modality value to [0, 255], as a closure. */
export function voiFunction({ center, width, fn }) {
  if (fn === "SIGMOID") return (x) => 255 / (1 + Math.exp((-4 * (x - center)) / width));
  if (fn === "LINEAR_EXACT") {
    const low = center - width / 2, high = center + width / 2;
    return (x) => (x <= low ? 0 : x > high ? 255 : ((x - center) / width + 0.5) * 255);
  }
  const c = center - 0.5, w = width - 1;
  return (x) => (x <= c - w / 2 ? 0 : x > c + w / 2 ? 255 : ((x - c) / w + 0.5) * 255);
}

/** How a decoded sample becomes the stored value DICOM means (Pixel Representation wins over the codestream). */
export function storedValue(greyscale, decoded) {
  // Real archives hold files whose Pixel Representation says signed while the codestream says unsigned:
  // the attributes win, as pydicom's J2K sign correction does, over Bits Stored.
  const bits = greyscale.bits_stored || decoded.bitsPerSample;
  return greyscale.signed && !decoded.signed ? (v) => (v >= 2 ** (bits - 1) ? v - 2 ** bits : v) : (v) => v;
}

/** More values than a lookup table should hold: above 16 bits each sample is mapped on its own. */
const TABLE_BITS = 16;

/** The range a decoded image's samples can take (up to 16 bits): the lookup table covers all of it. */
function sampleRange(decoded) {
  const bits = decoded.bitsPerSample > 8 ? 16 : 8;
  return decoded.signed ? [-(2 ** (bits - 1)), 2 ** (bits - 1) - 1] : [0, 2 ** bits - 1];
}

/** Stored value → modality value: the Modality LUT Sequence (clamped at its ends), else rescale (C.11.1). */
export function modalityOf(greyscale) {
  const table = greyscale.modality_lut;
  if (table) {
    const { first_mapped: from, data } = table;
    return (s) => data[Math.min(Math.max(s - from, 0), data.length - 1)];
  }
  const { rescale_slope: slope, rescale_intercept: intercept } = greyscale;
  return (s) => s * slope + intercept;
}

/**
 * The range of the modality values the image's samples hold, padding left out: the window of an image
 * without one (LINEAR_EXACT, so its minimum is black and its maximum white). Only values present count:
 * a padding range leaves a gap, and a Modality LUT need not be monotonic.
 */
export function autoWindow(decoded, greyscale) {
  const samples = samplesOf(decoded);
  const stored = storedValue(greyscale, decoded);
  const [plow, phigh] = greyscale.padding || [Infinity, -Infinity];
  const modality = modalityOf(greyscale);
  let low = Infinity, high = -Infinity;
  const take = (v) => {
    const s = stored(v);
    if (s >= plow && s <= phigh) return;
    const m = modality(s);
    if (m < low) low = m;
    if (m > high) high = m;
  };
  if (decoded.bitsPerSample > TABLE_BITS) {  // too many possible values to mark: the distinct ones, sorted
    const sorted = samples.slice().sort();
    for (let i = 0; i < sorted.length; i++) if (i === 0 || sorted[i] !== sorted[i - 1]) take(sorted[i]);
  } else {
    const [first, last] = sampleRange(decoded);
    const present = new Uint8Array(last - first + 1);
    for (let i = 0; i < samples.length; i++) present[samples[i] - first] = 1;
    for (let v = first; v <= last; v++) if (present[v - first]) take(v);
  }
  if (low > high) low = high = 0;
  return { center: (low + high) / 2, width: Math.max(high - low, 1e-9), fn: "LINEAR_EXACT" };
}

/**
 * The window to paint with: the user's, else the object's window, else (with a VOI LUT Sequence)
 * null, meaning the LUT, else the image's own range (``fallback``, from autoWindow).
 */
export function chooseWindow(greyscale, user, fallback) {
  if (user) return { center: user.center, width: user.width, fn: "LINEAR" };
  if (greyscale.window_center != null && greyscale.window_width != null) {
    return { center: greyscale.window_center, width: greyscale.window_width, fn: greyscale.voi_lut_function };
  }
  if (greyscale.voi_lut) return null;
  return fallback;
}

/**
 * One RGBA word (little-endian) per possible decoded value: {lut, offset}; above 16 bits, the mapping
 * itself ({map}: a decoded value to its word), applied sample by sample.
 */
export function greyLookup(decoded, greyscale, window) {
  const map = greyMapping(decoded, greyscale, window);
  if (decoded.bitsPerSample > TABLE_BITS) return { map };
  const [first, last] = sampleRange(decoded);
  const lut = new Uint32Array(last - first + 1);
  for (let v = first; v <= last; v++) lut[v - first] = map(v);
  return { lut, offset: first };
}

/** A decoded value → its RGBA word: stored value, modality value, VOI, polarity, padding. */
function greyMapping(decoded, greyscale, window) {
  const stored = storedValue(greyscale, decoded);
  const modality = modalityOf(greyscale);
  let voi;
  if (window) {
    voi = voiFunction(window);
  } else {  // VOI LUT Sequence: entries indexed from the first mapped value, clamped at both ends
    const { first_mapped: from, bits, data } = greyscale.voi_lut;
    const top = 2 ** bits - 1;
    voi = (x) => data[Math.min(Math.max(Math.round(x) - from, 0), data.length - 1)] * 255 / top;
  }
  const [plow, phigh] = greyscale.padding || [Infinity, -Infinity];
  return (v) => {
    const s = stored(v);
    let y = Math.round(voi(modality(s)));
    if (greyscale.invert) y = 255 - y;
    if (s >= plow && s <= phigh) y = 0;
    return (0xff000000 | (y << 16) | (y << 8) | y) >>> 0;
  };
}

/** Paint a decoded tile (one component) through a lookup from greyLookup. */
export function paintGrey(canvas, decoded, { lut, offset, map }) {
  const samples = samplesOf(decoded);
  const image = new ImageData(decoded.width, decoded.height);
  const out = new Uint32Array(image.data.buffer);
  if (lut) for (let i = 0; i < samples.length; i++) out[i] = lut[samples[i] - offset];
  else for (let i = 0; i < samples.length; i++) out[i] = map(samples[i]);
  put(canvas, image);
}

/**
 * Paint a decoded colour tile: three interleaved components. YBR_RCT and YBR_ICT mean the codestream's
 * multiple component transform, which the decoder has already inverted, so they arrive as RGB;
 * YBR_FULL (no component transform) is converted here (PS3.3 C.7.6.3.1.2).
 */
export function paintColour(canvas, decoded, photometric) {
  if (decoded.components < 3) throw new Error(`${photometric} needs three components; the image has ${decoded.components}`);
  const samples = samplesOf(decoded);
  const n = decoded.width * decoded.height, step = decoded.components;
  const shift = Math.max(0, decoded.bitsPerSample - 8);
  const image = new ImageData(decoded.width, decoded.height);
  const out = image.data;
  const ybr = photometric === "YBR_FULL" || photometric === "YBR_FULL_422";
  const half = 128 << shift;
  for (let i = 0, j = 0; i < n; i++, j += step) {
    let r = samples[j] >> shift, g = samples[j + 1] >> shift, b = samples[j + 2] >> shift;
    if (ybr) {
      const y = samples[j], cb = samples[j + 1] - half, cr = samples[j + 2] - half;
      r = (y + 1.402 * cr) / 2 ** shift;
      g = (y - 0.344136 * cb - 0.714136 * cr) / 2 ** shift;
      b = (y + 1.772 * cb) / 2 ** shift;
    }
    out[4 * i] = r;  // Uint8ClampedArray rounds and clamps
    out[4 * i + 1] = g;
    out[4 * i + 2] = b;
    out[4 * i + 3] = 255;
  }
  put(canvas, image);
}

/**
 * Draw overlay planes (PS3.3 C.9.2) over a painted tile: a tile pixel at ``reduce`` covers
 * 2^reduce x 2^reduce image pixels, and is drawn white when any of them is set in a plane, so thin
 * graphics stay visible at coarse resolutions. ``region`` is the tile's place at that resolution.
 */
export function paintOverlays(canvas, overlays, { reduce, region }) {
  if (!overlays || !overlays.length) return;
  const context = canvas.getContext("2d");
  const { width, height } = canvas;
  const image = context.getImageData(0, 0, width, height);
  const out = new Uint32Array(image.data.buffer);
  const scale = 2 ** reduce;
  const [x0, y0] = region;
  for (const { rows, columns, origin, bits } of overlays) {
    const top = origin[0] - 1, left = origin[1] - 1;  // the plane's first pixel in the image, from 0
    for (let y = 0; y < height; y++) {
      const r0 = Math.max((y0 + y) * scale - top, 0), r1 = Math.min((y0 + y + 1) * scale - top, rows);
      if (r0 >= r1) continue;
      for (let x = 0; x < width; x++) {
        const c0 = Math.max((x0 + x) * scale - left, 0), c1 = Math.min((x0 + x + 1) * scale - left, columns);
        let on = false;
        for (let r = r0; r < r1 && !on; r++) {
          for (let c = c0; c < c1; c++) {
            const bit = r * columns + c;
            if ((bits[bit >> 3] >> (bit & 7)) & 1) { on = true; break; }
          }
        }
        if (on) out[y * width + x] = 0xffffffff;
      }
    }
  }
  context.putImageData(image, 0, 0);
}

function put(canvas, image) {
  if (canvas.width !== image.width || canvas.height !== image.height) {
    canvas.width = image.width;
    canvas.height = image.height;
  }
  canvas.getContext("2d").putImageData(image, 0, 0);
}

/** Paint one decoded grey image with its own window (or its range); returns the window used. */
export function paintGreyscale(canvas, decoded, greyscale) {
  if (decoded.components !== 1) {
    throw new Error(`${decoded.components}-component images are not grey-scale`);
  }
  const window = chooseWindow(greyscale, null, null) ?? (greyscale.voi_lut ? null : autoWindow(decoded, greyscale));
  paintGrey(canvas, decoded, greyLookup(decoded, greyscale, window));
  return window;
}
