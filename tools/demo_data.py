"""Make the demo DICOM files: real JPEG 2000 pixel data, encoded by OpenJPEG's opj_compress.

Runs on CPython with numpy (tooling, not part of the pyjpip package). Output is deterministic,
so a rebuild with the same tools writes the same bytes.

    python tools/demo_data.py OUTPUT_DIR
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless, PYDICOM_IMPLEMENTATION_UID, generate_uid

#: JPIP-friendly coding: base resolution <= 64 px, precincts, quality layers, RPCL, PLT/TLM
#: (the properties PS3.5 10.18 asks of HTJ2K RPCL, and what makes JPIP efficient).
JPIP_FRIENDLY_OPTIONS = ["-p", "RPCL", "-c", "[256,256],[256,256],[128,128]", "-b", "64,64",
                         "-r", "80,20,5,1", "-PLT", "-TLM", "-SOP", "-EPH"]


def ct_phantom(size: int) -> np.ndarray:
    """A CT-like head phantom in Hounsfield units: skull, brain, ventricles, lesions, a metal bead, noise."""
    rng = np.random.default_rng(20261125)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) / size - 0.5
    image = np.full((size, size), -1000.0)  # air
    head = (x / 0.42) ** 2 + (y / 0.47) ** 2
    image[head <= 1.0] = 1200.0  # skull
    image[head <= 0.85] = 35.0  # brain
    for cx, cy, rx, ry, hu in [(-0.08, -0.05, 0.05, 0.12, 5), (0.08, -0.05, 0.05, 0.12, 5),
                               (0.15, 0.2, 0.04, 0.04, 75), (-0.18, 0.15, 0.03, 0.05, -80),
                               (0.0, 0.3, 0.02, 0.02, 300)]:
        image[((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0] = hu
    bars = (np.abs(x + 0.12) < 0.08) & (np.abs(y - 0.3) < 0.05)  # line pairs, finer to the right: zoom into them
    image += 60.0 * np.sign(np.sin(2 * np.pi * (x + 0.2) ** 2 * 3000.0)) * bars
    image[((x - 0.2) ** 2 + (y + 0.25) ** 2) <= 0.01 ** 2] = 60000.0  # metal: uses the top bits
    image += rng.normal(0.0, 6.0, image.shape)
    return np.clip(np.rint(image + 1024.0), 0, 65535).astype(np.uint16)  # stored = HU + 1024


def chest_radiograph(size: int) -> np.ndarray:
    """A 12-bit radiograph-like image stored as MONOCHROME1: bone low values (shown bright), lungs high (dark)."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) / size - 0.5
    image = 2600.0 - 1400.0 * np.exp(-(((np.abs(x) - 0.2) / 0.14) ** 2 + (y / 0.3) ** 2))
    image += 500.0 * (np.abs(np.sin(30 * y)) < 0.15) * (np.abs(x) < 0.35)  # ribs
    image += 300.0 * np.exp(-(x / 0.05) ** 2)  # spine
    image += rng.normal(0.0, 20.0, image.shape)
    return (4095 - np.clip(np.rint(image), 0, 4095)).astype(np.uint16)


def encode(pixels: np.ndarray, bits_stored: int, signed: bool, options: list[str]) -> bytes:
    """Losslessly encode with opj_compress (Debian libopenjp2-tools) and check the round trip."""
    opj_compress = shutil.which("opj_compress")
    if not opj_compress:
        sys.exit("opj_compress not found: install Debian's libopenjp2-tools")
    rows, columns = pixels.shape
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "in.rawl")
        out = os.path.join(tmp, "out.j2k")
        pixels.astype("<i2" if signed else "<u2").tofile(raw)
        subprocess.run([opj_compress, "-i", raw, "-o", out, "-F",
                        f"{columns},{rows},1,{bits_stored},{'s' if signed else 'u'}", *options],
                       check=True, capture_output=True)
        with open(out, "rb") as f:
            return f.read()


#: The same JPIP-friendly layout for HTJ2K (Part 15) by OpenJPH: precincts are listed from the
#: coarsest resolution here (opj_compress lists them from the finest); OpenJPH writes one layer.
HTJ2K_JPIP_FRIENDLY_OPTIONS = ["-reversible", "true", "-prog_order", "RPCL", "-block_size", "{64,64}",
                               "-precincts", "{128,128},{128,128},{128,128},{128,128},{256,256},{256,256}"]


