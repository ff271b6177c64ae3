"""The browser's decoder (OpenJPEG built to WebAssembly with region decoding, tools/wasm) under Node:
whole images and regions at several resolutions equal Debian's opj_decompress, conformance files,
generated setups and HTJ2K alike; a broken codestream is a clear error, not a crash."""

import base64
import json
import subprocess

import numpy as np
import pytest

from paths import ROOT
from reference import cropped_reference
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
