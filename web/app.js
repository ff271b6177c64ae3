// The viewer page. URL parameters:
//   study=<Study Instance UID>  the study laid out from the server's DICOMweb metadata (attributes
//                               only), each viewport streamed by JPIP; dicomweb=<root URL> reads it
//                               from another DICOMweb root (a PACS's, or this site's proxy of one)
//                               instead of this site's /dicomweb;
//   jpip=<JPIP target URL>      a bare JPEG 2000 image, streamed, zoomed and panned by JPIP;
//   dicom=<url>[,<url>...]      DICOM objects, hollow (streamed by JPIP) or ordinary (JPEG 2000 frames
//                               fetched whole, then served to the same JPIP client inside the worker);
//   dicom=<url>&reduce=<levels>|auto  one ordinary object decoded whole at that resolution (the
//                               default page: the first demo image), packages=bundle|wheels;
//   layout=1x1|1x2|2x2          the grid, instead of the hanging protocol's.
// Embedded in an iframe, the page answers postMessage (embed.js) from its own origin and configured
// embedders. What the page may fetch (its own site, configured pixel and source origins), who may
// embed it and where it signs in come from the site's /viewer-config.json (viewer-config.js); every
// fetch passes fetch-policy.js (pyjpip.transport.pyodide_fetch for the worker's Python); a URL of
// another origin in ?dicom=, ?jpip=, ?dicomweb= is refused unless configured (--viewer-allow-origin).
// A token: #access_token=... (session.js), the embedder's {command: "token"}, or sign-in.js.
import { Decoder } from "./decoder.js";
import { roundDownReduce } from "./geometry.js";
import { paintColour, paintGreyscale } from "./paint.js";
import { PythonWorker } from "./python-client.js";
import { toolChooser } from "./annotations.js";
import { SpatialLinks } from "./linking.js";
import { Stack, bareSeries } from "./stack.js";
import { listen as listenToHost } from "./embed.js";
import { loadConfig } from "./viewer-config.js";
import { FetchPolicy } from "./fetch-policy.js";
import { currentToken, onToken, setToken } from "./session.js";
import { completeSignIn, scheduleRefresh, startSignIn } from "./sign-in.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const settings = loadConfig();  // what this viewer may fetch, who may embed it (pyjpip serve's options)
const policy = settings.then((config) => new FetchPolicy(config, location.origin));

function setState(state) {
  document.body.dataset.state = state;
  host.emit("state", { state });
}

function status(text) {
  $("status").textContent = text;
}

/**
 * The server asked who the user is (HTTP 401): the page says so and offers its sign-in (OpenID
 * Connect, when configured) or waits for its embedder's token; the layout stays, and whatever failed
 * for want of a token is asked again once one comes.
 */
function needSignIn(reason) {
  $("sign-in-reason").textContent = reason;
  $("sign-in").hidden = false;
  document.body.dataset.signIn = "needed";
  settings.then((config) => {
    const button = $("sign-in-button");
    button.hidden = !config.oidc;
    button.onclick = () => startSignIn(config.oidc).catch(showError);
    if (!config.oidc) $("sign-in-reason").textContent = `${reason} (the page embedding this viewer gives it its token)`;
  });
  host.emit("unauthenticated", { reason });
}

let reopen = null;  // what to do when a token comes after the study itself could not be opened

onToken((token) => {
  if (!token || $("sign-in").hidden) return;
  $("sign-in").hidden = true;
  delete document.body.dataset.signIn;
  // After the worker has the token (its listener runs after this one): failed viewports ask again.
  setTimeout(() => {
    if (reopen) {
      const again = reopen;
      reopen = null;
      $("message").hidden = true;
      again().catch(showError);
      return;
    }
    for (const stack of screen?.stacks || []) {
      if (!stack.viewport.failure.hidden && stack.viewport.failure.dataset.kind === "unauthenticated") stack.viewport.retry();
    }
  });
});

function showError(error) {
  if (error?.kind === "unauthenticated") {
    reopen = main;
    setState("sign-in");
    needSignIn(`Sign in to see this study: ${error.message}`);
    return;
  }
  const text = error && error.message ? error.message : String(error);
  $("message").textContent = text;
  $("message").hidden = false;
  status(`Error: ${text.split("\n").filter(Boolean).pop()}`);
  setState("error");
  console.error(error);
}

