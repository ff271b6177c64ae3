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
// Embedded in an iframe, the page answers postMessage (embed.js).
import { startPython } from "./python.js";
import { Decoder } from "./decoder.js";
import { fitView, neededReduce, roundDownReduce } from "./geometry.js";
import { paintColour, paintGreyscale } from "./paint.js";
import { PythonWorker } from "./python-client.js";
import { Stack, bareSeries } from "./stack.js";
import { listen as listenToHost } from "./embed.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

function setState(state) {
  document.body.dataset.state = state;
  host.emit("state", { state });
}

function status(text) {
  $("status").textContent = text;
}

function showError(error) {
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
  ["c", "play or stop a multi-frame object as cine"], ["?", "this help"],
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
  constructor(python, decoder, series, { rows, columns, description = "", tool = "window", wheelZooms = false }) {
    this.python = python;
    this.decoder = decoder;
    this.series = series;
    this.description = description;
    this.options = { tool, wheelZooms };
    this.stacks = [];
    this.focused = null;
    this.assigned = [];
    this.arrange(rows, columns, series.slice(0, rows * columns));
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
      stack.addEventListener("failure", (event) => host.emit("error", { viewport: index, message: event.detail }));
      cell.addEventListener("focus", () => this.focus(stack));
      return stack;
    });
    this.focus(this.stacks[0]);
    this.stacks[0]?.cell.focus();
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
});

function startWorker({ dicom = false } = {}) {
  const python = new PythonWorker({ dicom });
  python.addEventListener("ready", () => status("Python ready…"));
  python.addEventListener("failure", (event) => showError(new Error(event.detail)));
  return python;
}

/** ?jpip=<target URL>: a bare JPEG 2000 image, streamed and refined by JPIP. */
function showJpip(target) {
  const python = startWorker(), decoder = new Decoder();
  $("image-choice").replaceChildren(new Option(target, target));
  status("Starting Python…");
  const series = bareSeries(new URL(target, location.href).href, target);
  screen = new Screen(python, decoder, [series], { rows: 1, columns: 1, tool: "pan", wheelZooms: true });
  const viewport = screen.stacks[0].viewport;
  viewport.addEventListener("picture", ({ detail: { layer, picture, complete } }) => {
    if (layer !== "base") return;
    document.body.dataset.reduce = String(picture.reduce);
    document.body.dataset.paints = String(Number(document.body.dataset.paints || 0) + 1);
    if (!complete) setState("refining");
  });
}

