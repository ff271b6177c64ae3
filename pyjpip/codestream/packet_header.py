"""Packet headers (ISO/IEC 15444-1 B.10): how long each packet is, without decoding any coefficient.

A packet header says, for every code-block of one precinct, whether it contributes to this layer,
how many coding passes it adds and how many bytes they take. Reading it needs state that lives
for the whole precinct across layers: two tag trees per subband (inclusion, zero bit-planes,
B.10.2) and, per code-block, Lblock (B.10.7.1) and the codeword segment in progress.
"""

from __future__ import annotations

from typing import NamedTuple

from pyjpip.codestream.geometry import PrecinctBand
from pyjpip.codestream.markers import (
    CODE_BLOCK_BYPASS,
    CODE_BLOCK_HIGH_THROUGHPUT,
    CODE_BLOCK_TERMINATE_EACH_PASS,
)
from pyjpip.errors import CodestreamError


#: Guard against absurd headers (a 2^15 precinct of 4x4 code-blocks has 2^26): real files stay far below.
MAXIMUM_CODE_BLOCKS_PER_PRECINCT = 1 << 20


class PacketHeaderError(CodestreamError):
    """A packet header cannot be read: it runs past the available bytes or is inconsistent."""


class BitReader:
    """Reads header bits MSB first, skipping the stuffed bit after every 0xFF byte (B.10.1)."""

    __slots__ = ("data", "position", "end", "byte", "bits_left", "previous")

    def __init__(self, data, position: int, end: int):
        self.data = data
        self.position = position
        self.end = end
        self.byte = 0
        self.bits_left = 0
        self.previous = 0

    def bit(self) -> int:
        if self.bits_left == 0:
            self._next_byte()
        self.bits_left -= 1
        return (self.byte >> self.bits_left) & 1

    def bits(self, count: int) -> int:
        value = 0
        for _ in range(count):
            if self.bits_left == 0:
                self._next_byte()
            self.bits_left -= 1
            value = (value << 1) | ((self.byte >> self.bits_left) & 1)
        return value

    def _next_byte(self) -> None:
        if self.position >= self.end:
            raise PacketHeaderError("packet header runs past the end of its data", self.position)
        self.bits_left = 7 if self.previous == 0xFF else 8
        self.byte = self.previous = self.data[self.position]
        self.position += 1

    def align(self) -> int:
        """End the header on a byte boundary; a final 0xFF is followed by one more byte (B.10.1)."""
        if self.previous == 0xFF and self.bits_left < 8:
            self._next_byte()
        self.bits_left = 0
        return self.position


class TagTree:
    """A tag tree (B.10.2) over a grid of code-blocks, decoded incrementally against thresholds."""

    __slots__ = ("paths", "values", "lows")

    def __init__(self, width: int, height: int):
        # Node numbering: the leaves first, then each coarser level; parents[i] is i's parent.
        parents: list[int] = []
        start, w, h = 0, width, height
        while w * h > 1:
            parent_start, parent_w = start + w * h, (w + 1) // 2
            parents.extend(parent_start + (y >> 1) * parent_w + (x >> 1) for y in range(h) for x in range(w))
            start, w, h = parent_start, parent_w, (h + 1) // 2
        parents.append(-1)  # the root
        paths = []
        for leaf in range(width * height):  # root first, leaf last
            path, node = [], leaf
            while node >= 0:
                path.append(node)
                node = parents[node]
            path.reverse()
            paths.append(path)
        self.paths = paths
        self.values = [1 << 30] * len(parents)
        self.lows = [0] * len(parents)

    def decode(self, reader: BitReader, leaf: int, threshold: int) -> bool:
        """Learn whether the leaf's value is below ``threshold``, reading only the bits needed."""
        values, lows = self.values, self.lows
        low = 0
        for node in self.paths[leaf]:
            if low > lows[node]:
                lows[node] = low
            else:
                low = lows[node]
            while low < threshold and low < values[node]:
                if reader.bit():
                    values[node] = low
                else:
                    low += 1
            lows[node] = low
        return values[leaf] < threshold

    def value(self, reader: BitReader, leaf: int) -> int:
        """Decode the leaf's value completely (zero bit-planes, B.10.5)."""
        threshold = 1
        while not self.decode(reader, leaf, threshold):
            threshold += 1
            if threshold > 80:
                raise PacketHeaderError("zero bit-plane tag tree value is absurdly large", reader.position)
        return self.values[leaf]