const SHORTCUTS = [
  ["Wheel, ↑ ↓", "previous / next image (or frame)"], ["Page Up / Page Down", "ten images back / on"],
  ["Ctrl + wheel, pinch", "zoom about the pointer (the wheel alone, on a single image)"],
  ["+ −", "zoom in / out"], ["f", "fit the image to the viewport"], ["r", "real size: one sample per screen pixel"],
  ["Drag", "window / level: right for a wider window, down for a higher level"],
  ["Shift + drag, middle drag", "pan"], ["p  w", "left drag pans / windows"],
  ["1", "the object's own window"], ["2 3 4 5", "CT presets: brain, bone, lung, abdomen"],
  ["c", "play or stop a multi-frame object as cine"],
  ["m a b e", "measure: length, angle, rectangle ROI, ellipse ROI (Escape: stop)"],
  ["Delete", "delete the selected measurement"],
  ["l", "link: series of one Frame of Reference scroll with the focused one"],
  ["Shift + click", "cross-reference: every viewport of that Frame of Reference goes to the point"], ["?", "this help"],
];

function toggleHelp() {
  const help = $("help");
  if (help.open) {
    help.close();
    return;
  }
  help.replaceChildren(Object.assign(document.createElement("h2"), { textContent: "Keyboard and mouse" }),
    ...SHORTCUTS.map(([keys, what]) => {
      const row = document.createElement("div");
      row.append(Object.assign(document.createElement("kbd"), { textContent: keys }), ` ${what}`);
      return row;
    }));
  help.show();
}

document.addEventListener("keydown", (event) => {
  if (event.key === "?") toggleHelp();
  else if (event.key === "Escape" && $("help").open) $("help").close();
});


const LAYOUTS = { "1x1": [1, 1], "1x2": [1, 2], "2x2": [2, 2] };

/** The grid of stacks: a layout, the series in each cell, the focused one; what the host drives. */
class Screen {
  constructor(python, decoder, series, { rows, columns, description = "", tool = "window", wheelZooms = false,
                                        fixedReduce = null }) {
    this.python = python;
    this.decoder = decoder;
    this.series = series;
    this.description = description;
    this.options = { tool, wheelZooms, fixedReduce };
    this.stacks = [];
    this.focused = null;
    this.assigned = [];
    this.arrange(rows, columns, series.slice(0, rows * columns));
    this.links = new SpatialLinks(this, $("link-toggle"));
    $("measure-tools").replaceChildren(toolChooser());  // the measuring tool is the page's, for every viewport
    $("measure-tools").hidden = false;
    // Linking is offered where two series share a Frame of Reference.
    $("link-toggle").hidden = !series.some((a) => series.some((b) => a !== b && a.frame_of_reference &&
                                                                 a.frame_of_reference === b.frame_of_reference));
  }

