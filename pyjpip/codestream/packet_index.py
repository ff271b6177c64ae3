"""Where every packet of every precinct lies (ISO/IEC 15444-1 B.9–B.12, A.7.2–A.7.5).

Packets are located from PLT (or PLM) marker segments when every tile-part has them, and otherwise by
reading packet headers in progression order. Packed headers (PPM, PPT) are taken back out of
the headers and put in front of their bodies, as a precinct data-bin needs them.

A packet is kept as a tuple of pieces: ``(offset, length)`` ranges of the codestream buffer, or
``bytes`` for header bytes that came from PPM/PPT. Bodies are never copied.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from pyjpip.codestream.geometry import Tile, make_tile
from pyjpip.codestream.markers import (
    ComponentCodingStyle,
    HeaderSegments,
    MainHeader,
    Marker,
    ProgressionChange,
    u32,
)
from pyjpip.codestream.packet_header import BitReader, PacketHeaderError, PrecinctState, read_packet_header
from pyjpip.codestream.progression import POSITION_ORDERS, packet_order, position_order_is_portable
from pyjpip.codestream.quantization import magnitude_bits, subband_number
from pyjpip.codestream.tile_parts import Codestream, TilePart
from pyjpip.errors import CodestreamError

log = logging.getLogger(__name__)

PrecinctKey = tuple[int, int, int]  # component, resolution, precinct index within the resolution


@dataclass
class TileIndex:
    """A tile's layout, its header segments and the packets of each of its precincts (in layer order)."""

    tile: Tile
    header_ranges: list[tuple[int, int]]  # tile-part header segments kept in the tile-header data-bin
    precincts: dict[PrecinctKey, list[tuple]] = field(default_factory=dict)  # packets, each a tuple of pieces
    used_packet_lengths: bool = False  # True when PLT or PLM gave the lengths
    openjpeg_positions: bool = False  # laid out in OpenJPEG's position loops, not the standard's (progression)


@dataclass
class CodestreamIndex:
    """Everything a JPIP server needs to serve a codestream as data-bins."""

    codestream: Codestream
    tiles: list[TileIndex]

    @property
    def size(self):
        return self.codestream.main.size


def tile_styles(main: MainHeader, first: HeaderSegments | None) -> tuple:
    """The coding style in force for a tile, given its first tile-part header (or None):
    tile COC > tile COD > main COC > main COD (A.6.1, A.6.2)."""
    coding = first.coding_style if first and first.coding_style else main.coding_style
    styles: list[ComponentCodingStyle] = []
    for c in range(len(main.size.components)):
        if first and c in first.component_styles:
            styles.append(first.component_styles[c])
        elif first and first.coding_style:
            styles.append(first.coding_style.component)
        else:
            styles.append(main.component_style(c))
    return coding, styles


def _progression_changes(codestream: Codestream, tile_parts: list[TilePart]) -> list[ProgressionChange]:
    changes = [change for part in tile_parts for change in part.header.progression_changes]
    return changes or list(codestream.main.header.progression_changes)


def _joined(codestream: Codestream, numbered_segments) -> bytes:
    """The parameters of PPM/PPT/PLT segments after their index byte, joined in index order."""
    data = codestream.data
    ordered = sorted(numbered_segments, key=lambda item: item[0])
    return b"".join(bytes(data[segment.offset + 5 : segment.end]) for _, segment in ordered)


def _packed_headers_by_tile_part(codestream: Codestream) -> dict[int, bytes] | None:
    """PPM (A.7.4): Nppm/Ippm pairs, one per tile-part in codestream order, keyed by SOT offset."""
    main_packed = codestream.main.header.packed_headers
    if not main_packed:
        return None
    stream = _joined(codestream, main_packed)
    result, position = {}, 0
    for part in codestream.tile_parts:
        if position + 4 > len(stream):
            raise CodestreamError(f"PPM runs out of packed headers before tile-part at {part.offset}",
                                  main_packed[0][1].offset)
        length = u32(stream, position)
        if position + 4 + length > len(stream):
            raise CodestreamError(f"PPM Nppm={length} runs past the packed headers", main_packed[0][1].offset)
        result[part.offset] = stream[position + 4 : position + 4 + length]
        position += 4 + length
    return result


