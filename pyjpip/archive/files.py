"""Received objects kept as files, one per instance, as they came (STORE/files/<study>/<series>/<sop>.dcm).

The data set bytes are the sender's, unchanged: a .95/.205 object keeps the sender's own deflate
stream (PS3.5 A.7, A.12), which inflates to exactly what was sent. The file meta is this SCP's
(a C-STORE carries none): the transfer syntax the object is kept under, the calling AE as Source
Application Entity Title (PS3.10 7.1). Writes are atomic and durable (a temporary file, fsync,
rename, fsync of the folder) so an instance acknowledged is an instance kept, even if the process
is killed the next moment.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import tempfile
import threading

from pydicom.uid import UID

from pyjpip.archive import FILES_FOLDER, Archive, ArrivedInstance, Recorded, now
from pyjpip.dicom.dicomweb import DatasetCatalog
from pyjpip.dicom.hollow import DEFLATED, deflate, read_hollow_file
from pyjpip.dicom.limits import MAXIMUM_HOLLOW_FILE_BYTES, read_limited
from pyjpip.dicom.uid_paths import uid_path
from pyjpip.errors import ArchiveError, DicomError, UnsafePathError

log = logging.getLogger(__name__)

LOCATIONS_LOG = "locations.jsonl"
#: Implementation Class UID (0002,0012) of files this SCP writes: pyjpip's own root under pydicom's.
IMPLEMENTATION_CLASS_UID = "1.2.826.0.1.3680043.8.498.1.1"
IMPLEMENTATION_VERSION_NAME = "PYJPIP_010"


class FileArchive(Archive):
    def __init__(self, store: str):
        self.store = os.path.abspath(store)
        self.root = os.path.join(self.store, FILES_FOLDER)
        os.makedirs(self.root, exist_ok=True)
        self.lock = threading.Lock()
        self.paths: dict[str, str] | None = None  # SOP Instance UID -> path, found on first need

    # --- recording ---------------------------------------------------------------------------

    def record(self, instance: ArrivedInstance) -> Recorded:
        data = hollow_file(instance)
        sop = instance.sop_instance_uid
        try:
            path = uid_path(self.root, ("StudyInstanceUID", instance.study_instance_uid),
                            ("SeriesInstanceUID", instance.series_instance_uid), ("SOPInstanceUID", sop), suffix=".dcm")
        except UnsafePathError as error:
            raise ArchiveError(str(error)) from None
        with self.lock:
            paths = self._paths()
            previous_path = paths.get(sop)
            previous_url = None
            if previous_path is not None:
                try:
                    previous_url = read_hollow_file(previous_path).url
                except (OSError, DicomError) as error:
                    log.warning("%s: the earlier copy cannot be read (%s); replaced", previous_path, error)
            try:
                write_durably(path, data)
                if previous_path is not None and previous_path != path:
                    os.unlink(previous_path)  # the instance moved to another study or series
                if previous_url is not None and previous_url != instance.url:
                    self._log_location(sop, previous_url, instance)
            except OSError as error:
                raise ArchiveError(f"{path}: cannot be written ({error})") from error
            paths[sop] = path
        return Recorded(sop, "created" if previous_path is None else "updated",
                        previous_url if previous_url != instance.url else None)

    def _log_location(self, sop: str, previous_url: str, instance: ArrivedInstance) -> None:
        line = json.dumps({"sop_instance_uid": sop, "previous_location": previous_url, "location": instance.url,
                           "calling_ae_title": instance.calling_ae_title, "changed_at": instance.received_at or now()})
        descriptor = os.open(os.path.join(self.root, LOCATIONS_LOG), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(descriptor, (line + "\n").encode())
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def location_changes(self) -> list[dict]:
        try:
            with open(os.path.join(self.root, LOCATIONS_LOG)) as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def _paths(self) -> dict[str, str]:
        if self.paths is None:
            self.paths = {os.path.basename(p)[:-4]: p for p in _dicom_files(self.root)}
        return self.paths

    # --- reading -----------------------------------------------------------------------------

    def part10(self, sop_instance_uid: str) -> bytes | None:
        with self.lock:
            path = self._paths().get(sop_instance_uid)
        if path is None:
            return None
        try:
            return read_limited(path, MAXIMUM_HOLLOW_FILE_BYTES, "hollow object")
        except FileNotFoundError:
            return None

    def catalog(self):
        return FileCatalog(self.root)


class FileCatalog(DatasetCatalog):
    """The received files listed for DICOMweb; a file is read again only when it changed."""

    def __init__(self, root: str):
        super().__init__()
        self.root = root
        self.read: dict[str, tuple[tuple, object]] = {}  # path -> ((mtime, size), data set)

    def _stamp(self):
        return tuple(sorted((p, s.st_mtime_ns, s.st_size) for p, s in _stat_all(self.root)))

    def _load(self):
        objects, read = {}, {}
        for path, stat in _stat_all(self.root):
            key = (stat.st_mtime_ns, stat.st_size)
            known = self.read.get(path)
            if known and known[0] == key:
                dataset = known[1]
            else:
                try:  # over the limits: left out before it is read, or before it inflates past them
                    dataset = read_hollow_file(path).dataset
                except (OSError, DicomError) as error:
                    log.warning("%s left out of the listing: %s", path, error)
                    continue
            read[path] = (key, dataset)
            objects[str(dataset.SOPInstanceUID)] = (dataset, _reader(path))
        self.read = read
        return objects


def _reader(path: str):
    def read() -> bytes:
        return read_limited(path, MAXIMUM_HOLLOW_FILE_BYTES, "hollow object")
    return read


def _dicom_files(root: str):
    for folder, _, names in os.walk(root):
        for name in names:
            if name.endswith(".dcm"):
                yield os.path.join(folder, name)


def _stat_all(root: str):
    for path in _dicom_files(root):
        try:
            yield path, os.stat(path)
        except FileNotFoundError:
            continue


def hollow_file(instance: ArrivedInstance) -> bytes:
    """Part 10 bytes for ``instance``: this SCP's file meta, then the sender's data set bytes (its
    own deflate stream when the object came deflated and is kept so)."""
    if instance.received_transfer_syntax == instance.transfer_syntax:
        body = instance.wire_bytes
    else:
        body = deflate(instance.dataset_bytes) if UID(instance.transfer_syntax) in DEFLATED else instance.dataset_bytes
    return part10_head(instance.sop_class_uid, instance.sop_instance_uid, instance.transfer_syntax,
                       instance.calling_ae_title) + bytes(body)


def part10_head(sop_class_uid: str, sop_instance_uid: str, transfer_syntax: str, source_ae_title: str = "") -> bytes:
    """Preamble, prefix and File Meta Information (PS3.10 7.1), encoded here: pydicom's writer takes
    ~2 ms for these few elements, a fifth of what storing a hollow instance costs."""
    def element(element_number: int, vr: bytes, value: bytes) -> bytes:
        if vr == b"OB":
            return struct.pack("<HH2s2xI", 2, element_number, vr, len(value)) + value
        return struct.pack("<HH2sH", 2, element_number, vr, len(value)) + value

    def uid(text: str) -> bytes:
        data = str(text).encode("ascii")
        return data + b"\x00" if len(data) % 2 else data  # UI pads with NUL (PS3.5 6.2)

    def text(value: str) -> bytes:
        data = value.encode("ascii", "replace")
        return data + b" " if len(data) % 2 else data

    elements = [element(0x0001, b"OB", b"\x00\x01"), element(0x0002, b"UI", uid(sop_class_uid)),
                element(0x0003, b"UI", uid(sop_instance_uid)), element(0x0010, b"UI", uid(transfer_syntax)),
                element(0x0012, b"UI", uid(IMPLEMENTATION_CLASS_UID)),
                element(0x0013, b"SH", text(IMPLEMENTATION_VERSION_NAME))]
    if source_ae_title:
        elements.append(element(0x0016, b"AE", text(source_ae_title[:16])))
    group = b"".join(elements)
    return b"\x00" * 128 + b"DICM" + element(0x0000, b"UL", struct.pack("<I", len(group))) + group


def write_durably(path: str, data: bytes) -> None:
    """Atomic (readers see the old file or the new one) and durable (on disk when this returns)."""
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=folder, suffix=".part")
    try:
        with os.fdopen(descriptor, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
