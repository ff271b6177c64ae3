// The page's side of the Python worker (python-worker.js): requests by id, pictures routed to
// whoever asked, cancellation. Nothing here knows JPIP; the worker's Python does.
import { loadConfig } from "./viewer-config.js";
import { currentToken, onToken } from "./session.js";

/** The worker's report as an Error: message, kind (pyjpip.errors), and Python's traceback as detail. */
function workerError({ message, kind = "internal", detail = "" }) {
  return Object.assign(new Error(message), { kind, detail });
}

export class PythonWorker extends EventTarget {
  /**
   * dicom: the page will read DICOM attributes, so pydicom is installed while Python starts.
   * packages: "bundle" (precompiled) or "wheels" (the plain wheels), as python.js startPython.
   */
  constructor({ dicom = false, packages = "bundle", config = loadConfig() } = {}) {
    super();
    const url = new URL("./python-worker.js", import.meta.url);
    if (dicom) url.searchParams.set("dicom", "1");
    if (packages !== "bundle") url.searchParams.set("packages", packages);
    this.worker = new Worker(url, { type: "module" });
    this.calls = new Map();
    this.nextId = 1;
    this.worker.onmessage = ({ data }) => {
      if (data.type === "ready") {
        if (!performance.getEntriesByName("python-ready").length) performance.mark("python-ready");
        this.dispatchEvent(new Event("ready"));
        return;
      }
      const call = this.calls.get(data.id);
      if (data.id === undefined && data.type === "error") {
        this.dispatchEvent(new CustomEvent("failure", { detail: data.message }));
        for (const pending of this.calls.values()) pending.reject(workerError(data));
        this.calls.clear();
        return;
      }
      if (!call) return;
      if (data.type === "picture") {
        call.onPicture?.(data);
        return;
      }
      this.calls.delete(data.id);
      if (data.type === "error") call.reject(workerError(data));
      else call.resolve(data);
    };
    // The worker fetches nothing before it has the viewer's settings and the current token (session.js).
    Promise.resolve(config).then((settings) => {
      this.worker.postMessage({ type: "configure", config: settings, token: currentToken() });
      this.stopWatching = onToken((token) => this.worker.postMessage({ type: "token", token }));
    });
    this.worker.onerror = (event) => {
      const message = `Python worker failed: ${event.message || "could not start"}`;
      this.dispatchEvent(new CustomEvent("failure", { detail: message }));
      for (const call of this.calls.values()) call.reject(new Error(message));
      this.calls.clear();
    };
  }

  _send(message, onPicture) {
    const id = this.nextId++;
    const done = new Promise((resolve, reject) => this.calls.set(id, { resolve, reject, onPicture }));
    this.worker.postMessage({ id, ...message });
    return { id, done };
  }

  /** The layout of a study (DICOMweb metadata → hanging, stacks, corner text); ``root`` is the
   *  DICOMweb root URL its metadata is read from (WADO-RS {root}/studies/{study}/metadata). */
  study(root, study) {
    return this._send({ type: "study", root, study }).done.then((reply) => reply.layout);
  }

  /** The layout of DICOM objects by URL, hollow (streamed by JPIP) or ordinary (fetched whole). */
  objects(urls) {
    return this._send({ type: "objects", urls }).done.then((reply) => reply.layout);
  }

  /**
   * An image's header facts: width, height, levels, frames per level, components, layers.
   * firstSize [w, h]: the same request brings the whole image at the largest resolution fitting
   * that size into the worker's cache (a first picture, a round trip sooner).
   */
  header(url, firstSize = null) {
    return this._send({ type: "header", url, firstSize }).done.then((reply) => reply.info);
  }

  /**
   * Stream a window; ``onPicture`` gets decodable codestreams as they improve. Returns {done, cancel}:
   * ``done`` settles when the window is complete (or rejects with the reason it cannot be).
   */
  show(url, reduce, region, onPicture, { preview = true } = {}) {
    const { id, done } = this._send({ type: "show", url, reduce, region, prefetch: !onPicture, preview }, onPicture);
    return {
      id, done,
      cancel: () => {
        if (!this.calls.has(id)) return;
        this.calls.get(id).resolve({ cancelled: true });
        this.calls.delete(id);
        this.worker.postMessage({ type: "cancel", id });
      },
    };
  }
}
