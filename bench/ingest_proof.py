"""What the proof at ingest costs: `pyjpip ingest` with it (the default) and with --no-verify, side by side.

    .venv/bin/python bench/ingest_proof.py [--runs 5]

Sources, made here: a 2048 x 2048 CT-like slice of 12 bits (native Explicit VR Little Endian, RLE,
JPEG 2000 lossless as most archives hold it: one tile, LRCP, maximal precincts, re-packetized at
ingest), a 512 x 512 x 40-frame signed 16-bit CT volume (native) and a 2048 x 2500 CR in JPEG-LS
lossless. Each is ingested into a new store, with and without the proof, interleaved, --runs times;
the table gives medians of wall time and of CPU time (this process: the proof decodes in it), the
cost per source MB and the ratio with/without.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

import numpy as np  # noqa: E402

from pixel_sources import EXPLICIT, J2K_LOSSLESS, JPEG_LS_LOSSLESS, RLE, Case, make  # noqa: E402
from pyjpip.dicom.ingest import ingest  # noqa: E402

SOURCES = [
    ("CT 2048² 12-bit, native", Case("ct_native", EXPLICIT, 16, 12, rows=2048, columns=2048, full_range=False)),
    ("CT 2048² 12-bit, RLE", Case("ct_rle", RLE, 16, 12, rows=2048, columns=2048, full_range=False)),
    ("CT 2048² 12-bit, JPEG 2000 (re-packetized)", Case("ct_j2k", J2K_LOSSLESS, 16, 12, rows=2048, columns=2048,
                                                         full_range=False)),
    ("CT 512² x 40 16-bit signed, native", Case("ct_volume", EXPLICIT, 16, 16, True, frames=40, rows=512, columns=512,
                                                full_range=False)),
    ("CR 2048 x 2500 12-bit, JPEG-LS", Case("cr_jls", JPEG_LS_LOSSLESS, 16, 12, rows=2500, columns=2048,
                                            full_range=False)),
]


def smooth(case: Case) -> np.ndarray:
    """Image-like samples (a smooth body, detail and noise) rather than noise, so coders compress as on real images."""
    y, x = np.mgrid[0:case.rows, 0:case.columns].astype(np.float32)
    y, x = y / case.rows - 0.5, x / case.columns - 0.5
    body = (x * x + y * y < 0.2) * 1000 + 300 * np.sin(40 * x) * np.cos(30 * y) * (x * x + y * y < 0.1)
    rng = np.random.default_rng(1)
    frames = [body + rng.normal(0, 20, body.shape) + 50 * k for k in range(case.frames)]
    high = (1 << (case.bits_stored - 1)) - 1 if case.signed else (1 << case.bits_stored) - 1
    low = -high - 1 if case.signed else 0
    offset = 0 if case.signed else 1024
    dtype = np.int16 if case.signed else np.uint16
    return np.clip(np.stack(frames) + offset, low, high).astype(dtype)


def measure(path: str, verify: bool) -> tuple[float, float]:
    store = tempfile.mkdtemp(prefix="bench-ingest-")
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        report = ingest([path], store, "http://bench.test", verify=verify)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert report.ingested == [path], report.failed
        return wall, cpu
    finally:
        shutil.rmtree(store)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    import pixel_sources

    pixel_sources.samples = smooth  # image-like content for this bench's objects (make() draws from it)
    folder = tempfile.mkdtemp(prefix="bench-sources-")
    rows = []
    try:
        for label, case in SOURCES:
            path, _ = make(case, Path(folder))
            megabytes = os.path.getsize(path) / 1e6
            timings = {True: [], False: []}
            for _ in range(args.runs):
                for verify in (True, False):  # interleaved: both see the same machine
                    timings[verify].append(measure(str(path), verify))
            medians = {v: (statistics.median(t[0] for t in timings[v]), statistics.median(t[1] for t in timings[v]))
                       for v in timings}
            rows.append((label, megabytes, medians[True], medians[False]))
    finally:
        shutil.rmtree(folder)
    print(f"ingest with the proof (default) and with --no-verify; medians of {args.runs} runs, interleaved\n")
    print(f"| source | MB | proof: wall s | proof: CPU s | --no-verify: wall s | --no-verify: CPU s | "
          "proof cost, CPU s/MB | ratio (CPU) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, megabytes, (wall, cpu), (plain_wall, plain_cpu) in rows:
        print(f"| {label} | {megabytes:.1f} | {wall:.2f} | {cpu:.2f} | {plain_wall:.2f} | {plain_cpu:.2f} | "
              f"{(cpu - plain_cpu) / megabytes:.3f} | {cpu / plain_cpu:.2f}x |")


if __name__ == "__main__":
    main()
