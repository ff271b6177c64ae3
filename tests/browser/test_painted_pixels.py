"""Proof on screen: every single-frame image among pydicom's bundled test files (the wheel's, offline),
the demo study set and grey-scale variants written here (the pipeline's cases those files lack) is
ingested, served, opened in the viewer (the <jpip-viewer> element, the page's own Stack, Viewport and
painter, one Python worker for all), painted at full resolution (one sample per canvas pixel), and
every painted pixel equals tests/display_reference.py (pydicom's decoding of the ORIGINAL file through
the PS3.3 C.11 pipeline; DCMTK's for the 12-bit JPEG pydicom cannot decode) within one grey level.

Nothing is skipped without a word: an image ingest refuses is listed with its one-line reason (and an
image pydicom cannot decode, so with no reference, must be one of them); multi-frame objects are listed
as out of scope. The list is printed and written to test-output/painted-pixels.txt.
"""

from __future__ import annotations

import base64
import copy
import json
import warnings
from collections import defaultdict
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pydicom
import pytest

from display_reference import displayed, original_samples, read
from local_site import served
from paths import ROOT
from test_first_page import BOOT_TIMEOUT_MS

pytestmark = pytest.mark.cpython_only
WHEEL_FILES = Path(pydicom.data.__file__).parent / "test_files"
#: The element's size: the demo CR (2048 x 2500) fits above half scale, so every image's fitted
#: resolution is the full one (web/geometry.js neededReduce).
ELEMENT = 1300
PAINT_TIMEOUT_MS = 30_000


def frame_count(ds) -> int | None:
    try:
        return int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        return None  # unreadable: such an object must be refused, and is counted with the single frames


def pydicom_images() -> tuple[list[Path], list[Path]]:
    """pydicom's bundled files holding Pixel Data: (single-frame, multi-frame)."""
    from pydicom.data import get_testdata_files

    single, multi = [], []
    for name in sorted(get_testdata_files()):
        path = Path(name)
        if not path.is_file() or WHEEL_FILES not in path.parents:
            continue  # a folder, or a file of another data source (none offline)
        try:
            ds = read(path)
            holds_pixels = "PixelData" in ds
        except Exception:  # noqa: BLE001 - not DICOM at all (README, JSON, ICC profile)
            continue
        if holds_pixels:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                frames = frame_count(ds)
            (multi if frames is not None and frames > 1 else single).append(path)
    return single, multi


def uid(*parts) -> str:
    from pydicom.uid import generate_uid

    return generate_uid(entropy_srcs=["pyjpip painted pixels", *map(str, parts)])


