// Promise-based front of the decode worker: the page never decodes on its own thread.
export class Decoder {
  constructor(workerURL = new URL("./decode-worker.js", import.meta.url)) {
    this.worker = new Worker(workerURL);
    this.pending = new Map();
    this.nextId = 1;
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

  /** Decode at 1/2^reduce of full size. The codestream is copied, so the caller keeps its bytes. */
  decode(codestream, { reduce = 0, layers = 0 } = {}) {
    const id = this.nextId++;
    const copy = codestream.slice();
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, codestream: copy, reduce, layers }, [copy.buffer]);
    });
  }
}
