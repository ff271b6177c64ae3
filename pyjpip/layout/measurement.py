"""The calibration a length measurement uses (PS3.3 10.7.1.3 Pixel Spacing calibration; C.8.11.7 and
C.7.6.2 for Imager Pixel Spacing and Pixel Spacing).

Why: a length in millimetres is only as true as the spacing behind it, and DICOM has two. Pixel
Spacing (0028,0030) is "in the patient" (cross-sectional images; projection images whose spacing was
corrected, how said by Pixel Spacing Calibration Type (0028,0A02) and Description (0028,0A04) when
present). Imager Pixel Spacing (0018,1164) is "at the detector": the patient, nearer the source, is
magnified on it, so it overstates lengths unless divided by the Estimated Radiographic Magnification
Factor (0018,1114). The viewer shows the calibration's name beside every length so nobody takes one
for the other; without either spacing, lengths are in pixels.

Spacings are in Pixel Spacing's order: ``row`` is the spacing between rows (vertical, along the column
direction), ``column`` the spacing between columns (horizontal).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from pyjpip.errors import DicomError
from pyjpip.layout.spatial import functional_group_value

if TYPE_CHECKING:
    from pyjpip.layout.attributes import Attributes


@dataclass(frozen=True)
class Calibration:
    """Spacing between rows and between columns (mm per pixel) and the name shown with lengths."""

    row: float
    column: float
    name: str

    def to_dict(self) -> dict:
        return {"row": self.row, "column": self.column, "name": self.name}

    def length(self, start: Sequence[float], end: Sequence[float]) -> float:
        """Millimetres between two pixel positions (column, row)."""
        return math.hypot((end[0] - start[0]) * self.column, (end[1] - start[1]) * self.row)


def _spacing(value) -> tuple[float, float] | None:
    """Two positive finite numbers, or None (absent, one value, zero, text)."""
    if value is None or isinstance(value, (str, bytes, int, float)):
        return None
    try:
        numbers = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    if len(numbers) != 2 or not all(math.isfinite(v) and v > 0 for v in numbers):
        return None
    return numbers


def _pixel_spacing(dataset: Attributes, frame: int):
    """Pixel Spacing of ``frame``: the Pixel Measures functional group (per frame, then shared) of an
    enhanced multi-frame object, else the attribute itself."""
    return functional_group_value(dataset, frame, "PixelMeasuresSequence", "PixelSpacing")


def _text(dataset: Attributes, keyword: str) -> str:
    value = dataset.get(keyword)
    return str(value).strip() if value not in (None, "") else ""


def calibration(dataset: Attributes, frame: int = 1) -> Calibration | None:
    """The spacing lengths are measured with, and its name; None when neither spacing is usable."""
    try:
        return _calibration(dataset, frame)
    except DicomError:  # a value the metadata reader refuses: no calibration rather than no image
        return None


def _calibration(dataset: Attributes, frame: int) -> Calibration | None:
    pixel = _spacing(_pixel_spacing(dataset, frame))
    imager = _spacing(dataset.get("ImagerPixelSpacing"))
    factor = dataset.get("EstimatedRadiographicMagnificationFactor")
    try:
        factor = float(factor) if factor not in (None, "") else None
    except (TypeError, ValueError):
        factor = None
    if factor is not None and not (math.isfinite(factor) and factor > 0):
        factor = None
    kind = _text(dataset, "PixelSpacingCalibrationType").upper()
    if pixel is not None and kind:
        description = _text(dataset, "PixelSpacingCalibrationDescription")
        name = f"Pixel Spacing, calibrated ({kind.lower()})" + (f": {description}" if description else "")
        return Calibration(pixel[0], pixel[1], name)
    if pixel is not None and (imager is None or not _same(pixel, imager)):
        # Cross-sectional images; or a projection image whose Pixel Spacing differs from Imager Pixel
        # Spacing: corrected to the patient, the method not stated.
        return Calibration(pixel[0], pixel[1], "Pixel Spacing, in the patient")
    if imager is not None:  # alone, or repeated unchanged as Pixel Spacing: still at the detector
        if factor is not None:
            return Calibration(imager[0] / factor, imager[1] / factor,
                               f"Imager Pixel Spacing corrected by Estimated Radiographic Magnification Factor {factor:g}")
        return Calibration(imager[0], imager[1], "Imager Pixel Spacing, at the detector")
    return None


def _same(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return all(abs(x - y) <= 1e-6 * max(abs(x), abs(y)) for x, y in zip(a, b))
