"""How well a codestream serves JPIP, and what re-packetizing it would change (15444-9 Annex A, B.6).

A JPIP server answers a view with the precincts it touches: with maximal precincts a zoomed region
costs its whole resolution. Packet lengths (PLT/PLM, A.7.2-A.7.3) let the server lay out packets
without reading each header. Both are what re-packetizing (repacketize) gives any codestream; the
number of decomposition levels (how small the coarsest view is) only re-encoding changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyjpip.codestream.markers import Marker
from pyjpip.codestream.packet_index import CodestreamIndex
from pyjpip.codestream.progression import written_order
from pyjpip.codestream.repacketize import PRECINCT_EXPONENT, precincts_for

#: Precincts larger than this (in a resolution larger than it) make a region cost too much.
LARGEST_PRECINCT_EXPONENT = 8
#: A coarsest resolution larger than this makes a thumbnail cost too much.
LOWEST_RESOLUTION = 64


@dataclass
class Friendliness:
    friendly: bool
    findings: list[str] = field(default_factory=list)  # what stands in a JPIP server's way
    repacketizing: list[str] = field(default_factory=list)  # what re-packetizing would change
    re_encoding_only: list[str] = field(default_factory=list)  # what only re-encoding would change


def assess(index: CodestreamIndex) -> Friendliness:
    codestream = index.codestream
    size, main = codestream.size, codestream.main
    findings, changes, encoding = [], [], []
    large = set()
    for tile_index in index.tiles:
        for tc in tile_index.tile.components:
            for res in tc.resolutions:
                too_wide = res.x1 - res.x0 > 1 << LARGEST_PRECINCT_EXPONENT and \
                    res.precinct_width_exponent > LARGEST_PRECINCT_EXPONENT
                too_high = res.y1 - res.y0 > 1 << LARGEST_PRECINCT_EXPONENT and \
                    res.precinct_height_exponent > LARGEST_PRECINCT_EXPONENT
                if too_wide or too_high:
                    large.add((tc.decomposition_levels - res.level, 1 << res.precinct_width_exponent,
                               1 << res.precinct_height_exponent))
    if large:
        discard, width, height = min(large)
        findings.append(f"precincts of {width}x{height} at {len(large)} resolution level(s) (e.g. {discard} "
                        "levels down): a zoomed region costs the whole resolution")
    has_lengths = any(main.header.of(Marker.PLM)) or all(
        any(part.header.of(Marker.PLT) for part in codestream.tiles.get(t.tile.index, [])) for t in index.tiles
        if t.precincts)
    if not has_lengths:
        findings.append("no packet lengths (PLT/PLM): a server reads every packet header to lay the file out")
    new = precincts_for(main.coding_style.component, PRECINCT_EXPONENT)
    sizes = sorted({(1 << x, 1 << y) for x, y in new.precinct_exponents[1:] or new.precinct_exponents})
    changes.append("precincts " + ", ".join(f"{w}x{h}" for w, h in sizes))
    order = written_order(size)
    if main.coding_style.progression_order != order:
        changes.append(f"order {main.coding_style.progression_order.name} -> {order.name}")
    changes.append("PLT and TLM written")
    if len(codestream.tile_parts) != size.tile_count:
        changes.append(f"{len(codestream.tile_parts)} tile-parts -> one per tile ({size.tile_count})")
    dropped = {Marker(s.marker).name for s in main.header.segments if s.marker in (Marker.POC, Marker.PPM)}
    for part in codestream.tile_parts:
        dropped |= {Marker(s.marker).name for s in part.header.segments if s.marker in (Marker.POC, Marker.PPT)}
    if main.coding_style.uses_sop:
        dropped.add("SOP")
    if main.coding_style.uses_eph:
        dropped.add("EPH")
    if dropped:
        changes.append("no " + "/".join(sorted(dropped)))
    changes.append(f"code-blocks, layers ({main.coding_style.layers}) and samples unchanged")
    levels = min(main.component_style(c).decomposition_levels for c in range(len(size.components)))
    lowest = size.component_size(0, levels)
    if max(lowest) > LOWEST_RESOLUTION:
        encoding.append(f"coarsest resolution {lowest[0]}x{lowest[1]} ({levels} levels): a thumbnail costs that; "
                        "only re-encoding adds levels")
    return Friendliness(not findings, findings, changes, encoding)
