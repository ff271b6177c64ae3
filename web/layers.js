// A viewport's layer: one canvas showing one JPIP window (a resolution and a region of it),
// fed by one request at a time, its newest picture decoded (in the decoder pool) and painted.
// Two of them make a viewport (web/viewport.js): the base, the whole image at the resolution that
// fits, and the detail, the visible region at the resolution the zoom needs.

/** One layer: a canvas showing a (reduce, region) window of the image, fed by one request at a time. */
export class Layer {
  constructor(viewport, className) {
    this.viewport = viewport;
    this.canvas = Object.assign(document.createElement("canvas"), { className, hidden: true });
    this.request = null;  // {reduce, region, stream (from PythonWorker.show)}
    this.tile = null;  // {reduce, region (at that resolution), decoded (its samples only), picture}
    this.pending = null;
    this.decoding = false;
    this.generation = 0;
    this.shown = -1;  // the generation of the picture on screen
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
          const detail = this === this.viewport.detail;
          const lowres = detail ? this.lowres(picture) : null;
          // The detail's first picture over the base's exact lower resolution shows the first quality layer
          // only: the cheapest decode (its code-blocks' first passes), and the lossless one comes next.
          const layers = lowres && !picture.final && this.shown !== generation ? 1 : 0;
          const decoded = await this.viewport.decoder.decode(picture.codestream,
            // Bands only for the detail: a zoom waits on it, while a first picture would wait on another
            // worker starting up (the pool starts the rest once the first image is shown). Its first-layer
            // picture is cheap and takes one worker: the lossless one, often there before it is done,
            // starts at once in the others.
            { reduce: picture.reduce, region: picture.grid_region, split: detail && layers !== 1, layers, lowres,
              // A complete base above full resolution keeps its coefficients: a detail starts from them.
              keep: !detail && picture.final && picture.reduce > 0,
              // A bare JP2 file's subsampled components (4:2:0 sYCC) on the first one's grid (jp2colour.js).
              upsample: !!this.viewport.image?.colour });
          performance.measure(`decode-${this.canvas.className}`, { start: started, detail: decoded.milliseconds });
          if (generation !== this.generation) continue;  // superseded while decoding
          const [x0, y0, x1, y1] = picture.region;
          if (decoded.width !== x1 - x0 || decoded.height !== y1 - y0) {
            throw new Error(`decoded ${decoded.width}×${decoded.height}, expected the window ${x1 - x0}×${y1 - y0}`);
          }
          this.tile = { reduce: picture.reduce, region: picture.region, decoded, picture, coefficients: null };
          if (decoded.coefficients && picture.grid_region) {
            const scale = 2 ** picture.reduce;
            this.tile.coefficients = { data: new Int32Array(decoded.coefficients), reduce: picture.reduce,
              x0: Math.ceil(picture.grid_region[0] / scale), y0: Math.ceil(picture.grid_region[1] / scale),
              width: decoded.width, height: decoded.height, image: this.viewport.image };
          }
          this.shown = generation;
          this.viewport.painted(this, picture);
          if (detail) {
            performance.mark("detail-painted", { detail: { reduce: picture.reduce, layers: layers || picture.layers,
              final: picture.final, lowres: decoded.lowres } });
          }
        } catch (error) {
          if (generation === this.generation) this.viewport.fail(error);
        }
      }
    } finally {
      this.decoding = false;
    }
  }

  /**
   * The base's kept coefficients for a detail picture: a complete lower resolution of the same image
   * (its final picture), so decoding starts from it and only the finer levels' code-blocks are decoded
   * (a 2x zoom of a 2048² CT: ~30% of the lossless decode, ~80% of a first layer's).
   */
  lowres(picture) {
    const kept = this.viewport.base.tile?.coefficients;
    return kept && kept.image === this.viewport.image && kept.reduce > picture.reduce && picture.grid_region ? kept : null;
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
