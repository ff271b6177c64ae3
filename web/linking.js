// Spatial relationships among the viewports of a screen (PS3.3 C.7.6.2 Image Plane, C.7.4.1 Frame of
// Reference): images of one Frame of Reference share patient coordinates, so
// - reference lines: the plane of the focused viewport's image is drawn, where it crosses them, on
//   the images of the other viewports (an axial slice on a sagittal MR or on the localizer);
// - linked scrolling (key `l` or the Link button): scrolling the focused viewport takes the others
//   to their slice nearest the centre of its image;
// - the cross-reference cursor (shift+click): the point clicked, in the patient, is shown in every
//   viewport, each going to its slice nearest it.
// The geometry is web/spatial.js (the mirror of pyjpip.layout.spatial); this file draws and drives.
import { toImage, toScreen } from "./geometry.js";
import { centre, nearestSlice, patientPoint, pixelOf, referenceLine, sharesFrameOfReference } from "./spatial.js";

const SVG = "http://www.w3.org/2000/svg";
const CLICK_SLOP = 4;  // CSS pixels a shift+click may move and stay a click (not a pan)

/** The image plane of what a stack shows now (null without geometry). */
function planeOf(stack) {
  return stack.series.stack[stack.index]?.plane || null;
}

/** Viewer image coordinates (samples, sample i covering [i, i+1)) from DICOM pixel indices (centres). */
const fromPixel = ([column, row]) => [column + 0.5, row + 0.5];
const toPixel = ([x, y]) => [x - 0.5, y - 0.5];

export class SpatialLinks {
  /** screen: the page's grid (stacks, focused); toggle: the Link button, or null. */
  constructor(screen, toggle = null) {
    this.screen = screen;
    this.toggle = toggle;
    this.linked = false;
    this.cursor = null;  // the cross-reference point, patient coordinates (mm), or null
    this.following = false;  // true while the links themselves move viewports: they do not lead
    this.listening = new AbortController();
    document.addEventListener("keydown", (event) => {
      if (event.key === "l" && !event.ctrlKey && !event.metaKey && !event.altKey && this.screen.stacks.length) {
        this.setLinked(!this.linked);
      }
    }, { signal: this.listening.signal });
    toggle?.addEventListener("click", () => this.setLinked(!this.linked), { signal: this.listening.signal });
    this.attach();
  }

  /** Listen to the screen's stacks (again after the layout changes). */
  attach() {
    this.stacksListening?.abort();
    this.stacksListening = new AbortController();
    const signal = this.stacksListening.signal;
    for (const stack of this.screen.stacks) {
      if (!stack.spatialOverlay) {
        stack.spatialOverlay = document.createElementNS(SVG, "svg");
        stack.spatialOverlay.classList.add("spatial");
        stack.cell.append(stack.spatialOverlay);
      }
      stack.addEventListener("position", () => this.moved(stack), { signal });
      stack.viewport.addEventListener("layout", () => this.draw(stack), { signal });
      stack.cell.addEventListener("focus", () => this.update(), { signal });
      let down = null;
      stack.cell.addEventListener("pointerdown", (event) => {
        down = event.shiftKey && event.button === 0 ? { x: event.clientX, y: event.clientY } : null;
      }, { signal });
      stack.cell.addEventListener("pointerup", (event) => {
        if (down && Math.hypot(event.clientX - down.x, event.clientY - down.y) <= CLICK_SLOP) this.pointAt(stack, event);
        down = null;
      }, { signal });
    }
    this.update();
  }

  setLinked(linked) {
    this.linked = linked;
    document.body.dataset.linked = String(linked);
    if (this.toggle) this.toggle.setAttribute("aria-pressed", String(linked));
    if (linked) this.follow(this.screen.focused);
  }

  /** The stacks that share ``stack``'s Frame of Reference (itself left out). */
  partners(stack) {
    return this.screen.stacks.filter((other) => other !== stack && sharesFrameOfReference(other.series, stack.series));
  }

  moved(stack) {
    if (this.following) return;
    if (stack === this.screen.focused && this.linked) this.follow(stack);
    this.update();
  }

  /** Linked scrolling: the partners go to their slice nearest the centre of ``leader``'s image. */
  follow(leader) {
    const plane = leader && planeOf(leader);
    if (!plane) return;
    this.goTo(this.partners(leader), centre(plane));
  }

  /** Each stack goes to its slice nearest ``point`` (mm); returns nothing, the moves are under way. */
  goTo(stacks, point) {
    this.following = true;
    try {
      for (const stack of stacks) {
        const index = nearestSlice(stack.series.stack.map((item) => item.plane || null), point);
        if (index != null && index !== stack.index) stack.show(index);
        stack.cell.dataset.linkedTo = String(stack.index);
      }
    } finally {
      this.following = false;
    }
  }

  /** shift+click: the point under the pointer, in the patient, for every viewport of that Frame of Reference. */
  pointAt(stack, event) {
    const plane = planeOf(stack), view = stack.viewport.view;
    if (!plane || !view) return;
    const box = stack.cell.getBoundingClientRect();
    const [column, row] = toPixel(toImage(view, stack.viewport.size(), event.clientX - box.left, event.clientY - box.top));
    this.cursor = { point: patientPoint(plane, column, row), frameOfReference: stack.series.frame_of_reference };
    document.body.dataset.cursor = this.cursor.point.map((v) => v.toFixed(3)).join(",");
    this.goTo(this.partners(stack), this.cursor.point);
    this.update();
  }

  /** Redraw every viewport's lines and cursor; timed, as a scroll waits on it. */
  update() {
    const start = performance.now();
    for (const stack of this.screen.stacks) this.draw(stack);
    performance.measure("reference-lines", { start });
  }

  /** The focused image's plane across ``stack``'s image, and the cursor, in screen coordinates. */
  draw(stack) {
    const overlay = stack.spatialOverlay, viewport = stack.viewport;
    if (!overlay) return;
    overlay.replaceChildren();
    const focused = this.screen.focused, target = planeOf(stack), view = viewport.view;
    delete stack.cell.dataset.referenceLine;
    if (!target || !view) return;
    const size = viewport.size();
    const screenOf = (pixel) => toScreen(view, size, ...fromPixel(pixel));
    const source = focused && focused !== stack && sharesFrameOfReference(focused.series, stack.series) && planeOf(focused);
    const line = source ? referenceLine(source, target) : null;
    if (line) {
      stack.cell.dataset.referenceLine = line.flat().map((v) => v.toFixed(3)).join(",");
      const [[x1, y1], [x2, y2]] = line.map(screenOf);
      const element = document.createElementNS(SVG, "line");
      overlay.append(element);
      for (const [name, value] of Object.entries({ x1, y1, x2, y2 })) element.setAttribute(name, value.toFixed(1));
      element.classList.add("reference-line");
    }
    if (this.cursor && this.cursor.frameOfReference === stack.series.frame_of_reference) {
      const pixel = pixelOf(target, this.cursor.point);
      stack.cell.dataset.cursor = pixel.map((v) => v.toFixed(3)).join(",");
      const [x, y] = screenOf(pixel);
      const mark = document.createElementNS(SVG, "circle");
      mark.setAttribute("cx", x.toFixed(1));
      mark.setAttribute("cy", y.toFixed(1));
      mark.setAttribute("r", "6");
      mark.classList.add("cursor");
      overlay.append(mark);
    }
  }

  close() {
    this.listening.abort();
    this.stacksListening?.abort();
  }
}
