"""A JPEG 2000 file opened for serving: its codestreams, indexed on first use, and metadata-bin 0.

Files are memory-mapped, so data-bins are ranges of the map and a file of any size costs only
the pages actually sent.
"""

from __future__ import annotations

import mmap
import os

from pyjpip.codestream.databins import DataBin, DataBinClass, DataBins
from pyjpip.codestream.file_format import FileLayout, placeholder_box, read_file_layout
from pyjpip.codestream.index_cache import load_or_build
from pyjpip.codestream.packet_index import CodestreamIndex
from pyjpip.codestream.tile_parts import Codestream, read_codestream
from pyjpip.errors import CodestreamError


class JPEG2000Source:
    """One file (raw codestream or JP2/JPX/JPH): codestream ``n`` in JPIP numbering, from 0."""

    def __init__(self, data, name: str = "<bytes>", path: str | None = None, cache_dir: str | None = None):
        self.data = memoryview(data)
        self.name = name
        self.path = path
        self.cache_dir = cache_dir
        try:
            self.layout: FileLayout = read_file_layout(self.data)
        except CodestreamError as error:
            raise error.within(name) from None
        self._codestreams: dict[int, Codestream] = {}
        self._indexes: dict[int, CodestreamIndex] = {}
        self._databins: dict[int, DataBins] = {}
        self._metadata: DataBin | None = None

    @classmethod
    def open(cls, path: str, cache_dir: str | None = None, name: str | None = None) -> JPEG2000Source:
        """Map a file. ``name`` is how errors call it (a server passes the target, not its path)."""
        name = name or path
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                raise CodestreamError(f"{name}: empty file", 0)
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        return cls(mapped, name=name, path=path, cache_dir=cache_dir)

    @property
    def codestream_count(self) -> int:
        return len(self.layout.codestreams)

    def codestream(self, number: int = 0) -> Codestream:
        if not 0 <= number < self.codestream_count:
            raise CodestreamError(f"{self.name}: codestream {number} does not exist "
                                  f"(the file has {self.codestream_count})")
        if number not in self._codestreams:
            fragments = self.layout.codestreams[number]
            if len(fragments) == 1:
                (start, end), = fragments
                data = self.data[start:end]  # a view of the file: no copy
            else:  # a fragmented JPX codestream is joined once; offsets then count in the joined bytes
                start, data = 0, b"".join(bytes(self.data[a:b]) for a, b in fragments)
            try:
                self._codestreams[number] = read_codestream(data)
            except CodestreamError as error:
                raise error.within(f"{self.name}: codestream {number}", start) from None
        return self._codestreams[number]

    def index(self, number: int = 0) -> CodestreamIndex:
        if number not in self._indexes:
            codestream = self.codestream(number)
            try:
                self._indexes[number] = load_or_build(codestream, self.path, number, self.cache_dir)
            except CodestreamError as error:
                fragments = self.layout.codestreams[number]
                raise error.within(f"{self.name}: codestream {number}",
                                   fragments[0][0] if len(fragments) == 1 else 0) from None
        return self._indexes[number]

    def databins(self, number: int = 0) -> DataBins:
        if number not in self._databins:
            self._databins[number] = DataBins(self.index(number))
        return self._databins[number]

    def metadata_bin(self) -> DataBin:
        """Metadata-bin 0 (15444-9 A.3.6): the top-level boxes, each codestream box as a placeholder.
        A raw codestream has an empty one, which is nonetheless complete."""
        if self._metadata is not None:
            return self._metadata
        pieces, length, number = [], 0, 0
        for box in self.layout.boxes:
            if box.box_type in (b"jp2c", b"ftbl"):
                piece = placeholder_box(box, number, self.data)
                number += 1
                pieces.append(piece)
                length += len(piece)
            else:
                pieces.append((box.offset, box.length))
                length += box.length
        self._metadata = DataBin(DataBinClass.METADATA, 0, tuple(pieces), length)
        return self._metadata
