"""Load, idle connections and slow readers: the dev server against the production command.

    .venv/bin/python bench/load.py [--seconds 60] [--clients 50] [--workers 2,4]

Images: 20 files, ten 2048² and ten 4096² (copies of bench/codestream_engine.py's phantoms: 16-bit
lossless, RPCL, 128² precincts, 4 layers), each its own target to the server.

1. Load: ``--clients`` pyjpip clients (in 5 processes) view images for ``--seconds``: each picks an
   image and a mode, half of them a session (cnew, closed with cclose after), half stateless
   (model= with what is held), and asks for a fitted view, then three 512² regions at full
   resolution and one at half. Every request's latency is timed; any failure is an error. "bytes
   received / new" is message bytes that arrived over those not already held (1.00: nothing sent
   twice). Server RSS is read from /proc (master and workers) after a warm-up of the same load, at
   half time and at the end, anonymous (heap) apart from file-backed (the images' memory maps).
2. Idle: one client's sequential fitted/region requests, timed, with no other connection, with
   500 kept-alive idle connections (each made one request), and with 500 connections that never
   send a byte (closed by the server after 10 s).
3. Slow readers: the same client while 40 others each take 1 byte a second of a whole 4096² image.

``--soak BLOCKS`` runs the load's view sequences through one core in this process instead and prints
the heap after each block of 150, to see whether it levels off.

The client processes share the 2 cores with the server: figures are for comparison side by side.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

from pyjpip.jpip.client import JPIPClient, ViewWindow, fetch_window  # noqa: E402
from pyjpip.transport.http_client import HTTPTransport  # noqa: E402

PROCESSES = 5
IMAGES = [(f"ct2048-{n}.j2k", 2048) for n in range(10)] + [(f"ct4096-{n}.j2k", 4096) for n in range(10)]


def make_root(folder: str) -> str:
    from codestream_engine import make_images

    small, large = make_images(os.path.join(ROOT, ".cache", "bench"))
    root = os.path.join(folder, "images")
    os.makedirs(root, exist_ok=True)
    for name, size in IMAGES:
        shutil.copy(small if size == 2048 else large, os.path.join(root, name))
    return root


# --- servers -----------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`pyjpip serve` as a process: the dev server (workers 0) or the production command."""

    def __init__(self, root: str, workers: int, sessions: str):
        self.port = free_port()
        command = [sys.executable, "-m", "pyjpip", "serve", root, "--port", str(self.port), "--cache",
                   os.path.join(os.path.dirname(root), "index")]
        if workers:
            command += ["--workers", str(workers), "--sessions", sessions]
        self.label = f"production, {workers} workers" if workers else "dev server"
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"{self.label} did not start")
                time.sleep(0.1)
        time.sleep(1.0 if workers else 0.2)  # every worker up

    def memory_mb(self) -> tuple[float, float]:
        """Resident memory of the server's processes: (anonymous, file-backed) MB. The second is the
        image files' memory maps, pages the kernel may drop; a leak would show in the first."""
        anonymous = files = 0
        for pid in [self.process.pid, *self._children()]:
            try:
                with open(f"/proc/{pid}/status") as f:
                    fields = dict(line.split(":", 1) for line in f if ":" in line)
                anonymous += int(fields["RssAnon"].split()[0])
                files += int(fields["RssFile"].split()[0]) + int(fields["RssShmem"].split()[0])
            except (OSError, KeyError):
                pass
        return anonymous / 1024, files / 1024

    def _children(self) -> list[int]:
        try:
            with open(f"/proc/{self.process.pid}/task/{self.process.pid}/children") as f:
                return [int(p) for p in f.read().split()]
        except OSError:
            return []

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)


# --- load --------------------------------------------------------------------------------------

def views(size: int, rng: random.Random) -> list[ViewWindow]:
    out = [ViewWindow(fsiz=(512, 512))]
    for _ in range(3):
        out.append(ViewWindow(fsiz=(size, size), roff=(rng.randrange(size - 512), rng.randrange(size - 512)),
                              rsiz=(512, 512)))
    half = size // 2
    out.append(ViewWindow(fsiz=(half, half), roff=(rng.randrange(half - 512), rng.randrange(half - 512)),
                          rsiz=(512, 512)))
    return out


