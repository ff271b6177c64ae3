"""A decodable codestream from whatever data-bins a client holds (15444-9 Annex A; 15444-1 A.4, B.10, B.12).

Every tile becomes one tile-part in RPCL order (CPRL when components' subsampling factors are not
powers of two apart, which OpenJPEG's RPCL loops misread: see progression), where each precinct's
packets are contiguous; each precinct contributes the packets its bin holds completely, then an
empty packet for every packet it lacks. Segments describing the original layout (POC, PPM, PPT,
PLT, PLM, TLM) are dropped, SOP segments are dropped with the SOP flag, and Psot is set to the real
length. A tile with no sample at the resolution asked for (geometry.Tile.has_samples) gets no
tile-part: it has no packet to decode there, and OpenJPEG fails on a tile-part of one (b2_mono's
source has none for its 9 tiles without samples; p1_06 at reduce 2, whose source has them,
OpenJPEG cannot decode).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

from pyjpip.codestream.geometry import Tile, make_tile, precinct_affects_region
from pyjpip.codestream.markers import (
    HeaderSegments,
    Marker,
    ProgressionOrder,
    read_header_segments,
    read_main_header,
)
from pyjpip.codestream.packet_header import BitReader, PacketHeaderError, PrecinctState, read_packet_header
from pyjpip.codestream.packet_index import tile_styles
from pyjpip.codestream.progression import packet_order, written_order
from pyjpip.errors import CodestreamError

#: An SOP marker segment (A.8.1): FF91, Lsop = 4, Nsop.
_SOP_SEGMENT = re.compile(rb"\xff\x91\x00\x04..", re.DOTALL)
_DROPPED = {Marker.POC, Marker.PPM, Marker.PPT, Marker.PLT, Marker.PLM, Marker.TLM}


@dataclass
class Rebuilt:
    """A rebuilt codestream and what it holds."""

    codestream: bytes
    reduce: int  # resolution levels the decoder should discard
    packets_total: int = 0
    packets_present: int = 0  # packets taken whole from the bins (the rest are empty packets)
    layers_complete: int = 0  # layers every wanted precinct holds completely
    missing_tiles: list[int] = field(default_factory=list)


def rebuild_codestream(main_header: bytes, tile_headers: dict[int, bytes], precincts: dict[int, bytes],
                       reduce: int = 0, layers: int | None = None,
                       region: tuple[int, int, int, int] | None = None,
                       complete: set[int] | frozenset = frozenset()) -> Rebuilt:
    """Assemble a codestream from data-bins.

    ``tile_headers`` maps tile index to tile-header bin bytes (complete bins only: a tile without
    its header is written with empty packets). ``precincts`` maps in-class ids to bin bytes, which
    may be prefixes. ``reduce`` and ``layers`` limit what is written; ``region`` (x0, y0, x1, y1 on
    the reference grid) limits it to precincts that affect that area. ``complete`` names precinct
    bins known to be whole: without SOP segments to drop, they are copied without reading a header.
    """
    main_view = memoryview(bytes(main_header) + b"\xff\x90")
    main = read_main_header(main_view)
    size = main.size
    tiles, components = size.tile_count, len(size.components)
    order = written_order(size)
    out = bytearray(b"\xff\x4f")
    for segment in main.header.segments:
        if segment.marker not in _DROPPED:
            out += _patched(main_view, segment, order)
    result = Rebuilt(b"", reduce)
    complete_layers = None
    for t in range(tiles):
        header_bytes = tile_headers.get(t)
        tile_header = None
        if header_bytes is not None:
            view = memoryview(bytes(header_bytes) + b"\xff\x93")
            tile_header = HeaderSegments()
            read_header_segments(view, 0, len(view), Marker.SOD, components, tile_header, main=False)
        coding, styles = tile_styles(main, tile_header)
        tile = make_tile(size, t, coding, styles)
        if not tile.has_samples(reduce):
            continue  # nothing to decode at this resolution: no tile-part (see the module's docstring)
        if tile_header is None:
            result.missing_tiles.append(t)
        start = len(out)
        out += struct.pack(">HHHIBB", Marker.SOT, 10, t, 0, 0, 1)
        if tile_header is not None:
            for segment in tile_header.segments:
                if segment.marker not in _DROPPED:
                    out += _patched(view, segment, order)
        out += b"\xff\x93"
        wanted_layers = coding.layers if layers is None else max(0, min(layers, coding.layers))
        empty = b"\x00\xff\x92" if coding.uses_eph else b"\x00"
        written: dict[tuple[int, int, int], list[bytes]] = {}
        for layer, resolution, component, precinct in packet_order(tile, None, order):
            key = (component, resolution, precinct)
            packets = written.get(key)
            if packets is None:
                packets = written[key] = _usable_packets(tile, key, tile_header is not None, precincts,
                                                         tiles, components, reduce, wanted_layers, region, complete)
                if _wanted(tile, key, reduce, region):
                    complete_layers = len(packets) if complete_layers is None else min(complete_layers, len(packets))
            result.packets_total += 1
            if layer < len(packets):
                out += packets[layer]
                result.packets_present += 1
            else:
                out += empty
        struct.pack_into(">I", out, start + 6, len(out) - start)
    out += b"\xff\xd9"
    result.codestream = bytes(out)
    result.layers_complete = complete_layers or 0
    return result


def _patched(view: memoryview, segment, order: ProgressionOrder) -> bytes:
    """A header segment as written: COD gets the rebuild's order and no SOP flag."""
    data = bytearray(view[segment.offset : segment.end])
    if segment.marker == Marker.COD:
        data[4] &= ~0x02  # Scod: no SOP segments (they are dropped while copying packets)
        data[5] = order
    return bytes(data)


