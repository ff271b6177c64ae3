// The first page: Python (Pyodide) reads a DICOM object, a worker decodes its JPEG 2000 codestream,
// and the canvas shows it windowed from the DICOM attributes.
//
// URL parameters: study=<Study Instance UID> (laid out from the server's DICOMweb metadata, each
// viewport streamed by JPIP), jpip=<JPIP target URL> (a bare JPEG 2000 image, streamed and refined),
// dicom=<url of a DICOM object> (default: the first demo image),
// reduce=<resolution levels to discard>|auto (default auto: the coarsest level that still gives a
// pixel per screen pixel when the image is fitted to the viewport), packages=bundle|wheels (how pyjpip and pydicom are installed into Pyodide).
import { startPython } from "./python.js";
import { Decoder } from "./decoder.js";
import { paintGreyscale } from "./paint.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

function setState(state) {
  document.body.dataset.state = state;
}

function status(text) {
  $("status").textContent = text;
}

function showError(error) {
  setState("error");
  const text = error && error.message ? error.message : String(error);
  $("message").textContent = text;
  $("message").hidden = false;
  status(`Error: ${text.split("\n").filter(Boolean).pop()}`);
  console.error(error);
}

/** The coarsest resolution that still has at least one image pixel per device pixel when fitted. */
function fitReduction(width, height, levels) {
  const box = $("viewport").getBoundingClientRect();
  const scale = Math.min(box.width / width, box.height / height) * (window.devicePixelRatio || 1);
  let reduce = 0;
  while (reduce < levels && 2 ** -(reduce + 1) >= scale) reduce++;
  return reduce;
}

