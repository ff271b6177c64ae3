"""Independent references for tests on CPython: Debian's OpenJPEG decoder and the PS3.3 windowing, in numpy."""

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pydicom
from pydicom.encaps import generate_frames


def first_codestream(path) -> bytes:
    ds = pydicom.dcmread(path)
    return next(generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames", 1) or 1)))


def opj_decode(codestream: bytes, reduce: int = 0) -> np.ndarray:
    """Decode with opj_decompress through PGX, which keeps the sign and precision."""
    opj_decompress = shutil.which("opj_decompress")
    assert opj_decompress, "opj_decompress (Debian libopenjp2-tools) is needed"
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "in.j2k"
        source.write_bytes(codestream)
        subprocess.run([opj_decompress, "-i", str(source), "-o", str(Path(tmp) / "out.pgx"), "-r", str(reduce)],
                       check=True, capture_output=True)
        header, body = (Path(tmp) / "out_0.pgx").read_bytes().split(b"\n", 1)
    _, order, sign, depth, width, height = header.split()
    dtype = (">" if order == b"ML" else "<") + ("i" if sign == b"-" else "u") + ("2" if int(depth) > 8 else "1")
    return np.frombuffer(body, dtype).reshape(int(height), int(width))


def first_value(value):
    if value is None:
        return None
    return float(value[0]) if isinstance(value, pydicom.multival.MultiValue) else float(value)


def windowed(stored: np.ndarray, ds) -> np.ndarray:
    """8-bit display values per PS3.3 C.11.1 (rescale), C.11.2.1.2 (LINEAR window) and MONOCHROME1 inversion.

    Without a window, the image's modality-value range maps linearly from black to white (C.11.2.1.3.2 form).
    """
    values = stored.astype(np.float64) * first_value(ds.get("RescaleSlope", 1)) + first_value(ds.get("RescaleIntercept", 0))
    center, width = first_value(ds.get("WindowCenter")), first_value(ds.get("WindowWidth"))
    if center is not None and width is not None:
        c, w = center - 0.5, width - 1
        y = np.where(values <= c - w / 2, 0.0,
                     np.where(values > c + w / 2, 255.0, ((values - c) / w + 0.5) * 255))
    else:
        low, high = values.min(), values.max()
        c, w = (low + high) / 2, max(high - low, 1e-9)
        y = np.clip(((values - c) / w + 0.5) * 255, 0, 255)
    y = np.rint(y)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        y = 255 - y
    return y.astype(np.uint8)
