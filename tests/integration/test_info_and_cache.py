"""`pyjpip info` as a user runs it, and the packet index cache on disk."""

import json
import os
import subprocess
import sys
import time

import pytest

from pyjpip.codestream import index_cache
from pyjpip.codestream.source import JPEG2000Source

pytestmark = pytest.mark.cpython_only


def pyjpip(*args):
    return subprocess.run([sys.executable, "-m", "pyjpip", *args], capture_output=True, text=True)


def test_info_reports_geometry_coding_and_bins(conformance_files):
    path = next(p for p in conformance_files if p.name == "p1_05.j2k")
    result = pyjpip("info", str(path), "--json")
    assert result.returncode == 0, result.stderr
    described = json.loads(result.stdout)["codestreams"][0]
    assert (described["width"], described["height"], described["origin"]) == (512, 512, [17, 12])  # as the conformance README lists it
    assert described["tiles"]["count"] == 225 and described["coding"]["progression_order"] == "PCRL"
    assert "PPM" in described["coding"]["layout_markers"]
    bins = described["data_bins"]
    assert sum(level["bytes"] for level in bins["by_resolution"]) == bins["precinct_bytes"]
    assert [level["discard_levels"] for level in bins["by_resolution"]] == list(range(7, -1, -1))
    text = pyjpip("info", str(path))
    assert text.returncode == 0 and "512x512 at (17,12)" in text.stdout and "discard 0:" in text.stdout


@pytest.mark.parametrize("content, message", [
    (b"not an image at all", "neither a JPEG 2000 codestream"),
    (b"\xff\x4f\xff\x51\x00\x29" + bytes(30), "SIZ marker segment has an impossible length"),
    (b"", "empty file"),
])
def test_info_on_a_bad_file_is_one_line_and_exit_1(tmp_path, content, message):
    bad = tmp_path / "bad.j2k"
    bad.write_bytes(content)
    result = pyjpip("info", str(bad))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"pyjpip info: {bad}") and message in lines[0], lines


def test_index_cache_is_reused_and_invalidated(tmp_path, conformance_files, monkeypatch):
    original = next(p for p in conformance_files if p.name == "p1_05.j2k").read_bytes()
    path = tmp_path / "image.j2k"
    path.write_bytes(original)
    cache = tmp_path / "cache"

    def open_and_index():
        return JPEG2000Source.open(str(path), cache_dir=str(cache)).index(0)

    first = open_and_index()
    assert len(list(cache.iterdir())) == 1
    with monkeypatch.context() as patched:  # a second open must not index again
        patched.setattr(index_cache, "index_codestream", lambda *a: pytest.fail("indexed again despite the cache"))
        second = open_and_index()
    assert [t.precincts for t in second.tiles] == [t.precincts for t in first.tiles]
    # A changed file must be indexed afresh, not served from the old index.
    replacement = next(p for p in conformance_files if p.name == "p1_06.j2k").read_bytes()
    path.write_bytes(replacement)
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    calls = []
    real = index_cache.index_codestream
    with monkeypatch.context() as patched:
        patched.setattr(index_cache, "index_codestream", lambda *a: calls.append(1) or real(*a))
        third = open_and_index()
    assert calls == [1]
    fresh = JPEG2000Source(replacement).index(0)
    assert [t.precincts for t in third.tiles] == [t.precincts for t in fresh.tiles]
