// Grey-scale painting: stored values → modality (rescale) → VOI window → 8-bit grey, MONOCHROME1
// inverted (DICOM PS3.3 C.11.1, C.11.2.1.2 LINEAR, C.11.2.1.3 LINEAR_EXACT and SIGMOID).
// Python decides the parameters; this file only applies them, through one lookup table per image.

/** Typed view of decoded samples: OpenJPEG hands out 16-bit little-endian for more than 8 bits. */
export function samplesOf(decoded) {
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

/**
 * Paint decoded grey samples to the canvas. greyscale is pyjpip's GreyscalePipeline as a plain object;
 * without a window the image's own modality-value range is mapped from black to white.
 * Returns the window actually used.
 */
export function paintGreyscale(canvas, decoded, greyscale) {
  if (decoded.components !== 1) {
    throw new Error(`${decoded.components}-component images are not grey-scale; colour painting is not available yet`);
  }
  const samples = samplesOf(decoded);
  const { rescale_slope: slope, rescale_intercept: intercept } = greyscale;
  // Pixel Representation says signed but the codestream says unsigned (real archives hold such files):
  // the attributes win, as pydicom's J2K sign correction does, over Bits Stored.
  const bits = greyscale.bits_stored || decoded.bitsPerSample;
  const stored = greyscale.signed && !decoded.signed
    ? (v) => (v >= 2 ** (bits - 1) ? v - 2 ** bits : v)
    : (v) => v;
  let min = Infinity, max = -Infinity;
  for (let i = 0; i < samples.length; i++) {
    const v = samples[i];
    if (v < min) min = v;
    if (v > max) max = v;
  }
  let window;
  if (greyscale.window_center != null && greyscale.window_width != null) {
    window = { center: greyscale.window_center, width: greyscale.window_width, fn: greyscale.voi_lut_function };
  } else {
    let low = Infinity, high = -Infinity;
    for (let v = min; v <= max; v++) {
      const m = stored(v) * slope + intercept;
      if (m < low) low = m;
      if (m > high) high = m;
    }
    window = { center: (low + high) / 2, width: Math.max(high - low, 1e-9), fn: "LINEAR_EXACT" };
  }
  const voi = voiFunction(window);
  const lut = new Uint32Array(max - min + 1); // RGBA as one little-endian word per stored value
  for (let v = min; v <= max; v++) {
    let y = Math.round(voi(stored(v) * slope + intercept));
    if (greyscale.invert) y = 255 - y;
    lut[v - min] = 0xff000000 | (y << 16) | (y << 8) | y;
  }
  canvas.width = decoded.width;
  canvas.height = decoded.height;
  const context = canvas.getContext("2d");
  const image = context.createImageData(decoded.width, decoded.height);
  const out = new Uint32Array(image.data.buffer);
  for (let i = 0; i < samples.length; i++) out[i] = lut[samples[i] - min];
  context.putImageData(image, 0, 0);
  return window;
}
