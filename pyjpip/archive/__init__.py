"""Where a Storage SCP keeps what it receives (CPython only): the objects as files, one per instance as
they came, or shredded into patient / study / series / instance tables with the Pixel Data Provider
URL where an archive keeps a file's path (dcm4chee-arc's `location`), the calling AE where it keeps
the external retrieve AE. Both give the objects back as hollow Part 10 bytes and list them for
DICOMweb (pyjpip.dicom.dicomweb.Catalog).

    STORE/files/<study>/<series>/<instance>.dcm   --files: the objects as received
    STORE/files/locations.jsonl                    every change of an instance's URL, one JSON line
    STORE/pyjpip.sqlite                            the database (or --db postgresql://...)
    STORE/images/, STORE/hollow/, STORE/index.json ordinary objects ingested (pyjpip.dicom.ingest)

PS3.5 10.8 warns that such references may stop working and that these syntaxes are not for
permanent storage (PS3.4 J.1.1: a link is not enough to commit): an archive records what it was
given and when, and says nothing it cannot know about the pixels behind the URL.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

from pyjpip.errors import ArchiveError

SQLITE_NAME = "pyjpip.sqlite"
FILES_FOLDER = "files"


@dataclass(frozen=True)
class ArrivedInstance:
    """A hollow object to record: the decision of pyjpip.dicom.storage plus who sent it, when."""

    dataset: object  # pydicom Dataset (parsed from dataset_bytes)
    transfer_syntax: str  # the JPIP syntax it is kept under
    received_transfer_syntax: str  # what the association used
    dataset_bytes: bytes  # Explicit VR Little Endian, not deflated
    wire_bytes: bytes  # as sent
    url: str
    calling_ae_title: str = ""
    called_ae_title: str = ""
    received_at: str = ""
    notes: tuple[str, ...] = ()
    #: The peer's IP address: with the calling AE title, who the sender is (pyjpip.network.senders).
    sender_address: str = ""
    #: The sender may replace an instance another sender stored (permission "update").
    may_update_others: bool = False

    @classmethod
    def from_hollow(cls, hollow, calling_ae_title: str = "", called_ae_title: str = "",
                    received_at: str | None = None, sender_address: str = "",
                    may_update_others: bool = False) -> ArrivedInstance:
        return cls(hollow.dataset, str(hollow.transfer_syntax), str(hollow.received_transfer_syntax),
                   hollow.dataset_bytes, hollow.wire_bytes, hollow.url, calling_ae_title, called_ae_title,
                   received_at or now(), tuple(hollow.warnings), sender_address, may_update_others)

    @property
    def sender(self) -> str:
        return f"{self.calling_ae_title}@{self.sender_address or '?'}"

    @property
    def sop_instance_uid(self) -> str:
        return str(self.dataset.SOPInstanceUID)

    @property
    def sop_class_uid(self) -> str:
        return str(self.dataset.SOPClassUID)

    @property
    def study_instance_uid(self) -> str:
        return str(self.dataset.StudyInstanceUID)

    @property
    def series_instance_uid(self) -> str:
        return str(self.dataset.SeriesInstanceUID)


@dataclass(frozen=True)
class PatientConflict:
    """Objects that disagree on a patient attribute under one Patient ID (and issuer): another
    study's objects (``other_study`` differs) or earlier objects of the same study. Neither value
    replaces the other: each study keeps what its own objects said."""

    patient_id: str
    study_instance_uid: str
    other_study_instance_uid: str
    attribute: str
    value: str
    other_value: str
    sop_instance_uid: str
    sender: str
    detected_at: str

    def describe(self) -> str:
        where = ("within study " + self.study_instance_uid if self.study_instance_uid == self.other_study_instance_uid
                 else f"study {self.study_instance_uid} against study {self.other_study_instance_uid}")
        return (f"Patient ID {self.patient_id!r}: {self.attribute} {self.value[:64]!r} in instance "
                f"{self.sop_instance_uid} from {self.sender}, {self.other_value[:64]!r} before ({where})")

    def as_dict(self) -> dict:
        return dict(self.__dict__)


#: Record outcomes.
CREATED, UPDATED, UNCHANGED, REFUSED = "created", "updated", "unchanged", "refused"


@dataclass(frozen=True)
class Recorded:
    """What storing did: ``created`` (new instance), ``updated`` (re-sent with changed content, changed
    in place), ``unchanged`` (re-sent identical: nothing changed) or ``refused`` (an update from a
    sender that may not make it: nothing changed, ``reason`` says why); the URL it had before when
    that changed; the sender that stored it first; patient conflicts this instance showed."""

    sop_instance_uid: str
    outcome: str
    previous_url: str | None = None
    reason: str = ""
    previous_sender: str = ""
    conflicts: tuple[PatientConflict, ...] = ()


def update_refusal(instance: ArrivedInstance, owner_ae: str | None, owner_address: str | None) -> str | None:
    """Why ``instance`` may not replace the one stored by ``owner_ae``@``owner_address``; None when it
    may: the same sender (calling AE title and, when it was recorded, address) or one allowed to
    update others. The one rule both archives apply inside their transaction."""
    same_title = (owner_ae or "") == instance.calling_ae_title
    same_address = not owner_address or owner_address == instance.sender_address
    if (same_title and same_address) or instance.may_update_others:
        return None
    return (f"stored by {owner_ae or '?'}@{owner_address or '?'}; {instance.sender} may not replace another "
            "sender's instance")


def now() -> str:
    """UTC, to the microsecond, as ISO 8601 (sorts as text in SQLite and as timestamptz in PostgreSQL)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds")


