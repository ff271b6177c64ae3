"""The cache model (ISO/IEC 15444-9 C.9 and Annex B): what the server believes a client holds.

For every data-bin the client knows of, the number of bytes it holds from the start of the bin
(only a prefix is usable). A bin is complete when that reaches the bin's length; a key present
with 0 bytes is how a zero-length bin is known complete. Sessions keep one model per target and
update it with every byte sent; stateless requests build one from their model= statements.
"""

from __future__ import annotations

from pyjpip.codestream.databins import DataBinClass
from pyjpip.codestream.source import JPEG2000Source
from pyjpip.jpip.request import ModelItem, RequestError, SampledRange

BinKey = tuple[int, int, int]  # class, codestream, in-class id

#: model= statements can name the same data-bins over and over ("P*" a hundred thousand times, a
#: qualifier over every codestream before each of many items, implicit forms over every tile), and
#: each naming is work. A request may take this many steps (an item in a codestream, a bin named,
#: a tile-component resolution walked) plus MODEL_STEPS_PER_BIN for every distinct bin it names.
MODEL_STEPS_ALLOWED = 1 << 18
MODEL_STEPS_PER_BIN = 8


class CacheModel:
    def __init__(self):
        self.held: dict[BinKey, int] = {}

    def bytes_held(self, key: BinKey) -> int:
        return self.held.get(key, 0)

    def knows(self, key: BinKey) -> bool:
        return key in self.held

    def add(self, key: BinKey, end: int) -> None:
        """The client now holds the bin up to ``end`` (it never forgets by this route)."""
        if end > self.held.get(key, -1):
            self.held[key] = end

    def limit(self, key: BinKey, end: int) -> None:
        """The client holds at most ``end`` bytes of the bin (a subtractive statement or an eviction)."""
        if key in self.held:
            if end <= 0:
                del self.held[key]
            elif self.held[key] > end:
                self.held[key] = end

    def apply(self, items: tuple[ModelItem, ...], source: JPEG2000Source, codestreams: list[int]) -> None:
        """Fold model= statements in; ``codestreams`` are the request's when an item has no qualifier.
        Statements that name bins over and over beyond the limits above are a RequestError (400)."""
        qualified: dict[int, list[int]] = {}  # by the qualifier's identity: the items after one [..] share it
        named: set[BinKey] = set()
        steps = 0
        for item in items:
            if item.codestreams:
                selected = qualified.get(id(item.codestreams))
                if selected is None:
                    selected = qualified[id(item.codestreams)] = _codestreams(item.codestreams,
                                                                              source.codestream_count)
            else:
                selected = codestreams
            for number in selected:
                for found in _bins_of(item, source, number):
                    steps += 1
                    if steps > MODEL_STEPS_ALLOWED + MODEL_STEPS_PER_BIN * len(named):
                        raise RequestError(400, f"model= names data-bins {steps} times over ({len(named)} different "
                                                "ones): a cache model says each bin once")
                    if found is None:
                        continue
                    key, length, layer_ends = found
                    named.add(key)
                    if item.layer_limit is not None:  # a precinct without packets (its tile absent) holds 0 bytes
                        amount = layer_ends[min(item.layer_limit, len(layer_ends)) - 1] \
                            if item.layer_limit and layer_ends else 0
                    elif item.byte_limit is not None:
                        amount = min(item.byte_limit, length)
                    else:  # the whole bin; subtractive, none of it (what a client's eviction says, "-P5")
                        amount = 0 if item.subtractive else length
                    if item.subtractive:
                        self.limit(key, amount)
                    else:
                        self.add(key, amount)


def _codestreams(ranges: tuple[SampledRange, ...], count: int) -> list[int]:
    return sorted({n for r in ranges for n in r.values(count)})


def _bins_of(item: ModelItem, source: JPEG2000Source, number: int):
    """(key, length, layer ends) of every bin an item names that exists in codestream ``number``;
    None first, and for every tile-component resolution an implicit form walks, to count the steps."""
    yield None
    if item.kind == "M":
        if item.identifier in (None, 0) and number == 0:
            yield (DataBinClass.METADATA, 0, 0), source.metadata_bin().length, ()
        return
    bins = source.databins(number)
    if item.kind == "Hm":
        yield (DataBinClass.MAIN_HEADER, number, 0), bins.main_header().length, ()
    elif item.kind == "H":
        tiles = range(bins.tiles) if item.identifier is None else [item.identifier]
        for tile in tiles:
            if 0 <= tile < bins.tiles:
                yield (DataBinClass.TILE_HEADER, number, tile), bins.tile_header(tile).length, ()
    elif item.kind == "P":
        if item.identifier is None:
            chosen = bins.precincts()
        else:
            try:
                chosen = [bins.precinct_by_identifier(item.identifier)]
            except KeyError:
                return
        for databin in chosen:
            yield (DataBinClass.PRECINCT, number, databin.identifier), databin.length, databin.packet_ends
    elif item.kind == "implicit":
        yield from _implicit(item.implicit, bins, number)
    # "T" (tile data-bins, JPT-streams) names nothing in a JPP-stream session: ignored.


def _implicit(spec: dict, bins, number: int):
    """Implicit precinct descriptors t, c, r, p (C.9.2): p ranges are rectangles in raster order."""
    def span(letter, count):
        value = spec.get(letter)
        if value is None:
            return range(count)
        return range(value[0], min(value[1], count - 1) + 1)
    index = bins.index
    for t in span("t", bins.tiles):
        tile = index.tiles[t].tile
        for c in span("c", bins.components):
            tc = tile.components[c]
            for r in span("r", len(tc.resolutions)):
                yield None
                res = tc.resolutions[r]
                if res.precinct_count == 0:
                    continue
                if spec.get("p") is None:
                    precincts = range(res.precinct_count)
                else:
                    first, last = spec["p"]
                    x0, y0 = first % res.precincts_wide, first // res.precincts_wide
                    x1, y1 = last % res.precincts_wide, last // res.precincts_wide
                    precincts = [y * res.precincts_wide + x for y in range(y0, min(y1, res.precincts_high - 1) + 1)
                                 for x in range(x0, x1 + 1)]
                for p in precincts:
                    databin = bins.precinct(t, c, r, p)
                    yield (DataBinClass.PRECINCT, number, databin.identifier), databin.length, databin.packet_ends
