"""Ingest: ordinary DICOM objects into a JPIP store of codestreams plus hollow objects (CPython tooling).

    STORE/images/<study>/<series>/<instance>.j2k|.jpx   what the JPIP server serves
    STORE/hollow/<study>/<series>/<instance>.dcm        the object, pixels replaced by the JPIP URL
    STORE/index.json                                    what came from where, for re-runs and listings

JPEG 2000 and HTJ2K frames that are already JPIP-friendly are kept byte for byte; the others are
re-packetized (their code-blocks kept, lossy or lossless: pyjpip.codestream.repacketize), so they
decode exactly as the source does. Only other pixel encodings (and Part 1 asked to become HTJ2K)
are decoded and encoded losslessly. Every
file is written to a temporary name and renamed, so a failure leaves nothing half-written, and a
source already ingested (same bytes) is skipped. A file larger than ``maximum_bytes`` (4 GiB by
default) is refused before it is read, and a deflated one (1.2.840.10008.1.2.1.99) is inflated only
up to that bound (pyjpip.dicom.limits).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import tempfile
import threading
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
from pyjpip.dicom.pixel_data import JPEG2000_TRANSFER_SYNTAXES, frame_codestream
from pyjpip.dicom.limits import MAXIMUM_ORDINARY_BYTES, dcmread, read_limited
from pyjpip.errors import CodestreamError, DatasetTooLargeError, DicomError

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
           progress=None, maximum_bytes: int = MAXIMUM_ORDINARY_BYTES) -> IngestReport:
    """Ingest files and folders; one bad file is reported and skipped, never the end of the batch."""
    store = Store(store_root, url_base)
    files = sorted(_dicom_files(paths))
    report = IngestReport([], [], [])
    for number, path in enumerate(files, 1):
        try:
            outcome, sop = _ingest_file(path, store, deflate, high_throughput, maximum_bytes)
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
               high_throughput: bool = False, maximum_bytes: int = MAXIMUM_ORDINARY_BYTES) -> tuple[str, dict]:
    """One file into the store, safe to call from several threads at once (a Storage SCP's
    associations): returns the outcome and the store's entry for it. Raises what ingest reports."""
    key = os.path.abspath(store_root)
    with _STORE_LOCKS_LOCK:
        lock = _STORE_LOCKS.setdefault(key, threading.Lock())
    with lock:
        store = Store(store_root, url_base)
        outcome, sop = _ingest_file(path, store, deflate, high_throughput, maximum_bytes)
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
                 maximum_bytes: int = MAXIMUM_ORDINARY_BYTES) -> tuple[str, str]:
    data = read_limited(path, maximum_bytes)
    digest = hashlib.sha256(data).hexdigest()
    try:
        dataset = dcmread(data, path, maximum_bytes)
    except DatasetTooLargeError:
        raise
    except Exception as exc:  # noqa: BLE001 - pydicom has many ways to say "not DICOM"
        raise DicomError(f"not a readable DICOM file ({exc})") from None
    syntax = UID(str(getattr(dataset.file_meta, "TransferSyntaxUID", "")))
    if syntax in JPIP_TRANSFER_SYNTAXES:
        raise DicomError("already a hollow (JPIP Referenced) object: its pixels are elsewhere")
    for keyword in ("SOPInstanceUID", "SOPClassUID"):
        if not dataset.get(keyword):
            raise DicomError(f"no {keyword}")
    supplied = supply_study_and_series(dataset)
    if "PixelData" not in dataset:
        raise DicomError("no Pixel Data to serve")
    sop = str(dataset.SOPInstanceUID)
    known = store.index["instances"].get(sop)
    if known and known["source_sha256"] == digest and known.get("url_base") == store.url_base and all(
            os.path.exists(os.path.join(store.root, known[k])) for k in ("image", "hollow")):
        return "skipped", sop
    if known and known["source"] != os.path.abspath(path) and known["source_sha256"] != digest:
        raise DicomError(f"SOP Instance UID {sop} is already in the store, from {known['source']}; "
                         "two different objects cannot share it")
    frames, photometric = _codestreams(dataset, syntax, high_throughput, path)
    header = read_main_header(frames[0])
    relative = os.path.join(str(dataset.StudyInstanceUID), str(dataset.SeriesInstanceUID), sop)
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
    hollow_dataset.PhotometricInterpretation = photometric
    if photometric.startswith("YBR"):
        hollow_dataset.PlanarConfiguration = 0
    high = high_throughput or header.high_throughput
    syntax_out = ((JPIP_HTJ2K_REFERENCED_DEFLATE if deflate else JPIP_HTJ2K_REFERENCED) if high
                  else (JPIP_REFERENCED_DEFLATE if deflate else JPIP_REFERENCED))
    hollow = write_hollow(hollow_dataset, url, syntax_out)
    hollow_path = os.path.join("hollow", relative + ".dcm")
    _write_atomically(os.path.join(store.root, image), content)
    _write_atomically(os.path.join(store.root, hollow_path), hollow)
    store.index["instances"][sop] = {
        "study": str(dataset.StudyInstanceUID), "series": str(dataset.SeriesInstanceUID), "image": image,
        "hollow": hollow_path, "frames": len(frames), "source_sha256": digest, "source": os.path.abspath(path),
        "url_base": store.url_base,
    }
    if supplied:
        store.index["instances"][sop]["supplied"] = supplied
    return "ingested", sop


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


