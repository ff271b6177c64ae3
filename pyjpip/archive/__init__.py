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

    @classmethod
    def from_hollow(cls, hollow, calling_ae_title: str = "", called_ae_title: str = "",
                    received_at: str | None = None) -> ArrivedInstance:
        return cls(hollow.dataset, str(hollow.transfer_syntax), str(hollow.received_transfer_syntax),
                   hollow.dataset_bytes, hollow.wire_bytes, hollow.url, calling_ae_title, called_ae_title,
                   received_at or now(), tuple(hollow.warnings))

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
class Recorded:
    """What storing did: ``created`` (new instance) or ``updated`` (re-sent, changed in place), and
    the URL it had before when that changed."""

    sop_instance_uid: str
    outcome: str
    previous_url: str | None = None


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
        results = [archive.record(instance) for archive in self.archives]
        return results[-1]

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


__all__ = ["Archive", "Archives", "ArrivedInstance", "Recorded", "ArchiveError", "open_archive", "open_catalog"]
