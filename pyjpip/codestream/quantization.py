"""How many magnitude bit-planes each subband has (ISO/IEC 15444-1 A.6.3 RGN, A.6.4 QCD, A.6.5 QCC, E.1).

Mb = G + ε_b − 1 (Eq. E-2): G guard bits and the exponent ε_b of subband b, signalled for every
subband (no quantization, scalar expounded) or derived from the LL band's (scalar derived,
Eq. E-5: ε_b = ε_0 − NL + n_b). An ROI with the max-shift method (RGN) adds its shift to every
code-block's bit-planes (Annex H). The quantization in force for a tile-component is the first of
tile-part QCC, tile-part QCD, main QCC, main QCD that exists (A.6.4, A.6.5); RGN in a tile-part
header overrides the main header's.

A code-block whose first packet header said it lacks P of them (zero bit-planes, B.10.5) has
Mb − P bit-planes to code: a cleanup pass on the first, three passes on each below (D.3), so at most
3·(Mb − P) − 2 coding passes. Packet headers that say more were not packet headers: packet_index
uses this to tell two readings of a codestream apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyjpip.codestream.markers import HeaderSegments, Marker, u16
from pyjpip.errors import CodestreamError

NO_QUANTIZATION, SCALAR_DERIVED, SCALAR_EXPOUNDED = 0, 1, 2


@dataclass(frozen=True)
class Quantization:
    """Sqcd/Sqcc and the exponents of SPqcd/SPqcc (Tables A.28–A.30), in QCD subband order:
    LL, then HL, LH, HH of each decomposition level from the coarsest."""

    style: int
    guard_bits: int
    exponents: tuple[int, ...]

    def magnitude_bits(self, levels: int) -> tuple[int, ...]:
        """Mb of every subband of a tile-component with ``levels`` decomposition levels (E-2, E-5)."""
        count = 1 + 3 * levels
        if self.style == SCALAR_DERIVED:
            base = self.exponents[0]
            exponents = [base] + [base - levels + n for n in range(levels, 0, -1) for _ in range(3)]
        else:
            if len(self.exponents) < count:
                raise CodestreamError(f"quantization gives {len(self.exponents)} subband exponents for "
                                      f"{levels} decomposition levels ({count} subbands)")
            exponents = self.exponents[:count]
        return tuple(self.guard_bits + e - 1 for e in exponents)


def read_quantization(body, offset: int, name: str) -> Quantization:
    """Sqcd and SPqcd (or Sqcc and SPqcc once Cqcc is skipped), A.6.4."""
    if len(body) < 2:
        raise CodestreamError(f"{name} marker segment is too short", offset)
    style, guard_bits = body[0] & 0x1F, body[0] >> 5
    rest = body[1:]
    if style == NO_QUANTIZATION:
        exponents = tuple(b >> 3 for b in rest)
    elif style in (SCALAR_DERIVED, SCALAR_EXPOUNDED):
        if len(rest) % 2 or (style == SCALAR_DERIVED and len(rest) != 2):
            raise CodestreamError(f"{name} marker segment has {len(rest)} bytes of step sizes", offset)
        exponents = tuple(u16(rest, i) >> 11 for i in range(0, len(rest), 2))
    else:
        raise CodestreamError(f"{name} has an unknown quantization style {style}", offset)
    return Quantization(style, guard_bits, exponents)


def _component_of(body, components: int) -> tuple[int, int]:
    """Cqcc / Crgn (8 bits, 16 when Csiz >= 257) and where the rest starts."""
    return (u16(body, 0), 2) if components >= 257 else (body[0], 1)


def _parameters(data, header: HeaderSegments, component: int, components: int):
    """A header's quantization for a component (its QCC, else its QCD, else None) and ROI shift (or None)."""
    default = specific = shift = None
    for segment in header.segments:
        if segment.marker not in (Marker.QCD, Marker.QCC, Marker.RGN):
            continue
        body = data[segment.offset + 4 : segment.end]
        if segment.marker == Marker.QCD:
            default = read_quantization(body, segment.offset, "QCD")
            continue
        if len(body) < 3:
            raise CodestreamError(f"{'QCC' if segment.marker == Marker.QCC else 'RGN'} marker segment is too short",
                                  segment.offset)
        named, start = _component_of(body, components)
        if named != component:
            continue
        if segment.marker == Marker.QCC:
            specific = read_quantization(body[start:], segment.offset, "QCC")
        else:  # RGN: Srgn 0 is the max-shift method, SPrgn its shift (A.6.3, Table A.25)
            shift = body[start + 1]
    return specific or default, shift


def magnitude_bits(data, main: HeaderSegments, tile: HeaderSegments | None, component: int, components: int,
                   levels: int) -> tuple[int, ...]:
    """Mb plus the ROI shift for every subband of one tile-component, in QCD subband order."""
    quantization, shift = _parameters(data, main, component, components)
    if tile is not None:
        tile_quantization, tile_shift = _parameters(data, tile, component, components)
        quantization = tile_quantization or quantization
        shift = tile_shift if tile_shift is not None else shift
    if quantization is None:
        raise CodestreamError(f"no QCD or QCC for component {component}")
    return tuple(m + (shift or 0) for m in quantization.magnitude_bits(levels))


def subband_number(resolution: int, orientation: int) -> int:
    """The subband's place in QCD order: LL is 0; HL, LH, HH (orientation 1–3) of resolution r > 0
    follow those of the coarser resolutions."""
    return 0 if resolution == 0 else 3 * (resolution - 1) + orientation
