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


def opj_encode(planes: list[np.ndarray], bits: int, options: list[str], signed: bool = False,
               subsampling: list[tuple[int, int]] | None = None) -> bytes:
    """Encode component planes with opj_compress (raw little-endian input) and return the codestream."""
    opj_compress = shutil.which("opj_compress")
    assert opj_compress, "opj_compress (Debian libopenjp2-tools) is needed"
    height, width = planes[0].shape
    dtype = ("<i" if signed else "<u") + ("2" if bits > 8 else "1")
    form = f"{width},{height},{len(planes)},{bits},{'s' if signed else 'u'}"
    if subsampling:
        form += "@" + ":".join(f"{dx}x{dy}" for dx, dy in subsampling)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "in.rawl"
        raw.write_bytes(b"".join(plane.astype(dtype).tobytes() for plane in planes))
        out = Path(tmp) / "out.j2k"
        result = subprocess.run([opj_compress, "-i", str(raw), "-o", str(out), "-F", form, *options],
                                capture_output=True, text=True)
        assert result.returncode == 0, f"opj_compress {options}: {result.stdout[-500:]} {result.stderr[-500:]}"
        return out.read_bytes()


def opj_decode_all(codestream: bytes, reduce: int = 0, layers: int | None = None) -> list[bytes]:
    """Every component's samples as opj_decompress writes them (PGX), for exact comparison."""
    opj_decompress = shutil.which("opj_decompress")
    assert opj_decompress, "opj_decompress (Debian libopenjp2-tools) is needed"
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "in.j2k"
        source.write_bytes(codestream)
        command = [opj_decompress, "-i", str(source), "-o", str(Path(tmp) / "out.pgx"), "-r", str(reduce)]
        if layers:
            command += ["-l", str(layers)]
        result = subprocess.run(command, capture_output=True, text=True)
        assert result.returncode == 0, f"opj_decompress failed: {result.stdout[-600:]} {result.stderr[-600:]}"
        outputs = sorted(Path(tmp).glob("out*.pgx"), key=lambda p: int(p.stem.rsplit("_", 1)[-1]))
        assert outputs, "opj_decompress wrote nothing"
        return [p.read_bytes() for p in outputs]


def smooth_image(height: int, width: int, bits: int, seed: int, signed: bool = False) -> np.ndarray:
    """A test image with edges, gradients and noise that uses the whole sample range."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    image = np.sin(x / (7 + seed % 5)) * np.cos(y / 11) + (x + y) / (width + height)
    image[(x - width / 3) ** 2 + (y - height / 2) ** 2 < (min(height, width) / 5) ** 2] += 1.5
    image += rng.normal(0, 0.05, image.shape)
    image = (image - image.min()) / (image.max() - image.min())
    top = (1 << bits) - 1
    values = np.rint(image * top).astype(np.int64)
    if signed:
        values -= 1 << (bits - 1)
    return values


def opj_decode_region(codestream: bytes, region: tuple[int, int, int, int], reduce: int = 0,
                      layers: int | None = None) -> list[bytes]:
    """opj_decompress -d: only the samples of a region of the reference grid."""
    opj_decompress = shutil.which("opj_decompress")
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "in.j2k"
        source.write_bytes(codestream)
        command = [opj_decompress, "-i", str(source), "-o", str(Path(tmp) / "out.pgx"), "-r", str(reduce),
                   "-d", ",".join(map(str, region))]
        if layers:
            command += ["-l", str(layers)]
        result = subprocess.run(command, capture_output=True, text=True)
        assert result.returncode == 0, f"opj_decompress failed: {result.stdout[-600:]} {result.stderr[-600:]}"
        outputs = sorted(Path(tmp).glob("out*.pgx"), key=lambda p: int(p.stem.rsplit("_", 1)[-1]))
        return [p.read_bytes() for p in outputs]


def pgx_array(data: bytes) -> np.ndarray:
    header, body = data.split(b"\n", 1)
    _, order, sign, depth, width, height = header.split()
    dtype = (">" if order == b"ML" else "<") + ("i" if sign == b"-" else "u") + ("2" if int(depth) > 8 else "1")
    return np.frombuffer(body, dtype).reshape(int(height), int(width))


def cropped_reference(codestream: bytes, region: tuple[int, int, int, int], reduce: int = 0,
                      layers: int | None = None) -> list[np.ndarray]:
    """The original decoded whole (opj_decompress -r -l), each component cut to the region's samples:
    component c at reduction r spans ceil(ceil(X / XRsiz) / 2^r) on each axis (15444-1 B.2, B.5).
    OpenJPEG 2.5.0's own -d decoding fails on some PPM files and returns blank tiles for tiled HTJ2K,
    so window comparisons decode whole images and cut them here."""
    from pyjpip.codestream.markers import read_main_header

    size = read_main_header(codestream).size
    planes = [pgx_array(p) for p in opj_decode_all(codestream, reduce, layers)]
    scale = 1 << reduce
    out = []
    for plane, component in zip(planes, size.components):
        def span(a, b, offset, sub):
            first = -(-(-(-a // sub)) // scale) - (-(-(-(-offset // sub)) // scale))
            last = -(-(-(-b // sub)) // scale) - (-(-(-(-offset // sub)) // scale))
            return first, last
        x0, x1 = span(region[0], region[2], size.x_offset, component.x_subsampling)
        y0, y1 = span(region[1], region[3], size.y_offset, component.y_subsampling)
        out.append(plane[y0:y1, x0:x1])
    return out
