"""DICOM JSON read without pydicom (PS3.18 F.2) gives the layout the values pydicom would (runs under Pyodide)."""

import json

import pytest
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.valuerep import PersonName

from pyjpip.dicom.json_model import TAGS, JSONDataset, datasets_from_json
from pyjpip.errors import DicomError
from pyjpip.layout.greyscale import GreyscalePipeline
from pyjpip.layout.overlay import corner_text


def plain(value):
    """pydicom's value as plain Python, to compare with the JSON view's."""
    if isinstance(value, (Sequence, list)) and not isinstance(value, MultiValue):
        return [{k: plain(item.get(k)) for k in TAGS if k in item} for item in value]
    if isinstance(value, MultiValue):
        return [plain(v) for v in value]
    if isinstance(value, PersonName):
        return str(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, int):
        return int(value)
    return value


def seen_by_view(value):
    if isinstance(value, list) and value and isinstance(value[0], JSONDataset):
        return [{k: seen_by_view(item.get(k)) for k in TAGS if k in item} for item in value]
    return value


def test_every_keyword_names_the_tag_of_pydicoms_dictionary():
    for keyword, tag in TAGS.items():
        assert tag_for_keyword(keyword) == int(tag, 16), keyword


def rich_dataset():
    ds = Dataset()
    ds.PatientName = "Doe^Jane=山田^花子"
    ds.PatientID, ds.PatientBirthDate, ds.PatientSex, ds.PatientAge = "ID 7", "19700102", "F", "056Y"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = "1.2.3", "1.2.3.4", "1.2.3.4.5"
    ds.StudyDate, ds.StudyTime, ds.StudyDescription = "20260102", "101112.5", "Head"
    ds.SeriesNumber, ds.InstanceNumber, ds.SeriesDescription, ds.Modality = 3, "17", "Axial 2.5", "CT"
    ds.ImagePositionPatient, ds.ImageOrientationPatient = [-125.5, -130, 42.25], [1, 0, 0, 0, 0.98, -0.2]
    ds.SliceThickness, ds.SliceLocation = "2.5", "-42.25"
    ds.NumberOfFrames, ds.FrameTime = "3", "33.3"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.BitsStored, ds.PixelRepresentation = 512, 510, 1, 12, 1
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.WindowCenter, ds.WindowWidth = ["40", "300"], ["80", "1500"]
    ds.RescaleSlope, ds.RescaleIntercept = "1", "-1024"
    ds.PixelPaddingValue = -2000
    ds["PixelPaddingValue"].VR = "SS"
    ds.PixelDataProviderURL = "http://example.test/jpip?target=a.j2k"
    item = Dataset()
    item.LUTDescriptor = [4, 0, 16]
    item.add_new("LUTData", "US", [0, 100, 4000, 65535])
    ds.VOILUTSequence = [item]
    ds.VOILUTFunction = ""  # present, empty
    ds.InstitutionName = None
    return ds


def test_each_attribute_reads_as_pydicom_reads_it():
    source = rich_dataset()
    document = json.loads(json.dumps(source.to_json_dict()))
    expected, view = Dataset.from_json(document), JSONDataset(document)
    for keyword in TAGS:
        assert (keyword in view) == (keyword in expected), keyword
        assert seen_by_view(view.get(keyword, "absent")) == plain(expected.get(keyword, "absent")), keyword
    assert view.PatientName == "Doe^Jane=山田^花子" and view.ImagePositionPatient == [-125.5, -130.0, 42.25]
    assert view.InstanceNumber == 17 and view.PixelPaddingValue == -2000 and view.InstitutionName == ""
    assert GreyscalePipeline.from_dataset(view) == GreyscalePipeline.from_dataset(expected)
    assert corner_text(view, instance=1, instances=2) == corner_text(expected, instance=1, instances=2)


def test_numbers_sent_as_strings_and_binary_lut_data():
    item = Dataset()
    item.LUTDescriptor = [3, 0, 16]
    item.add_new("LUTData", "OW", (1).to_bytes(2, "little") + (2).to_bytes(2, "little") + (3).to_bytes(2, "little"))
    ds = Dataset()
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.VOILUTSequence = [item]
    document = ds.to_json_dict()
    document["00281050"] = {"vr": "DS", "Value": ["40.5"]}  # DS and IS may come as strings (F.2.3.1)
    document["00200013"] = {"vr": "IS", "Value": ["12"]}
    view = JSONDataset(document)
    assert view.get("WindowCenter") == 40.5 and view.get("InstanceNumber") == 12
    assert view.VOILUTSequence[0].LUTData == b"\x01\x00\x02\x00\x03\x00"
    assert GreyscalePipeline.from_dataset(view).voi_lut == {"first_mapped": 0, "bits": 16, "data": [1, 2, 3]}


def test_lowercase_tags_are_read_too():
    assert JSONDataset({"00287fe0": {"vr": "UR", "Value": ["http://a/b"]}}).PixelDataProviderURL == "http://a/b"


@pytest.mark.parametrize("document, keyword, message", [
    ({"00281050": {"vr": "DS", "Value": ["wide"]}}, "WindowCenter", "'wide' is not a DS value"),
    ({"00281050": {"vr": "DS", "Value": "40"}}, "WindowCenter", "Value is not a JSON array"),
    ({"00281050": "40"}, "WindowCenter", "is not a DICOM JSON attribute object"),
    ({"00100010": {"vr": "PN", "Value": ["Doe^Jane"]}}, "PatientName", "is not a PN value"),
    ({"00283006": {"vr": "OW", "BulkDataURI": "http://a/b"}}, "LUTData", "BulkDataURI"),
    ({"00283006": {"vr": "OW", "InlineBinary": "not base64!"}}, "LUTData", "not base64"),
])
def test_malformed_values_say_which_attribute(document, keyword, message):
    with pytest.raises(DicomError, match=message) as error:
        JSONDataset(document, "study.json object 3").get(keyword)
    assert "study.json object 3" in str(error.value) and keyword in str(error.value)


def test_what_is_not_dicom_json_is_refused():
    with pytest.raises(DicomError, match="JSON array"):
        datasets_from_json({"00100010": {}})
    with pytest.raises(DicomError, match="object 2: a DICOM JSON object is a JSON object, not str"):
        datasets_from_json([{}, "x"], "metadata")
    with pytest.raises(DicomError, match="BodyPartExamined is not among"):
        JSONDataset({}).get("BodyPartExamined")
    with pytest.raises(AttributeError):
        _ = JSONDataset({}).PatientName
    assert not hasattr(JSONDataset({}), "to_py") and not hasattr(JSONDataset({}), "BodyPartExamined")


@pytest.mark.parametrize("metadata, message", [
    (b"<html>not found</html>", "the metadata is not JSON"),
    (b"[]", "the study has no instances"),
    (b'{"00100010": {}}', "JSON array"),
])
def test_a_study_page_says_what_is_wrong_with_its_metadata(metadata, message):
    from pyjpip.browser import study_from_metadata

    with pytest.raises(DicomError, match=message) as error:
        study_from_metadata(metadata, "http://server.test/dicomweb/studies/1.2.3/metadata")
    assert "http://server.test/dicomweb/studies/1.2.3/metadata" in str(error.value)
