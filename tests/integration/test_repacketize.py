"""Re-packetizing against independent decoders: every code-block's bytes moved into new precincts,
RPCL and PLT/TLM must decode to exactly what the source decodes to (opj_decompress; OpenJPH
through imagecodecs for HTJ2K), lossy or lossless, at every resolution and layer count."""

import numpy as np
import pytest

from pyjpip.codestream.markers import Marker, ProgressionOrder, read_main_header
from pyjpip.codestream.packet_index import index_codestream
from pyjpip.codestream.repacketize import repacketize
from pyjpip.codestream.tile_parts import read_codestream
from pyjpip.codestream.friendliness import assess
from pyjpip.errors import CodestreamError
from reference import opj_decode_all, smooth_image
from test_engine_vs_openjpeg import GENERATED, SUBSAMPLED, encode_subsampled, generated, levels_and_layers

pytestmark = pytest.mark.cpython_only


def check_repacketized(data: bytes, name: str) -> bytes:
    result = repacketize(data).codestream
    levels, layers = levels_and_layers(data)
    assert opj_decode_all(result) == opj_decode_all(data), f"{name}: whole image differs"
    if levels:
        assert opj_decode_all(result, levels) == opj_decode_all(data, levels), f"{name}: lowest resolution differs"
    if layers > 1:
        assert opj_decode_all(result, 0, 1) == opj_decode_all(data, 0, 1), f"{name}: first layer differs"
    header = read_main_header(result)
    assert header.coding_style.layers == layers
    assert not header.coding_style.uses_sop and not header.coding_style.uses_eph
    assert header.header.of(Marker.TLM) and not header.header.of(Marker.POC) and not header.header.of(Marker.PPM)
    codestream = read_codestream(result)
    assert len(codestream.tile_parts) == codestream.size.tile_count  # one tile-part per tile
    from_lengths = index_codestream(codestream)
    assert all(t.used_packet_lengths for t in from_lengths.tiles if t.precincts), f"{name}: PLT not usable"
    from_headers = index_codestream(codestream, use_packet_lengths=False)
    assert [t.precincts for t in from_lengths.tiles] == [t.precincts for t in from_headers.tiles]
    for c in range(len(header.size.components)):
        style = header.component_style(c)
        for r, (ppx, ppy) in enumerate(style.precinct_exponents):
            shift = 1 if r else 0  # 128 x 128, unless the code-blocks need larger precincts
            assert ppx == max(7, min(style.code_block_width_exponent + shift, 15)) or \
                ppx - shift < style.code_block_width_exponent, f"{name}: precinct width 2^{ppx} at r{r}"
            assert ppy == max(7, min(style.code_block_height_exponent + shift, 15)) or \
                ppy - shift < style.code_block_height_exponent, f"{name}: precinct height 2^{ppy} at r{r}"
    return result


def test_conformance_codestreams(conformance_files):
    for path in conformance_files:
        check_repacketized(path.read_bytes(), path.name)


@pytest.mark.parametrize("case", GENERATED, ids=[c[0] for c in GENERATED])
def test_generated_codestreams(case):
    result = check_repacketized(generated(*case), case[0])
    assert read_main_header(result).coding_style.progression_order == ProgressionOrder.RPCL


@pytest.mark.parametrize("case", SUBSAMPLED, ids=[c[0] for c in SUBSAMPLED])
def test_subsampled_codestreams(case):
    name, width, height, subsampling, options = case
    check_repacketized(encode_subsampled(width, height, subsampling, options, 3), name)


def test_high_throughput_codestreams_decode_identically_with_openjph_too():
    import imagecodecs  # OpenJPH inside: a decoder independent of OpenJPEG

    image = smooth_image(300, 260, 12, 5).astype(np.uint16)
    for options in ({"reversible": True}, {"level": 40}, {"tile": (128, 128), "reversible": True},
                    {"resolutions": 7, "reversible": True}):
        data = imagecodecs.htj2k_encode(image, **options)
        result = check_repacketized(data, f"HTJ2K {options}")
        assert (imagecodecs.htj2k_decode(result) == imagecodecs.htj2k_decode(data)).all()
        assert read_main_header(result).high_throughput


def test_lossy_sources_stay_their_size_and_become_jpip_friendly():
    data = generated("lossy", 1, 12, False, None, ["-I", "-r", "40,20,10", "-n", "4"])
    assert not assess(index_codestream(read_codestream(data))).friendly  # maximal precincts, no PLT
    result = check_repacketized(data, "lossy")
    assert assess(index_codestream(read_codestream(result))).friendly
    assert len(result) < 1.05 * len(data)  # headers and markers only: the code-block bytes are the same


@pytest.mark.parametrize("cut", [0.3, 0.7, 0.99])
def test_truncated_codestreams_are_refused_with_a_codestream_error(cut):
    data = generated(*GENERATED[0])
    with pytest.raises(CodestreamError):
        repacketize(data[: int(len(data) * cut)])
