// A pool of decode workers (OpenJPEG WebAssembly): the page never decodes on its own thread, and
// viewports decode side by side. Each job goes to the worker with the fewest jobs waiting.
const WORKER_URL = new URL("./decode-worker.js", import.meta.url);

class DecodeWorker {
  constructor() {
    this.worker = new Worker(WORKER_URL);
    this.pending = new Map();
    this.worker.onmessage = ({ data }) => {
      const request = this.pending.get(data.id);
      if (!request) return;
      this.pending.delete(data.id);
      if (data.error) request.reject(new Error(data.error));
      else request.resolve(data);
    };
    this.worker.onerror = (event) => {
      const error = new Error(`decoder worker failed: ${event.message || "could not start"}`);
      for (const request of this.pending.values()) request.reject(error);
      this.pending.clear();
    };
  }
}

export class Decoder {
  /** size: how many workers (default: one per core but one, at least one, at most four). */
  constructor(size = Math.max(1, Math.min(4, (navigator.hardwareConcurrency || 2) - 1))) {
    this.size = size;
    this.workers = [];
    this.nextId = 1;
  }

  /**
   * Decode at 1/2^reduce of full size, only ``region`` ([x0, y0, x1, y1] on the reference grid) if
   * given. The codestream is copied, so the caller keeps its bytes.
   */
  decode(codestream, { reduce = 0, layers = 0, region = null } = {}) {
    if (this.workers.length < this.size && this.workers.every((w) => w.pending.size > 0)) {
      this.workers.push(new DecodeWorker());  // started on demand: a page showing one image needs one
    }
    const target = this.workers.reduce((best, w) => (w.pending.size < best.pending.size ? w : best));
    const id = this.nextId++;
    const copy = codestream.slice();
    return new Promise((resolve, reject) => {
      target.pending.set(id, { resolve, reject });
      target.worker.postMessage({ id, codestream: copy, reduce, layers, region }, [copy.buffer]);
    });
  }
}
