"""Studies, series and instance order from attributes alone (PS3.3 C.7.1–C.7.3, C.7.6.2, C.7.4.1).

The viewer lays out a screen before any pixel arrives: instances are grouped by Study and Series
Instance UID and ordered by Instance Number, then by position along the slice normal
(Image Position · (row × column direction cosines)), then by SOP Instance UID so the order is
total. Series sharing a Frame of Reference UID are linked so they can scroll together by position.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyjpip.layout.attributes import Attributes


@dataclass
class Instance:
    dataset: Attributes
    sop_instance_uid: str
    instance_number: int | None
    position: float | None  # along the slice normal, mm
    frames: int


@dataclass
class Series:
    series_instance_uid: str
    modality: str
    series_number: int | None
    description: str
    frame_of_reference_uid: str | None
    instances: list[Instance] = field(default_factory=list)

    @property
    def frames(self) -> int:
        return sum(i.frames for i in self.instances)


@dataclass
class Study:
    study_instance_uid: str
    description: str
    date: str
    series: list[Series] = field(default_factory=list)


def slice_normal(orientation) -> tuple[float, float, float] | None:
    """Row direction × column direction of Image Orientation (Patient) (C.7.6.2.1.1)."""
    if orientation is None or len(orientation) != 6:
        return None
    rx, ry, rz, cx, cy, cz = (float(v) for v in orientation)
    normal = (ry * cz - rz * cy, rz * cx - rx * cz, rx * cy - ry * cx)
    return normal if any(abs(v) > 1e-9 for v in normal) else None


def position_along_normal(dataset: Attributes) -> float | None:
    normal = slice_normal(dataset.get("ImageOrientationPatient"))
    position = dataset.get("ImagePositionPatient")
    if normal is None or position is None or len(position) != 3:
        return None
    return sum(float(p) * n for p, n in zip(position, normal))


def _number(value) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def group_studies(datasets: list[Attributes]) -> list[Study]:
    """Studies (by date, then UID) → series (by Series Number, then UID) → ordered instances."""
    studies: dict[str, Study] = {}
    series_by_uid: dict[tuple[str, str], Series] = {}
    for dataset in datasets:
        study_uid = str(dataset.get("StudyInstanceUID", ""))
        study = studies.get(study_uid)
        if study is None:
            study = studies[study_uid] = Study(study_uid, str(dataset.get("StudyDescription", "")),
                                               str(dataset.get("StudyDate", "")))
        series_uid = str(dataset.get("SeriesInstanceUID", ""))
        series = series_by_uid.get((study_uid, series_uid))
        if series is None:
            series = series_by_uid[(study_uid, series_uid)] = Series(
                series_uid, str(dataset.get("Modality", "")), _number(dataset.get("SeriesNumber")),
                str(dataset.get("SeriesDescription", "")),
                str(dataset.get("FrameOfReferenceUID")) if dataset.get("FrameOfReferenceUID") else None)
            study.series.append(series)
        series.instances.append(Instance(dataset, str(dataset.get("SOPInstanceUID", "")),
                                         _number(dataset.get("InstanceNumber")), position_along_normal(dataset),
                                         _number(dataset.get("NumberOfFrames")) or 1))
    for study in studies.values():
        study.series.sort(key=lambda s: (s.series_number is None, s.series_number or 0, s.series_instance_uid))
        for series in study.series:
            series.instances.sort(key=_instance_key)
    return sorted(studies.values(), key=lambda s: (s.date, s.study_instance_uid))


def _instance_key(instance: Instance):
    return (instance.instance_number is None, instance.instance_number or 0,
            instance.position is None, instance.position or 0.0, instance.sop_instance_uid)


def frame_of_reference_links(study: Study) -> dict[str, list[str]]:
    """Series UIDs that share a Frame of Reference with at least one other series, by Frame of Reference UID."""
    groups: dict[str, list[str]] = {}
    for series in study.series:
        if series.frame_of_reference_uid:
            groups.setdefault(series.frame_of_reference_uid, []).append(series.series_instance_uid)
    return {uid: members for uid, members in groups.items() if len(members) > 1}


def nearest_by_position(series: Series, position: float) -> int | None:
    """Index of the instance nearest ``position`` along the normal: how linked series follow each other."""
    candidates = [(abs(i.position - position), n) for n, i in enumerate(series.instances) if i.position is not None]
    return min(candidates)[1] if candidates else None
