"""Received hollow objects shredded into patient / study / series / instance tables (SQLite or PostgreSQL).

The design follows what real archives do (dcm4chee-arc: patient → study → series → instance, a
location per stored object, the remaining attributes as a blob): each level's row holds, as typed
columns, the attributes a viewer lays out by and QIDO-RS matches on; the instance row holds the
Pixel Data Provider URL as its location, the calling and called AE titles, when it arrived, the
data set's own bytes (so the hollow Part 10 object comes back byte for byte) and its DICOM JSON
(so WADO-RS metadata is answered from SQL alone, without parsing a data set).

Concurrency: every instance is one transaction (SQLite: BEGIN IMMEDIATE in WAL mode, synchronous
FULL; PostgreSQL: row upserts with ON CONFLICT plus an advisory lock per SOP Instance UID), so
parallel associations lose and duplicate nothing, and a re-sent instance updates its row in place.
A URL that changes for the same SOP Instance UID is kept in location_history.

Who may change an instance (issue 23): the instance row keeps the sender that created it (calling AE
title and address); a re-send from another sender without update permission is refused inside the
same transaction (pyjpip.archive.update_refusal), an identical re-send changes nothing. Patients:
the patient row is made by its first object and never renamed; each study keeps the patient
attributes its own first object gave (study.patient_attributes, which QIDO-RS answers), and an
object that says otherwise, for another study of the same Patient ID or within its own study, is
recorded in patient_conflict.

Schema changes are numbered migrations applied in order and recorded in schema_migrations; an
archive opened by a newer pyjpip is migrated, one opened by an older one is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
from contextlib import contextmanager
from urllib.parse import unquote, urlsplit

from pyjpip.archive import (
    CREATED,
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
from pyjpip.dicom.dicomweb import INSTANCE_KEYWORDS, SERIES_KEYWORDS, STUDY_KEYWORDS, Catalog, dicom_json, study_order
from pyjpip.errors import ArchiveError

log = logging.getLogger(__name__)

PATIENT_KEYWORDS = ("PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex")
#: Study attributes kept beside the patient's (STUDY_KEYWORDS holds both for QIDO's study level).
STUDY_ONLY_KEYWORDS = tuple(k for k in STUDY_KEYWORDS if k not in PATIENT_KEYWORDS)

#: (version, description, statements): {id}, {blob}, {real} and {timestamp} are the dialect's types.
MIGRATIONS = [
    (1, "patient, study, series and instance tables", [
        """CREATE TABLE patient (
            pk {id},
            patient_key TEXT NOT NULL UNIQUE,
            patient_id TEXT, issuer_of_patient_id TEXT, patient_name TEXT, patient_birth_date TEXT,
            patient_sex TEXT,
            attributes TEXT NOT NULL,
            updated_at {timestamp} NOT NULL)""",
        """CREATE TABLE study (
            pk {id},
            study_instance_uid TEXT NOT NULL UNIQUE,
            patient_pk BIGINT NOT NULL REFERENCES patient (pk),
            study_date TEXT, study_time TEXT, accession_number TEXT, study_id TEXT, study_description TEXT,
            referring_physician_name TEXT,
            attributes TEXT NOT NULL,
            updated_at {timestamp} NOT NULL)""",
        """CREATE TABLE series (
            pk {id},
            series_instance_uid TEXT NOT NULL UNIQUE,
            study_pk BIGINT NOT NULL REFERENCES study (pk),
            modality TEXT, series_number BIGINT, series_description TEXT, body_part_examined TEXT,
            frame_of_reference_uid TEXT,
            attributes TEXT NOT NULL,
            updated_at {timestamp} NOT NULL)""",
        """CREATE TABLE instance (
            pk {id},
            sop_instance_uid TEXT NOT NULL UNIQUE,
            series_pk BIGINT NOT NULL REFERENCES series (pk),
            sop_class_uid TEXT NOT NULL,
            instance_number BIGINT, number_of_frames BIGINT NOT NULL,
            number_of_rows BIGINT, number_of_columns BIGINT, samples_per_pixel BIGINT, photometric_interpretation TEXT,
            bits_allocated BIGINT, bits_stored BIGINT, pixel_representation BIGINT,
            image_position_patient TEXT, image_orientation_patient TEXT, pixel_spacing TEXT,
            slice_thickness {real}, slice_location {real}, window_center TEXT, window_width TEXT,
            rescale_intercept {real}, rescale_slope {real}, lossy_image_compression TEXT,
            location TEXT NOT NULL,
            transfer_syntax_uid TEXT NOT NULL,
            received_transfer_syntax_uid TEXT NOT NULL,
            calling_ae_title TEXT, called_ae_title TEXT,
            first_received_at {timestamp} NOT NULL,
            received_at {timestamp} NOT NULL,
            times_received BIGINT NOT NULL,
            dataset {blob} NOT NULL,
            dataset_sha256 TEXT NOT NULL,
            summary TEXT NOT NULL,
            metadata TEXT NOT NULL,
            notes TEXT)""",
    ]),
    (2, "location history and QIDO indexes", [
        """CREATE TABLE location_history (
            pk {id},
            sop_instance_uid TEXT NOT NULL,
            previous_location TEXT NOT NULL,
            location TEXT NOT NULL,
            calling_ae_title TEXT,
            changed_at {timestamp} NOT NULL)""",
        "CREATE INDEX location_history_sop ON location_history (sop_instance_uid)",
        "CREATE INDEX study_patient ON study (patient_pk)",
        "CREATE INDEX study_date ON study (study_date)",
        "CREATE INDEX series_study ON series (study_pk)",
        "CREATE INDEX instance_series ON instance (series_pk)",
    ]),
    (3, "senders of instances, per-study patient attributes, patient conflicts (issue 23)", [
        "ALTER TABLE instance ADD COLUMN sender_address TEXT",
        "ALTER TABLE instance ADD COLUMN created_by_ae_title TEXT",
        "ALTER TABLE instance ADD COLUMN created_by_address TEXT",
        # Archives made before: the first sender is not known, the last one is (its address is not).
        "UPDATE instance SET created_by_ae_title = calling_ae_title",
        "ALTER TABLE study ADD COLUMN patient_attributes TEXT",
        lambda cursor, database: _study_patients_from_instances(cursor),
        """CREATE TABLE patient_conflict (
            pk {id},
            patient_key TEXT NOT NULL,
            patient_id TEXT,
            study_instance_uid TEXT NOT NULL,
            other_study_instance_uid TEXT NOT NULL,
            attribute TEXT NOT NULL,
            value TEXT NOT NULL,
            other_value TEXT NOT NULL,
            sop_instance_uid TEXT NOT NULL,
            sender TEXT NOT NULL,
            detected_at {timestamp} NOT NULL)""",
        "CREATE INDEX patient_conflict_key ON patient_conflict (patient_key)",
    ]),
]
#: Patient attributes each study keeps as its own objects said them (a conflict is flagged, never merged).
STUDY_PATIENT_KEYWORDS = ("PatientName", "PatientBirthDate", "PatientSex")
SCHEMA_VERSION = MIGRATIONS[-1][0]
#: Connections kept open between transactions (more are opened while more associations store at once).
MAXIMUM_IDLE = 8

DIALECT_TYPES = {
    "sqlite": {"id": "INTEGER PRIMARY KEY", "blob": "BLOB", "real": "REAL", "timestamp": "TEXT"},
    "postgresql": {"id": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "blob": "BYTEA",
                   "real": "DOUBLE PRECISION", "timestamp": "TIMESTAMPTZ"},
}


class Database:
    """One connection per thread (pynetdicom runs an association per thread), SQL written once
    with ``?`` placeholders."""

    def __init__(self, url: str):
        self.url = url
        parts = urlsplit(url)
        if parts.scheme == "sqlite":
            self.dialect = "sqlite"
            self.path = unquote(parts.path)
            if url.startswith("sqlite:////"):
                self.path = "/" + self.path.lstrip("/")
        elif parts.scheme in ("postgresql", "postgres"):
            self.dialect = "postgresql"
            try:
                import psycopg  # noqa: F401
            except ImportError:
                raise ArchiveError("a PostgreSQL archive needs psycopg: pip install 'pyjpip[postgresql]'") from None
        else:
            raise ArchiveError(f"{url}: not a database URL this archive knows (sqlite:///PATH or postgresql://...)")
        self.idle: list = []  # connections not in a transaction, most recently used last
        self.open_connections = 0
        self.lock = threading.Lock()

    def describe(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.hostname or ''}{':' + str(parts.port) if parts.port else ''}{parts.path}"

    @contextmanager
    def connection(self):
        """A connection of the pool for one transaction. pynetdicom runs every association in a thread
        of its own, so connections are not kept per thread (a long-running SCP would leak one per
        association): borrowed, given back, at most MAXIMUM_IDLE kept open."""
        with self.lock:
            connection = self.idle.pop() if self.idle else None
        if connection is None:
            connection = self._connect()
            with self.lock:
                self.open_connections += 1
        broken = True
        try:
            yield connection
            broken = False
        finally:
            with self.lock:
                keep = not broken and len(self.idle) < MAXIMUM_IDLE and not getattr(connection, "closed", False)
                if keep:
                    self.idle.append(connection)
                else:
                    self.open_connections -= 1
            if not keep:
                try:
                    connection.close()
                except Exception:  # noqa: BLE001 - a broken connection is dropped, whatever it says
                    pass

    def _connect(self):
        if self.dialect == "sqlite":
            try:
                connection = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=FULL")  # an acknowledged instance survives a crash
                connection.execute("PRAGMA foreign_keys=ON")
            except sqlite3.Error as error:
                raise ArchiveError(f"{self.describe()}: cannot be opened ({error})") from error
            return connection
        import psycopg

        try:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=30)
        except psycopg.Error as error:
            raise ArchiveError(f"{self.describe()}: cannot be reached ({str(error).strip()})") from error

    def sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.dialect == "postgresql" else statement

    @contextmanager
    def transaction(self, immediate: bool = True):
        """A cursor inside one transaction: committed on success, rolled back on any failure."""
        with self.connection() as connection:
            if self.dialect == "sqlite":
                cursor = connection.cursor()
                cursor.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
                try:
                    yield Cursor(self, cursor)
                except BaseException:
                    connection.rollback()
                    raise
                else:
                    connection.commit()
                return
            with connection.transaction():
                with connection.cursor() as cursor:
                    yield Cursor(self, cursor)

    def close(self) -> None:
        """Close the idle connections (those in a transaction close when it ends)."""
        with self.lock:
            idle, self.idle = self.idle, []
            self.open_connections -= len(idle)
        for connection in idle:
            try:
                connection.close()
            except Exception:  # noqa: BLE001 - closing at exit: nothing left to save
                pass

    def errors(self) -> tuple:
        if self.dialect == "sqlite":
            return (sqlite3.Error,)
        import psycopg

        return (psycopg.Error,)


class Cursor:
    def __init__(self, database: Database, cursor):
        self.database, self.cursor = database, cursor

    def execute(self, statement: str, parameters: tuple = ()):
        self.cursor.execute(self.database.sql(statement), parameters)
        return self

    def one(self, statement: str, parameters: tuple = ()):
        self.execute(statement, parameters)
        return self.cursor.fetchone()

    def all(self, statement: str, parameters: tuple = ()):
        self.execute(statement, parameters)
        return self.cursor.fetchall()


def migrate(database: Database, upto: int = SCHEMA_VERSION) -> int:
    """Apply the migrations this archive lacks (up to ``upto``); returns the version it is at."""
    types = DIALECT_TYPES[database.dialect]
    with database.transaction() as cursor:
        if database.dialect == "postgresql":
            cursor.execute("SELECT pg_advisory_xact_lock(7138209)")  # one migrator at a time
        cursor.execute(f"CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, "
                       f"description TEXT NOT NULL, applied_at {types['timestamp']} NOT NULL)")
        (current,) = cursor.one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
        if current > SCHEMA_VERSION:
            raise ArchiveError(f"{database.describe()}: the archive is at schema version {current}, newer than "
                               f"this pyjpip knows ({SCHEMA_VERSION}); upgrade pyjpip")
        for version, description, statements in MIGRATIONS:
            if version <= current or version > upto:
                continue
            for statement in statements:
                if callable(statement):  # a step that reads rows to write others
                    statement(cursor, database)
                else:
                    cursor.execute(statement.format(**types))
            cursor.execute("INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)",
                           (version, description, now()))
            log.info("%s: schema migrated to version %d (%s)", database.describe(), version, description)
    return max(current, upto)


class DatabaseArchive(Archive):
    def __init__(self, url: str, create: bool = True):
        self.database = Database(url)
        if self.database.dialect == "sqlite" and not create:
            import os

            if not os.path.exists(self.database.path):
                raise ArchiveError(f"{self.database.describe()}: no such archive")
        try:
            self.version = migrate(self.database)
        except self.database.errors() as error:
            raise ArchiveError(f"{self.database.describe()}: the schema cannot be set up ({error})") from error

    def close(self) -> None:
        self.database.close()

    # --- recording ---------------------------------------------------------------------------

    def record(self, instance: ArrivedInstance) -> Recorded:
        from pyjpip.archive.files import hollow_file

        dataset = instance.dataset
        body = hollow_file(instance)
        meta_length = _meta_length(body)
        blob = body[meta_length:]
        at = instance.received_at or now()
        sop = instance.sop_instance_uid
        full = dicom_json(dataset)  # once: every level's JSON is picked from it
        try:
            with self.database.transaction() as cursor:
                if self.database.dialect == "postgresql":
                    cursor.execute("SELECT pg_advisory_xact_lock(?)", (_lock_key(sop),))
                previous = cursor.one("SELECT location, created_by_ae_title, created_by_address, dataset_sha256, "
                                      "transfer_syntax_uid FROM instance WHERE sop_instance_uid = ?", (sop,))
                if previous is not None:
                    owner = f"{previous[1] or '?'}@{previous[2] or '?'}"
                    if previous[3] == hashlib.sha256(blob).hexdigest() and previous[4] == instance.transfer_syntax:
                        cursor.execute("UPDATE instance SET times_received = times_received + 1, received_at = ? "
                                       "WHERE sop_instance_uid = ?", (at, sop))
                        return Recorded(sop, UNCHANGED, previous_sender=owner)
                    refusal = update_refusal(instance, previous[1], previous[2])
                    if refusal:
                        return Recorded(sop, REFUSED, reason=refusal, previous_sender=owner)
                patient_pk, patient_key = self._patient(cursor, dataset, full, at)
                study_pk, conflicts = self._study(cursor, dataset, full, patient_pk, patient_key, instance, at)
                series_pk = self._series(cursor, dataset, full, study_pk, at)
                self._instance(cursor, instance, full, series_pk, blob, at)
                previous_url = previous[0] if previous else None
                changed = previous_url is not None and previous_url != instance.url
                if changed:
                    cursor.execute("INSERT INTO location_history (sop_instance_uid, previous_location, location, "
                                   "calling_ae_title, changed_at) VALUES (?, ?, ?, ?, ?)",
                                   (sop, previous_url, instance.url, instance.calling_ae_title, at))
        except self.database.errors() as error:
            raise ArchiveError(f"{self.database.describe()}: instance {sop} not recorded ({error})") from error
        return Recorded(sop, UPDATED if previous else CREATED, previous_url if changed else None,
                        previous_sender=f"{previous[1] or '?'}@{previous[2] or '?'}" if previous else "",
                        conflicts=tuple(conflicts))

    def _patient(self, cursor: Cursor, ds, full: dict, at: str) -> tuple[int, str]:
        """The patient's row: made by its first object, never renamed by a later one (each study keeps
        its own patient attributes, conflicts are flagged by _study)."""
        patient_id = _text(ds, "PatientID")
        issuer = _text(ds, "IssuerOfPatientID")
        # Without a Patient ID nothing tells two patients apart: such a patient stands for one study.
        key = f"id:{patient_id}|{issuer or ''}" if patient_id else f"study:{ds.StudyInstanceUID}"
        pk = _upsert(cursor, "patient", "patient_key", {
            "patient_key": key, "patient_id": patient_id, "issuer_of_patient_id": issuer,
            "patient_name": _text(ds, "PatientName"), "patient_birth_date": _text(ds, "PatientBirthDate"),
            "patient_sex": _text(ds, "PatientSex"), "attributes": _json_of(full, PATIENT_KEYWORDS), "updated_at": at},
            keep=("patient_name", "patient_birth_date", "patient_sex", "attributes"))
        return pk, key

    def _study(self, cursor: Cursor, ds, full: dict, patient_pk: int, patient_key: str, instance: ArrivedInstance,
               at: str) -> tuple[int, list]:
        """The study's row, with the patient attributes its first object gave; returns the conflicts
        this object shows: against the study's own attributes (an object of the same study saying
        otherwise) or, for a study new to the archive, against the patient's other studies."""
        study_uid = str(ds.StudyInstanceUID)
        own = _json_of(full, STUDY_PATIENT_KEYWORDS)
        existing = cursor.one("SELECT patient_attributes FROM study WHERE study_instance_uid = ?", (study_uid,))
        pk = _upsert(cursor, "study", "study_instance_uid", {
            "study_instance_uid": study_uid, "patient_pk": patient_pk,
            "study_date": _text(ds, "StudyDate"), "study_time": _text(ds, "StudyTime"),
            "accession_number": _text(ds, "AccessionNumber"), "study_id": _text(ds, "StudyID"),
            "study_description": _text(ds, "StudyDescription"),
            "referring_physician_name": _text(ds, "ReferringPhysicianName"),
            "attributes": _json_of(full, STUDY_ONLY_KEYWORDS), "patient_attributes": own, "updated_at": at},
            keep=("patient_attributes",))
        if existing is not None and existing[0] is not None:
            others = [(study_uid, existing[0])]
        elif existing is not None:  # a study of a migrated archive without them: this object's are taken
            cursor.execute("UPDATE study SET patient_attributes = ? WHERE pk = ?", (own, pk))
            others = []
        else:
            others = cursor.all("SELECT study_instance_uid, patient_attributes FROM study WHERE patient_pk = ? "
                                "AND study_instance_uid <> ? AND patient_attributes IS NOT NULL ORDER BY pk",
                                (patient_pk, study_uid))
        conflicts = []
        mine = json.loads(own)
        for other_uid, other_json in others:
            theirs = json.loads(other_json)
            for keyword in STUDY_PATIENT_KEYWORDS:
                tag = _tag(keyword)
                if tag not in mine and tag not in theirs:
                    continue
                if mine.get(tag) != theirs.get(tag):
                    conflict = PatientConflict(_text(ds, "PatientID") or "", study_uid, other_uid, keyword,
                                               _shown(mine.get(tag)), _shown(theirs.get(tag)),
                                               instance.sop_instance_uid, instance.sender, at)
                    cursor.execute(
                        "INSERT INTO patient_conflict (patient_key, patient_id, study_instance_uid, "
                        "other_study_instance_uid, attribute, value, other_value, sop_instance_uid, sender, "
                        "detected_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (patient_key, conflict.patient_id, study_uid, other_uid, keyword, conflict.value,
                         conflict.other_value, conflict.sop_instance_uid, conflict.sender, at))
                    conflicts.append(conflict)
        return pk, conflicts

    def _series(self, cursor: Cursor, ds, full: dict, study_pk: int, at: str) -> int:
        return _upsert(cursor, "series", "series_instance_uid", {
            "series_instance_uid": str(ds.SeriesInstanceUID), "study_pk": study_pk,
            "modality": _text(ds, "Modality"), "series_number": _integer(ds, "SeriesNumber"),
            "series_description": _text(ds, "SeriesDescription"), "body_part_examined": _text(ds, "BodyPartExamined"),
            "frame_of_reference_uid": _text(ds, "FrameOfReferenceUID"),
            "attributes": _json_of(full, SERIES_KEYWORDS), "updated_at": at})

    def _instance(self, cursor: Cursor, instance: ArrivedInstance, full: dict, series_pk: int, blob: bytes,
                  at: str) -> None:
        ds = instance.dataset
        columns = {
            "sop_instance_uid": instance.sop_instance_uid, "series_pk": series_pk,
            "sop_class_uid": instance.sop_class_uid, "instance_number": _integer(ds, "InstanceNumber"),
            "number_of_frames": _integer(ds, "NumberOfFrames") or 1, "number_of_rows": _integer(ds, "Rows"),
            "number_of_columns": _integer(ds, "Columns"), "samples_per_pixel": _integer(ds, "SamplesPerPixel"),
            "photometric_interpretation": _text(ds, "PhotometricInterpretation"),
            "bits_allocated": _integer(ds, "BitsAllocated"), "bits_stored": _integer(ds, "BitsStored"),
            "pixel_representation": _integer(ds, "PixelRepresentation"),
            "image_position_patient": _text(ds, "ImagePositionPatient"),
            "image_orientation_patient": _text(ds, "ImageOrientationPatient"),
            "pixel_spacing": _text(ds, "PixelSpacing"), "slice_thickness": _real(ds, "SliceThickness"),
            "slice_location": _real(ds, "SliceLocation"), "window_center": _text(ds, "WindowCenter"),
            "window_width": _text(ds, "WindowWidth"), "rescale_intercept": _real(ds, "RescaleIntercept"),
            "rescale_slope": _real(ds, "RescaleSlope"), "lossy_image_compression": _text(ds, "LossyImageCompression"),
            "location": instance.url, "transfer_syntax_uid": instance.transfer_syntax,
            "received_transfer_syntax_uid": instance.received_transfer_syntax,
            "calling_ae_title": instance.calling_ae_title, "called_ae_title": instance.called_ae_title,
            "sender_address": instance.sender_address or None,
            "created_by_ae_title": instance.calling_ae_title, "created_by_address": instance.sender_address or None,
            "first_received_at": at, "received_at": at, "times_received": 1,
            "dataset": blob, "dataset_sha256": hashlib.sha256(blob).hexdigest(),
            "summary": _json_of(full, INSTANCE_KEYWORDS + SERIES_KEYWORDS[:2] + STUDY_KEYWORDS[:1]),
            "metadata": json.dumps(full), "notes": "\n".join(instance.notes) or None,
        }
        kept = ("sop_instance_uid", "first_received_at", "times_received", "created_by_ae_title", "created_by_address")
        updates = ", ".join(f"{name} = excluded.{name}" for name in columns if name not in kept)
        cursor.execute(
            f"INSERT INTO instance ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)}) "
            f"ON CONFLICT (sop_instance_uid) DO UPDATE SET {updates}, times_received = instance.times_received + 1",
            tuple(columns.values()))

    # --- reading -----------------------------------------------------------------------------

    def part10(self, sop_instance_uid: str) -> bytes | None:
        with self.database.transaction(immediate=False) as cursor:
            row = cursor.one("SELECT sop_class_uid, transfer_syntax_uid, calling_ae_title, dataset FROM instance "
                             "WHERE sop_instance_uid = ?", (sop_instance_uid,))
        if row is None:
            return None
        return _part10(sop_instance_uid, *row)

    def rows(self, statement: str, parameters: tuple = ()) -> list:
        with self.database.transaction(immediate=False) as cursor:
            return cursor.all(statement, parameters)

    def location_changes(self) -> list[dict]:
        return [{"sop_instance_uid": r[0], "previous_location": r[1], "location": r[2], "calling_ae_title": r[3],
                 "changed_at": _timestamp(r[4])}
                for r in self.rows("SELECT sop_instance_uid, previous_location, location, calling_ae_title, "
                                   "changed_at FROM location_history ORDER BY pk")]

    def patient_conflicts(self) -> list[PatientConflict]:
        return [PatientConflict(r[0] or "", r[1], r[2], r[3], r[4], r[5], r[6], r[7], _timestamp(r[8]))
                for r in self.rows("SELECT patient_id, study_instance_uid, other_study_instance_uid, attribute, value, "
                                   "other_value, sop_instance_uid, sender, detected_at FROM patient_conflict "
                                   "ORDER BY pk")]

    def catalog(self):
        return DatabaseCatalog(self)


