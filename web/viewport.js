// One viewport: an image streamed by JPIP at the resolution and region on screen.
//
// Two layers, as kdu_show and tiled viewers do: the base is the whole image at the resolution that
// fits the viewport; the detail is the visible region at the resolution the current zoom needs.
// A gesture moves both at once (a CSS transform: the scaled lower resolution shows immediately);
// the detail is then asked for, the older request cancelled, and repainted as its bytes arrive.
// Decoded samples are kept, so a new window/level is only a new lookup table.
import { autoWindow, chooseWindow, greyLookup, paintColour, paintGrey, paintOverlays } from "./paint.js";

const ZOOM_STEP = 2 ** 0.5;
const MAX_DEVICE_PIXELS_PER_SAMPLE = 32;

/** One layer: a canvas showing a (reduce, region) window of the image, fed by one request at a time. */
class Layer {
  constructor(viewport, className) {
    this.viewport = viewport;
    this.canvas = Object.assign(document.createElement("canvas"), { className, hidden: true });
    this.request = null;  // {reduce, region, stream (from PythonWorker.show)}
    this.tile = null;  // {reduce, region (at that resolution), decoded (its samples only), picture}
    this.pending = null;
    this.decoding = false;
    this.generation = 0;
  }

  covers(reduce, region) {
    const r = this.request;
    return r && r.reduce === reduce && r.region[0] <= region[0] && r.region[1] <= region[1] &&
      r.region[2] >= region[2] && r.region[3] >= region[3];
  }

  /**
   * Ask for a window and paint its pictures. follow: the previous request of this layer is complete
   * and its pictures are still worth painting until this one's arrive (a coarse first picture).
   */
  ask(url, reduce, region, { preview = true, follow = false } = {}) {
    if (!follow) this.cancel();
    const generation = follow ? this.generation : ++this.generation;
    const stream = this.viewport.python.show(url, reduce, region, (picture) => {
      if (generation !== this.generation) return;
      this.pending = { picture, generation };  // only the newest waits: older ones are dropped unseen
      if (!this.decoding) this.decodeLoop();
    }, { preview });
    this.request = { reduce, region, stream, generation };
    return stream.done.then((reply) => reply, (error) => {
      if (generation === this.generation) throw error;
      return { cancelled: true };
    });
  }

  /** Decode and paint the newest picture, one at a time, until none is waiting. */
  async decodeLoop() {
    this.decoding = true;
    try {
      while (this.pending) {
        const { picture, generation } = this.pending;
        this.pending = null;
        if (generation !== this.generation) continue;
        try {
          // Only the window's samples are decoded (the region on the reference grid).
          const started = performance.now();
          const decoded = await this.viewport.decoder.decode(picture.codestream,
            // Bands only for the detail: a zoom waits on it, while a first picture would wait on another
            // worker starting up (the pool starts the rest once the first image is shown).
            { reduce: picture.reduce, region: picture.grid_region,
              split: this === this.viewport.detail });
          performance.measure(`decode-${this.canvas.className}`, { start: started, detail: decoded.milliseconds });
          if (generation !== this.generation) continue;  // superseded while decoding
          const [x0, y0, x1, y1] = picture.region;
          if (decoded.width !== x1 - x0 || decoded.height !== y1 - y0) {
            throw new Error(`decoded ${decoded.width}×${decoded.height}, expected the window ${x1 - x0}×${y1 - y0}`);
          }
          this.tile = { reduce: picture.reduce, region: picture.region, decoded, picture };
          this.viewport.painted(this, picture);
        } catch (error) {
          if (generation === this.generation) this.viewport.fail(error);
        }
      }
    } finally {
      this.decoding = false;
    }
  }

  cancel() {
    this.generation++;
    this.request?.stream.cancel();
    this.request = null;
    this.pending = null;
  }

  clear() {
    this.cancel();
    this.tile = null;
    this.canvas.hidden = true;
  }
}

export class Viewport extends EventTarget {
  /**
   * cell: the element to fill. python: a PythonWorker. decoder: a decoder pool.
   * tool: what a plain left drag does, "window" (window/level) or "pan".
   */
  constructor(cell, { python, decoder, tool = "window" }) {
    super();
    this.cell = cell;
    this.python = python;
    this.decoder = decoder;
    this.tool = tool;
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
    this.listen(this.listening.signal);
    this.resizing = new ResizeObserver(() => this.resized());
    this.resizing.observe(cell);
  }

  // --- what is shown -------------------------------------------------------------------------

