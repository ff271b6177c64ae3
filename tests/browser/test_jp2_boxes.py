"""The JP2 files of the ISO/IEC 15444-4 conformance suite shown by `/?jpip=` as their boxes say (15444-1 I.5.3).

file1-9 of ../shared/data/j2k-conformance-class1, served with the site by JPIP: every painted pixel of
the whole image at the resolution the page fitted equals opj_decompress of the original JP2 file at
that resolution, scaled from its bit depth to 8 bits, which applies the palette (file9: pclr and
cmap), the channel definitions (file2: cdef in reverse order) and converts sYCC to sRGB (file2,
file3 whose chroma is 4:2:0). Greyscale files (4, 6 at 12 bits) are shown over their nominal range.
A restricted ICC profile (files 5, 7, 8) is not applied by the viewer, which says so beside the image
and shows the samples in the enumerated space of the profile's kind; opj_decompress applies those
profiles (LittleCMS), so these are compared with its decode of the codestream, without the profile.

Exact but for sYCC: OpenJPEG converts with 0.344 and 0.714 and truncates, the viewer with IEC
61966-2-1's coefficients, rounded; within 1 there.
"""

import base64
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from local_site import served
from paths import ROOT
from reference import pgx_array

pytestmark = pytest.mark.cpython_only

CLASS1 = ROOT.parent / "shared" / "data" / "j2k-conformance-class1"
BOOT_TIMEOUT_MS = 120_000

#: file: (what the page says, compared with the file's own decode (True) or its codestream's, tolerance)
FILES = {
    "file1.jp2": ("sRGB", True, 0),
    "file2.jp2": ("sYCC", True, 1),
    "file3.jp2": ("sYCC", True, 1),
    "file4.jp2": ("greyscale", True, 0),
    "file5.jp2": ("sRGB: restricted ICC profile not applied: shown as sRGB", False, 0),
    "file6.jp2": ("greyscale", True, 0),
    "file7.jp2": ("sRGB: restricted ICC profile not applied: shown as sRGB", False, 0),
    "file8.jp2": ("greyscale: restricted ICC profile not applied: shown as greyscale", False, 0),
    "file9.jp2": ("sRGB, palette", True, 0),
}

READ = """() => {
  const canvas = document.querySelector(".cell canvas.base");
  const rgba = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let text = "";
  for (let i = 0; i < rgba.length; i += 0x8000) text += String.fromCharCode(...rgba.subarray(i, i + 0x8000));
  return { width: canvas.width, height: canvas.height, reduce: canvas.dataset.reduce, data: btoa(text),
           info: document.getElementById("image-info").textContent };
}"""


@pytest.fixture(scope="module")
def class1_site():
    with served(CLASS1) as base:
        yield base


def opj_rgb(data: bytes, suffix: str, reduce: int) -> np.ndarray:
    """opj_decompress of a JP2 file (palette, channel definitions, sYCC and ICC applied) or of a raw
    codestream (``suffix`` says which), every component scaled from its bit depth to 8 bits:
    height x width x components."""
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / f"in{suffix}"
        source.write_bytes(data)
        subprocess.run([shutil.which("opj_decompress"), "-i", str(source), "-o", f"{folder}/out.pgx", "-r",
                        str(reduce)], check=True, capture_output=True)
        planes = []
        for path in sorted(Path(folder).glob("out_*.pgx"), key=lambda p: int(p.stem.rsplit("_", 1)[1])):
            header = path.read_bytes().split(b"\n", 1)[0].split()
            depth, signed = int(header[3]), header[2] == b"-"
            plane = pgx_array(path.read_bytes()).astype(np.int64) + ((1 << (depth - 1)) if signed else 0)
            planes.append(np.rint(plane * 255 / ((1 << depth) - 1)).astype(np.int64))
    return np.stack(planes, axis=-1)


def codestream_of(data: bytes) -> bytes:
    start = data.index(b"jp2c") + 4
    return data[start:]


@pytest.mark.parametrize("name", list(FILES))
def test_jp2_boxes_are_shown_as_opj_decompress_applies_them(watched_page, class1_site, name):
    label, whole_file, tolerance = FILES[name]
    page = watched_page
    page.watch.origin = class1_site.rstrip("/")
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(f"{class1_site}?jpip=/jpip?target={name}")
    page.wait_for_function("document.body.dataset.state === 'painted'", timeout=BOOT_TIMEOUT_MS)
    shown = page.evaluate(READ)
    assert shown["info"] == label
    reduce = int(shown["reduce"])
    assert reduce == 0, f"{name}: the page fitted 1/{2 ** reduce}; the comparison is meant at full resolution"
    rgba = np.frombuffer(base64.b64decode(shown["data"]), np.uint8).reshape(shown["height"], shown["width"], 4)
    assert (rgba[..., 3] == 255).all()
    data = (CLASS1 / name).read_bytes()
    expected = opj_rgb(data, ".jp2", reduce) if whole_file else opj_rgb(codestream_of(data), ".j2k", reduce)
    if expected.shape[-1] == 1:  # grey: the page paints it in all three
        expected = np.repeat(expected, 3, axis=-1)
    actual = rgba[..., :3].astype(np.int64)
    assert actual.shape == expected.shape, f"{name}: painted {actual.shape}, opj_decompress {expected.shape}"
    difference = np.abs(actual - expected)
    assert difference.max() <= tolerance, \
        f"{name}: {np.count_nonzero(difference > tolerance)} values differ by more than {tolerance} (max {difference.max()})"
    assert np.ptp(expected) > 100, "a flat reference would prove little"
    assert page.watch.errors == []
