"""View windows fetched through pyjpip's JPIP server and client and compared, tile-component by
tile-component, with opj_decompress of the original: the helpers of the conformance and the
subsampled-generator tests. The reference-grid arithmetic here is the test's own (15444-1 B.2,
B.3 Eq. B-7..B-10, B.5 Eq. B-12 and B-14), and so is the cutting of tile-parts and of a JP2 file's
codestream: none of it is pyjpip's."""

from __future__ import annotations

import random
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

from pyjpip.codestream.markers import read_main_header
from pyjpip.jpip.client import JPIPClient, ViewWindow, fetch_window
from pyjpip.jpip.picture import rebuild_served
from pyjpip.jpip.view_window import frame_size
from jpip_support import InProcessTransport
from reference import pgx_array


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def contiguous_codestream(data: bytes) -> bytes:
    """A raw codestream as it is; a JP2 file's first contiguous codestream box ('jp2c', I.5.4)."""
    if data[:4] == b"\xff\x4f\xff\x51":
        return data
    position = 0
    while position + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        header = 8
        if length == 1:
            length, header = struct.unpack(">Q", data[position + 8 : position + 16])[0], 16
        elif length == 0:
            length = len(data) - position
        if kind == b"jp2c":
            return data[position + header : position + length]
        position += length
    raise AssertionError("no contiguous codestream box")


def tile_bounds(size, t: int) -> tuple[int, int, int, int]:
    """Eq. B-7..B-10."""
    across = ceil_div(size.x_size - size.tile_x_offset, size.tile_width)
    p, q = t % across, t // across
    return (max(size.tile_x_offset + p * size.tile_width, size.x_offset),
            max(size.tile_y_offset + q * size.tile_height, size.y_offset),
            min(size.tile_x_offset + (p + 1) * size.tile_width, size.x_size),
            min(size.tile_y_offset + (q + 1) * size.tile_height, size.y_size))


def tile_count(size) -> int:
    return (ceil_div(size.x_size - size.tile_x_offset, size.tile_width)
            * ceil_div(size.y_size - size.tile_y_offset, size.tile_height))


def span(a: int, b: int, subsampling: int, reduce: int) -> tuple[int, int]:
    """Samples of a component on [a, b) of the reference grid at a reduction (B-12, B-14)."""
    return ceil_div(ceil_div(a, subsampling), 1 << reduce), ceil_div(ceil_div(b, subsampling), 1 << reduce)


def tiles_without_samples(size, reduce: int) -> list[int]:
    """Tiles in which no component has a sample at that reduction."""
    empty = []
    for t in range(tile_count(size)):
        x0, y0, x1, y1 = tile_bounds(size, t)
        if all(span(x0, x1, c.x_subsampling, reduce)[0] == span(x0, x1, c.x_subsampling, reduce)[1]
               or span(y0, y1, c.y_subsampling, reduce)[0] == span(y0, y1, c.y_subsampling, reduce)[1]
               for c in size.components):
            empty.append(t)
    return empty


def without_tile_parts(codestream: bytes, tiles) -> bytes:
    """The codestream with every tile-part of ``tiles`` cut out (A.4.2: SOT's Isot and Psot)."""
    position = 2
    while struct.unpack(">H", codestream[position : position + 2])[0] != 0xFF90:
        position += 2 + struct.unpack(">H", codestream[position + 2 : position + 4])[0]
    out = bytearray(codestream[:position])
    while struct.unpack(">H", codestream[position : position + 2])[0] == 0xFF90:
        tile, length = struct.unpack(">HI", codestream[position + 4 : position + 10])
        end = position + length if length else len(codestream) - 2
        if tile not in tiles:
            out += codestream[position:end]
        position = end
    return bytes(out) + b"\xff\xd9"


def opj_planes(codestream: bytes, reduce: int) -> tuple[list | None, str]:
    """Every component opj_decompress decodes at -r reduce (None when it fails), and its last error."""
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "in.j2k"
        source.write_bytes(codestream)
        result = subprocess.run([shutil.which("opj_decompress"), "-i", str(source), "-o", f"{folder}/out.pgx",
                                 "-r", str(reduce)], capture_output=True, text=True)
        errors = [line for line in (result.stdout + result.stderr).splitlines() if "ERROR" in line]
        if result.returncode:
            return None, " / ".join(errors[-2:])
        outputs = sorted(Path(folder).glob("out*.pgx"), key=lambda p: int(p.stem.rsplit("_", 1)[-1]))
        return [pgx_array(p.read_bytes()) for p in outputs], ""


def on_its_grid(size, component, shape, reduce: int) -> tuple[int, int]:
    """The subsampling a decoded plane is on: the component's, or 1 x 1 where opj_decompress has
    upsampled it (it takes 3 components with the second subsampled for 4:2:0 or 4:2:2 sYCC and
    converts them to RGB on the first one's grid, a raw codestream too)."""
    def extent(subsampling_x, subsampling_y):
        (a, b), (c, d) = (span(size.x_offset, size.x_size, subsampling_x, reduce),
                          span(size.y_offset, size.y_size, subsampling_y, reduce))
        return d - c, b - a

    own = (component.x_subsampling, component.y_subsampling)
    if shape == extent(*own):
        return own
    assert shape == extent(1, 1), f"a plane of {shape}: neither the component's samples nor the image's"
    return 1, 1


