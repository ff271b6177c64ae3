"""The viewer in headless Chromium: first image cold and warm, Python ready → first image, wheel zoom
→ refined region, and window/level frame time.

    .venv/bin/python bench/viewer.py [--runs 5]

Pages are served by pyjpip's dev server on loopback (site + JPIP + DICOMweb), as `build.py serve` does.
- cold: a new browser per run (empty caches), navigation → first image painted (performance marks);
- warm: the same browser navigating to the page again (HTTP cache revalidated, Pyodide compiled);
- Python ready → first image: from the Python worker's "ready" to the first painted picture;
- zoom: ctrl+wheel notches (√2 each) on the fitted CT 2048², each from the gesture to the refined
  region's final picture painted (request, bytes, rebuild, decode, paint), and to its first picture
  at that resolution painted, whatever its layers (Part 1 has four quality layers: the first one
  is a few percent of the bytes); the same pixels coded as JPEG 2000 Part 1 (opj_compress) and as
  HTJ2K (OpenJPH, one layer), both lossless, RPCL, 128² precincts;
- window/level: a 40-step drag on the fitted CT 2048² (its base is 1024²), time per repaint;
- reference lines: the demo head study 2x2, ↓ through the CT axial stack; from the key to the lines on
  the MR and the localizer recomputed and redrawn.
Medians over the runs; variants interleaved run by run so machine noise hits them alike.
--baseline DIR also zooms with another build of the viewer (a static/ folder, say of an earlier
commit), interleaved with this one; --cpus 0,1 runs everything on those cores (Chromium inherits).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from page_load import CHROMIUM_ARGS  # noqa: E402
from pyjpip.transport.http_server import make_server  # noqa: E402

READ_MARKS = """() => {
  const first = (name) => performance.getEntriesByName(name)[0]?.startTime ?? null;
  return { ready: first("python-ready"), painted: first("first-image-painted") };
}"""


def demo_study(cache: Path, base: str) -> tuple[Path, str]:
    """The demo study set, made and ingested once into .cache/bench-study (URLs for this server)."""
    import pydicom

    from pyjpip.dicom.ingest import ingest

    sources, store = cache / "sources", cache / "store"
    if not sources.exists():
        subprocess.run([sys.executable, str(ROOT / "tools" / "demo_study.py"), str(sources)], check=True)
    shutil.rmtree(store, ignore_errors=True)  # the URLs inside name this run's port
    store.mkdir(parents=True)
    (store / "index.json").write_text('{"instances": {}}')
    ingest([str(sources)], str(store), base)
    datasets = [pydicom.dcmread(p, stop_before_pixels=True) for p in sources.rglob("*.dcm")]
    study = next(ds.StudyInstanceUID for ds in datasets if ds.get("Modality") == "CR")
    head = next(ds.StudyInstanceUID for ds in datasets if ds.get("SeriesDescription") == "Head 2.5 mm")
    return store, study, head


def wait_painted(page) -> None:
    page.wait_for_function("['painted', 'error'].includes(document.body.dataset.state)", timeout=120_000)
    if page.evaluate("document.body.dataset.state") != "painted":
        raise RuntimeError(page.locator("#message").text_content())


@contextmanager
def new_browser_page(browser_type, url: str):
    """A new browser (empty caches) with a 1280x720 page showing ``url``, painted."""
    browser = browser_type.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=CHROMIUM_ARGS)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        page.goto(url)
        wait_painted(page)
        yield page
    finally:
        browser.close()


def first_image(browser_type, url: str) -> dict:
    with new_browser_page(browser_type, url) as page:
        cold = page.evaluate(READ_MARKS)
        page.goto("about:blank")
        page.goto(url)
        wait_painted(page)
        warm = page.evaluate(READ_MARKS)
        return {"cold": cold["painted"], "warm": warm["painted"], "ready_to_first": cold["painted"] - cold["ready"],
                "warm_ready_to_first": warm["painted"] - warm["ready"]}


def interaction(browser_type, url: str) -> dict:
    with new_browser_page(browser_type, url) as page:
        cell = page.locator(".cell").first.bounding_box()
        x, y = cell["x"] + cell["width"] / 2, cell["y"] + cell["height"] / 2
        page.mouse.move(x, y)
        zooms = []
        for notch in range(1, 5):  # each notch √2 about the pointer: 1.4x, 2x, 2.8x, 4x the fitted scale
            page.evaluate("performance.clearMarks('detail-refined'); performance.clearMarks('zoom-gesture');"
                          "performance.clearMarks('detail-painted'); performance.clearMeasures('decode-detail')")
            page.keyboard.down("Control")
            page.mouse.wheel(0, -100)
            page.keyboard.up("Control")
            page.wait_for_timeout(50)
            state = page.locator(".cell canvas.detail").get_attribute("data-state")
            if state in ("none", "held"):  # the base, or the detail already shown, holds this view
                zooms.append({"notch": notch, "ms": 0.0, "decode": 0.0, "reduce": None, "region": state})
                continue
            page.wait_for_function("performance.getEntriesByName('detail-refined').length > 0", timeout=60_000)
            page.wait_for_timeout(300)  # a later, finer picture would count, not the first
            elapsed = page.evaluate("performance.getEntriesByName('detail-refined').pop().startTime - "
                                    "performance.getEntriesByName('zoom-gesture')[0].startTime")
            decode = page.evaluate("performance.getEntriesByName('decode-detail').pop().detail")
            detail = page.locator(".cell canvas.detail")
            reduce = detail.get_attribute("data-reduce")
            # The first picture of the detail at the final picture's resolution (a build without the
            # detail-painted mark shows only the final one)
            first = page.evaluate("""(reduce) => {
              const gesture = performance.getEntriesByName('zoom-gesture')[0].startTime;
              const mark = performance.getEntriesByName('detail-painted').find((m) => String(m.detail.reduce) === reduce);
              const decodes = performance.getEntriesByName('decode-detail');
              return mark ? { ms: mark.startTime - gesture, layers: mark.detail.layers, lowres: mark.detail.lowres,
                              decode: decodes[0].detail } : null;
            }""", reduce)
            zooms.append({"notch": notch, "ms": elapsed, "decode": decode, "reduce": reduce,
                          "region": detail.get_attribute("data-region"),
                          "first": first["ms"] if first else elapsed, "first_layers": first["layers"] if first else None,
                          "first_decode": first["decode"] if first else decode})
        page.keyboard.press("f")  # back to fit: the window drag repaints the 1024² base
        page.wait_for_timeout(200)
        page.evaluate("performance.clearMeasures('window-repaint')")
        page.mouse.move(x, y)
        page.mouse.down(button="right")  # a bare image pans with the left button; the right one windows
        for step in range(40):
            page.mouse.move(x + 3 * step, y + 2 * step)
        page.mouse.up(button="right")
        repaints = page.evaluate("performance.getEntriesByName('window-repaint').map((m) => [m.duration, Math.max(...m.detail)])")
        return {"zooms": zooms, "window": statistics.median(d for d, _ in repaints), "window_pixels": repaints[0][1]}


SCROLL_TIMES = """() => performance.getEntriesByName("reference-lines").map((m) => ({
  start: m.startTime, duration: m.duration, key: window.benchKeys.filter((t) => t <= m.startTime).pop() ?? null }))"""


def reference_lines(browser_type, url: str, steps: int = 30) -> dict:
    """The head study 2x2 (CT axial focused, the MR and the localizer beside it): ↓ through the CT, each
    key → the reference lines on the other viewports recomputed and redrawn (web/linking.js)."""
    with new_browser_page(browser_type, url) as page:
        page.evaluate("window.benchKeys = []; document.addEventListener('keydown', (e) => "
                      "window.benchKeys.push(e.timeStamp), { capture: true })")
        page.locator(".cell").first.focus()
        page.evaluate("performance.clearMeasures('reference-lines')")
        for _ in range(steps):
            page.keyboard.press("ArrowDown")
            page.wait_for_timeout(60)  # a radiologist's fast scroll: about 16 slices a second
        times = [t for t in page.evaluate(SCROLL_TIMES) if t["key"] is not None]
        lines = page.evaluate("[...document.querySelectorAll('.cell')].filter((c) => c.dataset.referenceLine).length")
        return {"update": statistics.median(t["start"] + t["duration"] - t["key"] for t in times),
                "draw": statistics.median(t["duration"] for t in times), "lines": lines, "count": len(times)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", choices=("load", "interaction"), help="measure one part (default: both)")
    parser.add_argument("--static", type=Path, default=ROOT / "static",
                        help="the build to measure (default static/; a copy keeps a rebuild meanwhile out)")
    parser.add_argument("--baseline", type=Path, help="another static/ build whose zooms are measured alongside")
    parser.add_argument("--cpus", help="CPU numbers to run on, e.g. 0,1 (default: all this process may use)")
    args = parser.parse_args()
    if args.cpus:
        os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
    print(f"cores: {len(os.sched_getaffinity(0))}", file=sys.stderr)
    cache = ROOT / ".cache" / "bench-study"
    (cache / "store").mkdir(parents=True, exist_ok=True)
    server = make_server(str(args.static), "127.0.0.1", 0, jpip_root=str(cache / "store"))
    base = f"http://127.0.0.1:{server.server_address[1]}"
    store, study, head = demo_study(cache, base)
    for name in ("ct_phantom_2048.j2k", "ct_phantom_2048.jhc"):
        (store / name).write_bytes((args.static / "data" / name).read_bytes())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    servers = [server]
    if args.baseline:
        other = make_server(str(args.baseline), "127.0.0.1", 0, jpip_root=str(cache / "store"))
        threading.Thread(target=other.serve_forever, daemon=True).start()
        servers.append(other)
    pages = {"CT 2048² by JPIP (?jpip=)": f"{base}/?jpip=/jpip?target=ct_phantom_2048.j2k",
             "demo study, chest CR 2048×2500 ×2 (?study=)": f"{base}/?study={study}"}
    loads = {name: [] for name in pages}
    zoomed = {"CT 2048², JPEG 2000 Part 1": pages["CT 2048² by JPIP (?jpip=)"],
              "CT 2048², HTJ2K": f"{base}/?jpip=/jpip?target=ct_phantom_2048.jhc"}
    if args.baseline:
        old = f"http://127.0.0.1:{servers[1].server_address[1]}"
        zoomed = {**zoomed, "CT 2048², JPEG 2000 Part 1, baseline build": f"{old}/?jpip=/jpip?target=ct_phantom_2048.j2k",
                  "CT 2048², HTJ2K, baseline build": f"{old}/?jpip=/jpip?target=ct_phantom_2048.jhc"}
    interactions = {name: [] for name in zoomed}
    spatial = []
    with sync_playwright() as playwright:
        for run in range(args.runs):
            for name, url in pages.items():
                if args.only != "interaction":
                    loads[name].append(first_image(playwright.chromium, url))
            if args.only != "load":
                for name, url in zoomed.items():
                    interactions[name].append(interaction(playwright.chromium, url))
                spatial.append(reference_lines(playwright.chromium, f"{base}/?study={head}&layout=2x2"))
            print(f"run {run + 1}/{args.runs} done", file=sys.stderr)
    for running in servers:
        running.shutdown()

    def median(values):
        return f"{statistics.median(values):,.0f}"

    print(f"\nMedians over {args.runs} runs (new browser each), milliseconds; 1280×720 page, loopback, "
          f"{len(os.sched_getaffinity(0))} cores\n")
    if args.only != "interaction":
        print_loads(loads, median)
    if args.only != "load":
        for name, runs in interactions.items():
            print_interactions(name, runs, median)
        print_zoom_pictures(interactions, median)
        print("\n| demo head study 2x2, ↓ through the CT (a key each 60 ms) | median ms | viewports with a line |")
        print("|---|---:|---:|")
        print(f"| key → reference lines recomputed and drawn | {median([r['update'] for r in spatial])} | "
              f"{spatial[0]['lines']} |")
        print(f"| of which computing and drawing them (web/linking.js) | "
              f"{statistics.median(r['draw'] for r in spatial):.2f} | |")
    return 0


def print_loads(loads, median) -> None:
    print("| page | navigation → first image, cold | warm | Python ready → first image, cold | warm |")
    print("|---|---:|---:|---:|---:|")
    for name, runs in loads.items():
        print(f"| {name} | {median([r['cold'] for r in runs])} | {median([r['warm'] for r in runs])} | "
              f"{median([r['ready_to_first'] for r in runs])} | {median([r['warm_ready_to_first'] for r in runs])} |")


def print_zoom_pictures(interactions, median) -> None:
    """The 2x zoom (notch 2) of every variant side by side: first picture at full resolution, lossless."""
    print("\n| ctrl+wheel 2x → full resolution (notch 2) | first picture painted | its layers | its decoding "
          "| lossless painted | its decoding | runs |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, runs in interactions.items():
        zooms = [r["zooms"][1] for r in runs if r["zooms"][1]["region"] not in ("none", "held")]
        if not zooms:
            continue
        layers = sorted({str(z["first_layers"]) for z in zooms})
        print(f"| {name} | {median([z['first'] for z in zooms])} | {'/'.join(layers)} | "
              f"{median([z['first_decode'] for z in zooms])} | {median([z['ms'] for z in zooms])} | "
              f"{median([z['decode'] for z in zooms])} | {len(zooms)} |")


def print_interactions(name, interactions, median) -> None:
    print(f"\n| interaction ({name}, fitted at 1/2) | median ms | of which decoding | target |")
    print("|---|---:|---:|---:|")
    for k, first in enumerate(interactions[0]["zooms"]):
        runs = [r["zooms"][k] for r in interactions]
        if first["region"] in ("none", "held"):
            what = "the fitted base" if first["region"] == "none" else "the detail already shown"
            print(f"| ctrl+wheel notch {first['notch']} (√2 each): {what} holds the view, nothing asked | 0 | | 150 |")
            continue
        x0, y0, x1, y1 = map(int, first["region"].split(","))
        print(f"| ctrl+wheel notch {first['notch']} (√2 each) → refined region painted, {x1 - x0}×{y1 - y0} at "
              f"1/{2 ** int(first['reduce'])} | {median([z['ms'] for z in runs])} | {median([z['decode'] for z in runs])} | 150 |")
    pixels = interactions[0]["window_pixels"]
    print(f"| window/level drag, per repaint ({pixels:,} samples) | "
          f"{statistics.median(r['window'] for r in interactions):.1f} | | 16 |")


if __name__ == "__main__":
    sys.exit(main())