class DatabaseCatalog(Catalog):
    """QIDO-RS and WADO-RS answered from the tables: no data set is parsed to list or describe a study."""

    def __init__(self, archive: DatabaseArchive):
        self.archive = archive

    def generation(self):
        try:
            return tuple(self.archive.rows("SELECT COUNT(*), MAX(received_at) FROM instance")[0])
        except self.archive.database.errors() as error:
            from pyjpip.errors import DicomError

            raise DicomError(f"{self.archive.database.describe()}: cannot be read ({error})") from error

    def studies(self) -> list[dict]:
        rows = self.archive.rows(
            "SELECT study.study_instance_uid, patient.attributes, study.patient_attributes, study.attributes, "
            "COUNT(DISTINCT series.pk), COUNT(instance.pk) FROM study JOIN patient ON patient.pk = study.patient_pk "
            "JOIN series ON series.study_pk = study.pk JOIN instance ON instance.series_pk = series.pk "
            "GROUP BY study.pk, study.study_instance_uid, patient.attributes, study.patient_attributes, "
            "study.attributes")
        modalities: dict[str, set] = {}
        for study, modality in self.archive.rows(
                "SELECT DISTINCT study.study_instance_uid, series.modality FROM series "
                "JOIN study ON study.pk = series.study_pk"):
            if modality:
                modalities.setdefault(study, set()).add(modality)
        out = []
        for study, patient_json, study_patient_json, study_json, series_count, instance_count in rows:
            # The patient's identifiers, then what this study's own objects said of the patient.
            patient = {tag: value for tag, value in json.loads(patient_json).items()
                       if tag not in _STUDY_PATIENT_TAGS or study_patient_json is None}
            entry = {**patient, **json.loads(study_patient_json or "{}"), **json.loads(study_json)}
            entry = {tag: entry[tag] for tag in sorted(entry)}
            entry["00080061"] = {"vr": "CS", "Value": sorted(modalities.get(study, ()))}
            entry["00201206"] = {"vr": "IS", "Value": [series_count]}
            entry["00201208"] = {"vr": "IS", "Value": [instance_count]}
            out.append(entry)
        return sorted(out, key=study_order)

    def series(self, study: str) -> list[dict]:
        rows = self.archive.rows(
            "SELECT series.attributes, COUNT(instance.pk) FROM series JOIN study ON study.pk = series.study_pk "
            "JOIN instance ON instance.series_pk = series.pk WHERE study.study_instance_uid = ? "
            "GROUP BY series.pk, series.attributes, series.series_number "
            "ORDER BY COALESCE(series.series_number, 0), series.series_instance_uid", (study,))
        out = []
        for attributes, count in rows:
            entry = json.loads(attributes)
            entry["00201209"] = {"vr": "IS", "Value": [count]}
            out.append(entry)
        return out

    def instances(self, study: str, series: str) -> list[dict]:
        return [json.loads(summary) for (summary,) in self.archive.rows(
            "SELECT instance.summary FROM instance JOIN series ON series.pk = instance.series_pk "
            "JOIN study ON study.pk = series.study_pk WHERE study.study_instance_uid = ? "
            "AND series.series_instance_uid = ? " + _INSTANCE_ORDER, (study, series))]

    def metadata(self, study: str, series: str | None = None) -> bytes:
        condition, parameters = "study.study_instance_uid = ?", (study,)
        if series is not None:
            condition, parameters = condition + " AND series.series_instance_uid = ?", (study, series)
        rows = self.archive.rows(
            "SELECT instance.metadata FROM instance JOIN series ON series.pk = instance.series_pk "
            f"JOIN study ON study.pk = series.study_pk WHERE {condition} " + _INSTANCE_ORDER, parameters)
        if not rows:
            return b""
        return b"[" + b",".join(metadata.encode() for (metadata,) in rows) + b"]"

    def part10(self, study: str, series: str, instance: str) -> bytes | None:
        rows = self.archive.rows(
            "SELECT instance.sop_class_uid, instance.transfer_syntax_uid, instance.calling_ae_title, instance.dataset "
            "FROM instance JOIN series ON series.pk = instance.series_pk JOIN study ON study.pk = series.study_pk "
            "WHERE study.study_instance_uid = ? AND series.series_instance_uid = ? AND instance.sop_instance_uid = ?",
            (study, series, instance))
        return _part10(instance, *rows[0]) if rows else None


