"""A client's data-bin cache (ISO/IEC 15444-9 Annex B seen from the client; C.9 for what it tells servers).

Messages may overlap, repeat or arrive out of order; every byte is kept exactly once, in ranges
merged as they touch. Only the prefix from offset 0 is usable by a decoder. A byte budget evicts
the least recently used bins; evictions are remembered so the next request can tell the server
with subtractive model statements.
"""

from __future__ import annotations

import logging
from bisect import bisect_left, bisect_right
from collections import OrderedDict

from pyjpip.codestream.databins import DataBinClass
from pyjpip.errors import PyjpipError
from pyjpip.jpip.messages import Message

log = logging.getLogger(__name__)

BinKey = tuple[int, int, int]  # class, codestream, in-class id


class CacheConflictError(PyjpipError):
    """Bytes of a data-bin arrived twice with different contents: the target changed under us."""


def _range_start(held: list) -> int:
    return held[0]


def _range_end(held: list) -> int:
    return held[0] + len(held[1])


class _Bin:
    __slots__ = ("ranges", "length")

    def __init__(self):
        self.ranges: list[list] = []  # [start, bytearray], sorted, disjoint, not touching
        self.length: int | None = None  # known once the message with the last byte arrived

    def add(self, offset: int, data: bytes) -> int:
        """Merge bytes in; return how many were new. The ranges the bytes overlap or touch are found by
        bisection and the first of them grows in place: many small messages in any order cost about
        what their bytes do (each once scanned every range and sorted them all)."""
        end = offset + len(data)
        ranges = self.ranges
        first = bisect_left(ranges, offset, key=_range_end)  # the first range ending at or after offset
        last = bisect_right(ranges, end, lo=first, key=_range_start)  # past the last starting at or before end
        new = len(data)
        for start, held in ranges[first:last]:
            overlap_start, overlap_end = max(start, offset), min(start + len(held), end)
            if overlap_end > overlap_start:
                if held[overlap_start - start : overlap_end - start] != data[overlap_start - offset : overlap_end - offset]:
                    raise CacheConflictError(f"bytes {overlap_start}-{overlap_end} arrived with new contents")
                new -= overlap_end - overlap_start
        if first == last:
            ranges.insert(first, [offset, bytearray(data)])
            return new
        merged_start, merged = ranges[first]
        if offset < merged_start:
            merged = bytearray(data[: merged_start - offset]) + merged
            merged_start = offset
        for start, held in ranges[first + 1 : last]:  # the gaps between them lie inside the new bytes
            merged += data[merged_start + len(merged) - offset : start - offset]
            merged += held
        if end > merged_start + len(merged):
            merged += data[merged_start + len(merged) - offset :]
        ranges[first:last] = [[merged_start, merged]]
        return new

    @property
    def prefix_length(self) -> int:
        return len(self.ranges[0][1]) if self.ranges and self.ranges[0][0] == 0 else 0

    @property
    def complete(self) -> bool:
        return self.length is not None and self.prefix_length >= self.length

    @property
    def size(self) -> int:
        return sum(len(r[1]) for r in self.ranges)


