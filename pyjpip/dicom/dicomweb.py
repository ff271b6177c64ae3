"""A store's hollow objects listed the way QIDO-RS and WADO-RS shape them (PS3.18 10.4, 10.6; DICOM JSON,
PS3.18 Annex F), so a portal or the viewer finds studies without another server. Sans-IO: a path
and a query in, a Response out.

    /dicomweb/studies                                        studies (filters: any study-level keyword)
    /dicomweb/studies/{study}/series                         series of a study
    /dicomweb/studies/{study}/series/{series}/instances      instances of a series
    /dicomweb/studies/{study}[/series/{series}]/metadata     full DICOM JSON of the hollow objects
    /dicomweb/studies/{study}/series/{series}/instances/{instance}   the hollow object, Part 10
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import OrderedDict
from functools import partial
from urllib.parse import parse_qsl

from pydicom.dataset import Dataset

from pyjpip.dicom.hollow import read_hollow_file
from pyjpip.dicom.limits import MAXIMUM_HOLLOW_FILE_BYTES, read_limited
from pyjpip.errors import DicomError
from pyjpip.jpip.server import Response, error_response

log = logging.getLogger(__name__)

PREFIX = "/dicomweb/"
JSON_TYPE = "application/dicom+json"
STUDY_KEYWORDS = ("StudyInstanceUID", "StudyDate", "StudyTime", "AccessionNumber", "PatientName", "PatientID",
                  "PatientBirthDate", "PatientSex", "StudyDescription", "StudyID", "ReferringPhysicianName")
SERIES_KEYWORDS = ("SeriesInstanceUID", "Modality", "SeriesNumber", "SeriesDescription", "BodyPartExamined",
                   "FrameOfReferenceUID")
METADATA_KEPT = 64  # studies' (or series') metadata answers kept
INSTANCE_KEYWORDS = ("SOPClassUID", "SOPInstanceUID", "InstanceNumber", "Rows", "Columns", "NumberOfFrames",
                     "PhotometricInterpretation", "BitsStored", "PixelDataProviderURL")


class Catalog:
    """What a store offers DICOMweb: QIDO-RS entries (DICOM JSON objects), WADO-RS metadata and the
    hollow objects themselves. An ingested store (index.json), a folder of received files and a
    database archive each answer these in their own way (pyjpip.archive)."""

    def generation(self):
        """Changes whenever what is listed changes: answers kept by DicomWebStore are dropped then."""
        raise NotImplementedError

    def studies(self) -> list[dict]:
        raise NotImplementedError

    def series(self, study: str) -> list[dict]:
        raise NotImplementedError

    def instances(self, study: str, series: str) -> list[dict]:
        raise NotImplementedError

    def metadata(self, study: str, series: str | None = None) -> list[dict] | bytes:
        """DICOM JSON of every instance, ordered by series and instance number (a list, or the JSON
        array's bytes already made); empty when there are none."""
        raise NotImplementedError

    def part10(self, study: str, series: str, instance: str) -> bytes | None:
        raise NotImplementedError


class DatasetCatalog(Catalog):
    """A catalog over data sets held in memory: ``_load`` gives SOP Instance UID -> (data set, a
    function returning the Part 10 bytes); it is called again when ``_stamp`` changes."""

    def __init__(self):
        self.lock = threading.Lock()
        self.stamp = None
        self.objects: dict[str, tuple[Dataset, object]] = {}

    def _stamp(self):
        raise NotImplementedError

    def _load(self) -> dict[str, tuple[Dataset, object]]:
        raise NotImplementedError

    def generation(self):
        stamp = self._stamp()
        with self.lock:
            if stamp != self.stamp:
                self.objects, self.stamp = self._load(), stamp
        return stamp

    def _chosen(self, study=None, series=None, instance=None) -> list[Dataset]:
        chosen = [ds for ds, _ in self.objects.values()]
        if study is not None:
            chosen = [ds for ds in chosen if ds.get("StudyInstanceUID") == study]
        if series is not None:
            chosen = [ds for ds in chosen if ds.get("SeriesInstanceUID") == series]
        if instance is not None:
            chosen = [ds for ds in chosen if ds.get("SOPInstanceUID") == instance]
        return chosen

    def studies(self) -> list[dict]:
        return _studies(self._chosen())

    def series(self, study: str) -> list[dict]:
        return _summaries(self._chosen(study), "SeriesInstanceUID", SERIES_KEYWORDS, "NumberOfSeriesRelatedInstances")

    def instances(self, study: str, series: str) -> list[dict]:
        return [_pick(ds, INSTANCE_KEYWORDS + SERIES_KEYWORDS[:2] + STUDY_KEYWORDS[:1])
                for ds in _ordered(self._chosen(study, series))]

    def metadata(self, study: str, series: str | None = None) -> list[dict]:
        return [dicom_json(ds) for ds in _ordered(self._chosen(study, series))]

    def part10(self, study: str, series: str, instance: str) -> bytes | None:
        found = self.objects.get(instance)
        if found is None or self._chosen(study, series, instance) == []:
            return None
        return found[1]()


class IngestedCatalog(DatasetCatalog):
    """The hollow objects of an ingested store (STORE/index.json, pyjpip.dicom.ingest)."""

    def __init__(self, root: str):
        super().__init__()
        self.root = os.path.abspath(root)
        self.index_path = os.path.join(self.root, "index.json")

    def _stamp(self):
        try:
            return os.stat(self.index_path).st_mtime_ns
        except FileNotFoundError:
            raise DicomError("this server's root is not a pyjpip store (no index.json): nothing to list") from None

    def _load(self):
        with open(self.index_path) as f:
            index = json.load(f)
        objects = {}
        for sop, entry in index.get("instances", {}).items():
            path = os.path.join(self.root, entry["hollow"])
            try:  # a file over the limits is left out before it is read, a deflate bomb before it inflates
                objects[sop] = (read_hollow_file(path).dataset, partial(_read_file, path))
            except (OSError, DicomError) as error:
                log.warning("store entry %s left out: %s", sop, error)
        return objects


def _read_file(path: str) -> bytes:
    """A hollow object's bytes, as served (it may have grown since it was listed: still bounded)."""
    return read_limited(path, MAXIMUM_HOLLOW_FILE_BYTES, "hollow object")


class DicomWebStore:
    """QIDO-RS and WADO-RS routes over a Catalog, with the metadata answers kept until it changes.
    Given a folder, the catalog is chosen by what the folder holds (pyjpip.archive.open_catalog)."""

    def __init__(self, root_or_catalog, database_url: str | None = None):
        if isinstance(root_or_catalog, Catalog):
            self.catalog = root_or_catalog
        else:
            from pyjpip.archive import open_catalog

            self.catalog = open_catalog(root_or_catalog, database_url)
        self.lock = threading.Lock()
        self.generation = None
        # A study's metadata is what a viewer opening it waits for, and pydicom's to_json_dict takes
        # ~0.7 ms an object (95 ms for a 144-image study): kept until the store changes.
        self.metadata: OrderedDict[str, bytes] = OrderedDict()

    def handle(self, path: str, query: str) -> Response:
        try:
            generation = self.catalog.generation()
        except DicomError as error:
            return error_response(404, str(error))
        with self.lock:
            if generation != self.generation:
                self.metadata.clear()
                self.generation = generation
        parts = [p for p in path[len(PREFIX):].split("/") if p]
        filters = dict(parse_qsl(query))
        if not parts or parts[0] != "studies" or (len(parts) > 2 and parts[2] not in ("series", "metadata")) or (
                len(parts) > 4 and parts[4] not in ("instances", "metadata")):
            return error_response(404, f"{path}: not a DICOMweb resource of this server")
        shape = tuple(parts[i] for i in range(0, len(parts), 2))
        missing = error_response(404, f"{path}: no such study, series or instance in this store")
        if shape == ("studies",) and len(parts) == 1:
            return _json(_filtered(self.catalog.studies(), filters))
        if parts[-1] == "metadata" and len(parts) in (3, 5):
            key = "/".join(parts)
            with self.lock:
                data = self.metadata.get(key)
            if data is None:
                found = self.catalog.metadata(parts[1], parts[3] if len(parts) == 5 else None)
                if not found:
                    return missing
                data = found if isinstance(found, bytes) else json.dumps(found).encode()
                with self.lock:
                    self.metadata[key] = data
                    while len(self.metadata) > METADATA_KEPT:
                        self.metadata.popitem(last=False)
            return _json_bytes(data)
        if shape == ("studies", "series") and len(parts) == 3:
            found = self.catalog.series(parts[1])
            return _json(_filtered(found, filters)) if found else missing
        if shape == ("studies", "series", "instances") and len(parts) == 5:
            found = self.catalog.instances(parts[1], parts[3])
            return _json(_filtered(found, filters)) if found else missing
        if shape == ("studies", "series", "instances") and len(parts) == 6:
            data = self.catalog.part10(parts[1], parts[3], parts[5])
            if data is None:
                return missing
            return Response(200, [("Content-Type", "application/dicom"), ("Cache-Control", "no-cache")],
                            iter([data]), len(data))
        if len(parts) == 2:  # /studies/{study}: QIDO would list it; answer with its entry
            found = [e for e in self.catalog.studies() if e.get("0020000D", {}).get("Value") == [parts[1]]]
            return _json(found) if found else missing
        return error_response(404, f"{path}: not a DICOMweb resource of this server")


def dicom_json(dataset: Dataset) -> dict:
    """A data set in the DICOM JSON Model (PS3.18 F.2), as pydicom's to_json_dict writes it, but for
    Person Name: pydicom 3.0.2 raises IndexError for an empty value among several ("Doe\\", a
    backslash sent by a peer), which reached the sender as the C-STORE's failure. Here each PN value
    is its component groups (F.2.2), an empty one null (F.2.5)."""
    result = {}
    for element in dataset:
        key = f"{element.tag:08X}"
        if element.VR == "PN":
            result[key] = _person_name_json(element)
        elif element.VR == "SQ":
            result[key] = {"vr": "SQ", "Value": [dicom_json(item) for item in element.value]}
        else:
            result[key] = element.to_json_dict(None, 1024)
    return result


def _person_name_json(element) -> dict:
    if element.VM > 1:
        values = list(element.value)
    else:
        values = [] if element.value is None or str(element.value) == "" else [element.value]
    out = {"vr": "PN"}
    if values:
        out["Value"] = [_person_name(value) for value in values]
    return out


def _person_name(value) -> dict | None:
    groups = str(value if value is not None else "").split("=")
    named = {key: group for key, group in zip(("Alphabetic", "Ideographic", "Phonetic"), groups) if group}
    return named or None


def _ordered(datasets: list[Dataset]) -> list[Dataset]:
    def key(ds):
        number = ds.get("InstanceNumber")
        return (str(ds.get("SeriesInstanceUID", "")), number is None, int(number or 0), str(ds.SOPInstanceUID))
    return sorted(datasets, key=key)


def _pick(dataset: Dataset, keywords) -> dict:
    picked = Dataset()
    for keyword in keywords:
        if keyword in dataset:
            picked[keyword] = dataset[keyword]
    return dicom_json(picked)


def _studies(datasets: list[Dataset]) -> list[dict]:
    by_study: dict[str, list[Dataset]] = {}
    for ds in datasets:
        by_study.setdefault(str(ds.StudyInstanceUID), []).append(ds)
    out = []
    for members in by_study.values():
        entry = _pick(members[0], STUDY_KEYWORDS)
        modalities = sorted({str(ds.get("Modality", "")) for ds in members if ds.get("Modality")})
        entry["00080061"] = {"vr": "CS", "Value": modalities}  # Modalities in Study
        entry["00201206"] = {"vr": "IS", "Value": [len({str(ds.SeriesInstanceUID) for ds in members})]}
        entry["00201208"] = {"vr": "IS", "Value": [len(members)]}
        out.append(entry)
    return sorted(out, key=study_order)


def study_order(entry: dict):
    """Studies by date, then UID: one order whatever the catalog."""
    return json.dumps(entry.get("00080020", ""), sort_keys=True), json.dumps(entry.get("0020000D", ""))


def _summaries(datasets: list[Dataset], keyword: str, keywords, count_name: str) -> list[dict]:
    groups: dict[str, list[Dataset]] = {}
    for ds in datasets:
        groups.setdefault(str(ds.get(keyword)), []).append(ds)
    out = []
    for members in groups.values():
        entry = _pick(members[0], keywords)
        entry["00201209"] = {"vr": "IS", "Value": [len(members)]}  # Number of Series Related Instances
        out.append(entry)
    return sorted(out, key=lambda e: (e.get("00200011", {}).get("Value", [0])[0] or 0,
                                      str(e.get("0020000E", {}).get("Value", [""])[0])))


def _filtered(entries: list[dict], filters: dict) -> list[dict]:
    """QIDO-style matching on keywords or tags, exact values; limit and offset."""
    from pydicom.datadict import tag_for_keyword

    limit = int(filters.pop("limit", 0) or 0)
    offset = int(filters.pop("offset", 0) or 0)
    filters.pop("includefield", None)
    for name, wanted in filters.items():
        tag = tag_for_keyword(name)
        key = f"{tag:08X}" if tag is not None else name.upper()
        entries = [e for e in entries if any(str(v.get("Alphabetic") if isinstance(v, dict) else v) == wanted
                                             for v in e.get(key, {}).get("Value", []))]
    entries = entries[offset:]
    return entries[:limit] if limit else entries


def _json(value) -> Response:
    return _json_bytes(json.dumps(value).encode())


def _json_bytes(data: bytes) -> Response:
    return Response(200, [("Content-Type", JSON_TYPE), ("Cache-Control", "no-cache")], iter([data]), len(data))
