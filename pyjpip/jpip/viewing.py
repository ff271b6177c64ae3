"""What an interactive viewer asks of JPIP: pictures of a window that get better as bytes arrive.

A viewer shows one image per viewport and changes its mind all the time: it zooms, pans, scrolls
to the next slice and back. ``ImageStreams`` keeps one ``JPIPClient`` per image URL, so whatever
was received for an image (by any earlier window, or a prefetch) is never asked for again
(ISO/IEC 15444-9 C.9 cache model). Windows of one image take turns on its client; the viewer
abandons a window it no longer wants through ``stop``, and the next one starts at once.

A window is given as the viewer thinks of it: discard ``reduce`` resolution levels and look at the
``region`` (x0, y0, x1, y1) of that resolution's frame. It becomes the view-window request fields
fsiz, roff and rsiz of C.4.

Sans-IO in the h11 sense: the transport is an async function ``send(request, client, on_bytes)``
that returns the client's ResponseSummary (pyjpip.transport.pyodide_fetch.send in the browser).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass

from pyjpip.codestream.databins import DataBinClass
from pyjpip.codestream.jp2_header import describe_colour
from pyjpip.codestream.markers import read_main_header
from pyjpip.errors import Superseded
from pyjpip.jpip.client import JPIPClient, JPIPClientError, ViewWindow, fetch_window_async
from pyjpip.jpip.client_cache import DataBinCache
from pyjpip.jpip.picture import rebuild_view
from pyjpip.jpip.view_window import frame_size, header_levels, map_view_window


@dataclass(frozen=True)
class Picture:
    """A decodable codestream for a window, and how to read it: decode at ``reduce`` gives the whole
    ``frame``; the window's pixels are ``region`` of it. The byte counts are the image's so far."""

    codestream: bytes
    reduce: int
    frame: tuple[int, int]
    region: tuple[int, int, int, int]
    layers: int  # quality layers every precinct of the window holds completely
    final: bool  # the window is complete
    from_cache: bool  # made before any byte of this request arrived
    body_bytes: int  # response bodies received for this image (what the network carried)
    new_bytes: int  # data-bin bytes that were new when they arrived
    received_bytes: int  # data-bin bytes received (equal to new_bytes unless something came twice)
    requests: int
    codestream_length: int | None = None  # the whole codestream's bytes, when the server says
    codestream_bytes: int = 0  # bytes held of this codestream's bins, to set against codestream_length
    grid_region: tuple[int, int, int, int] | None = None  # ``region`` on the reference grid (what to decode)

    def to_dict(self) -> dict:
        return {"codestream": self.codestream, "reduce": self.reduce, "frame": list(self.frame),
                "region": list(self.region), "layers": self.layers, "final": self.final,
                "from_cache": self.from_cache, "body_bytes": self.body_bytes, "new_bytes": self.new_bytes,
                "received_bytes": self.received_bytes, "requests": self.requests,
                "codestream_length": self.codestream_length, "codestream_bytes": self.codestream_bytes,
                "grid_region": None if self.grid_region is None else list(self.grid_region)}


def describe_header(main_header: bytes, metadata: bytes = b"") -> dict:
    """The facts of a main header a viewer needs to plan its windows; with the target's
    metadata-bin 0, how a JP2 file's samples are shown (``colour``: jp2_header.describe_colour,
    None for a raw codestream). A viewer showing a bare JPEG 2000 image uses it; one showing DICOM
    pixels ignores it (the data set's attributes say how they are shown)."""
    header = read_main_header(main_header + b"\xff\x90")
    colour = describe_colour(metadata)
    size = header.size
    levels = header_levels(header)
    return {
        "width": size.width, "height": size.height, "levels": levels, "layers": header.coding_style.layers,
        "components": len(size.components), "precision": size.components[0].precision,
        "signed": size.components[0].signed, "high_throughput": header.high_throughput,
        "frames": [list(frame_size(size, r)) for r in range(levels + 1)],
        "colour_transform": bool(header.coding_style.multiple_component_transform),
        "colour": None if colour is None else colour.to_dict(),
    }


class ImageStreams:
    """One JPIP client per image URL, kept (least recently used first out) across windows."""

    def __init__(self, send, *, keep: int = 64, cache_bytes: int = 256 << 20, every_seconds: float = 0.15,
                 clock=time.monotonic):
        self._send = send
        self.keep = keep
        self.cache_bytes = cache_bytes
        # A picture costs a rebuild and a decode: on a fast link the window is complete before a
        # better-so-far picture would help, on a slow one a picture this often shows progress.
        self.every_seconds = every_seconds
        self.clock = clock
        self._clients: OrderedDict[str, JPIPClient] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}
        self.headers: dict[str, dict] = {}
        self._sizes: dict = {}  # url -> the main header's SIZ (ImageAndTileSize), for C.4

    def client(self, url: str) -> JPIPClient:
        client = self._clients.get(url)
        if client is None:
            client = self._clients[url] = JPIPClient(url, cache=DataBinCache(self.cache_bytes))
            while len(self._clients) > self.keep:
                old, _ = self._clients.popitem(last=False)
                self.headers.pop(old, None)
                self._sizes.pop(old, None)
        self._clients.move_to_end(url)
        return client

    async def show(self, url: str, reduce: int | None = None, region=None, post=None, stop=None,
                   layers: int | None = None, preview: bool = True, first_size=None,
                   layer_picture: bool | None = None) -> dict:
        """Fetch the window (``reduce`` None: the header only), calling ``post(Picture)`` with a picture
        from the cache at once (``preview``), then every ``every_seconds`` while bytes arrive, and
        when complete.
        ``stop()`` true raises Superseded before the next request or at the next piece of body.
        ``first_size`` (width, height): when the header is not yet held, the request for it also asks
        for the whole image at the largest resolution that fits that size (fsiz, round-down, C.4.2),
        so a viewer's coarse first picture is in the cache when the header arrives, a round trip
        sooner (the viewer asks for that resolution next, and is answered from the cache).
        ``layer_picture`` (default: not ``preview``, a detail drawn over a lower resolution already
        shown): also a picture as soon as a quality layer of the whole window is held, so a zoom
        shows its resolution at the first layer's bytes (a few percent of the lossless ones), not
        after the last.
        Returns the header's description."""
        lock = self._locks.setdefault(url, asyncio.Lock())

        def check(events=None) -> None:
            if stop is not None and stop():
                raise Superseded(url)

        async with lock:  # one request at a time per client: a stopped one gives way at its next bytes
            check()
            client = self.client(url)
            if url not in self.headers:
                first = ViewWindow() if not first_size else ViewWindow(fsiz=tuple(max(1, int(v)) for v in first_size))
                await fetch_window_async(client, first, self._send, check)
                main, _, _ = client.cache.codestream_bins(client.url_stream or 0)
                if main is None:
                    raise JPIPClientError(f"{url[:200]}: the server sent no main header")
                metadata = client.cache.prefix((DataBinClass.METADATA, 0, 0))
                self.headers[url] = describe_header(main, metadata if client.cache.complete(
                    (DataBinClass.METADATA, 0, 0)) else b"")
                self._sizes[url] = read_main_header(main + b"\xff\x90").size
            info = self.headers[url]
            if reduce is None:
                return info
            size, levels = self._sizes[url], info["levels"]
            frame = frame_size(size, max(0, min(int(reduce), levels)))
            x0, y0, x1, y1 = (0, 0, *frame) if region is None else (int(v) for v in region)
            # At least a sample: a region beyond the frame shows the frame's nearest edge. C.4 clips the rest.
            x0, y0 = max(0, min(x0, frame[0] - 1)), max(0, min(y0, frame[1] - 1))
            asked = map_view_window(size, levels, frame, (x0, y0), (max(1, x1 - x0), max(1, y1 - y0)))
            window = ViewWindow(fsiz=frame, roff=asked.offset, rsiz=asked.size, layers=layers)
            stream = client.stream_of(window)
            state = {"next": self.clock() + self.every_seconds, "posted": -1}

            def picture(final: bool, from_cache: bool = False, view=None) -> None:
                if post is None:
                    return
                view = view or rebuild_view(client.cache, stream, client.served(window))
                if view is None or (not final and view.rebuilt.packets_present in (0, state["posted"])):
                    return  # nothing (new) to show
                state["posted"] = view.rebuilt.packets_present
                post(Picture(view.codestream, view.reduce, view.frame, view.frame_region,
                             view.rebuilt.layers_complete, final, from_cache, client.body_bytes, client.bytes_new,
                             client.bytes_received, client.requests_sent, client.codestream_length,
                             client.cache.codestream_bytes(stream), view.region))

            # A server chooses the order of a window's bytes (15444-9 does not fix it); pyjpip's
            # goes layer by layer over the window's precincts, so a precinct coming back for its next
            # layer says every precinct holds the one before. Seen once per window (a rebuild costs
            # about as much as parsing the rest); a server sending precinct by precinct only comes back
            # to the precinct it is sending, and gets only the timed pictures.
            wave = set() if (not preview if layer_picture is None else layer_picture) else None
            last = None  # the precinct of the latest message

            def progress(events) -> None:
                nonlocal wave, last
                check()
                for event in events if wave is not None else ():
                    if getattr(event, "bin_class", None) not in (0, 1):  # precinct data-bins (A.2.2)
                        continue
                    if event.identifier != last and event.identifier in wave:
                        wave = None
                        view = rebuild_view(client.cache, stream, client.served(window)) if post else None
                        # Not when that piece of body brought every layer: the final picture follows at once,
                        # and decoding this one first would only delay it.
                        if view is not None and view.rebuilt.layers_complete < min(layers or info["layers"], info["layers"]):
                            picture(False, view=view)
                        state["next"] = self.clock() + self.every_seconds
                        return
                    wave.add(event.identifier)
                    last = event.identifier
                if self.clock() >= state["next"]:
                    picture(False)
                    state["next"] = self.clock() + self.every_seconds

            if client.cache.bytes:
                view = rebuild_view(client.cache, stream, client.served(window))
                if view is not None and not view.rebuilt.missing_tiles and \
                        view.rebuilt.layers_complete >= min(layers or info["layers"], info["layers"]):
                    # Every layer of every precinct the window needs is held (an earlier window, the
                    # header's first picture, a prefetch): the answer would be an empty EOR.
                    picture(True, from_cache=True, view=view)
                    return info
                if preview:
                    picture(False, from_cache=True, view=view)
            await fetch_window_async(client, window, self._send, progress)
            picture(True)
            return info
