// <jpip-viewer src="JPIP target URL"> or <jpip-viewer study="Study Instance UID" server="base URL"
// [dicomweb="DICOMweb root URL, default {server}/dicomweb"] [series="Series Instance UID"]>
// (the study's first hung series, or the one named):
// the viewer as a custom element for any page of the site serving it (workers must be same-origin;
// other sites embed the page in an iframe, see embed.js). Everything lives in the element's shadow
// root; the module defines no global names but the element's tag.
//
// Property: token (an access token for this site, RFC 6750; session.js). Settings: viewer-config.js.
// Methods: setWindow(center, width) (null: the object's own), zoom(factor), fit(), scroll(step).
// Events (bubbling, composed): "jpip-picture" {layer, reduce, region, final, bytes}, "jpip-window",
// "jpip-error" {message}, "jpip-painted".
import { Decoder } from "./decoder.js";
import { PythonWorker } from "./python-client.js";
import { Stack, bareSeries } from "./stack.js";
import { loadConfig } from "./viewer-config.js";
import { FetchPolicy } from "./fetch-policy.js";
import { setToken } from "./session.js";

const STYLE = new URL("./viewer.css", import.meta.url).href;
let shared = null;  // one Python worker and one decoder pool for every element of a page

function engines() {
  if (!shared) {
    const config = loadConfig();
    shared = { python: new PythonWorker({ config }), decoder: new Decoder(),
               policy: config.then((settings) => new FetchPolicy(settings, location.origin)) };
  }
  return shared;
}

class JpipViewer extends HTMLElement {
  static get observedAttributes() { return ["src", "study", "series", "server", "dicomweb"]; }

  constructor() {
    super();
    const root = this.attachShadow({ mode: "open" });
    root.append(Object.assign(document.createElement("link"), { rel: "stylesheet", href: STYLE }),
                this.cellElement = Object.assign(document.createElement("div"), { className: "cell" }));
    this.stack = null;
  }

  connectedCallback() { this.open(); }
  disconnectedCallback() { this.opening = null; this.stack?.close(); this.stack = null; }
  attributeChangedCallback(name, before, after) {
    if (this.opening && before !== after) this.open();  // a change after the first open, not the parse
  }

  async open() {
    const token = (this.opening = {});
    this.stack?.close();
    this.stack = null;
    const { python, decoder } = engines();  // a study's DICOMweb metadata is read without pydicom
    try {
      const policy = await engines().policy;  // src, server, dicomweb: this site's, or configured ones
      let series;
      if (this.getAttribute("study")) {
        const server = policy.checkSource(this.getAttribute("server") || "/", "server").origin;
        const root = policy.checkSource(this.getAttribute("dicomweb") || `${server}/dicomweb`, "dicomweb").href;
        const layout = await python.study(root, this.getAttribute("study"));
        const wanted = this.getAttribute("series");
        series = wanted ? layout.series.find((s) => s.series === wanted) : layout.viewports[0];
        if (!series) throw new Error(`the study has no series ${wanted}`);
      } else if (this.getAttribute("src")) {
        series = bareSeries(policy.checkSource(this.getAttribute("src"), "src").href);
      } else {
        return;
      }
      if (token !== this.opening) return;
      this.stack = new Stack(this.cellElement, series, { python, decoder, tool: "pan", wheelZooms: true });
      const viewport = this.stack.viewport;
      viewport.addEventListener("picture", ({ detail: { layer, picture, complete } }) => {
        this.emit("jpip-picture", { layer, reduce: picture.reduce, region: picture.region, final: picture.final,
                                    bytes: picture.body_bytes });
        if (complete) this.emit("jpip-painted", { reduce: picture.reduce });
      });
      viewport.addEventListener("window", (event) => this.emit("jpip-window", event.detail));
      viewport.addEventListener("failure", (event) => this.emit("jpip-error", { message: event.detail }));
    } catch (error) {
      if (token !== this.opening) return;  // superseded: the newer open owns the cell
      this.emit("jpip-error", { message: String(error.message || error) });
      this.cellElement.textContent = `This image could not be opened: ${error.message || error}`;
    }
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true }));
  }

  /** The base canvas (for tests and hosts that read pixels). */
  get canvas() { return this.stack?.viewport.base.canvas ?? null; }

  setWindow(center, width) {
    this.stack?.viewport.setWindow(center == null ? null : { center: Number(center), width: Number(width) });
    this.stack?.showWindow();
  }

  /** The access token for this site's requests (every element of the page shares it); null: none. */
  set token(value) { setToken(value ?? null); }
  get token() { return null; }  // not readable back: a token is given, never handed out

  zoom(factor) { this.stack?.viewport.zoom(factor); }
  fit() { this.stack?.viewport.fit(); }
  scroll(step) { this.stack?.scroll(step); }
}

if (!customElements.get("jpip-viewer")) customElements.define("jpip-viewer", JpipViewer);