  /**
   * Show an image: url (a JPIP target URL), greyscale (pyjpip's GreyscalePipeline as an object, or
   * null for colour), photometric. keepView: keep zoom and pan (scrolling a stack of same-size images).
   */
  async load(url, { greyscale = null, photometric = "MONOCHROME2", overlays = null, keepView = false } = {}) {
    const token = (this.loading = {});
    const previous = this.image;
    this.image = { url, greyscale, photometric, info: null, autoWindow: null,
                   overlays: (overlays || []).map((plane) => ({ ...plane, bits: Uint8Array.from(plane.data) })) };
    this.detail.cancel();
    this.base.cancel();
    this.failure.hidden = true;
    delete this.base.canvas.dataset.preview;
    this.setState("loading");
    try {
      // The header's request also brings the first picture's resolution (see requestBase).
      const info = await this.python.header(url, this.firstSize());
      if (token !== this.loading) return;  // another image, or closed
      this.image.info = info;
      const sameSize = previous?.info && previous.info.width === info.width && previous.info.height === info.height;
      if (!keepView || !sameSize || !this.view) this.view = this.fitView();
      this.cell.dataset.levels = String(info.levels);
      await this.requestBase();
    } catch (error) {
      if (token === this.loading) this.fail(error);
    }
  }

  retry() {
    if (this.image) this.load(this.image.url, { ...this.image, keepView: true });
  }

