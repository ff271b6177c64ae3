"""Marker segments of a JPEG 2000 codestream (ISO/IEC 15444-1 Annex A; 15444-15 A.2 for CAP/CPF).

Headers are read into plain objects; every segment is also kept as a located byte range so the
data-bin and rebuild stages can address the file's bytes without copying them. Bulky segments
(PLT, PLM, PPM, PPT, TLM) are located here and decoded by the stages that need them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum

from pyjpip.errors import CodestreamError


class Marker(IntEnum):
    """Marker codes, Table A.2 (and 15444-15 for CAP/CPF)."""

    SOC = 0xFF4F
    CAP = 0xFF50
    SIZ = 0xFF51
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
    SOT = 0xFF90
    SOP = 0xFF91
    EPH = 0xFF92
    SOD = 0xFF93
    EOC = 0xFFD9


class ProgressionOrder(IntEnum):
    """Progression order of SGcod and Ppoc, Table A.16."""

    LRCP = 0
    RLCP = 1
    RPCL = 2
    PCRL = 3
    CPRL = 4


#: Code-block style bits, Table A.19 (bit 6 is the HT block coder of 15444-15).
CODE_BLOCK_BYPASS = 0x01
CODE_BLOCK_RESET = 0x02
CODE_BLOCK_TERMINATE_EACH_PASS = 0x04
CODE_BLOCK_VERTICAL_CAUSAL = 0x08
CODE_BLOCK_PREDICTABLE_TERMINATION = 0x10
CODE_BLOCK_SEGMENTATION_SYMBOLS = 0x20
CODE_BLOCK_HIGH_THROUGHPUT = 0x40

_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
#: Segments allowed in a tile-part header (A.4.2 and Table A.3).
_TILE_PART_SEGMENTS = {Marker.COD, Marker.COC, Marker.QCD, Marker.QCC, Marker.RGN, Marker.POC,
                       Marker.PPT, Marker.PLT, Marker.COM}


@dataclass(frozen=True)
class MarkerSegment:
    """A marker segment located in the codestream: its code and where its bytes are."""

    marker: int
    offset: int  # of the marker code
    length: int  # Lxxx: the segment's length without the marker code

    @property
    def end(self) -> int:
        return self.offset + 2 + self.length

    @property
    def body(self) -> tuple[int, int]:
        """Start and end of the parameters after Lxxx."""
        return self.offset + 4, self.end


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
        return ceil_div(self.x_size - self.tile_x_offset, self.tile_width)

    @property
    def tiles_down(self) -> int:
        return ceil_div(self.y_size - self.tile_y_offset, self.tile_height)

    @property
    def tile_count(self) -> int:
        return self.tiles_across * self.tiles_down

    def component_size(self, component: int = 0, reduction: int = 0) -> tuple[int, int]:
        """Width and height of a component after discarding ``reduction`` resolution levels (B.2, B.5)."""
        c = self.components[component]
        scale = 1 << reduction
        x0 = ceil_div(ceil_div(self.x_offset, c.x_subsampling), scale)
        x1 = ceil_div(ceil_div(self.x_size, c.x_subsampling), scale)
        y0 = ceil_div(ceil_div(self.y_offset, c.y_subsampling), scale)
        y1 = ceil_div(ceil_div(self.y_size, c.y_subsampling), scale)
        return x1 - x0, y1 - y0


@dataclass(frozen=True)
class ComponentCodingStyle:
    """SPcod / SPcoc (A.6.1, A.6.2): how one tile-component is transformed and partitioned."""

    decomposition_levels: int
    code_block_width_exponent: int  # xcb: code-blocks are 2**xcb wide
    code_block_height_exponent: int
    code_block_style: int
    reversible: bool  # 5-3 reversible wavelet (True) or 9-7 irreversible
    precinct_exponents: tuple[tuple[int, int], ...]  # (PPx, PPy) per resolution, lowest first
    explicit_precincts: bool

    @property
    def code_block_width(self) -> int:
        return 1 << self.code_block_width_exponent

    @property
    def code_block_height(self) -> int:
        return 1 << self.code_block_height_exponent

    @property
    def high_throughput(self) -> bool:
        return bool(self.code_block_style & CODE_BLOCK_HIGH_THROUGHPUT)


@dataclass(frozen=True)
class CodingStyle:
    """The coding style default, COD (A.6.1): progression, layers and the default component style."""

    progression_order: ProgressionOrder
    layers: int
    multiple_component_transform: int
    uses_sop: bool
    uses_eph: bool
    component: ComponentCodingStyle

    @property
    def decomposition_levels(self) -> int:
        return self.component.decomposition_levels

    @property
    def code_block_width(self) -> int:
        return self.component.code_block_width

    @property
    def code_block_height(self) -> int:
        return self.component.code_block_height

    @property
    def code_block_style(self) -> int:
        return self.component.code_block_style

    @property
    def reversible(self) -> bool:
        return self.component.reversible

    @property
    def precinct_sizes(self) -> tuple[tuple[int, int], ...] | None:
        """(width, height) per resolution level, lowest first; None for maximal precincts."""
        if not self.component.explicit_precincts:
            return None
        return tuple((1 << x, 1 << y) for x, y in self.component.precinct_exponents)


@dataclass(frozen=True)
class ProgressionChange:
    """One progression of a POC marker segment (A.6.6): a bounded volume in a progression order."""

    resolution_start: int
    component_start: int
    layer_end: int
    resolution_end: int
    component_end: int
    order: ProgressionOrder


@dataclass
class HeaderSegments:
    """What a main or tile-part header holds: parsed coding parameters and located segments."""

    segments: list[MarkerSegment] = field(default_factory=list)
    coding_style: CodingStyle | None = None  # COD
    component_styles: dict[int, ComponentCodingStyle] = field(default_factory=dict)  # COC by component
    progression_changes: list[ProgressionChange] = field(default_factory=list)  # POC, in order
    packed_headers: list[tuple[int, MarkerSegment]] = field(default_factory=list)  # (Zppm/Zppt, segment)
    packet_lengths: list[tuple[int, MarkerSegment]] = field(default_factory=list)  # (Zplt/Zplm, segment)
    capabilities: MarkerSegment | None = None  # CAP

    def of(self, marker: int) -> list[MarkerSegment]:
        return [s for s in self.segments if s.marker == marker]


@dataclass(frozen=True)
class MainHeader:
    """The main header (SOC up to the first SOT) and what it says about the whole codestream."""

    size: ImageAndTileSize
    coding_style: CodingStyle
    header: HeaderSegments
    length: int  # bytes from SOC up to (not including) the first SOT

    @property
    def segments(self) -> tuple[MarkerSegment, ...]:
        return tuple(self.header.segments)

    @property
    def high_throughput(self) -> bool:
        """Whether HTJ2K block coding is used (15444-15: Rsiz bit 14 with a CAP segment)."""
        return bool(self.size.capabilities & 0x4000) or self.header.capabilities is not None

    def component_style(self, component: int) -> ComponentCodingStyle:
        """The main header's style for a component: COC if there is one, else COD's."""
        return self.header.component_styles.get(component, self.coding_style.component)


def read_main_header(data: bytes | memoryview) -> MainHeader:
    """Parse the main header of a raw codestream (SOC ... up to the first SOT)."""
    view = memoryview(data)
    if bytes(view[:12]) == _JP2_SIGNATURE:
        raise CodestreamError("this is a JP2-family file, not a raw codestream; pass its contiguous codestream box")
    if len(view) < 2 or u16(view, 0) != Marker.SOC:
        raise CodestreamError("no SOC marker: not a JPEG 2000 codestream", 0)
    if len(view) < 4:
        raise CodestreamError("main header ends before the first SOT marker", 2)
    if view[2] != 0xFF:
        raise CodestreamError(f"expected a marker, found 0x{u16(view, 2):04X}", 2)
    if u16(view, 2) != Marker.SIZ:
        raise CodestreamError("SIZ must be the first marker segment after SOC (A.5.1)", 2)
    siz = _segment_at(view, 2, len(view))
    size = _read_siz(view[siz.offset + 4 : siz.end], siz.offset)
    header = HeaderSegments(segments=[siz])
    end = read_header_segments(view, siz.end, len(view), Marker.SOT, len(size.components), header, main=True)
    if header.coding_style is None:
        raise CodestreamError("main header has no COD marker segment", 2)
    if not any(s.marker == Marker.QCD for s in header.segments):
        raise CodestreamError("main header has no QCD marker segment", 2)
    return MainHeader(size, header.coding_style, header, end)


def read_header_segments(view: memoryview, position: int, limit: int, terminator: int, components: int,
                         header: HeaderSegments, main: bool) -> int:
    """Read marker segments from ``position`` until ``terminator`` (SOT for the main header, SOD for a
    tile-part header), filling ``header``. Returns the offset of the terminator."""
    while True:
        if position + 2 > limit:
            where = "main header ends before the first SOT" if main else "tile-part header ends before its SOD"
            raise CodestreamError(f"{where} marker", position)
        marker = u16(view, position)
        if marker == terminator:
            return position
        if marker >> 8 != 0xFF or marker < 0xFF30:
            raise CodestreamError(f"expected a marker, found 0x{marker:04X}", position)
        if marker <= 0xFF3F:  # reserved markers without a segment (Table A.1): skip
            position += 2
            continue
        segment = _segment_at(view, position, limit)
        body = view[segment.offset + 4 : segment.end]
        if not main and marker not in _TILE_PART_SEGMENTS:
            if marker in (Marker.SOT, Marker.EOC, Marker.SOC, Marker.SIZ):
                raise CodestreamError(f"{_name(marker)} inside a tile-part header", position)
        if marker == Marker.SIZ:
            raise CodestreamError("a second SIZ marker segment", position)
        if marker == Marker.COD:
            if header.coding_style is not None:
                raise CodestreamError("a second COD marker segment in one header", position)
            header.coding_style = _read_cod(body, position)
        elif marker == Marker.COC:
            component, style = _read_coc(body, position, components)
            header.component_styles[component] = style
        elif marker == Marker.POC:
            header.progression_changes.extend(_read_poc(body, position, components))
        elif marker in (Marker.PPM, Marker.PPT):
            if (marker == Marker.PPM) != main:
                raise CodestreamError(f"{_name(marker)} is not allowed in this header", position)
            if len(body) < 1:
                raise CodestreamError(f"{_name(marker)} marker segment is too short", position)
            header.packed_headers.append((body[0], segment))
        elif marker in (Marker.PLT, Marker.PLM):
            if (marker == Marker.PLM) != main:
                raise CodestreamError(f"{_name(marker)} is not allowed in this header", position)
            if len(body) < 1:
                raise CodestreamError(f"{_name(marker)} marker segment is too short", position)
            header.packet_lengths.append((body[0], segment))
        elif marker == Marker.CAP:
            header.capabilities = segment
        header.segments.append(segment)
        position = segment.end


def _segment_at(view: memoryview, position: int, limit: int) -> MarkerSegment:
    marker = u16(view, position)
    if position + 4 > limit:
        raise CodestreamError(f"{_name(marker)} marker segment is cut short", position)
    length = u16(view, position + 2)
    if length < 2 or position + 2 + length > limit:
        raise CodestreamError(f"{_name(marker)} marker segment has an impossible length {length}", position)
    return MarkerSegment(marker, position, length)


def _name(marker: int) -> str:
    try:
        return Marker(marker).name
    except ValueError:
        return f"0x{marker:04X}"


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
    tiles = ceil_div(xsiz - xtosiz, xtsiz) * ceil_div(ysiz - ytosiz, ytsiz)
    if tiles > 65535:
        raise CodestreamError(f"SIZ gives {tiles} tiles; at most 65535 are allowed (Isot)", offset)
    components = []
    for c in range(csiz):
        ssiz, xr, yr = struct.unpack_from(">BBB", body, 36 + 3 * c)
        if xr == 0 or yr == 0:
            raise CodestreamError(f"SIZ component {c} has zero subsampling", offset)
        if (ssiz & 0x7F) > 37:
            raise CodestreamError(f"SIZ component {c} has precision {(ssiz & 0x7F) + 1}; at most 38 is allowed", offset)
        components.append(ComponentSize((ssiz & 0x7F) + 1, bool(ssiz & 0x80), xr, yr))
    return ImageAndTileSize(rsiz, xsiz, ysiz, xosiz, yosiz, xtsiz, ytsiz, xtosiz, ytosiz, tuple(components))


def _read_component_style(body: memoryview, start: int, explicit_precincts: bool, offset: int, name: str
                          ) -> ComponentCodingStyle:
    if len(body) < start + 5:
        raise CodestreamError(f"{name} marker segment is too short", offset)
    levels, xcb, ycb, style, transform = body[start : start + 5]
    if levels > 32:
        raise CodestreamError(f"{name} has {levels} decomposition levels; at most 32 are allowed", offset)
    xcb, ycb = xcb + 2, ycb + 2
    if xcb > 10 or ycb > 10 or xcb + ycb > 12:
        raise CodestreamError(f"{name} code-block size 2^{xcb} x 2^{ycb} is not allowed (A.6.1)", offset)
    if transform > 1:
        raise CodestreamError(f"{name} has an unknown wavelet transform {transform}", offset)
    rest = body[start + 5 :]
    if explicit_precincts:
        if len(rest) != levels + 1:
            raise CodestreamError(f"{name} precinct sizes do not match the number of resolution levels", offset)
        precincts = tuple((b & 0x0F, b >> 4) for b in rest)
        for r, (ppx, ppy) in enumerate(precincts):
            if r > 0 and (ppx == 0 or ppy == 0):
                raise CodestreamError(f"{name} precinct exponent 0 at resolution {r} (only allowed at 0)", offset)
    else:
        if len(rest) != 0:
            raise CodestreamError(f"{name} length is wrong for maximal precincts", offset)
        precincts = ((15, 15),) * (levels + 1)
    return ComponentCodingStyle(levels, xcb, ycb, style, transform == 1, precincts, explicit_precincts)


def _read_cod(body: memoryview, offset: int) -> CodingStyle:
    if len(body) < 10:
        raise CodestreamError("COD marker segment is too short", offset)
    scod, order, layers, mct = struct.unpack_from(">BBHB", body, 0)
    if order > 4:
        raise CodestreamError(f"COD has an unknown progression order {order}", offset)
    if layers == 0:
        raise CodestreamError("COD has zero quality layers", offset)
    component = _read_component_style(body, 5, bool(scod & 0x01), offset, "COD")
    return CodingStyle(ProgressionOrder(order), layers, mct, bool(scod & 0x02), bool(scod & 0x04), component)


def _read_coc(body: memoryview, offset: int, components: int) -> tuple[int, ComponentCodingStyle]:
    wide = components >= 257
    if len(body) < (2 if wide else 1) + 1:
        raise CodestreamError("COC marker segment is too short", offset)
    component = u16(body, 0) if wide else body[0]
    if component >= components:
        raise CodestreamError(f"COC names component {component} of {components}", offset)
    start = 2 if wide else 1
    scoc = body[start]
    return component, _read_component_style(body, start + 1, bool(scoc & 0x01), offset, "COC")


def _read_poc(body: memoryview, offset: int, components: int) -> list[ProgressionChange]:
    entry = 9 if components >= 257 else 7
    if len(body) == 0 or len(body) % entry:
        raise CodestreamError("POC marker segment length is not a whole number of progressions", offset)
    changes = []
    for start in range(0, len(body), entry):
        if entry == 7:
            rs, cs, lye, re, ce, order = struct.unpack_from(">BBHBBB", body, start)
            ce = 256 if ce == 0 else ce
        else:
            rs, cs, lye, re, ce, order = struct.unpack_from(">BHHBHB", body, start)
            ce = 16384 if ce == 0 else ce
        if order > 4:
            raise CodestreamError(f"POC has an unknown progression order {order}", offset)
        changes.append(ProgressionChange(rs, cs, lye, re, min(ce, components), ProgressionOrder(order)))
    return changes


def u16(view, offset: int) -> int:
    return (view[offset] << 8) | view[offset + 1]


def u32(view, offset: int) -> int:
    return (view[offset] << 24) | (view[offset + 1] << 16) | (view[offset + 2] << 8) | view[offset + 3]


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)
