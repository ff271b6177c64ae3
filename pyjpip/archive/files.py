"""Received objects kept as files, one per instance, as they came (STORE/files/<study>/<series>/<sop>.dcm).

The data set bytes are the sender's, unchanged: a .95/.205 object keeps the sender's own deflate
stream (PS3.5 A.7, A.12), which inflates to exactly what was sent. The file meta is this SCP's
(a C-STORE carries none): the transfer syntax the object is kept under, the calling AE as Source
Application Entity Title (PS3.10 7.1). Writes are atomic and durable (a temporary file, fsync,
rename, fsync of the folder) so an instance acknowledged is an instance kept, even if the process
is killed the next moment.

The file meta's Source AE Title and Source Presentation Address name the sender that first stored
an instance, kept through updates: another sender's re-send is refused unless it may update
(pyjpip.archive.update_refusal), decided under the archive's lock. Patient conflicts (a study's
objects disagreeing with another study of the same Patient ID, or among themselves) are appended
to files/patient-conflicts.jsonl; each study is listed with what its first kept object said.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import tempfile
import threading

from pydicom.uid import UID

from pyjpip.archive import (
    CREATED,
    FILES_FOLDER,
    REFUSED,
    UNCHANGED,
    UPDATED,
    Archive,
    ArrivedInstance,
    PatientConflict,
    Recorded,
    now,
    update_refusal,
)
from pyjpip.dicom.dicomweb import DatasetCatalog
from pyjpip.dicom.hollow import DEFLATED, deflate, read_file_meta, read_hollow, read_hollow_file
from pyjpip.dicom.limits import MAXIMUM_HOLLOW_FILE_BYTES, read_limited
from pyjpip.dicom.uid_paths import uid_path
from pyjpip.errors import ArchiveError, DicomError, UnsafePathError

log = logging.getLogger(__name__)

LOCATIONS_LOG = "locations.jsonl"
#: Patient conflicts (pyjpip.archive.PatientConflict), one JSON line each.
CONFLICTS_LOG = "patient-conflicts.jsonl"
#: The patient attributes each study keeps as its own objects said them (as the database archive).
STUDY_PATIENT_KEYWORDS = ("PatientName", "PatientBirthDate", "PatientSex")
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
        self.patients: dict | None = None  # (Patient ID, issuer) -> {study: patient attributes}, likewise

    # --- recording ---------------------------------------------------------------------------

    def record(self, instance: ArrivedInstance) -> Recorded:
        """Under the archive's lock (one writer at a time in this process): a re-sent instance is
        compared with the kept file, its first sender read from the file's meta (Source AE Title and
        Source Presentation Address), and an update from another sender refused unless allowed."""
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
            owner = (instance.calling_ae_title, instance.sender_address)
            previous_sender = ""
            if previous_path is not None:
                try:
                    kept = read_limited(previous_path, MAXIMUM_HOLLOW_FILE_BYTES, "hollow object")
                    meta, start = read_file_meta(kept, previous_path)
                    owner = (str(meta.get("SourceApplicationEntityTitle", "") or "").strip(),
                             _address_of(str(meta.get("SourcePresentationAddress", "") or "")))
                    previous_sender = f"{owner[0] or '?'}@{owner[1] or '?'}"
                    previous_url = read_hollow(kept, previous_path).url
                except (OSError, DicomError) as error:
                    log.warning("%s: the earlier copy cannot be read (%s); replaced", previous_path, error)
                    kept, start = None, 0
                data = hollow_file(instance, *owner)
                if kept is not None and previous_path == path and kept[start:] == data[_meta_end(data):] and \
                        str(meta.TransferSyntaxUID) == instance.transfer_syntax:
                    return Recorded(sop, UNCHANGED, previous_sender=previous_sender)
                refusal = update_refusal(instance, owner[0], owner[1]) if kept is not None else None
                if refusal:
                    return Recorded(sop, REFUSED, reason=refusal, previous_sender=previous_sender)
            else:
                data = hollow_file(instance, *owner)
            conflicts = self._patient_conflicts(instance)
            try:
                write_durably(path, data)
                if previous_path is not None and previous_path != path:
                    os.unlink(previous_path)  # the instance moved to another study or series
                if previous_url is not None and previous_url != instance.url:
                    self._log_location(sop, previous_url, instance)
                for conflict in conflicts:
                    _append_line(os.path.join(self.root, CONFLICTS_LOG), json.dumps(conflict.as_dict()))
            except OSError as error:
                raise ArchiveError(f"{path}: cannot be written ({error})") from error
            paths[sop] = path
            self._remember_patient(instance)
        return Recorded(sop, CREATED if previous_path is None else UPDATED,
                        previous_url if previous_url != instance.url else None, previous_sender=previous_sender,
                        conflicts=tuple(conflicts))

    # --- patients ----------------------------------------------------------------------------

    def _patients(self) -> dict:
        """(Patient ID, issuer) -> {study: {attribute: value}}: what each study's first object said."""
        if self.patients is None:
            patients: dict = {}
            for path in sorted(_dicom_files(self.root), key=lambda p: os.stat(p).st_mtime_ns):
                try:
                    dataset = read_hollow_file(path).dataset
                except (OSError, DicomError):
                    continue
                _remember(patients, dataset)
            self.patients = patients
        return self.patients

    def _patient_conflicts(self, instance: ArrivedInstance) -> list[PatientConflict]:
        ds = instance.dataset
        patient_id = _value(ds, "PatientID")
        if not patient_id:
            return []
        studies = self._patients().get((patient_id, _value(ds, "IssuerOfPatientID")), {})
        study = instance.study_instance_uid
        others = {study: studies[study]} if study in studies else studies
        conflicts = []
        for other_study, theirs in others.items():
            for keyword in STUDY_PATIENT_KEYWORDS:
                mine = _value(ds, keyword)
                if mine != theirs.get(keyword, ""):
                    conflicts.append(PatientConflict(patient_id, study, other_study, keyword, mine,
                                                     theirs.get(keyword, ""), instance.sop_instance_uid,
                                                     instance.sender, instance.received_at or now()))
        return conflicts

    def _remember_patient(self, instance: ArrivedInstance) -> None:
        _remember(self._patients(), instance.dataset)

    def patient_conflicts(self) -> list[PatientConflict]:
        try:
            with open(os.path.join(self.root, CONFLICTS_LOG)) as f:
                return [PatientConflict(**json.loads(line)) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def _log_location(self, sop: str, previous_url: str, instance: ArrivedInstance) -> None:
        line = json.dumps({"sop_instance_uid": sop, "previous_location": previous_url, "location": instance.url,
                           "calling_ae_title": instance.calling_ae_title, "changed_at": instance.received_at or now()})
        _append_line(os.path.join(self.root, LOCATIONS_LOG), line)

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
        # The earliest written first: a study's listing shows what its first kept object said (each
        # study its own patient attributes; a later object that disagrees is a recorded conflict).
        for path, stat in sorted(_stat_all(self.root), key=lambda found: (found[1].st_mtime_ns, found[0])):
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


def hollow_file(instance: ArrivedInstance, source_ae_title: str | None = None,
                source_address: str | None = None) -> bytes:
    """Part 10 bytes for ``instance``: this SCP's file meta, then the sender's data set bytes (its
    own deflate stream when the object came deflated and is kept so). The meta names the sender
    that first stored the instance (Source AE Title, Source Presentation Address: kept through
    updates, by default this one) and the one that sent this content (Sending AE Title, Sending
    Presentation Address), PS3.10 7.1."""
    if instance.received_transfer_syntax == instance.transfer_syntax:
        body = instance.wire_bytes
    else:
        body = deflate(instance.dataset_bytes) if UID(instance.transfer_syntax) in DEFLATED else instance.dataset_bytes
    source = instance.calling_ae_title if source_ae_title is None else source_ae_title
    address = instance.sender_address if source_address is None else source_address
    return part10_head(instance.sop_class_uid, instance.sop_instance_uid, instance.transfer_syntax, source,
                       _presentation_address(address), instance.calling_ae_title,
                       _presentation_address(instance.sender_address)) + bytes(body)


def _presentation_address(address: str | None) -> str:
    """A peer's address as a Presentation Address (UR): dicom://host."""
    if not address:
        return ""
    return f"dicom://[{address}]" if ":" in address else f"dicom://{address}"


def _address_of(presentation_address: str) -> str:
    return presentation_address.strip().removeprefix("dicom://").removeprefix("[").removesuffix("]")


def _meta_end(part10: bytes) -> int:
    (length,) = struct.unpack_from("<I", part10, 140)
    return 144 + length


def _value(dataset, keyword: str) -> str:
    value = dataset.get(keyword, "")
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value)


