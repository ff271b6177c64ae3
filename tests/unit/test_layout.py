"""Layout from attributes alone: ordering, orientation markers, hanging, corner text (runs under Pyodide)."""

import pytest
from pydicom.dataset import Dataset

from pyjpip.layout.hanging import hang
from pyjpip.layout.orientation import direction_letters, edge_markers
from pyjpip.layout.ordering import group_studies
from pyjpip.layout.overlay import corner_text
from pyjpip.layout.spatial import frame_of_reference_links, shares_frame_of_reference

AXIAL = [1, 0, 0, 0, 1, 0]
SAGITTAL = [0, 1, 0, 0, 0, -1]
CORONAL = [1, 0, 0, 0, 0, -1]


def instance(study="1.2.3", series="1.2.3.1", sop="1", number=None, position=None, orientation=AXIAL,
             modality="CT", frames=None, frame_of_reference="1.2.3.9", series_number=1):
    ds = Dataset()
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, sop
    ds.Modality, ds.SeriesNumber = modality, series_number
    if number is not None:
        ds.InstanceNumber = number
    if position is not None:
        ds.ImagePositionPatient = position
        ds.ImageOrientationPatient = orientation
    if frames:
        ds.NumberOfFrames = frames
    if frame_of_reference:
        ds.FrameOfReferenceUID = frame_of_reference
    return ds


@pytest.mark.parametrize("orientation, expected", [
    (AXIAL, {"right": "L", "left": "R", "bottom": "P", "top": "A"}),
    (SAGITTAL, {"right": "P", "left": "A", "bottom": "F", "top": "H"}),
    (CORONAL, {"right": "L", "left": "R", "bottom": "F", "top": "H"}),
])
def test_markers_of_the_standard_planes(orientation, expected):
    assert edge_markers(orientation) == expected


def test_markers_of_an_oblique_plane_name_the_main_directions_first():
    assert direction_letters([0.8, -0.5, 0.33]) == "LAH"  # largest first; all over a quarter
    assert direction_letters([0.97, 0.2, -0.1]) == "L"  # small components left out
    assert edge_markers([0.866, 0.5, 0, 0, 0, -1])["right"] == "LP"
    assert edge_markers(None) is None and edge_markers([0, 0, 0, 0, 1, 0]) is None


def test_instances_order_by_number_then_position_along_the_normal():
    # No Instance Numbers: the position along the normal decides, whatever the file order.
    shuffled = [instance(sop=str(i), position=[0, 0, z]) for i, z in [(3, 30.0), (1, -10.0), (2, 5.0)]]
    (study,) = group_studies(shuffled)
    assert [i.sop_instance_uid for i in study.series[0].instances] == ["1", "2", "3"]
    # A sagittal stack: the normal is (-1, 0, 0) x-wise, so positions order by -x.
    sagittal = [instance(sop=str(i), position=[x, 0, 0], orientation=SAGITTAL) for i, x in [(1, 20.0), (2, -5.0)]]
    assert [i.sop_instance_uid for i in group_studies(sagittal)[0].series[0].instances] == ["1", "2"]
    numbered = [instance(sop="1.9.2", number=2, position=[0, 0, -50]), instance(sop="1.9.1", number=1, position=[0, 0, 50])]
    assert [i.sop_instance_uid for i in group_studies(numbered)[0].series[0].instances] == ["1.9.1", "1.9.2"]


def test_series_and_studies_are_grouped_and_linked_by_frame_of_reference():
    datasets = [instance(series="1.2.3.11", sop="1", position=[0, 0, 0], series_number=2),
                instance(series="1.2.3.12", sop="2", position=[0, 0, 4], series_number=1),
                instance(series="1.2.3.13", sop="3", frame_of_reference="1.2.3.99", series_number=3),
                instance(study="9.9", series="9.9.1", sop="4")]
    studies = group_studies(datasets)
    assert [s.study_instance_uid for s in studies] == ["1.2.3", "9.9"]
    assert [s.series_instance_uid for s in studies[0].series] == ["1.2.3.12", "1.2.3.11", "1.2.3.13"]
    assert frame_of_reference_links(studies[0]) == {"1.2.3.9": ["1.2.3.12", "1.2.3.11"]}
    first, second, third = studies[0].series
    assert shares_frame_of_reference(first, second) and not shares_frame_of_reference(first, third)


