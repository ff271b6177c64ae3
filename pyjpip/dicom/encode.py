"""Lossless JPIP-friendly encoding of DICOM frames from samples (CPython tooling: numpy, imagecodecs).

JPIP-friendly means what lets a server send only what a view needs: precincts (128 x 128 at every
resolution), a lowest resolution of at most 64 pixels, RPCL order and PLT/TLM markers (the properties PS3.5 10.18 asks of HTJ2K RPCL). Part 1 goes through OpenJPEG in
imagecodecs, then the re-packetizer (one quality layer: imagecodecs writes no more). HTJ2K goes
through OpenJPH's ojph_compress (Debian openjph-tools), because imagecodecs' OpenJPH binding takes
no bit depth: a 12-bit frame would be coded as 16 bits, with another DC level shift, and disagree
with Bits Stored; signed samples go through imagecodecs (see encode_frame) and the re-packetizer.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

from pyjpip.codestream.repacketize import repacketize
from pyjpip.errors import DicomError

LOWEST_RESOLUTION = 64
PRECINCT = 128


def decomposition_levels(width: int, height: int) -> int:
    """Fewest levels that bring the larger side to at most 64 pixels (at least 1, if the image allows)."""
    levels = 0
    while max(width, height) > LOWEST_RESOLUTION << levels:
        levels += 1
    while levels > 0 and min(width, height) < (1 << levels):
        levels -= 1  # an encoder cannot split a side into fewer than one sample
    return levels


def encode_frame(pixels, precision: int, signed: bool, high_throughput: bool = False) -> bytes:
    """One frame (rows, columns[, 3]) as a lossless JPIP-friendly codestream; colour gets the RCT."""
    import numpy

    pixels = numpy.ascontiguousarray(pixels)
    height, width = pixels.shape[:2]
    components = 1 if pixels.ndim == 2 else pixels.shape[2]
    levels = decomposition_levels(width, height)
    planes = [pixels] if components == 1 else [pixels[:, :, c] for c in range(components)]
    if high_throughput and signed:
        # Debian's ojph_compress (OpenJPH 0.9) writes signed samples that OpenJPEG decodes wrongly
        # (tested): signed frames go through imagecodecs' newer OpenJPH, then the re-packetizer.
        import imagecodecs

        return repacketize(imagecodecs.htj2k_encode(pixels, reversible=True, resolutions=levels + 1)).codestream
    if high_throughput:
        return repacketize(_ojph_compress(planes, width, height, precision, levels)).codestream  # adds PLT/TLM
    import imagecodecs

    # OpenJPEG through imagecodecs (in memory, bundled in its wheel): it writes one quality layer
    # with maximal precincts in LRCP, and the re-packetizer makes that 128 x 128 precincts, RPCL
    # and PLT/TLM without touching a code-block. glymur would write precincts and layers itself,
    # but needs the system's libopenjp2 and a file to write to; opj_compress, raw files.
    codestream = imagecodecs.jpeg2k_encode(pixels, level=0, codecformat="J2K", reversible=True,
                                           bitspersample=precision, resolutions=levels + 1, mct=components == 3)
    return repacketize(codestream).codestream


def _ojph_compress(planes, width: int, height: int, precision: int, levels: int) -> bytes:
    """HTJ2K, reversible, RPCL, 128 x 128 precincts, from unsigned samples. Grey goes in as raw
    samples (ojph_compress's .yuv input, any precision); colour as a PPM, the one input
    ojph_compress applies the reversible colour transform to."""
    ojph_compress = shutil.which("ojph_compress")
    if not ojph_compress:
        raise DicomError("ojph_compress is needed to re-encode as HTJ2K (Debian: apt-get install openjph-tools)")
    if len(planes) not in (1, 3):
        raise DicomError(f"HTJ2K re-encoding takes grey or RGB samples, not {len(planes)} components")
    options = ["-num_decomps", str(levels), "-reversible", "true", "-prog_order", "RPCL",
               "-precincts", f"{{{PRECINCT},{PRECINCT}}}"]
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "frame.j2c")
        if len(planes) == 1:
            source = os.path.join(folder, "frame.yuv")
            with open(source, "wb") as f:
                f.write(planes[0].astype("<u2" if precision > 8 else "u1").tobytes())
            options += ["-dims", f"{{{width},{height}}}", "-num_comps", "1", "-signed", "false",
                        "-bit_depth", str(precision), "-downsamp", "{1,1}"]
        else:
            import numpy

            source = os.path.join(folder, "frame.ppm")
            with open(source, "wb") as f:  # PPM: interleaved, big-endian above 8 bits, depth from maxval
                f.write(f"P6\n{width} {height}\n{(1 << precision) - 1}\n".encode())
                f.write(numpy.stack(planes, axis=-1).astype(">u2" if precision > 8 else "u1").tobytes())
        result = subprocess.run([ojph_compress, "-i", source, "-o", out, *options], capture_output=True, text=True)
        if result.returncode != 0 or not os.path.exists(out):
            raise DicomError(f"ojph_compress failed: {(result.stdout + result.stderr).strip()[-300:]}")
        with open(out, "rb") as f:
            return f.read()
