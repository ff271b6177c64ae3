"""Re-packetizing against re-encoding: what ingest does with a JPEG 2000 frame that is not JPIP-friendly.

    .venv/bin/python bench/repacketize.py [--runs 3] [--sizes 2048,4096]

Sources: CT-like 16-bit (12 bits stored) phantoms of 2048² and 4096², coded by OpenJPEG
(imagecodecs) as most archives hold them: one tile, maximal precincts, LRCP, no PLT, 6 levels;
lossless (5-3) and lossy (9-7 at a PSNR of 50 dB, about 5:1 against lossless). Re-packetize: pyjpip.codestream.repacketize (no decoding).
Re-encode: decode (OpenJPEG) and encode losslessly from the samples (encode_frame: OpenJPEG,
then the re-packetizer for precincts and PLT), what ingest did before. Medians of --runs, both
measured side by side in one run; sizes are of the written codestream.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import imagecodecs  # noqa: E402
import numpy as np  # noqa: E402

from pyjpip.codestream.repacketize import repacketize  # noqa: E402
from pyjpip.dicom.encode import encode_frame  # noqa: E402


def phantom(size: int) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    body = (x * x + y * y < 0.2).astype(np.float32) * 1000
    detail = 300 * np.sin(40 * x) * np.cos(30 * y) * (x * x + y * y < 0.1)
    noise = np.random.default_rng(size).normal(0, 20, (size, size)).astype(np.float32)
    return np.clip(body + detail + noise + 1024, 0, 4095).astype(np.uint16)


def median_seconds(function, runs: int):
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="2048,4096")
    args = parser.parse_args()
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        image = phantom(size)
        for kind, options in (("lossless", {"level": 0, "reversible": True}), ("lossy 50 dB", {"level": 50})):
            source = imagecodecs.jpeg2k_encode(image, codecformat="J2K", bitspersample=12, resolutions=7, **options)
            repacked_seconds, repacked = median_seconds(lambda: repacketize(source).codestream, args.runs)

            def re_encode():
                return encode_frame(imagecodecs.jpeg2k_decode(source), 12, False)

            encoded_seconds, encoded = median_seconds(re_encode, args.runs)
            same = np.array_equal(imagecodecs.jpeg2k_decode(repacked), imagecodecs.jpeg2k_decode(source))
            rows.append((f"{size}² {kind}", len(source), repacked_seconds, len(repacked), encoded_seconds,
                         len(encoded), same))
    print(f"{'source':<18} {'source bytes':>13} | {'repacketize s':>13} {'bytes':>11} | {'re-encode s':>11} "
          f"{'bytes':>11} | {'time ratio':>10} {'size ratio':>10} | same samples")
    for name, source, rs, rb, es, eb, same in rows:
        print(f"{name:<18} {source:>13,} | {rs:>13.2f} {rb:>11,} | {es:>11.2f} {eb:>11,} | {es / rs:>9.1f}x "
              f"{eb / rb:>9.2f}x | {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