def grey_variants(folder: Path) -> list[Path]:
    """CT_small (128 x 128, signed 16-bit, rescale 1/-1024, no window) rewritten with the grey-scale cases
    the bundled files lack, each a series of one study; their pixels are what pydicom decodes of them."""
    from pydicom.data import get_testdata_file
    from pydicom.dataset import Dataset

    folder.mkdir(parents=True, exist_ok=True)
    source = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    stored = source.pixel_array.astype(np.int64)  # 128..2191
    study = uid("study")

    def lut_item(descriptor_vr, descriptor, data):
        item = Dataset()
        item.add_new(0x00283002, descriptor_vr, descriptor)
        item.add_new(0x00283006, "US", data)
        return item

    ramp = np.arange(2400)
    cases = {
        "linear-exact": {"WindowCenter": 40, "WindowWidth": 300, "VOILUTFunction": "LINEAR_EXACT"},
        "sigmoid": {"WindowCenter": 40, "WindowWidth": 300, "VOILUTFunction": "SIGMOID"},
        "slope-half": {"RescaleSlope": 0.5, "RescaleIntercept": -300, "WindowCenter": 200, "WindowWidth": 600},
        "unusable-window": {"WindowCenter": 40, "WindowWidth": 0.5},  # LINEAR needs >= 1: the image's range
        "monochrome1-window": {"PhotometricInterpretation": "MONOCHROME1", "WindowCenter": 40, "WindowWidth": 400},
        "monochrome1-inverse": {"PhotometricInterpretation": "MONOCHROME1", "PresentationLUTShape": "INVERSE",
                                "WindowCenter": 40, "WindowWidth": 400},
        "monochrome1-identity": {"PhotometricInterpretation": "MONOCHROME1", "PresentationLUTShape": "IDENTITY",
                                 "WindowCenter": 40, "WindowWidth": 400},
        "monochrome2-inverse": {"PresentationLUTShape": "INVERSE", "WindowCenter": 40, "WindowWidth": 400},
        "monochrome1-no-window": {"PhotometricInterpretation": "MONOCHROME1"},
        "voi-lut-sequence": {"VOILUTSequence": [lut_item("SS", [2048, -1024, 12],
                                                         [int(v) for v in np.rint(4095 * np.sqrt(np.arange(2048) / 2047))])]},
        "voi-lut-over-window": {"WindowCenter": 40, "WindowWidth": 400,  # the window wins (web/paint.js chooseWindow)
                                "VOILUTSequence": [lut_item("SS", [2048, -1024, 12], [4095 - v for v in range(0, 4096, 2)])]},
        "modality-lut-sequence": {"ModalityLUTSequence": [lut_item("US", [2400, 0, 16], [int(v) for v in 3 * ramp + 100])],
                                  "WindowCenter": 3000, "WindowWidth": 4000, "RescaleSlope": None,
                                  "RescaleIntercept": None},
        "padding-range": {"PixelPaddingValue": -2000, "PixelPaddingRangeLimit": -1990},
        "unsigned-12-bits-masked": {"PixelRepresentation": 0, "BitsStored": 12, "HighBit": 11,
                                    "PixelPaddingValue": None},
        "signed-12-bits": {"BitsStored": 12, "HighBit": 11, "RescaleIntercept": 0, "WindowCenter": 0,
                           "WindowWidth": 1500, "PixelPaddingValue": None},
    }
    written = []
    for n, (name, attributes) in enumerate(cases.items()):
        ds = copy.deepcopy(source)
        values, dtype = stored, "<i2"
        if name == "padding-range":  # a corner of padding values, kept out of the image's range
            values = stored.copy()
            values[:20, :30] = -2000 + np.arange(600).reshape(20, 30) % 11
        elif name == "unsigned-12-bits-masked":  # garbage above Bits Stored, which is not part of the value
            values, dtype = stored | (np.arange(stored.size).reshape(stored.shape) % 16) << 12, "<u2"
        elif name == "signed-12-bits":  # two's complement in 12 bits, the high bits left clear
            values, dtype = (stored - 1100) & 0xFFF, "<u2"
        for keyword, value in attributes.items():
            if value is None:
                delattr(ds, keyword)
            elif keyword in ("PixelPaddingValue", "PixelPaddingRangeLimit"):
                ds.add_new(keyword, "SS", value)
            else:
                setattr(ds, keyword, value)
        ds.PixelData = values.astype(dtype).tobytes()
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, uid("series", name), uid("image", name)
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SeriesDescription, ds.SeriesNumber, ds.StudyDescription = name, n + 1, "grey-scale variants"
        path = folder / f"{name}.dcm"
        ds.save_as(path, enforce_file_format=True)
        written.append(path)
    return written


@contextmanager
def store_server(store: Path):
    """A store's JPIP and DICOMweb, for the page of another origin (DICOMweb opened to it by CORS)."""
    from pyjpip.transport.site import CORSPolicy

    with served(store, static=False, cors=CORSPolicy(dicomweb=("*",))) as base:
        yield base.rstrip("/")


HOST = """<!doctype html><meta charset="utf-8"><title>painted pixels</title>
<body style="margin:0">
<script type="module">await import("/jpip-viewer.js"); window.viewerReady = true;</script>
"""

OPEN_SERIES = """([server, study, series, size]) => {
  document.getElementById("viewer")?.remove();
  const viewer = document.createElement("jpip-viewer");
  viewer.id = "viewer";
  viewer.style.cssText = `display:block;width:${size}px;height:${size}px`;
  Object.entries({ server, study, series }).forEach(([name, value]) => viewer.setAttribute(name, value));
  window.openError = null;
  viewer.addEventListener("jpip-error", (event) => { window.openError = event.detail.message; });
  document.body.append(viewer);
}"""