  arrange(rows, columns, assigned = this.assigned) {
    for (const stack of this.stacks) stack.close();
    const grid = $("viewport");
    grid.replaceChildren();
    grid.classList.add("grid");
    grid.style.gridTemplate = `repeat(${rows}, 1fr) / repeat(${columns}, 1fr)`;
    grid.dataset.layout = `${rows}x${columns}`;
    const cells = rows * columns;
    this.assigned = Array.from({ length: cells }, (_, i) => assigned[i] || this.series[i % this.series.length]);
    const painted = new Set();
    this.stacks = this.assigned.map((series, index) => {
      const cell = document.createElement("div");
      grid.append(cell);
      const stack = new Stack(cell, series, { python: this.python, decoder: this.decoder, ...this.options });
      stack.addEventListener("status", (event) => {
        if (stack === this.focused || !this.focused) status(`${this.description ? `${this.description} · ` : ""}${event.detail}`);
      });
      stack.viewport.addEventListener("picture", (event) => {
        const { layer, picture, complete } = event.detail;
        if (complete) {  // the fitted picture of this viewport is whole
          painted.add(index);
          if (painted.size === this.stacks.length) setState("painted");
        }
        host.emit("picture", { viewport: index, layer, reduce: picture.reduce, region: picture.region,
                                final: picture.final, bytes: picture.body_bytes });
      });
      stack.viewport.addEventListener("window", (event) => host.emit("window", { viewport: index, ...event.detail }));
      stack.addEventListener("failure", (event) => {
        host.emit("error", { viewport: index, message: event.detail });
        if (stack.viewport.failure.dataset.kind !== "unauthenticated") return;
        // A request sent with the token before the current one is refused after the new one came:
        // asked again once with the current token before the page asks the user to sign in.
        const token = currentToken();
        if (token && stack.retriedWith !== token) {
          stack.retriedWith = token;
          stack.viewport.retry();
          return;
        }
        needSignIn("Session expired: sign in again");
      });
      cell.addEventListener("focus", () => this.focus(stack));
      return stack;
    });
    this.focus(this.stacks[0]);
    this.stacks[0]?.cell.focus();
    this.links?.attach();  // new stacks: the spatial links listen to them
    document.querySelectorAll("#series-strip button").forEach((b) => b.classList.toggle("shown",
      this.assigned.some((s) => s.series === b.dataset.series)));
  }

  focus(stack) {
    this.focused = stack;
    for (const s of this.stacks) s.cell.classList.toggle("focused", s === stack);
    if (stack?.status) status(stack.status);
  }

  /** Put a series in the focused viewport (from the series strip). */
  place(series) {
    const index = Math.max(0, this.stacks.indexOf(this.focused));
    const assigned = [...this.assigned];
    assigned[index] = series;
    const [rows, columns] = $("viewport").dataset.layout.split("x").map(Number);
    this.arrange(rows, columns, assigned);
    this.focus(this.stacks[index]);
    this.stacks[index].cell.focus();
  }
}

/** The series strip: one button per series, with a thumbnail streamed at the coarsest resolution. */
function seriesStrip(screen, python, decoder) {
  const strip = $("series-strip");
  strip.hidden = false;
  strip.replaceChildren(...screen.series.map((series) => {
    const button = Object.assign(document.createElement("button"), { type: "button", title: series.description || series.modality });
    button.dataset.series = series.series;
    const canvas = document.createElement("canvas");
    const label = Object.assign(document.createElement("span"),
      { textContent: `${series.modality} ${series.description || ""} (${series.stack.length})`.trim() });
    button.append(canvas, label);
    button.addEventListener("click", () => screen.place(series));
    // What the viewports show comes first: thumbnails are asked for once they are painted (or failed).
    screenShown().then(() => thumbnail(python, decoder, series, canvas)).catch((error) => {
      canvas.replaceWith(Object.assign(document.createElement("span"), { className: "thumbnail-failed", textContent: "!" }));
      button.title += `: ${error.message}`;
    });
    return button;
  }));
  document.querySelectorAll("#series-strip button").forEach((b) => b.classList.toggle("shown",
    screen.assigned.some((s) => s.series === b.dataset.series)));
}

/** Settles once every viewport shows its fitted picture, or the page says it failed, or after 3 s. */
function screenShown() {
  return new Promise((resolve) => {
    const done = () => ["painted", "error"].includes(document.body.dataset.state);
    if (done()) return resolve();
    const watch = new MutationObserver(() => done() && (watch.disconnect(), resolve()));
    watch.observe(document.body, { attributes: true, attributeFilter: ["data-state"] });
    setTimeout(() => (watch.disconnect(), resolve()), 3000);
  });
}

async function thumbnail(python, decoder, series, canvas) {
  const url = series.stack[series.instance].url;
  const info = await python.header(url, [96, 96]);  // the thumbnail's bins come with the header, if it is asked for
  const reduce = roundDownReduce(info.frames, info.levels, [96, 96]);  // the resolution the header brought
  let last = null;
  await python.show(url, reduce, null, (picture) => { last = picture; }).done;
  if (!last) return;
  const decoded = await decoder.decode(last.codestream, { reduce: last.reduce });
  if (series.greyscale) paintGreyscale(canvas, decoded, series.greyscale);
  else paintColour(canvas, decoded, series.photometric);
}

