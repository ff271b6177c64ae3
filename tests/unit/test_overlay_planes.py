"""Overlay planes (PS3.3 C.9.2) read from attributes, from pydicom and from DICOM JSON alike."""

import pytest
from pydicom.dataset import Dataset

from pyjpip.dicom.json_model import JSONDataset
from pyjpip.errors import DicomError
from pyjpip.layout.overlay_planes import overlay_planes


def packed(bits: list[int]) -> bytes:
    """Eight bits a byte, the first in the lowest bit (PS3.5 8.1.2), padded to an even length."""
    data = bytearray((len(bits) + 7) // 8)
    for n, bit in enumerate(bits):
        data[n >> 3] |= bit << (n & 7)
    return bytes(data) + b"\x00" * (len(data) % 2)


def annotated() -> tuple[Dataset, list[int], list[int]]:
    ds = Dataset()
    first = [(r * 7 + c) % 3 == 0 for r in range(5) for c in range(7)]
    ds.add_new(0x60000010, "US", 5)
    ds.add_new(0x60000011, "US", 7)
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60000050, "SS", [2, -3])
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    ds.add_new(0x60001500, "LO", "ruler")
    ds.add_new(0x60003000, "OW", packed([int(b) for b in first]))
    # a second plane over frames 2 and 3 of a multi-frame image: 35 bits a frame, not byte-aligned
    frames = [[(n + f) % 2 for n in range(35)] for f in range(2)]
    for element, vr, value in [(0x0010, "US", 5), (0x0011, "US", 7), (0x0040, "CS", "R"), (0x0050, "SS", [1, 1]),
                               (0x0015, "IS", "2"), (0x0051, "US", 2), (0x0100, "US", 1), (0x0102, "US", 0),
                               (0x3000, "OW", packed(frames[0] + frames[1]))]:
        ds.add_new(0x60020000 | element, vr, value)
    ds.add_new(0x60040010, "US", 5)  # an overlay embedded in Pixel Data: not drawable from attributes
    ds.add_new(0x60040011, "US", 7)
    ds.add_new(0x60040050, "SS", [1, 1])
    ds.add_new(0x60040100, "US", 16)
    ds.add_new(0x60043000, "OW", b"\x00" * 6)
    return ds, [int(b) for b in first], frames


def unpacked(plane) -> list[int]:
    count = plane["rows"] * plane["columns"]
    return [(plane["data"][n >> 3] >> (n & 7)) & 1 for n in range(count)]


@pytest.mark.parametrize("as_json", [False, True], ids=["pydicom", "json"])
def test_planes_by_frame(as_json):
    ds, first, frames = annotated()
    source = JSONDataset(ds.to_json_dict()) if as_json else ds
    planes = overlay_planes(source, 1)
    assert [(p["group"], p["rows"], p["columns"], p["origin"], p["type"], p["label"]) for p in planes] == \
        [(0x6000, 5, 7, [2, -3], "G", "ruler")]
    assert unpacked(planes[0]) == first
    for frame in (2, 3):
        planes = overlay_planes(source, frame)
        assert [p["group"] for p in planes] == [0x6002]  # the one-frame plane lies over frame 1 only
        assert unpacked(planes[0]) == frames[frame - 2]
    assert overlay_planes(source, 4) == []


def test_a_short_plane_is_refused():
    ds, _, _ = annotated()
    ds[0x60003000].value = b"\x00\x00"
    with pytest.raises(DicomError, match="overlay 6000: Overlay Data holds 16 bits"):
        overlay_planes(ds)