SHOWN = """(position) => {
  if (window.openError) return true;
  const canvas = document.getElementById("viewer")?.canvas;
  return !!canvas && canvas.dataset.instance === String(position) && ["painted", "error"].includes(canvas.dataset.state);
}"""

READ = """() => {
  const viewer = document.getElementById("viewer");
  if (window.openError) return { error: window.openError };
  const canvas = viewer.canvas;
  if (canvas.dataset.state === "error") return { error: viewer.shadowRoot.querySelector(".failure").textContent };
  const rgba = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let grey = true, translucent = 0;
  for (let i = 0; i < rgba.length; i += 4) {
    if (rgba[i] !== rgba[i + 1] || rgba[i] !== rgba[i + 2]) grey = false;
    if (rgba[i + 3] !== 255) translucent++;
  }
  const channels = grey ? 1 : 3, out = new Uint8Array((rgba.length / 4) * channels);
  for (let i = 0, j = 0; i < rgba.length; i += 4) for (let c = 0; c < channels; c++) out[j++] = rgba[i + c];
  let text = "";
  for (let i = 0; i < out.length; i += 0x8000) text += String.fromCharCode(...out.subarray(i, i + 0x8000));
  return { width: canvas.width, height: canvas.height, channels, translucent, reduce: canvas.dataset.reduce,
           detailShown: !viewer.shadowRoot.querySelector("canvas.detail").hidden, data: btoa(text) };
}"""


def pgx_samples(data: bytes) -> np.ndarray:
    """A PGX plane as OpenJPEG writes it: 1, 2 or (above 16 bits) 4 bytes a sample."""
    header, body = data.split(b"\n", 1)
    _, order, sign, depth, width, height = header.split()
    size = 1 if int(depth) <= 8 else 2 if int(depth) <= 16 else 4
    dtype = (">" if order == b"ML" else "<") + ("i" if sign == b"-" else "u") + str(size)
    return np.frombuffer(body, dtype).reshape(int(height), int(width)).astype(np.int64)


def served_samples_verdict(store: Path, entry: dict, source: Path) -> str:
    """Whether the served codestream (opj_decompress) holds pydicom's samples of the original: tells an
    ingest fault from a painting fault."""
    from reference import opj_decode_all

    try:
        planes = [pgx_samples(p) for p in opj_decode_all((store / entry["image"]).read_bytes())]
        ds = read(source)
        expected = ds.pixel_array.astype(np.int64)
    except Exception as error:  # noqa: BLE001 - a verdict, never the failure itself
        return f"served samples not compared ({type(error).__name__}: {error})"
    served = planes[0] if len(planes) == 1 else np.stack(planes, axis=-1)
    if str(ds.PhotometricInterpretation).strip() == "PALETTE COLOR":
        return "a palette image: its served RGB is checked by the comparison itself"
    if served.shape != expected.shape:
        return f"served samples are {served.shape}, pydicom's {expected.shape}: ingest"
    bits = int(ds.BitsStored)
    if np.array_equal(served, expected):
        return "served samples equal pydicom's: the painting is at fault"
    if np.array_equal(served % (1 << bits), expected % (1 << bits)):
        return "served samples equal pydicom's but for their sign (Pixel Representation): the painting reads them"
    wrong = served != expected
    return (f"served samples differ from pydicom's at {np.count_nonzero(wrong)} of {wrong.size} "
            f"(max {np.abs(served - expected).max()}): ingest")


