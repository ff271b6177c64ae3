"""View windows (ISO/IEC 15444-9 C.4): from fsiz/roff/rsiz/comps/layers to resolution, region, precincts.

The frame size fx'(r) = ceil(Xsiz / 2^r) - ceil(XOsiz / 2^r) picks the resolution by the request's
rounding (C.4.1; round-down is the default); the region is scaled to that frame (C.4.2-C.4.3) and
carried back to the reference grid; a precinct belongs to the window when its coefficients reach
the region through the synthesis filters (geometry.precinct_affects_region).

map_view_window is the one place C.4 is worked out from the SIZ values: the server's
resolve_window and a client's pictures (pyjpip.jpip.picture) both use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyjpip.codestream.geometry import precinct_affects_region
from pyjpip.codestream.markers import ImageAndTileSize, MainHeader, ceil_div
from pyjpip.codestream.packet_index import CodestreamIndex
from pyjpip.jpip.request import CLOSEST, ROUND_DOWN, ROUND_UP, JPIPRequest


@dataclass
class ResolvedWindow:
    """A view window as the server will serve it for one codestream."""

    discard: int  # resolution levels discarded
    frame: tuple[int, int]  # fx', fy'
    offset: tuple[int, int]  # ox', oy' in the frame
    size: tuple[int, int]  # sx', sy' in the frame
    region: tuple[int, int, int, int]  # reference grid x0, y0, x1, y1
    components: tuple[int, ...]
    layers: int
    changed: dict[str, str] = field(default_factory=dict)  # JPIP-* response headers to send
    empty: bool = False  # fsiz=0,0 or no view window: headers and metadata only


def frame_size(size: ImageAndTileSize, discard: int) -> tuple[int, int]:
    """fx'(r), fy'(r) of C.4.1."""
    scale = 1 << discard
    return (ceil_div(size.x_size, scale) - ceil_div(size.x_offset, scale),
            ceil_div(size.y_size, scale) - ceil_div(size.y_offset, scale))


def choose_discard(size: ImageAndTileSize, fx: int, fy: int, direction: str, most: int) -> int:
    """Resolution levels to discard for a requested frame size, 0 <= r <= ``most`` (C.4.1)."""
    candidates = range(most + 1)
    if direction == ROUND_DOWN:
        fitting = [r for r in candidates if all(a <= b for a, b in zip(frame_size(size, r), (fx, fy)))]
        return min(fitting) if fitting else most
    if direction == ROUND_UP:
        covering = [r for r in candidates if all(a >= b for a, b in zip(frame_size(size, r), (fx, fy)))]
        return max(covering) if covering else 0
    assert direction == CLOSEST
    # Least difference of area; on a tie, the larger resolution (fewer levels discarded).
    return min(candidates, key=lambda r: (abs(frame_size(size, r)[0] * frame_size(size, r)[1] - fx * fy), r))


def header_levels(header: MainHeader) -> int:
    """The most resolution levels a whole-image window may discard as the main header alone tells
    (COD/COC): the fewest decomposition levels of any component. A tile-part COD/COC may give a tile
    fewer; the server, which reads them, says so with JPIP-fsiz (D.2)."""
    return min(header.component_style(c).decomposition_levels for c in range(len(header.size.components)))


@dataclass(frozen=True)
class WindowGeometry:
    """Where a view window lands in one codestream (C.4.1-C.4.3): the resolution, the region in
    that resolution's frame, and the same region on the reference grid (what to send or decode)."""

    discard: int  # resolution levels discarded
    frame: tuple[int, int]  # fx', fy'
    offset: tuple[int, int]  # ox', oy' in the frame
    size: tuple[int, int]  # sx', sy' in the frame
    region: tuple[int, int, int, int]  # reference grid x0, y0, x1, y1

    @property
    def empty(self) -> bool:
        return self.size[0] <= 0 or self.size[1] <= 0

    @property
    def frame_region(self) -> tuple[int, int, int, int]:
        """The region in the frame as x0, y0, x1, y1."""
        return (*self.offset, self.offset[0] + self.size[0], self.offset[1] + self.size[1])


def requested_region(fsiz: tuple[int, int], roff: tuple[int, int] | None,
                     rsiz: tuple[int, int] | None) -> tuple[int, int, int, int]:
    """ox, oy, sx, sy as asked: roff defaults to 0,0 and rsiz to the rest of the frame (C.4.2-C.4.3)."""
    ox, oy = roff or (0, 0)
    sx, sy = rsiz if rsiz is not None else (max(fsiz[0] - ox, 0), max(fsiz[1] - oy, 0))
    return ox, oy, sx, sy


