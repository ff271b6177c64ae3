"""Main-header parsing (15444-1 A.5.1 SIZ, A.6.1 COD) against real codestreams and broken ones."""

import re
import shutil
import struct
import subprocess

import pydicom
import pytest
from pydicom.encaps import generate_frames

from pyjpip.codestream.markers import Marker, ProgressionOrder, read_main_header
from pyjpip.errors import CodestreamError


def codestream_of(path) -> bytes:
    ds = pydicom.dcmread(path)
    return next(generate_frames(ds.PixelData, number_of_frames=1))


def test_demo_codestreams_agree_with_their_dicom_attributes(demo_files):
    for path in demo_files:
        ds = pydicom.dcmread(path)
        header = read_main_header(codestream_of(path))
        assert (header.size.width, header.size.height) == (ds.Columns, ds.Rows), path.name
        assert header.size.components[0].precision == ds.BitsStored
        assert header.size.components[0].signed == bool(ds.PixelRepresentation)
        assert header.segments[0].marker == Marker.SIZ


def test_ct_demo_is_coded_as_the_build_asked(demo_data):
    header = read_main_header(codestream_of(demo_data / "ct_phantom_2048.dcm"))
    style = header.coding_style
    assert style.progression_order is ProgressionOrder.RPCL
    assert style.layers == 4 and style.decomposition_levels == 5 and style.reversible
    assert style.precinct_sizes == ((16, 16), (32, 32), (64, 64), (128, 128), (256, 256), (256, 256))
    assert style.uses_sop and style.uses_eph
    assert header.size.component_size(0, 5) == (64, 64)
    assert {Marker.TLM} <= {s.marker for s in header.segments}


def test_conformance_files_parse(conformance_files):
    for path in conformance_files:
        data = path.read_bytes()
        header = read_main_header(data)
        assert data[header.length : header.length + 2] == b"\xff\x90", path.name


@pytest.mark.cpython_only
def test_conformance_files_match_opj_dump(conformance_files):
    """opj_dump (OpenJPEG) is the independent reference for every field we read."""
    opj_dump = shutil.which("opj_dump")
    assert opj_dump, "opj_dump (Debian libopenjp2-tools) is needed"
    for path in conformance_files:
        dump = subprocess.run([opj_dump, "-i", str(path)], capture_output=True, text=True, check=True).stdout
        fields = {}
        for key, value in re.findall(r"(\w+)=(-?(?:0x[0-9a-fA-F]+|\d+))", dump):
            fields.setdefault(key, int(value, 0))
        header = read_main_header(path.read_bytes())
        size, style = header.size, header.coding_style
        assert (size.x_offset, size.y_offset, size.x_size, size.y_size) == tuple(
            fields[k] for k in ("x0", "y0", "x1", "y1")), path.name
        assert len(size.components) == fields["numcomps"]
        assert (size.tile_x_offset, size.tile_y_offset, size.tile_width, size.tile_height) == tuple(
            fields[k] for k in ("tx0", "ty0", "tdx", "tdy")), path.name
        assert size.components[0].precision == fields["prec"]
        assert size.components[0].signed == bool(fields["sgnd"])
        assert style.progression_order == fields["prg"]
        assert style.layers == fields["numlayers"]
        if not any(segment.marker == Marker.COC for segment in header.segments):
            # opj_dump shows component 0's levels, which a COC may override; COD is the default.
            assert style.decomposition_levels + 1 == fields["numresolutions"], path.name


def test_jp2_file_is_refused_with_a_clear_error():
    with pytest.raises(CodestreamError, match="JP2-family"):
        read_main_header(b"\x00\x00\x00\x0cjP  \r\n\x87\n" + bytes(40))


@pytest.mark.parametrize("data, message, offset", [
    (b"", "no SOC", 0),
    (b"\xff\xd8\xff\xe0", "no SOC", 0),
    (b"\xff\x4f", "ends before the first SOT", 2),
    (b"\xff\x4f\xff\x52\x00\x0c" + bytes(10), "SIZ must be the first", 2),
    (b"\xff\x4f\xff\x51\x00\x50", "impossible length", 2),
    (b"\xff\x4f\x12\x34", "expected a marker", 2),
])
def test_malformed_headers_say_what_and_where(data, message, offset):
    with pytest.raises(CodestreamError, match=message) as caught:
        read_main_header(data)
    assert caught.value.offset == offset


def test_every_truncation_of_a_real_header_is_a_codestream_error(conformance_files):
    data = conformance_files[0].read_bytes()
    length = read_main_header(data).length
    for cut in range(length):
        with pytest.raises(CodestreamError):
            read_main_header(data[:cut])


def test_siz_with_wrong_component_count_is_refused():
    siz = struct.pack(">HH8IH", 41, 0, 8, 8, 0, 0, 8, 8, 0, 0, 2) + b"\x07\x01\x01"
    with pytest.raises(CodestreamError, match="does not match Csiz=2"):
        read_main_header(b"\xff\x4f\xff\x51" + siz + b"\xff\x90")
