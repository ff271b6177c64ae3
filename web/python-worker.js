// Module Web Worker running Python (Pyodide): the JPIP clients, the rebuilds and the layout live here,
// so the page never waits on Python. One JPIP client per image is kept (pyjpip.jpip.viewing), so
// zooming, panning and scrolling back never ask for bytes already held.
//
// In:  {id, type: "study", root, study}           the layout of a study from its DICOMweb metadata (JSON);
//                                                 root: the DICOMweb root URL (this site's /dicomweb, a PACS's)
//      {id, type: "objects", urls}                the layout of DICOM objects (hollow or ordinary)
//      {id, type: "header", url, firstSize}       an image's size, levels and components; firstSize
//                                                 [w, h]: its largest resolution fitting that comes too
//      {id, type: "show", url, reduce, region, prefetch}  a window, streamed; region [x0, y0, x1, y1]
//                                                 or null; prefetch: into the cache only; preview:
//                                                 false: no first picture from what is cached
//      {type: "cancel", id}                       stop a "show" (a newer view replaced it)
// Out: {type: "ready"}, {id, type: "study" | "header" | "done", ...},
//      {id, type: "picture", codestream, reduce, frame, region, layers, final, ...}  (decodable),
//      {id, type: "error", kind, message, detail}: kind from pyjpip.errors ("network", "damaged",
//      "not-hollow", "refused", "too-large", "invalid", "unauthenticated" (HTTP 401: sign in),
//      "forbidden", "internal"); "superseded" is never sent
//      {type: "configure", config, token}         the viewer's settings (viewer-config.js) and access
//                                                 token, sent first: no fetch is made before it comes
//      {type: "token", token}                     a new (refreshed) access token, or null
import { startPython } from "./python.js";
import { FetchPolicy } from "./fetch-policy.js";

// ?dicom=1 (a page that will read DICOM attributes): pydicom is fetched while Python starts;
// ?packages=wheels: the plain wheels instead of the precompiled bundle.
const options = new URLSearchParams(self.location.search);
const python = startPython({ dicom: options.get("dicom") === "1", packages: options.get("packages") || "bundle" });
const cancelled = new Set();
let policy = null;  // every fetch of this worker, JavaScript's and Python's, under the page's settings
let configure;
const configured = new Promise((resolve) => { configure = resolve; });
// Python's transport (pyjpip.transport.pyodide_fetch) gets the same settings before its first request.
const ready = Promise.all([python, configured]).then(([started]) => {
  const fetching = started.pyodide.pyimport("pyjpip.transport.pyodide_fetch");
  fetching.configure(policy.origin, [...policy.others], policy.token, [...policy.tokenOrigins]);
  return { ...started, fetching };
});
ready.catch(() => {});  // reported where awaited

/** An error of this worker's own (not Python's), with its kind as pyjpip.errors names them. */
function failure(kind, message) {
  return Object.assign(new Error(message), { kind });
}

async function fetchBytes(url) {
  await configured;
  let response;
  try {
    response = await policy.fetch(url);
  } catch (error) {
    if (error.kind === "refused") throw error;
    throw failure("network", `GET ${url} failed: ${error.message || error}`);
  }
  if (response.status === 401) throw failure("unauthenticated", `${new URL(url).host} asks who you are: sign in to see this study`);
  if (response.status === 403) throw failure("forbidden", `${new URL(url).host} refused: this account may not see this study (HTTP 403)`);
  if (!response.ok) throw failure("network", `GET ${url}: HTTP ${response.status} ${response.statusText}`.trim());
  return new Uint8Array(await response.arrayBuffer());
}

/** What went wrong, by kind: Python's errors say it themselves (pyjpip.browser.error_report). */
function report(error, browser) {
  if (error?.constructor?.name === "PythonError" && browser) {
    const { kind, message, detail } = browser.error_report();
    return { kind, message, detail };
  }
  return { kind: error?.kind || "internal", message: String(error?.message || error), detail: String(error?.stack || "") };
}

self.onmessage = async ({ data }) => {
  const { id } = data;
  if (data.type === "configure") {
    policy = new FetchPolicy(data.config, self.location.origin);
    policy.setToken(data.token);
    configure();
    return;
  }
  if (data.type === "token") {
    policy?.setToken(data.token);
    ready.then(({ fetching }) => fetching.set_token(data.token || undefined), () => {});
    return;
  }
  if (data.type === "cancel") {
    cancelled.add(id);
    return;
  }
  const stop = () => cancelled.has(id);
  let browser = null;
  try {
    // A study's metadata (WADO-RS, PS3.18 10.4) is fetched at once, while Python may still be starting.
    const metadataUrl = data.type === "study"
      ? `${data.root.replace(/\/$/, "")}/studies/${encodeURIComponent(data.study)}/metadata` : null;
    const metadata = metadataUrl ? fetchBytes(metadataUrl) : null;
    metadata?.catch(() => {});  // reported below, once awaited
    const started = await ready;
    browser = started.browser;
    const { installDicom } = started;
    if (data.type === "objects") await installDicom();  // pydicom, on first need (a study's JSON needs none)
    if (data.type === "study") {
      self.postMessage({ id, type: "study", layout: browser.study_from_metadata(await metadata, metadataUrl) });
    } else if (data.type === "objects") {
      self.postMessage({ id, type: "study", layout: await browser.open_objects(data.urls) });
    } else if (data.type === "header") {
      self.postMessage({ id, type: "header", info: await browser.image_header(data.url, stop, data.firstSize ?? undefined) });
    } else if (data.type === "show") {
      const post = data.prefetch ? undefined : (picture) => {
        if (!stop()) self.postMessage({ id, type: "picture", ...picture }, [picture.codestream.buffer]);
      };
      // undefined, not null: Pyodide turns undefined into None (null would arrive as JsNull)
      const info = await browser.show_window(data.url, data.reduce, data.region ?? undefined, post ?? undefined, stop,
                                             data.preview !== false);
      if (!stop()) self.postMessage({ id, type: "done", info });
    }
  } catch (error) {
    const { kind, message, detail } = report(error, browser);
    if (!stop() && kind !== "superseded") self.postMessage({ id, type: "error", kind, message, detail });
  } finally {
    cancelled.delete(id);
  }
};

python.then(() => self.postMessage({ type: "ready" }), (error) =>
  self.postMessage({ type: "error", kind: "internal", message: `Python could not start: ${error.message || error}` }));
