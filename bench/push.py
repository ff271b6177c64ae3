"""Storage SCP throughput: hollow instances stored per second, files, SQLite and PostgreSQL, over one
association and over four in parallel.

    .venv/bin/python bench/push.py [--instances 200] [--runs 3]

`pyjpip store-scp` runs as a process of its own; the SCU (pyjpip.network.scu) sends from this one,
one thread per association. The objects are small hollow MR objects (64 x 64, ~2 kB data sets), so
the figures are the SCP's and the network layer's cost per instance, not the bytes'. The first row
is the floor: pynetdicom's own round trip with a handler that stores nothing (same machine, same
TCP_NODELAY). PostgreSQL is a throwaway server (Debian's postgresql, fsync off as in the tests);
SQLite and the files are fsync'd for every instance, as the SCP acknowledges only what is on disk.
Medians of --runs runs, all rows measured in one run of this script.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from network_support import hollow_copies, new_database, postgres_server, store_scp, without_pixels  # noqa: E402
from pyjpip.dicom.hollow import JPIP_REFERENCED  # noqa: E402
from pyjpip.network import scu  # noqa: E402

URL = "http://sender.test:8000/jpip?target=images/mr.j2k"
FLOOR_SCP = """
import socket, sys
from pynetdicom import AE, evt, _config
from pyjpip.network.scp import image_storage_classes, no_delay
_config.STORE_RECV_CHUNKED_DATASET = True
ae = AE(); ae.maximum_associations = 16
for uid in image_storage_classes():
    ae.add_supported_context(uid, ["1.2.840.10008.1.2.4.94"])
ae.start_server(("127.0.0.1", int(sys.argv[1])), block=True,
                evt_handlers=[(evt.EVT_C_STORE, lambda event: 0), (evt.EVT_CONN_OPEN, no_delay)])
"""


def send(port: int, paths: list[Path], associations: int) -> float:
    """Instances per second for ``paths`` sent over ``associations`` parallel associations."""
    chunks = [[str(p) for p in paths[n::associations]] for n in range(associations)]
    failures = []

    def one(chunk):
        report = scu.store("127.0.0.1", port, chunk, "BENCH", "PYJPIP")
        failures.extend(report.failed)

    threads = [threading.Thread(target=one, args=(c,)) for c in chunks]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{len(failures)} instances failed: {failures[0].describe()}")
    return len(paths) / seconds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def floor(paths, runs: int) -> list[tuple]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", FLOOR_SCP, str(port)], cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        from network_support import wait_for_port

        wait_for_port(port, process)
        return [("pynetdicom, handler storing nothing", n, statistics.median(send(port, paths, n) for _ in range(runs)))
                for n in (1, 4)]
    finally:
        process.terminate()
        process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="pyjpip-bench-push-"))
    base = without_pixels(ROOT / "static" / "data" / "mr_small_jp2k.dcm")
    paths = hollow_copies(base, scratch / "outbox", args.instances, JPIP_REFERENCED, URL, series=4)
    rows = floor(paths, args.runs)
    with postgres_server() as postgres:
        for label in ("files", "SQLite", "PostgreSQL"):
            for associations in (1, 4):
                rates = []
                for run in range(args.runs):
                    store = scratch / f"{label}-{associations}-{run}"
                    options = {"files": ["--files"], "SQLite": [],
                               "PostgreSQL": ["--db", new_database(postgres)]}[label]
                    with store_scp(store, *options) as scp:
                        rates.append(send(scp.port, paths, associations))
                rows.append((f"pyjpip store-scp, {label}", associations, statistics.median(rates)))
    shutil.rmtree(scratch, ignore_errors=True)
    print(f"\n{args.instances} hollow instances (~2 kB data sets), medians of {args.runs} runs, "
          f"{os.cpu_count()} cores\n")
    print(f"{'receiver':<40} {'associations':>12} {'instances/s':>12} {'ms each':>8}")
    for label, associations, rate in rows:
        print(f"{label:<40} {associations:>12} {rate:>12.1f} {1000 / rate:>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
