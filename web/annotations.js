// Measurements drawn over a viewport: lengths, angles, rectangle and ellipse ROIs (web/measure.js
// computes them). Kept per image URL in image coordinates, so they follow zoom and pan (redrawn on the
// viewport's "layout" event) and come back when a stack scrolls back to their image. One SVG overlay
// per cell above the layers, taking the pointer only while a measuring tool is active; a list in the
// cell with a delete button per measurement (and Delete/Backspace for the selected one).
//
// Keys on a focused cell: m length, a angle, b rectangle, e ellipse, Escape none (or cancels the one
// being drawn). A drag draws a length, rectangle or ellipse (two clicks do too); an angle is the drag
// of its first arm to the vertex, then a click at the end of the second. Shift or the middle button
// still pans (web/gestures.js).
import { toImage, toScreen } from "./geometry.js";
import { angleOf, better, boxOf, chooseTile, completeness, lengthOf, roiStatistics } from "./measure.js";

/** The tools, their keys and names, in the chooser's order. */
export const TOOLS = [
  { tool: "none", key: "Escape", label: "No measuring" },
  { tool: "length", key: "m", label: "Length" },
  { tool: "angle", key: "a", label: "Angle" },
  { tool: "rectangle", key: "b", label: "Rectangle ROI" },
  { tool: "ellipse", key: "e", label: "Ellipse ROI" },
];
const KEYS = Object.fromEntries(TOOLS.filter((t) => t.tool !== "none").map((t) => [t.key, t.tool]));
const POINTS = { length: 2, angle: 3, rectangle: 2, ellipse: 2 };
const NAMES = { length: "Length", angle: "Angle", rectangle: "Rectangle", ellipse: "Ellipse" };
const SVG = "http://www.w3.org/2000/svg";
const CLICK = 3;  // CSS pixels: a pointer that moved less clicked rather than dragged

// One tool for the page, and the annotations of every image: arranging the grid anew or placing a
// series in another cell makes new stacks, and what was measured must still be there.
const page = new EventTarget();
const store = new Map();  // image URL → [{id, kind, points, result?, stats?}]
let tool = "none";
let serial = 0;

export function currentTool() {
  return tool;
}

/** Choose the measuring tool of the page: "length", "angle", "rectangle", "ellipse" or "none". */
export function chooseTool(next) {
  next = POINTS[next] ? next : "none";
  if (next === tool) return;
  tool = next;
  page.dispatchEvent(new CustomEvent("tool", { detail: tool }));
}

function changed(url) {
  page.dispatchEvent(new CustomEvent("change", { detail: url }));
}

/** Buttons choosing the tool (for the page's header); onChoose(tool) after every choice, by key too. */
export function toolChooser(onChoose = () => {}) {
  const group = Object.assign(document.createElement("span"), { className: "tool-chooser" });
  group.setAttribute("role", "group");
  group.setAttribute("aria-label", "Measuring tool");
  const buttons = TOOLS.map(({ tool: name, key, label }) => {
    const button = Object.assign(document.createElement("button"), { type: "button", textContent: label,
                                                                      title: `${label} (${key})` });
    button.dataset.tool = name;
    button.addEventListener("click", () => chooseTool(name));
    return button;
  });
  const show = () => buttons.forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.tool === tool)));
  page.addEventListener("tool", (event) => {
    show();
    onChoose(event.detail);
  });
  show();
  group.append(...buttons);
  return group;
}

/** Modality values' unit: Hounsfield units for CT after rescale (PS3.3 C.11.1), else unnamed. */
function modalityUnit(greyscale, modality) {
  return modality === "CT" && greyscale && !greyscale.modality_lut ? "HU" : "";
}

const number = (value, digits = 1) => (Number.isFinite(value) ? (+value.toFixed(digits)).toLocaleString("en") : "–");

