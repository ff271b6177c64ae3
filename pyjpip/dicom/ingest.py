"""Ingest: ordinary DICOM objects into a JPIP store of codestreams plus hollow objects (CPython tooling).

    STORE/images/<study>/<series>/<instance>.j2k|.jpx   what the JPIP server serves
    STORE/hollow/<study>/<series>/<instance>.dcm        the object, pixels replaced by the JPIP URL
    STORE/index.json                                    what came from where, for re-runs and listings

JPEG 2000 and HTJ2K frames that are already JPIP-friendly are kept byte for byte; the others are
re-packetized (their code-blocks kept, lossy or lossless: pyjpip.codestream.repacketize), so they
decode exactly as the source does. Other pixel encodings, Part 1 asked to become HTJ2K, and JPEG 2000
whose codestream disagrees with the attributes (signedness against Pixel Representation, colour
without a component transform) are decoded (pyjpip.dicom.source_pixels) and encoded losslessly.

Proof at ingest (on unless ``verify=False``, ``--no-verify``): before anything is written, every
frame about to be served is decoded at full resolution and compared with the source's own decoding
(pyjpip.dicom.pixel_proof); a difference is a refusal naming the file, frame and first differing
sample. Every file is written to a temporary name and renamed, and an instance is written whole or
not at all, so a failure leaves nothing half-written; a source already ingested (same bytes) is
skipped. A file larger than ``maximum_bytes`` (4 GiB by default) is refused before it is read, a
deflated one (1.2.840.10008.1.2.1.99) is inflated only up to that bound (pyjpip.dicom.limits), and
pixels whose attributes claim more than that bound decoded are refused before decoding
(pyjpip.dicom.image_pixel).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import tempfile
import threading
import warnings
from dataclasses import dataclass, field

import pydicom
from pydicom.uid import UID

from pyjpip.codestream.file_format import write_frames_file
from pyjpip.codestream.markers import read_main_header
from pyjpip.codestream.friendliness import assess
from pyjpip.codestream.packet_index import index_codestream
from pyjpip.codestream.repacketize import repacketize
from pyjpip.codestream.tile_parts import read_codestream
from pyjpip.dicom.encode import encode_frame
from pyjpip.dicom.hollow import (
    JPIP_HTJ2K_REFERENCED,
    JPIP_HTJ2K_REFERENCED_DEFLATE,
    JPIP_REFERENCED,
    JPIP_REFERENCED_DEFLATE,
    JPIP_TRANSFER_SYNTAXES,
    write_hollow,
)
from pyjpip.dicom.image_pixel import named, read_image_pixel
from pyjpip.dicom.limits import MAXIMUM_ORDINARY_BYTES, dcmread, read_limited
from pyjpip.dicom.pixel_data import JPEG2000_TRANSFER_SYNTAXES, frame_codestream
from pyjpip.dicom.pixel_proof import bits_needed, check_range, prove_frame
from pyjpip.dicom.source_pixels import MAXIMUM_EXACT_PRECISION, PALETTE_ATTRIBUTES, read_source_pixels
from pyjpip.dicom.uid_paths import uid_path
from pyjpip.errors import CodestreamError, DatasetTooLargeError, DicomError, PixelAttributeError, UnsupportedPixelsError

log = logging.getLogger(__name__)

HTJ2K_TRANSFER_SYNTAXES = frozenset(UID(u) for u in ("1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202",
                                                     "1.2.840.10008.1.2.4.203"))


@dataclass
class IngestReport:
    ingested: list[str]
    skipped: list[str]
    failed: list[tuple[str, str]]
    missing_modules: dict[str, list[str]] = field(default_factory=dict)  # module -> files that needed it
    supplied: list[str] = field(default_factory=list)  # files given a Study or Series Instance UID


class Store:
    """A JPIP store folder and its index."""

    def __init__(self, root: str, url_base: str):
        self.root = os.path.abspath(root)
        self.url_base = url_base.rstrip("/")
        self.index_path = os.path.join(self.root, "index.json")
        self.index = {"instances": {}}
        if os.path.exists(self.index_path):
            with open(self.index_path) as f:
                self.index = json.load(f)

    def save_index(self) -> None:
        _write_atomically(self.index_path, json.dumps(self.index, indent=1, sort_keys=True).encode())


def ingest(paths: list[str], store_root: str, url_base: str, deflate: bool = False, high_throughput: bool = False,
           progress=None, maximum_bytes: int = MAXIMUM_ORDINARY_BYTES, verify: bool = True) -> IngestReport:
    """Ingest files and folders; one bad file is reported and skipped, never the end of the batch.
    With ``verify`` (the default), every frame about to be served is decoded and compared with the
    source's own decoding before the file counts as ingested (pyjpip.dicom.pixel_proof)."""
    store = Store(store_root, url_base)
    files = sorted(_dicom_files(paths))
    report = IngestReport([], [], [])
    for number, path in enumerate(files, 1):
        try:
            outcome, sop = _ingest_file(path, store, deflate, high_throughput, maximum_bytes, verify)
            (report.ingested if outcome == "ingested" else report.skipped).append(path)
            if outcome == "ingested" and store.index["instances"][sop].get("supplied"):
                report.supplied.append(path)
        except (DicomError, CodestreamError, OSError, ValueError) as error:
            reason = str(error).removeprefix(f"{path}: ")  # the report says the path already
            report.failed.append((path, reason))
            outcome = f"failed: {reason}"
        except ImportError as error:  # an optional part (numpy, imagecodecs) this file's pixels need
            module = (error.name or _named_module(str(error))).split(".")[0]
            report.missing_modules.setdefault(module, []).append(path)
            report.failed.append((path, f"needs {module}, which is not installed"))
            outcome = f"failed: needs {module}"
        except Exception as error:  # noqa: BLE001 - a decoder's own failure must not end the batch
            report.failed.append((path, f"{type(error).__name__}: {error}"))
            outcome = f"failed: {type(error).__name__}: {error}"
        if progress:
            progress(number, len(files), path, outcome)
    store.save_index()
    return report