def map_view_window(size: ImageAndTileSize, levels: int, fsiz: tuple[int, int],
                    roff: tuple[int, int] | None = None, rsiz: tuple[int, int] | None = None,
                    direction: str = ROUND_DOWN) -> WindowGeometry:
    """C.4 from the SIZ values alone: the server resolves requests with it and a client rebuilds
    pictures with it, so the two cannot disagree. ``levels`` bounds the discard (see header_levels);
    ``fsiz`` must be non-zero (fsiz=0,0 asks for no imagery)."""
    fx, fy = fsiz
    discard = choose_discard(size, fx, fy, direction, levels)
    frame = frame_size(size, discard)
    ox, oy, sx, sy = requested_region(fsiz, roff, rsiz)
    # C.4.2: offsets scale down (floor), ends scale up (ceil), clipped to the frame.
    x0 = min(ox * frame[0] // fx, frame[0])
    y0 = min(oy * frame[1] // fy, frame[1])
    x1 = max(x0, min(frame[0], ceil_div((ox + sx) * frame[0], fx)))
    y1 = max(y0, min(frame[1], ceil_div((oy + sy) * frame[1], fy)))
    scale = 1 << discard
    # Back to the reference grid: the resolution's canvas starts at ceil(XOsiz / 2^r).
    cx, cy = ceil_div(size.x_offset, scale), ceil_div(size.y_offset, scale)
    x_start, y_start = (min(max((cx + x0) * scale, size.x_offset), size.x_size),
                        min(max((cy + y0) * scale, size.y_offset), size.y_size))
    region = (x_start, y_start, min(size.x_size, (cx + x1) * scale), min(size.y_size, (cy + y1) * scale))
    return WindowGeometry(discard, frame, (x0, y0), (x1 - x0, y1 - y0), region)


def resolve_window(request: JPIPRequest, index: CodestreamIndex) -> ResolvedWindow:
    """The window a request asks of one codestream, and the JPIP-* headers that say what changed."""
    size = index.size
    most = min(tc.decomposition_levels for tile in index.tiles for tc in tile.tile.components)
    layers_available = max(tile.tile.coding_style.layers for tile in index.tiles)
    changed: dict[str, str] = {}
    components = _components(request, len(size.components), changed)
    layers = layers_available if request.layers is None else min(request.layers, layers_available)
    if request.layers is not None and request.layers > layers_available:
        changed["JPIP-layers"] = str(layers_available)
    if request.fsiz is None or request.fsiz[0] == 0 or request.fsiz[1] == 0:
        return ResolvedWindow(most, frame_size(size, most), (0, 0), (0, 0), (0, 0, 0, 0), components, layers,
                              changed, empty=True)
    fx, fy, direction = request.fsiz
    geometry = map_view_window(size, most, (fx, fy), request.roff, request.rsiz, direction)
    frame, (x0, y0), served_size = geometry.frame, geometry.offset, geometry.size
    if frame != (fx, fy):
        changed["JPIP-fsiz"] = f"{frame[0]},{frame[1]}"
    ox, oy, sx, sy = requested_region((fx, fy), request.roff, request.rsiz)
    if (x0, y0) != (ox, oy) and (request.roff is not None or "JPIP-fsiz" in changed):
        changed["JPIP-roff"] = f"{x0},{y0}"
    if served_size != (sx, sy) and (request.rsiz is not None or "JPIP-fsiz" in changed):
        changed["JPIP-rsiz"] = f"{served_size[0]},{served_size[1]}"
    return ResolvedWindow(geometry.discard, frame, (x0, y0), served_size, geometry.region, components, layers,
                          changed, empty=geometry.empty)


def _components(request: JPIPRequest, count: int, changed: dict) -> tuple[int, ...]:
    """The components served (C.4.5): the ranges asked for, within the image's ``count``. Every range
    is clipped to ``count`` before it is walked, so the work is bounded by the image, not by the request
    (comps=0-4294967295 names four billion). JPIP-comps says what is served when it differs from what
    was named: a range reaching past the last component, or an open range (``n-``) is served as far as
    there are components and is not a change."""
    if request.comps is None:
        return tuple(range(count))
    chosen = sorted({c for first, last in request.comps
                     for c in range(min(first, count), (count - 1 if last is None else min(last, count - 1)) + 1)})
    beyond = any(first >= count or (last is not None and last >= count) for first, last in request.comps)
    if beyond:
        changed["JPIP-comps"] = ",".join(map(str, chosen)) if chosen else ""
    return tuple(chosen)


def window_precincts(index: CodestreamIndex, window: ResolvedWindow) -> list[tuple[int, int, int, int, int]]:
    """Precincts the window needs, as (levels above, tile, component, resolution, precinct), lowest
    resolutions first (levels above = decomposition levels still to synthesise above the precinct)."""
    if window.empty:
        return []
    x0, y0, x1, y1 = window.region
    chosen = []
    for tile_index in index.tiles:
        tile = tile_index.tile
        if tile.x1 <= x0 or x1 <= tile.x0 or tile.y1 <= y0 or y1 <= tile.y0:
            continue
        components = window.components
        if tile.coding_style.multiple_component_transform and set(components) & {0, 1, 2} \
                and len(tile.components) >= 3:
            # The inverse colour transform (Annex G) makes each of components 0-2 from all three.
            components = tuple(sorted(set(components) | {0, 1, 2}))
        for c in components:
            tc = tile.components[c]
            top = max(0, tc.decomposition_levels - window.discard)
            for res in tc.resolutions[: top + 1]:
                for precinct in range(res.precinct_count):
                    if precinct_affects_region(tc, res.level, precinct, window.region):
                        chosen.append((top - res.level, tile.index, c, res.level, precinct))
    chosen.sort(key=lambda item: (-item[0], item[1], item[2], item[3], item[4]))
    return chosen