export class Annotations {
  /** viewport: web/viewport.js's; the series' calibration (or none: pixels), greyscale and modality. */
  constructor(viewport, { calibration = null, greyscale = null, modality = "" } = {}) {
    this.viewport = viewport;
    this.cell = viewport.cell;
    this.calibration = calibration || null;
    this.greyscale = greyscale;
    this.unit = modalityUnit(greyscale, modality);
    this.svg = document.createElementNS(SVG, "svg");
    this.svg.classList.add("annotations");
    this.list = Object.assign(document.createElement("ol"), { className: "annotation-list", hidden: true });
    this.list.setAttribute("aria-label", "Measurements");
    viewport.stage.after(this.svg);  // above the layers, below the corner text
    this.cell.append(this.list);
    this.drawing = null;  // {kind, points (fixed), floating: the point following the pointer}
    this.selected = null;
    this.tileUrls = new WeakMap();  // tile → the image it holds: a layer keeps its tile until the next image paints
    this.listening = new AbortController();
    const signal = this.listening.signal;
    viewport.addEventListener("layout", () => this.drawShapes(), { signal });
    viewport.addEventListener("picture", (event) => this.pictured(event.detail), { signal });
    page.addEventListener("tool", () => this.toolChanged(), { signal });
    page.addEventListener("change", (event) => event.detail === this.url() && this.render(), { signal });
    // Capture phase: while a tool is active the left button draws, and web/gestures.js (listening on
    // the cell in the bubble phase) must not also window or pan.
    const on = (type, handler) => this.cell.addEventListener(type, handler, { capture: true, signal });
    on("pointerdown", (event) => this.down(event));
    on("pointermove", (event) => this.move(event));
    on("pointerup", (event) => this.up(event));
    on("pointercancel", () => this.cancel());
    this.cell.addEventListener("keydown", (event) => this.key(event), { signal });
    this.list.addEventListener("pointerdown", (event) => event.stopPropagation(), { signal });
    this.list.addEventListener("wheel", (event) => event.stopPropagation(), { signal, passive: true });
    this.toolChanged();
  }

  url() {
    return this.viewport.image?.url ?? null;
  }

  annotations() {
    return store.get(this.url()) || [];
  }

  /** The stack shows another image (or the same again): its annotations. */
  refresh() {
    this.drawing = null;
    if (!this.annotations().some((a) => a.id === this.selected)) this.selected = null;
    this.render();
  }

  toolChanged() {
    this.cancel();
    this.svg.classList.toggle("active", tool !== "none");
    this.cell.dataset.measure = tool;
  }

  // --- drawing ---------------------------------------------------------------------------------

  screenPoint(event) {
    const box = this.cell.getBoundingClientRect();
    return [event.clientX - box.left, event.clientY - box.top];
  }

  imagePoint(event) {
    return toImage(this.viewport.view, this.viewport.size(), ...this.screenPoint(event));
  }

  screenOf(point) {
    return toScreen(this.viewport.view, this.viewport.size(), point[0], point[1]);
  }

  claims(event) {
    return tool !== "none" && this.viewport.view && this.viewport.image && !event.shiftKey &&
      !event.target.closest?.(".annotation-list, button");
  }

  down(event) {
    if (!this.claims(event) || event.button !== 0) return;
    event.stopImmediatePropagation();
    event.preventDefault();  // no text selection, and no mousedown: focus it here
    this.cell.focus({ preventScroll: true });
    const hit = event.target.closest?.("[data-id]");
    if (!this.drawing && hit) {  // a click on a drawn measurement selects it
      this.select(hit.dataset.id);
      return;
    }
    const point = this.imagePoint(event);
    this.cell.setPointerCapture(event.pointerId);
    if (!this.drawing) this.drawing = { kind: tool, points: [point], floating: point, url: this.url() };
    else this.place(point);  // the next click of a shape drawn by clicks
    this.drawShapes();
  }

  move(event) {
    if (!this.drawing || event.shiftKey) return;
    event.stopImmediatePropagation();
    this.drawing.floating = this.imagePoint(event);
    this.drawShapes();
  }

  up(event) {
    if (!this.drawing) return;
    event.stopImmediatePropagation();
    const last = this.screenOf(this.drawing.points.at(-1));
    const [x, y] = this.screenPoint(event);
    if (Math.hypot(x - last[0], y - last[1]) >= CLICK) this.place(this.imagePoint(event));  // the end of a drag
  }

