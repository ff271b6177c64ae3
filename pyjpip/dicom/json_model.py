"""A DICOM JSON Model object (PS3.18 F.2) read by attribute keyword, without pydicom.

Why: a study page lays out its screen from the DICOMweb metadata of its hollow objects, which is
DICOM JSON already. pydicom's import alone takes about 280 ms under Pyodide, more than the whole
budget from Python ready to the first image, and the layout reads a few dozen attributes. This view
gives those attributes the values pydicom's ``Dataset.from_json`` would (checked by the tests
against pydicom, attribute by attribute and layout against layout), so the layout code
(pyjpip.layout) takes either.

Values (F.2.3): one value is returned bare, several as a list, none as pydicom's empty value for
the VR (None for binary numbers, [] for a sequence, "" for text). DS and IS become float and int
(the JSON may carry them as numbers or strings), PN its Alphabetic=Ideographic=Phonetic string,
SQ a list of ``JSONDataset``, InlineBinary its bytes.
"""

from __future__ import annotations

import base64

from pyjpip.errors import DicomError

#: Keyword → tag (group and element, eight hex digits as the JSON keys are written) for the
#: attributes a study's layout reads (PS3.6 Table 6-1; the tests check each against pydicom's dictionary).
TAGS: dict[str, str] = {
    # Patient (C.7.1.1), General Study (C.7.2.1), General Series (C.7.3.1), Frame of Reference (C.7.4.1)
    "PatientName": "00100010", "PatientID": "00100020", "PatientBirthDate": "00100030",
    "PatientSex": "00100040", "PatientAge": "00101010",
    "StudyInstanceUID": "0020000D", "StudyDate": "00080020", "StudyTime": "00080030",
    "StudyDescription": "00081030", "InstitutionName": "00080080",
    "SeriesInstanceUID": "0020000E", "SeriesNumber": "00200011", "SeriesDescription": "0008103E",
    "Modality": "00080060", "FrameOfReferenceUID": "00200052",
    # SOP Common (C.12.1), General Image (C.7.6.1), Image Plane (C.7.6.2), Multi-frame and Cine (C.7.6.6, C.7.6.5)
    "SOPInstanceUID": "00080018", "SOPClassUID": "00080016", "InstanceNumber": "00200013",
    "ImagePositionPatient": "00200032", "ImageOrientationPatient": "00200037",
    "SliceThickness": "00180050", "SliceLocation": "00201041", "LossyImageCompression": "00282110",
    "ImageType": "00080008", "PixelSpacing": "00280030",
    # Enhanced multi-frame functional groups (C.7.6.16): Pixel Measures, Plane Position and Orientation
    "SharedFunctionalGroupsSequence": "52009229", "PerFrameFunctionalGroupsSequence": "52009230",
    "PixelMeasuresSequence": "00289110", "PlanePositionSequence": "00209113", "PlaneOrientationSequence": "00209116",
    # Length calibration (10.7.1.3, C.8.11.7): Imager Pixel Spacing and the magnification estimate
    "ImagerPixelSpacing": "00181164", "EstimatedRadiographicMagnificationFactor": "00181114",
    "PixelSpacingCalibrationType": "00280A02", "PixelSpacingCalibrationDescription": "00280A04",
    "NumberOfFrames": "00280008", "FrameTime": "00181063", "CineRate": "00180040",
    # Image Pixel (C.7.6.3) and the JPIP Pixel Data Provider URL (C.7.6.3.1.11)
    "Rows": "00280010", "Columns": "00280011", "SamplesPerPixel": "00280002",
    "PhotometricInterpretation": "00280004", "BitsAllocated": "00280100", "BitsStored": "00280101",
    "PixelRepresentation": "00280103", "PixelPaddingValue": "00280120", "PixelPaddingRangeLimit": "00280121",
    "PixelDataProviderURL": "00287FE0",
    # Modality LUT (C.11.1), VOI LUT (C.11.2), Presentation LUT (C.11.6)
    "RescaleIntercept": "00281052", "RescaleSlope": "00281053", "WindowCenter": "00281050",
    "WindowWidth": "00281051", "VOILUTFunction": "00281056", "VOILUTSequence": "00283010",
    "LUTDescriptor": "00283002", "LUTData": "00283006", "PresentationLUTShape": "20500020",
    "ModalityLUTSequence": "00283000", "ModalityLUTType": "00283004",
}

_BINARY_NUMBER_VRS = frozenset({"FL", "FD", "SL", "SS", "SV", "UL", "US", "UV"})
_PERSON_NAME_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")