def test_every_painted_pixel_equals_the_reference(watched_page, demo_site, tmp_path):
    from pyjpip.dicom.ingest import ingest

    page = watched_page
    site, demo_sources, demo_store = demo_site
    single, multi = pydicom_images()
    assert len(single) > 60, "pydicom's bundled images were not found"
    variants = grey_variants(tmp_path / "variants")
    labels = {p: f"pydicom/{p.relative_to(WHEEL_FILES)}" for p in single}
    labels.update({p: f"variant/{p.stem}" for p in variants})
    # Objects sharing a SOP Instance UID (MR_small in nine encodings...) cannot share a store: each
    # store takes the next copy of every UID.
    stores_of: dict[Path, int] = {}
    seen: dict[str, int] = defaultdict(int)
    for path in [*single, *variants]:
        sop = str(read(path).get("SOPInstanceUID", "") or "")
        stores_of[path] = seen[sop] if sop else 0
        seen[sop] += 1
    lines, refused, failures = [], {}, []
    with ExitStack() as stack:
        stores, bases = [], []
        for k in range(max(stores_of.values()) + 1):
            store = tmp_path / f"store-{k}"
            store.mkdir()
            (store / "index.json").write_text('{"instances": {}}')
            base = stack.enter_context(store_server(store))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                report = ingest([str(p) for p, s in stores_of.items() if s == k], str(store), base)
            for path, reason in report.failed:
                refused[Path(path)] = reason
            stores.append(store)
            bases.append(base)
        # The demo set: its own store and server (the site's), ingested without a refusal (demo_site).
        # The page: a viewer site over the demo store, configured to open the other servers' studies
        # and fetch their pixels, and the demo objects' pixels from the demo site (issue 23: a viewer
        # fetches from its own origin and configured ones only).
        from pyjpip.transport.viewer_config import ViewerConfig

        demo_pixels = site.rstrip("/")
        config = ViewerConfig.from_options(pixel_origins=[*bases, demo_pixels], source_origins=bases)
        site = stack.enter_context(served(demo_store, viewer=config))
        stores.append(demo_store)
        bases.append(site.rstrip("/"))
        demo_index = json.loads((demo_store / "index.json").read_text())["instances"]
        for entry in demo_index.values():
            labels.setdefault(Path(entry["source"]), f"demo/{Path(entry['source']).name}")

        # Refusals: one line each; an image pydicom cannot decode (no reference) must be refused.
        for path, reason in sorted(refused.items()):
            assert reason.strip() and "\n" not in reason.strip(), f"{labels[path]}: refusal not one line: {reason!r}"
            lines.append(f"refused   {labels[path]}: {reason}")
        unprovable = set()
        for path in [*single, *variants]:
            if path in refused:
                continue
            try:
                original_samples(path)
            except Exception as error:  # noqa: BLE001
                unprovable.add(path)
                failures.append(f"{labels[path]}: ingested, but pydicom cannot decode the original, so nothing "
                                f"proves its pixels ({type(error).__name__}: {str(error).splitlines()[0]})")
        lines += [f"excluded  pydicom/{p.relative_to(WHEEL_FILES)}: multi-frame (single-frame images only)" for p in multi]

        page.watch.origin = site.rstrip("/")
        page.watch.also.update([*bases, demo_pixels])
        page.set_viewport_size({"width": ELEMENT + 100, "height": ELEMENT + 100})
        page.route(f"{site}painted-pixels.html", lambda route: route.fulfill(status=200, content_type="text/html",
                                                                               body=HOST))
        page.goto(f"{site}painted-pixels.html")
        page.wait_for_function("window.viewerReady === true", timeout=BOOT_TIMEOUT_MS)

        expected_images, checked = {}, set()
        for k, (store, base) in enumerate(zip(stores, bases)):
            index = json.loads((store / "index.json").read_text())["instances"]
            for entry in index.values():
                source = Path(entry["source"])
                if entry["frames"] == 1:
                    expected_images[(k, entry["image"])] = source
                elif k == len(stores) - 1:
                    lines.append(f"excluded  {labels[source]}: multi-frame ({entry['frames']} frames)")
            checked |= {(k, image) for image in view_store(page, store, base, index, labels, unprovable, lines, failures)}
        missing = set(expected_images) - checked
        for k, target in sorted(missing):
            failures.append(f"{labels[expected_images[(k, target)]]}: in the store but in no series the viewer showed")
    in_stores = set(expected_images.values())
    for path in [*single, *variants]:
        if path not in refused and path not in in_stores:
            failures.append(f"{labels[path]}: neither refused nor in its store")
        if path in refused and path in in_stores:
            failures.append(f"{labels[path]}: refused, yet in its store")
    report = ROOT / "test-output" / "painted-pixels.txt"
    report.parent.mkdir(exist_ok=True)
    report.write_text("\n".join(sorted(lines) + [f"FAILED    {f}" for f in failures]) + "\n")
    print("\n".join(sorted(lines)))
    assert not failures, f"{len(failures)} of {len(expected_images) + len(refused)} images:\n" + "\n".join(failures)
    assert page.watch.errors == []


