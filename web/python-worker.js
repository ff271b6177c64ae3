// Module Web Worker running Python (Pyodide): the JPIP client and the rebuild live here, so the
// page never waits on Python. Messages in: {id, type: "jpip", url, viewport: [w, h]} or
// {id, type: "study", base, study} (the layout of a study from its DICOMweb metadata).
// Messages out: {id, type: "ready" | "view" | "error", ...}; "view" carries a codestream to decode.
import { startPython } from "./python.js";

const python = startPython();
const cancelled = new Set();

self.onmessage = async ({ data }) => {
  const { id } = data;
  try {
    if (data.type === "cancel") {
      cancelled.add(data.id);
      return;
    }
    const { browser } = await python;
    if (data.type === "study") {
      const layout = await browser.open_study(data.base, data.study);
      self.postMessage({ id, type: "study", layout });
    } else if (data.type === "jpip") {
      await browser.stream_jpip(data.url, data.viewport[0], data.viewport[1], (view) => {
        if (cancelled.has(id)) return;
        const codestream = view.codestream;
        self.postMessage({ id, type: "view", ...view }, [codestream.buffer]);
      }, () => cancelled.has(id));
    }
  } catch (error) {
    if (!cancelled.has(id)) self.postMessage({ id, type: "error", message: String(error && error.message || error) });
  }
};

python.then(() => self.postMessage({ type: "ready" }), (error) =>
  self.postMessage({ type: "error", message: `Python could not start: ${error.message || error}` }));