/** ?study=<Study Instance UID>: the study laid out from its attributes, each viewport streamed by JPIP. */
async function showStudy(studyUid) {
  const python = startWorker(), decoder = new Decoder();
  status("Starting Python…");
  $("image-choice").parentElement.hidden = true;  // the series strip chooses here
  const root = new URL(params.get("dicomweb") || "/dicomweb", location.href).href;
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

/** ?dicom=<url>: an ordinary DICOM object with JPEG 2000 pixel data, fetched whole and decoded. */
async function showDicom() {
  const decoder = new Decoder();
  const python = startPython({ packages: params.get("packages") || "bundle", dicom: true });
  const demos = await fetch("data/index.json").then((r) => (r.ok ? r.json() : []), () => []);
  const url = params.get("dicom") || (demos[0] && `data/${demos[0].file}`);
  const imageChoice = $("image-choice");
  imageChoice.replaceChildren(...demos.map((d) => new Option(d.title, `data/${d.file}`)));
  if (!demos.some((d) => `data/${d.file}` === url)) imageChoice.prepend(new Option(url, url));
  imageChoice.value = url;
  if (!url) throw new Error("No image: give ?dicom=<url of a DICOM file>");
  const ready = await python;
  imageChoice.disabled = false;
  $("reduce-choice").parentElement.hidden = false;
  const rerun = () => {
    const next = new URLSearchParams(location.search);
    next.set("dicom", imageChoice.value);
    next.set("reduce", $("reduce-choice").value);
    history.replaceState(null, "", `?${next}`);
    showWholeObject(ready, decoder, imageChoice.value, $("reduce-choice").value).catch(showError);
  };
  imageChoice.onchange = () => { $("reduce-choice").value = "auto"; rerun(); };
  $("reduce-choice").onchange = rerun;
  await showWholeObject(ready, decoder, url, params.get("reduce") ?? "auto");
}

/** The coarsest resolution that still has at least one image pixel per device pixel when fitted. */
function fitReduction(width, height, levels) {
  const box = $("viewport").getBoundingClientRect();
  const { scale } = fitView(box, { width, height });
  return neededReduce(scale, levels, window.devicePixelRatio || 1);
}

async function showWholeObject(python, decoder, url, reduceChoice) {
  setState("loading");
  $("message").hidden = true;
  status(`Reading ${url}…`);
  const description = await python.browser.open_dicom(new URL(url, location.href).href);
  const cs = description.codestream;
  const reduce = reduceChoice === "auto" || reduceChoice == null
    ? fitReduction(cs.width, cs.height, cs.decomposition_levels)
    : Math.min(Math.max(0, parseInt(reduceChoice, 10) || 0), cs.decomposition_levels);
  fillReduceChoice(cs, reduceChoice);
  const decoded = await decoder.decode(description.codestream_bytes, { reduce });
  performance.mark("image-decoded", { detail: { milliseconds: decoded.milliseconds, reduce } });
  let canvas = $("image");
  if (!canvas) {
    $("viewport").replaceChildren(canvas = Object.assign(document.createElement("canvas"), { id: "image" }));
  }
  const window = paintGreyscale(canvas, decoded, description.greyscale);
  if (!performance.getEntriesByName("first-image-painted").length) performance.mark("first-image-painted");
  const a = description.attributes;
  $("image-info").textContent = `${a.Modality} ${a.SeriesDescription}`.trim();
  document.body.dataset.reduce = String(reduce);
  status([
    `${cs.width}×${cs.height} ${cs.precision}-bit${cs.signed ? " signed" : ""}`,
    `shown at 1/${2 ** reduce} (${decoded.width}×${decoded.height})`,
    `${cs.decomposition_levels} levels, ${cs.layers} layers, ${cs.progression_order}`,
    `${description.codestream_bytes.byteLength.toLocaleString("en")} bytes`,
    `decode ${decoded.milliseconds.toFixed(0)} ms`,
    window ? `W/L ${+window.width.toFixed(1)}/${+window.center.toFixed(1)}` : "VOI LUT",
    ...description.mismatches.map((m) => `warning: ${m}`),
  ].join(" · "));
  setState("painted");
}

function fillReduceChoice(cs, reduceChoice) {
  const select = $("reduce-choice");
  const options = [["auto", "fit"]];
  for (let r = 0; r <= cs.decomposition_levels; r++) {
    options.push([String(r), `1/${2 ** r} (${Math.ceil(cs.width / 2 ** r)}×${Math.ceil(cs.height / 2 ** r)})`]);
  }
  select.replaceChildren(...options.map(([value, label]) => new Option(label, value)));
  select.value = reduceChoice ?? "auto";
  select.disabled = false;
}

/** ?dicom=<url>[,<url>...]: DICOM objects, hollow or ordinary, laid out and streamed like a study. */
async function showObjects(urls) {
  const python = startWorker({ dicom: true }), decoder = new Decoder();
  status("Starting Python…");
  $("image-choice").parentElement.hidden = true;
  const layout = await python.objects(urls.map((url) => new URL(url, location.href).href));
  const [rows, columns] = LAYOUTS[params.get("layout")] || [layout.rows, layout.columns];
  $("image-info").textContent = layout.description;
  if (layout.series.length > 1) $("series-strip").hidden = false;
  screen = new Screen(python, decoder, layout.series, { rows, columns, description: layout.description });
  layoutChooser(screen);
  if (layout.series.length > 1) seriesStrip(screen, python, decoder);
}

async function main() {
  if (params.get("jpip")) return showJpip(params.get("jpip"));
  if (params.get("study")) return showStudy(params.get("study"));
  // With reduce= (or nothing at all: the demo image) an object is decoded whole at that resolution.
  if (params.get("dicom") && !params.has("reduce")) return showObjects(params.get("dicom").split(",").filter(Boolean));
  return showDicom();
}

main().catch(showError);
