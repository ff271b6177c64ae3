// A viewport showing a stack: the images (or frames) of a series, one at a time, with its corner
// text and orientation markers, scrolled by wheel and keys, played as cine, and the neighbours of the
// image on screen prefetched at preview resolution so scrolling shows something at once.
import { Annotations, chooseTool } from "./annotations.js";
import { Viewport } from "./viewport.js";

/** Window presets by modality (Hounsfield units for CT); key 1 always returns to the object's own. */
export const PRESETS = {
  CT: { 2: ["Brain", 40, 80], 3: ["Bone", 400, 2000], 4: ["Lung", -600, 1500], 5: ["Abdomen", 40, 400] },
};
/** Display parameters for a bare JPEG 2000 image: no DICOM attributes, so its own range is shown. */
export const BARE_GREYSCALE = Object.freeze({ bits_stored: 0, signed: false, rescale_slope: 1, rescale_intercept: 0,
  window_center: null, window_width: null, voi_lut_function: "LINEAR", invert: false, voi_lut: null, padding: null });

/** A bare JPEG 2000 image as a one-image series (its JP2 boxes, if any, say how it is shown: jp2colour.js). */
export function bareSeries(url, description = url) {
  return { series: url, modality: "", description, stack: [{ url, corners: {} }], instance: 0,
           greyscale: BARE_GREYSCALE, photometric: "MONOCHROME2", markers: {}, frame_time: 40, bare: true };
}
const PREFETCH = [1, -1, 2, -2];
const PREVIEW_LEVELS = 2;  // neighbours come at a quarter of the base resolution

export class Stack extends EventTarget {
  /**
   * series: pyjpip.browser's description of a series as a viewport (stack of {url, corners},
   * greyscale, photometric, modality, markers, frame_time, instance).
   */
  constructor(cell, series, { python, decoder, tool = "window", wheelZooms = false, fixedReduce = null }) {
    super();
    this.cell = cell;
    this.series = series;
    this.python = python;
    cell.classList.add("cell");
    cell.tabIndex = 0;
    cell.replaceChildren();
    this.viewport = new Viewport(cell, { python, decoder, tool, fixedReduce });
    this.viewport.wheelZooms = wheelZooms || series.stack.length < 2;
    // Measurements, kept per image across show() (series.calibration: PS3.3 10.7.1.3, chosen by Python).
    this.annotations = new Annotations(this.viewport, { calibration: series.calibration, greyscale: series.greyscale,
                                                         modality: series.modality });
    this.corners = {};
    for (const corner of ["top_left", "top_right", "bottom_left", "bottom_right"]) {
      this.corners[corner] = Object.assign(document.createElement("div"), { className: `corner ${corner.replace("_", "-")}` });
      cell.append(this.corners[corner]);
    }
    for (const [edge, letters] of Object.entries(series.markers || {})) {
      cell.append(Object.assign(document.createElement("div"), { className: `marker ${edge}`, textContent: letters }));
    }
    const canvas = this.viewport.base.canvas;
    canvas.dataset.series = series.series;
    this.prefetches = [];
    this.index = series.instance;
    this.cine = null;
    this.viewport.addEventListener("scroll", (event) => this.scroll(event.detail));
    this.viewport.addEventListener("picture", (event) => this.pictured(event.detail));
    this.viewport.addEventListener("window", () => this.showWindow());
    this.viewport.addEventListener("complete", (event) => event.detail.layer === "base" && this.prefetch(event.detail.reduce));
    this.viewport.addEventListener("failure", (event) => this.dispatchEvent(new CustomEvent("failure", { detail: event.detail })));
    this.listening = new AbortController();
    cell.addEventListener("keydown", (event) => this.key(event), { signal: this.listening.signal });
    this.show(this.index);
  }

  show(position, { keepView = true } = {}) {
    for (const prefetch of this.prefetches) prefetch.cancel();
    this.prefetches = [];
    this.index = position;
    const item = this.series.stack[position];
    for (const [corner, lines] of Object.entries(item.corners)) this.corners[corner].textContent = lines.join("\n");
    this.viewport.base.canvas.dataset.instance = String(position);
    this.showWindow();
    // An image's own display parameters where they differ from the series' (its window, rescale...).
    // item.error: an image whose attributes cannot be painted right (pyjpip.errors kind and message).
    const loading = this.viewport.load(item.url, { greyscale: item.greyscale || this.series.greyscale,
                                                   photometric: this.series.photometric, error: item.error,
                                                   overlays: item.overlays, keepView, bare: !!this.series.bare });
    this.annotations.refresh();  // load() has set the new image: its measurements, not the last one's
    this.dispatchEvent(new CustomEvent("position", { detail: position }));  // linked viewports follow (linking.js)
    return loading;
  }