#: The order DicomWebStore's in-memory catalogs give (series, then instance number, unnumbered last).
_INSTANCE_ORDER = ("ORDER BY series.series_instance_uid, CASE WHEN instance.instance_number IS NULL THEN 1 ELSE 0 END, "
                   "instance.instance_number, instance.sop_instance_uid")


def _upsert(cursor: Cursor, table: str, key: str, values: dict, keep: tuple = ()) -> int:
    """Insert a row or, when ``key`` is taken (a level already known), update it in place (but the
    columns of ``keep``): one statement, so two associations storing the same study at once make one
    row (ON CONFLICT: SQLite 3.24+, PostgreSQL 9.5+; RETURNING: SQLite 3.35+)."""
    names = list(values)
    updates = ", ".join(f"{name} = excluded.{name}" for name in names if name != key and name not in keep)
    (pk,) = cursor.one(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)}) "
                       f"ON CONFLICT ({key}) DO UPDATE SET {updates} RETURNING pk", tuple(values.values()))
    return pk


def _tag(keyword: str) -> str:
    from pydicom.datadict import tag_for_keyword

    return f"{tag_for_keyword(keyword):08X}"


_STUDY_PATIENT_TAGS = frozenset(_tag(k) for k in STUDY_PATIENT_KEYWORDS)