  place(point) {
    const drawing = this.drawing;
    drawing.points.push(point);
    drawing.floating = point;
    if (drawing.points.length < POINTS[drawing.kind]) return;
    this.drawing = null;
    const [a, b] = drawing.points.map((p) => this.screenOf(p));
    if (drawing.url !== this.url() || Math.hypot(a[0] - b[0], a[1] - b[1]) < CLICK) {
      this.drawShapes();  // another image meanwhile, or a shape of no size: nothing measured
      return;
    }
    const annotation = { id: `m${++serial}`, kind: drawing.kind, points: drawing.points };
    this.measure(annotation);
    store.set(drawing.url, [...this.annotations(), annotation]);
    this.selected = annotation.id;
    changed(drawing.url);
  }

  cancel() {
    if (!this.drawing) return;
    this.drawing = null;
    this.drawShapes();
  }

  key(event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (KEYS[event.key]) {
      chooseTool(KEYS[event.key]);
      event.preventDefault();
    } else if (event.key === "Escape") {
      if (this.drawing) this.cancel();
      else chooseTool("none");
    } else if ((event.key === "Delete" || event.key === "Backspace") && this.selected) {
      event.preventDefault();
      this.remove(this.selected);
    }
  }

  select(id) {
    this.selected = id;
    this.render();
  }

  remove(id) {
    const url = this.url();
    store.set(url, this.annotations().filter((a) => a.id !== id));
    if (this.selected === id) this.selected = null;
    changed(url);
  }

  // --- measuring -------------------------------------------------------------------------------

  /** Lengths and angles from the points; ROI statistics from the finest samples held. */
  measure(annotation) {
    const p = annotation.points;
    if (annotation.kind === "length") annotation.result = lengthOf(p[0], p[1], this.calibration);
    else if (annotation.kind === "angle") annotation.result = angleOf(p[0], p[1], p[2], this.calibration);
    else this.refine(annotation);
  }

  /** Statistics from the tiles of this image on screen, if finer (or more complete) than those held. */
  refine(annotation) {
    const image = this.viewport.image;
    if (!image?.info || !image.greyscale) return false;
    const tiles = [this.viewport.detail.tile, this.viewport.base.tile].filter((t) => t && this.tileUrls.get(t) === image.url);
    const tile = chooseTile(tiles, annotation, image.info.frames);
    if (!tile) return false;
    if (!better({ reduce: tile.reduce, ...completeness(tile) }, annotation.stats)) return false;
    annotation.stats = roiStatistics(annotation, tile, image.greyscale, this.calibration, image.info.frames[tile.reduce]);
    return true;
  }

  /** A finer picture: the ROIs of its image measured again. */
  pictured({ tile }) {
    const url = this.url();
    if (!tile || !url) return;
    this.tileUrls.set(tile, url);
    let any = false;
    for (const annotation of this.annotations()) {
      if ((annotation.kind === "rectangle" || annotation.kind === "ellipse") && this.refine(annotation)) any = true;
    }
    if (any) changed(url);
  }

  // --- showing ---------------------------------------------------------------------------------

  render() {
    this.drawShapes();
    this.renderList();
  }

  /** The label lines of a measurement. */
  label(annotation) {
    const { kind, result, stats } = annotation;
    if (kind === "length") return [`${number(result.value, 2)} ${result.unit}`];
    if (kind === "angle") return [`${number(result.value, 1)}°`];
    if (!this.greyscale) return ["no statistics: not a grey-scale image"];
    if (!stats) return ["measuring…"];
    if (!stats.count) return ["no sample inside"];
    const unit = this.unit ? ` ${this.unit}` : "";
    return [`mean ${number(stats.mean)}${unit}  SD ${number(stats.sd)} (population)`,
            `min ${number(stats.min)}  max ${number(stats.max)}`,
            `area ${number(stats.area, 2)} ${stats.areaUnit}`,
            ...(stats.reduce > 0 ? [`at 1/${2 ** stats.reduce} resolution`] : []),
            ...(stats.final ? [] : ["refining…"])];
  }