def test_hanging_protocols():
    two_view = group_studies([instance(series="1.2.5.1", sop="1", modality="CR", frame_of_reference=None),
                              instance(series="1.2.5.2", sop="2", modality="CR", frame_of_reference=None)])[0]
    hanging = hang(two_view)
    assert (hanging.rows, hanging.columns) == (1, 2) and len(hanging.viewports) == 2
    stack = group_studies([instance(sop=str(i), position=[0, 0, i]) for i in range(9)])[0]
    assert hang(stack).rows == 1 and hang(stack).viewports[0].instance == 4  # opens at the middle slice
    cine = group_studies([instance(modality="US", frames=40, frame_of_reference=None)])[0]
    assert hang(cine).viewports[0].cine
    many = group_studies([instance(series=f"1.2.6.{i}", sop=str(i), series_number=i) for i in range(6)])[0]
    assert (hang(many).rows, hang(many).columns, len(hang(many).viewports)) == (2, 2, 4)


def test_a_localizer_hangs_after_the_series_it_locates():
    scout = instance(series="1.2.7.1", sop="9.1", position=[0, 0, 0], orientation=SAGITTAL, series_number=1)
    scout.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    axial = [instance(series="1.2.7.2", sop=str(i), position=[0, 0, i], series_number=2) for i in range(5)]
    for ds in axial:
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    sagittal = instance(series="1.2.7.3", sop="9.2", position=[0, 0, 0], orientation=SAGITTAL, series_number=3)
    study = group_studies([scout, *axial, sagittal])[0]
    assert [s.series_instance_uid for s in study.series] == ["1.2.7.1", "1.2.7.2", "1.2.7.3"]  # by number
    hanging = hang(study)
    assert [v.series_instance_uid for v in hanging.viewports] == ["1.2.7.2", "1.2.7.3", "1.2.7.1"]
    assert (hanging.rows, hanging.columns) == (2, 2) and hanging.viewports[0].instance == 2
    alone = group_studies([scout])[0]
    assert [v.series_instance_uid for v in hang(alone).viewports] == ["1.2.7.1"]  # still shown when alone


def test_corner_text():
    ds = instance(number=3)
    ds.PatientName, ds.PatientID, ds.PatientSex, ds.PatientAge = "Doe^Jane", "P1", "F", "042Y"
    ds.StudyDescription, ds.StudyDate, ds.SeriesDescription = "Head", "20261125", "Axial 5mm"
    ds.SliceThickness, ds.LossyImageCompression = "5.0", "01"
    text = corner_text(ds, instance=3, instances=40, window=(40, 400), zoom=1.5)
    assert text["top_left"] == ["Doe Jane", "P1", "F 042Y"]
    assert text["top_right"] == ["Head", "2026-11-25"]
    assert text["bottom_left"] == ["CT Se: 1 Axial 5mm", "Im: 3/40", "T: 5 mm"]
    assert text["bottom_right"] == ["W: 400 L: 40", "Zoom: 150%", "LOSSY"]
    assert corner_text(ds, instance=1, instances=1, frame=7, frames=30)["bottom_left"][1] == "Im: 1/1  Fr: 7/30"


def test_an_instance_whose_display_attributes_are_unusable_fails_alone():
    """Each instance is painted with its own grey-scale parameters (PS3.3 C.11); one that cannot be
    (an unknown Presentation LUT Shape) is marked with the error its cell shows, the others are laid out."""
    from pyjpip.browser import study_layout

    datasets = []
    for number in (1, 2, 3):
        ds = instance(sop=f"1.9.{number}", number=number, position=[0, 0, number])
        ds.Rows = ds.Columns = 64
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.PixelRepresentation = 16, 12, 0
        ds.WindowCenter, ds.WindowWidth = 40 * number, 400
        ds.PixelDataProviderURL = f"http://store.test/jpip?target={number}.j2k"
        datasets.append(ds)
    datasets[2].PresentationLUTShape = "SIDEWAYS"
    layout = study_layout(datasets)
    stack = layout["series"][0]["stack"]
    assert [("error" in item) for item in stack] == [False, False, True]
    assert stack[2]["error"]["kind"] and "SIDEWAYS" in stack[2]["error"]["message"]
    assert stack[0].get("greyscale", layout["series"][0]["greyscale"])["window_center"] == 40
