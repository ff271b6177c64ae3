// One viewport: an image streamed by JPIP at the resolution and region on screen.
//
// Two layers, as kdu_show and tiled viewers do: the base is the whole image at the resolution that
// fits the viewport; the detail is the visible region at the resolution the current zoom needs.
// A gesture moves both at once (a CSS transform: the scaled lower resolution shows immediately);
// the detail is then asked for, the older request cancelled, and repainted as its bytes arrive.
// Decoded samples are kept, so a new window/level is only a new lookup table.
import * as geometry from "./geometry.js";
import { listenGestures } from "./gestures.js";
import { Layer } from "./layers.js";
import { bareDisplay, paintJp2 } from "./jp2colour.js";
import { autoWindow, chooseWindow, greyLookup, paintColour, paintGrey, paintOverlays } from "./paint.js";

const MAX_DEVICE_PIXELS_PER_SAMPLE = 32;

export class Viewport extends EventTarget {
  /**
   * cell: the element to fill. python: a PythonWorker. decoder: a decoder pool.
   * tool: what a plain left drag does, "window" (window/level) or "pan". fixedReduce: show the
   * image whole at that resolution, whatever the zoom (null: the resolution the view needs).
   */
  constructor(cell, { python, decoder, tool = "window", fixedReduce = null }) {
    super();
    this.cell = cell;
    this.python = python;
    this.decoder = decoder;
    this.tool = tool;
    this.fixedReduce = fixedReduce;
    this.base = new Layer(this, "base");
    this.detail = new Layer(this, "detail");
    this.stage = Object.assign(document.createElement("div"), { className: "stage" });
    this.stage.append(this.base.canvas, this.detail.canvas);
    this.message = Object.assign(document.createElement("div"), { className: "notice", textContent: "Loading…" });
    this.failure = Object.assign(document.createElement("div"), { className: "failure", hidden: true });
    this.failureReason = document.createElement("div");
    const retry = Object.assign(document.createElement("button"), { textContent: "Retry" });
    retry.addEventListener("click", (event) => {
      event.stopPropagation();
      this.retry();
    });
    this.failure.append(this.failureReason, retry);
    cell.prepend(this.stage);
    cell.append(this.message, this.failure);
    this.image = null;
    this.view = null;  // {scale: CSS pixels per image sample, cx, cy: the image point at the centre, fitted}
    this.user = null;  // the user's window/level, or null for the object's own
    this.listening = new AbortController();  // every listener on the cell goes when the viewport closes
    listenGestures(this, this.listening.signal);
    this.resizing = new ResizeObserver(() => this.resized());
    this.resizing.observe(cell);
  }

  // --- what is shown -------------------------------------------------------------------------

  /**
   * Show an image: url (a JPIP target URL), greyscale (pyjpip's GreyscalePipeline as an object, or
   * null for colour), photometric. keepView: keep zoom and pan (scrolling a stack of same-size images).
   * bare: a JPEG 2000 image without DICOM attributes, shown as its JP2 boxes say (jp2colour.js).
   */
  async load(url, { greyscale = null, photometric = "MONOCHROME2", overlays = null, keepView = false, bare = false,
                    error = null } = {}) {
    const token = (this.loading = {});
    const previous = this.image;
    this.image = { url, greyscale, photometric, info: null, autoWindow: null, bare, colour: null, given: greyscale,
                   error, overlays: (overlays || []).map((plane) => ({ ...plane, bits: Uint8Array.from(plane.data) })) };
    this.detail.cancel();
    this.base.cancel();
    this.failure.hidden = true;
    delete this.base.canvas.dataset.preview;
    this.setState("loading");
    if (error) {  // the layout found this image's attributes unusable: nothing is fetched or painted
      this.base.clear();
      this.detail.clear();
      this.fail(error);
      return;
    }
    try {
      // The header's request also brings the first picture's resolution (see requestBase).
      const info = await this.python.header(url, this.firstSize());
      if (token !== this.loading) return;  // another image, or closed
      this.image.info = info;
      if (bare) {
        const shown = bareDisplay(info, greyscale);
        Object.assign(this.image, { greyscale: shown.greyscale, colour: shown.colour });
        this.cell.dataset.colour = shown.label;
      }
      this.dispatchEvent(new CustomEvent("header", { detail: info }));
      const sameSize = previous?.info && previous.info.width === info.width && previous.info.height === info.height;
      if (!keepView || !sameSize || !this.view) this.view = this.fitView();
      this.cell.dataset.levels = String(info.levels);
      await this.requestBase();
    } catch (error) {
      if (token === this.loading) this.fail(error);
    }
  }

