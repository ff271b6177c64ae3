"""A readable account of a JPEG 2000 file: geometry, coding parameters and its data-bins."""

from __future__ import annotations

import time

from pyjpip.codestream.friendliness import assess
from pyjpip.codestream.markers import Marker
from pyjpip.codestream.source import JPEG2000Source

_LAYOUT_MARKERS = (Marker.PLT, Marker.PLM, Marker.TLM, Marker.PPM, Marker.PPT, Marker.POC, Marker.CAP)


def describe_source(source: JPEG2000Source) -> dict:
    """Plain data (JSON-ready) describing every codestream of the file."""
    return {
        "file": source.name,
        "format": "raw codestream" if source.layout.raw else "JP2 family",
        "boxes": [box.box_type.decode("latin-1") for box in source.layout.boxes],
        "metadata_bin_0_bytes": source.metadata_bin().length,
        "codestreams": [_describe_codestream(source, n) for n in range(source.codestream_count)],
    }


def _describe_codestream(source: JPEG2000Source, number: int) -> dict:
    started = time.perf_counter()
    index = source.index(number)
    seconds = time.perf_counter() - started
    codestream = index.codestream
    size, main = codestream.size, codestream.main
    markers = {Marker(s.marker).name for s in main.header.segments if s.marker in _LAYOUT_MARKERS}
    for part in codestream.tile_parts:
        markers |= {Marker(s.marker).name for s in part.header.segments if s.marker in _LAYOUT_MARKERS}
    bins = source.databins(number)
    levels: dict[int, dict] = {}
    for tile_index in index.tiles:
        for tc in tile_index.tile.components:
            for res in tc.resolutions:
                discard = tc.decomposition_levels - res.level
                entry = levels.setdefault(discard, {"discard_levels": discard, "precinct_bins": 0, "bytes": 0})
                for precinct in range(res.precinct_count):
                    entry["precinct_bins"] += 1
                    entry["bytes"] += bins.precinct(tile_index.tile.index, tc.component, res.level, precinct).length
    for discard, entry in levels.items():
        entry["component_0_size"] = list(size.component_size(0, discard))
    coding = main.coding_style
    return {
        "codestream": number,
        "fragments": [list(f) for f in source.layout.codestreams[number]],
        "bytes": len(codestream.data),
        "width": size.width,
        "height": size.height,
        "origin": [size.x_offset, size.y_offset],
        "components": [{"precision": c.precision, "signed": c.signed, "subsampling": [c.x_subsampling, c.y_subsampling],
                        "decomposition_levels": main.component_style(i).decomposition_levels}
                       for i, c in enumerate(size.components)],
        "tiles": {"count": size.tile_count, "size": [size.tile_width, size.tile_height],
                  "origin": [size.tile_x_offset, size.tile_y_offset], "tile_parts": len(codestream.tile_parts)},
        "coding": {
            "progression_order": coding.progression_order.name, "layers": coding.layers,
            "code_block": [coding.code_block_width, coding.code_block_height],
            "precincts": [list(p) for p in coding.precinct_sizes] if coding.precinct_sizes else "maximal",
            "wavelet": "5-3 reversible" if coding.reversible else "9-7 irreversible",
            "multiple_component_transform": bool(coding.multiple_component_transform),
            "sop": coding.uses_sop, "eph": coding.uses_eph, "high_throughput": main.high_throughput,
            "layout_markers": sorted(markers),
        },
        "packets_located_by": "PLT" if all(t.used_packet_lengths for t in index.tiles if t.precincts)
                              and any(t.precincts for t in index.tiles) else "packet headers",
        "index_seconds": round(seconds, 4),
        "jpip_friendly": _friendliness(index),
        "data_bins": {
            "main_header_bytes": bins.main_header().length,
            "tile_header_bins": bins.tiles,
            "tile_header_bytes": sum(bins.tile_header(t).length for t in range(bins.tiles)),
            "precinct_bins": sum(e["precinct_bins"] for e in levels.values()),
            "precinct_bytes": sum(e["bytes"] for e in levels.values()),
            "by_resolution": [levels[d] for d in sorted(levels, reverse=True)],
        },
    }


def _friendliness(index) -> dict:
    found = assess(index)
    return {"friendly": found.friendly, "findings": found.findings, "repacketizing_would_give": found.repacketizing,
            "only_re_encoding_would_give": found.re_encoding_only}


def format_description(description: dict) -> str:
    lines = [f"{description['file']}: {description['format']}, {len(description['codestreams'])} codestream(s)"]
    if description["boxes"]:
        lines.append(f"  boxes: {' '.join(description['boxes'])}; metadata-bin 0: "
                     f"{description['metadata_bin_0_bytes']} bytes")
    for cs in description["codestreams"]:
        coding, tiles, bins = cs["coding"], cs["tiles"], cs["data_bins"]
        components = ", ".join(f"{c['precision']}-bit{' signed' if c['signed'] else ''}"
                               + (f" /{c['subsampling'][0]}x{c['subsampling'][1]}" if c["subsampling"] != [1, 1] else "")
                               for c in cs["components"])
        lines += [
            f"codestream {cs['codestream']}: {cs['width']}x{cs['height']} at ({cs['origin'][0]},{cs['origin'][1]}), "
            f"{len(cs['components'])} component(s): {components}; {cs['bytes']:,} bytes",
            f"  tiles: {tiles['count']} of {tiles['size'][0]}x{tiles['size'][1]}, {tiles['tile_parts']} tile-part(s)",
            f"  coding: {coding['progression_order']}, {coding['layers']} layer(s), "
            f"{cs['components'][0]['decomposition_levels']} levels, code-blocks {coding['code_block'][0]}x"
            f"{coding['code_block'][1]}, precincts {coding['precincts']}, {coding['wavelet']}"
            + (", HTJ2K" if coding["high_throughput"] else "") + (", SOP" if coding["sop"] else "")
            + (", EPH" if coding["eph"] else "")
            + (f", markers {' '.join(coding['layout_markers'])}" if coding["layout_markers"] else ""),
            f"  packets located by {cs['packets_located_by']} in {cs['index_seconds'] * 1000:.1f} ms",
            f"  data-bins: main header {bins['main_header_bytes']:,} bytes, {bins['tile_header_bins']} tile header(s) "
            f"{bins['tile_header_bytes']:,} bytes, {bins['precinct_bins']:,} precincts {bins['precinct_bytes']:,} bytes",
        ]
        friendly = cs["jpip_friendly"]
        lines.append("  JPIP-friendly: " + ("yes" if friendly["friendly"] else "no: " + "; ".join(friendly["findings"])))
        if not friendly["friendly"]:
            lines.append("  re-packetizing (pyjpip repacketize) would give: "
                         + "; ".join(friendly["repacketizing_would_give"]))
        for note in friendly["only_re_encoding_would_give"]:
            lines.append(f"  note: {note}")
        for level in bins["by_resolution"]:
            w, h = level["component_0_size"]
            lines.append(f"    discard {level['discard_levels']}: {w}x{h}, {level['precinct_bins']:,} precinct bins, "
                         f"{level['bytes']:,} bytes")
    return "\n".join(lines)
