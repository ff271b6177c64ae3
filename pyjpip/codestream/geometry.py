"""Where every sample, subband, precinct and code-block lies (ISO/IEC 15444-1 Annex B).

Tiles (B.3, Eq. B-7..B-10), tile-components (B-12), resolution levels (B-14), subbands (B-15),
precinct partitions (B.6) and code-block partitions (B.7). Precinct partitions are anchored at 0
on each resolution's grid and code-blocks at 0 on each subband's grid, whatever the offsets.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from pyjpip.codestream.markers import (
    CodingStyle,
    ComponentCodingStyle,
    ImageAndTileSize,
    ceil_div,
)

#: Subband orientations (Table B.2 / Annex F): xob, yob offsets for HL, LH, HH.
LL, HL, LH, HH = 0, 1, 2, 3
_BAND_OFFSETS = {HL: (1, 0), LH: (0, 1), HH: (1, 1)}


@dataclass(frozen=True)
class Band:
    """A subband of one resolution level, in its own coordinates (Eq. B-15)."""

    orientation: int
    x0: int
    y0: int
    x1: int
    y1: int


@dataclass(frozen=True)
class PrecinctBand:
    """The part of one precinct that falls in one subband: a grid of code-blocks (B.7)."""

    orientation: int
    x0: int  # clipped precinct extent in subband coordinates
    y0: int
    x1: int
    y1: int
    blocks_wide: int
    blocks_high: int

    @property
    def block_count(self) -> int:
        return self.blocks_wide * self.blocks_high


@dataclass(frozen=True)
class Resolution:
    """Resolution level r of a tile-component (r = 0 is the lowest, LL only)."""

    level: int
    x0: int
    y0: int
    x1: int
    y1: int
    precinct_width_exponent: int  # PPx
    precinct_height_exponent: int  # PPy
    code_block_width_exponent: int  # xcb', limited by the precinct size
    code_block_height_exponent: int
    bands: tuple[Band, ...]

    @cached_property
    def empty(self) -> bool:
        return self.x1 <= self.x0 or self.y1 <= self.y0

    @cached_property
    def first_precinct_column(self) -> int:
        return self.x0 >> self.precinct_width_exponent

    @cached_property
    def first_precinct_row(self) -> int:
        return self.y0 >> self.precinct_height_exponent

    @cached_property
    def precincts_wide(self) -> int:
        if self.empty:
            return 0
        return ceil_div(self.x1, 1 << self.precinct_width_exponent) - self.first_precinct_column

    @cached_property
    def precincts_high(self) -> int:
        if self.empty:
            return 0
        return ceil_div(self.y1, 1 << self.precinct_height_exponent) - self.first_precinct_row

    @cached_property
    def precinct_count(self) -> int:
        return self.precincts_wide * self.precincts_high

    def precinct_extent(self, precinct: int) -> tuple[int, int, int, int]:
        """The precinct's area on this resolution's grid, clipped to the resolution."""
        px, py = precinct % self.precincts_wide, precinct // self.precincts_wide
        x0 = (self.first_precinct_column + px) << self.precinct_width_exponent
        y0 = (self.first_precinct_row + py) << self.precinct_height_exponent
        return (max(x0, self.x0), max(y0, self.y0),
                min(x0 + (1 << self.precinct_width_exponent), self.x1),
                min(y0 + (1 << self.precinct_height_exponent), self.y1))

    def precinct_bands(self, precinct: int) -> tuple[PrecinctBand, ...]:
        """The precinct's code-block grid in each subband, in packet order (LL, or HL, LH, HH)."""
        px, py = precinct % self.precincts_wide, precinct // self.precincts_wide
        shift = 0 if self.level == 0 else 1
        width_exp = self.precinct_width_exponent - shift
        height_exp = self.precinct_height_exponent - shift
        # B.6: the resolution's precinct grid, carried to the subband (halved for r > 0).
        start_x = ((self.first_precinct_column + px) << self.precinct_width_exponent) >> shift
        start_y = ((self.first_precinct_row + py) << self.precinct_height_exponent) >> shift
        xcb, ycb = self.code_block_width_exponent, self.code_block_height_exponent
        result = []
        for band in self.bands:
            x0, y0 = max(start_x, band.x0), max(start_y, band.y0)
            x1, y1 = min(start_x + (1 << width_exp), band.x1), min(start_y + (1 << height_exp), band.y1)
            if x1 <= x0 or y1 <= y0:
                result.append(PrecinctBand(band.orientation, x0, y0, x0, y0, 0, 0))
                continue
            wide = ceil_div(x1, 1 << xcb) - (x0 >> xcb)
            high = ceil_div(y1, 1 << ycb) - (y0 >> ycb)
            result.append(PrecinctBand(band.orientation, x0, y0, x1, y1, wide, high))
        return tuple(result)


@dataclass(frozen=True)
class TileComponent:
    """One component of one tile (Eq. B-12) with its resolution levels."""

    component: int
    x0: int
    y0: int
    x1: int
    y1: int
    x_subsampling: int
    y_subsampling: int
    style: ComponentCodingStyle
    resolutions: tuple[Resolution, ...]

    @property
    def decomposition_levels(self) -> int:
        return self.style.decomposition_levels

    @cached_property
    def precinct_offsets(self) -> tuple[int, ...]:
        """Sequence number of each resolution's first precinct within the tile-component (A.3.2.1)."""
        offsets, total = [], 0
        for resolution in self.resolutions:
            offsets.append(total)
            total += resolution.precinct_count
        return tuple(offsets)

    @property
    def precinct_total(self) -> int:
        return self.precinct_offsets[-1] + self.resolutions[-1].precinct_count


