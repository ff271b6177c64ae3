"""A packet index kept on disk, so opening a large file a second time costs milliseconds.

One file per source in a cache folder, named by a hash of the source's absolute path. It records
the source's size and modification time and the cache format; any difference means a rebuild.
marshal holds only plain values here (ints, bytes, tuples), is in every Python including Pyodide,
and loads far faster than JSON.
"""

from __future__ import annotations

import hashlib
import logging
import marshal
import os
import tempfile

from pyjpip.codestream.packet_index import CodestreamIndex, TileIndex, index_codestream, tile_styles
from pyjpip.codestream.geometry import make_tile
from pyjpip.codestream.tile_parts import Codestream

log = logging.getLogger(__name__)

FORMAT = 3  # 3: tiles may be laid out in OpenJPEG's position order (progression)


def cache_path(cache_dir: str, source_path: str, codestream: int) -> str:
    key = hashlib.sha256(f"{os.path.abspath(source_path)}\0{codestream}".encode()).hexdigest()[:32]
    return os.path.join(cache_dir, f"{key}.pyjpip-index")


def _stamp(source_path: str) -> tuple:
    status = os.stat(source_path)
    return (FORMAT, status.st_size, status.st_mtime_ns)


def load_or_build(codestream: Codestream, source_path: str | None, codestream_number: int,
                  cache_dir: str | None) -> CodestreamIndex:
    """The codestream's index from the cache when it is current, else built (and stored)."""
    if not cache_dir or not source_path:
        return index_codestream(codestream)
    path = cache_path(cache_dir, source_path, codestream_number)
    stamp = _stamp(source_path)
    try:
        with open(path, "rb") as f:
            stored = marshal.load(f)
        if stored[0] == stamp:
            return _restore(codestream, stored[1])
        log.info("index cache for %s is stale; rebuilding", source_path)
    except FileNotFoundError:
        pass
    except (OSError, EOFError, ValueError, TypeError, IndexError, KeyError) as exc:
        log.warning("index cache %s is unreadable (%s); rebuilding", path, exc)
    index = index_codestream(codestream)
    _store(path, stamp, index)
    return index


def _store(path: str, stamp: tuple, index: CodestreamIndex) -> None:
    tiles = tuple((tuple(t.header_ranges), t.used_packet_lengths, t.openjpeg_positions,
                   tuple((key, tuple(packets)) for key, packets in t.precincts.items())) for t in index.tiles)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as f:
            marshal.dump((stamp, tiles), f)
        os.replace(temporary, path)  # atomic: a reader never sees half a file
    except OSError as exc:
        log.warning("cannot write index cache %s: %s", path, exc)
        try:
            os.unlink(temporary)
        except OSError:
            pass


def _restore(codestream: Codestream, tiles: tuple) -> CodestreamIndex:
    if len(tiles) != codestream.size.tile_count:
        raise ValueError("tile count differs")
    result = []
    for number, (header_ranges, used_lengths, openjpeg_positions, precincts) in enumerate(tiles):
        parts = codestream.tiles.get(number, [])
        coding, styles = tile_styles(codestream.main, parts[0].header if parts else None)
        tile = make_tile(codestream.size, number, coding, styles)
        result.append(TileIndex(tile, list(header_ranges), {key: list(packets) for key, packets in precincts},
                                used_lengths, openjpeg_positions))
    return CodestreamIndex(codestream, result)
