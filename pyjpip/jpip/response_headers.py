"""The view window as the server serves it: JPIP response headers read by a client (ISO/IEC 15444-9 D.2).

A server that serves a window other than the one asked for (a frame size rounded to a
resolution, a region clipped or rescaled to that frame, fewer layers or components) says so in
JPIP-fsiz, JPIP-roff, JPIP-rsiz, JPIP-layers and JPIP-comps; what it leaves out is served as
asked. Their grammar is that of the request fields (C.4), so they are read with the request
parser's readers; a value that does not follow it is a ResponseHeaderError naming the header.
"""

from __future__ import annotations

from pyjpip.errors import PyjpipError
from pyjpip.jpip.request import ROUND_DOWN, component_ranges, pair_value, uint_value


class ResponseHeaderError(PyjpipError):
    """A JPIP response header whose value does not follow its grammar."""

    kind = "damaged"

    def __init__(self, header: str, value: str, reason: str):
        self.header = header
        super().__init__(f"response header {header}: {value[:100]!r}: {reason}")


def read_window_headers(headers: dict[str, str]) -> dict:
    """The view-window fields a response changed, as ViewWindow field values (empty: served as
    asked). ``headers`` has lower-case names. JPIP-fsiz is a frame size the server served exactly,
    so the answered window rounds down to it (the largest resolution not larger, C.4.1)."""
    changed: dict = {}
    for name, read in _READERS.items():
        value = headers.get(f"jpip-{name}")
        if value is None:
            continue
        try:
            changed.update(read(value.strip()))
        except ValueError as error:
            raise ResponseHeaderError(f"JPIP-{name}", value, str(error)) from None
    return changed


def _fsiz(value: str) -> dict:
    fx, fy = pair_value(value, "fsiz")
    if fx == 0 or fy == 0:
        raise ValueError("a frame served is at least 1 by 1")
    return {"fsiz": (fx, fy), "round": ROUND_DOWN}


def _comps(value: str) -> dict:
    if value:  # empty: none of the components asked for exists
        component_ranges(value)
    return {"comps": value}


_READERS = {
    "fsiz": _fsiz,
    "roff": lambda value: {"roff": pair_value(value, "roff")},
    "rsiz": lambda value: {"rsiz": pair_value(value, "rsiz")},
    "layers": lambda value: {"layers": uint_value(value, "layers")},
    "comps": _comps,
}
