"""pyjpip.codestream.quantization against the standard's formulas worked out here: Mb = G + ε_b - 1
(15444-1 Eq. E-2), exponents derived from the LL band's (Eq. E-5), the precedence of tile-part
QCC > tile-part QCD > main QCC > main QCD (A.6.4, A.6.5), and an RGN max-shift added (A.6.3)."""

import struct

import pytest

from pyjpip.codestream.markers import HeaderSegments, Marker, MarkerSegment
from pyjpip.codestream.quantization import magnitude_bits, read_quantization, subband_number
from pyjpip.errors import CodestreamError


def no_quantization(guard: int, exponents: list[int]) -> bytes:
    return bytes([guard << 5]) + bytes(e << 3 for e in exponents)


def expounded(guard: int, exponents: list[int]) -> bytes:
    return bytes([(guard << 5) | 2]) + b"".join(struct.pack(">H", (e << 11) | 1000) for e in exponents)


def test_no_quantization_gives_each_subbands_exponent():
    q = read_quantization(no_quantization(2, [8, 9, 9, 10, 9, 9, 10]), 0, "QCD")
    assert q.magnitude_bits(2) == (9, 10, 10, 11, 10, 10, 11)


def test_scalar_derived_exponents_follow_the_decomposition_level():
    body = bytes([(1 << 5) | 1]) + struct.pack(">H", (13 << 11) | 5)
    # NL = 3: LL and the level-3 bands have ε0 = 13, level 2 has 12, level 1 has 11 (E-5); G = 1
    assert read_quantization(body, 0, "QCD").magnitude_bits(3) == (13,) + (13,) * 3 + (12,) * 3 + (11,) * 3


def test_scalar_expounded_and_too_few_exponents():
    q = read_quantization(expounded(3, [10, 11, 11, 12]), 0, "QCD")
    assert q.magnitude_bits(1) == (12, 13, 13, 14)
    with pytest.raises(CodestreamError, match="4 subband exponents for 2 decomposition levels"):
        q.magnitude_bits(2)
    with pytest.raises(CodestreamError, match="unknown quantization style 3"):
        read_quantization(bytes([3, 0, 0]), 7, "QCC")


def test_subband_numbers_follow_qcd_order():
    assert [subband_number(0, 0)] + [subband_number(r, o) for r in (1, 2) for o in (1, 2, 3)] == list(range(7))


def header(data: bytearray, *segments: tuple[int, bytes]) -> HeaderSegments:
    """A header whose segments are appended to ``data``."""
    found = HeaderSegments()
    for marker, body in segments:
        found.segments.append(MarkerSegment(marker, len(data), len(body) + 2))
        data += struct.pack(">HH", marker, len(body) + 2) + body
    return found


def test_tile_part_qcc_over_tile_qcd_over_main_qcc_over_main_qcd_and_rgn():
    data = bytearray()
    main = header(data, (Marker.QCD, no_quantization(1, [5, 6, 6, 7])),
                  (Marker.QCC, bytes([1]) + no_quantization(2, [8, 8, 8, 8])),
                  (Marker.RGN, bytes([2, 0, 4])))
    tile = header(data, (Marker.QCD, no_quantization(3, [1, 1, 1, 1])),
                  (Marker.QCC, bytes([2]) + no_quantization(0, [9, 9, 9, 9])),
                  (Marker.RGN, bytes([0, 0, 6])))
    data = bytes(data)
    assert magnitude_bits(data, main, None, 0, 3, 1) == (5, 6, 6, 7)  # main QCD
    assert magnitude_bits(data, main, None, 1, 3, 1) == (9, 9, 9, 9)  # main QCC
    assert magnitude_bits(data, main, None, 2, 3, 1) == (5 + 4, 6 + 4, 6 + 4, 7 + 4)  # main RGN shift 4
    assert magnitude_bits(data, main, tile, 0, 3, 1) == (3 + 6,) * 4  # tile QCD, tile RGN shift 6
    assert magnitude_bits(data, main, tile, 1, 3, 1) == (3,) * 4  # tile QCD beats main QCC
    assert magnitude_bits(data, main, tile, 2, 3, 1) == (8 + 4,) * 4  # tile QCC; main RGN still in force