  /** What the left button does: "length", "angle", "rectangle", "ellipse" measure (for the whole page), "none" stops; "pan" or "window" too. */
  setTool(tool) {
    if (tool === "pan" || tool === "window") {
      chooseTool("none");
      this.viewport.setTool(tool);
    } else {
      chooseTool(tool);
    }
  }

  scroll(step) {
    const position = Math.min(Math.max(this.index + step, 0), this.series.stack.length - 1);
    if (position !== this.index) this.show(position);
  }

  /** Neighbours at preview resolution, into the worker's cache only: nothing is decoded or painted. */
  prefetch(reduce) {
    for (const offset of PREFETCH) {
      const item = this.series.stack[this.index + offset];
      if (item) this.prefetches.push(this.python.show(item.url, reduce + PREVIEW_LEVELS, null, null));
    }
    let done = 0;
    this.cell.dataset.prefetched = "0";
    for (const prefetch of this.prefetches) {
      prefetch.done.then((reply) => {
        if (!reply.cancelled) this.cell.dataset.prefetched = String(++done);
      }, () => {});  // a neighbour that fails says so when it is shown
    }
  }

  toggleCine() {
    if (this.cine) {
      clearInterval(this.cine);
      this.cine = null;
    } else {
      this.cine = setInterval(() => this.show((this.index + 1) % this.series.stack.length), this.series.frame_time);
    }
    this.viewport.base.canvas.dataset.cine = this.cine ? "playing" : "stopped";
  }

  key(event) {
    const step = { ArrowDown: 1, ArrowUp: -1, PageDown: 10, PageUp: -10 }[event.key];
    const presets = PRESETS[this.series.modality] || {};
    if (step) {
      event.preventDefault();
      this.scroll(step);
    } else if (event.key === "c" && this.series.stack.length > 1) {
      this.toggleCine();
    } else if (this.series.greyscale && (event.key === "1" || presets[event.key])) {
      const preset = presets[event.key];
      this.viewport.setWindow(preset ? { center: preset[1], width: preset[2] } : null);
      this.showWindow();
    }
  }

  showWindow() {
    const lines = this.series.stack[this.index].corners.bottom_right || [];
    const window = this.viewport.currentWindow();
    const text = window ? [`W: ${+window.width.toFixed(1)} L: ${+window.center.toFixed(1)}`,
                           ...lines.filter((line) => !line.startsWith("W: "))] : lines;
    this.corners.bottom_right.textContent = text.join("\n");
  }

  pictured({ layer, picture }) {
    this.showWindow();
    const info = this.viewport.image.info;
    const full = picture.codestream_length;
    // Bytes held of this codestream's own data-bins, of the whole codestream (the metadata-bin and
    // other frames' codestreams are not part of it; responses add message headers besides).
    const held = picture.codestream_bytes;
    const bytes = `${held.toLocaleString("en")}${full ? ` of ${full.toLocaleString("en")} bytes (${(100 * held / full).toFixed(1)}%)` : " bytes"}`;
    const [x0, y0, x1, y1] = picture.region;
    this.status = [
      this.series.modality && `${this.series.modality} image ${this.index + 1}/${this.series.stack.length}`,
      `${info.width}×${info.height}`,
      `${layer === "base" ? "whole image" : `region ${x1 - x0}×${y1 - y0}`} at 1/${2 ** picture.reduce}`,
      `${picture.layers}/${info.layers} layer(s)`, bytes, `${picture.requests} request(s)`,
      picture.final ? "complete" : "refining…",
    ].filter(Boolean).join(" · ");
    this.dispatchEvent(new CustomEvent("status", { detail: this.status }));
  }

  close() {
    this.listening.abort();
    if (this.cine) clearInterval(this.cine);
    for (const prefetch of this.prefetches) prefetch.cancel();
    this.annotations.close();
    this.viewport.close();
  }
}
