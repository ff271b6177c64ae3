"""The codestream engine against OpenJPEG: split into data-bins, rebuild, decode, compare sample for sample.

opj_compress makes codestreams with every coding option the engine must follow; opj_decompress is the
independent decoder. The conformance codestreams from ../shared come from other encoders.
"""

import random
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from pyjpip.codestream.databins import DataBins
from pyjpip.codestream.markers import read_main_header
from pyjpip.codestream.packet_index import index_codestream
from pyjpip.codestream.rebuild import rebuild_codestream
from pyjpip.codestream.tile_parts import read_codestream
from reference import cropped_reference, opj_decode_all, opj_decode_region, opj_encode, smooth_image

pytestmark = pytest.mark.cpython_only


def split(data: bytes, use_packet_lengths: bool = True):
    codestream = read_codestream(data)
    bins = DataBins(index_codestream(codestream, use_packet_lengths))
    main = bins.main_header().read(codestream.data)
    tile_headers = {t: bins.tile_header(t).read(codestream.data) for t in range(bins.tiles)}
    precincts = {b.identifier: b.read(codestream.data) for b in bins.precincts()}
    return main, tile_headers, precincts


def levels_and_layers(data: bytes) -> tuple[int, int]:
    header = read_main_header(data)
    levels = min(header.component_style(c).decomposition_levels for c in range(len(header.size.components)))
    return levels, header.coding_style.layers


def assert_rebuilds_exactly(data: bytes, name: str):
    main, tile_headers, precincts = split(data)
    whole = rebuild_codestream(main, tile_headers, precincts)
    index = index_codestream(read_codestream(data))
    written = sum(len(packets) for tile in index.tiles for packets in tile.precincts.values())
    assert whole.packets_present == written  # every packet the source has (OpenJPEG's RPCL/PCRL may lack some)
    if not any(tile.openjpeg_positions for tile in index.tiles):
        assert whole.packets_present == whole.packets_total
    assert opj_decode_all(whole.codestream) == opj_decode_all(data), f"{name}: full rebuild differs"
    levels, layers = levels_and_layers(data)
    for reduce in sorted({1 if levels else 0, levels}):
        for layer_count in sorted({1, layers}):
            rebuilt = rebuild_codestream(main, tile_headers, precincts, reduce=reduce, layers=layer_count)
            assert opj_decode_all(rebuilt.codestream, reduce) == opj_decode_all(data, reduce, layer_count), \
                f"{name}: reduce {reduce} with {layer_count} layers differs from opj_decompress -r -l"