def _length_list(data: bytes) -> list[int] | None:
    """Packet lengths coded 7 bits a byte, high bit set on all but the last byte (A.7.2, A.7.3)."""
    lengths, value, pending = [], 0, False
    for byte in data:
        value = (value << 7) | (byte & 0x7F)
        pending = bool(byte & 0x80)
        if not pending:
            lengths.append(value)
            value = 0
    return None if pending else lengths


def _packet_lengths_by_tile_part(codestream: Codestream) -> dict[int, bytes]:
    """PLM (A.7.2): Nplm/Iplm pairs, one per tile-part in codestream order, keyed by SOT offset.
    Anything that does not add up is ignored (with a log line): packet headers then give the lengths."""
    numbered = codestream.main.header.packet_lengths
    if not numbered:
        return {}
    stream = _joined(codestream, numbered)
    result, position = {}, 0
    for part in codestream.tile_parts:
        if position >= len(stream):
            break
        count = stream[position]
        result[part.offset] = stream[position + 1 : position + 1 + count]
        position += 1 + count
    if position != len(stream) or len(result) != len(codestream.tile_parts):
        log.warning("PLM does not describe the tile-parts one by one; reading packet headers instead")
        return {}
    return result


def _packet_lengths(codestream: Codestream, tile_parts: list[TilePart], from_main: dict[int, bytes]
                    ) -> list[int] | None:
    """Every packet length of a tile from PLT (or PLM), in codestream order; None when some tile-part
    has neither or they do not decode."""
    lengths = []
    for part in tile_parts:
        if part.header.packet_lengths:
            data = _joined(codestream, part.header.packet_lengths)
        elif part.offset in from_main:
            data = from_main[part.offset]
        else:
            return None
        decoded = _length_list(data)
        if decoded is None:
            log.warning("packet lengths of the tile-part at %d end inside a length; reading packet headers",
                        part.offset)
            return None
        lengths.extend(decoded)
    return lengths


def index_codestream(codestream: Codestream, use_packet_lengths: bool = True) -> CodestreamIndex:
    """Locate every packet of every precinct of every tile."""
    packed = _packed_headers_by_tile_part(codestream)
    from_main = _packet_lengths_by_tile_part(codestream) if use_packet_lengths else {}
    size = codestream.size
    # Every tile-component costs at least a bit of a complete codestream's bytes; the slack admits a
    # codestream cut short, not a damaged SIZ that would have every one of 20,000 tiles laid out
    # (a 285-byte mutation of p0_12 took 8 s with a slack of 65,536).
    if size.tile_count * len(size.components) > 8 * len(codestream.data) + 4096:
        raise CodestreamError(f"{size.tile_count} tiles of {len(size.components)} components cannot be described "
                              f"by {len(codestream.data)} bytes", 0)
    absent = len(codestream.data) + 4096  # packets the tiles without tile-parts may have (below)
    tiles = []
    portable = position_order_is_portable(size)
    pending = []  # tiles that may be laid out in OpenJPEG's position order, with both readings
    for t in range(codestream.size.tile_count):
        parts = codestream.tiles.get(t, [])
        coding, styles = tile_styles(codestream.main, parts[0].header if parts else None)
        tile = make_tile(codestream.size, t, coding, styles)
        header_ranges = [(s.offset, s.end) for part in parts for s in part.header.segments
                         if s.marker not in (Marker.PPT, Marker.PLT)]
        index = TileIndex(tile, header_ranges)
        if parts:
            _check_packet_count(tile, parts, packed is not None or any(p.header.packed_headers for p in parts))
            changes = _progression_changes(codestream, parts)
            chunks = None
            if packed is not None or any(part.header.packed_headers for part in parts):
                chunks = [packed[part.offset] if packed is not None else _joined(codestream, part.header.packed_headers)
                          for part in parts]
            lengths = (_packet_lengths(codestream, parts, from_main)
                       if use_packet_lengths and chunks is None else None)
            orders = {change.order for change in changes} or {coding.progression_order}
            if portable or not orders & set(POSITION_ORDERS):
                _index_tile(codestream, index, parts, changes, chunks, lengths, False)
            else:
                pending.append((index, _readings(codestream, index, parts, changes, chunks, lengths), parts))
        else:
            # A tile with no tile-part (the codestream cut short) has no bytes of its own to bound its
            # packets as _check_packet_count bounds the others': together such tiles may have a packet
            # (at least a byte each, had the codestream been whole) per byte there is, a resolution
            # without precincts counting one. A 7 KB SIZ and COD naming 36,000 absent tiles of 33
            # resolutions took 25 s to lay out and list.
            absent -= tile.coding_style.layers * sum(max(res.precinct_count, 1) for tc in tile.components
                                                     for res in tc.resolutions)
            if absent < 0:
                raise CodestreamError(f"tiles {t} and on have no tile-part, and their packets cannot be described "
                                      f"by {len(codestream.data)} bytes", 0)
        tiles.append(index)
    if pending:
        _choose_readings(codestream, pending)
    return CodestreamIndex(codestream, tiles)