def _named_module(message: str) -> str:
    """The optional module an ImportError without a name means (pydicom says "NumPy is required")."""
    lowered = message.lower()
    return next((m for m in ("numpy", "imagecodecs", "pylibjpeg", "gdcm", "pillow") if m in lowered), "an optional module")


_STORE_LOCKS: dict[str, threading.Lock] = {}
_STORE_LOCKS_LOCK = threading.Lock()


def ingest_one(path: str, store_root: str, url_base: str, deflate: bool = False,
               high_throughput: bool = False, maximum_bytes: int = MAXIMUM_ORDINARY_BYTES,
               verify: bool = True) -> tuple[str, dict]:
    """One file into the store, safe to call from several threads at once (a Storage SCP's
    associations): returns the outcome and the store's entry for it. Raises what ingest reports."""
    key = os.path.abspath(store_root)
    with _STORE_LOCKS_LOCK:
        lock = _STORE_LOCKS.setdefault(key, threading.Lock())
    with lock:
        store = Store(store_root, url_base)
        outcome, sop = _ingest_file(path, store, deflate, high_throughput, maximum_bytes, verify)
        store.save_index()
        return outcome, store.index["instances"][sop]


def _dicom_files(paths: list[str]):
    for path in paths:
        if os.path.isdir(path):
            for folder, _, names in os.walk(path):
                for name in names:
                    if not name.startswith("."):
                        yield os.path.join(folder, name)
        else:
            yield path