async function show(python, decoder, url, reduceChoice) {
  setState("loading");
  $("message").hidden = true;
  status(`Reading ${url}…`);
  const description = await python.browser.open_dicom(new URL(url, location.href).href);
  performance.mark("image-described");
  const cs = description.codestream;
  const reduce = reduceChoice === "auto" || reduceChoice == null
    ? fitReduction(cs.width, cs.height, cs.decomposition_levels)
    : Math.min(Math.max(0, parseInt(reduceChoice, 10) || 0), cs.decomposition_levels);
  fillReduceChoice(cs, reduceChoice);
  const decoded = await decoder.decode(description.codestream_bytes, { reduce });
  performance.mark("image-decoded", { detail: { milliseconds: decoded.milliseconds, reduce } });
  const window = paintGreyscale($("image"), decoded, description.greyscale);
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
    `W/L ${+window.width.toFixed(1)}/${+window.center.toFixed(1)}`,
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

/** Window presets by modality (Hounsfield units for CT); key 1 always returns to the object's own. */
const PRESETS = {
  CT: { 2: ["Brain", 40, 80], 3: ["Bone", 400, 2000], 4: ["Lung", -600, 1500], 5: ["Abdomen", 40, 400] },
};

const SHORTCUTS = [
  ["Wheel, ↑ ↓", "previous / next image (or frame)"], ["Page Up / Page Down", "ten images back / on"],
  ["Drag", "window / level: right for a wider window, down for a higher level"],
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

/** Display parameters for a bare JPEG 2000 image: no DICOM attributes, so its own range is shown. */
const BARE_GREYSCALE = { rescale_slope: 1, rescale_intercept: 0, window_center: null, window_width: null,
                         voi_lut_function: "LINEAR", invert: false };

/**
 * Stream one image by JPIP into a canvas: Python in the worker posts better and better codestreams
 * (tagged with ``id``); the newest not yet painted is decoded and painted, older ones are dropped.
 */
function streamInto(worker, decoder, id, url, canvas, greyscale, onPaint) {
  // ``greyscale`` is the parameters, or a function giving them at paint time (a user's window).
  let pending = null, painting = false;
  const paint = async () => {
    painting = true;
    while (pending) {
      const view = pending;
      pending = null;
      const decoded = await decoder.decode(view.codestream, { reduce: view.reduce });
      if (!worker.views.has(id)) break;  // superseded while decoding: the canvas belongs to a newer image
      const shown = paintGreyscale(canvas, decoded, typeof greyscale === "function" ? greyscale() : greyscale);
      if (!performance.getEntriesByName("first-image-painted").length) performance.mark("first-image-painted");
      onPaint(view, decoded, shown);
    }
    painting = false;
  };
  const box = canvas.parentElement.getBoundingClientRect();
  const scale = window.devicePixelRatio || 1;
  worker.views.set(id, (view) => {
    pending = view;
    if (!painting) paint().catch(showError);
  });
  worker.postMessage({ id, type: "jpip", url: new URL(url, location.href).href,
                       viewport: [Math.round(box.width * scale), Math.round(box.height * scale)] });
}

/** Python (Pyodide) in a module worker, with replies routed by request id. */
function pythonWorker() {
  const worker = new Worker(new URL("./python-worker.js", import.meta.url), { type: "module" });
  worker.views = new Map();
  worker.replies = new Map();
  worker.failures = new Map();  // id -> what to do when that request fails (else the whole page says so)
  worker.onmessage = ({ data }) => {
    if (data.type === "error" && worker.failures.has(data.id)) worker.failures.get(data.id)(data.message);
    else if (data.type === "error") showError(new Error(data.message));
    else if (data.type === "ready") status("Python ready…");
    else if (data.type === "view") worker.views.get(data.id)?.(data);
    else worker.replies.get(data.id)?.(data);
  };
  worker.onerror = (event) => showError(new Error(`Python worker failed: ${event.message || "could not start"}`));
  return worker;
}

function describe(view, decoded) {
  return [`${view.width}×${view.height}`, `shown at 1/${2 ** view.reduce} (${decoded.width}×${decoded.height})`,
          `${view.layers} layer(s) complete`, `${view.received.toLocaleString("en")} bytes in ${view.requests} request(s)`,
          view.final ? "complete" : "refining…"].join(" · ");
}

/** ?jpip=<target URL>: a bare JPEG 2000 image, streamed and refined by JPIP. */
function showJpip(target) {
  const worker = pythonWorker();
  $("reduce-choice").parentElement.hidden = true;
  $("image-choice").replaceChildren(new Option(target, target));
  status("Starting Python…");
  streamInto(worker, new Decoder(), 1, target, $("image"), BARE_GREYSCALE, (view, decoded) => {
    document.body.dataset.reduce = String(view.reduce);
    document.body.dataset.paints = String(Number(document.body.dataset.paints || 0) + 1);
    status(describe(view, decoded));
    setState(view.final ? "painted" : "refining");
  });
}

/** ?study=<Study Instance UID>: the study laid out from its attributes, each viewport streamed by JPIP. */
function showStudy(studyUid) {
  const worker = pythonWorker();
  let nextId = 2;
  $("reduce-choice").parentElement.hidden = true;
  const decoder = new Decoder();
  status("Starting Python…");
  worker.replies.set(1, ({ layout }) => {
    const grid = $("viewport");
    grid.replaceChildren();
    grid.classList.add("grid");
    grid.style.gridTemplate = `repeat(${layout.rows}, 1fr) / repeat(${layout.columns}, 1fr)`;
    $("image-choice").replaceChildren(...layout.series.map((s) =>
      new Option(`${s.modality} ${s.description} (${s.count})`.trim(), s.uid)));
    $("image-info").textContent = layout.description;
    const painted = new Set();
    const wanted = layout.viewports.filter((v) => v.greyscale).length;
    const cells = layout.viewports.map((viewport, index) => {
      const cell = document.createElement("div");
      cell.className = "cell";
      cell.tabIndex = 0;
      const canvas = document.createElement("canvas");
      canvas.dataset.series = viewport.series;
      cell.append(canvas);
      const corners = {};
      for (const corner of ["top_left", "top_right", "bottom_left", "bottom_right"]) {
        corners[corner] = Object.assign(document.createElement("div"), { className: `corner ${corner.replace("_", "-")}` });
        cell.append(corners[corner]);
      }
      for (const [edge, letters] of Object.entries(viewport.markers)) {
        cell.append(Object.assign(document.createElement("div"), { className: `marker ${edge}`, textContent: letters }));
      }
      grid.append(cell);
      if (!viewport.greyscale) {
        cell.append(Object.assign(document.createElement("div"), { className: "notice",
          textContent: "Colour images are not painted yet" }));
        return null;
      }
      const state = { index: viewport.instance, id: null, decoded: null, window: null, user: null };
      const greyscale = () => (state.user
        ? { ...viewport.greyscale, window_center: state.user.center, window_width: state.user.width,
            voi_lut_function: "LINEAR" }
        : viewport.greyscale);
      const showWindow = () => {
        const lines = viewport.stack[state.index].corners.bottom_right || [];
        const window = state.user || state.window;
        const text = window ? [`W: ${+window.width.toFixed(1)} L: ${+window.center.toFixed(1)}`,
                               ...lines.filter((line) => !line.startsWith("W: "))] : lines;
        corners.bottom_right.textContent = text.join("\n");
      };
      const failure = Object.assign(document.createElement("div"), { className: "failure", hidden: true });
      const retry = Object.assign(document.createElement("button"), { textContent: "Retry" });
      const reason = document.createElement("div");
      failure.append(reason, retry);
      cell.append(failure);
      retry.addEventListener("click", () => show(state.index));
      const show = (position) => {
        if (state.id !== null) {  // the previous image is no longer wanted: stop its transfer
          worker.postMessage({ type: "cancel", id: state.id });
          worker.views.delete(state.id);
          worker.failures.delete(state.id);
        }
        failure.hidden = true;
        state.index = position;
        state.id = nextId++;
        worker.failures.set(state.id, (message) => {
          reason.textContent = `This image could not be loaded: ${message.split("\n").filter(Boolean).pop()}`;
          failure.hidden = false;
          canvas.dataset.state = "error";
        });
        const item = viewport.stack[position];
        for (const [corner, lines] of Object.entries(item.corners)) corners[corner].textContent = lines.join("\n");
        canvas.dataset.instance = String(position);
        canvas.dataset.state = "loading";
        streamInto(worker, decoder, state.id, item.url, canvas, greyscale, (view, decoded, shown) => {
          state.decoded = decoded;
          state.window = shown;
          showWindow();
          canvas.dataset.reduce = String(view.reduce);
          if (!view.final) return;
          canvas.dataset.state = "painted";
          painted.add(index);
          if (painted.size === wanted) setState("painted");
          status([layout.description, `${viewport.modality} image ${position + 1}/${viewport.stack.length}`,
                  `${view.width}×${view.height} shown at 1/${2 ** view.reduce}`, `${view.layers} layer(s)`,
                  `${view.received.toLocaleString("en")} bytes`].filter(Boolean).join(" · "));
        });
      };
      // Window/level by dragging: right for a wider window, down for a higher level; the decoded
      // samples are kept, so each move is only a new lookup table.
      cell.addEventListener("pointerdown", (event) => {
        if (event.button !== 0 || !state.decoded) return;
        cell.setPointerCapture(event.pointerId);
        const start = { x: event.clientX, y: event.clientY, window: { ...(state.user || state.window) } };
        const move = (moved) => {
          const step = Math.max(start.window.width, 1) / 256;
          state.user = { center: start.window.center + (moved.clientY - start.y) * step,
                         width: Math.max(1, start.window.width + (moved.clientX - start.x) * step) };
          paintGreyscale(canvas, state.decoded, greyscale());
          showWindow();
        };
        const end = () => {
          cell.removeEventListener("pointermove", move);
          cell.removeEventListener("pointerup", end);
          canvas.dataset.window = JSON.stringify(state.user);
        };
        cell.addEventListener("pointermove", move);
        cell.addEventListener("pointerup", end);
      });
      const scroll = (step) => {
        const position = Math.min(Math.max(state.index + step, 0), viewport.stack.length - 1);
        if (position !== state.index) show(position);
      };
      cell.addEventListener("wheel", (event) => {
        event.preventDefault();
        scroll(Math.sign(event.deltaY));
      }, { passive: false });
      let cine = null;  // multi-frame playback: "c" starts and stops it, at the object's frame time
      const toggleCine = () => {
        if (cine) {
          clearInterval(cine);
          cine = null;
        } else {
          cine = setInterval(() => show((state.index + 1) % viewport.stack.length), viewport.frame_time);
        }
        canvas.dataset.cine = cine ? "playing" : "stopped";
      };
      cell.addEventListener("keydown", (event) => {
        const step = { ArrowDown: 1, ArrowUp: -1, PageDown: 10, PageUp: -10 }[event.key];
        if (step) {
          event.preventDefault();
          scroll(step);
        } else if (event.key === "c" && viewport.stack.length > 1) {
          toggleCine();
        } else if (event.key === "1" || PRESETS[viewport.modality]?.[event.key]) {
          const preset = PRESETS[viewport.modality]?.[event.key];
          state.user = preset ? { center: preset[1], width: preset[2] } : null;
          if (state.decoded) state.window = paintGreyscale(canvas, state.decoded, greyscale());
          showWindow();
          canvas.dataset.window = JSON.stringify(state.user);
        }
      });
      show(state.index);
      return cell;
    });
    cells.find(Boolean)?.focus();
  });
  worker.postMessage({ id: 1, type: "study", base: location.origin, study: studyUid });
}

async function main() {
  if (params.get("jpip")) {
    showJpip(params.get("jpip"));
    return;
  }
  if (params.get("study")) {
    showStudy(params.get("study"));
    return;
  }
  const decoder = new Decoder();
  const python = startPython({ packages: params.get("packages") || "bundle" });
  const demos = await fetch("data/index.json").then((r) => (r.ok ? r.json() : []), () => []);
  const url = params.get("dicom") || (demos[0] && `data/${demos[0].file}`);
  const imageChoice = $("image-choice");
  imageChoice.replaceChildren(...demos.map((d) => new Option(d.title, `data/${d.file}`)));
  if (!demos.some((d) => `data/${d.file}` === url)) imageChoice.prepend(new Option(url, url));
  imageChoice.value = url;
  if (!url) throw new Error("No image: give ?dicom=<url of a DICOM file>");
  const ready = await python;
  imageChoice.disabled = false;
  const rerun = () => {
    const next = new URLSearchParams(location.search);
    next.set("dicom", imageChoice.value);
    next.set("reduce", $("reduce-choice").value);
    history.replaceState(null, "", `?${next}`);
    show(ready, decoder, imageChoice.value, $("reduce-choice").value).catch(showError);
  };
  imageChoice.onchange = () => { $("reduce-choice").value = "auto"; rerun(); };
  $("reduce-choice").onchange = rerun;
  await show(ready, decoder, url, params.get("reduce") ?? "auto");
}

main().catch(showError);
