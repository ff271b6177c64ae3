"""The demo data is what the build says it is: lossless, JPIP-friendly, valid DICOM."""

import importlib.util
import numpy as np
import pydicom
import pytest

from paths import ROOT
from reference import first_codestream, opj_decode

pytestmark = pytest.mark.cpython_only


def load_tool():
    spec = importlib.util.spec_from_file_location("demo_data", ROOT / "tools" / "demo_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name, make", [("ct_phantom_2048.dcm", lambda t: t.ct_phantom(2048)),
                                        ("cr_mono1_1024.dcm", lambda t: t.chest_radiograph(1024))])
def test_generated_images_are_lossless(demo_data, name, make):
    ds = pydicom.dcmread(demo_data / name)
    decoded = opj_decode(first_codestream(demo_data / name))
    expected = make(load_tool())
    assert decoded.shape == (ds.Rows, ds.Columns)
    assert np.array_equal(decoded, expected)
    assert expected.max() >= 2 ** (ds.BitsStored - 1), "the data should use its top bit"


def test_the_htj2k_twin_holds_the_same_pixels_jpip_friendly(demo_data):
    """ct_phantom_2048.jhc (OpenJPH) decodes with OpenJPEG to the CT's pixels; RPCL, precincts."""
    from pyjpip.codestream.markers import read_main_header

    data = (demo_data / "ct_phantom_2048.jhc").read_bytes()
    header = read_main_header(data)
    assert header.high_throughput and header.coding_style.progression_order.name == "RPCL"
    assert header.coding_style.decomposition_levels == 5
    assert header.coding_style.precinct_sizes == ((128, 128),) * 4 + ((256, 256),) * 2
    assert np.array_equal(opj_decode(data), opj_decode((demo_data / "ct_phantom_2048.j2k").read_bytes()))


def test_demo_objects_are_valid_part10_files(demo_files):
    for path in demo_files:
        ds = pydicom.dcmread(path)
        assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.90"
        assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID
        assert ds.HighBit == ds.BitsStored - 1
