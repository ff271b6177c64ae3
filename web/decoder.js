// A pool of decode workers (OpenJPEG WebAssembly): the page never decodes on its own thread,
// viewports decode side by side, and a large region is decoded in bands by several workers at
// once. Each job goes to the worker with the fewest jobs waiting.
const WORKER_URL = new URL("./decode-worker.js", import.meta.url);
const SAMPLES_PER_BAND = 1 << 19;  // below this, a second worker costs more than it saves
const LOWRES_MARGIN = 8;  // samples around a region's footprint in a lower resolution: the 5/3 synthesis reads 2

/**
 * The part of a lower resolution's coefficients ({data, reduce, x0, y0, width, height}, absolute
 * coordinates there) a region's synthesis reads, copied (it is transferred to a worker); null when
 * there is none. The worker decodes everything if the margin falls short.
 */
function lowresFor(lowres, region) {
  if (!lowres || !region) return null;
  const scale = 2 ** lowres.reduce;
  const x0 = Math.max(lowres.x0, Math.floor(region[0] / scale) - LOWRES_MARGIN);
  const y0 = Math.max(lowres.y0, Math.floor(region[1] / scale) - LOWRES_MARGIN);
  const x1 = Math.min(lowres.x0 + lowres.width, Math.ceil(region[2] / scale) + LOWRES_MARGIN);
  const y1 = Math.min(lowres.y0 + lowres.height, Math.ceil(region[3] / scale) + LOWRES_MARGIN);
  if (x1 <= x0 || y1 <= y0) return null;
  const data = new Int32Array((x1 - x0) * (y1 - y0));
  for (let y = y0; y < y1; y++) {
    const from = (y - lowres.y0) * lowres.width + (x0 - lowres.x0);
    data.set(lowres.data.subarray(from, from + x1 - x0), (y - y0) * (x1 - x0));
  }
  return { data, reduce: lowres.reduce, x0, y0, width: x1 - x0, height: y1 - y0 };
}

class DecodeWorker {
  constructor() {
    this.worker = new Worker(WORKER_URL);
    this.pending = new Map();
    this.worker.onmessage = ({ data }) => {
      const request = this.pending.get(data.id);
      if (!request) return;
      this.pending.delete(data.id);
      if (data.error) request.reject(Object.assign(new Error(data.error), { kind: "damaged" }));
      else request.resolve(data);
    };
    this.worker.onerror = (event) => {
      const error = Object.assign(new Error(`decoder worker failed: ${event.message || "could not start"}`), { kind: "internal" });
      for (const request of this.pending.values()) request.reject(error);
      this.pending.clear();
    };
  }
}

export class Decoder {
  /** size: how many workers (default: one per core, two at least, four at most). */
  constructor(size = Math.max(2, Math.min(4, navigator.hardwareConcurrency || 2))) {
    this.size = size;
    // One worker starts now: its WebAssembly compiles while Python starts, so the first picture is
    // not kept waiting for it. The others start once the first image is shown (warm) or on demand.
    this.workers = [new DecodeWorker()];
    this.nextId = 1;
  }

  /**
   * Decode at 1/2^reduce of full size, only ``region`` ([x0, y0, x1, y1] on the reference grid) if
   * given. A large region is cut into horizontal bands decoded side by side in several workers
   * (area decoding gives each band's samples exactly; ``split`` false prevents it, where another
   * worker would first have to start). The codestream is copied, so the caller keeps its bytes.
   * keep: also return `coefficients` (not split; reversible grey-scale only). lowres: the coefficients
   * kept from a lower resolution of the same codestream's image, complete there ({data, reduce, x0,
   * y0, width, height}): only what the finer levels add is decoded (`lowres: true` when so).
   * upsample: subsampled components come on the first one's grid (decode-worker.js).
   */
  async decode(codestream, { reduce = 0, layers = 0, region = null, split = true, keep = false, lowres = null,
                             upsample = false } = {}) {
    const scale = 2 ** reduce;
    const bands = split && region ? Math.min(this.size, Math.floor(
      ((region[2] - region[0]) / scale) * ((region[3] - region[1]) / scale) / SAMPLES_PER_BAND)) : 1;
    if (bands < 2) return this.job(codestream, { reduce, layers, region, keep, lowres: lowresFor(lowres, region), upsample });
    const first = Math.ceil(region[1] / scale), last = Math.ceil(region[3] / scale);
    const edges = Array.from({ length: bands + 1 }, (_, i) => (first + Math.round(((last - first) * i) / bands)) * scale);
    edges[0] = region[1];
    edges[bands] = region[3];
    const parts = await Promise.all(edges.slice(0, -1).map((top, i) =>
      this.job(codestream, { reduce, layers, region: [region[0], top, region[2], edges[i + 1]],
                             lowres: lowresFor(lowres, [region[0], top, region[2], edges[i + 1]]), upsample })));
    const pixels = new Uint8Array(parts.reduce((total, part) => total + part.pixels.byteLength, 0));
    let offset = 0;
    for (const part of parts) {  // rows follow rows: the bands' samples simply follow each other
      pixels.set(new Uint8Array(part.pixels), offset);
      offset += part.pixels.byteLength;
    }
    return { ...parts[0], height: parts.reduce((total, part) => total + part.height, 0), pixels: pixels.buffer,
             milliseconds: Math.max(...parts.map((part) => part.milliseconds)), bands,
             lowres: parts.every((part) => part.lowres), coefficients: null };
  }

  /** Start every worker of the pool now (while nothing waits), not at the first split decode. */
  warm() {
    while (this.workers.length < this.size) this.workers.push(new DecodeWorker());
  }

  job(codestream, { reduce, layers, region, keep = false, lowres = null, upsample = false }) {
    if (this.workers.length < this.size && this.workers.every((w) => w.pending.size > 0)) {
      this.workers.push(new DecodeWorker());  // on demand: viewports decoding side by side
    }
    const target = this.workers.reduce((best, w) => (w.pending.size < best.pending.size ? w : best));
    const id = this.nextId++;
    const copy = codestream.slice();
    return new Promise((resolve, reject) => {
      target.pending.set(id, { resolve, reject });
      target.worker.postMessage({ id, codestream: copy, reduce, layers, region, keep, lowres, upsample },
                                lowres ? [copy.buffer, lowres.data.buffer] : [copy.buffer]);
    });
  }
}
