"""Corner overlay text: who, what study, which series and image, and how it is shown."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyjpip.layout.attributes import Attributes


def _text(dataset: Attributes, keyword: str) -> str:
    value = dataset.get(keyword)
    return "" if value is None else str(value).replace("^", " ").strip()


def _date(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 and value.isdigit() else value


def corner_text(dataset: Attributes, *, instance: int, instances: int, frame: int = 1, frames: int = 1,
                window: tuple[float, float] | None = None, zoom: float | None = None) -> dict[str, list[str]]:
    """Four corners of text (empty lines left out); ``instance`` and ``frame`` count from 1."""
    sex_age = " ".join(filter(None, [_text(dataset, "PatientSex"), _text(dataset, "PatientAge")]))
    corners = {
        "top_left": [_text(dataset, "PatientName"), _text(dataset, "PatientID"),
                     " ".join(filter(None, [_date(_text(dataset, "PatientBirthDate")), sex_age]))],
        "top_right": [_text(dataset, "InstitutionName"), _text(dataset, "StudyDescription"),
                      " ".join(filter(None, [_date(_text(dataset, "StudyDate")), _text(dataset, "StudyTime")[:6]]))],
        "bottom_left": [" ".join(filter(None, [_text(dataset, "Modality"),
                                               f"Se: {_text(dataset, 'SeriesNumber')}" if dataset.get("SeriesNumber")
                                               is not None else "", _text(dataset, "SeriesDescription")])),
                        f"Im: {instance}/{instances}" + (f"  Fr: {frame}/{frames}" if frames > 1 else ""),
                        _thickness(dataset)],
        "bottom_right": [f"W: {window[1]:g} L: {window[0]:g}" if window else "",
                         f"Zoom: {zoom * 100:.0f}%" if zoom else "",
                         _text(dataset, "LossyImageCompression") == "01" and "LOSSY" or ""],
    }
    return {corner: [line for line in lines if line] for corner, lines in corners.items()}


def _thickness(dataset: Attributes) -> str:
    thickness = dataset.get("SliceThickness")
    location = dataset.get("SliceLocation")
    parts = []
    if thickness not in (None, ""):
        parts.append(f"T: {float(thickness):g} mm")
    if location not in (None, ""):
        parts.append(f"L: {float(location):g} mm")
    return "  ".join(parts)