def view_store(page, store: Path, base: str, index: dict, labels: dict, unprovable: set, lines: list,
               failures: list) -> set[str]:
    """Every series of a store in the element, each single-frame image of it shown, read and compared;
    returns the images (store paths) shown."""
    by_image = {entry["image"]: entry for entry in index.values()}
    shown = set()
    for study, series in sorted({(entry["study"], entry["series"]) for entry in index.values()}):
        page.evaluate(OPEN_SERIES, [base, study, series, ELEMENT])
        page.wait_for_function("window.openError || document.getElementById('viewer').stack", timeout=PAINT_TIMEOUT_MS)
        error = page.evaluate("window.openError")
        if error:
            failures.append(f"series {series} of {base}: the viewer could not open it: {error}")
            continue
        for position, url in enumerate(page.evaluate("document.getElementById('viewer').stack.series.stack.map((i) => i.url)")):
            target = parse_qs(urlsplit(url).query)["target"][0]
            entry = by_image[target]
            if entry["frames"] != 1:
                continue
            source = Path(entry["source"])
            shown.add(target)
            if source in unprovable:
                continue  # a failure already: no reference to compare with
            page.evaluate("(to) => { const v = document.getElementById('viewer'); v.scroll(to - v.stack.index); }", position)
            try:
                page.wait_for_function(SHOWN, arg=position, timeout=PAINT_TIMEOUT_MS)
            except Exception:  # noqa: BLE001 - listed with the others
                failures.append(f"{labels[source]}: not painted within {PAINT_TIMEOUT_MS / 1000:g} s")
                continue
            failure = compare(page.evaluate(READ), source, labels[source], lines)
            if failure:
                failures.append(f"{failure}; {served_samples_verdict(store, entry, source)}")
    return shown


def compare(shown: dict, source: Path, label: str, lines: list) -> str | None:
    """None when every painted pixel is within one grey level of the reference; else what differs."""
    if "error" in shown:
        return f"{label}: the viewer says: {shown['error']}"
    try:
        reference = displayed(source)
    except Exception as error:  # noqa: BLE001 - said, never skipped
        return f"{label}: no reference ({type(error).__name__}: {str(error).splitlines()[0]})"
    if shown["reduce"] != "0" or shown["detailShown"]:
        return f"{label}: painted at reduce {shown['reduce']}, not at full resolution"
    if shown["translucent"]:
        return f"{label}: {shown['translucent']} translucent pixels"
    data = np.frombuffer(base64.b64decode(shown["data"]), np.uint8)
    painted = data.reshape(shown["height"], shown["width"], shown["channels"])
    expected = reference.pixels if reference.colour else reference.pixels[..., None]
    if painted.shape[:2] != expected.shape[:2]:
        return f"{label}: painted {painted.shape[1]}x{painted.shape[0]}, the image is {expected.shape[1]}x{expected.shape[0]}"
    if painted.shape[2] != expected.shape[2]:
        if painted.shape[2] != 1:
            return f"{label}: painted in colour, the reference is grey ({reference.steps})"
        painted = np.repeat(painted, 3, axis=2)  # a colour image whose every pixel happens to be grey
    difference = np.abs(painted.astype(int) - expected.astype(int))
    worst = int(difference.max())
    if worst > 1:
        where = np.argwhere(difference > 1)[0]
        return (f"{label}: {np.count_nonzero(difference.max(axis=2) > 1)} of {difference.shape[0] * difference.shape[1]} "
                f"pixels differ by more than 1 (max {worst}; at row {where[0]} column {where[1]}: painted "
                f"{painted[where[0], where[1]].tolist()}, reference {expected[where[0], where[1]].tolist()}) [{reference.steps}]")
    lines.append(f"painted   {label}: {painted.shape[1]}x{painted.shape[0]} within {worst} [{reference.steps}]")
    return None