def _shown(element: dict | None) -> str:
    """A DICOM JSON element's value as text, for a conflict's record ('' when absent or empty)."""
    if not element or "Value" not in element:
        return ""
    values = []
    for value in element["Value"]:
        if isinstance(value, dict):  # a Person Name: its Alphabetic group (PS3.18 F.2.2)
            value = value.get("Alphabetic", "")
        values.append("" if value is None else str(value))
    return "\\".join(values)


def _study_patients_from_instances(cursor: Cursor) -> None:
    """Migration 3: each study's patient attributes as one of its own objects said them (the
    patient row may hold what a later study renamed them to). Taken from an instance's DICOM JSON."""
    studies = cursor.all("SELECT study.pk, MIN(instance.pk) FROM study JOIN series ON series.study_pk = study.pk "
                         "JOIN instance ON instance.series_pk = series.pk GROUP BY study.pk")
    for study_pk, instance_pk in studies:
        (metadata,) = cursor.one("SELECT metadata FROM instance WHERE pk = ?", (instance_pk,))
        cursor.execute("UPDATE study SET patient_attributes = ? WHERE pk = ?",
                       (_json_of(json.loads(metadata), STUDY_PATIENT_KEYWORDS), study_pk))


def _part10(sop: str, sop_class: str, transfer_syntax: str, calling_ae: str | None, blob) -> bytes:
    from pyjpip.archive.files import part10_head

    return part10_head(sop_class, sop, transfer_syntax, calling_ae or "") + bytes(blob)


