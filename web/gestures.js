// A viewport's gestures: wheel, pointer (mouse, pen, touch, pinch) and keys become zoom, pan,
// window/level and scroll. What each does is the viewport's (web/viewport.js); this file only
// reads the input and calls it.
const ZOOM_STEP = 2 ** 0.5;

export function listenGestures(viewport, signal) {
  const cell = viewport.cell;
  const on = (type, handler, options = {}) => cell.addEventListener(type, handler, { ...options, signal });
  // The wheel scrolls a stack (the owner listens for "scroll"); ctrl+wheel (and a touchpad pinch,
  // which browsers send as ctrl+wheel) zooms, as does the plain wheel where there is no stack.
  on("wheel", (event) => {
    event.preventDefault();
    if (event.ctrlKey || viewport.wheelZooms) {
      const box = cell.getBoundingClientRect();
      // A mouse notch (deltaY 100) zooms by √2, as +/- do; a pinch sends small deltas, so it is smooth.
      viewport.zoom(2 ** (-event.deltaY / 200), event.clientX - box.left, event.clientY - box.top);
    } else {
      viewport.dispatchEvent(new CustomEvent("scroll", { detail: Math.sign(event.deltaY) }));
    }
  }, { passive: false });
  const pointers = new Map();
  let gesture = null;
  on("contextmenu", (event) => event.preventDefault());
  on("pointerdown", (event) => {
    if (!viewport.view || event.target.closest("button")) return;
    cell.setPointerCapture(event.pointerId);
    pointers.set(event.pointerId, { x: event.clientX, y: event.clientY });
    if (pointers.size === 2) {  // pinch: two fingers zoom about their middle
      const [a, b] = [...pointers.values()];
      gesture = { kind: "pinch", distance: Math.hypot(a.x - b.x, a.y - b.y) };
      return;
    }
    const pan = event.button === 1 || event.shiftKey || (event.button === 0 && viewport.tool === "pan") || !viewport.image?.greyscale;
    const windowing = !pan && (event.button === 0 || event.button === 2);
    if (!pan && !windowing) return;
    const start = viewport.currentWindow() || { center: 0, width: 1 };
    gesture = { kind: pan ? "pan" : "window", x: event.clientX, y: event.clientY, window: { ...start } };
  });
  on("pointermove", (event) => {
    if (!pointers.has(event.pointerId) || !gesture) return;
    const last = pointers.get(event.pointerId);
    pointers.set(event.pointerId, { x: event.clientX, y: event.clientY });
    if (gesture.kind === "pinch") {
      const [a, b] = [...pointers.values()];
      const distance = Math.hypot(a.x - b.x, a.y - b.y), box = cell.getBoundingClientRect();
      if (gesture.distance > 0) viewport.zoom(distance / gesture.distance, (a.x + b.x) / 2 - box.left, (a.y + b.y) / 2 - box.top);
      gesture.distance = distance;
    } else if (gesture.kind === "pan") {
      viewport.pan(event.clientX - last.x, event.clientY - last.y);
    } else {  // right for a wider window, down for a higher level
      const step = Math.max(gesture.window.width, 1) / 256;
      viewport.user = { center: gesture.window.center + (event.clientY - gesture.y) * step,
                    width: Math.max(1, gesture.window.width + (event.clientX - gesture.x) * step) };
      viewport.repaint();
    }
  });
  const end = (event) => {
    if (!pointers.delete(event.pointerId)) return;
    if (gesture?.kind === "window") viewport.setWindow(viewport.user);
    gesture = null;
  };
  on("pointerup", end);
  on("pointercancel", end);
  on("keydown", (event) => {
    const box = viewport.size();
    const handled = {
      "+": () => viewport.zoom(ZOOM_STEP), "=": () => viewport.zoom(ZOOM_STEP), "-": () => viewport.zoom(1 / ZOOM_STEP),
      f: () => viewport.fit(), r: () => viewport.actualSize(),
      p: () => viewport.setTool("pan"), w: () => viewport.setTool("window"),
      ArrowLeft: () => event.shiftKey && viewport.pan(box.width / 8, 0), ArrowRight: () => event.shiftKey && viewport.pan(-box.width / 8, 0),
    }[event.key];
    if (handled && !event.ctrlKey && !event.metaKey) {
      handled();
      event.preventDefault();
    }
  });
}
