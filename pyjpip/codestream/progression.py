"""The order of packets in a tile (ISO/IEC 15444-1 B.12): five progression orders and POC changes.

Position-driven orders (RPCL, PCRL, CPRL) visit each precinct at the reference-grid point where
B.12.1.3–B.12.1.5 meet it: the precinct's upper-left corner scaled up to the grid, or the tile's
own origin for a first precinct that starts before the partition's grid line. Sorting precincts by
those points gives exactly the standard's loops, for any subsampling and precinct sizes.

OpenJPEG (2.5) runs those loops differently: it steps the position from the tile origin to each
multiple of the smallest step of any component and resolution (all components for RPCL and PCRL,
each on its own for CPRL). When components' subsampling factors are not powers of two apart
(XRsiz 1 and 3, YRsiz 3 and 5), some of the standard's points are never multiples of that step:
OpenJPEG skips their precincts, so it neither reads a conformant RPCL or PCRL codestream of that
kind correctly nor writes one. ``openjpeg_positions`` follows its loops, to read files it wrote;
codestreams written here avoid the case (``position_order_is_portable``).
"""

from __future__ import annotations

from typing import NamedTuple

from pyjpip.codestream.geometry import Tile
from pyjpip.codestream.markers import ImageAndTileSize, ProgressionChange, ProgressionOrder

POSITION_ORDERS = (ProgressionOrder.RPCL, ProgressionOrder.PCRL, ProgressionOrder.CPRL)


class _Precinct(NamedTuple):
    y: int
    x: int
    component: int
    resolution: int
    precinct: int


def position_order_is_portable(size: ImageAndTileSize) -> bool:
    """Whether every component's subsampling is a power-of-two multiple of the smallest, on both
    axes: then every precinct's visit point is a multiple of the smallest step, and OpenJPEG's
    position loops meet the standard's."""
    for factors in ([c.x_subsampling for c in size.components], [c.y_subsampling for c in size.components]):
        low = min(factors)
        if any(f % low or (f // low) & (f // low - 1) for f in factors):
            return False
    return True


def written_order(size: ImageAndTileSize) -> ProgressionOrder:
    """The order codestreams are written in here: RPCL (a precinct's packets together, resolutions
    coarse to fine), or CPRL where OpenJPEG would misread RPCL."""
    return ProgressionOrder.RPCL if position_order_is_portable(size) else ProgressionOrder.CPRL


def _steps(tc, axis: int) -> list[int]:
    levels = tc.decomposition_levels
    subsampling = tc.y_subsampling if axis else tc.x_subsampling
    return [subsampling << ((res.precinct_height_exponent if axis else res.precinct_width_exponent)
                            + levels - res.level) for res in tc.resolutions]


def _openjpeg_visits(tile: Tile, precincts: list[_Precinct], order: ProgressionOrder) -> list[_Precinct]:
    """The precincts OpenJPEG's position loops reach (see the module's docstring)."""
    if order not in POSITION_ORDERS:
        return precincts
    if order == ProgressionOrder.CPRL:
        step_x = {tc.component: min(_steps(tc, 0)) for tc in tile.components}
        step_y = {tc.component: min(_steps(tc, 1)) for tc in tile.components}
    else:
        low_x = min(s for tc in tile.components for s in _steps(tc, 0))
        low_y = min(s for tc in tile.components for s in _steps(tc, 1))
        step_x = dict.fromkeys((tc.component for tc in tile.components), low_x)
        step_y = dict.fromkeys((tc.component for tc in tile.components), low_y)
    return [p for p in precincts
            if (p.x == tile.x0 or p.x % step_x[p.component] == 0) and (p.y == tile.y0 or p.y % step_y[p.component] == 0)]


def _precincts(tile: Tile) -> list[_Precinct]:
    """Every non-empty precinct of the tile, with the reference-grid point where it is visited."""
    result = []
    for tc in tile.components:
        levels = tc.decomposition_levels
        for res in tc.resolutions:
            wide, high = res.precincts_wide, res.precincts_high
            if wide == 0 or high == 0:
                continue
            scale_x = tc.x_subsampling << (levels - res.level)
            scale_y = tc.y_subsampling << (levels - res.level)
            aligned_x = (res.x0 * (1 << (levels - res.level))) % (1 << (res.precinct_width_exponent + levels - res.level)) == 0
            aligned_y = (res.y0 * (1 << (levels - res.level))) % (1 << (res.precinct_height_exponent + levels - res.level)) == 0
            for py in range(high):
                if py == 0 and not aligned_y:
                    y = tile.y0
                else:
                    y = ((res.first_precinct_row + py) << res.precinct_height_exponent) * scale_y
                for px in range(wide):
                    if px == 0 and not aligned_x:
                        x = tile.x0
                    else:
                        x = ((res.first_precinct_column + px) << res.precinct_width_exponent) * scale_x
                    result.append(_Precinct(y, x, tc.component, res.level, py * wide + px))
    return result


def _ordered(precincts: list[_Precinct], layers: range, order: ProgressionOrder) -> list[tuple[int, int, int, int]]:
    """Packets (layer, resolution, component, precinct) of ``precincts`` sorted into ``order``."""
    if order == ProgressionOrder.LRCP:
        items = [(l, p.resolution, p.component, p.precinct) for p in precincts for l in layers]
        items.sort()
        return items
    if order == ProgressionOrder.RLCP:
        items = [(p.resolution, l, p.component, p.precinct) for p in precincts for l in layers]
        items.sort()
        return [(l, r, c, k) for r, l, c, k in items]
    if order == ProgressionOrder.RPCL:
        items = [(p.resolution, p.y, p.x, p.component, l, p.precinct) for p in precincts for l in layers]
        items.sort()
        return [(l, r, c, k) for r, _, _, c, l, k in items]
    if order == ProgressionOrder.PCRL:
        items = [(p.y, p.x, p.component, p.resolution, l, p.precinct) for p in precincts for l in layers]
        items.sort()
        return [(l, r, c, k) for _, _, c, r, l, k in items]
    items = [(p.component, p.y, p.x, p.resolution, l, p.precinct) for p in precincts for l in layers]  # CPRL
    items.sort()
    return [(l, r, c, k) for c, _, _, r, l, k in items]


def packet_order(tile: Tile, changes: list[ProgressionChange] | None = None,
                 order: ProgressionOrder | None = None, openjpeg_positions: bool = False) -> list[tuple[int, int, int, int]]:
    """Every packet of the tile in codestream order, as (layer, resolution, component, precinct).

    ``changes`` are the POC progressions in force (tile-part POC over main POC); without them the
    tile's COD order (or ``order``, for a rebuild) runs over all layers, resolutions and components.
    ``openjpeg_positions`` leaves out the packets OpenJPEG's position loops never reach.
    """
    layers = tile.coding_style.layers
    precincts = _precincts(tile)
    if not changes:
        order = order if order is not None else tile.coding_style.progression_order
        if openjpeg_positions:
            precincts = _openjpeg_visits(tile, precincts, order)
        return _ordered(precincts, range(layers), order)
    next_layer: dict[tuple[int, int, int], int] = {}
    result = []
    for change in changes:
        chosen = [p for p in precincts
                  if change.resolution_start <= p.resolution < change.resolution_end
                  and change.component_start <= p.component < change.component_end]
        if openjpeg_positions:
            chosen = _openjpeg_visits(tile, chosen, change.order)
        for l, r, c, k in _ordered(chosen, range(min(change.layer_end, layers)), change.order):
            if next_layer.get((c, r, k), 0) == l:
                next_layer[(c, r, k)] = l + 1
                result.append((l, r, c, k))
    return result