def _index_tile(codestream: Codestream, index: TileIndex, parts: list[TilePart], changes, chunks, lengths,
                openjpeg_positions: bool, trial: bool = False) -> int:
    """Lay out the tile's packets; returns how many bytes (of bodies or packed headers) were left over.
    ``trial``: one of two readings tried (_readings): PLT lengths that fit the other are no news."""
    index.precincts.clear()
    if chunks is not None:
        return _index_packed(codestream, index, parts, changes, chunks, openjpeg_positions)
    if lengths is not None and _index_from_lengths(index, parts, changes, lengths, openjpeg_positions, trial):
        index.used_packet_lengths = True
        return 0
    index.precincts.clear()
    return _index_from_headers(codestream, index, parts, changes, openjpeg_positions)


def _readings(codestream: Codestream, index: TileIndex, parts: list[TilePart], changes, chunks,
              lengths) -> list:
    """Both layouts of a tile (the standard's, OpenJPEG's): each (precincts, used lengths, bytes
    left over), or the CodestreamError reading it raised."""
    found = []
    for openjpeg_positions in (False, True):
        try:
            left = _index_tile(codestream, index, parts, changes, chunks, lengths, openjpeg_positions, trial=True)
            found.append((dict(index.precincts), index.used_packet_lengths, left))
        except CodestreamError as error:
            found.append(error)
    return found


#: What OpenJPEG writes in a COM segment unless told otherwise (its encoder's default comment).
_OPENJPEG_COMMENT = b"Created by OpenJPEG"


def written_by_openjpeg(codestream: Codestream) -> bool:
    """Whether a COM segment (A.9) of the main header names OpenJPEG as the encoder."""
    data = codestream.data
    return any(segment.marker == Marker.COM and _OPENJPEG_COMMENT in bytes(data[segment.offset + 6 : segment.end])
               for segment in codestream.main.header.segments)


def _choose_readings(codestream: Codestream, pending: list) -> None:
    """Subsampling factors not powers of two apart, in a position order: the standard's loops and
    OpenJPEG's visit different precincts (see progression), and OpenJPEG wrote most such files.

    A reading is exact when it accounts for every byte of the tile and, where the two readings
    differ, its packet headers are possible: no code-block with more coding passes than its
    bit-planes allow (quantization). Both can account for every byte (1 in about 1,500 of the
    generated files: the standard's loops then read bytes of OpenJPEG's packets as a few more,
    short packets); the bit-plane budget tells them apart. One encoder wrote the codestream, so one
    reading is taken for every tile: the one exact everywhere; if both are, OpenJPEG's when the
    codestream's COM segment says OpenJPEG wrote it, else the standard's; if neither is, tile by
    tile an exact reading, or the standard's as any other file is read (bytes left over are
    tolerated)."""
    def exact(reading) -> bool:
        return isinstance(reading, tuple) and reading[2] == 0

    for index, found, parts in pending:
        if exact(found[0]) and exact(found[1]) and found[0][0] != found[1][0]:
            for k in (0, 1):
                if not _plausible(codestream, index.tile, parts, found[k][0]):
                    log.info("tile %d: %s reading gives a code-block more coding passes than it has bit-planes",
                             index.tile.index, ("the standard's", "OpenJPEG's")[k])
                    found[k] = found[k][:2] + (None,)
    everywhere = [all(exact(found[k]) for _, found, _ in pending) for k in (0, 1)]
    if everywhere[0] and everywhere[1]:
        differ = any(found[0][0] != found[1][0] for _, found, _ in pending)
        if differ and written_by_openjpeg(codestream):
            everywhere[0] = False
            log.info("both position orders read the codestream exactly; its COM segment names OpenJPEG")
    for index, found, _ in pending:
        if everywhere[0] or everywhere[1]:
            k = 0 if everywhere[0] else 1
        else:
            k = next((k for k in (0, 1) if exact(found[k])), 0)
        if isinstance(found[k], CodestreamError):
            raise found[k]
        index.precincts, index.used_packet_lengths, _ = found[k]
        index.openjpeg_positions = k == 1
    if everywhere[1] and not everywhere[0]:
        log.info("codestream laid out in OpenJPEG's position order (subsampling factors not powers of two apart)")


