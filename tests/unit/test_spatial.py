"""Image planes, reference lines, nearest slices and length calibration against hand-computed values
(PS3.3 C.7.6.2, C.7.6.2.1.1, C.7.4.1, 10.7.1.3; runs under Pyodide)."""

import json
import math

import pytest
from pydicom.dataset import Dataset

from pyjpip.dicom.json_model import JSONDataset
from pyjpip.errors import GeometryError
from pyjpip.layout.measurement import calibration
from pyjpip.layout.spatial import (ImagePlane, image_plane, nearest_slice, read_image_plane, reference_line,
                                   slice_normal)

AXIAL = [1, 0, 0, 0, 1, 0]
SAGITTAL = [0, 1, 0, 0, 0, -1]
CORONAL = [1, 0, 0, 0, 0, -1]


def plane(position=(0, 0, 0), orientation=AXIAL, spacing=(1, 1), rows=100, columns=100) -> ImagePlane:
    return ImagePlane.from_values(position, orientation, spacing, rows, columns)


def close(a, b, tolerance=1e-9):
    return all(abs(x - y) <= tolerance for x, y in zip(a, b)) and len(a) == len(b)


def dataset(position=(-125, -125, 10), orientation=AXIAL, spacing=(0.5, 0.5), rows=512, columns=512):
    ds = Dataset()
    ds.ImagePositionPatient, ds.ImageOrientationPatient, ds.PixelSpacing = list(position), orientation, list(spacing)
    ds.Rows, ds.Columns = rows, columns
    return ds


def test_pixel_to_patient_follows_c7621_and_pixel_spacings_order():
    # Pixel Spacing [2, 0.5]: 2 mm between rows (down the column direction), 0.5 mm between columns.
    axial = plane((-100, -50, 20), AXIAL, (2, 0.5), rows=10, columns=40)
    assert axial.point(0, 0) == (-100, -50, 20)  # IPP is the centre of the top-left pixel
    assert axial.point(4, 0) == (-98, -50, 20)  # four columns along +x at 0.5 mm
    assert axial.point(0, 3) == (-100, -44, 20)  # three rows along +y at 2 mm
    assert axial.pixel((-98, -44, 20)) == (4, 3)
    assert axial.pixel((-98, -44, 77)) == (4, 3)  # projected along the normal
    assert axial.normal == (0, 0, 1) and axial.distance((5, 5, 23)) == 3
    sagittal = plane((12, -120, 120), SAGITTAL, (0.9375, 0.9375), 256, 256)
    assert sagittal.point(10, 20) == (12, -120 + 9.375, 120 - 18.75)
    assert sagittal.normal == (-1, 0, 0) and sagittal.distance((10, 0, 0)) == 2
    coronal = plane((-150, 30, 100), CORONAL, (1, 2))
    assert coronal.point(1, 1) == (-148, 30, 99) and coronal.normal == (0, 1, 0)
    assert close(coronal.centre(), coronal.point(49.5, 49.5))


def test_an_oblique_plane_inverts_and_measures_along_its_normal():
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    oblique = plane((5, -7, 11), [c, s, 0, 0, 0, -1], (0.8, 0.6), 200, 300)
    assert close(oblique.normal, (-s, c, 0))
    point = oblique.point(123.25, 45.5)
    assert close(point, (5 + 123.25 * 0.6 * c, -7 + 123.25 * 0.6 * s, 11 - 45.5 * 0.8))
    assert close(oblique.pixel(point), (123.25, 45.5))
    off = tuple(p + 4 * n for p, n in zip(point, oblique.normal))
    assert close(oblique.pixel(off), (123.25, 45.5)) and abs(oblique.distance(off) - 4) < 1e-12
    # Cosines rounded to six places (as scanners write them) are accepted, and still invert exactly.
    rounded = plane((0, 0, 0), [round(c, 6), round(s, 6), 0, 0, 0, -1], (1, 1))
    assert close(rounded.pixel(rounded.point(17, 29)), (17, 29))


def test_reference_lines_between_the_standard_planes():
    axial = plane((-125, -125, 10), AXIAL, (0.5, 0.5), 512, 512)  # z = 10, x and y over [-125, 130.5]
    sagittal = plane((20, -120, 120), SAGITTAL, (1, 1), 240, 240)  # x = 20; y right, z down from 120
    coronal = plane((-100, 5, 100), CORONAL, (1, 1), 200, 200)  # y = 5
    # The axial slice on the sagittal image: the row where z = 10 (row 110), across the whole width.
    assert reference_line(axial, sagittal) == ((239.5, 110.0), (-0.5, 110.0))
    # The sagittal slice on the axial image: the column where x = 20 (column 290), top to bottom.
    assert reference_line(sagittal, axial) == ((290.0, -0.5), (290.0, 511.5))
    assert reference_line(coronal, axial) == ((-0.5, 260.0), (511.5, 260.0))
    assert reference_line(axial, coronal) == ((199.5, 90.0), (-0.5, 90.0))
    # Parallel planes, and planes passing beside the image: no line.
    assert reference_line(axial, plane((0, 0, 50))) is None
    assert reference_line(plane((0, 0, 500)), sagittal) is None  # z = 500 is above the sagittal image
    assert reference_line(plane((300, 0, 0), SAGITTAL), axial) is None