  /** Show the image whole at ``reduce`` levels discarded from now on (null: as the view needs). */
  setFixedReduce(reduce) {
    this.fixedReduce = reduce;
    if (!this.image?.info) return;
    // An image without a window of its own is shown over the range of the whole picture shown.
    this.image.autoWindow = null;
    this.image.autoWindowKept = false;
    this.detail.clear();
    this.requestBase();
  }

  retry() {
    if (this.image) this.load(this.image.url, { ...this.image, greyscale: this.image.given, keepView: true });
  }

  async requestBase() {
    const { info, url } = this.image;
    const reduce = this.baseReduce = this.fixedReduce == null ? this.neededReduce(this.fitView().scale)
      : Math.min(this.fixedReduce, info.levels);
    this.base.canvas.dataset.reduce = String(reduce);
    const preview = this.firstReduce(this.firstSize());
    const previewed = !this.base.tile && preview > reduce;
    if (previewed) {
      // A first image comes coarse first: a sixteenth of the bytes and of the decoding or less, and
      // every byte of it is part of the fitted picture. Its bytes came with the header (firstSize), so
      // it is painted from the cache. (Scrolling a stack needs no such step: its neighbours are
      // prefetched at preview resolution and shown from the cache.)
      const first = await this.base.ask(url, preview, [0, 0, ...info.frames[preview]]);
      if (first.cancelled || this.image?.url !== url) return;
    }
    const reply = await this.base.ask(url, reduce, [0, 0, ...info.frames[reduce]], { follow: previewed });
    if (reply.cancelled) return;
    this.dispatchEvent(new CustomEvent("complete", { detail: { layer: "base", reduce } }));
    this.requestDetail();
  }

  /** Ask for the visible region at the resolution the zoom needs, if the base is not enough. */
  requestDetail() {
    if (!this.image?.info || !this.base.tile) return;
    const { info, url } = this.image;
    const reduce = this.fixedReduce == null ? this.neededReduce(this.view.scale) : this.baseReduce;
    // Against the fitted level (baseReduce), which the base holds or is fetching: the tile on screen
    // may still be the coarse first picture, and a detail at the fitted level would ask twice.
    if (reduce >= this.baseReduce) {
      this.detail.clear();
      this.detail.canvas.dataset.state = "none";  // the base holds the resolution this zoom needs
      return;
    }
    const region = this.visibleRegion(reduce);
    if (this.detail.covers(reduce, region)) {  // what is shown already holds this view: nothing to ask
      if (this.detail.canvas.dataset.state === "painted") this.detail.canvas.dataset.state = "held";
      return;
    }
    this.detail.canvas.dataset.state = "loading";
    // No picture from the cache before the answer: for a window held whole the answer is an immediate
    // EOR, and otherwise the base layer already shows about what the cache holds (one decode saved).
    this.detail.ask(url, reduce, region, { preview: false }).then((reply) => {
      if (reply.cancelled) return;
      this.detail.canvas.dataset.state = "painted";
      this.dispatchEvent(new CustomEvent("complete", { detail: { layer: "detail", reduce, region } }));
    }, (error) => this.fail(error));
  }

  // --- geometry ------------------------------------------------------------------------------

  size() {
    const box = this.cell.getBoundingClientRect();
    return { width: Math.max(1, box.width), height: Math.max(1, box.height) };
  }

  dpr() {
    return window.devicePixelRatio || 1;
  }

  fitView() {
    return geometry.fitView(this.size(), this.image.info);
  }