function layoutChooser(screen) {
  const select = $("layout-choice");
  select.parentElement.hidden = false;
  select.replaceChildren(...Object.keys(LAYOUTS).map((name) => new Option(name.replace("x", "×"), name)));
  select.value = $("viewport").dataset.layout;
  select.disabled = false;
  select.onchange = () => screen.arrange(...LAYOUTS[select.value]);
}

let screen = null;
const host = listenToHost({
  load: (url) => {
    const next = new URL(url, location.href);
    if (next.origin !== location.origin) throw new Error("only this site's viewer URLs can be loaded");
    location.search = next.search;
  },
  window: ({ center, width, viewport = 0 }) => {
    const stack = screen?.stacks[viewport];
    if (!stack) throw new Error(`no viewport ${viewport}`);
    stack.viewport.setWindow(center == null ? null : { center: Number(center), width: Number(width) });
    stack.showWindow();
  },
  zoom: ({ factor = 2, viewport = 0 }) => screen?.stacks[viewport]?.viewport.zoom(Number(factor)),
  fit: ({ viewport = 0 }) => screen?.stacks[viewport]?.viewport.fit(),
  layout: ({ layout }) => {
    if (!LAYOUTS[layout]) throw new Error(`layout ${layout} is not one of ${Object.keys(LAYOUTS).join(", ")}`);
    screen?.arrange(...LAYOUTS[layout]);
  },
  token: ({ token, expires_at: expiresAt = null }) => setToken(token, { expiresAt }),
}, settings);

const workers = new Map();  // one Python worker per kind, kept when the page opens again after sign-in

function startWorker({ dicom = false, packages = "bundle" } = {}) {
  const key = `${dicom} ${packages}`;
  if (workers.has(key)) return workers.get(key);
  const python = new PythonWorker({ dicom, packages, config: settings });
  workers.set(key, python);
  python.addEventListener("ready", () => status("Python ready…"));
  python.addEventListener("failure", (event) => showError(new Error(event.detail)));
  return python;
}

/** ?jpip=<target URL>: a bare JPEG 2000 image, streamed and refined by JPIP. */
async function showJpip(target) {
  (await policy).checkSource(target, "?jpip=");
  const python = startWorker(), decoder = new Decoder();
  $("image-choice").replaceChildren(new Option(target, target));
  status("Starting Python…");
  const series = bareSeries(new URL(target, location.href).href, target);
  screen = new Screen(python, decoder, [series], { rows: 1, columns: 1, tool: "pan", wheelZooms: true });
  const viewport = screen.stacks[0].viewport;
  // How the JP2 boxes have it shown (colour space, palette; a profile not applied is said).
  viewport.addEventListener("header", () => { $("image-info").textContent = viewport.cell.dataset.colour || ""; });
  viewport.addEventListener("picture", ({ detail: { layer, picture, complete } }) => {
    if (layer !== "base") return;
    document.body.dataset.reduce = String(picture.reduce);
    document.body.dataset.paints = String(Number(document.body.dataset.paints || 0) + 1);
    if (!complete) setState("refining");
  });
}

/** ?study=<Study Instance UID>: the study laid out from its attributes, each viewport streamed by JPIP. */
async function showStudy(studyUid) {
  const root = (await policy).checkSource(params.get("dicomweb") || "/dicomweb", "?dicomweb=").href;
  const python = startWorker(), decoder = new Decoder();
  status("Starting Python…");
  $("image-choice").parentElement.hidden = true;  // the series strip chooses here
  const layout = await python.study(root, studyUid);
  performance.mark("layout-ready");
  const [rows, columns] = LAYOUTS[params.get("layout")] || [layout.rows, layout.columns];
  const order = [...layout.viewports, ...layout.series.filter((s) => !layout.viewports.some((v) => v.series === s.series))];
  $("image-info").textContent = layout.description;
  $("series-strip").hidden = false;  // before the viewports are sized: they fit their images once
  screen = new Screen(python, decoder, order, { rows, columns, description: layout.description });
  layoutChooser(screen);
  seriesStrip(screen, python, decoder);
}