def differences(expected: list, actual: list, size, reduce: int, region=None, skip=frozenset()) -> list:
    """(tile, component) whose samples differ, within ``region`` of the reference grid (x0, y0, x1,
    y1; None: the whole image); tile-components in ``skip`` are not compared."""
    assert len(actual) == len(expected), f"{len(actual)} components decoded, {len(expected)} expected"
    region = region or (size.x_offset, size.y_offset, size.x_size, size.y_size)
    found = []
    for c, (component, e, a) in enumerate(zip(size.components, expected, actual)):
        xs, ys = on_its_grid(size, component, e.shape, reduce)
        origin_x, origin_y = span(size.x_offset, size.x_offset, xs, reduce)[0], span(size.y_offset, size.y_offset,
                                                                                     ys, reduce)[0]
        assert a.shape == e.shape, f"component {c}: {a.shape} decoded, {e.shape} expected"
        for t in range(tile_count(size)):
            if (t, c) in skip:
                continue
            x0, y0, x1, y1 = tile_bounds(size, t)
            x0, y0, x1, y1 = max(x0, region[0]), max(y0, region[1]), min(x1, region[2]), min(y1, region[3])
            if x1 <= x0 or y1 <= y0:
                continue
            (a0, a1), (b0, b1) = span(x0, x1, xs, reduce), span(y0, y1, ys, reduce)
            box = (slice(b0 - origin_y, b1 - origin_y), slice(a0 - origin_x, a1 - origin_x))
            if (a[box] != e[box]).any():
                found.append((t, c))
    return found


def full_windows(size, levels: int) -> list[tuple[int, tuple[int, int]]]:
    """(discard, fsiz) for every resolution with a frame size of its own (round-down takes the
    least discard whose frame fits: C.4.1), coarsest first."""
    seen, found = set(), []
    for discard in range(levels + 1):
        frame = frame_size(size, discard)
        if frame not in seen:
            seen.add(frame)
            found.append((discard, frame))
    return found[::-1]


def random_regions(size, levels: int, seed, count: int) -> list[tuple[int, ViewWindow]]:
    """``count`` seeded regions of random size and place at random resolutions."""
    rng = random.Random(seed)
    found = []
    for _ in range(count):
        discard = rng.randint(0, levels)
        fx, fy = frame_size(size, discard)
        sx, sy = rng.randint(1, fx), rng.randint(1, fy)
        found.append((discard, ViewWindow(fsiz=(fx, fy), roff=(rng.randint(0, fx - sx), rng.randint(0, fy - sy)),
                                          rsiz=(sx, sy))))
    return found


def fetch(server, target: str, window: ViewWindow, client: JPIPClient | None = None):
    """The window fetched through ``server`` by a JPIPClient (a new session unless ``client`` is
    given) and the picture rebuilt from its cache (pyjpip.jpip.picture)."""
    client = client or JPIPClient(f"http://example.test/jpip?target={target}")
    fetch_window(client, window, InProcessTransport(server))
    assert client.bytes_received == client.cache.bytes, f"{target} {window}: bytes arrived twice"
    return rebuild_served(client, window)


def levels_of(codestream: bytes) -> int:
    header = read_main_header(codestream)
    return min(header.component_style(c).decomposition_levels for c in range(len(header.size.components)))


def opj_tile_planes(codestream: bytes, tile: int, reduce: int) -> list | None:
    """Every component of one tile as opj_decompress -t decodes it at -r reduce (None when it fails)."""
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "in.j2k"
        source.write_bytes(codestream)
        result = subprocess.run([shutil.which("opj_decompress"), "-i", str(source), "-o", f"{folder}/out.pgx",
                                 "-r", str(reduce), "-t", str(tile)], capture_output=True, text=True)
        if result.returncode:
            return None
        outputs = sorted(Path(folder).glob("out*.pgx"), key=lambda p: int(p.stem.rsplit("_", 1)[-1]))
        return [pgx_array(p.read_bytes()) for p in outputs]


def tile_by_tile_differences(original: bytes, actual: list, size, reduce: int, region, pairs) -> list:
    """(tile, component) of ``pairs`` whose samples within ``region`` differ from opj_decompress of
    that tile alone (-t); a tile it cannot decode alone counts as differing."""
    region = region or (size.x_offset, size.y_offset, size.x_size, size.y_size)
    found = []
    for t in sorted({t for t, _ in pairs}):
        tile_planes = opj_tile_planes(original, t, reduce)
        for c in sorted(c for u, c in pairs if u == t):
            xs, ys = on_its_grid(size, size.components[c], actual[c].shape, reduce)
            tx0, ty0, tx1, ty1 = tile_bounds(size, t)
            x0, y0, x1, y1 = max(tx0, region[0]), max(ty0, region[1]), min(tx1, region[2]), min(ty1, region[3])
            if x1 <= x0 or y1 <= y0:
                continue
            if tile_planes is None:
                found.append((t, c))
                continue
            (a0, a1), (b0, b1) = span(x0, x1, xs, reduce), span(y0, y1, ys, reduce)
            (ta, _), (tb, _) = span(tx0, tx1, xs, reduce), span(ty0, ty1, ys, reduce)
            ox, oy = span(size.x_offset, size.x_offset, xs, reduce)[0], span(size.y_offset, size.y_offset, ys, reduce)[0]
            mine = actual[c][b0 - oy : b1 - oy, a0 - ox : a1 - ox]
            theirs = tile_planes[c][b0 - tb : b1 - tb, a0 - ta : a1 - ta]
            if mine.shape != theirs.shape or (mine != theirs).any():
                found.append((t, c))
    return found
