"""Re-packetizing: a codestream's code-blocks, byte for byte, in new precincts, order and markers.

A packet (15444-1 B.9, B.10) is a header that says which code-blocks of one precinct add which
coding passes, followed by those passes' bytes. Precincts only group code-blocks (B.6, B.7), so
the same code-block bytes can be regrouped into other precincts and another progression with
newly written packet headers, and decode to exactly the same samples: nothing is decoded, lossy
stays lossy, Part 1 and HTJ2K alike (Kakadu's kdu_transcode does this). What a JPIP server needs
is written here: precincts of 128 x 128 at every resolution (or the smallest that hold a source's
code-blocks), RPCL, one tile-part per tile (none for a tile without samples:
geometry.Tile.has_samples), PLT and TLM, no SOP/EPH, POC, PPM or PPT.

Code-blocks keep their size: a code-block is never larger than its precinct allows (xcb' =
min(xcb, PPx - 1), B.7), so new precincts are chosen no smaller than the code-blocks already are.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass, replace

from pyjpip.codestream.geometry import Tile, make_tile
from pyjpip.codestream.markers import ComponentCodingStyle, Marker, ProgressionOrder
from pyjpip.codestream.packet_header import (
    BitReader,
    Contribution,
    PrecinctState,
    PrecinctWriter,
    read_packet_header,
)
from pyjpip.codestream.packet_index import CodestreamIndex, index_codestream, tile_styles
from pyjpip.codestream.progression import packet_order, written_order
from pyjpip.codestream.tile_parts import read_codestream
from pyjpip.errors import CodestreamError

log = logging.getLogger(__name__)

#: 2^7 = 128: precincts a viewer's 256-pixel-ish tiles of screen map onto well (PS3.5 10.18 too).
PRECINCT_EXPONENT = 7
_REWRITTEN = {Marker.COD, Marker.COC}
_DROPPED = {Marker.POC, Marker.PPM, Marker.PPT, Marker.PLT, Marker.PLM, Marker.TLM}
_MAXIMUM_PLT_BODY = 65535 - 3  # Lplt is 16 bits and counts itself and Zplt


@dataclass
class Repacketized:
    codestream: bytes
    order: ProgressionOrder
    precinct_exponents: tuple[tuple[int, int], ...]  # of the main COD, lowest resolution first
    packets: int


def precincts_for(style: ComponentCodingStyle, exponent: int = PRECINCT_EXPONENT) -> ComponentCodingStyle:
    """The style with precincts of 2^exponent, or the smallest larger ones that keep every
    resolution's code-blocks the size they are (B.7)."""
    effective = []
    for r, (ppx, ppy) in enumerate(style.precinct_exponents):
        shift = 1 if r else 0
        effective.append((min(style.code_block_width_exponent, ppx - shift),
                          min(style.code_block_height_exponent, ppy - shift)))
    xcb = max(2, max(x for x, _ in effective))  # SPcod cannot say less than 2^2 (A.6.1): precincts limit it
    ycb = max(2, max(y for _, y in effective))
    precincts = []
    for r, (ex, ey) in enumerate(effective):
        shift = 1 if r else 0
        # A resolution whose code-blocks its precincts limited keeps exactly that limit.
        ppx = max(exponent, xcb + shift) if ex == xcb else ex + shift
        ppy = max(exponent, ycb + shift) if ey == ycb else ey + shift
        precincts.append((min(ppx, 15), min(ppy, 15)))
    return replace(style, code_block_width_exponent=xcb, code_block_height_exponent=ycb,
                   precinct_exponents=tuple(precincts), explicit_precincts=True)


