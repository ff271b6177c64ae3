"""JPIP server speed: a request mix on 2048² and 4096² images, in-process and over HTTP.

    .venv/bin/python bench/jpip_server.py [--requests 200]

In-process rows time the sans-IO core (handle() and the whole body) with a warm index: median
wall time and CPU time per request. HTTP rows drive the dev server (one process, asyncio) and
gunicorn (2 workers) with one keep-alive client: requests/s and MB/s. Images are the bench
phantoms of bench/codestream_engine.py (16-bit lossless, RPCL, 128² precincts, 4 layers, PLT).
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

from codestream_engine import make_images  # noqa: E402
from pyjpip.jpip.server import JPIPServer  # noqa: E402
from pyjpip.transport.http_server import make_server  # noqa: E402

MIX = {
    "thumbnail fsiz=64": "fsiz=64,64",
    "fit to 512": "fsiz=512,512",
    "512² region, full resolution": "fsiz={w},{h}&roff={x},{y}&rsiz=512,512",
    "whole image": "fsiz={w},{h}",
}


def queries(name: str, size: int) -> dict[str, str]:
    x = y = size // 2 - 300  # off tile and precinct boundaries
    return {label: f"target={name}&" + q.format(w=size, h=size, x=x, y=y) for label, q in MIX.items()}


def in_process(root: str, name: str, size: int, count: int, cache: bool) -> list[tuple]:
    server = JPIPServer(root, response_cache_bytes=(64 << 20) if cache else 0)
    rows = []
    for label, query in queries(name, size).items():
        b"".join(server.handle("GET", query, time.monotonic()).body)  # warm the index and caches
        walls, cpus, sizes = [], [], []
        for _ in range(count):
            wall, cpu = time.perf_counter(), time.process_time()
            body = b"".join(server.handle("GET", query, time.monotonic()).body)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
            sizes.append(len(body))
        rows.append((label, statistics.median(walls), statistics.median(cpus), statistics.median(sizes)))
    response = server.handle("GET", queries(name, size)["fit to 512"] + "&cnew=http", time.monotonic())
    b"".join(response.body)
    cid = dict(response.headers)["JPIP-cnew"].split(",")[0].split("=")[1]
    walls, cpus = [], []
    for _ in range(count):
        wall, cpu = time.perf_counter(), time.process_time()
        body = b"".join(server.handle("GET", f"cid={cid}&fsiz=512,512", time.monotonic()).body)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    rows.append(("repeated window in a session (EOR only)", statistics.median(walls), statistics.median(cpus),
                 len(body)))
    return rows


def over_http(port: int, name: str, size: int, count: int) -> list[tuple]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    rows = []
    for label, query in queries(name, size).items():
        connection.request("GET", f"/jpip?{query}")
        connection.getresponse().read()
        started, total = time.perf_counter(), 0
        for _ in range(count):
            connection.request("GET", f"/jpip?{query}")
            total += len(connection.getresponse().read())
        elapsed = time.perf_counter() - started
        rows.append((label, count / elapsed, total / elapsed / 1e6))
    connection.close()
    return rows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    images = make_images(os.path.join(ROOT, ".cache", "bench"))
    root = os.path.dirname(images[0])
    sizes = {os.path.basename(p): int(os.path.basename(p)[2:6]) for p in images}

    print(f"\nIn-process core, warm index, medians of {args.requests} requests; 'planned' answers every request "
          "afresh, 'cached' lets repeated stateless requests hit the response cache\n")
    print("| image | request | planned wall ms | planned CPU ms | cached CPU ms | body bytes |")
    print("|---|---|---:|---:|---:|---:|")
    for name, size in sizes.items():
        planned = in_process(root, name, size, args.requests, cache=False)
        cached = in_process(root, name, size, args.requests, cache=True)
        for (label, wall, cpu, body), (_, _, cached_cpu, _) in zip(planned, cached):
            print(f"| {size}² | {label} | {wall * 1000:.3f} | {cpu * 1000:.3f} | {cached_cpu * 1000:.3f} | "
                  f"{int(body):,} |")

    server = make_server(None, "127.0.0.1", 0, jpip_root=root)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = free_port()
    gunicorn = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "gunicorn"), "-w", "2", "-b",
                                 f"127.0.0.1:{port}", "-k", "pyjpip.transport.asgi.Worker",
                                 "pyjpip.transport.asgi:application"],
                                env={**os.environ, "PYJPIP_ROOT": root}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        print(f"\nOver HTTP on loopback, one keep-alive client, {args.requests} requests each\n")
        print("| server | image | request | requests/s | MB/s |")
        print("|---|---|---|---:|---:|")
        for label, address in (("dev server (1 process)", server.server_address[1]), ("gunicorn -w 2", port)):
            for name, size in sizes.items():
                for request_label, rate, megabytes in over_http(address, name, size, args.requests):
                    print(f"| {label} | {size}² | {request_label} | {rate:,.0f} | {megabytes:,.1f} |")
    finally:
        gunicorn.terminate()
        gunicorn.wait(timeout=20)
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