class CodeBlockState:
    """What packet headers so far have said about one code-block."""

    __slots__ = ("included", "lblock", "passes", "segment_passes", "segment_limit", "cleanup_seen")

    def __init__(self):
        self.included = False
        self.cleanup_seen = False  # HTJ2K: a non-empty HT cleanup pass has been signalled
        self.lblock = 3
        self.passes = 0  # coding passes received so far
        self.segment_passes = 0  # passes in the codeword segment in progress
        self.segment_limit = 0  # most passes that segment may hold (0: no segment yet)


class PrecinctState:
    """Per-precinct state carried from one layer's packet header to the next."""

    __slots__ = ("bands", "style", "layers_read")

    def __init__(self, bands: tuple[PrecinctBand, ...], code_block_style: int):
        blocks = sum(b.block_count for b in bands)
        if blocks > MAXIMUM_CODE_BLOCKS_PER_PRECINCT:
            raise CodestreamError(f"a precinct with {blocks} code-blocks is beyond what pyjpip supports "
                                  f"({MAXIMUM_CODE_BLOCKS_PER_PRECINCT})")
        self.bands = [(TagTree(b.blocks_wide, b.blocks_high), TagTree(b.blocks_wide, b.blocks_high),
                       [CodeBlockState() for _ in range(b.block_count)]) for b in bands if b.block_count]
        self.style = code_block_style
        self.layers_read = 0


def read_packet_header(reader: BitReader, state: PrecinctState, contributions: list | None = None) -> int:
    """Read one packet header (B.10.3–B.10.7) and return the length of the packet body in bytes.

    The reader is left aligned after the header (an EPH marker, if used, is the caller's). With
    ``contributions``, every code-block the packet carries is appended to it, in header (and body)
    order, as a Contribution: what a re-packetizer needs to say the same again in another header.
    """
    layer = state.layers_read
    state.layers_read += 1
    if not reader.bit():  # zero-length packet (B.10.3)
        reader.align()
        return 0
    body = 0
    style = state.style
    for band_number, (inclusion, zero_planes, blocks) in enumerate(state.bands):
        for index, block in enumerate(blocks):
            zero_bit_planes = None
            if block.included:
                if not reader.bit():
                    continue
            else:
                if not inclusion.decode(reader, index, layer + 1):
                    continue
                zero_bit_planes = zero_planes.value(reader, index)
                block.included = True
            passes = _pass_count(reader)
            increments = 0
            while reader.bit():  # Lblock increments (B.10.7.1)
                block.lblock += 1
                increments += 1
            if contributions is None:
                body += _segment_lengths(reader, block, passes, style)
            else:
                fields: list[tuple[int, int]] = []
                length = _segment_lengths(reader, block, passes, style, fields)
                contributions.append(Contribution(band_number, index, zero_bit_planes, passes, increments,
                                                  tuple(fields), length))
                body += length
    reader.align()
    return body


class Contribution(NamedTuple):
    """One code-block's part of one packet, as its header said it (B.10.4–B.10.7)."""

    band: int  # index among the precinct's subbands that have code-blocks
    block: int  # raster index of the code-block within the precinct's part of that subband
    zero_bit_planes: int | None  # set when this is the block's first inclusion
    passes: int
    lblock_increments: int
    length_fields: tuple[tuple[int, int], ...]  # (bits, value) of every segment length written
    length: int  # bytes of the body the block's passes take


def _pass_count(reader: BitReader) -> int:
    """Number of new coding passes, Table B.4."""
    if not reader.bit():
        return 1
    if not reader.bit():
        return 2
    value = reader.bits(2)
    if value != 3:
        return 3 + value
    value = reader.bits(5)
    if value != 31:
        return 6 + value
    return 37 + reader.bits(7)