  firstSize() {
    return geometry.firstSize(this.size(), this.dpr());
  }

  /** The resolution JPIP's fsiz=size (round-down, ISO/IEC 15444-9 C.4.1) gives: the largest that fits. */
  firstReduce(size) {
    return geometry.roundDownReduce(this.image.info.frames, this.image.info.levels, size);
  }

  neededReduce(scale) {
    return geometry.neededReduce(scale, this.image.info.levels, this.dpr());
  }

  visibleRegion(reduce) {
    return geometry.visibleRegion(this.view, this.size(), this.image.info.frames[reduce], reduce);
  }

  /** Place the layers: CSS transforms from their windows to the view. */
  layout() {
    if (!this.view) return;
    const size = this.size(), dpr = this.dpr();
    for (const layer of [this.base, this.detail]) {
      const tile = layer.tile;
      if (!tile) continue;
      const { x, y, s } = geometry.placement(this.view, size, tile, dpr);
      const canvas = layer.canvas;
      canvas.style.width = `${tile.decoded.width}px`;
      canvas.style.height = `${tile.decoded.height}px`;
      canvas.style.transform = `translate(${x}px, ${y}px) scale(${s})`;
      canvas.style.imageRendering = s * dpr > 1 ? "pixelated" : "auto";
    }
    this.cell.dataset.zoom = String(this.view.scale);
    this.dispatchEvent(new CustomEvent("layout", { detail: this.view }));
  }

  resized() {
    if (!this.image?.info || !this.view) return;
    if (this.view.fitted) {
      this.view = this.fitView();
      // Against the fitted level asked for (baseReduce), not the tile shown: that may be the coarse
      // first picture while the fitted one is on its way, and asking again would cancel it.
      if (this.fixedReduce == null && this.neededReduce(this.view.scale) !== this.baseReduce) {
        this.layout();
        this.requestBase();  // a new fitted resolution; the detail follows when it is complete
        return;
      }
    }
    this.layout();
    this.requestDetail();
  }

  // --- gestures ------------------------------------------------------------------------------

  /** Zoom by ``factor`` keeping the image point under (x, y) (CSS pixels in the cell) in place. */
  zoom(factor, x, y) {
    if (!this.view) return;
    const size = this.size();
    const fit = this.fitView().scale;
    const top = MAX_DEVICE_PIXELS_PER_SAMPLE / this.dpr();
    const scale = Math.min(Math.max(this.view.scale * factor, fit / 4), Math.max(top, fit));
    if (scale !== this.view.scale) performance.mark("zoom-gesture");
    this.setView(geometry.zoomedView(this.view, size, scale, x ?? size.width / 2, y ?? size.height / 2));
  }

  pan(dx, dy) {
    if (!this.view) return;
    this.setView({ ...this.view, cx: this.view.cx - dx / this.view.scale, cy: this.view.cy - dy / this.view.scale, fitted: false });
  }

  fit() {
    if (this.image?.info) this.setView(this.fitView());
  }

  /** One image sample per device pixel, centred where the view is. */
  actualSize() {
    if (this.view) this.setView({ ...this.view, scale: 1 / this.dpr(), fitted: false });
  }

  setView(view) {
    this.view = view;
    this.layout();
    if (!this.refine) {  // one new request per animation frame, whatever the rate of wheel events
      this.refine = requestAnimationFrame(() => {
        this.refine = null;
        this.requestDetail();
      });
    }
    this.dispatchEvent(new CustomEvent("view", { detail: view }));
  }

  /** The user's window/level ({center, width}), or null for the object's own. */
  setWindow(user) {
    this.user = user;
    this.repaint();
    this.base.canvas.dataset.window = JSON.stringify(user);
  }

  /** The window in use: the user's, the object's, or the image's own range. */
  currentWindow() {
    const greyscale = this.image?.greyscale;
    if (!greyscale) return null;
    return chooseWindow(greyscale, this.user, this.image.autoWindow);
  }

  setTool(tool) {
    this.tool = tool;
    this.cell.dataset.tool = tool;
  }

  // --- painting ------------------------------------------------------------------------------

