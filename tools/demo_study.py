"""The demo study set: synthetic but realistic DICOM objects, written deterministically.

    python tools/demo_study.py OUTPUT_DIR

- CT head, 120 axial slices of 512x512, 12-bit (stored HU + 1024), 2.5 mm apart, brain window;
- its localizer ("Scout", Series Number 1, Image Type ORIGINAL\\PRIMARY\\LOCALIZER): one lateral
  projection of 512x512 at 0.625 mm covering the head and the whole axial stack, the line integrals of
  the same head phantom, in the CT's Frame of Reference (the axial slices cross it as reference lines);
- MR brain, 24 sagittal slices of 256x256, 16-bit container, registered to the CT: it shares the CT's
  Frame of Reference, so its slices and the CT's relate in space (reference lines, linked scrolling);
- CR chest, PA and lateral views of 2048x2500, 12-bit in a 16-bit container, MONOCHROME1;
- US cine, 30 frames of 320x240, 8-bit, multi-frame with Frame Time;
- and pydicom's bundled JPEG 2000 objects, copied as they are.

Uncompressed (Explicit VR Little Endian) on purpose: `pyjpip ingest` encodes them the JPIP way.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

import numpy as np
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID, generate_uid

PYDICOM_JPEG2000 = ["JPEG2000.dcm", "MR_small_jp2klossless.dcm", "GDCMJ2K_TextGBR.dcm", "693_J2KI.dcm",
                    "J2K_pixelrep_mismatch.dcm"]


def uid(*parts) -> str:
    return generate_uid(entropy_srcs=["pyjpip demo study", *map(str, parts)])


def base(study: str, series: str, sop: str, modality: str, sop_class: str, number: int, series_number: int,
         description: str) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex, ds.PatientAge = (
        "Phantom^Demo", "PYJPIP-0001", "19700101", "O", "056Y")
    ds.StudyDate, ds.StudyTime, ds.AccessionNumber, ds.StudyID = "20261125", "093000", "ACC0001", "1"
    ds.ReferringPhysicianName, ds.InstitutionName = "", "pyjpip demo"
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = modality, series_number, number
    ds.SeriesDescription = description
    ds.SpecificCharacterSet = "ISO_IR 100"
    return ds


def finish(ds: Dataset, pixels: np.ndarray, bits_stored: int, signed: bool, photometric: str, path: str) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = pixels.shape[-2:]
    ds.BitsAllocated = 8 if bits_stored <= 8 else 16
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits_stored, bits_stored - 1, int(signed)
    ds.PixelData = pixels.astype(("<i" if signed else "<u") + ("1" if ds.BitsAllocated == 8 else "2")).tobytes()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    meta.TransferSyntaxUID, meta.ImplementationClassUID = ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    ds.save_as(path, enforce_file_format=True)


def head_phantom(size: int, z: float, rng) -> np.ndarray:
    """Hounsfield units of an axial head slice at height z in [-1, 1]: skull, brain, ventricles, lesions."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) / size - 0.5
    scale = np.sqrt(max(1e-6, 1 - z * z))
    hu = np.full((size, size), -1000.0)
    head = (x / (0.42 * scale)) ** 2 + (y / (0.48 * scale)) ** 2
    hu[head <= 1] = 1000.0
    brain = head <= 0.86
    hu[brain] = (35.0 + 8 * np.sin(20 * x + 3 * z))[brain]
    ventricles = (((x - 0.06) / 0.04) ** 2 + (y / 0.12) ** 2 <= 1) | (((x + 0.06) / 0.04) ** 2 + (y / 0.12) ** 2 <= 1)
    hu[ventricles & (abs(z) < 0.5)] = 8.0
    hu[((x - 0.15) ** 2 + (y - 0.18 + 0.1 * z) ** 2) <= 0.03 ** 2] = 65.0  # a small haemorrhage
    hu += rng.normal(0, 4, hu.shape)
    return np.clip(np.rint(hu + 1024), 0, 4095)


#: Where the head phantom lies in the CT's patient coordinates (mm): the axial slices' x and y span
#: [-125, 125) and z_norm in [-0.95, 0.95] runs over z = -150 ... 147.5 mm.
CT_FIELD, CT_Z0, CT_DZ = 250.0, -150.0, 2.5


