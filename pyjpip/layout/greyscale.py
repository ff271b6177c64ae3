"""The grey-scale display pipeline's parameters (PS3.3 C.7.6.3, C.11.1 Modality LUT, C.11.2 VOI LUT).

Python decides the parameters from the attributes; the browser applies them to decoded pixels
(JavaScript builds a lookup table), so no pixel loop runs in Python under Pyodide.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from pyjpip.errors import DicomError

if TYPE_CHECKING:
    from pyjpip.layout.attributes import Attributes


#: VOI LUT Function values defined by PS3.3 C.11.2.1.3.
VOI_LUT_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")


@dataclass(frozen=True)
class GreyscalePipeline:
    """Stored value → modality value (rescale, or the Modality LUT) → VOI window → presentation (``invert``:
    Presentation LUT Shape INVERSE, or MONOCHROME1 without one).

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
    voi_lut: dict | None = None  # VOI LUT Sequence item: first_mapped, bits, data (used when no window)
    modality_lut: dict | None = None  # Modality LUT Sequence item: first_mapped, bits, data (instead of rescale)
    padding: tuple[int, int] | None = None  # stored values shown as background (Pixel Padding, C.7.5.1.1.2)

    @classmethod
    def from_dataset(cls, dataset: Attributes) -> GreyscalePipeline:
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
        invert = _inverted(dataset, photometric)
        return cls(
            bits_stored=int(dataset.get("BitsStored", 16)),
            signed=int(dataset.get("PixelRepresentation", 0)) == 1,
            rescale_slope=_first_number(dataset, "RescaleSlope") or 1.0,
            rescale_intercept=_first_number(dataset, "RescaleIntercept") or 0.0,
            window_center=center,
            window_width=width,
            voi_lut_function=function,
            invert=invert,
            voi_lut=_lut(dataset, "VOILUTSequence", "VOI LUT"),
            modality_lut=_lut(dataset, "ModalityLUTSequence", "Modality LUT"),
            padding=_padding(dataset),
        )

    def to_dict(self) -> dict:
        """Plain values for the JavaScript painter."""
        return asdict(self)


def _inverted(dataset: Attributes, photometric: str) -> bool:
    """Whether the smallest value shows white. Presentation LUT Shape, when present, says so itself:
    IDENTITY, the VOI output is in P-values; INVERSE, it is after inversion (PS3.3 C.7.6.1 General
    Image, C.11.6.1.2). MONOCHROME1 goes with INVERSE there, so the two name one inversion, not two;
    and the shape is what the pipeline applies (PS3.4 N.2.1.4: it overrides Photometric
    Interpretation). Without it, MONOCHROME1 shows its minimum white (C.7.6.3.1.2)."""
    shape = str(dataset.get("PresentationLUTShape", "") or "").strip().upper()
    if shape in ("IDENTITY", "INVERSE"):
        return shape == "INVERSE"
    if shape:
        raise DicomError(f"Presentation LUT Shape {shape!r} is not IDENTITY or INVERSE")
    return photometric == "MONOCHROME1"


def _lut(dataset: Attributes, keyword: str, name: str) -> dict | None:
    """The first item of a LUT sequence (C.11.1 Modality LUT, C.11.2 VOI LUT): LUT Descriptor
    (entries, first mapped, bits) and LUT Data; stored values outside the table take its ends."""
    sequence = dataset.get(keyword)
    if not sequence:
        return None
    item = sequence[0]
    descriptor = item.get("LUTDescriptor")
    if descriptor is None or len(descriptor) != 3 or "LUTData" not in item:
        raise DicomError(f"{name} Sequence item lacks a three-value LUT Descriptor or LUT Data")
    entries, first, bits = (int(v) for v in descriptor)
    entries = entries or 65536  # 0 means 2^16 (C.11.1.1.1)
    data = item.LUTData
    values = list(data) if not isinstance(data, (bytes, bytearray)) else [
        int.from_bytes(data[i : i + 2], "little") for i in range(0, len(data), 2)]
    if len(values) < entries:
        raise DicomError(f"{name} Data holds {len(values)} entries; the descriptor says {entries}")
    if not 8 <= bits <= 16:
        raise DicomError(f"{name} Descriptor gives {bits} bits per entry; 8 to 16 are allowed")
    if first > 32767 and int(dataset.get("PixelRepresentation", 0)) == 1:
        first -= 65536  # US or SS, read as unsigned: a signed first-mapped value (C.11.1.1.1)
    return {"first_mapped": first, "bits": bits, "data": values[:entries]}


def _padding(dataset: Attributes) -> tuple[int, int] | None:
    value = dataset.get("PixelPaddingValue")
    if value is None:
        return None
    limit = dataset.get("PixelPaddingRangeLimit")
    low, high = int(value), int(limit) if limit is not None else int(value)
    return (min(low, high), max(low, high))


def _first_number(dataset: Attributes, keyword: str) -> float | None:
    """The first value of a possibly multi-valued DS/IS attribute (C.11.2.1.2 allows several windows)."""
    value = dataset.get(keyword)
    if value is None or value == "":
        return None
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        if not value:
            return None
        value = value[0]
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise DicomError(f"{keyword} value {value!r} is not a number") from exc