  painted(layer, picture) {
    const image = this.image;
    // An image without a window of its own is shown over its range, taken from the whole image: from the
    // first picture until the fitted one is complete, then kept, so zooming and resizing never shift it.
    const fitted = picture.final && picture.reduce === this.baseReduce;
    if (layer === this.base && image.greyscale && (!image.autoWindow || (fitted && !image.autoWindowKept))) {
      image.autoWindow = autoWindow(layer.tile.decoded, image.greyscale);
      image.autoWindowKept = fitted;
    }
    this.paintLayer(layer);
    if (!performance.getEntriesByName("first-image-painted").length) performance.mark("first-image-painted");
    layer.canvas.hidden = false;
    this.message.hidden = true;
    this.layout();
    Object.assign(this.cell.dataset, { bodyBytes: picture.body_bytes, receivedBytes: picture.received_bytes,
                                       newBytes: picture.new_bytes });
    const complete = layer === this.base && picture.final && picture.reduce === this.baseReduce;
    if (layer === this.base) {
      this.base.canvas.dataset.reduce = String(picture.reduce);
      if (picture.from_cache) this.base.canvas.dataset.preview = "cache";  // a prefetched neighbour, at once
      if (complete) {
        this.setState("painted");
        this.decoder.warm();
      }
      else if (this.state !== "painted") this.setState("refining");
    } else {
      layer.canvas.dataset.reduce = String(picture.reduce);
      layer.canvas.dataset.region = picture.region.join(",");
      layer.canvas.dataset.final = String(picture.final);
      if (picture.final) performance.mark("detail-refined");
    }
    this.dispatchEvent(new CustomEvent("picture", { detail: { layer: layer === this.base ? "base" : "detail", picture, complete,
      tile: layer.tile, window: this.currentWindow() } }));
  }

  paintLayer(layer, lookup) {
    const { decoded } = layer.tile;
    const image = this.image;
    if (image.colour) {
      paintJp2(layer.canvas, decoded, image.colour);
    } else if (!image.greyscale) {
      paintColour(layer.canvas, decoded, image.photometric);
    } else {
      if (decoded.components !== 1) throw new Error(`a grey-scale image decoded to ${decoded.components} components`);
      paintGrey(layer.canvas, decoded, lookup || greyLookup(decoded, image.greyscale, this.currentWindow()));
    }
    paintOverlays(layer.canvas, image.overlays, layer.tile);
  }

  /** Repaint kept samples with the current window: one lookup table for both layers. */
  repaint() {
    const tiles = [this.base, this.detail].filter((layer) => layer.tile && !layer.canvas.hidden);
    if (!tiles.length || !this.image.greyscale) return;
    const start = performance.now();
    const lookup = greyLookup(tiles[0].tile.decoded, this.image.greyscale, this.currentWindow());
    for (const layer of tiles) this.paintLayer(layer, lookup);
    performance.measure("window-repaint", { start, detail: tiles.map((layer) => layer.tile.decoded.width * layer.tile.decoded.height) });
    this.dispatchEvent(new CustomEvent("window", { detail: this.currentWindow() }));
  }

  setState(state) {
    this.state = state;
    this.base.canvas.dataset.state = state;
    this.cell.dataset.state = state;
  }

  fail(error) {
    const text = String((error && error.message) || error);
    // Errors from the worker come with their kind and a message of their own (pyjpip.errors); others
    // (the decoder's) are shown by their last line.
    const reason = error?.kind ? text : text.split("\n").filter(Boolean).pop();
    this.failureReason.textContent = `This image could not be loaded: ${reason}`;
    this.failure.hidden = false;
    this.failure.dataset.kind = error?.kind || "damaged";
    this.message.hidden = true;
    this.setState("error");
    if (error?.detail) console.debug(error.detail);
    this.dispatchEvent(new CustomEvent("failure", { detail: text }));
  }

  close() {
    this.loading = null;
    this.image = null;
    this.listening.abort();
    this.resizing.disconnect();
    this.base.clear();
    this.detail.clear();
  }
}