def _segment_limit(block: CodeBlockState, style: int) -> int:
    """How many passes the next codeword segment may hold (B.10.7.2 with Table D.9)."""
    if style & CODE_BLOCK_TERMINATE_EACH_PASS:
        return 1
    if style & CODE_BLOCK_BYPASS:
        if block.segment_limit == 0:
            return 10
        return 2 if block.segment_limit in (1, 10) else 1
    return 1 << 30


def _segment_lengths(reader: BitReader, block: CodeBlockState, passes: int, style: int, fields=None) -> int:
    """Read the length of every codeword segment the new passes touch (B.10.7.2); return their sum.
    ``fields`` (a list) collects each length field as (bits, value)."""
    if fields is not None:
        reader = _RecordingReader(reader, fields)
    if style & CODE_BLOCK_HIGH_THROUGHPUT:
        return _high_throughput_segment_lengths(reader, block, passes)
    total = 0
    block.passes += passes
    while passes > 0:
        if block.segment_limit == 0 or block.segment_passes >= block.segment_limit:
            block.segment_limit = _segment_limit(block, style)
            block.segment_passes = 0
        take = min(block.segment_limit - block.segment_passes, passes)
        total += reader.bits(block.lblock + take.bit_length() - 1)
        block.segment_passes += take
        passes -= take
    return total


class _RecordingReader:
    """A BitReader that notes every field it reads (only length fields pass through it)."""

    __slots__ = ("reader", "fields")

    def __init__(self, reader: BitReader, fields: list):
        self.reader, self.fields = reader, fields

    def bits(self, count: int) -> int:
        value = self.reader.bits(count)
        self.fields.append((count, value))
        return value

    @property
    def position(self) -> int:
        return self.reader.position


def _high_throughput_segment_lengths(reader: BitReader, block: CodeBlockState, passes: int) -> int:
    """Segment lengths of an HTJ2K code-block (15444-15), passes counted with placeholders.

    HT passes come in sets of three (cleanup, significance propagation, magnitude refinement).
    Until the first non-empty cleanup, a layer's leading passes are placeholders that travel in
    one segment with that cleanup; afterwards segments alternate: a cleanup alone, then up to two
    refinement passes. Each length takes Lblock + floor(log2(passes in the segment)) bits.
    """
    before = block.passes
    block.passes += passes
    lblock = block.lblock
    if not block.cleanup_seen:
        refinements = (before + passes - 1) % 3  # passes after the last possible cleanup
        leading = passes - refinements  # placeholders plus that cleanup, in one segment
        if leading < 1:
            if reader.bits(lblock + passes.bit_length() - 1):
                raise PacketHeaderError("HT code-block has bytes but no cleanup pass", reader.position)
            return 0
        total = reader.bits(lblock + leading.bit_length() - 1)
        if total == 0:  # the whole contribution is placeholders
            if reader.bits(passes.bit_length() - leading.bit_length()):
                raise PacketHeaderError("HT placeholder passes with a non-zero length", reader.position)
            return 0
        block.cleanup_seen = True
        remaining, next_segment = refinements, 2
    else:
        phase = before % 3
        if phase == 0:  # a cleanup pass starts the contribution
            segment, next_segment = 1, 2
        elif phase == 1:  # significance propagation, possibly with magnitude refinement
            segment, next_segment = (2 if passes > 1 else 1), 1
        else:  # magnitude refinement alone
            segment, next_segment = 1, 1
        total = reader.bits(lblock + segment - 1)
        remaining = passes - segment
    while remaining > 0:
        segment = next_segment if remaining > 1 else 1
        total += reader.bits(lblock + segment - 1)
        remaining -= segment
        next_segment = 3 - next_segment
    return total


# Writing packet headers: the inverse of the reader above, for re-packetizing (B.10, encoder side).