def _plausible(codestream: Codestream, tile: Tile, parts: list[TilePart], precincts: dict) -> bool:
    """Whether every code-block of a reading gets no more coding passes than 3 (Mb - P) - 2, its
    bit-planes allow (quantization). HT code-blocks are not checked (their passes count otherwise),
    nor is anything when the quantization segments cannot say Mb (no evidence either way)."""
    if any(tc.style.high_throughput for tc in tile.components):
        return True
    data = codestream.data
    components = len(codestream.size.components)
    budgets: dict[int, tuple[int, ...]] = {}
    for (component, resolution, precinct), packets in precincts.items():
        tc = tile.components[component]
        if component not in budgets:
            try:
                budgets[component] = magnitude_bits(data, codestream.main.header, parts[0].header, component,
                                                    components, tc.decomposition_levels)
            except CodestreamError:
                return True
        bands = tc.resolutions[resolution].precinct_bands(precinct)
        coded = [band for band in bands if band.block_count]
        state = PrecinctState(bands, tc.style.code_block_style)
        blocks: dict[tuple[int, int], list[int]] = {}  # (band, block) -> [zero bit-planes, passes so far]
        for packet in packets:
            raw = b"".join(piece if isinstance(piece, bytes) else bytes(data[piece[0] : piece[0] + piece[1]])
                           for piece in packet)
            start = 6 if tile.coding_style.uses_sop and raw[:2] == b"\xff\x91" else 0
            found: list = []
            try:
                read_packet_header(BitReader(raw, start, len(raw)), state, found)
            except CodestreamError:
                return False
            for contribution in found:
                key = (contribution.band, contribution.block)
                if contribution.zero_bit_planes is not None:
                    blocks[key] = [contribution.zero_bit_planes, 0]
                entry = blocks[key]
                entry[1] += contribution.passes
                planes = budgets[component][subband_number(resolution, coded[contribution.band].orientation)] - entry[0]
                if entry[1] > 3 * planes - 2:
                    return False
    return True


def _check_packet_count(tile: Tile, parts: list[TilePart], packed: bool) -> None:
    """Every packet takes at least one byte of the tile-parts (unless headers are packed): a header
    that claims more packets than bytes is corrupt, and must not make us enumerate them all."""
    packets = tile.coding_style.layers * sum(res.precinct_count for tc in tile.components for res in tc.resolutions)
    available = sum(part.end - part.body_start for part in parts)
    if not packed and packets > available:
        raise CodestreamError(f"tile {tile.index} would have {packets} packets in {available} bytes", parts[0].offset)
    if packed and packets > 1 << 24:
        raise CodestreamError(f"tile {tile.index} would have {packets} packets", parts[0].offset)


def _index_from_lengths(index: TileIndex, parts: list[TilePart], changes, lengths: list[int],
                        openjpeg_positions: bool = False, trial: bool = False) -> bool:
    """Lay packets out from PLT lengths; False (and a log line: a warning unless ``trial``) when they do
    not fit the tile-parts."""
    say = log.debug if trial else log.warning
    part_number, position = 0, parts[0].body_start
    order = packet_order(index.tile, changes, openjpeg_positions=openjpeg_positions)
    if len(order) != len(lengths):
        say("tile %d: PLT lists %d packets but the tile has %d; reading packet headers instead",
                    index.tile.index, len(lengths), len(order))
        return False
    precincts = index.precincts
    end_of_part = parts[0].end
    for (_, resolution, component, precinct), length in zip(order, lengths):
        while position >= end_of_part and part_number + 1 < len(parts):
            part_number += 1
            position, end_of_part = parts[part_number].body_start, parts[part_number].end
        end = position + length
        if end > end_of_part:
            say("tile %d: PLT lengths run past tile-part %d; reading packet headers instead",
                        index.tile.index, part_number)
            return False
        key = (component, resolution, precinct)
        packets = precincts.get(key)
        if packets is None:
            packets = precincts[key] = []
        packets.append(((position, length),))
        position = end
    return True


