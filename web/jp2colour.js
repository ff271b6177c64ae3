// A bare JP2 file's samples as colours (ISO/IEC 15444-1 I.5.3). Python reads the JP2 Header box
// (pyjpip.codestream.jp2_header) and says: the colour space (sRGB, greyscale, sYCC), its colours in
// order, each a component as it is or through a palette column (pclr, cmap, cdef), and a note when
// what is shown is not exactly what the file specifies (a restricted ICC profile is not applied: the
// image is shown in the enumerated space of its kind). The decoder has already inverted the
// codestream's component transform and, asked to, put subsampled components on the first one's grid.
// DICOM images never come here: their attributes say how they are shown.
import { samplesOf } from "./paint.js";

/**
 * How a bare image is shown, from its header (info.colour) and the bare grey-scale parameters:
 * {greyscale, colour, label}. A greyscale file without a palette goes through the grey-scale
 * pipeline over its nominal range (code value 0 black, 2^bits - 1 white; window/level still works);
 * anything else is painted here. A raw codestream (no colour) or one whose colour cannot be shown
 * keeps the bare parameters (its own range in grey), and the label says why.
 */
export function bareDisplay(info, bare) {
  const colour = info.colour;
  if (!colour) return { greyscale: bare, colour: null, label: "" };
  const label = `${colour.space || "colour unknown"}${colour.palette ? ", palette" : ""}${colour.note ? `: ${colour.note}` : ""}`;
  if (!colour.space) return { greyscale: bare, colour: null, label };
  if (colour.space === "greyscale" && colour.channels[0].column == null) {
    const bits = info.precision;
    return { greyscale: { ...bare, window_center: info.signed ? 0 : 2 ** (bits - 1), window_width: 2 ** bits },
             colour: null, label };
  }
  return { greyscale: null, colour, label };
}

/** A channel's value of pixel i as a fraction of its range' top, before any colour conversion. */
function channelReader(decoded, samples, colour, channel) {
  const step = decoded.components;
  if (channel.component >= step) throw new Error(`channel of component ${channel.component}; ${step} decoded`);
  if (channel.column == null) {
    const low = decoded.signed ? -(2 ** (decoded.bitsPerSample - 1)) : 0;
    return { read: (i) => samples[i * step + channel.component] - low, top: 2 ** decoded.bitsPerSample - 1 };
  }
  const { columns, bits, signed } = colour.palette;
  const table = columns[channel.column], last = table.length - 1;
  const low = signed[channel.column] ? -(2 ** (bits[channel.column] - 1)) : 0;
  return {
    read: (i) => table[Math.min(Math.max(samples[i * step + channel.component], 0), last)] - low,
    top: 2 ** bits[channel.column] - 1,
  };
}

/**
 * RGBA bytes of a decoded picture: channels through the palette, sYCC converted to sRGB
 * (IEC 61966-2-1 Amd. 1: R = Y + 1.402 Cr, G = Y - 0.344136 Cb - 0.714136 Cr, B = Y + 1.772 Cb, Cb and
 * Cr centred on 2^(bits - 1), clamped to the range), every value scaled from its range to 0..255.
 */
export function jp2Rgba(decoded, colour) {
  const samples = samplesOf(decoded);
  const n = decoded.width * decoded.height;
  const channels = colour.channels.map((channel) => channelReader(decoded, samples, colour, channel));
  const out = new Uint8ClampedArray(4 * n);  // rounds and clamps
  if (colour.space === "greyscale") {
    const [{ read, top }] = channels;
    for (let i = 0; i < n; i++) {
      const v = (read(i) * 255) / top;
      out[4 * i] = out[4 * i + 1] = out[4 * i + 2] = v;
      out[4 * i + 3] = 255;
    }
    return out;
  }
  const [a, b, c] = channels;
  if (colour.space === "sYCC") {
    const top = a.top, half = (top + 1) / 2, scale = 255 / top;
    const clamp = (v) => Math.min(Math.max(v, 0), top);
    for (let i = 0; i < n; i++) {
      const y = a.read(i), cb = b.read(i) - half, cr = c.read(i) - half;
      out[4 * i] = clamp(y + 1.402 * cr) * scale;
      out[4 * i + 1] = clamp(y - 0.344136 * cb - 0.714136 * cr) * scale;
      out[4 * i + 2] = clamp(y + 1.772 * cb) * scale;
      out[4 * i + 3] = 255;
    }
    return out;
  }
  for (let i = 0; i < n; i++) {  // sRGB
    out[4 * i] = (a.read(i) * 255) / a.top;
    out[4 * i + 1] = (b.read(i) * 255) / b.top;
    out[4 * i + 2] = (c.read(i) * 255) / c.top;
    out[4 * i + 3] = 255;
  }
  return out;
}

/** Paint a decoded picture of a bare JP2 file on its layer's canvas. */
export function paintJp2(canvas, decoded, colour) {
  const image = new ImageData(jp2Rgba(decoded, colour), decoded.width, decoded.height);
  if (canvas.width !== image.width || canvas.height !== image.height) {
    canvas.width = image.width;
    canvas.height = image.height;
  }
  canvas.getContext("2d").putImageData(image, 0, 0);
}
