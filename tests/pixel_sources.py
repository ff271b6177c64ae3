"""DICOM objects made for tests from known samples, in every pixel encoding ingest takes, and the
independent references their pixels are checked against.

Each maker encodes the samples itself (numpy, zlib, pydicom's own encoders, imagecodecs' JPEG,
JPEG-LS, JPEG 2000 and HTJ2K encoders), so what comes back through ingest, server and client is
compared with the samples the object was made from, not with pyjpip's own decoding of it. Lossy
sources (12-bit JPEG) are compared with DCMTK's dcmdjpeg decoding of the same file.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import generate_uid

IMPLICIT = "1.2.840.10008.1.2"
EXPLICIT = "1.2.840.10008.1.2.1"
DEFLATED = "1.2.840.10008.1.2.1.99"
BIG_ENDIAN = "1.2.840.10008.1.2.2"
JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"
JPEG_LS_LOSSLESS = "1.2.840.10008.1.2.4.80"
J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"
HTJ2K_LOSSLESS = "1.2.840.10008.1.2.4.201"
RLE = "1.2.840.10008.1.2.5"
DEFLATED_IMAGE_FRAME = "1.2.840.10008.1.2.8.1"


@dataclass
class Case:
    """One object to make: its samples (frames, rows, columns[, 3]), how they are said and encoded."""

    name: str
    syntax: str
    bits_allocated: int
    bits_stored: int
    signed: bool = False
    frames: int = 1
    colour: bool = False
    palette: int | None = None  # bits per palette entry: PALETTE COLOR, samples are indices
    rows: int = 37
    columns: int = 53
    full_range: bool = True  # samples span all Bits Stored allow (else a narrow range)
    no_meta: bool = False
    mismatch: bool = False  # JPEG 2000: an unsigned codestream while Pixel Representation says signed
    no_mct: bool = False  # JPEG 2000 colour without the component transform
    refused: str | None = None  # a part of the one-line reason ingest must give
    notes: dict = field(default_factory=dict)

    @property
    def multi(self) -> bool:
        return self.frames > 1


def samples(case: Case) -> np.ndarray:
    """Seeded samples, frames first, spanning the range the case's precision allows (its extremes included)."""
    rng = np.random.default_rng(zlib.crc32(case.name.encode()))
    shape = (case.frames, case.rows, case.columns) + ((3,) if case.colour else ())
    bits = case.bits_stored if case.full_range else min(case.bits_stored, 20)
    if case.signed:
        low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    else:
        low, high = 0, (1 << bits) - 1
    if case.palette:
        low, high = 0, 255
    if not case.full_range:  # a narrow band well inside the range: e.g. 32 bits allocated, 20 used
        low, high = (low // 3, high // 3) if case.signed else (high // 4, high // 2)
    values = rng.integers(low, high, shape, dtype=np.int64, endpoint=True)
    values.flat[0], values.flat[-1] = low, high
    dtype = {1: np.uint8, 8: np.uint8, 16: np.uint16, 32: np.uint32}[case.bits_allocated]
    if case.signed:
        dtype = {8: np.int8, 16: np.int16, 32: np.int32}[case.bits_allocated]
    return values.astype(dtype)


def palette_tables(bits: int) -> list[np.ndarray]:
    """Red, green, blue tables of 256 entries: distinct, not monotonic, using the top of the range."""
    top = (1 << bits) - 1
    index = np.arange(256, dtype=np.int64)
    return [((index * k + offset) % 256 * top // 255).astype(np.uint16 if bits == 16 else np.uint8)
            for k, offset in ((7, 3), (13, 100), (255, 0))]


def make(case: Case, folder: Path) -> tuple[Path, np.ndarray]:
    """Write the case's object; returns its path and the samples it holds (frames first)."""
    values = samples(case)
    ds = _dataset(case)
    encoded = _encode(case, values, ds)
    if encoded is not None:
        ds.PixelData = encoded
    path = folder / f"{case.name}.dcm"
    if case.syntax == DEFLATED_IMAGE_FRAME:  # pydicom 3.0.2 does not know the syntax: written as another
        ds.file_meta.TransferSyntaxUID = J2K_LOSSLESS  # encapsulated one of the same length, then renamed
        ds.save_as(path, enforce_file_format=True)
        data = path.read_bytes()
        start = data.index(J2K_LOSSLESS.encode(), 132)
        path.write_bytes(data[:start] + DEFLATED_IMAGE_FRAME.encode() + b"\0" + data[start + len(J2K_LOSSLESS):])
        return path, values
    if case.no_meta:
        del ds.file_meta
        ds.save_as(path, implicit_vr=case.syntax == IMPLICIT, little_endian=case.syntax != BIG_ENDIAN)
    else:
        ds.save_as(path, enforce_file_format=True)
    return path, values


def _dataset(case: Case) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture Image Storage
    ds.SOPInstanceUID = generate_uid(entropy_srcs=["pixel-sources", case.name])
    ds.StudyInstanceUID = generate_uid(entropy_srcs=["pixel-sources", "study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["pixel-sources", "series", case.syntax])
    ds.PatientName, ds.PatientID, ds.Modality = "Pixels^Generated", "PIX-1", "OT"
    ds.Rows, ds.Columns = case.rows, case.columns
    ds.SamplesPerPixel = 3 if case.colour else 1
    ds.PhotometricInterpretation = "RGB" if case.colour else ("PALETTE COLOR" if case.palette else "MONOCHROME2")
    if case.colour:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = case.bits_allocated, case.bits_stored, case.bits_stored - 1
    ds.PixelRepresentation = int(case.signed)
    if case.multi:
        ds.NumberOfFrames = case.frames
    if case.palette:
        for colour, table in zip(("Red", "Green", "Blue"), palette_tables(case.palette)):
            setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [256, 0, case.palette])
            element = f"{colour}PaletteColorLookupTableData"
            setattr(ds, element, table.astype("<u2").tobytes() if case.palette == 16 else table.tobytes())
            ds[element].VR = "OW"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = case.syntax
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    return ds


def _native_bytes(values: np.ndarray, bits_allocated: int, big_endian: bool = False) -> bytes:
    if bits_allocated == 1:
        packed = np.packbits(values.astype(np.uint8).reshape(-1), bitorder="little").tobytes()
        return packed + (b"\0" if len(packed) % 2 else b"")
    data = values.astype(values.dtype.newbyteorder(">" if big_endian else "<")).tobytes()
    return data + (b"\0" if len(data) % 2 else b"")


def _encode(case: Case, values: np.ndarray, ds: Dataset) -> bytes | None:
    syntax = case.syntax
    frames = list(values)
    if syntax in (IMPLICIT, EXPLICIT, DEFLATED, BIG_ENDIAN):
        data = _native_bytes(values, case.bits_allocated, syntax == BIG_ENDIAN)
        ds.PixelData = data
        ds["PixelData"].VR = "OB" if case.bits_allocated <= 8 else "OW"
        return None
    if syntax == DEFLATED_IMAGE_FRAME:  # PS3.5 8.2.16: each frame's native bytes, raw deflate, one fragment
        pieces = []
        for frame in frames:
            native = (np.packbits(frame.reshape(-1), bitorder="little").tobytes() if case.bits_allocated == 1
                      else frame.astype(frame.dtype.newbyteorder("<")).tobytes())
            compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
            pieces.append(compressor.compress(native) + compressor.flush())
        return encapsulate(pieces)
    if syntax == RLE:
        if case.bits_allocated == 1:  # one byte per pixel, 0 or 1, as 8-bit RLE (PS3.5 Annex G)
            eight = _dataset(Case(case.name, EXPLICIT, 8, 8, frames=case.frames, rows=case.rows, columns=case.columns))
            eight.PixelData = values.astype(np.uint8).tobytes()
            eight.compress(RLE, encoding_plugin="pydicom")
            return eight.PixelData
        if case.bits_allocated == 32:  # pydicom 3.0.2 encodes RLE up to 16 bits
            return encapsulate([rle_frame(f, 4) for f in frames])
        ds.compress(RLE, values if case.multi else values[0], encoding_plugin="pydicom")
        return None
    if syntax == JPEG_LS_LOSSLESS:
        ds.compress(JPEG_LS_LOSSLESS, values if case.multi else values[0], encoding_plugin="pyjpegls")
        return None
    import imagecodecs

    if syntax == JPEG_LOSSLESS_SV1:
        return encapsulate([imagecodecs.jpeg8_encode(f, lossless=True, predictor=1, bitspersample=case.bits_stored)
                            for f in frames])
    if syntax == JPEG_EXTENDED:
        return encapsulate([imagecodecs.jpeg8_encode(f, level=90, bitspersample=case.bits_stored) for f in frames])
    if syntax == J2K_LOSSLESS:
        coded = []
        for frame in frames:
            if case.mismatch:  # unsigned codestream, signed attributes: what pydicom's J2K_pixelrep_mismatch.dcm is
                frame = frame.view(np.uint16) & ((1 << case.bits_stored) - 1)
            coded.append(imagecodecs.jpeg2k_encode(frame, level=0, codecformat="J2K", reversible=True,
                                                   bitspersample=case.bits_stored, mct=case.colour and not case.no_mct))
        if case.colour and not case.no_mct:
            ds.PhotometricInterpretation = "YBR_RCT"
        return encapsulate(coded)
    if syntax == HTJ2K_LOSSLESS:
        return encapsulate([imagecodecs.htj2k_encode(f, reversible=True) for f in frames])
    raise ValueError(f"no maker for {syntax}")


def rle_frame(frame: np.ndarray, bytes_per_sample: int) -> bytes:
    """PS3.5 Annex G: a header of segment offsets, then one segment per byte of each sample (most
    significant first, sample by sample), each row coded as literal runs of at most 128 bytes (G.3.1)."""
    planes = frame.reshape(frame.shape[0], frame.shape[1], -1)
    big = planes.astype(planes.dtype.newbyteorder(">")).view(np.uint8).reshape(
        frame.shape[0], frame.shape[1], planes.shape[2], bytes_per_sample)
    segments = []
    for sample in range(planes.shape[2]):
        for byte in range(bytes_per_sample):
            coded = bytearray()
            for row in big[:, :, sample, byte]:
                data = row.tobytes()
                for start in range(0, len(data), 128):
                    piece = data[start:start + 128]
                    coded += bytes([len(piece) - 1]) + piece
            segments.append(bytes(coded) + (b"\0" if len(coded) % 2 else b""))
    offsets, position = [], 64
    for segment in segments:
        offsets.append(position)
        position += len(segment)
    header = np.array([len(segments), *offsets] + [0] * (15 - len(segments)), "<u4").tobytes()
    return header + b"".join(segments)


def expected_samples(case: Case, values: np.ndarray, path: Path) -> list[np.ndarray]:
    """What each frame must come back as: the made samples (palette indices through the tables, an
    unsigned codestream under signed attributes as two's complement of Bits Stored), or for a lossy
    source DCMTK's decoding of the file."""
    if case.syntax == JPEG_EXTENDED:  # lossy: the source's own decoding is pydicom's (libjpeg); DCMTK's (IJG
        ours = pydicom.dcmread(path).pixel_array  # inverse DCT) differs from it by up to 2 of 4096 in 12-bit
        ours = ours if case.multi else ours[None]  # samples (measured), as ISO 10918-2's accuracy allows
        theirs = dcmtk_decoded(path)
        assert np.abs(ours.astype(np.int64) - theirs).max() <= 2, "pydicom and DCMTK decode the JPEG alike"
        return list(ours)
    if case.palette:
        tables = palette_tables(case.palette)
        return [np.stack([t[f] for t in tables], axis=-1) for f in values]
    if case.mismatch:
        raw = values.view(np.uint16).astype(np.int64) & ((1 << case.bits_stored) - 1)
        values = np.where(raw >= 1 << (case.bits_stored - 1), raw - (1 << case.bits_stored), raw)
    return list(values)


def dcmtk_decoded(path: Path) -> np.ndarray:
    """Frames of a JPEG-encoded file as DCMTK's dcmdjpeg decodes them (frames first)."""
    dcmdjpeg = shutil.which("dcmdjpeg")
    assert dcmdjpeg, "dcmdjpeg (Debian dcmtk) is needed"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "native.dcm"
        subprocess.run([dcmdjpeg, str(path), str(out)], check=True, capture_output=True)
        ds = pydicom.dcmread(out)
        pixels = ds.pixel_array
        return pixels if int(ds.get("NumberOfFrames", 1) or 1) > 1 else pixels[None]


def opj_decode_components(codestream: bytes) -> np.ndarray:
    """A codestream decoded whole by Debian's opj_decompress (PGX keeps sign and precision): (rows,
    columns) for one component, (rows, columns, n) for more."""
    opj_decompress = shutil.which("opj_decompress")
    assert opj_decompress, "opj_decompress (Debian libopenjp2-tools) is needed"
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "in.j2k"
        source.write_bytes(codestream)
        subprocess.run([opj_decompress, "-i", str(source), "-o", str(Path(tmp) / "out.pgx")], check=True,
                       capture_output=True)
        planes = []
        for number in range(4):
            pgx = Path(tmp) / f"out_{number}.pgx"
            if not pgx.exists():
                break
            header, body = pgx.read_bytes().split(b"\n", 1)
            _, order, sign, depth, width, height = header.split()
            size = 1 if int(depth) <= 8 else (2 if int(depth) <= 16 else 4)
            dtype = (">" if order == b"ML" else "<") + ("i" if sign == b"-" else "u") + str(size)
            planes.append(np.frombuffer(body, dtype).reshape(int(height), int(width)).astype(np.int64))
    return planes[0] if len(planes) == 1 else np.stack(planes, axis=-1)