class JSONDataset:
    """One object (or sequence item) of the DICOM JSON Model, read like a pydicom Dataset:
    ``get(keyword, default)``, ``keyword in dataset`` and ``dataset.Keyword``."""

    __slots__ = ("_json", "_source")

    def __init__(self, json_object: dict, source: str = "<DICOM JSON>"):
        if not isinstance(json_object, dict):
            raise DicomError(f"{source}: a DICOM JSON object is a JSON object, not {type(json_object).__name__}")
        self._json = json_object
        self._source = source

    def _element(self, keyword: str) -> dict | None:
        tag = TAGS.get(keyword)
        if tag is None:
            raise DicomError(f"{keyword} is not among the attributes pyjpip reads from DICOM JSON "
                             f"(pyjpip.dicom.json_model.TAGS)")
        element = self._json.get(tag)
        if element is None:
            element = self._json.get(tag.lower())
        if element is not None and not isinstance(element, dict):
            raise DicomError(f"{self._source}: {keyword} ({tag}) is not a DICOM JSON attribute object")
        return element

    def __contains__(self, keyword: str) -> bool:
        return self._element(keyword) is not None

    def get(self, keyword: str, default=None):
        element = self._element(keyword)
        return default if element is None else self._value(keyword, element)

    def tag_value(self, tag: int, default=None):
        """The value of an attribute by tag: repeating groups (overlays, 60xx) have no keyword of their own."""
        name = f"{tag:08X}"
        element = self._json.get(name)
        if element is None:
            element = self._json.get(name.lower())
        if element is None:
            return default
        if not isinstance(element, dict):
            raise DicomError(f"{self._source}: ({name}) is not a DICOM JSON attribute object")
        return self._value(name, element)

    def __getattr__(self, keyword: str):
        if keyword not in TAGS:  # hasattr(), copy and the like probe names: they expect AttributeError
            raise AttributeError(f"{keyword} is not among the attributes pyjpip reads from DICOM JSON")
        element = self._element(keyword)
        if element is None:
            raise AttributeError(f"{self._source} has no {keyword}")
        return self._value(keyword, element)

    def _value(self, keyword: str, element: dict):
        vr = str(element.get("vr", ""))
        where = f"{self._source}: {keyword} ({TAGS.get(keyword, keyword)}, VR {vr or 'missing'})"
        if "InlineBinary" in element:
            try:
                return base64.b64decode(element["InlineBinary"], validate=True)
            except (ValueError, TypeError) as exc:
                raise DicomError(f"{where}: InlineBinary is not base64") from exc
        if "BulkDataURI" in element:
            raise DicomError(f"{where}: the value is elsewhere (BulkDataURI), not in the metadata")
        values = element.get("Value")
        if not values:
            return [] if vr == "SQ" else None if vr in _BINARY_NUMBER_VRS else ""
        if not isinstance(values, list):
            raise DicomError(f"{where}: Value is not a JSON array")
        vr = vr.split(" or ")[0]  # pydicom writes a dictionary VR such as "US or SS" as it is: numbers either way
        converted = [_convert(vr, value, where, n) for n, value in enumerate(values)]
        return converted if vr == "SQ" or len(converted) > 1 else converted[0]

    def __repr__(self) -> str:
        return f"JSONDataset({self._source}, {len(self._json)} attributes)"


def _convert(vr: str, value, where: str, index: int):
    if vr == "SQ":
        return JSONDataset(value, f"{where} item {index + 1}")
    if value is None:
        return None if vr in _BINARY_NUMBER_VRS else ""
    try:
        if vr == "PN":
            if not isinstance(value, dict):
                raise TypeError("a person name is a JSON object of name groups")
            groups = [str(value.get(group, "")) for group in _PERSON_NAME_GROUPS]
            return "=".join(groups).rstrip("=")
        if vr == "DS":
            return float(value)
        if vr == "IS":
            return int(float(value)) if isinstance(value, str) else int(value)
        if vr in _BINARY_NUMBER_VRS:
            return float(value) if vr in ("FL", "FD") else int(value)
    except (TypeError, ValueError) as exc:
        raise DicomError(f"{where}: value {index + 1} {value!r} is not a {vr} value ({exc})") from exc
    return str(value)


def datasets_from_json(listing, source: str = "<DICOM JSON>") -> list[JSONDataset]:
    """The objects of a DICOM JSON array (a DICOMweb metadata response)."""
    if not isinstance(listing, list):
        raise DicomError(f"{source}: DICOM JSON metadata is a JSON array of objects")
    return [JSONDataset(item, f"{source} object {n + 1}") for n, item in enumerate(listing)]