  async requestBase() {
    const { info, url } = this.image;
    const reduce = this.baseReduce = this.neededReduce(this.fitView().scale);
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
    const reduce = this.neededReduce(this.view.scale);
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

  fitView() {
    const { width, height } = this.size();
    const { info } = this.image;
    return { scale: Math.min(width / info.width, height / info.height), cx: info.width / 2, cy: info.height / 2, fitted: true };
  }

  /** A quarter of the viewport in device pixels: the first, coarse picture fits in it. */
  firstSize() {
    const { width, height } = this.size();
    const dpr = window.devicePixelRatio || 1;
    return [Math.max(1, Math.floor((width * dpr) / 4)), Math.max(1, Math.floor((height * dpr) / 4))];
  }

  /** The resolution JPIP's fsiz=size (round-down, ISO/IEC 15444-9 C.4.1) gives: the largest that fits. */
  firstReduce([width, height]) {
    const { frames, levels } = this.image.info;
    for (let reduce = 0; reduce < levels; reduce++) {
      if (frames[reduce][0] <= width && frames[reduce][1] <= height) return reduce;
    }
    return levels;
  }

  /** The most levels that can be discarded while keeping a sample per device pixel. */
  neededReduce(scale) {
    const perSample = scale * (window.devicePixelRatio || 1);
    let reduce = 0;
    while (reduce < this.image.info.levels && 2 ** -(reduce + 1) >= perSample) reduce++;
    return reduce;
  }

  /** The part of the frame at ``reduce`` that is on screen: [x0, y0, x1, y1], rounded outwards. */
  visibleRegion(reduce) {
    const { width, height } = this.size();
    const { scale, cx, cy } = this.view;
    const [fw, fh] = this.image.info.frames[reduce];
    const k = 2 ** reduce;
    const clamp = (v, top) => Math.min(Math.max(v, 0), top);
    const x0 = clamp(Math.floor((cx - width / 2 / scale) / k), fw - 1), y0 = clamp(Math.floor((cy - height / 2 / scale) / k), fh - 1);
    const x1 = clamp(Math.ceil((cx + width / 2 / scale) / k), fw), y1 = clamp(Math.ceil((cy + height / 2 / scale) / k), fh);
    return [x0, y0, Math.max(x1, x0 + 1), Math.max(y1, y0 + 1)];
  }

  /** Place the layers: CSS transforms from their windows to the view. */
  layout() {
    if (!this.view) return;
    const { width, height } = this.size();
    const { scale, cx, cy } = this.view;
    const dpr = window.devicePixelRatio || 1;
    for (const layer of [this.base, this.detail]) {
      const tile = layer.tile;
      if (!tile) continue;
      const k = 2 ** tile.reduce, s = scale * k;
      // Whole device pixels: at real size (one sample per device pixel) the screen shows samples unresampled.
      const x = Math.round(((tile.region[0] * k - cx) * scale + width / 2) * dpr) / dpr;
      const y = Math.round(((tile.region[1] * k - cy) * scale + height / 2) * dpr) / dpr;
      const canvas = layer.canvas;
      canvas.style.width = `${tile.decoded.width}px`;
      canvas.style.height = `${tile.decoded.height}px`;
      canvas.style.transform = `translate(${x}px, ${y}px) scale(${s})`;
      canvas.style.imageRendering = s * dpr > 1 ? "pixelated" : "auto";
    }
    this.cell.dataset.zoom = String(this.view.scale);
  }

  resized() {
    if (!this.image?.info || !this.view) return;
    if (this.view.fitted) {
      this.view = this.fitView();
      // Against the fitted level asked for (baseReduce), not the tile shown: that may be the coarse
      // first picture while the fitted one is on its way, and asking again would cancel it.
      if (this.neededReduce(this.view.scale) !== this.baseReduce) {
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
    const { width, height } = this.size();
    const fit = this.fitView().scale;
    const top = MAX_DEVICE_PIXELS_PER_SAMPLE / (window.devicePixelRatio || 1);
    const scale = Math.min(Math.max(this.view.scale * factor, fit / 4), Math.max(top, fit));
    if (scale !== this.view.scale) performance.mark("zoom-gesture");
    x ??= width / 2;
    y ??= height / 2;
    const ix = this.view.cx + (x - width / 2) / this.view.scale, iy = this.view.cy + (y - height / 2) / this.view.scale;
    this.setView({ scale, cx: ix - (x - width / 2) / scale, cy: iy - (y - height / 2) / scale, fitted: false });
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
    if (this.view) this.setView({ ...this.view, scale: 1 / (window.devicePixelRatio || 1), fitted: false });
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

  listen(signal) {
    const cell = this.cell;
    const on = (type, handler, options = {}) => cell.addEventListener(type, handler, { ...options, signal });
    // The wheel scrolls a stack (the owner listens for "scroll"); ctrl+wheel (and a touchpad pinch,
    // which browsers send as ctrl+wheel) zooms, as does the plain wheel where there is no stack.
    on("wheel", (event) => {
      event.preventDefault();
      if (event.ctrlKey || this.wheelZooms) {
        const box = cell.getBoundingClientRect();
        // A mouse notch (deltaY 100) zooms by √2, as +/- do; a pinch sends small deltas, so it is smooth.
        this.zoom(2 ** (-event.deltaY / 200), event.clientX - box.left, event.clientY - box.top);
      } else {
        this.dispatchEvent(new CustomEvent("scroll", { detail: Math.sign(event.deltaY) }));
      }
    }, { passive: false });
    const pointers = new Map();
    let gesture = null;
    on("contextmenu", (event) => event.preventDefault());
    on("pointerdown", (event) => {
      if (!this.view || event.target.closest("button")) return;
      cell.setPointerCapture(event.pointerId);
      pointers.set(event.pointerId, { x: event.clientX, y: event.clientY });
      if (pointers.size === 2) {  // pinch: two fingers zoom about their middle
        const [a, b] = [...pointers.values()];
        gesture = { kind: "pinch", distance: Math.hypot(a.x - b.x, a.y - b.y) };
        return;
      }
      const pan = event.button === 1 || event.shiftKey || (event.button === 0 && this.tool === "pan") || !this.image?.greyscale;
      const windowing = !pan && (event.button === 0 || event.button === 2);
      if (!pan && !windowing) return;
      const start = this.currentWindow() || { center: 0, width: 1 };
      gesture = { kind: pan ? "pan" : "window", x: event.clientX, y: event.clientY, window: { ...start } };
    });
    on("pointermove", (event) => {
      if (!pointers.has(event.pointerId) || !gesture) return;
      const last = pointers.get(event.pointerId);
      pointers.set(event.pointerId, { x: event.clientX, y: event.clientY });
      if (gesture.kind === "pinch") {
        const [a, b] = [...pointers.values()];
        const distance = Math.hypot(a.x - b.x, a.y - b.y), box = cell.getBoundingClientRect();
        if (gesture.distance > 0) this.zoom(distance / gesture.distance, (a.x + b.x) / 2 - box.left, (a.y + b.y) / 2 - box.top);
        gesture.distance = distance;
      } else if (gesture.kind === "pan") {
        this.pan(event.clientX - last.x, event.clientY - last.y);
      } else {  // right for a wider window, down for a higher level
        const step = Math.max(gesture.window.width, 1) / 256;
        this.user = { center: gesture.window.center + (event.clientY - gesture.y) * step,
                      width: Math.max(1, gesture.window.width + (event.clientX - gesture.x) * step) };
        this.repaint();
      }
    });
    const end = (event) => {
      if (!pointers.delete(event.pointerId)) return;
      if (gesture?.kind === "window") this.setWindow(this.user);
      gesture = null;
    };
    on("pointerup", end);
    on("pointercancel", end);
    on("keydown", (event) => {
      const box = this.size();
      const handled = {
        "+": () => this.zoom(ZOOM_STEP), "=": () => this.zoom(ZOOM_STEP), "-": () => this.zoom(1 / ZOOM_STEP),
        f: () => this.fit(), r: () => this.actualSize(),
        p: () => this.setTool("pan"), w: () => this.setTool("window"),
        ArrowLeft: () => event.shiftKey && this.pan(box.width / 8, 0), ArrowRight: () => event.shiftKey && this.pan(-box.width / 8, 0),
      }[event.key];
      if (handled && !event.ctrlKey && !event.metaKey) {
        handled();
        event.preventDefault();
      }
    });
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
    if (!image.greyscale) {
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
    // The last line of a Python traceback, without its exception's dotted name (pyjpip.errors.TransportError: …)
    const reason = text.split("\n").filter(Boolean).pop().replace(/^[\w.]+(Error|Exception): /, "");
    this.failureReason.textContent = `This image could not be loaded: ${reason}`;
    this.failure.hidden = false;
    this.message.hidden = true;
    this.setState("error");
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
