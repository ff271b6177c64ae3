"""geometry.Tile.has_samples against counting sample positions on the reference grid: component c's
samples at resolution reduction r lie at multiples of XRsiz * 2^r and YRsiz * 2^r (15444-1 B.2, B.5),
so a tile has samples there when such a multiple falls in its span on both axes."""

from pyjpip.codestream.geometry import make_tile
from pyjpip.codestream.markers import (
    CodingStyle,
    ComponentCodingStyle,
    ComponentSize,
    ImageAndTileSize,
    ProgressionOrder,
)


def counted(size: ImageAndTileSize, tile, reduce: int) -> bool:
    def hit(low, high, step):
        return any(v % step == 0 for v in range(low, high))

    return any(hit(tile.x0, tile.x1, c.x_subsampling << reduce) and hit(tile.y0, tile.y1, c.y_subsampling << reduce)
               for c in size.components)


def tiles(size: ImageAndTileSize, levels: int):
    style = ComponentCodingStyle(levels, 6, 6, 0, True, ((15, 15),) * (levels + 1), False)
    coding = CodingStyle(ProgressionOrder.LRCP, 1, 0, False, False, style)
    return [make_tile(size, t, coding, [style] * len(size.components)) for t in range(size.tile_count)]


def test_b2_mono_has_nine_tiles_without_samples():
    # the SIZ of the ISO conformance codestream b2_mono: 5x3 subsampling, image at (1, 160)
    size = ImageAndTileSize(0, 1519, 697, 1, 160, 379, 161, 0, 0, (ComponentSize(8, False, 5, 3),))
    laid_out = tiles(size, 5)
    empty = [t.index for t in laid_out if not t.has_samples()]
    assert empty == [0, 1, 2, 3, 4, 9, 14, 19, 24]
    for reduce in range(6):
        assert [t.has_samples(reduce) for t in laid_out] == [counted(size, t, reduce) for t in laid_out]


def test_small_tiles_lose_their_samples_at_lower_resolutions():
    # p1_06's SIZ: 12 x 12 in tiles of 3 x 3, three components
    size = ImageAndTileSize(0, 12, 12, 0, 0, 3, 3, 0, 0, (ComponentSize(8, False, 1, 1),) * 3)
    laid_out = tiles(size, 4)
    assert all(t.has_samples() for t in laid_out)
    assert [t.index for t in laid_out if not t.has_samples(2)] == [3, 7, 11, 12, 13, 14, 15]
    for reduce in range(5):
        assert [t.has_samples(reduce) for t in laid_out] == [counted(size, t, reduce) for t in laid_out]
    # a component with fewer levels keeps its lowest resolution: reduce 9 is reduce 4 here
    assert [t.has_samples(9) for t in laid_out] == [t.has_samples(4) for t in laid_out]


def test_mixed_subsampling_a_tile_with_one_component_empty_still_has_samples():
    size = ImageAndTileSize(0, 43, 32, 3, 2, 4, 16, 1, 1, (ComponentSize(8, False, 1, 1), ComponentSize(8, False, 5, 5)))
    laid_out = tiles(size, 1)
    first = laid_out[0]  # x 3..5: no multiple of 5, but every x for the first component
    assert first.components[1].x0 == first.components[1].x1 and first.has_samples()
    assert [t.has_samples(r) for t in laid_out for r in (0, 1)] == [counted(size, t, r) for t in laid_out for r in (0, 1)]