def client_thread(port: int, seconds: float, seed: int, out: dict, lock: threading.Lock) -> None:
    rng = random.Random(seed)
    transport = HTTPTransport(timeout=60)
    latencies, errors, received, new, sequences = [], 0, 0, 0, 0

    def timed(request, client):
        started = time.perf_counter()
        try:
            return transport(request, client)
        finally:
            latencies.append(time.perf_counter() - started)

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        name, size = rng.choice(IMAGES)
        client = JPIPClient(f"http://127.0.0.1:{port}/jpip?target={name}", stateless=rng.random() < 0.5)
        try:
            for view in views(size, rng):
                fetch_window(client, view, timed)
            closing = client.close_request()
            if closing is not None:
                timed(closing, client)
            sequences += 1
        except Exception:  # noqa: BLE001 - counted: the bench says how many failed
            errors += 1
        received += client.bytes_received
        new += client.bytes_new
    transport.close()
    with lock:
        out["latencies"] += latencies
        out["errors"] += errors
        out["received"] += received
        out["new"] += new
        out["sequences"] += sequences


def client_process(port: int, seconds: float, threads: int, seed: int) -> dict:
    out = {"latencies": [], "errors": 0, "received": 0, "new": 0, "sequences": 0}
    lock = threading.Lock()
    running = [threading.Thread(target=client_thread, args=(port, seconds, seed * 1000 + n, out, lock))
               for n in range(threads)]
    for t in running:
        t.start()
    for t in running:
        t.join()
    return out