class BitWriter:
    """Writes header bits MSB first; after a 0xFF byte the next carries 7 bits (B.10.1)."""

    __slots__ = ("out", "byte", "room")

    def __init__(self):
        self.out = bytearray()
        self.byte = 0
        self.room = 8

    def bit(self, value: int) -> None:
        self.byte = (self.byte << 1) | value
        self.room -= 1
        if self.room == 0:
            self._flush()

    def bits(self, value: int, count: int) -> None:
        for shift in range(count - 1, -1, -1):
            self.bit((value >> shift) & 1)

    def _flush(self) -> None:
        self.out.append(self.byte)
        self.room = 7 if self.byte == 0xFF else 8
        self.byte = 0

    def align(self) -> bytes:
        """End the header: pad the last byte with zeros; a final 0xFF gets a zero byte after it."""
        if self.room < (7 if self.out and self.out[-1] == 0xFF else 8):
            self.byte <<= self.room
            self._flush()
        if self.out and self.out[-1] == 0xFF:
            self.out.append(0)
        return bytes(self.out)


class TagTreeEncoder(TagTree):
    """A tag tree whose leaf values are known, writing the bits TagTree.decode reads (B.10.2)."""

    __slots__ = ("known",)

    def __init__(self, width: int, height: int, leaves: list[int]):
        super().__init__(width, height)
        values = self.values
        for leaf, value in enumerate(leaves):
            for node in self.paths[leaf]:
                if value < values[node]:
                    values[node] = value
        self.known = [False] * len(values)

    def encode(self, writer: BitWriter, leaf: int, threshold: int) -> bool:
        values, lows, known = self.values, self.lows, self.known
        low = 0
        for node in self.paths[leaf]:
            if low > lows[node]:
                lows[node] = low
            else:
                low = lows[node]
            while low < threshold:
                if low >= values[node]:
                    if not known[node]:
                        writer.bit(1)
                        known[node] = True
                    break
                writer.bit(0)
                low += 1
            lows[node] = low
        return values[leaf] < threshold

    def encode_value(self, writer: BitWriter, leaf: int) -> None:
        threshold = 1
        while not self.encode(writer, leaf, threshold):
            threshold += 1


def write_pass_count(writer: BitWriter, passes: int) -> None:
    """Table B.4."""
    if passes == 1:
        writer.bit(0)
    elif passes == 2:
        writer.bits(0b10, 2)
    elif passes <= 5:
        writer.bits(0b11, 2)
        writer.bits(passes - 3, 2)
    elif passes <= 36:
        writer.bits(0b1111, 4)
        writer.bits(passes - 6, 5)
    elif passes <= 164:
        writer.bits(0b111111111, 9)
        writer.bits(passes - 37, 7)
    else:
        raise CodestreamError(f"{passes} coding passes in one packet cannot be signalled (Table B.4)")


class PrecinctWriter:
    """A precinct's packet headers written layer by layer from known contributions.

    ``blocks`` lists, per subband with code-blocks (in packet order), its code-block grid (wide,
    high) and for each code-block the contributions it makes, by layer. The inclusion tag tree
    holds each block's first layer, the zero bit-plane tree what its first contribution said.
    """

    def __init__(self, bands: list[tuple[int, int, list[dict[int, Contribution]]]]):
        never = 1 << 20
        self.bands = []
        for wide, high, blocks in bands:
            first = [min(layers) if layers else never for layers in blocks]
            planes = [layers[min(layers)].zero_bit_planes if layers else never for layers in blocks]
            self.bands.append((TagTreeEncoder(wide, high, first), TagTreeEncoder(wide, high, planes), blocks,
                               [False] * len(blocks)))

    def header(self, layer: int) -> bytes:
        writer = BitWriter()
        if not any(layer in layers for _, _, blocks, _ in self.bands for layers in blocks):
            writer.bit(0)  # an empty packet (B.10.3)
            return writer.align()
        writer.bit(1)
        for inclusion, zero_planes, blocks, included in self.bands:
            for index, layers in enumerate(blocks):
                contribution = layers.get(layer)
                if included[index]:
                    writer.bit(1 if contribution else 0)
                    if not contribution:
                        continue
                else:
                    if not inclusion.encode(writer, index, layer + 1):
                        continue
                    zero_planes.encode_value(writer, index)
                    included[index] = True
                write_pass_count(writer, contribution.passes)
                writer.bits((1 << (contribution.lblock_increments + 1)) - 2, contribution.lblock_increments + 1)
                for count, value in contribution.length_fields:
                    writer.bits(value, count)
        return writer.align()