def encode_htj2k(pixels: np.ndarray, levels: int) -> bytes:
    """Losslessly encode as HTJ2K with ojph_compress (Debian openjph-tools); 16-bit unsigned grey."""
    ojph_compress = shutil.which("ojph_compress")
    if not ojph_compress:
        sys.exit("ojph_compress not found: install Debian's openjph-tools")
    rows, columns = pixels.shape
    with tempfile.TemporaryDirectory() as tmp:
        image, out = os.path.join(tmp, "in.pgm"), os.path.join(tmp, "out.jhc")
        with open(image, "wb") as f:
            f.write(f"P5\n{columns} {rows}\n65535\n".encode() + pixels.astype(">u2").tobytes())
        subprocess.run([ojph_compress, "-i", image, "-o", out, "-num_decomps", str(levels),
                        *HTJ2K_JPIP_FRIENDLY_OPTIONS], check=True, capture_output=True)
        with open(out, "rb") as f:
            return f.read()


def write_dicom(path: str, codestream: bytes, name: str, attributes: dict) -> None:
    """Wrap one codestream as a single-frame DICOM object, transfer syntax JPEG 2000 Lossless (.90)."""
    ds = Dataset()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.SOPInstanceUID = generate_uid(entropy_srcs=["pyjpip demo", name, "instance"])
    ds.StudyInstanceUID = generate_uid(entropy_srcs=["pyjpip demo study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["pyjpip demo", name, "series"])
    ds.PatientName = "Demo^Phantom"
    ds.PatientID = "PYJPIP-DEMO"
    ds.StudyDate = "20261125"
    ds.InstanceNumber = 1
    ds.SamplesPerPixel = 1
    ds.HighBit = ds.BitsStored - 1
    ds.LossyImageCompression = "00"
    ds.PixelData = encapsulate([codestream])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = JPEG2000Lossless
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    ds.save_as(path, enforce_file_format=True)


def make(output_dir: str) -> list[dict]:
    os.makedirs(output_dir, exist_ok=True)
    entries = []

    ct = ct_phantom(2048)
    ct_codestream = encode(ct, 16, False, JPIP_FRIENDLY_OPTIONS)
    with open(os.path.join(output_dir, "ct_phantom_2048.j2k"), "wb") as f:  # the same pixels, for JPIP
        f.write(ct_codestream)
    with open(os.path.join(output_dir, "ct_phantom_2048.jhc"), "wb") as f:  # and as HTJ2K
        f.write(encode_htj2k(ct, 5))
    write_dicom(os.path.join(output_dir, "ct_phantom_2048.dcm"), ct_codestream,
                "ct", {"SOPClassUID": "1.2.840.10008.5.1.4.1.1.2", "Modality": "CT", "Rows": 2048,
                       "Columns": 2048, "BitsAllocated": 16, "BitsStored": 16, "PixelRepresentation": 0,
                       "PhotometricInterpretation": "MONOCHROME2", "RescaleSlope": 1,
                       "RescaleIntercept": -1024, "RescaleType": "HU", "WindowCenter": [40, 400],
                       "WindowWidth": [400, 2000], "SeriesDescription": "CT head phantom 2048"})
    entries.append({"file": "ct_phantom_2048.dcm", "title": "CT 2048x2048, 16-bit, brain window",
                    "jpip_target": "ct_phantom_2048.j2k", "jpip_target_htj2k": "ct_phantom_2048.jhc"})

    cr = chest_radiograph(1024)
    write_dicom(os.path.join(output_dir, "cr_mono1_1024.dcm"), encode(cr, 12, False, JPIP_FRIENDLY_OPTIONS),
                "cr", {"SOPClassUID": "1.2.840.10008.5.1.4.1.1.1", "Modality": "CR", "Rows": 1024,
                       "Columns": 1024, "BitsAllocated": 16, "BitsStored": 12, "PixelRepresentation": 0,
                       "PhotometricInterpretation": "MONOCHROME1",
                       "SeriesDescription": "CR chest phantom, MONOCHROME1, no window"})
    entries.append({"file": "cr_mono1_1024.dcm", "title": "CR 1024x1024, 12-bit MONOCHROME1, no window"})

    source = get_testdata_file("MR_small_jp2klossless.dcm")
    shutil.copyfile(source, os.path.join(output_dir, "mr_small_jp2k.dcm"))
    entries.append({"file": "mr_small_jp2k.dcm", "title": "MR 64x64, signed 16-bit (pydicom test file)"})

    with open(os.path.join(output_dir, "index.json"), "w") as f:
        json.dump(entries, f, indent=2)
    return entries


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir")
    for entry in make(parser.parse_args().output_dir):
        print(entry["file"])