def test_conformance_codestreams_rebuild_exactly(conformance_files):
    for path in conformance_files:
        data = path.read_bytes()
        assert_rebuilds_exactly(data, path.name)
        size = read_main_header(data).size  # and a region: the precincts it needs, nothing else
        w, h = size.x_size - size.x_offset, size.y_size - size.y_offset
        region = (size.x_offset + w // 3, size.y_offset + h // 3, size.x_offset + max(w // 3 + 1, 2 * w // 3),
                  size.y_offset + max(h // 3 + 1, 2 * h // 3))
        main, tile_headers, precincts = split(data)
        rebuilt = rebuild_codestream(main, tile_headers, precincts, region=region)
        for c, (a, e) in enumerate(zip(cropped_reference(rebuilt.codestream, region),
                                       cropped_reference(data, region))):
            assert a.shape == e.shape and (a == e).all(), f"{path.name}: region {region} component {c}"


# (name, components, bits, signed, subsampling, opj_compress options)
GENERATED = [
    ("lrcp-defaults", 1, 8, False, None, []),
    ("rlcp-6-layers-precincts", 1, 8, False, None, ["-p", "RLCP", "-r", "40,20,10,5,2,1", "-c", "[64,64],[32,32]"]),
    ("rpcl-plt-tlm-sop-eph", 1, 12, False, None,
     ["-p", "RPCL", "-r", "20,5,1", "-c", "[128,128],[64,64]", "-PLT", "-TLM", "-SOP", "-EPH"]),
    ("pcrl-tiles-with-offsets", 1, 8, False, None, ["-p", "PCRL", "-t", "64,48", "-T", "5,3", "-d", "13,9", "-r", "8,1"]),
    ("cprl-3-components-subsampled", 3, 8, False, [(1, 1), (2, 2), (2, 1)], ["-p", "CPRL", "-r", "10,1", "-PLT"]),
    ("tile-parts-by-resolution", 1, 16, False, None, ["-p", "RPCL", "-TP", "R", "-r", "10,3,1", "-PLT", "-t", "128,128"]),
    ("no-decomposition", 1, 8, False, None, ["-n", "1", "-r", "4,1"]),
    ("seven-levels", 1, 12, False, None, ["-n", "8", "-p", "RPCL", "-PLT"]),
    ("small-code-blocks", 1, 8, False, None, ["-b", "16,16", "-c", "[32,32]", "-r", "9,3,1"]),
    ("rectangular-code-blocks", 1, 8, False, None, ["-b", "64,16", "-p", "LRCP", "-r", "5,1"]),
    ("irreversible-lossy", 1, 12, False, None, ["-I", "-r", "50,20,8"]),
    ("bypass", 1, 12, False, None, ["-M", "1", "-r", "30,10,3,1", "-PLT"]),
    ("terminate-each-pass", 1, 12, False, None, ["-M", "4", "-r", "30,10,3,1", "-PLT"]),
    ("all-mode-switches", 1, 16, True, None, ["-M", "63", "-r", "20,4,1", "-SOP", "-EPH", "-PLT"]),
    ("four-components-ten-layers", 4, 8, False, None,
     ["-r", "100,80,60,40,30,20,10,5,2,1", "-p", "LRCP", "-c", "[64,64]", "-PLT"]),
    ("three-components-colour-transform", 3, 8, False, None, ["-mct", "1", "-p", "RPCL", "-r", "12,1"]),
    ("progression-changes", 1, 8, False, None,
     ["-r", "20,5,1", "-POC", "T0=0,0,1,3,1,RPCL/T0=0,0,3,6,1,LRCP"]),
    ("tiles-plt-sop", 1, 8, False, None, ["-t", "100,80", "-PLT", "-SOP", "-p", "LRCP", "-r", "30,10,1"]),
]


def generated(name, components, bits, signed, subsampling, options) -> bytes:
    seed = sum(map(ord, name))
    planes = []
    for c in range(components):
        dx, dy = subsampling[c] if subsampling else (1, 1)
        planes.append(smooth_image(-(-193 // dy), -(-257 // dx), bits, seed + c, signed))
    return opj_encode(planes, bits, options, signed, subsampling)


@pytest.mark.parametrize("case", GENERATED, ids=[case[0] for case in GENERATED])
def test_generated_codestreams_rebuild_exactly(case):
    data = generated(*case)
    assert_rebuilds_exactly(data, case[0])


@pytest.mark.parametrize("case", [c for c in GENERATED if "-PLT" in c[5]], ids=lambda c: c[0])
def test_packet_header_lengths_equal_plt(case):
    data = generated(*case)
    codestream = read_codestream(data)
    from_lengths = index_codestream(codestream, use_packet_lengths=True)
    from_headers = index_codestream(codestream, use_packet_lengths=False)
    assert all(tile.used_packet_lengths for tile in from_lengths.tiles)
    assert not any(tile.used_packet_lengths for tile in from_headers.tiles)
    for a, b in zip(from_lengths.tiles, from_headers.tiles):
        assert a.precincts == b.precincts


def test_high_throughput_codestreams_rebuild_exactly():
    import imagecodecs  # OpenJPH inside: an HTJ2K encoder independent of OpenJPEG
    image = smooth_image(300, 260, 12, 5).astype(np.uint16)
    cases = {"reversible": {"reversible": True}, "tiled": {"tile": (128, 128), "reversible": True},
             "irreversible": {"level": 40}, "three-levels": {"resolutions": 4, "reversible": True}}
    for name, options in cases.items():
        data = imagecodecs.htj2k_encode(image, **options)
        assert read_main_header(data).high_throughput
        assert_rebuilds_exactly(data, f"HTJ2K {name}")


@pytest.mark.parametrize("case", [GENERATED[2], GENERATED[5], GENERATED[13], GENERATED[14]], ids=lambda c: c[0])
def test_random_prefixes_of_random_bins_always_decode(case):
    data = generated(*case)
    main, tile_headers, precincts = split(data)
    rng = random.Random(case[0])
    for _ in range(12):
        chosen = {}
        for identifier, content in precincts.items():
            if rng.random() < 0.6:
                chosen[identifier] = content[: rng.randint(0, len(content))] if rng.random() < 0.7 else content
        headers = {t: h for t, h in tile_headers.items() if rng.random() < 0.9}
        rebuilt = rebuild_codestream(main, headers, chosen)
        opj_decode_all(rebuilt.codestream)  # must decode without error
        again = index_codestream(read_codestream(rebuilt.codestream))  # and index again, exactly
        assert sum(len(p) for t in again.tiles for p in t.precincts.values()) == rebuilt.packets_total


@pytest.mark.parametrize("case", [GENERATED[1], GENERATED[3], GENERATED[8], GENERATED[10]], ids=lambda c: c[0])
def test_region_rebuild_decodes_the_region_exactly_with_fewer_bytes(case):
    data = generated(*case)
    main, tile_headers, precincts = split(data)
    size = read_main_header(data).size
    levels, _ = levels_and_layers(data)
    for region in [(size.x_offset + 40, size.y_offset + 30, size.x_offset + 120, size.y_offset + 90),
                   (size.x_size - 50, size.y_size - 40, size.x_size, size.y_size)]:
        for reduce in sorted({0, min(1, levels)}):
            rebuilt = rebuild_codestream(main, tile_headers, precincts, reduce=reduce, region=region)
            assert opj_decode_region(rebuilt.codestream, region, reduce) == opj_decode_region(data, region, reduce), \
                f"{case[0]}: region {region} at reduce {reduce} differs"
            if "-c" in case[5] or "-t" in case[5]:  # several precincts or tiles: the region needs fewer
                assert rebuilt.packets_present < rebuilt.packets_total


def plt_to_plm(data: bytes) -> bytes:
    """The same codestream with its PLT segments moved into one PLM in the main header (A.7.2)."""
    codestream = read_codestream(data)
    pairs = b""
    for part in codestream.tile_parts:
        lengths = b"".join(bytes(codestream.data[s.offset + 5 : s.end]) for _, s in part.header.packet_lengths)
        assert len(lengths) < 256
        pairs += bytes([len(lengths)]) + lengths
    plm = b"\xff\x57" + (3 + len(pairs)).to_bytes(2, "big") + b"\x00" + pairs
    out = bytearray(data[: codestream.main.length]) + plm
    for part in codestream.tile_parts:
        header = b"".join(bytes(codestream.data[s.offset : s.end]) for s in part.header.segments
                          if s.marker != 0xFF58)
        body = bytes(codestream.data[part.body_start - 2 : part.end])  # SOD and the packets
        sot = bytearray(codestream.data[part.offset : part.offset + 12])
        sot[6:10] = (12 + len(header) + len(body)).to_bytes(4, "big")
        out += sot + header + body
    return bytes(out) + b"\xff\xd9"


def test_packet_lengths_from_plm_equal_packet_headers():
    case = next(c for c in GENERATED if c[0] == "tiles-plt-sop")
    data = plt_to_plm(generated(*case))
    codestream = read_codestream(data)
    assert codestream.main.header.packet_lengths and not any(p.header.packet_lengths for p in codestream.tile_parts)
    from_plm = index_codestream(codestream, use_packet_lengths=True)
    from_headers = index_codestream(codestream, use_packet_lengths=False)
    assert all(tile.used_packet_lengths for tile in from_plm.tiles)
    assert [t.precincts for t in from_plm.tiles] == [t.precincts for t in from_headers.tiles]
    assert opj_decode_all(data) == opj_decode_all(generated(*case))  # the conversion itself is sound


# Subsampling factors 1 to 5 on both axes, with image and tile offsets, in every progression order:
# (name, reference-grid width and height, (XRsiz, YRsiz) per component, opj_compress options).
# Factors that are not powers of two apart (3 and 5, 1 and 3) make OpenJPEG's position loops
# differ from the standard's (see pyjpip.codestream.progression): its RPCL and PCRL files are read
# in its order, and rebuilds of them are written in CPRL, which it reads as the standard says.
SUBSAMPLED = [
    ("5x3-offset-tiles-lrcp", 1892, 802, [(5, 3)],
     ["-n", "6", "-p", "LRCP", "-t", "379,161", "-d", "1,160", "-T", "0,159"]),
    ("5x3-offset-tiles-rpcl-precincts", 1892, 802, [(5, 3)],
     ["-n", "4", "-p", "RPCL", "-t", "379,161", "-d", "1,160", "-T", "1,160", "-c", "[32,32],[16,16]", "-PLT"]),
    ("4x4-4x5-lrcp-precincts", 201, 304, [(4, 4), (4, 5)], ["-n", "1", "-p", "LRCP", "-c", "[32,32]", "-r", "9,1"]),
    ("1x1-5x3-3x5-cprl", 300, 280, [(1, 1), (5, 3), (3, 5)],
     ["-n", "3", "-p", "CPRL", "-d", "7,11", "-c", "[64,64],[32,16]", "-r", "8,1"]),
    ("2x4-4x2-rpcl-tiles", 360, 300, [(2, 4), (4, 2)],
     ["-n", "3", "-p", "RPCL", "-t", "120,100", "-d", "9,13", "-T", "3,5", "-c", "[32,32]", "-r", "10,3,1"]),
    ("3x3-5x1-4x2-rpcl-opj-order", 392, 86, [(3, 3), (5, 1), (4, 2)],
     ["-n", "3", "-p", "RPCL", "-d", "10,28", "-c", "[32,16],[8,32]", "-b", "4,8", "-r", "10,1"]),
    ("2x2-5x3-3x2-pcrl-opj-order", 136, 144, [(2, 2), (5, 3), (3, 2)],
     ["-n", "2", "-p", "PCRL", "-d", "40,34", "-c", "[128,16]", "-r", "10,1"]),
    ("5x1-1x5-2x3-rlcp-tiles", 250, 260, [(5, 1), (1, 5), (2, 3)],
     ["-n", "3", "-p", "RLCP", "-t", "100,90", "-d", "21,4", "-T", "20,0", "-r", "6,1"]),
]


def encode_subsampled(width: int, height: int, subsampling, options, seed: int) -> bytes:
    """opj_compress from raw planes of a width x height reference grid, component c sampled every
    XRsiz, YRsiz points (its -F w,h,c,bits,u@dxxdy:... form)."""
    planes = [smooth_image(-(-height // dy), -(-width // dx), 8, seed + c) for c, (dx, dy) in enumerate(subsampling)]
    form = f"{width},{height},{len(planes)},8,u@" + ":".join(f"{dx}x{dy}" for dx, dy in subsampling)
    with tempfile.TemporaryDirectory() as folder:
        raw = Path(folder) / "planes.rawl"
        raw.write_bytes(b"".join(p.astype(np.uint8).tobytes() for p in planes))
        result = subprocess.run(["opj_compress", "-i", str(raw), "-o", str(Path(folder) / "out.j2k"), "-F", form,
                                 *options], capture_output=True, text=True)
        assert result.returncode == 0, f"opj_compress {options}: {result.stdout[-300:]} {result.stderr[-300:]}"
        return (Path(folder) / "out.j2k").read_bytes()


@pytest.mark.parametrize("case", SUBSAMPLED, ids=[c[0] for c in SUBSAMPLED])
def test_subsampled_components_on_offset_grids_rebuild_exactly(case):
    name, width, height, subsampling, options = case
    data = encode_subsampled(width, height, subsampling, options, sum(map(ord, name)))
    size = read_main_header(data).size
    assert [(c.x_subsampling, c.y_subsampling) for c in size.components] == subsampling
    openjpeg_order = any(t.openjpeg_positions for t in index_codestream(read_codestream(data)).tiles)
    assert openjpeg_order == name.endswith("opj-order"), f"{name}: laid out in OpenJPEG's order: {openjpeg_order}"
    assert_rebuilds_exactly(data, name)
    main, tile_headers, precincts = split(data)
    w, h = size.x_size - size.x_offset, size.y_size - size.y_offset
    for region in [(size.x_offset + w // 3, size.y_offset + h // 4, size.x_offset + w // 2, size.y_offset + h // 2),
                   (size.x_size - w // 5, size.y_size - h // 6, size.x_size, size.y_size)]:
        for reduce in sorted({0, min(1, levels_and_layers(data)[0])}):
            rebuilt = rebuild_codestream(main, tile_headers, precincts, reduce=reduce, region=region)
            expected = cropped_reference(data, region, reduce)
            actual = cropped_reference(rebuilt.codestream, region, reduce)
            for c, (a, e) in enumerate(zip(actual, expected)):
                assert a.shape == e.shape and (a == e).all(), f"{name}: region {region} reduce {reduce} component {c}"
