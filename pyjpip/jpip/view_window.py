"""View windows (ISO/IEC 15444-9 C.4): from fsiz/roff/rsiz/comps/layers to resolution, region, precincts.

The frame size fx'(r) = ceil(Xsiz / 2^r) - ceil(XOsiz / 2^r) picks the resolution by the request's
rounding (C.4.1; round-down is the default); the region is scaled to that frame (C.4.2-C.4.3) and
carried back to the reference grid; a precinct belongs to the window when its coefficients reach
the region through the synthesis filters (geometry.precinct_affects_region).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyjpip.codestream.geometry import precinct_affects_region
from pyjpip.codestream.markers import ImageAndTileSize, ceil_div
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


def resolve_window(request: JPIPRequest, index: CodestreamIndex) -> ResolvedWindow:
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
    discard = choose_discard(size, fx, fy, direction, most)
    frame = frame_size(size, discard)
    if frame != (fx, fy):
        changed["JPIP-fsiz"] = f"{frame[0]},{frame[1]}"
    ox, oy = request.roff or (0, 0)
    sx, sy = request.rsiz if request.rsiz is not None else (max(fx - ox, 0), max(fy - oy, 0))
    # C.4.2: offsets scale down (floor), ends scale up (ceil), clipped to the frame.
    x0 = min(ox * frame[0] // fx, frame[0])
    y0 = min(oy * frame[1] // fy, frame[1])
    x1 = min(frame[0], ceil_div((ox + sx) * frame[0], fx))
    y1 = min(frame[1], ceil_div((oy + sy) * frame[1], fy))
    if (x0, y0) != (ox, oy) and (request.roff is not None or "JPIP-fsiz" in changed):
        changed["JPIP-roff"] = f"{x0},{y0}"
    if (x1 - x0, y1 - y0) != (sx, sy) and (request.rsiz is not None or "JPIP-fsiz" in changed):
        changed["JPIP-rsiz"] = f"{x1 - x0},{y1 - y0}"
    empty = x1 <= x0 or y1 <= y0
    scale = 1 << discard
    # Back to the reference grid: the resolution's canvas starts at ceil(XOsiz / 2^r).
    region = ((ceil_div(size.x_offset, scale) + x0) * scale, (ceil_div(size.y_offset, scale) + y0) * scale,
              min(size.x_size, (ceil_div(size.x_offset, scale) + x1) * scale),
              min(size.y_size, (ceil_div(size.y_offset, scale) + y1) * scale))
    region = (max(region[0], size.x_offset), max(region[1], size.y_offset), region[2], region[3])
    return ResolvedWindow(discard, frame, (x0, y0), (x1 - x0, y1 - y0), region, components, layers, changed,
                          empty=empty)


def _components(request: JPIPRequest, count: int, changed: dict) -> tuple[int, ...]:
    if request.comps is None:
        return tuple(range(count))
    chosen = sorted({c for first, last in request.comps
                     for c in range(first, (count - 1 if last is None else min(last, count - 1)) + 1)})
    asked = sorted({c for first, last in request.comps for c in range(first, (first if last is None else last) + 1)})
    if chosen != asked:
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
