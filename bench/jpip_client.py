"""JPIP client speed and efficiency.

    .venv/bin/python bench/jpip_client.py [--runs 5] [--no-pyodide]

1. Parse + rebuild: a recorded whole-image response (16-bit CT phantoms, 2048² and 4096²) is fed
   to a fresh client in 64 kB pieces (parse, cache), then the full-resolution codestream is
   rebuilt; MB/s of the response, medians, on CPython and under Pyodide in Node side by side.
2. Efficiency: a scripted 20-window pan/zoom sequence on the 4096² image against the server core,
   in session and stateless modes: bytes received / bytes of the union of the data-bins the
   windows need (1.00 means nothing was sent twice and nothing unneeded was sent).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pyjpip.jpip.client import JPIPClient, ViewWindow  # noqa: E402
from pyjpip.jpip.picture import rebuild_served  # noqa: E402

PIECE = 1 << 16


def measure_parse_and_rebuild(responses: dict[str, bytes], runs: int) -> dict:
    """Median seconds to feed each recorded response to a fresh client, and to rebuild from it."""
    results = {}
    for name, body in responses.items():
        feed, rebuild = [], []
        for _ in range(runs):
            client = JPIPClient("http://bench.test/jpip?target=x.j2k")
            client.receive_headers(200, {})
            started = time.perf_counter()
            for start in range(0, len(body), PIECE):
                client.receive_body(body[start : start + PIECE])
            client.end_of_body()
            feed.append(time.perf_counter() - started)
            started = time.perf_counter()
            view = rebuild_served(client, ViewWindow())
            rebuild.append(time.perf_counter() - started)
        results[name] = {"bytes": len(body), "rebuilt": len(view.codestream),
                         "parse and cache": statistics.median(feed), "rebuild": statistics.median(rebuild)}
    return results


def pan_zoom_sequence(size: int) -> list[ViewWindow]:
    """Fit, zoom in twice, pan around at each scale, zoom back out: 20 windows."""
    windows = [ViewWindow(fsiz=(512, 512)), ViewWindow(fsiz=(1024, 1024))]
    for scale, step in ((1024, 128), (2048, 256), (4096, 512)):
        view = 512
        for i in range(5 if scale < 4096 else 7):
            x = min(scale - view, scale // 4 + i * step)
            y = min(scale - view, scale // 3 + (i % 3) * step // 2)
            windows.append(ViewWindow(fsiz=(scale, scale), roff=(x, y), rsiz=(view, view)))
    windows += [ViewWindow(fsiz=(2048, 2048), roff=(1000, 1000), rsiz=(1024, 1024)), ViewWindow(fsiz=(512, 512))]
    return windows[:20]


def efficiency(root: str, name: str, size: int) -> dict:
    from pyjpip.jpip.cache_model import CacheModel
    from pyjpip.jpip.request import parse_query
    from pyjpip.jpip.server import JPIPServer

    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from jpip_support import InProcessTransport

    from pyjpip.jpip.client import fetch_window

    sequence = pan_zoom_sequence(size)
    server = JPIPServer(root, response_cache_bytes=0)
    source, tid = server.store.open(name)
    union: dict = {}
    for window in sequence:  # what each window needs, from the server's own planner on an empty model
        query = "&".join(f"{k}={v}" for k, v in [("target", name), *window.fields()])
        plan, _, _ = server._plan(parse_query(query), source, tid, [0], CacheModel())
        for item in plan:
            union[item.key] = max(union.get(item.key, 0), item.end)
    needed = sum(union.values())
    results = {}
    for mode in ("session", "stateless"):
        client = JPIPClient(f"http://bench.test/jpip?target={name}", stateless=mode == "stateless")
        transport = InProcessTransport(JPIPServer(root, response_cache_bytes=0), piece=PIECE)
        requests = sum(fetch_window(client, window, transport) for window in sequence)
        results[mode] = {"requests": requests, "received": client.bytes_received, "needed": needed}
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-pyodide", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    from codestream_engine import make_images

    from pyjpip.jpip.server import JPIPServer

    images = make_images(os.path.join(ROOT, ".cache", "bench"))
    root = os.path.dirname(images[0])
    server = JPIPServer(root, response_cache_bytes=0)
    responses = {}
    for path in images:
        name = os.path.basename(path)
        body = b"".join(server.handle("GET", f"target={name}&fsiz=65535,65535", time.monotonic()).body)
        recorded = os.path.join(root, name.replace(".j2k", ".jpp"))
        with open(recorded, "wb") as f:
            f.write(body)
        responses[name] = body
    table = {"CPython " + sys.version.split()[0]: measure_parse_and_rebuild(responses, args.runs)}
    if not args.no_pyodide:
        output = subprocess.run(["node", os.path.join(ROOT, "bench", "pyodide_client.mjs"), str(args.runs),
                                 *[p.replace(".j2k", ".jpp") for p in images]],
                                capture_output=True, text=True, check=True).stdout
        table.update(json.loads(output.strip().splitlines()[-1]))
    print(f"\nParse + cache, and rebuild, of a whole-image response; medians of {args.runs}; MB/s of the response\n")
    print("| interpreter | image | response bytes | parse+cache ms | MB/s | rebuild ms | MB/s | both MB/s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for interpreter, files in table.items():
        for name, r in files.items():
            both = r["parse and cache"] + r["rebuild"]
            print(f"| {interpreter} | {name} | {r['bytes']:,} | {r['parse and cache'] * 1000:.1f} | "
                  f"{r['bytes'] / r['parse and cache'] / 1e6:.0f} | {r['rebuild'] * 1000:.1f} | "
                  f"{r['bytes'] / r['rebuild'] / 1e6:.0f} | {r['bytes'] / both / 1e6:.0f} |")
    name = os.path.basename(images[1])
    print(f"\n20-window pan/zoom sequence on {name}\n")
    print("| mode | requests | bytes received | union of needed data-bins | ratio |")
    print("|---|---:|---:|---:|---:|")
    for mode, r in efficiency(root, name, 4096).items():
        print(f"| {mode} | {r['requests']} | {r['received']:,} | {r['needed']:,} | {r['received'] / r['needed']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