def _ingest_file(path: str, store: Store, deflate: bool, high_throughput: bool,
                 maximum_bytes: int = MAXIMUM_ORDINARY_BYTES, verify: bool = True) -> tuple[str, str]:
    data = read_limited(path, maximum_bytes)
    digest = hashlib.sha256(data).hexdigest()
    dataset, syntax = read_ordinary(data, path, maximum_bytes)
    if syntax in JPIP_TRANSFER_SYNTAXES:
        raise DicomError("already a hollow (JPIP Referenced) object: its pixels are elsewhere")
    for keyword in ("SOPInstanceUID", "SOPClassUID"):
        if not dataset.get(keyword):
            raise DicomError(f"no {keyword}")
    supplied = supply_study_and_series(dataset)
    if "PixelData" not in dataset:
        raise DicomError("no Pixel Data to serve")
    sop = str(dataset.SOPInstanceUID)
    # where it goes, from its UIDs only when they are UIDs (a data set's "../x" names no file)
    relative = uid_path("", ("StudyInstanceUID", dataset.StudyInstanceUID),
                        ("SeriesInstanceUID", dataset.SeriesInstanceUID), ("SOPInstanceUID", sop))
    known = store.index["instances"].get(sop)
    if known and known["source_sha256"] == digest and known.get("url_base") == store.url_base and all(
            os.path.exists(os.path.join(store.root, known[k])) for k in ("image", "hollow")) and (
            known.get("verified", False) or not verify):
        return "skipped", sop
    if known and known["source"] != os.path.abspath(path) and known["source_sha256"] != digest:
        raise DicomError(f"SOP Instance UID {sop} is already in the store, from {known['source']}; "
                         "two different objects cannot share it")
    served = serve_pixels(dataset, syntax, path, high_throughput, verify, maximum_bytes)
    frames = served.frames
    header = read_main_header(frames[0])
    if len(frames) == 1:
        image = os.path.join("images", relative + ".j2k")
        content = frames[0]
    else:
        image = os.path.join("images", relative + ".jpx")
        c0 = header.size.components[0]
        content = write_frames_file(frames, header.size.width, header.size.height, len(header.size.components),
                                    c0.precision, c0.signed)
    url = f"{store.url_base}/jpip?target={image.replace(os.sep, '/')}"
    hollow_dataset = pydicom.Dataset(dataset)
    hollow_dataset.file_meta = dataset.file_meta
    describe_served(hollow_dataset, served, header)
    high = high_throughput or header.high_throughput
    syntax_out = ((JPIP_HTJ2K_REFERENCED_DEFLATE if deflate else JPIP_HTJ2K_REFERENCED) if high
                  else (JPIP_REFERENCED_DEFLATE if deflate else JPIP_REFERENCED))
    hollow = write_hollow(hollow_dataset, url, syntax_out)  # in memory: nothing is written until all is made
    hollow_path = os.path.join("hollow", relative + ".dcm")
    written = []
    try:
        for relative_path, content_bytes in ((image, content), (hollow_path, hollow)):
            _write_atomically(os.path.join(store.root, relative_path), content_bytes)
            written.append(relative_path)
    except BaseException:
        for relative_path in written:  # not half an instance: the image without its hollow object goes too
            if not (known and known.get("image") == relative_path):
                os.unlink(os.path.join(store.root, relative_path))
        raise
    store.index["instances"][sop] = {
        "study": str(dataset.StudyInstanceUID), "series": str(dataset.SeriesInstanceUID), "image": image,
        "hollow": hollow_path, "frames": len(frames), "source_sha256": digest, "source": os.path.abspath(path),
        "url_base": store.url_base, "verified": verify, "encoding": served.encoding,
    }
    if served.notes:
        store.index["instances"][sop]["notes"] = served.notes
    if supplied:
        store.index["instances"][sop]["supplied"] = supplied
    return "ingested", sop


