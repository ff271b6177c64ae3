"""The browser's decoder (OpenJPEG built to WebAssembly with region decoding, tools/wasm) under Node:
whole images and regions at several resolutions equal Debian's opj_decompress, conformance files,
generated setups and HTJ2K alike; a broken codestream is a clear error, not a crash. A finer region
decoded from a lower resolution's kept coefficients (keep_coefficients, set_lowres) equals
opj_decompress too, and where that does not apply (9/7, colour) everything is decoded, exactly."""

import base64
import json
import subprocess

import numpy as np
import pytest

from paths import ROOT
from reference import cropped_reference, finest_resolution_at_first_layer
from test_engine_vs_openjpeg import GENERATED, generated

pytestmark = pytest.mark.cpython_only
CONFORMANCE = ["p0_03.j2k", "p0_04.j2k", "p0_07.j2k", "p1_02.j2k", "p1_04.j2k"]


def decode_all(jobs):
    output = subprocess.run(["node", str(ROOT / "tests" / "region_decode.mjs")], input=json.dumps(jobs),
                            capture_output=True, text=True, timeout=600, check=True).stdout
    return [json.loads(line) for line in output.splitlines()]


def planes(result):
    dtype = ("<i2" if result["signed"] else "<u2") if result["precision"] > 8 else ("i1" if result["signed"] else "u1")
    samples = np.frombuffer(base64.b64decode(result["samples"]), dtype)
    return samples.reshape(result["height"], result["width"], result["components"]).transpose(2, 0, 1)


def images(tmp_path, conformance_files):
    import imagecodecs

    from reference import smooth_image

    paths = [p for p in conformance_files if p.name in CONFORMANCE]
    for case in (GENERATED[2], GENERATED[3], GENERATED[10], GENERATED[16]):
        path = tmp_path / f"{case[0]}.j2k"
        path.write_bytes(generated(*case))
        paths.append(path)
    for name, options in {"htj2k.j2c": {}, "htj2k-tiled.j2c": {"tile": (128, 128)}}.items():
        path = tmp_path / name  # HT code-blocks by area: OpenJPEG 2.5.3 patched (tools/wasm PATCHES)
        path.write_bytes(imagecodecs.htj2k_encode(smooth_image(300, 260, 12, 5).astype(np.uint16), reversible=True,
                                                  **options))
        paths.append(path)
    return paths


