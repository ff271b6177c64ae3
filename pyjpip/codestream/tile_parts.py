"""Tile-parts (ISO/IEC 15444-1 A.4.2): SOT, the tile-part header, SOD and the body, located in the file.

Nothing is copied: a tile-part is a set of offsets into the buffer holding the codestream, which
may be an mmap of a file of any size.
"""

from __future__ import annotations

import logging

from dataclasses import dataclass, field

from pyjpip.codestream.markers import (
    HeaderSegments,
    MainHeader,
    Marker,
    read_header_segments,
    read_main_header,
    u16,
    u32,
)
from pyjpip.errors import CodestreamError


log = logging.getLogger(__name__)


@dataclass
class TilePart:
    """One tile-part: where its SOT, header segments, SOD and body are."""

    tile: int  # Isot
    part: int  # TPsot
    parts: int  # TNsot (0: not said)
    offset: int  # of the SOT marker
    header: HeaderSegments
    body_start: int  # just after SOD
    end: int  # end of the tile-part (Psot, or the codestream's end for Psot = 0)


@dataclass
class Codestream:
    """A whole codestream: its main header and every tile-part, in codestream order."""

    data: memoryview
    main: MainHeader
    tile_parts: list[TilePart]
    end: int  # offset of EOC, or of the end of the data when EOC is missing
    tiles: dict[int, list[TilePart]] = field(default_factory=dict)

    @property
    def size(self):
        return self.main.size


def read_codestream(data) -> Codestream:
    """Locate the main header and every tile-part; raise CodestreamError with the offset of anything wrong."""
    view = memoryview(data)
    main = read_main_header(view)
    size = main.size
    tile_count = size.tile_count
    components = len(size.components)
    limit = len(view)
    tile_parts: list[TilePart] = []
    tiles: dict[int, list[TilePart]] = {}
    position = main.length
    while True:
        if position == limit:
            end = limit  # no EOC: tolerated, the data simply ends after the last tile-part
            break
        if position + 2 > limit:
            raise CodestreamError("stray byte after the last tile-part", position)
        marker = u16(view, position)
        if marker == Marker.EOC:
            end = position
            break
        if marker != Marker.SOT:
            raise CodestreamError(f"expected SOT or EOC, found 0x{marker:04X}", position)
        if position + 12 > limit:
            raise CodestreamError("SOT marker segment is cut short", position)
        if u16(view, position + 2) != 10:
            raise CodestreamError(f"SOT has length {u16(view, position + 2)}, not 10", position)
        tile = u16(view, position + 4)
        psot = u32(view, position + 6)
        part, parts = view[position + 10], view[position + 11]
        if tile >= tile_count:
            raise CodestreamError(f"SOT names tile {tile} but the image has {tile_count}", position)
        previous = tiles.get(tile, [])
        if part != len(previous):
            raise CodestreamError(f"tile {tile}: tile-part {part} follows {len(previous)} tile-parts", position)
        if psot == 0:
            tile_end = limit - 2 if limit >= 2 and u16(view, limit - 2) == Marker.EOC else limit
        else:
            if psot < 14:
                raise CodestreamError(f"tile {tile}: Psot={psot} is shorter than SOT and SOD", position)
            tile_end = position + psot
            if tile_end > limit:
                raise CodestreamError(f"tile {tile} tile-part {part}: Psot={psot} runs past the end of the data "
                                      f"({limit - position} bytes left)", position)
        header = HeaderSegments()
        sod = read_header_segments(view, position + 12, tile_end, Marker.SOD, components, header, main=False)
        tile_part = TilePart(tile, part, parts, position, header, sod + 2, tile_end)
        tile_parts.append(tile_part)
        tiles.setdefault(tile, []).append(tile_part)
        position = tile_end
    for tile, parts in tiles.items():
        declared = parts[0].parts
        if declared and declared != len(parts):
            # GDCM writes such TNsot (pydicom's GDCMJ2K_TextGBR.dcm: 5 declared, 6 there) and decoders
            # read on; every tile-part has its own SOT, and a tile short of packets is caught by them.
            log.warning("tile %d declares %d tile-parts but has %d; taking the %d there", tile, declared,
                        len(parts), len(parts))
    return Codestream(view, main, tile_parts, end, tiles)