def read_ordinary(data: bytes, path: str, maximum_bytes: int = MAXIMUM_ORDINARY_BYTES):
    """An ordinary object's data set and transfer syntax. One without File Meta Information (PS3.10
    7.1: old archives wrote bare data sets) is read as pydicom's force=True reads it, its transfer
    syntax the encoding pydicom found (implicit or explicit VR, little or big endian), with a warning."""
    try:
        dataset = dcmread(data, path, maximum_bytes)
    except DatasetTooLargeError:
        raise
    except Exception as exc:  # noqa: BLE001 - pydicom has many ways to say "not DICOM"
        first = exc
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                dataset = dcmread(data, path, maximum_bytes, force=True)
        except DatasetTooLargeError:
            raise
        except Exception:  # noqa: BLE001
            raise DicomError(f"not a readable DICOM file ({first})") from None
        if not (dataset.get("SOPClassUID") and dataset.get("SOPInstanceUID")):
            raise DicomError(f"not a readable DICOM file ({first})") from None
    meta = getattr(dataset, "file_meta", None)
    syntax = str(getattr(meta, "TransferSyntaxUID", "") or "") if meta is not None else ""
    if not syntax:
        from pydicom.dataset import FileMetaDataset

        implicit, little = dataset.is_implicit_VR, dataset.is_little_endian
        if implicit is None or little is None:
            raise DicomError("not a readable DICOM file (no File Meta Information, and no encoding pydicom recognises)")
        syntax = "1.2.840.10008.1.2" if implicit else ("1.2.840.10008.1.2.1" if little else "1.2.840.10008.1.2.2")
        if meta is None:
            dataset.file_meta = meta = FileMetaDataset()
        meta.TransferSyntaxUID = syntax
        log.warning("%s: no File Meta Information (PS3.10 7.1) or no Transfer Syntax UID in it: read as "
                    "pydicom's force=True does, as %s", path, UID(syntax).name)
    return dataset, UID(syntax)


@dataclass
class ServedPixels:
    """The frames to serve (codestreams), how they were made, and what the hollow object must say of them."""

    frames: list[bytes]
    encoding: str  # "kept", "re-packetized" or "encoded"
    photometric: str  # of the samples: MONOCHROME1, MONOCHROME2, RGB (before the codestream's colour transform)
    derivation: str | None = None
    palette_expanded: bool = False
    notes: list[str] = field(default_factory=list)


def serve_pixels(dataset, syntax: UID, source: str, high_throughput: bool = False, verify: bool = True,
                 maximum_bytes: int = MAXIMUM_ORDINARY_BYTES) -> ServedPixels:
    """Frames as JPIP-friendly codestreams that decode exactly to the source's own pixels: JPEG 2000
    code-blocks kept where the codestream says what the attributes say, everything else encoded
    losslessly from the source's decoding. With ``verify``, every frame is decoded and compared with
    the source's own decoding first (pyjpip.dicom.pixel_proof); any difference is refused."""
    if syntax in JPEG2000_TRANSFER_SYNTAXES:
        kept = _jpeg2000_kept(dataset, syntax, high_throughput, source, verify, maximum_bytes)
        if kept is not None:
            return kept
    return _encoded(dataset, syntax, high_throughput, source, verify, maximum_bytes)


def _jpeg2000_kept(dataset, syntax: UID, high_throughput: bool, source: str, verify: bool,
                   maximum_bytes: int) -> ServedPixels | None:
    """JPEG 2000 / HTJ2K frames kept (friendly ones byte for byte, the others re-packetized: their
    code-blocks as they are, lossy or lossless), or None when they cannot be: the codestream and the
    attributes disagree on the samples (its signedness against Pixel Representation: pydicom then
    reinterprets the decoded samples, and so must what is served), a colour codestream has no
    component transform (PS3.5 A.6 can say only YBR_RCT/YBR_ICT), or Part 1 is asked to become HTJ2K."""
    from pydicom.encaps import generate_frames

    image = read_image_pixel(dataset, source, maximum_bytes)
    sources = [frame_codestream(f, source) for f in generate_frames(dataset.PixelData,
                                                                    number_of_frames=image.number_of_frames)]
    if len(sources) != image.number_of_frames:
        raise PixelAttributeError(f"{len(sources)} frames in Pixel Data but {named('NumberOfFrames')} is "
                                  f"{image.number_of_frames}", "NumberOfFrames")
    headers = []
    for number, codestream in enumerate(sources, 1):
        try:
            headers.append(read_main_header(codestream))
        except CodestreamError as error:
            raise error.within(f"frame {number}'s JPEG 2000 codestream") from None
    wanted_ht = high_throughput or syntax in HTJ2K_TRANSFER_SYNTAXES
    reasons = []
    for number, header in enumerate(headers, 1):
        components = header.size.components
        if header.high_throughput != wanted_ht:
            reasons.append("Part 1 asked to become HTJ2K")
        if any(c.signed != image.signed for c in components):
            reasons.append(f"frame {number}'s codestream is {'signed' if components[0].signed else 'unsigned'} but "
                           f"{named('PixelRepresentation')} is {image.pixel_representation}")
        if len(components) == 3 and not header.coding_style.multiple_component_transform:
            reasons.append(f"frame {number}'s colour codestream has no component transform")
        if len(components) not in (1, 3) or len(components) != image.samples_per_pixel:
            reasons.append(f"frame {number}'s codestream has {len(components)} components, "
                           f"{named('SamplesPerPixel')} says {image.samples_per_pixel}")
        if reasons:
            break
    if reasons:
        log.info("%s: encoded losslessly from its decoding: %s", source, reasons[0])
        return None
    frames, changed = [], False
    for source_frame in sources:
        index = index_codestream(read_codestream(source_frame))
        if assess(index).friendly:
            frames.append(source_frame)
        else:
            frames.append(repacketize(source_frame, index=index).codestream)
            changed = True
    photometric = "RGB" if image.samples_per_pixel == 3 else image.photometric_interpretation
    served = ServedPixels(frames, "re-packetized" if changed else "kept", photometric)
    if verify:
        reference = read_source_pixels(dataset, syntax, source, maximum_bytes)
        for number, (frame, expected) in enumerate(zip(frames, reference.frames()), 1):
            prove_frame(frame, expected, number, source)
    return served