def _state(index: TileIndex, states: dict, key: PrecinctKey) -> PrecinctState:
    state = states.get(key)
    if state is None:
        component, resolution, precinct = key
        tile_component = index.tile.components[component]
        state = PrecinctState(tile_component.resolutions[resolution].precinct_bands(precinct),
                              tile_component.style.code_block_style)
        states[key] = state
    return state


def _index_from_headers(codestream: Codestream, index: TileIndex, parts: list[TilePart], changes,
                        openjpeg_positions: bool = False) -> int:
    """Packets read one header after another; returns the tile-part bytes left after the last."""
    data = codestream.data
    coding = index.tile.coding_style
    states: dict[PrecinctKey, PrecinctState] = {}
    part_number, position = 0, parts[0].body_start
    for packet in packet_order(index.tile, changes, openjpeg_positions=openjpeg_positions):
        _, resolution, component, precinct = packet
        while position >= parts[part_number].end:
            if part_number + 1 >= len(parts):
                raise CodestreamError(f"tile {index.tile.index}: the tile-parts end before packet {packet}", position)
            part_number += 1
            position = parts[part_number].body_start
        end_of_part = parts[part_number].end
        start = position
        if coding.uses_sop and data[position] == 0xFF and position + 1 < end_of_part and data[position + 1] == 0x91:
            position += 6
        key = (component, resolution, precinct)
        reader = BitReader(data, position, end_of_part)
        try:
            body = read_packet_header(reader, _state(index, states, key))
        except PacketHeaderError as error:
            raise error.within(f"tile {index.tile.index} packet {packet}") from None
        position = reader.position
        if coding.uses_eph:
            if position + 2 > end_of_part or data[position] != 0xFF or data[position + 1] != 0x92:
                raise CodestreamError(f"tile {index.tile.index} packet {packet}: EPH marker missing", position)
            position += 2
        position += body
        if position > end_of_part:
            raise CodestreamError(f"tile {index.tile.index} packet {packet}: body of {body} bytes runs past "
                                  f"the tile-part", start)
        index.precincts.setdefault(key, []).append(((start, position - start),))
    return parts[part_number].end - position + sum(part.end - part.body_start for part in parts[part_number + 1:])


def _index_packed(codestream: Codestream, index: TileIndex, parts: list[TilePart], changes,
                  chunks: list[bytes], openjpeg_positions: bool = False) -> int:
    """Packets whose headers are packed in PPM or PPT (A.7.4, A.7.5); returns the header bytes left."""
    data = codestream.data
    coding = index.tile.coding_style
    states: dict[PrecinctKey, PrecinctState] = {}
    part_number, position, header_position = 0, parts[0].body_start, 0
    for packet in packet_order(index.tile, changes, openjpeg_positions=openjpeg_positions):
        _, resolution, component, precinct = packet
        while header_position >= len(chunks[part_number]):
            if part_number + 1 >= len(parts):
                raise CodestreamError(f"tile {index.tile.index}: packed headers end before packet {packet}",
                                      parts[-1].offset)
            part_number += 1
            position, header_position = parts[part_number].body_start, 0
        chunk, end_of_part = chunks[part_number], parts[part_number].end
        pieces = []
        if coding.uses_sop and position + 1 < end_of_part and data[position] == 0xFF and data[position + 1] == 0x91:
            pieces.append((position, 6))
            position += 6
        key = (component, resolution, precinct)
        reader = BitReader(chunk, header_position, len(chunk))
        try:
            body = read_packet_header(reader, _state(index, states, key))
        except PacketHeaderError as error:
            raise PacketHeaderError(f"tile {index.tile.index} packet {packet} (packed header): {error.reason}",
                                    parts[part_number].offset) from None
        header_end = reader.position
        if coding.uses_eph and chunk[header_end : header_end + 2] == b"\xff\x92":
            header_end += 2
        pieces.append(bytes(chunk[header_position:header_end]))
        header_position = header_end
        if position + body > end_of_part:
            raise CodestreamError(f"tile {index.tile.index} packet {packet}: body of {body} bytes runs past "
                                  f"the tile-part", position)
        if body:
            pieces.append((position, body))
        position += body
        index.precincts.setdefault(key, []).append(tuple(pieces))
    return len(chunks[part_number]) - header_position + sum(len(chunk) for chunk in chunks[part_number + 1:])