def scout_projection(size: int, spacing: float, top: float, left: float, rng) -> np.ndarray:
    """A lateral projection of ``head_phantom`` (rays along x), computed analytically: at each height
    the phantom's regions are nested ellipses, so a ray's path through each is a chord. Attenuation
    relative to water ((HU + 1000) / 1000) times chord length (mm), then scaled to 12 bits: bright bone."""
    row, column = np.mgrid[0:size, 0:size].astype(np.float64)
    z_mm, y_mm = top - spacing * row, left + spacing * column
    z = -0.95 + 1.9 * (z_mm - CT_Z0) / (119 * CT_DZ)  # the phantom's height, as head_phantom takes it
    y = y_mm / CT_FIELD
    scale = np.sqrt(np.maximum(1e-6, 1 - z * z))

    def chord(half_x, half_y, inside=1.0, y0=0.0):
        """Length (mm) of the ray through the ellipse (x / half_x)^2 + ((y - y0) / half_y)^2 <= inside."""
        return 2 * CT_FIELD * half_x * np.sqrt(np.clip(inside - ((y - y0) / half_y) ** 2, 0, None))

    head = chord(0.42 * scale, 0.48 * scale)
    brain = chord(0.42 * scale, 0.48 * scale, 0.86)
    ventricles = 2 * chord(0.04, 0.12) * (abs(z) < 0.5)  # two side by side: a ray crosses both
    haemorrhage = chord(0.03, 0.03, y0=0.18 - 0.1 * z) * (abs(z) < 1)
    bone, tissue = 2.0, 1.035  # 1000 HU and the brain's mean 35 HU
    path = head * bone + brain * (tissue - bone) + ventricles * (1.008 - tissue) + haemorrhage * (1.065 - tissue)
    return np.clip(np.rint(80 + 13 * path + rng.normal(0, 6, path.shape)), 0, 4095)