def _codestreams(dataset, syntax: UID, high_throughput: bool, source: str) -> tuple[list[bytes], str]:
    """Frames as JPIP-friendly codestreams, and the Photometric Interpretation they carry."""
    photometric = str(dataset.get("PhotometricInterpretation", "")).strip()
    frames_count = int(dataset.get("NumberOfFrames", 1) or 1)
    if syntax in JPEG2000_TRANSFER_SYNTAXES:
        from pydicom.encaps import generate_frames

        sources = [frame_codestream(f, source)
                   for f in generate_frames(dataset.PixelData, number_of_frames=frames_count)]
        headers = [read_main_header(s) for s in sources]
        wanted_ht = high_throughput or syntax in HTJ2K_TRANSFER_SYNTAXES
        if all(h.high_throughput == wanted_ht for h in headers):
            # The code-blocks are kept as they are, lossy or lossless: friendly frames byte for
            # byte, the others re-packetized (new precincts, RPCL, PLT/TLM; no decoding).
            frames = []
            for source_frame in sources:
                index = index_codestream(read_codestream(source_frame))
                frames.append(source_frame if assess(index).friendly else repacketize(source_frame, index=index).codestream)
            return frames, _colour_name(photometric, headers[0])
        import imagecodecs  # Part 1 to HTJ2K: the only case where a JPEG 2000 source is decoded

        decoded = [(imagecodecs.htj2k_decode if h.high_throughput else imagecodecs.jpeg2k_decode)(s)
                   for s, h in zip(sources, headers)]
        c0 = headers[0].size.components[0]
        frames = [encode_frame(d, c0.precision, c0.signed, high_throughput) for d in decoded]
        return frames, _colour_name(photometric, read_main_header(frames[0]))
    pixels = _decoded_pixels(dataset, syntax)  # YBR_FULL(_422) arrive as RGB: pydicom 3 converts by default
    if frames_count == 1:
        pixels = pixels[None]
    precision = int(dataset.BitsStored)
    signed = int(dataset.get("PixelRepresentation", 0)) == 1
    frames = [encode_frame(frame, precision, signed, high_throughput) for frame in pixels]
    return frames, _colour_name(photometric, read_main_header(frames[0]))


def _decoded_pixels(dataset, syntax: UID):
    """pydicom's decoding (native, deflated, RLE, and the JPEG family where a plugin is installed),
    or one line saying why it cannot be done here."""
    pydicom_log = logging.getLogger("pydicom")
    level = pydicom_log.level
    pydicom_log.setLevel(logging.CRITICAL)  # its decoders log a traceback per failed plugin
    try:
        return dataset.pixel_array
    except ImportError:
        raise
    except Exception as error:  # noqa: BLE001 - every plugin's own failure
        reasons = [line.strip() for line in str(error).splitlines() if line.strip()]
        raise DicomError(f"its pixel data ({syntax.name}) cannot be decoded here: {reasons[-1] if reasons else error}"
                         ) from None
    finally:
        pydicom_log.setLevel(level)


def _colour_name(photometric: str, header) -> str:
    """PS3.5 A.6: RGB is not allowed; a colour codestream says which transform it used."""
    if len(header.size.components) != 3:
        # PALETTE COLOR keeps its lookup tables (PS3.5 A.4.4 allows it for lossless JPEG 2000).
        return photometric if photometric in ("MONOCHROME1", "MONOCHROME2", "PALETTE COLOR") else "MONOCHROME2"
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
