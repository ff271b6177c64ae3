"""A picture of a view window from a client's data-bin cache (ISO/IEC 15444-9 C.4 and Annex A):
the best decodable codestream the bins held so far allow.

The resolution and region come from view_window.map_view_window on the main header's SIZ and
COD/COC, the function the server resolves requests with, so a picture covers what was served. A
window with no frame size (or fsiz 0,0, which asks for no imagery) is everything held, at full
resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyjpip.codestream.databins import DataBinClass
from pyjpip.codestream.markers import read_main_header
from pyjpip.codestream.rebuild import Rebuilt, rebuild_codestream
from pyjpip.jpip.client import JPIPClient, ViewWindow
from pyjpip.jpip.client_cache import DataBinCache
from pyjpip.jpip.view_window import WindowGeometry, frame_size, header_levels, map_view_window


@dataclass
class RebuiltView:
    """A rebuilt codestream and how to decode it: discard ``reduce`` levels; ``region`` on the
    reference grid (None: the whole image); ``frame`` is the full image size at that resolution;
    ``window`` where the view window lies in it (None: no frame size was given, all of it)."""

    rebuilt: Rebuilt
    reduce: int
    region: tuple[int, int, int, int] | None
    frame: tuple[int, int]
    window: WindowGeometry | None = None

    @property
    def codestream(self) -> bytes:
        return self.rebuilt.codestream

    @property
    def frame_region(self) -> tuple[int, int, int, int]:
        """The window's region of the frame, x0, y0, x1, y1."""
        return self.window.frame_region if self.window is not None else (0, 0, *self.frame)


def rebuild_view(cache: DataBinCache, stream: int, window: ViewWindow) -> RebuiltView | None:
    """The best codestream ``cache`` allows now for ``window`` of codestream ``stream`` (None before
    its main header). Give the window as the server served it (JPIPClient.served)."""
    main, tile_headers, precincts = cache.codestream_bins(stream)
    if main is None:
        return None
    header = read_main_header(main + b"\xff\x90")
    size = header.size
    complete = {i for i in precincts if cache.complete((DataBinClass.PRECINCT, stream, i))}
    if window.fsiz is None or 0 in window.fsiz:
        rebuilt = rebuild_codestream(main, tile_headers, precincts, layers=window.layers, complete=complete)
        return RebuiltView(rebuilt, 0, None, frame_size(size, 0))
    geometry = map_view_window(size, header_levels(header), window.fsiz, window.roff, window.rsiz, window.round)
    # No roff or rsiz: the whole frame, rebuilt without a region test.
    region = geometry.region if window.roff is not None or window.rsiz is not None else None
    rebuilt = rebuild_codestream(main, tile_headers, precincts, reduce=geometry.discard, layers=window.layers,
                                 region=region, complete=complete)
    return RebuiltView(rebuilt, geometry.discard, region, geometry.frame, geometry)


def rebuild_served(client: JPIPClient, window: ViewWindow) -> RebuiltView | None:
    """rebuild_view of ``window`` as ``client``'s server last served it, from the client's cache."""
    return rebuild_view(client.cache, client.stream_of(window), client.served(window))
