"""Main-header marker segments of a JPEG 2000 codestream (ISO/IEC 15444-1 Annex A).

Only what the main header says about the whole image is read here: SIZ (A.5.1) and the default
coding style COD (A.6.1). The rest of the header is kept as located marker segments so later
stages (data-bins, rebuild) can address the bytes without copying them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from pyjpip.errors import CodestreamError


class Marker(IntEnum):
    """Marker codes, Table A.2."""

    SOC = 0xFF4F
    SOT = 0xFF90
    SOD = 0xFF93
    EOC = 0xFFD9
    SIZ = 0xFF51
    CAP = 0xFF50
    COD = 0xFF52
    COC = 0xFF53
    TLM = 0xFF55
    PRF = 0xFF56
    PLM = 0xFF57
    PLT = 0xFF58
    CPF = 0xFF59
    QCD = 0xFF5C
    QCC = 0xFF5D
    RGN = 0xFF5E
    POC = 0xFF5F
    PPM = 0xFF60
    PPT = 0xFF61
    CRG = 0xFF63
    COM = 0xFF64
    SOP = 0xFF91
    EPH = 0xFF92


class ProgressionOrder(IntEnum):
    """Progression order of SGcod, Table A.16."""

    LRCP = 0
    RLCP = 1
    RPCL = 2
    PCRL = 3
    CPRL = 4


_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"


@dataclass(frozen=True)
class MarkerSegment:
    """A marker segment located in the codestream: its code and where its bytes are."""

    marker: int
    offset: int  # of the marker code
    length: int  # Lxxx: the segment's length without the marker code

    @property
    def end(self) -> int:
        return self.offset + 2 + self.length


@dataclass(frozen=True)
class ComponentSize:
    """Per-component fields of SIZ: Ssiz (precision and sign), XRsiz, YRsiz."""

    precision: int
    signed: bool
    x_subsampling: int
    y_subsampling: int


@dataclass(frozen=True)
class ImageAndTileSize:
    """The SIZ marker segment (A.5.1): reference grid, tiling and components."""

    capabilities: int  # Rsiz
    x_size: int  # Xsiz
    y_size: int  # Ysiz
    x_offset: int  # XOsiz
    y_offset: int  # YOsiz
    tile_width: int  # XTsiz
    tile_height: int  # YTsiz
    tile_x_offset: int  # XTOsiz
    tile_y_offset: int  # YTOsiz
    components: tuple[ComponentSize, ...]

    @property
    def width(self) -> int:
        return self.x_size - self.x_offset

    @property
    def height(self) -> int:
        return self.y_size - self.y_offset

    @property
    def tiles_across(self) -> int:
        return _ceil_div(self.x_size - self.tile_x_offset, self.tile_width)

    @property
    def tiles_down(self) -> int:
        return _ceil_div(self.y_size - self.tile_y_offset, self.tile_height)

    def component_size(self, component: int = 0, reduction: int = 0) -> tuple[int, int]:
        """Width and height of a component after discarding ``reduction`` resolution levels (B.2, B.5)."""
        c = self.components[component]
        scale = 1 << reduction
        x0 = _ceil_div(_ceil_div(self.x_offset, c.x_subsampling), scale)
        x1 = _ceil_div(_ceil_div(self.x_size, c.x_subsampling), scale)
        y0 = _ceil_div(_ceil_div(self.y_offset, c.y_subsampling), scale)
        y1 = _ceil_div(_ceil_div(self.y_size, c.y_subsampling), scale)
        return x1 - x0, y1 - y0


@dataclass(frozen=True)
class CodingStyle:
    """The default coding style, COD (A.6.1)."""

    progression_order: ProgressionOrder
    layers: int
    multiple_component_transform: int
    decomposition_levels: int
    code_block_width: int
    code_block_height: int
    code_block_style: int
    reversible: bool  # 5-3 reversible wavelet (True) or 9-7 irreversible
    precinct_sizes: tuple[tuple[int, int], ...] | None  # (width, height) per resolution level, lowest first; None = maximal
    uses_sop: bool
    uses_eph: bool


@dataclass(frozen=True)
class MainHeader:
    """What the main header holds, and where each of its marker segments lies."""

    size: ImageAndTileSize
    coding_style: CodingStyle
    segments: tuple[MarkerSegment, ...]
    length: int  # bytes from SOC up to (not including) the first SOT

    @property
    def high_throughput(self) -> bool:
        """Whether the codestream uses HTJ2K block coding (15444-15: Rsiz bit 14 and a CAP segment)."""
        return bool(self.size.capabilities & 0x4000)


def read_main_header(data: bytes | memoryview) -> MainHeader:
    """Parse the main header of a raw codestream (SOC ... up to the first SOT)."""
    view = memoryview(data)
    if bytes(view[:12]) == _JP2_SIGNATURE:
        raise CodestreamError("this is a JP2-family file, not a raw codestream; pass its contiguous codestream box")
    if len(view) < 2 or _u16(view, 0) != Marker.SOC:
        raise CodestreamError("no SOC marker: not a JPEG 2000 codestream", 0)
    segments: list[MarkerSegment] = []
    size: ImageAndTileSize | None = None
    coding_style: CodingStyle | None = None
    position = 2
    while True:
        if position + 2 > len(view):
            raise CodestreamError("main header ends before the first SOT marker", position)
        marker = _u16(view, position)
        if marker == Marker.SOT:
            break
        if marker >> 8 != 0xFF or marker < 0xFF30:
            raise CodestreamError(f"expected a marker, found 0x{marker:04X}", position)
        if marker <= 0xFF3F:  # reserved markers with no marker segment (Table A.1): skip
            position += 2
            continue
        if position + 4 > len(view):
            raise CodestreamError(f"marker segment 0x{marker:04X} is cut short", position)
        length = _u16(view, position + 2)
        if length < 2 or position + 2 + length > len(view):
            raise CodestreamError(f"marker segment 0x{marker:04X} has an impossible length {length}", position)
        segment = MarkerSegment(marker, position, length)
        body = view[position + 4 : segment.end]
        if not segments and marker != Marker.SIZ:
            raise CodestreamError("SIZ must be the first marker segment after SOC (A.5.1)", position)
        if marker == Marker.SIZ:
            size = _read_siz(body, position)
        elif marker == Marker.COD:
            coding_style = _read_cod(body, position)
        segments.append(segment)
        position = segment.end
    if size is None:
        raise CodestreamError("main header has no SIZ marker segment", 2)
    if coding_style is None:
        raise CodestreamError("main header has no COD marker segment", 2)
    return MainHeader(size, coding_style, tuple(segments), position)


def _read_siz(body: memoryview, offset: int) -> ImageAndTileSize:
    if len(body) < 36:
        raise CodestreamError("SIZ marker segment is too short", offset)
    (rsiz, xsiz, ysiz, xosiz, yosiz, xtsiz, ytsiz, xtosiz, ytosiz, csiz) = struct.unpack_from(">H8IH", body, 0)
    if len(body) != 36 + 3 * csiz:
        raise CodestreamError(f"SIZ length {len(body) + 2} does not match Csiz={csiz}", offset)
    if csiz == 0:
        raise CodestreamError("SIZ has no components (Csiz=0)", offset)
    if xsiz <= xosiz or ysiz <= yosiz or xtsiz == 0 or ytsiz == 0:
        raise CodestreamError(f"SIZ describes an empty image or tile ({xsiz}x{ysiz}, tiles {xtsiz}x{ytsiz})", offset)
    if xtosiz > xosiz or ytosiz > yosiz or xtosiz + xtsiz <= xosiz or ytosiz + ytsiz <= yosiz:
        raise CodestreamError("SIZ tile offsets violate the constraints of equation A-3", offset)
    components = []
    for c in range(csiz):
        ssiz, xr, yr = struct.unpack_from(">BBB", body, 36 + 3 * c)
        if xr == 0 or yr == 0:
            raise CodestreamError(f"SIZ component {c} has zero subsampling", offset)
        components.append(ComponentSize((ssiz & 0x7F) + 1, bool(ssiz & 0x80), xr, yr))
    return ImageAndTileSize(rsiz, xsiz, ysiz, xosiz, yosiz, xtsiz, ytsiz, xtosiz, ytosiz, tuple(components))


def _read_cod(body: memoryview, offset: int) -> CodingStyle:
    if len(body) < 10:
        raise CodestreamError("COD marker segment is too short", offset)
    scod, order, layers, mct, levels, xcb, ycb, style, transform = struct.unpack_from(">BBHBBBBBB", body, 0)
    if order > 4:
        raise CodestreamError(f"COD has an unknown progression order {order}", offset)
    if levels > 32:
        raise CodestreamError(f"COD has {levels} decomposition levels; at most 32 are allowed", offset)
    if layers == 0:
        raise CodestreamError("COD has zero quality layers", offset)
    precincts = None
    if scod & 0x01:
        if len(body) != 10 + levels + 1:
            raise CodestreamError("COD precinct sizes do not match the number of resolution levels", offset)
        precincts = tuple((1 << (b & 0x0F), 1 << (b >> 4)) for b in body[10:])
    elif len(body) != 10:
        raise CodestreamError(f"COD length {len(body) + 2} is wrong for maximal precincts", offset)
    return CodingStyle(
        progression_order=ProgressionOrder(order),
        layers=layers,
        multiple_component_transform=mct,
        decomposition_levels=levels,
        code_block_width=1 << (xcb + 2),
        code_block_height=1 << (ycb + 2),
        code_block_style=style,
        reversible=transform == 1,
        precinct_sizes=precincts,
        uses_sop=bool(scod & 0x02),
        uses_eph=bool(scod & 0x04),
    )


def _u16(view: memoryview, offset: int) -> int:
    return (view[offset] << 8) | view[offset + 1]


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)