def _meta_length(part10: bytes) -> int:
    import struct

    (group_length,) = struct.unpack_from("<I", part10, 140)
    return 144 + group_length


def _lock_key(sop: str) -> int:
    """A signed 64-bit advisory lock key per SOP Instance UID."""
    return int.from_bytes(hashlib.sha256(sop.encode()).digest()[:8], "big", signed=True)


def _json_of(full: dict, keywords) -> str:
    """The DICOM JSON of ``keywords`` only, picked from an instance's whole DICOM JSON (PS3.18 F.2:
    keys are tags, in tag order)."""
    from pydicom.datadict import tag_for_keyword

    tags = sorted(f"{tag_for_keyword(k):08X}" for k in keywords)
    return json.dumps({tag: full[tag] for tag in tags if tag in full})


def _text(dataset, keyword: str) -> str | None:
    """The value as DICOM writes it (multiple values joined by backslashes); None when absent or empty."""
    if keyword not in dataset:
        return None
    value = dataset[keyword].value
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value)


def _integer(dataset, keyword: str) -> int | None:
    try:
        value = dataset.get(keyword)
        return None if value is None or value == "" else int(value)
    except (TypeError, ValueError):
        return None


def _real(dataset, keyword: str) -> float | None:
    try:
        value = dataset.get(keyword)
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None


def _timestamp(value) -> str:
    return value.isoformat(timespec="microseconds") if hasattr(value, "isoformat") else str(value)