def test_an_oblique_reference_line_crosses_at_hand_computed_edges():
    # A plane through the origin at 45° between x and z (normal (1, 0, 1)/√2) on an axial image at
    # z = 0 with 1 mm pixels from (-50, -50): the line x = 0, i.e. column 50, over every row.
    tilted = plane((0, 0, 0), [0, 1, 0, -1 / math.sqrt(2), 0, 1 / math.sqrt(2)])
    axial = plane((-50, -50, 0), AXIAL, (1, 1), 100, 100)
    (c0, r0), (c1, r1) = reference_line(tilted, axial)
    assert close((c0, c1), (50, 50)) and sorted((r0, r1)) == [-0.5, 99.5]
    # The same plane on an axial image at z = 10: x + z = 0 gives x = -10, column 40.
    (c0, _), (c1, _) = reference_line(tilted, plane((-50, -50, 10), AXIAL, (1, 1), 100, 100))
    assert close((c0, c1), (40, 40))
    # A diagonal: the plane x = y (normal (1, -1, 0)/√2) on the axial image from the origin: row = column.
    diagonal = plane((0, 0, 0), [1 / math.sqrt(2), 1 / math.sqrt(2), 0, 0, 0, 1])
    ends = reference_line(diagonal, plane((0, 0, 0), AXIAL, (1, 1), 10, 20))
    assert close(sorted(ends)[0], (-0.5, -0.5)) and close(sorted(ends)[1], (9.5, 9.5))
    # Touching only the corner (-0.5, -0.5): no line. A different spacing per axis moves the line.
    assert reference_line(plane((0, 0, 0), [1 / math.sqrt(2), -1 / math.sqrt(2), 0, 0, 0, 1]),
                          plane((0.5, 0.5, 0), AXIAL, (1, 1), 10, 10)) is None
    (a, b) = reference_line(diagonal, plane((0, 0, 0), AXIAL, (2, 1), 10, 20))  # 2 mm between rows
    assert close(a, (2 * a[1], a[1])) and close(b, (2 * b[1], b[1]))


def test_the_nearest_slice_is_measured_along_each_slices_normal():
    stack = [plane((0, 0, z)) for z in (0, 2.5, 5, 7.5)]
    assert nearest_slice(stack, (30, 40, 5.9)) == 2 and nearest_slice(stack, (0, 0, -100)) == 0
    assert nearest_slice(stack, (0, 0, 1.25)) == 0  # a tie: the first
    assert nearest_slice([None, *stack[1:]], (0, 0, 0)) == 1 and nearest_slice([None], (0, 0, 0)) is None
    # A sagittal stack (normal -x) and a point given by an axial slice's centre.
    sagittal = [plane((x, -120, 120), SAGITTAL, (1, 1), 240, 240) for x in (-6, -3, 0, 3, 6)]
    centre = plane((-125, -125, 10), AXIAL, (0.5, 0.5), 512, 512).centre()
    assert centre == (2.75, 2.75, 10) and nearest_slice(sagittal, centre) == 3  # x = 3 is 0.25 mm away


def test_planes_from_attributes_and_from_enhanced_functional_groups():
    axial = read_image_plane(dataset())
    assert (axial.position, axial.spacing, axial.rows, axial.columns) == ((-125, -125, 10), (0.5, 0.5), 512, 512)
    assert ImagePlane.from_dict(json.loads(json.dumps(axial.to_dict()))) == axial
    enhanced = dataset()
    del enhanced.ImagePositionPatient
    shared, measures, orientation = Dataset(), Dataset(), Dataset()
    measures.PixelSpacing, orientation.ImageOrientationPatient = [0.7, 0.6], SAGITTAL
    shared.PixelMeasuresSequence, shared.PlaneOrientationSequence = [measures], [orientation]
    enhanced.SharedFunctionalGroupsSequence = [shared]
    frames = []
    for x in (-3, 0, 3):
        item, position = Dataset(), Dataset()
        position.ImagePositionPatient = [x, -100, 90]
        item.PlanePositionSequence = [position]
        frames.append(item)
    enhanced.PerFrameFunctionalGroupsSequence = frames
    enhanced.NumberOfFrames = 3
    for reader in (enhanced, JSONDataset(json.loads(json.dumps(enhanced.to_json_dict())))):
        second = read_image_plane(reader, 2)
        assert (second.position, second.row, second.column, second.spacing) == (
            (0, -100, 90), (0, 1, 0), (0, 0, -1), (0.7, 0.6))
        assert read_image_plane(reader, 3).position == (3, -100, 90)
        assert image_plane(reader, 4) is None  # no such frame, no top-level position
    assert read_image_plane(dataset(), 2) == axial  # a single-frame object: its attributes for any frame


