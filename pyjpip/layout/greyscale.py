"""The grey-scale display pipeline's parameters (PS3.3 C.7.6.3, C.11.1 Modality LUT, C.11.2 VOI LUT).

Python decides the parameters from the attributes; the browser applies them to decoded pixels
(JavaScript builds a lookup table), so no pixel loop runs in Python under Pyodide.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from pyjpip.errors import DicomError

#: VOI LUT Function values defined by PS3.3 C.11.2.1.3.
VOI_LUT_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")


@dataclass(frozen=True)
class GreyscalePipeline:
    """Stored value → modality value (rescale) → VOI window → presentation (MONOCHROME1 inverts).

    ``window_center``/``window_width`` are None when the object has no window: the painter then
    windows over the decoded image's minimum and maximum modality values.
    """

    bits_stored: int
    signed: bool
    rescale_slope: float
    rescale_intercept: float
    window_center: float | None
    window_width: float | None
    voi_lut_function: str
    invert: bool

    @classmethod
    def from_dataset(cls, dataset: Dataset) -> GreyscalePipeline:
        photometric = str(dataset.get("PhotometricInterpretation", "")).strip()
        if photometric not in ("MONOCHROME1", "MONOCHROME2"):
            raise DicomError(f"Photometric Interpretation {photometric or '(missing)'} is not grey-scale")
        function = str(dataset.get("VOILUTFunction", "LINEAR") or "LINEAR").strip().upper()
        if function not in VOI_LUT_FUNCTIONS:
            raise DicomError(f"VOI LUT Function {function!r} is not one of {', '.join(VOI_LUT_FUNCTIONS)}")
        center = _first_number(dataset, "WindowCenter")
        width = _first_number(dataset, "WindowWidth")
        minimum_width = 1.0 if function == "LINEAR" else 0.0
        if center is None or width is None or width < minimum_width or (function != "LINEAR" and width == 0):
            # C.11.2.1.2: a window needs both values and a positive width; otherwise use the data's range.
            center = width = None
        return cls(
            bits_stored=int(dataset.get("BitsStored", 16)),
            signed=int(dataset.get("PixelRepresentation", 0)) == 1,
            rescale_slope=_first_number(dataset, "RescaleSlope") or 1.0,
            rescale_intercept=_first_number(dataset, "RescaleIntercept") or 0.0,
            window_center=center,
            window_width=width,
            voi_lut_function=function,
            invert=photometric == "MONOCHROME1",
        )

    def to_dict(self) -> dict:
        """Plain values for the JavaScript painter."""
        return asdict(self)


def _first_number(dataset: Dataset, keyword: str) -> float | None:
    """The first value of a possibly multi-valued DS/IS attribute (C.11.2.1.2 allows several windows)."""
    value = dataset.get(keyword)
    if value is None or value == "":
        return None
    if isinstance(value, (MultiValue, list, tuple)):
        if not value:
            return None
        value = value[0]
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise DicomError(f"{keyword} value {value!r} is not a number") from exc