def _encoded(dataset, syntax: UID, high_throughput: bool, source: str, verify: bool,
             maximum_bytes: int) -> ServedPixels:
    """The source decoded (pyjpip.dicom.source_pixels) and each frame encoded losslessly."""
    pixels = read_source_pixels(dataset, syntax, source, maximum_bytes)
    notes = []
    if pixels.precision > MAXIMUM_EXACT_PRECISION:
        smallest = largest = 0
        for frame in pixels.frames():
            if frame.size:
                smallest, largest = min(smallest, int(frame.min())), max(largest, int(frame.max()))
        needed = bits_needed(smallest, largest, pixels.signed)
        if needed > MAXIMUM_EXACT_PRECISION:
            raise UnsupportedPixelsError(
                f"{named('BitsStored')} is {pixels.precision} and its samples ({smallest} to {largest}) need "
                f"{needed} bits; JPEG 2000 is reproduced exactly here up to {MAXIMUM_EXACT_PRECISION} bits "
                "(OpenJPEG)", "BitsStored")
        notes.append(f"Bits Stored {pixels.precision} served as {needed}: every sample ({smallest} to {largest}) "
                     f"fits in {needed} bits, and JPEG 2000 is exact here up to {MAXIMUM_EXACT_PRECISION}")
        log.warning("%s: %s", source, notes[-1])
        pixels.precision = needed
    frames = []
    for number, frame in enumerate(pixels.frames(), 1):
        check_range(frame, pixels.precision, pixels.signed, number, source)
        codestream = encode_frame(frame, pixels.precision, pixels.signed, high_throughput)
        if verify:
            prove_frame(codestream, frame, number, source)
        frames.append(codestream)
    if len(frames) != pixels.count:
        raise PixelAttributeError(f"{len(frames)} frames decoded but {named('NumberOfFrames')} is {pixels.count}",
                                  "NumberOfFrames")
    if pixels.derivation:
        notes.append(pixels.derivation)
    return ServedPixels(frames, "encoded", pixels.photometric, pixels.derivation, pixels.palette_expanded, notes)


