"""JPIP data-bins of a codestream (ISO/IEC 15444-9 A.3): what a server serves and a client caches.

Main header (class 6), tile headers (class 2), precincts (class 0, in-class id per Eq. A-1) and
metadata-bin 0 (class 8). A data-bin is a list of pieces of the source buffer, never a copy, so
a server can serve a file of any size; ``read`` joins the pieces when bytes are wanted.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from enum import IntEnum
from typing import Iterator

from pyjpip.codestream.packet_index import CodestreamIndex


class DataBinClass(IntEnum):
    """Data-bin classes, Table A.2 of 15444-9."""

    PRECINCT = 0
    EXTENDED_PRECINCT = 1
    TILE_HEADER = 2
    TILE = 4
    EXTENDED_TILE = 5
    MAIN_HEADER = 6
    METADATA = 8


@dataclass(frozen=True)
class DataBin:
    """One data-bin: its identity, its pieces and, for precincts, where each packet ends."""

    bin_class: DataBinClass
    identifier: int
    pieces: tuple  # (offset, length) ranges of the codestream buffer, or bytes
    length: int
    packet_ends: tuple[int, ...] = ()  # precinct bins: offset just past each packet (layer)

    def read(self, data) -> bytes:
        """The bin's bytes, joined from the source buffer."""
        return b"".join(piece if isinstance(piece, bytes) else bytes(data[piece[0] : piece[0] + piece[1]])
                        for piece in self.pieces)


def precinct_identifier(tile: int, component: int, sequence: int, tiles: int, components: int) -> int:
    """In-class identifier of a precinct data-bin, Eq. A-1: I = t + (c + s * Nc) * Nt."""
    return tile + (component + sequence * components) * tiles


def precinct_from_identifier(identifier: int, tiles: int, components: int) -> tuple[int, int, int]:
    """Inverse of Eq. A-1: (tile, component, sequence number within the tile-component)."""
    rest, tile = divmod(identifier, tiles)
    sequence, component = divmod(rest, components)
    return tile, component, sequence


class DataBins:
    """The data-bins of one indexed codestream."""

    def __init__(self, index: CodestreamIndex):
        self.index = index
        self.data = index.codestream.data
        self.tiles = index.size.tile_count
        self.components = len(index.size.components)
        self._precincts: dict[tuple[int, int, int, int], DataBin] = {}

    def main_header(self) -> DataBin:
        """SOC up to the first SOT (A.3.5)."""
        length = self.index.codestream.main.length
        return DataBin(DataBinClass.MAIN_HEADER, 0, ((0, length),), length)

    def tile_header(self, tile: int) -> DataBin:
        """Every tile-part's header segments without SOT and SOD (A.3.3); PPT and PLT are left out
        because packed headers travel restored inside precinct bins and PLT describes the original
        layout, not the client's."""
        ranges = self.index.tiles[tile].header_ranges
        pieces = tuple((start, end - start) for start, end in ranges)
        return DataBin(DataBinClass.TILE_HEADER, tile, pieces, sum(p[1] for p in pieces))

    def precinct(self, tile: int, component: int, resolution: int, precinct: int) -> DataBin:
        """A precinct's packets in layer order (A.3.2.1)."""
        key = (tile, component, resolution, precinct)
        databin = self._precincts.get(key)
        if databin is None:
            databin = self._precincts[key] = self._make_precinct(*key)
        return databin

    def _make_precinct(self, tile: int, component: int, resolution: int, precinct: int) -> DataBin:
        tile_index = self.index.tiles[tile]
        tile_component = tile_index.tile.components[component]
        sequence = tile_component.precinct_offsets[resolution] + precinct
        packets = tile_index.precincts.get((component, resolution, precinct), [])
        pieces, ends, length = [], [], 0
        for packet in packets:
            for piece in packet:
                if isinstance(piece, bytes):
                    pieces.append(piece)
                    length += len(piece)
                    continue
                last = pieces[-1] if pieces else None
                if last is not None and not isinstance(last, bytes) and last[0] + last[1] == piece[0]:
                    pieces[-1] = (last[0], last[1] + piece[1])  # packets that follow each other in the file
                else:
                    pieces.append(piece)
                length += piece[1]
            ends.append(length)
        identifier = precinct_identifier(tile, component, sequence, self.tiles, self.components)
        return DataBin(DataBinClass.PRECINCT, identifier, tuple(pieces), length, tuple(ends))

    def precinct_by_identifier(self, identifier: int) -> DataBin:
        tile, component, sequence = precinct_from_identifier(identifier, self.tiles, self.components)
        if tile >= self.tiles:
            raise KeyError(f"precinct data-bin {identifier} does not exist")
        tile_component = self.index.tiles[tile].tile.components[component]
        if sequence >= tile_component.precinct_total:
            raise KeyError(f"precinct data-bin {identifier} does not exist")
        offsets = tile_component.precinct_offsets
        resolution = bisect_right(offsets, sequence) - 1
        while tile_component.resolutions[resolution].precinct_count == 0:  # skip empty levels sharing an offset
            resolution -= 1
        return self.precinct(tile, component, resolution, sequence - offsets[resolution])

    def precincts(self) -> Iterator[DataBin]:
        """Every precinct data-bin, tile by tile, component by component, lowest resolution first."""
        for tile_index in self.index.tiles:
            for tc in tile_index.tile.components:
                for res in tc.resolutions:
                    for precinct in range(res.precinct_count):
                        yield self.precinct(tile_index.tile.index, tc.component, res.level, precinct)

    def all(self) -> Iterator[DataBin]:
        yield self.main_header()
        for tile in range(self.tiles):
            yield self.tile_header(tile)
        yield from self.precincts()