class Archive:
    """Records arrived instances durably: when ``record`` returns, the instance survives a crash."""

    def record(self, instance: ArrivedInstance) -> Recorded:
        raise NotImplementedError

    def part10(self, sop_instance_uid: str) -> bytes | None:
        """The instance again as a hollow Part 10 object; None if it is not here."""
        raise NotImplementedError

    def catalog(self):
        """The pyjpip.dicom.dicomweb.Catalog that lists this archive."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class Archives(Archive):
    """Several archives at once (--files with --db): each instance goes to all of them, in order."""

    def __init__(self, archives: list[Archive]):
        self.archives = archives

    def record(self, instance: ArrivedInstance) -> Recorded:
        results = []
        for archive in self.archives:
            result = archive.record(instance)
            if result.outcome == REFUSED:
                return result
            results.append(result)
        last = results[-1]
        conflicts = next((r.conflicts for r in reversed(results) if r.conflicts), ())  # each archive finds the same
        return Recorded(last.sop_instance_uid, last.outcome, last.previous_url, last.reason, last.previous_sender,
                        conflicts)

    def part10(self, sop_instance_uid: str) -> bytes | None:
        for archive in self.archives:
            found = archive.part10(sop_instance_uid)
            if found is not None:
                return found
        return None

    def catalog(self):
        return self.archives[-1].catalog()

    def close(self) -> None:
        for archive in self.archives:
            archive.close()


def open_archive(store: str, database_url: str | None = None, files: bool = False) -> Archive:
    """The archive ``pyjpip store-scp`` writes: SQLite in the store by default, the database at
    ``database_url`` when given, files as received with ``files`` (and a database too if one is named)."""
    os.makedirs(store, exist_ok=True)
    chosen: list[Archive] = []
    if files:
        from pyjpip.archive.files import FileArchive

        chosen.append(FileArchive(store))
    if database_url or not files:
        from pyjpip.archive.database import DatabaseArchive

        chosen.append(DatabaseArchive(database_url or sqlite_url(store)))
    return chosen[0] if len(chosen) == 1 else Archives(chosen)


def sqlite_url(store: str) -> str:
    return f"sqlite:///{os.path.abspath(os.path.join(store, SQLITE_NAME))}"


def open_catalog(store: str, database_url: str | None = None):
    """The DICOMweb catalog of a store, by what it holds: the database named (or the store's SQLite
    file), else received files, else an ingested store's index.json."""
    if database_url or os.path.exists(os.path.join(store, SQLITE_NAME)):
        from pyjpip.archive.database import DatabaseArchive

        return DatabaseArchive(database_url or sqlite_url(store), create=False).catalog()
    if os.path.isdir(os.path.join(store, FILES_FOLDER)):
        from pyjpip.archive.files import FileArchive

        return FileArchive(store).catalog()
    from pyjpip.dicom.dicomweb import IngestedCatalog

    return IngestedCatalog(store)


__all__ = ["Archive", "Archives", "ArrivedInstance", "Recorded", "PatientConflict", "update_refusal", "CREATED",
           "UPDATED", "UNCHANGED", "REFUSED", "ArchiveError", "open_archive", "open_catalog"]
