"""The order of packets in a tile (ISO/IEC 15444-1 B.12): five progression orders and POC changes.

Position-driven orders (RPCL, PCRL, CPRL) visit each precinct at the reference-grid point where
B.12.1.3–B.12.1.5 meet it: the precinct's upper-left corner scaled up to the grid, or the tile's
own origin for a first precinct that starts before the partition's grid line. Sorting precincts by
those points gives exactly the standard's loops, for any subsampling and precinct sizes.
"""

from __future__ import annotations

from typing import Iterator, NamedTuple

from pyjpip.codestream.geometry import Tile
from pyjpip.codestream.markers import ProgressionChange, ProgressionOrder


class Packet(NamedTuple):
    """One packet's identity: layer, resolution, component, precinct (index within its resolution)."""

    layer: int
    resolution: int
    component: int
    precinct: int


class _Precinct(NamedTuple):
    y: int
    x: int
    component: int
    resolution: int
    precinct: int


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


_ORDER_KEYS = {
    ProgressionOrder.LRCP: lambda p, l: (l, p.resolution, p.component, p.precinct),
    ProgressionOrder.RLCP: lambda p, l: (p.resolution, l, p.component, p.precinct),
    ProgressionOrder.RPCL: lambda p, l: (p.resolution, p.y, p.x, p.component, l),
    ProgressionOrder.PCRL: lambda p, l: (p.y, p.x, p.component, p.resolution, l),
    ProgressionOrder.CPRL: lambda p, l: (p.component, p.y, p.x, p.resolution, l),
}


def packet_order(tile: Tile, changes: list[ProgressionChange] | None = None,
                 order: ProgressionOrder | None = None) -> Iterator[Packet]:
    """Every packet of the tile in codestream order.

    ``changes`` are the POC progressions in force (tile-part POC over main POC); without them the
    tile's COD order (or ``order``, for a rebuild) runs over all layers, resolutions and components.
    """
    layers = tile.coding_style.layers
    precincts = _precincts(tile)
    if not changes:
        key = _ORDER_KEYS[order if order is not None else tile.coding_style.progression_order]
        sequence = sorted(((key(p, l), p, l) for p in precincts for l in range(layers)), key=lambda item: item[0])
        for _, p, l in sequence:
            yield Packet(l, p.resolution, p.component, p.precinct)
        return
    next_layer: dict[tuple[int, int, int], int] = {}
    for change in changes:
        key = _ORDER_KEYS[change.order]
        chosen = [p for p in precincts
                  if change.resolution_start <= p.resolution < change.resolution_end
                  and change.component_start <= p.component < change.component_end]
        layer_end = min(change.layer_end, layers)
        sequence = sorted(((key(p, l), p, l) for p in chosen for l in range(layer_end)), key=lambda item: item[0])
        for _, p, l in sequence:
            identity = (p.component, p.resolution, p.precinct)
            if next_layer.get(identity, 0) == l:
                next_layer[identity] = l + 1
                yield Packet(l, p.resolution, p.component, p.precinct)
