"""Codestream engine speed: index building (from PLT, and from packet headers) and rebuild.

    .venv/bin/python bench/codestream_engine.py [--runs 5] [--no-pyodide]

Test images: CT-like phantoms of 2048² and 4096², 16-bit, lossless, RPCL, 128² precincts at every
resolution, 4 layers, PLT markers (opj_compress). The same measurement runs on CPython and under Pyodide in Node, side by
side; the table shows medians. Rates are source bytes per second (output bytes for rebuilds).
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

from pyjpip.codestream.databins import DataBins  # noqa: E402
from pyjpip.codestream.packet_index import index_codestream  # noqa: E402
from pyjpip.codestream.rebuild import rebuild_codestream  # noqa: E402
from pyjpip.codestream.tile_parts import read_codestream  # noqa: E402


def _timed(function, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure_files(paths: list[str], runs: int) -> dict:
    """Median seconds per operation and file; runs anywhere pyjpip runs (no numpy)."""
    results = {}
    for path in paths:
        with open(path, "rb") as f:
            data = f.read()
        codestream = read_codestream(data)
        bins = DataBins(index_codestream(codestream))
        main = bins.main_header().read(codestream.data)
        headers = {t: bins.tile_header(t).read(codestream.data) for t in range(bins.tiles)}
        precincts = {b.identifier: b.read(codestream.data) for b in bins.precincts()}
        full = rebuild_codestream(main, headers, precincts)
        results[os.path.basename(path)] = {
            "bytes": len(data),
            "rebuilt_bytes": len(full.codestream),
            "index from PLT": _timed(lambda: index_codestream(read_codestream(data), True), runs),
            "index from packet headers": _timed(lambda: index_codestream(read_codestream(data), False), runs),
            "rebuild, all bins": _timed(lambda: rebuild_codestream(main, headers, precincts), runs),
            "rebuild, 1/4 size, 1 layer": _timed(lambda: rebuild_codestream(main, headers, precincts, reduce=2,
                                                                            layers=1), runs),
        }
    return results


def make_images(folder: str) -> list[str]:
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    import demo_data
    from reference import opj_encode

    paths = []
    os.makedirs(folder, exist_ok=True)
    for size in (2048, 4096):
        path = os.path.join(folder, f"ct{size}-rpcl-plt.j2k")
        if not os.path.exists(path):  # 128² precincts at every resolution, as JPIP-friendly files have
            data = opj_encode([demo_data.ct_phantom(size)], 16,
                              ["-p", "RPCL", "-c", ",".join(["[128,128]"] * 6), "-r", "80,20,5,1", "-PLT", "-n", "6"])
            with open(path, "wb") as f:
                f.write(data)
        paths.append(path)
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-pyodide", action="store_true")
    args = parser.parse_args()
    paths = make_images(os.path.join(ROOT, ".cache", "bench"))
    runs = {"CPython " + sys.version.split()[0]: measure_files(paths, args.runs)}
    if not args.no_pyodide:
        output = subprocess.run(["node", os.path.join(ROOT, "bench", "pyodide_engine.mjs"), str(args.runs), *paths],
                                capture_output=True, text=True, check=True).stdout
        runs.update(json.loads(output.strip().splitlines()[-1]))
    print(f"\nMedians over {args.runs} runs; MB/s of the source file (of the output for rebuilds)\n")
    print("| interpreter | file | operation | median ms | MB/s |")
    print("|---|---|---|---:|---:|")
    for interpreter, files in runs.items():
        for name, result in files.items():
            for operation, seconds in result.items():
                if operation in ("bytes", "rebuilt_bytes"):
                    continue
                size = result["rebuilt_bytes"] if operation.startswith("rebuild, all") else result["bytes"]
                print(f"| {interpreter} | {name} | {operation} | {seconds * 1000:,.1f} | {size / seconds / 1e6:,.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
