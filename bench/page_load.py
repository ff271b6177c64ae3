"""Cold page loads in headless Chromium: how long until Pyodide, pyjpip and the first image are ready.

    .venv/bin/python bench/page_load.py [--runs 5]

Each run starts a new browser (empty caches), loads the page and reads the page's performance marks.
Variants are interleaved run by run so machine noise hits them alike; the table shows medians.
Every variant takes the viewer's one loading path (the Python worker, then JPIP served in the worker for
an ordinary object). Decode time is measured inside the decode worker around OpenJPEG's decode call.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import threading
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from pyjpip.transport.http_server import make_server  # noqa: E402

CHROMIUM_ARGS = ["--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-quic", "--disable-gpu"]
VARIANTS = {
    "precompiled bundle, CT 2048² at fit (1/2)": "dicom=data/ct_phantom_2048.dcm&reduce=1",
    "plain wheels, CT 2048² at fit (1/2)": "packages=wheels&dicom=data/ct_phantom_2048.dcm&reduce=1",
    "precompiled bundle, CT 2048² full resolution": "dicom=data/ct_phantom_2048.dcm&reduce=0",
    "precompiled bundle, CT 2048² at 1/8": "dicom=data/ct_phantom_2048.dcm&reduce=3",
}
READ_MARKS = """() => {
  const marks = Object.fromEntries(performance.getEntriesByType("mark").map((m) => [m.name, m]));
  const decodes = performance.getEntriesByName("decode-base");
  return { ready: marks["python-ready"].startTime, painted: marks["first-image-painted"].startTime,
           decode: decodes.length ? decodes[decodes.length - 1].detail : 0 };
}"""


def measure(browser_type, base: str, query: str) -> dict:
    browser = browser_type.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=CHROMIUM_ARGS)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        page.goto(f"{base}?{query}")
        page.wait_for_function("['painted', 'error'].includes(document.body.dataset.state)", timeout=120_000)
        if page.evaluate("document.body.dataset.state") != "painted":
            raise RuntimeError(page.locator("#message").text_content())
        return page.evaluate(READ_MARKS)
    finally:
        browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    server = make_server(str(ROOT / "static"), "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    results = {name: [] for name in VARIANTS}
    with sync_playwright() as playwright:
        for run in range(args.runs):
            for name, query in VARIANTS.items():
                results[name].append(measure(playwright.chromium, base, query))
            print(f"run {run + 1}/{args.runs} done", file=sys.stderr)
    server.shutdown()

    def median(values):
        return f"{statistics.median(values):,.0f}"

    print(f"\nMedians over {args.runs} cold loads (new browser each), milliseconds from navigation start\n")
    print("| variant | Python ready (worker) | first image painted | last decode of the base |")
    print("|---|---:|---:|---:|")
    for name, runs in results.items():
        print(f"| {name} | {median([r['ready'] for r in runs])} | {median([r['painted'] for r in runs])} | "
              f"{median([r['decode'] for r in runs])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
