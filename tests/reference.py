"""Independent references for tests on CPython: Debian's OpenJPEG decoder and the PS3.3 windowing, in numpy."""

import shutil
import struct
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


def finest_resolution_at_first_layer(codestream: bytes) -> tuple[bytes, list[int]]:
    """The codestream with the finest resolution's packets above layer 1 empty, made here from the
    original (15444-1 A.4.2, A.8, B.10, B.12), not by pyjpip's rebuild: one tile-part, RPCL, one
    component, SOP and EPH markers (so packets split at SOP), TLM and PLT dropped. An empty packet is
    its SOP, a header of one 0 bit and EPH. Also the lengths of the finest resolution's layer-2 packets."""
    main, i = bytearray(codestream[:2]), 2
    while True:
        marker, length = struct.unpack(">HH", codestream[i:i + 4])
        segment = codestream[i + 4:i + 2 + length]
        if marker == 0xFF90:
            break
        if marker == 0xFF51:
            _, xsiz, ysiz, x0siz, y0siz, *_ = struct.unpack(">HIIII", segment[:18])
            assert (x0siz, y0siz) == (0, 0) and struct.unpack(">H", segment[34:36])[0] == 1
        if marker == 0xFF52:
            scod, order, layers, _, levels = struct.unpack(">BBHBB", segment[:6])
            assert scod == 0b111 and order == 2, "explicit precincts, SOP, EPH; RPCL"
            precincts = [(p & 15, p >> 4) for p in segment[10:10 + levels + 1]]
        if marker != 0xFF55:  # TLM: its tile-part length would be wrong
            main += codestream[i:i + 2 + length]
        i += 2 + length
    _, _, tile, psot, part, parts = struct.unpack(">HHHIBB", codestream[i:i + 12])
    assert (tile, part, parts) == (0, 0, 1) and codestream[i + psot:] == b"\xff\xd9"
    j = i + 12
    while codestream[j:j + 2] != b"\xff\x93":  # PLT: dropped
        j += 2 + struct.unpack(">H", codestream[j + 2:j + 4])[0]
    body = codestream[j + 2:i + psot]
    starts = [k for k in range(len(body) - 1) if body[k] == 0xFF and body[k + 1] == 0x91]
    packets = [body[a:b] for a, b in zip(starts, starts[1:] + [len(body)])]
    assert [struct.unpack(">H", p[4:6])[0] for p in packets] == list(range(len(packets)))  # Nsop
    counts = []  # packets per resolution: its precincts times the layers (B.6)
    for r, (ppx, ppy) in enumerate(precincts):
        width, height = -(-xsiz // (1 << (levels - r))), -(-ysiz // (1 << (levels - r)))
        counts.append(-(-width // (1 << ppx)) * -(-height // (1 << ppy)) * layers)
    assert sum(counts) == len(packets)
    first = sum(counts[:-1])  # the finest resolution's packets: precinct by precinct, layers in order
    out = [p if k < first or (k - first) % layers == 0 else p[:6] + b"\x00\xff\x92" for k, p in enumerate(packets)]
    second = [len(p) for k, p in enumerate(packets) if k >= first and (k - first) % layers == 1]
    body = b"".join(out)
    tile_part = struct.pack(">HHHIBB", 0xFF90, 10, 0, 14 + len(body), 0, 1) + b"\xff\x93" + body
    return bytes(main) + tile_part + b"\xff\xd9", second