def describe_served(hollow, served: ServedPixels, header) -> None:
    """Make the hollow object's Image Pixel Module say what the served codestreams hold (PS3.5 8.2.4:
    Bits Stored is the codestream's precision, Pixel Representation its signedness; A.6: grey, or the
    colour transform it used), and mark a palette expansion as derived (C.7.6.1.1.2, C.7.6.1.1.3)."""
    components = header.size.components
    c0 = components[0]
    hollow.PhotometricInterpretation = _colour_name(served.photometric, header)
    hollow.SamplesPerPixel = len(components)
    said = hollow.get("BitsStored")
    if said is not None and int(said) != c0.precision and served.encoding != "encoded":
        served.notes.append(f"Bits Stored {int(said)} said as {c0.precision}, the precision of its JPEG 2000 "
                            "codestream (PS3.5 8.2.4), whose samples are served as they are")
    hollow.BitsStored = c0.precision
    hollow.HighBit = c0.precision - 1
    hollow.PixelRepresentation = int(c0.signed)
    allocated = int(hollow.get("BitsAllocated", 0) or 0)
    if allocated < c0.precision or served.palette_expanded:
        hollow.BitsAllocated = 1 if c0.precision == 1 and allocated == 1 else 8 * ((c0.precision + 7) // 8)
    if len(components) == 3:
        hollow.PlanarConfiguration = 0
    elif "PlanarConfiguration" in hollow:
        del hollow.PlanarConfiguration
    if served.palette_expanded:
        for keyword in PALETTE_ATTRIBUTES:
            if keyword in hollow:
                delattr(hollow, keyword)
        image_type = list(hollow.get("ImageType", []) or ["DERIVED", "PRIMARY"])
        image_type[0] = "DERIVED"
        hollow.ImageType = image_type
        previous = str(hollow.get("DerivationDescription", "") or "")
        hollow.DerivationDescription = ((previous + "; ") if previous else "") + served.derivation[:1000]


#: Attributes that group a study when its UID is missing (PS3.3 C.7.2.1), and a series (C.7.3.1).
_STUDY_KEYS = ("PatientID", "PatientName", "StudyID", "AccessionNumber", "StudyDate", "StudyTime")
_SERIES_KEYS = ("SeriesNumber", "Modality", "SeriesDate", "SeriesTime", "SeriesDescription")
_SAID: set[str] = set()


def supply_study_and_series(dataset) -> list[str]:
    """Give an object without Study or Series Instance UID one, so a gateway takes it: derived (as
    a 2.25 UUID-style UID, PS3.5 B.2) from what it does carry about its study and series, so that
    such objects of one study group together; from its SOP Instance UID when it carries nothing.
    Returns the keywords supplied; the first time each is supplied it is logged."""
    supplied = []
    for keyword, keys, within in (("StudyInstanceUID", _STUDY_KEYS, ""), ("SeriesInstanceUID", _SERIES_KEYS, None)):
        if dataset.get(keyword):
            continue
        carried = [f"{k}={dataset.get(k)}" for k in keys if dataset.get(k) not in (None, "")]
        basis = "\0".join([str(dataset.StudyInstanceUID) if within is None else "", *carried]) if carried \
            else f"SOP\0{dataset.SOPInstanceUID}"
        digest = hashlib.sha256(f"pyjpip {keyword}\0{basis}".encode()).digest()[:16]
        setattr(dataset, keyword, f"2.25.{int.from_bytes(digest, 'big')}")
        supplied.append(keyword)
        if keyword not in _SAID:
            _SAID.add(keyword)
            log.warning("objects without %s are taken: each is given one derived from %s (first: SOP Instance %s)",
                        keyword, "what it carries of its " + ("study" if within == "" else "series")
                        if carried else "its SOP Instance UID", dataset.SOPInstanceUID)
    return supplied


def _colour_name(photometric: str, header) -> str:
    """PS3.5 A.6: grey as the source says it (MONOCHROME1 or 2); colour as the transform its codestream
    used (RGB is not allowed)."""
    if len(header.size.components) != 3:
        return photometric if photometric in ("MONOCHROME1", "MONOCHROME2") else "MONOCHROME2"
    if header.coding_style.multiple_component_transform:
        return "YBR_RCT" if header.coding_style.reversible else "YBR_ICT"
    raise DicomError("a colour codestream without a component transform cannot be said in a JPIP syntax")


def _write_atomically(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".part")
    try:
        with os.fdopen(descriptor, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # a Storage SCP acknowledges an instance only once it is on disk
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def print_progress(number: int, total: int, path: str, outcome: str) -> None:
    width = 30
    done = width * number // total
    sys.stderr.write(f"\r[{'#' * done}{'.' * (width - done)}] {number}/{total} {os.path.basename(path)[:40]}: "
                     f"{outcome[:60]}\033[K")
    if number == total or outcome.startswith("failed"):
        sys.stderr.write("\n")
    sys.stderr.flush()