def _wanted(tile: Tile, key, reduce: int, region) -> bool:
    """Whether a precinct matters for the requested resolution and region."""
    component, resolution, precinct = key
    tc = tile.components[component]
    if resolution > max(0, tc.decomposition_levels - reduce):  # a component with fewer levels keeps its lowest
        return False
    return region is None or precinct_affects_region(tc, resolution, precinct, region)


def _usable_packets(tile: Tile, key, have_header: bool, precincts: dict[int, bytes], tiles: int, components: int,
                    reduce: int, layers: int, region, complete=frozenset()) -> list[bytes]:
    """The complete packets of a precinct's bin, SOP segments removed, up to ``layers``."""
    if not have_header or layers == 0 or not _wanted(tile, key, reduce, region):
        return []
    component, resolution, precinct = key
    tc = tile.components[component]
    sequence = tc.precinct_offsets[resolution] + precinct
    identifier = tile.index + (component + sequence * components) * tiles
    data = precincts.get(identifier)
    if not data:
        return []
    if identifier in complete and layers == tile.coding_style.layers:
        # Every packet is there: the whole bin goes out at layer 0 (RPCL and CPRL keep a precinct's packets
        # together), and the later layers add nothing. SOP segments go without reading a header:
        # 0xFF91 cannot occur inside a packet (headers and code-block data are bit-stuffed so that
        # no two bytes from 0xFF90 up appear, B.10.1, D.4; Part 15 keeps the rule).
        whole = bytes(data)
        if tile.coding_style.uses_sop:
            whole = _SOP_SEGMENT.sub(b"", whole)
        return [whole] + [b""] * (layers - 1)
    state = PrecinctState(tc.resolutions[resolution].precinct_bands(precinct), tc.style.code_block_style)
    uses_eph = tile.coding_style.uses_eph
    packets, position = [], 0
    while len(packets) < layers and position < len(data):
        if data[position : position + 2] == b"\xff\x91":
            position += 6
        start = position
        try:
            reader = BitReader(data, position, len(data))
            body = read_packet_header(reader, state)
        except (PacketHeaderError, CodestreamError):
            break
        position = reader.position
        if uses_eph:
            if data[position : position + 2] != b"\xff\x92":
                break
            position += 2
        position += body
        if position > len(data):
            break
        packets.append(bytes(data[start:position]))
    return packets