class DataBinCache:
    """Data-bins of one target, keyed by (class, codestream, in-class id)."""

    def __init__(self, byte_limit: int | None = None):
        self.bins: OrderedDict[BinKey, _Bin] = OrderedDict()
        self.byte_limit = byte_limit
        self.bytes = 0
        self.evicted: set[BinKey] = set()  # to be reported with subtractive statements
        self.protected: set[BinKey] = set()  # headers are never evicted while the target is in use

    def add(self, message: Message) -> int:
        """Keep a message's bytes; return how many of them were new."""
        key = (message.bin_class, message.codestream, message.identifier)
        databin = self.bins.get(key)
        if databin is None:
            databin = self.bins[key] = _Bin()
        else:
            self.bins.move_to_end(key)
        self.evicted.discard(key)
        new = databin.add(message.offset, message.data) if message.data else 0
        if message.complete:
            length = message.offset + len(message.data)
            if databin.length is not None and databin.length != length:
                raise CacheConflictError(f"data-bin {key} ends at {length}, before said {databin.length}")
            databin.length = length
        if message.bin_class in (DataBinClass.MAIN_HEADER, DataBinClass.TILE_HEADER, DataBinClass.METADATA):
            self.protected.add(key)
        self.bytes += new
        self._evict()
        return new

    def _evict(self) -> None:
        if self.byte_limit is None:
            return
        for key in list(self.bins):
            if self.bytes <= self.byte_limit:
                break
            if key in self.protected:
                continue
            self.bytes -= self.bins.pop(key).size
            self.evicted.add(key)
            log.debug("evicted data-bin %s", key)

    def prefix(self, key: BinKey) -> bytes:
        databin = self.bins.get(key)
        if databin is None or not databin.ranges or databin.ranges[0][0] != 0:
            return b""
        return bytes(databin.ranges[0][1])

    def complete(self, key: BinKey) -> bool:
        databin = self.bins.get(key)
        return databin is not None and databin.complete

    def clear(self) -> None:
        self.bins.clear()
        self.evicted.clear()
        self.protected.clear()
        self.bytes = 0

    def snapshot(self) -> dict:
        """Every bin's ranges and length, for comparing caches exactly."""
        return {key: ([(start, bytes(data)) for start, data in b.ranges], b.length) for key, b in self.bins.items()}

    def model_statements(self, codestreams: list[int]) -> list[str]:
        """model= items (C.9.2) saying what is held of these codestreams: whole bins bare, prefixes
        with their byte count, evicted bins as subtractive statements."""
        wanted = set(codestreams)
        by_codestream: dict[int, list[str]] = {}
        for (bin_class, number, identifier), databin in self.bins.items():
            if bin_class == DataBinClass.METADATA:
                number = 0  # metadata-bins travel with codestream 0
            elif number not in wanted:
                continue
            name = _name(bin_class, identifier)
            if databin.complete:
                by_codestream.setdefault(number, []).append(name)
            elif databin.prefix_length:
                by_codestream.setdefault(number, []).append(f"{name}:{databin.prefix_length}")
        subtractive: dict[int, list[str]] = {}
        for bin_class, number, identifier in sorted(self.evicted):
            if number in wanted:
                subtractive.setdefault(number, []).append(f"-{_name(bin_class, identifier)}")
        items = []
        for number in sorted(set(by_codestream) | set(subtractive)):
            items.append(f"[{number}]")
            items.extend(sorted(by_codestream.get(number, [])))
            items.extend(subtractive.get(number, []))
        return items

    def codestream_bytes(self, codestream: int) -> int:
        """Bytes held of one codestream's own bins (main and tile headers, precincts): what its
        length can be compared with (the metadata-bin and other codestreams are not in it)."""
        return sum(databin.size for (bin_class, number, _), databin in self.bins.items()
                   if number == codestream and bin_class in (0, 1, 2, 4, 5, 6))

    def codestream_bins(self, codestream: int) -> tuple[bytes | None, dict[int, bytes], dict[int, bytes]]:
        """What a rebuild needs: the main header (None until complete), complete tile headers, and
        precinct prefixes."""
        main_key = (DataBinClass.MAIN_HEADER, codestream, 0)
        main = self.prefix(main_key) if self.complete(main_key) else None
        tile_headers, precincts = {}, {}
        for key, databin in self.bins.items():
            bin_class, number, identifier = key
            if number != codestream:
                continue
            if bin_class == DataBinClass.TILE_HEADER and databin.complete:
                tile_headers[identifier] = self.prefix(key)
            elif bin_class == DataBinClass.PRECINCT and databin.prefix_length:
                precincts[identifier] = self.prefix(key)
        return main, tile_headers, precincts


def _name(bin_class: int, identifier: int) -> str:
    """The bin-descriptor of C.9.2.1: extended precinct and tile messages (classes 1 and 5, which add
    Aux) carry the same data-bins as classes 0 and 4."""
    if bin_class == DataBinClass.MAIN_HEADER:
        return "Hm"
    return {DataBinClass.TILE_HEADER: "H", DataBinClass.PRECINCT: "P", DataBinClass.EXTENDED_PRECINCT: "P",
            DataBinClass.TILE: "T", DataBinClass.EXTENDED_TILE: "T", DataBinClass.METADATA: "M"}[bin_class] + \
        str(identifier)