def test_whole_images_and_regions_equal_opj_decompress(tmp_path, conformance_files):
    from pyjpip.codestream.markers import read_main_header

    jobs, expected = [], []
    for path in images(tmp_path, conformance_files):
        data = path.read_bytes()
        header = read_main_header(data)
        size = header.size
        if any((c.x_subsampling, c.y_subsampling) != (1, 1) for c in size.components):
            continue  # subsampled components: the browser decoder refuses them (tested below)
        levels = min(header.coding_style.decomposition_levels, 2)
        x0, y0 = size.x_offset, size.y_offset
        w, h = size.x_size - x0, size.y_size - y0
        regions = [None, (x0 + w // 3, y0 + h // 4, x0 + w // 3 + w // 2, y0 + h // 4 + h // 3)]
        for reduce in sorted({0, levels}):
            for region in regions:
                jobs.append({"file": str(path), "reduce": reduce, "region": region and list(region)})
                whole = (x0, y0, size.x_size, size.y_size)
                expected.append((path.name, reduce, region, cropped_reference(data, region or whole, reduce)))
    results = decode_all(jobs)
    assert len(results) == len(expected) > 20
    for result, (name, reduce, region, reference) in zip(results, expected):
        assert "error" not in result, (name, reduce, region, result)
        got = planes(result)
        assert len(got) == len(reference), name
        for plane, want in zip(got, reference):
            assert plane.shape == want.shape and np.array_equal(plane, want), (name, reduce, region)


def test_broken_and_refused_codestreams_are_clear_errors(tmp_path, conformance_files):
    good = next(p for p in conformance_files if p.name == "p0_04.j2k").read_bytes()
    cases = {"truncated.j2k": good[: len(good) // 3], "garbage.j2k": b"\xff\x4f\xff\x51" + bytes(50),
             "empty.j2k": b"", "subsampled.j2k": generated(*GENERATED[4])}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    results = decode_all([{"file": str(tmp_path / name)} for name in cases])
    messages = dict(zip(cases, results))
    for name, result in messages.items():
        assert "error" in result and result["error"], (name, result)
    assert "different sizes" in messages["subsampled.j2k"]["error"]


# keep_coefficients and set_lowres: a finer region decoded from a lower resolution's kept coefficients.

CT = ROOT / "static" / "data" / "ct_phantom_2048.j2k"
ODD_OFFSETS = ("odd-offsets-16-bit", 1, 16, False, None, ["-d", "7,5", "-n", "4", "-r", "6,2,1", "-p", "RPCL"])


def coefficients_of(result):
    return np.frombuffer(base64.b64decode(result["coefficients"]), "<i4").reshape(result["height"], result["width"])


def origin(size, reduce):
    """The first sample of the image at ``reduce``, absolute (15444-1 B.5: ceil(X0 / 2^r))."""
    return -(-size.x_offset // (1 << reduce)), -(-size.y_offset // (1 << reduce))


def lowres_job(coefficients, first, reduce, region, margin):
    """set_lowres's argument for a region: the coefficients under its footprint at ``reduce`` and
    ``margin`` around (clipped to the image), as web/decoder.js lowresFor cuts them (margin 8 there)."""
    scale = 1 << reduce
    height, width = coefficients.shape
    x0 = max(first[0], region[0] // scale - margin)
    y0 = max(first[1], region[1] // scale - margin)
    x1 = min(first[0] + width, -(-region[2] // scale) + margin)
    y1 = min(first[1] + height, -(-region[3] // scale) + margin)
    part = np.ascontiguousarray(coefficients[y0 - first[1]:y1 - first[1], x0 - first[0]:x1 - first[0]], "<i4")
    return {"reduce": reduce, "x0": x0, "y0": y0, "width": x1 - x0, "height": y1 - y0,
            "data": base64.b64encode(part.tobytes()).decode()}


def assert_coefficients_are_the_samples_unclamped(result, reference, precision, signed):
    """What keep_coefficients returns, clamped and DC-shifted (15444-1 G.1.2), is opj_decompress's samples."""
    coefficients = coefficients_of(result).astype(np.int64)
    shift = 0 if signed else 1 << (precision - 1)
    low, high = (-(1 << (precision - 1)), (1 << (precision - 1)) - 1) if signed else (0, (1 << precision) - 1)
    assert coefficients.shape == reference.shape
    assert np.array_equal(np.clip(coefficients + shift, low, high), reference)
    return int(((coefficients + shift < low) | (coefficients + shift > high)).sum())


@pytest.mark.parametrize("name", ["ct_phantom_2048.j2k", "ct_phantom_2048.jhc"])
def test_the_demo_ct_at_full_resolution_from_its_kept_lower_resolutions_equals_opj_decompress(name):
    """The viewer's zoom: a region of the 2048² 16-bit CT (Part 1 with 4 layers, and HTJ2K) at reduce 0
    (and 1) decoded from the coefficients kept by a whole decode at reduce 1 and 2. Samples equal
    opj_decompress's exactly; the coefficients overshoot 16 bits (1,959 at reduce 1 in Part 1: what
    clamped samples would get wrong, and do)."""
    path = CT.with_name(name)
    data = path.read_bytes()
    kept = decode_all([{"file": str(path), "reduce": r, "keep": True} for r in (1, 2)]
                      + [{"file": str(path), "reduce": 1, "keep": True, "layers": 1}])
    coefficients = {}
    for reduce, result in zip((1, 2), kept):
        reference = cropped_reference(data, (0, 0, 2048, 2048), reduce)[0]
        outside = assert_coefficients_are_the_samples_unclamped(result, reference, 16, False)
        assert outside > 1000, f"reduce {reduce}: the CT's lower resolution overshoots 16 bits ({outside})"
        coefficients[reduce] = coefficients_of(result)
    layer_one = coefficients_of(kept[2])
    assert np.array_equal(np.clip(layer_one + 32768, 0, 65535), cropped_reference(data, (0, 0, 2048, 2048), 1, 1)[0])

    regions = [(530, 511, 1518, 1536),  # the 2x zoom's region of the fitted CT: overshoots inside
               (301, 457, 1333, 1207),  # odd coordinates
               (1901, 1777, 2048, 2048)]  # the bottom-right edge: the window is clipped to the image
    jobs, expected = [], []
    full = cropped_reference(data, (0, 0, 2048, 2048), 0)[0]
    for region in regions:
        x0, y0, x1, y1 = region
        for reduce in (1, 2):
            jobs.append({"file": str(path), "reduce": 0, "region": list(region),
                         "lowres": lowres_job(coefficients[reduce], (0, 0), reduce, region, 8)})
            expected.append((region, reduce, full[y0:y1, x0:x1]))
    half = cropped_reference(data, (0, 0, 2048, 2048), 1)[0]
    region = (301, 457, 1333, 1207)  # reduce 1 from reduce 2: a finer resolution that is not the finest
    jobs.append({"file": str(path), "reduce": 1, "region": list(region),
                 "lowres": lowres_job(coefficients[2], (0, 0), 2, region, 8)})
    x0, y0, x1, y1 = (-(-v // 2) for v in region)  # its samples at reduce 1 (B.5)
    expected.append((region, "1 from 2", half[y0:y1, x0:x1]))
    # One layer throughout (a decode limited to layer 1 from coefficients kept at layer 1): opj_decompress -l 1.
    jobs.append({"file": str(path), "reduce": 0, "region": list(regions[0]), "layers": 1,
                 "lowres": lowres_job(layer_one, (0, 0), 1, regions[0], 8)})
    x0, y0, x1, y1 = regions[0]
    expected.append((regions[0], "layer 1", cropped_reference(data, (0, 0, 2048, 2048), 0, 1)[0][y0:y1, x0:x1]))
    if name.endswith(".j2k"):
        # The viewer's layer picture: the finest resolution's first layer over the base's lossless
        # coefficients, as opj_decompress decodes the original with that resolution's other layers emptied.
        first_layer, _ = finest_resolution_at_first_layer(data)
        jobs.append({"file": str(path), "reduce": 0, "region": list(regions[0]), "layers": 1,
                     "lowres": lowres_job(coefficients[1], (0, 0), 1, regions[0], 8)})
        expected.append((regions[0], "finest at layer 1", cropped_reference(first_layer, regions[0])[0]))
    # Clamped samples given instead of the coefficients: the same decode goes wrong where they were cut.
    clamped = np.clip(coefficients[1] + 32768, 0, 65535) - 32768
    jobs.append({"file": str(path), "reduce": 0, "region": list(regions[0]),
                 "lowres": lowres_job(clamped, (0, 0), 1, regions[0], 8)})
    results = decode_all(jobs)
    for result, (region, reduce, want) in zip(results, expected):
        assert "error" not in result, (region, reduce, result)
        assert result["lowres_result"] == 1, (region, reduce, "the lower resolution given was not used")
        got = planes(result)[0]
        assert got.shape == want.shape and np.array_equal(got, want), (region, reduce)
    control = results[-1]
    assert control["lowres_result"] == 1
    assert not np.array_equal(planes(control)[0], expected[0][2]), "clamped samples would have been as good"


def test_kept_coefficients_give_exact_regions_with_offsets_tiles_signed_samples_and_few_levels(tmp_path,
                                                                                               conformance_files):
    """Reversible one-component codestreams of other shapes: conformance files (4-bit signed, tiled,
    one level; three levels and layers), generated ones (odd image and tile offsets with tiles, 16-bit
    with odd offsets, 16-bit signed with every mode switch, seven levels), regions with odd
    coordinates at every finer resolution from every lower one kept: opj_decompress's samples exactly.
    A window smaller than what the synthesis reads fails clearly (lowres_result -1), never wrong samples."""
    from pyjpip.codestream.markers import read_main_header

    paths = [p for p in conformance_files if p.name in ("p0_01.j2k", "p0_03.j2k", "p0_16.j2k")]
    names = ("pcrl-tiles-with-offsets", "seven-levels", "all-mode-switches")
    for case in [c for c in GENERATED if c[0] in names] + [ODD_OFFSETS]:
        path = tmp_path / f"{case[0]}.j2k"
        path.write_bytes(generated(*case))
        paths.append(path)
    assert len(paths) == 7
    plans, overshoot = [], 0
    for path in paths:
        data = path.read_bytes()
        header = read_main_header(data)
        size, style = header.size, header.coding_style
        assert len(size.components) == 1 and style.component.reversible, path.name
        levels = min(style.component.decomposition_levels, 3)
        component = size.components[0]
        keeps = list(range(1, levels + 1))
        kept = decode_all([{"file": str(path), "reduce": r, "keep": True} for r in keeps])
        coefficients = {}
        for reduce, result in zip(keeps, kept):
            whole = (size.x_offset, size.y_offset, size.x_size, size.y_size)
            reference = cropped_reference(data, whole, reduce)[0]
            overshoot += assert_coefficients_are_the_samples_unclamped(result, reference, component.precision,
                                                                       component.signed)
            coefficients[reduce] = coefficients_of(result)
        x0, y0, w, h = size.x_offset, size.y_offset, size.x_size - size.x_offset, size.y_size - size.y_offset
        regions = [(x0 + w // 3 | 1, y0 + h // 5 | 1, x0 + 2 * w // 3 | 1, y0 + 4 * h // 5 | 1),
                   (x0 + 1, y0 + h // 2 | 1, x0 + w // 4 | 1, size.y_size)]
        plans.append((path, data, size, levels, coefficients, regions))
    assert overshoot > 10, "the lower resolutions overshoot their sample range somewhere (clamping would cut them)"

    jobs, expected = [], []
    for path, data, size, levels, coefficients, regions in plans:
        for region in regions:
            for low in range(1, levels + 1):
                for reduce in range(0, low):
                    want = cropped_reference(data, region, reduce)[0]
                    for margin in (0, 2, 8):
                        jobs.append({"file": str(path), "reduce": reduce, "region": list(region),
                                     "lowres": lowres_job(coefficients[low], origin(size, low), low, region, margin)})
                        expected.append((path.name, region, low, reduce, margin, want))
    results = decode_all(jobs)
    assert len(results) == len(expected) > 100
    short = 0
    for result, (name, region, low, reduce, margin, want) in zip(results, expected):
        where = (name, region, low, reduce, margin)
        if "error" in result:  # the window fell short of the synthesis: said so, not decoded wrong
            assert result["lowres_result"] == -1 and margin < 8, (where, result)
            short += 1
            continue
        got = planes(result)[0]
        assert got.shape == want.shape and np.array_equal(got, want), where
        # Used: every region here is decoded by area in some tile (a tile it covers is decoded whole).
        assert result["lowres_result"] == 1, where
    assert short > 0, "no window fell short: the -1 answer was not tried (the next decode after one is exact)"


def test_where_the_lower_resolution_does_not_apply_everything_is_decoded_exactly(tmp_path, conformance_files):
    """9/7 (not exact in integers), three components, a whole-image decode, a lower resolution no
    lower than the one asked: keep gives no coefficients, and coefficients given (nonsense ones: they
    must not be read) leave the decode to decode everything, exactly, with lowres_result 0."""
    files = {p.name: p for p in conformance_files}
    paths = {"irreversible-lossy": None, "three-components-colour-transform": None}
    for case in GENERATED:
        if case[0] in paths:
            paths[case[0]] = tmp_path / f"{case[0]}.j2k"
            paths[case[0]].write_bytes(generated(*case))
    paths["p1_04.j2k"] = files["p1_04.j2k"]  # 9/7, 12-bit, tiled, one component
    paths["p0_16.j2k"] = files["p0_16.j2k"]  # 5/3: whole image, and the same resolution as given
    jobs, expected = [], []
    from pyjpip.codestream.markers import read_main_header

    for name, path in paths.items():
        data = path.read_bytes()
        size = read_main_header(data).size
        x0, y0, w, h = size.x_offset, size.y_offset, size.x_size - size.x_offset, size.y_size - size.y_offset
        whole = (x0, y0, size.x_size, size.y_size)
        region = (x0 + w // 3 | 1, y0 + h // 5 | 1, x0 + 2 * w // 3 | 1, y0 + 4 * h // 5 | 1)
        garbage = np.full((h, w), 12345, np.int32)  # larger than any window the synthesis reads
        nonsense = {"reduce": 1, "x0": 0, "y0": 0, "width": w, "height": h,
                    "data": base64.b64encode(garbage.astype("<i4").tobytes()).decode()}
        cases = [(0, region, nonsense)]
        if name == "p0_16.j2k":
            cases = [(0, None, nonsense), (1, region, nonsense), (2, region, nonsense)]
        else:
            jobs.append({"file": str(path), "reduce": 1, "keep": True})
            expected.append((name, 1, None, None, cropped_reference(data, whole, 1)))
        for reduce, where, low in cases:
            jobs.append({"file": str(path), "reduce": reduce, "region": where and list(where), "lowres": low})
            expected.append((name, reduce, where, low, cropped_reference(data, where or whole, reduce)))
    results = decode_all(jobs)
    for result, (name, reduce, region, low, want) in zip(results, expected):
        where = (name, reduce, region)
        assert "error" not in result, (where, result)
        if low is None:
            assert result["coefficients"] is None, (where, "coefficients kept that are not the LL band")
        else:
            assert result["lowres_result"] == 0, where
        got = planes(result)
        assert len(got) == len(want), where
        for plane, reference in zip(got, want):
            assert plane.shape == reference.shape and np.array_equal(plane, reference), where