  drawShapes() {
    const svg = this.svg;
    svg.replaceChildren();
    if (!this.viewport.view || !this.url()) return;
    for (const annotation of this.annotations()) {
      svg.append(this.shape(annotation, annotation.id === this.selected));
    }
    if (this.drawing && this.drawing.url === this.url()) {
      const { kind, points, floating } = this.drawing;
      const shown = [...points, floating].slice(0, POINTS[kind]);
      if (shown.length >= 2) svg.append(this.shape({ kind, points: shown }, false, true));
    }
  }

  shape(annotation, selected, drawing = false) {
    const make = (name, attributes) => {
      const element = document.createElementNS(SVG, name);
      for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
      return element;
    };
    const group = make("g", { class: `annotation ${annotation.kind}${selected ? " selected" : ""}${drawing ? " drawing" : ""}` });
    if (annotation.id) group.dataset.id = annotation.id;
    const screen = annotation.points.map((p) => this.screenOf(p));
    let at;
    if (annotation.kind === "length" || annotation.kind === "angle") {
      group.append(make("polyline", { class: "shape", points: screen.map((p) => p.join(",")).join(" ") }));
      at = screen[annotation.kind === "angle" ? 1 : screen.length - 1];
    } else {
      const [x0, y0, x1, y1] = boxOf(screen);
      group.append(annotation.kind === "rectangle"
        ? make("rect", { class: "shape", x: x0, y: y0, width: x1 - x0, height: y1 - y0 })
        : make("ellipse", { class: "shape", cx: (x0 + x1) / 2, cy: (y0 + y1) / 2, rx: (x1 - x0) / 2, ry: (y1 - y0) / 2 }));
      at = [x1, y0];
    }
    if (!drawing) {
      const text = make("text", { x: at[0] + 8, y: at[1] - 4 });
      this.label(annotation).forEach((line, i) => {
        const span = make("tspan", { x: at[0] + 8, dy: i ? "1.2em" : 0 });
        span.textContent = line;
        text.append(span);
      });
      group.append(text);
    }
    return group;
  }

  /** The list: one item per measurement with its numbers as data- attributes and a delete button. */
  renderList() {
    const items = this.annotations().map((annotation, index) => {
      const item = document.createElement("li");
      item.dataset.id = annotation.id;
      item.dataset.kind = annotation.kind;
      item.dataset.points = JSON.stringify(annotation.points);
      item.classList.toggle("selected", annotation.id === this.selected);
      let text = `${index + 1}. ${NAMES[annotation.kind]} ${this.label(annotation).join(" · ")}`;
      if (annotation.result) {
        Object.assign(item.dataset, { value: annotation.result.value, unit: annotation.result.unit });
        if (annotation.kind === "length") {
          text += ` · ${annotation.result.name}`;
          item.dataset.calibration = annotation.result.name;
        }
      }
      const stats = annotation.stats;
      if (stats) {
        Object.assign(item.dataset, { mean: stats.mean, sd: stats.sd, min: stats.min, max: stats.max, count: stats.count,
          padding: stats.padding, area: stats.area, areaUnit: stats.areaUnit, reduce: stats.reduce, final: stats.final,
          unit: this.unit });
        text += ` · ${stats.count.toLocaleString("en")} samples${stats.padding ? ` (${stats.padding} padding left out)` : ""}`;
      }
      const remove = Object.assign(document.createElement("button"), { type: "button", textContent: "×",
                                                                         title: "Delete this measurement" });
      remove.setAttribute("aria-label", `Delete measurement ${index + 1}`);
      remove.addEventListener("click", (event) => {
        event.stopPropagation();
        this.remove(annotation.id);
      });
      item.append(Object.assign(document.createElement("span"), { textContent: text }), remove);
      item.addEventListener("click", () => {
        this.select(annotation.id);
        this.cell.focus({ preventScroll: true });
      });
      return item;
    });
    this.list.replaceChildren(...items);
    this.list.hidden = !items.length;
  }

  close() {
    this.listening.abort();
    this.svg.remove();
    this.list.remove();
  }
}