def write(output: str) -> list[str]:
    os.makedirs(output, exist_ok=True)
    rng = np.random.default_rng(20261125)
    written = []
    study = uid("study", 1)
    frame_of_reference = uid("frame of reference", "ct")
    ct_series = uid("series", "ct")
    for n in range(120):
        z = -0.95 + 1.9 * n / 119
        ds = base(study, ct_series, uid("ct", n), "CT", "1.2.840.10008.5.1.4.1.1.2", n + 1, 2, "Head 2.5 mm")
        ds.StudyDescription = "CT head and MR brain"
        ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = frame_of_reference, ""
        ds.ImagePositionPatient = [-125.0, -125.0, round(-150.0 + 2.5 * n, 2)]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing, ds.SliceThickness = [0.48828125, 0.48828125], 2.5
        ds.SliceLocation = round(-150.0 + 2.5 * n, 2)
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        ds.WindowCenter, ds.WindowWidth = [40, 400], [80, 2000]
        ds.WindowCenterWidthExplanation = ["BRAIN", "BONE"]
        ds.KVP, ds.BodyPartExamined = 120, "HEAD"
        path = os.path.join(output, f"ct-{n + 1:03d}.dcm")
        finish(ds, head_phantom(512, z, rng), 12, False, "MONOCHROME2", path)
        written.append(path)
    # The localizer the axial stack was planned on: lateral (rows along +y, columns down -z) through x = 0.
    scout = base(study, uid("series", "scout"), uid("scout", 0), "CT", "1.2.840.10008.5.1.4.1.1.2", 1, 1, "Scout")
    scout.StudyDescription = "CT head and MR brain"
    scout.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    scout.FrameOfReferenceUID, scout.PositionReferenceIndicator = frame_of_reference, ""
    scout.ImagePositionPatient = [0.0, -159.6875, 159.6875]  # 512 pixels of 0.625 mm centred on the origin
    scout.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
    scout.PixelSpacing = [0.625, 0.625]
    scout.RescaleIntercept, scout.RescaleSlope = 0, 1
    scout.WindowCenter, scout.WindowWidth = 1700, 3400
    scout.KVP, scout.BodyPartExamined = 120, "HEAD"
    path = os.path.join(output, "ct-scout.dcm")
    projection = scout_projection(512, 0.625, 159.6875, -159.6875, np.random.default_rng(20261126))
    finish(scout, projection, 12, False, "MONOCHROME2", path)
    written.append(path)
    mr_series = uid("series", "mr")
    for n in range(24):
        ds = base(study, mr_series, uid("mr", n), "MR", "1.2.840.10008.5.1.4.1.1.4", n + 1, 3, "Sag T1")
        ds.StudyDescription = "CT head and MR brain"
        ds.FrameOfReferenceUID = frame_of_reference  # registered to the CT
        ds.ImagePositionPatient = [round(-36.0 + 3 * n, 2), -120.0, 120.0]
        ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
        ds.PixelSpacing, ds.SliceThickness = [0.9375, 0.9375], 3.0
        y, x = np.mgrid[0:256, 0:256].astype(np.float64) / 256 - 0.5
        side = 1 - abs(n - 11.5) / 13
        brain = ((x / (0.4 * side + 0.05)) ** 2 + ((y + 0.05) / 0.42) ** 2) <= 1
        image = 200 + 900 * brain + 300 * brain * (np.sin(25 * x) * np.cos(19 * y) > 0.3)
        ds.WindowCenter, ds.WindowWidth = 700, 1400
        path = os.path.join(output, f"mr-{n + 1:02d}.dcm")
        finish(ds, np.clip(image + rng.normal(0, 20, image.shape), 0, 4095), 12, False, "MONOCHROME2", path)
        written.append(path)
    cr_study = uid("study", 2)
    for n, view in enumerate(("PA", "LL")):
        ds = base(cr_study, uid("series", "cr", view), uid("cr", view), "CR", "1.2.840.10008.5.1.4.1.1.1", 1,
                  n + 1, f"Chest {view}")
        ds.StudyDescription, ds.StudyTime = "Chest two views", "101500"
        ds.ViewPosition, ds.BodyPartExamined = view, "CHEST"
        ds.ImagerPixelSpacing, ds.PatientOrientation = [0.175, 0.175], ["L", "F"] if view == "PA" else ["A", "F"]
        y, x = np.mgrid[0:2500, 0:2048].astype(np.float64)
        y, x = y / 2500 - 0.5, x / 2048 - 0.5
        lungs = 1400 * np.exp(-(((abs(x) - (0.2 if view == "PA" else 0.05)) / 0.14) ** 2 + (y / 0.3) ** 2))
        ribs = 450 * (abs(np.sin(28 * y + 2 * x * x)) < 0.12) * (abs(x) < 0.36)
        image = 3300 - lungs + ribs + 350 * np.exp(-(x / 0.05) ** 2) + rng.normal(0, 15, x.shape)
        path = os.path.join(output, f"cr-{view.lower()}.dcm")
        finish(ds, 4095 - np.clip(image, 0, 4095), 12, False, "MONOCHROME1", path)
        written.append(path)
    us = base(uid("study", 3), uid("series", "us"), uid("us", 0), "US", "1.2.840.10008.5.1.4.1.1.3.1", 1, 1,
              "Cardiac cine")
    us.StudyDescription, us.StudyTime = "Echo", "111000"
    frames = []
    y, x = np.mgrid[0:240, 0:320].astype(np.float64)
    for f in range(30):
        beat = 0.5 + 0.5 * np.cos(2 * np.pi * f / 30)
        chamber = ((x - 160) / (55 + 15 * beat)) ** 2 + ((y - 130) / (70 + 10 * beat)) ** 2
        frame = 40 + 150 * ((chamber > 1) & (chamber < 1.6)) + rng.normal(0, 18, x.shape)
        frame[((x - 160) ** 2 + y ** 2) > 230 ** 2] = 0  # outside the sector
        frames.append(np.clip(frame, 0, 255))
    us.NumberOfFrames, us.FrameTime, us.CineRate = 30, 33.3, 30
    us.FrameIncrementPointer = 0x00181063
    path = os.path.join(output, "us-cine.dcm")
    finish(us, np.stack(frames), 8, False, "MONOCHROME2", path)
    written.append(path)
    for name in PYDICOM_JPEG2000:
        target = os.path.join(output, f"pydicom-{name}")
        shutil.copyfile(get_testdata_file(name), target)
        written.append(target)
    return written


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output")
    files = write(parser.parse_args().output)
    print(f"{len(files)} demo objects in {parser.parse_args().output}", file=sys.stderr)