@pytest.mark.parametrize("change, attribute", [
    ({"position": None}, "ImagePositionPatient"),
    ({"position": [1, 2]}, "ImagePositionPatient"),
    ({"orientation": None}, "ImageOrientationPatient"),
    ({"orientation": [1, 0, 0, 1, 0, 0]}, "ImageOrientationPatient"),  # parallel cosines
    ({"orientation": [2, 0, 0, 0, 1, 0]}, "ImageOrientationPatient"),  # not unit length
    ({"orientation": [1, 0, 0, 0.1, 0.995, 0]}, "ImageOrientationPatient"),  # not perpendicular
    ({"orientation": [0, 0, 0, 0, 0, 0]}, "ImageOrientationPatient"),
    ({"spacing": None}, "PixelSpacing"),
    ({"spacing": [0, 0.5]}, "PixelSpacing"),
    ({"spacing": [0.5]}, "PixelSpacing"),
    ({"rows": 0}, "Rows"),
    ({"columns": None}, "Columns"),
])
def test_missing_or_degenerate_attributes_give_a_reason_not_a_crash(change, attribute):
    ds = dataset()
    keywords = {"position": "ImagePositionPatient", "orientation": "ImageOrientationPatient",
                "spacing": "PixelSpacing", "rows": "Rows", "columns": "Columns"}
    for name, value in change.items():
        if value is None:
            delattr(ds, keywords[name])
        else:
            setattr(ds, keywords[name], value)
    with pytest.raises(GeometryError) as caught:
        read_image_plane(ds)
    assert caught.value.attribute == attribute
    assert image_plane(ds) is None


def test_text_in_a_number_is_a_reason_too():
    with pytest.raises(GeometryError):
        ImagePlane.from_values(["a", 0, 0], AXIAL, (1, 1), 1, 1)
    assert slice_normal(["x"] * 6) is None and slice_normal([1, 0, 0, 1, 0, 0]) is None
    assert slice_normal(SAGITTAL) == (-1, 0, 0)


def radiograph(**attributes):
    ds = Dataset()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def test_the_calibration_of_lengths_names_what_it_measures():
    ct = calibration(dataset(spacing=(0.8, 0.6)))
    assert (ct.row, ct.column, ct.name) == (0.8, 0.6, "Pixel Spacing, in the patient")
    assert ct.length((0, 0), (3, 4)) == pytest.approx(math.hypot(3 * 0.6, 4 * 0.8))
    detector = calibration(radiograph(ImagerPixelSpacing=[0.2, 0.1]))
    assert (detector.row, detector.column, detector.name) == (0.2, 0.1, "Imager Pixel Spacing, at the detector")
    # Pixel Spacing repeating Imager Pixel Spacing unchanged is still at the detector (10.7.1.3).
    assert calibration(radiograph(ImagerPixelSpacing=[0.2, 0.2], PixelSpacing=[0.2, 0.2])).name == \
        "Imager Pixel Spacing, at the detector"
    magnified = calibration(radiograph(ImagerPixelSpacing=[0.2, 0.1], EstimatedRadiographicMagnificationFactor=1.25))
    assert (magnified.row, magnified.column) == (0.16, 0.08)
    assert magnified.name == "Imager Pixel Spacing corrected by Estimated Radiographic Magnification Factor 1.25"
    corrected = calibration(radiograph(ImagerPixelSpacing=[0.2, 0.2], PixelSpacing=[0.16, 0.16]))
    assert (corrected.row, corrected.name) == (0.16, "Pixel Spacing, in the patient")
    fiducial = calibration(radiograph(ImagerPixelSpacing=[0.2, 0.2], PixelSpacing=[0.17, 0.17],
                                      PixelSpacingCalibrationType="FIDUCIAL",
                                      PixelSpacingCalibrationDescription="25 mm ball"))
    assert (fiducial.row, fiducial.name) == (0.17, "Pixel Spacing, calibrated (fiducial): 25 mm ball")
    assert fiducial.to_dict() == {"row": 0.17, "column": 0.17, "name": "Pixel Spacing, calibrated (fiducial): 25 mm ball"}
    assert calibration(radiograph()) is None and calibration(radiograph(PixelSpacing=[0, 1])) is None
    assert calibration(radiograph(ImagerPixelSpacing=[0.2, 0.2], EstimatedRadiographicMagnificationFactor=0)).name == \
        "Imager Pixel Spacing, at the detector"  # a factor of 0 is no factor
    view = JSONDataset(json.loads(json.dumps(radiograph(ImagerPixelSpacing=[0.2, 0.1]).to_json_dict())))
    assert calibration(view) == detector