/**
 * ?dicom=<url>[,<url>...]: DICOM objects, hollow or ordinary, laid out and streamed like a study;
 * the default page is the first demo object. reduce=<levels> shows the first viewport's image whole
 * at that resolution (the Resolution menu changes it), auto (or none) at the one that fits.
 */
async function showObjects(urls, { reduce = null } = {}) {
  const checked = await policy;
  const hrefs = urls.map((url) => checked.checkSource(url, "?dicom=").href);
  const python = startWorker({ dicom: true, packages: params.get("packages") || "bundle" }), decoder = new Decoder();
  status("Starting Python…");
  const layout = await python.objects(hrefs);
  const [rows, columns] = LAYOUTS[params.get("layout")] || [layout.rows, layout.columns];
  $("image-info").textContent = layout.description;
  if (layout.series.length > 1) $("series-strip").hidden = false;
  screen = new Screen(python, decoder, layout.series, { rows, columns, description: layout.description,
                                                       fixedReduce: reduce });
  layoutChooser(screen);
  if (layout.series.length > 1) seriesStrip(screen, python, decoder);
  resolutionChooser(screen.stacks[0].viewport, reduce);
}

/** The Resolution menu: the first viewport's image whole at a chosen resolution, or fitted. */
function resolutionChooser(viewport, reduce) {
  const select = $("reduce-choice");
  viewport.addEventListener("picture", ({ detail: { layer, picture, complete } }) => {
    if (layer === "base" && complete) document.body.dataset.reduce = String(picture.reduce);
  });
  const fill = (info) => {
    const options = [["auto", "fit"], ...info.frames.map(([w, h], r) => [String(r), `1/${2 ** r} (${w}×${h})`])];
    select.replaceChildren(...options.map(([value, label]) => new Option(label, value)));
    select.value = reduce == null ? "auto" : String(reduce);
    select.disabled = false;
    select.parentElement.hidden = false;
  };
  if (viewport.image?.info) fill(viewport.image.info);
  else viewport.addEventListener("header", ({ detail: info }) => fill(info), { once: true });
  select.onchange = () => {
    reduce = select.value === "auto" ? null : Number(select.value);
    const next = new URLSearchParams(location.search);
    next.set("reduce", select.value);
    history.replaceState(null, "", `?${next}`);
    setState("refining");
    viewport.setFixedReduce(reduce);
  };
}

/** The demo objects (data/index.json) in the Image menu; choosing one opens it. */
async function demoChoice(current) {
  const demos = await (await policy).fetch("data/index.json").then((r) => (r.ok ? r.json() : []), () => []);
  const select = $("image-choice");
  select.replaceChildren(...demos.map((d) => new Option(d.title, `data/${d.file}`)));
  if (current && !demos.some((d) => `data/${d.file}` === current)) select.prepend(new Option(current, current));
  select.value = current || (demos[0] && `data/${demos[0].file}`) || "";
  select.disabled = !select.value;
  select.onchange = () => {
    const next = new URLSearchParams(location.search);
    next.set("dicom", select.value);
    next.delete("reduce");
    location.search = next;
  };
  return select.value;
}

async function main() {
  const config = await settings;
  if (config.oidc) {
    const back = await completeSignIn(config.oidc);  // this load is the sign-in's return: the study again
    if (back) return location.replace(back);
    scheduleRefresh(config.oidc, () => needSignIn("Session expired: sign in again"));
  }
  if (params.get("jpip")) return showJpip(params.get("jpip"));
  if (params.get("study")) return showStudy(params.get("study"));
  // One path for ?dicom= and the default page (the first demo object): the worker, as for a study.
  const urls = (params.get("dicom") || "").split(",").filter(Boolean);
  const first = await demoChoice(urls.length === 1 ? urls[0] : null);
  if (urls.length > 1) $("image-choice").parentElement.hidden = true;
  if (!urls.length && !first) throw new Error("No image: give ?dicom=<url of a DICOM file>");
  const reduce = params.get("reduce");
  return showObjects(urls.length ? urls : [first],
                     { reduce: reduce == null || reduce === "auto" ? null : Math.max(0, parseInt(reduce, 10) || 0) });
}

main().catch(showError);
