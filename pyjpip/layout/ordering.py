"""Studies, series and instance order from attributes alone (PS3.3 C.7.1–C.7.3, C.7.6.2, C.7.4.1).

The viewer lays out a screen before any pixel arrives: instances are grouped by Study and Series
Instance UID and ordered by Instance Number, then by position along the slice normal
(Image Position · (row × column direction cosines)), then by SOP Instance UID so the order is
total. How series sharing a Frame of Reference relate in space (linked scrolling, reference lines)
is pyjpip.layout.spatial's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pyjpip.layout.spatial import slice_normal

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