@dataclass(frozen=True)
class Tile:
    """A tile on the reference grid (Eq. B-7..B-10) with its tile-components and coding style."""

    index: int
    x0: int
    y0: int
    x1: int
    y1: int
    coding_style: CodingStyle
    components: tuple[TileComponent, ...]

    def has_samples(self, reduce: int = 0) -> bool:
        """Whether any component has a sample in the tile once ``reduce`` resolution levels are
        discarded (a component with fewer levels keeps its lowest resolution). Eq. B-12 and B-14 give
        a tile-component or its resolution no area when no multiple of XRsiz (YRsiz) and 2^reduce
        falls in the tile's span: the ISO conformance codestream b2_mono (5x3) has 9 tiles of 25
        without samples, p1_06 (3x3 tiles) 7 of 16 at reduce 2. Such a tile has no packets to
        decode; OpenJPEG refuses to decode a tile-part of one ("Failed to decode tile")."""
        return any(not tc.resolutions[max(0, tc.decomposition_levels - reduce)].empty for tc in self.components)


def tile_bounds(size: ImageAndTileSize, index: int) -> tuple[int, int, int, int]:
    """The tile's area on the reference grid (Eq. B-7..B-10)."""
    p, q = index % size.tiles_across, index // size.tiles_across
    x0 = max(size.tile_x_offset + p * size.tile_width, size.x_offset)
    y0 = max(size.tile_y_offset + q * size.tile_height, size.y_offset)
    x1 = min(size.tile_x_offset + (p + 1) * size.tile_width, size.x_size)
    y1 = min(size.tile_y_offset + (q + 1) * size.tile_height, size.y_size)
    return x0, y0, x1, y1


def make_tile(size: ImageAndTileSize, index: int, coding_style: CodingStyle,
              component_styles: list[ComponentCodingStyle]) -> Tile:
    """Lay out tile ``index`` with the coding style in force for it (after COD/COC precedence)."""
    x0, y0, x1, y1 = tile_bounds(size, index)
    components = []
    for c, (component, style) in enumerate(zip(size.components, component_styles)):
        cx0, cx1 = ceil_div(x0, component.x_subsampling), ceil_div(x1, component.x_subsampling)
        cy0, cy1 = ceil_div(y0, component.y_subsampling), ceil_div(y1, component.y_subsampling)
        components.append(TileComponent(c, cx0, cy0, cx1, cy1, component.x_subsampling, component.y_subsampling,
                                        style, _resolutions(cx0, cy0, cx1, cy1, style)))
    return Tile(index, x0, y0, x1, y1, coding_style, tuple(components))


def _resolutions(x0: int, y0: int, x1: int, y1: int, style: ComponentCodingStyle) -> tuple[Resolution, ...]:
    levels = style.decomposition_levels
    resolutions = []
    for r in range(levels + 1):
        scale = 1 << (levels - r)
        ppx, ppy = style.precinct_exponents[r]
        if r == 0:
            bands = (Band(LL, ceil_div(x0, scale), ceil_div(y0, scale), ceil_div(x1, scale), ceil_div(y1, scale)),)
            xcb = min(style.code_block_width_exponent, ppx)
            ycb = min(style.code_block_height_exponent, ppy)
        else:
            n = levels - r + 1  # decomposition level of this resolution's subbands
            half = 1 << (n - 1)
            band_scale = 1 << n
            bands = tuple(
                Band(orientation,
                     ceil_div(x0 - half * xob, band_scale), ceil_div(y0 - half * yob, band_scale),
                     ceil_div(x1 - half * xob, band_scale), ceil_div(y1 - half * yob, band_scale))
                for orientation, (xob, yob) in _BAND_OFFSETS.items()
            )
            xcb = min(style.code_block_width_exponent, ppx - 1)
            ycb = min(style.code_block_height_exponent, ppy - 1)
        resolutions.append(Resolution(r, ceil_div(x0, scale), ceil_div(y0, scale), ceil_div(x1, scale),
                                      ceil_div(y1, scale), ppx, ppy, xcb, ycb, bands))
    return tuple(resolutions)


#: Half-length of the synthesis filters: 5-3 reversible, 9-7 irreversible (Annex F).
_SYNTHESIS_MARGIN = {True: 2, False: 4}


def precinct_affects_region(tc: TileComponent, resolution: int, precinct: int,
                            region: tuple[int, int, int, int]) -> bool:
    """Whether a precinct's coefficients reach any sample of ``region`` (reference grid, x0, y0, x1, y1).

    The region is carried to the resolution's grid and widened by the synthesis filters' reach at
    every level still to be synthesised above it, so that decoding the region is exact.
    """
    levels_above = tc.decomposition_levels - resolution
    scale = 1 << levels_above
    margin = _SYNTHESIS_MARGIN[tc.style.reversible] * (levels_above + 1) + 1
    x0, y0, x1, y1 = region
    rx0 = ceil_div(x0, tc.x_subsampling) // scale - margin
    ry0 = ceil_div(y0, tc.y_subsampling) // scale - margin
    rx1 = ceil_div(ceil_div(x1, tc.x_subsampling), scale) + margin
    ry1 = ceil_div(ceil_div(y1, tc.y_subsampling), scale) + margin
    px0, py0, px1, py1 = tc.resolutions[resolution].precinct_extent(precinct)
    return px0 < rx1 and rx0 < px1 and py0 < ry1 and ry0 < py1