def repacketize(data: bytes, exponent: int = PRECINCT_EXPONENT, index: CodestreamIndex | None = None) -> Repacketized:
    """Rewrite a raw codestream's packets (see the module docstring); raises CodestreamError.
    ``index`` is the codestream's packet index when the caller has it already."""
    index = index or index_codestream(read_codestream(data))
    codestream = index.codestream
    main = codestream.main
    size = codestream.size
    order = written_order(size)
    view = codestream.data
    tile_parts_out = []
    packets_written = 0
    for tile_index in index.tiles:
        t = tile_index.tile.index
        if not tile_index.tile.has_samples():
            continue  # no packets to carry; a tile-part for it would not decode in OpenJPEG
        parts = codestream.tiles.get(t, [])
        first = parts[0].header if parts else None
        coding, styles = tile_styles(main, first)
        new_coding = replace(coding, progression_order=order, uses_sop=False, uses_eph=False,
                             component=precincts_for(coding.component, exponent))
        new_styles = [precincts_for(s, exponent) for s in styles]
        new_tile = make_tile(size, t, new_coding, new_styles)
        blocks = _code_block_contributions(view, tile_index.tile, tile_index.precincts)
        packets, placed = {}, 0
        for tc in new_tile.components:
            for res in tc.resolutions:
                for k in range(res.precinct_count):
                    precinct_packets, carried = _precinct_packets(res, k, tc.component, blocks, coding.layers)
                    packets[(tc.component, res.level, k)] = precinct_packets
                    placed += carried
        lost = sum(len(b) for b in blocks.values()) - placed
        if lost:
            raise CodestreamError(f"tile {t}: {lost} code-block contributions found no precinct in the new layout",
                                  parts[0].offset if parts else 0)
        body = bytearray()
        lengths = []
        for layer, r, c, k in packet_order(new_tile, None, order):
            packet = packets[(c, r, k)][layer]
            body += packet
            lengths.append(len(packet))
        packets_written += len(lengths)
        header = b"".join(_rewritten_segment(view, s, new_coding.component, new_styles, order, len(size.components))
                          for s in (first.segments if first else []) if s.marker not in _DROPPED)
        tile_parts_out.append((t, header + _plt_segments(lengths, t), bytes(body)))
    main_cod = precincts_for(main.coding_style.component, exponent)
    main_coc = {c: precincts_for(style, exponent) for c, style in main.header.component_styles.items()}
    main_out = bytearray(b"\xff\x4f")
    for segment in main.header.segments:
        if segment.marker in _DROPPED:
            continue
        main_out += _rewritten_segment(view, segment, main_cod, main_coc, order, len(size.components))
    out_parts = []
    for t, header, body in tile_parts_out:
        length = 12 + len(header) + 2 + len(body)
        out_parts.append(struct.pack(">HHHIBB", Marker.SOT, 10, t, length, 0, 1) + header + b"\xff\x93" + body)
    main_out += _tlm_segments([(t, len(p)) for (t, _, _), p in zip(tile_parts_out, out_parts)])
    result = bytes(main_out) + b"".join(out_parts) + b"\xff\xd9"
    return Repacketized(result, order, main_cod.precinct_exponents, packets_written)


def _code_block_contributions(data, tile: Tile, precincts: dict) -> dict:
    """Every code-block's contributions, by layer, with their bytes: keyed by component,
    resolution, subband orientation and the code-block's column and row in its subband."""
    blocks: dict[tuple, dict[int, tuple[Contribution, bytes]]] = {}
    uses_sop, uses_eph = tile.coding_style.uses_sop, tile.coding_style.uses_eph
    for (c, r, k), packets in precincts.items():
        tc = tile.components[c]
        resolution = tc.resolutions[r]
        bands = [b for b in resolution.precinct_bands(k) if b.block_count]
        state = PrecinctState(tuple(resolution.precinct_bands(k)), tc.style.code_block_style)
        xcb, ycb = resolution.code_block_width_exponent, resolution.code_block_height_exponent
        for layer, pieces in enumerate(packets):
            packet = b"".join(bytes(p) if isinstance(p, (bytes, bytearray, memoryview))
                              else bytes(data[p[0] : p[0] + p[1]]) for p in pieces)
            position = 6 if uses_sop and packet[:2] == b"\xff\x91" else 0
            found: list[Contribution] = []
            reader = BitReader(packet, position, len(packet))
            body_length = read_packet_header(reader, state, found)
            position = reader.position
            if uses_eph and packet[position : position + 2] == b"\xff\x92":
                position += 2
            if position + body_length > len(packet):
                raise CodestreamError(f"tile {tile.index} precinct {(c, r, k)} layer {layer}: the packet body "
                                      "is shorter than its header says")
            for contribution in found:
                band = bands[contribution.band]
                column = (band.x0 >> xcb) + contribution.block % band.blocks_wide
                row = (band.y0 >> ycb) + contribution.block // band.blocks_wide
                key = (c, r, band.orientation, column, row)
                blocks.setdefault(key, {})[layer] = (contribution,
                                                     packet[position : position + contribution.length])
                position += contribution.length
    return blocks