def load(server: Server, clients: int, seconds: float, warm_up: float) -> dict:
    shares = [clients // PROCESSES + (n < clients % PROCESSES) for n in range(PROCESSES)]
    with ProcessPoolExecutor(PROCESSES) as pool:  # warm-up: the same load, not counted
        list(pool.map(client_process, [server.port] * PROCESSES, [warm_up] * PROCESSES, shares,
                      range(100, 100 + PROCESSES)))
        memory = [server.memory_mb()]
        started = time.monotonic()
        running = [pool.submit(client_process, server.port, seconds, share, n) for n, share in enumerate(shares)]
        time.sleep(seconds / 2)
        memory.append(server.memory_mb())
        results = [r.result() for r in running]
        elapsed = time.monotonic() - started
        memory.append(server.memory_mb())
    total = {"latencies": [], "errors": 0, "received": 0, "new": 0, "sequences": 0}
    for result in results:
        for key in total:
            total[key] += result[key]
    latencies = sorted(total["latencies"])
    return {"requests": len(latencies), "errors": total["errors"], "rate": len(latencies) / elapsed,
            "p50": percentile(latencies, 50), "p99": percentile(latencies, 99), "memory": memory, "ratio": total["received"] / max(total["new"], 1),
            "sequences": total["sequences"], "megabytes": total["received"] / 1e6}


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    return sorted(values)[min(len(values) - 1, int(len(values) * p / 100))] * 1000


# --- one client beside idle and slow ones ----------------------------------------------------

def normal_client(port: int, seconds: float) -> list[float]:
    """Sequential fitted and 512² region requests on one kept-alive connection: latencies in s."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    latencies, n = [], 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        name, size = IMAGES[n % len(IMAGES)]
        x = (n * 97) % (size - 512)
        query = (f"target={name}&fsiz=256,256" if n % 2 else
                 f"target={name}&fsiz={size},{size}&roff={x},{x}&rsiz=512,512")
        started = time.perf_counter()
        connection.request("GET", f"/jpip?{query}&type=jpp-stream")
        response = connection.getresponse()
        response.read()
        assert response.status == 200, response.status
        latencies.append(time.perf_counter() - started)
        n += 1
    connection.close()
    return latencies


def idle_connections(port: int, count: int, silent: bool) -> list[socket.socket]:
    held = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        if not silent:  # one request, then nothing: a viewer left open
            s.sendall(f"GET /jpip?target={IMAGES[0][0]}&fsiz=16,16 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            data = b""
            while b"\x00\x02\x00" not in data[-3:] and b"\x00\x01\x00" not in data[-3:]:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        held.append(s)
    return held


def open_count(held: list[socket.socket]) -> int:
    """How many of these connections the server has not closed."""
    alive = 0
    for s in held:
        s.setblocking(False)
        try:
            alive += s.recv(1) != b""  # b"" is the server's FIN; no data means open
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    return alive


def slow_reader(port: int, stop: threading.Event, taken: list[int]) -> None:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    name, size = IMAGES[-1]
    s.sendall(f"GET /jpip?target={name}&fsiz={size},{size} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    while not stop.wait(1.0):
        try:
            if not s.recv(1):
                break
            taken[0] += 1
        except OSError:
            break
    s.close()


def neighbours(server: Server, seconds: float) -> list[tuple]:
    rows = []
    base = normal_client(server.port, seconds)
    rows.append(("none", base, ""))
    for silent in (False, True):
        held = idle_connections(server.port, 500, silent)
        latencies = normal_client(server.port, seconds)
        still = open_count(held)
        if silent:
            time.sleep(11)
            note = f"{still} open during the run, {open_count(held)} 11 s later"
        else:
            note = f"{still} open at the end"
        rows.append((f"500 {'silent' if silent else 'kept-alive idle'}", latencies, note))
        for s in held:
            s.close()
    stop, taken = threading.Event(), [0]
    readers = [threading.Thread(target=slow_reader, args=(server.port, stop, taken)) for _ in range(40)]
    for r in readers:
        r.start()
    time.sleep(1)
    latencies = normal_client(server.port, seconds)
    stop.set()
    for r in readers:
        r.join()
    rows.append(("40 reading 1 byte/s", latencies, f"{taken[0]} bytes taken by them"))
    return [(label, percentile(lat, 50), percentile(lat, 99), percentile(lat, 99) / percentile(base, 99), note)
            for label, lat, note in rows]


def soak(root: str, blocks: int, per_block: int) -> None:
    """The load's view sequences through one JPIPServer core in this process (no HTTP): resident
    heap after each block, to see whether it levels off."""
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    import gc

    from jpip_support import InProcessTransport
    from pyjpip.archive.sessions import FolderSessions
    from pyjpip.jpip.server import JPIPServer

    server = JPIPServer(root, sessions=FolderSessions(os.path.join(os.path.dirname(root), "soak-sessions")))
    transport, rng = InProcessTransport(server, piece=65536), random.Random(1)
    print(f"\nOne process, {per_block} view sequences a block (the load's mix, in process)\n")
    print("| sequences | heap MB |")
    print("|---:|---:|")
    for block in range(1, blocks + 1):
        for _ in range(per_block):
            name, size = rng.choice(IMAGES)
            client = JPIPClient(f"http://x/jpip?target={name}", stateless=rng.random() < 0.5)
            for view in views(size, rng):
                fetch_window(client, view, transport)
            closing = client.close_request()
            if closing is not None:
                transport(closing, client)
        gc.collect()
        with open("/proc/self/status") as f:
            heap = next(int(line.split()[1]) for line in f if line.startswith("RssAnon:"))
        print(f"| {block * per_block:,} | {heap / 1024:.0f} |", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--workers", default="2,4", help="production worker counts, comma-separated")
    parser.add_argument("--warm-up", type=float, default=30, help="seconds of the same load before measuring")
    parser.add_argument("--neighbour-seconds", type=float, default=10)
    parser.add_argument("--soak", type=int, default=0, metavar="BLOCKS",
                        help="instead: BLOCKS blocks of 150 view sequences through one core in process")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="pyjpip-load-")
    root = make_root(folder)
    if args.soak:
        try:
            soak(root, args.soak, 150)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return 0
    load_rows, neighbour_rows = [], []
    try:
        for workers in [0, *map(int, args.workers.split(","))]:
            sessions = os.path.join(folder, f"sessions-{workers}")
            server = Server(root, workers, sessions)
            try:
                print(f"[load] {server.label}", file=sys.stderr, flush=True)
                load_rows.append((server.label, load(server, args.clients, args.seconds, args.warm_up)))
                if workers in (0, 2):
                    neighbour_rows += [(server.label, *row) for row in neighbours(server, args.neighbour_seconds)]
            finally:
                server.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\n{args.clients} clients for {args.seconds:.0f} s over loopback (client processes on the same 2 cores)\n")
    print("| server | requests | errors | req/s | p50 ms | p99 ms | RSS heap MB start → half → end | RSS mapped "
          "files MB start → end | MB received | bytes received / new |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, r in load_rows:
        heaps = " → ".join(f"{heap:.0f}" for heap, _ in r["memory"])
        files = f"{r['memory'][0][1]:.0f} → {r['memory'][-1][1]:.0f}"
        print(f"| {label} | {r['requests']:,} | {r['errors']} | {r['rate']:,.0f} | {r['p50']:.1f} | {r['p99']:.1f} | "
              f"{heaps} | {files} | {r['megabytes']:,.0f} | {r['ratio']:.3f} |")
    print(f"\nOne client's requests ({args.neighbour_seconds:.0f} s, sequential) beside other connections\n")
    print("| server | beside | p50 ms | p99 ms | p99 / alone | |")
    print("|---|---|---:|---:|---:|---|")
    for label, beside, p50, p99, ratio, note in neighbour_rows:
        print(f"| {label} | {beside} | {p50:.1f} | {p99:.1f} | {ratio:.2f} | {note} |")
    return 0 if all(r["errors"] == 0 for _, r in load_rows) else 1


if __name__ == "__main__":
    sys.exit(main())
