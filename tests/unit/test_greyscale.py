"""Display parameters chosen from the attributes (PS3.3 C.11.1, C.11.2)."""

import pytest
from pydicom.dataset import Dataset

from pyjpip.errors import DicomError
from pyjpip.layout.greyscale import GreyscalePipeline


def dataset(**attributes) -> Dataset:
    ds = Dataset()
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsStored = 12
    ds.PixelRepresentation = 0
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def test_first_of_several_windows_is_used_with_rescale():
    pipeline = GreyscalePipeline.from_dataset(dataset(
        WindowCenter=[40, 400], WindowWidth=[400, 2000], RescaleSlope="1", RescaleIntercept="-1024"))
    assert (pipeline.window_center, pipeline.window_width) == (40.0, 400.0)
    assert (pipeline.rescale_slope, pipeline.rescale_intercept) == (1.0, -1024.0)
    assert pipeline.voi_lut_function == "LINEAR" and not pipeline.invert


def test_monochrome1_inverts_and_defaults_apply():
    pipeline = GreyscalePipeline.from_dataset(dataset(PhotometricInterpretation="MONOCHROME1"))
    assert pipeline.invert
    assert (pipeline.rescale_slope, pipeline.rescale_intercept) == (1.0, 0.0)
    assert pipeline.window_center is None and pipeline.window_width is None


@pytest.mark.parametrize("function, width, kept", [
    ("LINEAR", 1, True), ("LINEAR", 0.5, False), ("LINEAR_EXACT", 0.5, True),
    ("LINEAR_EXACT", 0, False), ("SIGMOID", 10, True),
])
def test_window_width_limits_depend_on_the_function(function, width, kept):
    pipeline = GreyscalePipeline.from_dataset(dataset(WindowCenter=100, WindowWidth=width, VOILUTFunction=function))
    assert (pipeline.window_width is not None) is kept
    assert pipeline.voi_lut_function == function


def test_signed_data_is_flagged():
    assert GreyscalePipeline.from_dataset(dataset(PixelRepresentation=1)).signed


@pytest.mark.parametrize("attributes, message", [
    ({"PhotometricInterpretation": "RGB"}, "RGB is not grey-scale"),
    ({"VOILUTFunction": "GAMMA"}, "'GAMMA' is not one of"),
])
def test_unusable_attributes_are_refused(attributes, message):
    with pytest.raises(DicomError, match=message):
        GreyscalePipeline.from_dataset(dataset(**attributes))


def test_pipeline_is_plain_data_for_javascript():
    values = GreyscalePipeline.from_dataset(dataset(WindowCenter=1, WindowWidth=2)).to_dict()
    assert values == {"bits_stored": 12, "signed": False, "rescale_slope": 1.0, "rescale_intercept": 0.0,
                      "window_center": 1.0, "window_width": 2.0, "voi_lut_function": "LINEAR", "invert": False,
                      "voi_lut": None, "modality_lut": None, "padding": None}


def test_voi_lut_sequence_padding_and_presentation_shape():
    item = Dataset()
    item.LUTDescriptor = [4, 100, 12]
    item.LUTData = [0, 1000, 3000, 4095]
    ds = dataset(VOILUTSequence=[item], PixelPaddingValue=0, PixelPaddingRangeLimit=20,
                 PresentationLUTShape="INVERSE")
    pipeline = GreyscalePipeline.from_dataset(ds)
    assert pipeline.voi_lut == {"first_mapped": 100, "bits": 12, "data": [0, 1000, 3000, 4095]}
    assert pipeline.padding == (0, 20) and pipeline.invert  # INVERSE on MONOCHROME2
    item.LUTData = [0, 1]
    with pytest.raises(DicomError, match="holds 2 entries; the descriptor says 4"):
        GreyscalePipeline.from_dataset(ds)


def test_modality_lut_sequence_with_a_signed_first_mapped_value():
    item = Dataset()
    item.LUTDescriptor = [3, 65535, 16]  # first mapped -1, read as US
    item.LUTData = [10, 20, 40000]
    item.ModalityLUTType = "HU"
    pipeline = GreyscalePipeline.from_dataset(dataset(ModalityLUTSequence=[item], PixelRepresentation=1))
    assert pipeline.modality_lut == {"first_mapped": -1, "bits": 16, "data": [10, 20, 40000]}
    assert GreyscalePipeline.from_dataset(dataset()).modality_lut is None
    item.LUTDescriptor = [3, 0, 20]
    with pytest.raises(DicomError, match="Modality LUT Descriptor gives 20 bits"):
        GreyscalePipeline.from_dataset(dataset(ModalityLUTSequence=[item]))


@pytest.mark.parametrize("photometric, shape, inverted", [
    ("MONOCHROME1", None, True),  # C.7.6.3.1.2: the minimum is white
    ("MONOCHROME2", None, False),
    ("MONOCHROME1", "INVERSE", True),  # the conformant pair names one inversion (C.7.6.1), not two
    ("MONOCHROME2", "IDENTITY", False),
    ("MONOCHROME2", "INVERSE", True),  # the shape decides: output after inversion is in P-values
    ("MONOCHROME1", "IDENTITY", False),  # output is in P-values as it stands (PS3.4 N.2.1.4)
])
def test_presentation_lut_shape_decides_the_polarity(photometric, shape, inverted):
    attributes = {"PhotometricInterpretation": photometric}
    if shape:
        attributes["PresentationLUTShape"] = shape
    assert GreyscalePipeline.from_dataset(dataset(**attributes)).invert is inverted


def test_an_unknown_presentation_lut_shape_is_refused():
    with pytest.raises(DicomError, match="'LIN OD' is not IDENTITY or INVERSE"):
        GreyscalePipeline.from_dataset(dataset(PresentationLUTShape="LIN OD"))


def test_each_image_of_a_series_keeps_its_own_window():
    """Window and rescale are attributes of each instance (PS3.3 C.11): the layout sends an item's own
    parameters where they differ from the series' (the image it opens on)."""
    from pyjpip.browser import study_layout

    images = []
    for n, (center, width) in enumerate([(40, 400), (40, 400), (300, 900)]):
        ds = dataset(WindowCenter=center, WindowWidth=width, Modality="CT", StudyInstanceUID="1.2.3",
                     SeriesInstanceUID="1.2.3.4", SOPInstanceUID=f"1.2.3.4.{n + 1}", InstanceNumber=n + 1,
                     SOPClassUID="1.2.840.10008.5.1.4.1.1.2", Rows=4, Columns=4,
                     PixelDataProviderURL=f"http://x/jpip?target={n}.j2k")
        images.append(ds)
    (series,) = study_layout(images)["series"]
    shown = series["stack"][series["instance"]]
    assert "greyscale" not in shown and series["greyscale"]["window_center"] == 40
    own = [item.get("greyscale", series["greyscale"]) for item in series["stack"]]
    assert [(g["window_center"], g["window_width"]) for g in own] == [(40, 400), (40, 400), (300, 900)]
    assert sum("greyscale" in item for item in series["stack"]) == 1