def _remember(patients: dict, dataset) -> None:
    patient_id = _value(dataset, "PatientID")
    if patient_id:
        studies = patients.setdefault((patient_id, _value(dataset, "IssuerOfPatientID")), {})
        studies.setdefault(str(dataset.get("StudyInstanceUID", "")),
                           {k: _value(dataset, k) for k in STUDY_PATIENT_KEYWORDS})


def _append_line(path: str, line: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, (line + "\n").encode())
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def part10_head(sop_class_uid: str, sop_instance_uid: str, transfer_syntax: str, source_ae_title: str = "",
                source_address: str = "", sending_ae_title: str = "", sending_address: str = "") -> bytes:
    """Preamble, prefix and File Meta Information (PS3.10 7.1), encoded here: pydicom's writer takes
    ~2 ms for these few elements, a fifth of what storing a hollow instance costs."""
    def element(element_number: int, vr: bytes, value: bytes) -> bytes:
        if vr in (b"OB", b"UR"):
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
    if sending_ae_title:
        elements.append(element(0x0017, b"AE", text(sending_ae_title[:16])))
    if source_address:
        elements.append(element(0x0026, b"UR", text(source_address[:200])))
    if sending_address:
        elements.append(element(0x0027, b"UR", text(sending_address[:200])))
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