def _precinct_packets(resolution, precinct: int, component: int, blocks: dict, layers: int) -> list:
    """The new precinct's packets, one per layer, and how many code-block contributions they carry."""
    xcb, ycb = resolution.code_block_width_exponent, resolution.code_block_height_exponent
    grids = []
    for band in resolution.precinct_bands(precinct):
        if not band.block_count:
            continue
        first_column, first_row = band.x0 >> xcb, band.y0 >> ycb
        members = [blocks.get((component, resolution.level, band.orientation, first_column + i % band.blocks_wide,
                               first_row + i // band.blocks_wide), {}) for i in range(band.block_count)]
        grids.append((band.blocks_wide, band.blocks_high, members))
    writer = PrecinctWriter([(w, h, [{l: c for l, (c, _) in m.items()} for m in members])
                             for w, h, members in grids])
    packets, carried = [], 0
    for layer in range(layers):
        bodies = [m[layer][1] for _, _, members in grids for m in members if layer in m]
        packets.append(writer.header(layer) + b"".join(bodies))
        carried += len(bodies)
    return packets, carried


def _style_bytes(style: ComponentCodingStyle) -> bytes:
    """SPcod / SPcoc (Table A.15) with explicit precinct sizes."""
    return bytes([style.decomposition_levels, style.code_block_width_exponent - 2,
                  style.code_block_height_exponent - 2, style.code_block_style, 1 if style.reversible else 0]
                 ) + bytes(x | (y << 4) for x, y in style.precinct_exponents)


def _rewritten_segment(data, segment, cod_style: ComponentCodingStyle, coc_styles, order: ProgressionOrder,
                       components: int) -> bytes:
    """A header segment as written: COD and COC get the new precincts, order and no SOP/EPH."""
    raw = bytes(data[segment.offset : segment.end])
    if segment.marker not in _REWRITTEN:
        return raw
    body = raw[4:]
    if segment.marker == Marker.COD:
        scod, _, layers, mct = struct.unpack_from(">BBHB", body, 0)
        new_body = struct.pack(">BBHB", (scod & ~0x06) | 0x01, order, layers, mct) + _style_bytes(cod_style)
    else:
        start = 2 if components >= 257 else 1
        component = struct.unpack_from(">H", body)[0] if start == 2 else body[0]
        new_body = body[:start] + bytes([body[start] | 0x01]) + _style_bytes(coc_styles[component])
    return struct.pack(">HH", segment.marker, len(new_body) + 2) + new_body


def _plt_segments(lengths: list[int], tile: int) -> bytes:
    """PLT (A.7.3): each packet's length in 7-bit groups, high first, bit 7 set on all but the last."""
    encoded = bytearray()
    pieces = []
    for length in lengths:
        groups = [length & 0x7F]
        length >>= 7
        while length:
            groups.append(0x80 | (length & 0x7F))
            length >>= 7
        item = bytes(reversed(groups))
        if len(encoded) + len(item) > _MAXIMUM_PLT_BODY:
            pieces.append(bytes(encoded))
            encoded = bytearray()
        encoded += item
    pieces.append(bytes(encoded))
    if len(pieces) > 256:
        raise CodestreamError(f"tile {tile}: {len(lengths)} packets need more than 256 PLT segments")
    return b"".join(struct.pack(">HHB", Marker.PLT, 3 + len(p), z) + p for z, p in enumerate(pieces))


def _tlm_segments(parts: list[tuple[int, int]]) -> bytes:
    """TLM (A.7.1): Ttlm 16 bits, Ptlm 32 bits (Stlm = 0x60), at most 10,921 tile-parts a segment."""
    out = b""
    per_segment = (65535 - 4) // 6
    for z, start in enumerate(range(0, len(parts), per_segment)):
        if z > 255:
            raise CodestreamError(f"{len(parts)} tile-parts need more than 256 TLM segments")
        chunk = parts[start : start + per_segment]
        out += struct.pack(">HHBB", Marker.TLM, 4 + 6 * len(chunk), z, 0x60)
        out += b"".join(struct.pack(">HI", t, length) for t, length in chunk)
    return out
