"""What the browser page asks of Python under Pyodide: the layout of a study from its attributes
(or of DICOM objects by URL: hollow ones, and ordinary ones whose frames are then served by JPIP in
the worker), windows of images streamed by JPIP, and what a failure was (its kind).

Returns plain data (attributes, display parameters, image planes, codestream bytes) so the
JavaScript side needs no knowledge of DICOM or JPEG 2000 headers. pydicom is imported only by what
reads DICOM Part 10 files: a bare JPEG 2000 image by JPIP, and a study laid out from its DICOMweb
metadata (DICOM JSON), start without it (pydicom's import takes about 280 ms in the browser).
"""

from __future__ import annotations

from pyjpip.errors import DicomError, TransportError
from pyjpip.jpip.client import JPIPClientError


def describe_image(data: bytes, source: str = "<bytes>", frame: int = 1, limit: int | None = None) -> dict:
    """Everything needed to decode and paint ``frame`` (counted from 1, as DICOM does). An object
    over ``limit`` bytes (default pyjpip.dicom.limits.MAXIMUM_ORDINARY_BYTES) is refused."""
    from pyjpip.codestream.markers import read_main_header
    from pyjpip.dicom.image_pixel import integer
    from pyjpip.dicom.limits import MAXIMUM_ORDINARY_BYTES
    from pyjpip.dicom.pixel_data import check_codestream_against_attributes, read_encapsulated_image
    from pyjpip.layout.greyscale import GreyscalePipeline

    image = read_encapsulated_image(data, source, MAXIMUM_ORDINARY_BYTES if limit is None else limit)
    if not 1 <= frame <= len(image.frames):
        raise DicomError(f"{source}: frame {frame} does not exist (the object has {len(image.frames)})")
    codestream = image.frames[frame - 1]
    header = read_main_header(codestream)
    dataset = image.dataset
    size = header.size
    return {
        "source": source,
        "transfer_syntax": str(image.transfer_syntax),
        "number_of_frames": len(image.frames),
        "attributes": {
            "PatientName": str(dataset.get("PatientName", "")),
            "Modality": str(dataset.get("Modality", "")),
            "SeriesDescription": str(dataset.get("SeriesDescription", "")),
            "Rows": integer(dataset, "Rows", 0, source),
            "Columns": integer(dataset, "Columns", 0, source),
            "PhotometricInterpretation": str(dataset.get("PhotometricInterpretation", "")),
        },
        "greyscale": GreyscalePipeline.from_dataset(dataset).to_dict(),
        "codestream": {
            "width": size.width,
            "height": size.height,
            "components": len(size.components),
            "precision": size.components[0].precision,
            "signed": size.components[0].signed,
            "tiles": size.tiles_across * size.tiles_down,
            "decomposition_levels": header.coding_style.decomposition_levels,
            "layers": header.coding_style.layers,
            "progression_order": header.coding_style.progression_order.name,
            "high_throughput": header.high_throughput,
        },
        "mismatches": check_codestream_against_attributes(header, dataset),
        "codestream_bytes": codestream,
    }


_streams = None
_local = None
#: Where ordinary DICOM objects' frames are served from inside the worker (never fetched).
LOCAL_BASE = "http://local.pyjpip.invalid"
LOCAL_ROOT = "/tmp/pyjpip-local"


def streams():
    """The worker's JPIP clients, one per image, kept across windows (pyjpip.jpip.viewing)."""
    global _streams
    if _streams is None:
        from pyjpip.jpip.viewing import ImageStreams
        from pyjpip.transport.pyodide_fetch import send as fetch

        async def send(request, client, on_bytes=None):
            if request.url.startswith(LOCAL_BASE):
                return await _local_transport()(request, client, on_bytes)
            return await fetch(request, client, on_bytes)

        _streams = ImageStreams(send)
    return _streams


def _local_transport():
    global _local
    if _local is None:
        import os

        from pyjpip.jpip.server import JPIPServer
        from pyjpip.transport.local import LocalTransport

        os.makedirs(LOCAL_ROOT, exist_ok=True)
        _local = LocalTransport(JPIPServer(LOCAL_ROOT))
    return _local


def serve_locally(image, name: str) -> str:
    """Put an ordinary object's JPEG 2000 frames where the in-worker JPIP server finds them; returns
    the URL that stands in for its Pixel Data Provider URL (stream=n for frame n, as for hollow ones)."""
    import os

    from pyjpip.codestream.file_format import write_frames_file
    from pyjpip.codestream.markers import read_main_header

    _local_transport()
    if len(image.frames) == 1:
        data, file = image.frames[0], f"{name}.j2k"
    else:
        size = read_main_header(image.frames[0]).size
        data = write_frames_file(list(image.frames), size.width, size.height, len(size.components),
                                 size.components[0].precision, size.components[0].signed)
        file = f"{name}.jpx"
    with open(os.path.join(LOCAL_ROOT, file), "wb") as f:
        f.write(data)
    return f"{LOCAL_BASE}/jpip?target={file}"


async def open_objects(urls):
    """?dicom=<url>,<url>...: the objects fetched (hollow ones are a few kilobytes; ordinary ones
    whole, their frames then served in the worker) and laid out like a study."""
    import hashlib

    from pyjpip.dicom.hollow import read_hollow
    from pyjpip.dicom.pixel_data import read_encapsulated_image
    from pyjpip.transport.pyodide_fetch import fetch_bytes

    if hasattr(urls, "to_py"):
        urls = urls.to_py()
    datasets = []
    for url in urls:
        data = await fetch_bytes(url)
        try:
            hollow = read_hollow(data, url)
        except DicomError as not_hollow:
            if not_hollow.kind != "not-hollow":
                raise  # a hollow object, damaged: say so rather than that it is not JPEG 2000
            image = read_encapsulated_image(data, url)
            dataset = image.dataset
            dataset.NumberOfFrames = len(image.frames)
            dataset.PixelDataProviderURL = serve_locally(image, hashlib.sha1(url.encode()).hexdigest()[:16])
            del dataset.PixelData
        else:
            dataset = hollow.dataset
        datasets.append(dataset)
    from pyjpip.layout.ordering import group_studies

    studies = group_studies(datasets)
    first = {ds.SOPInstanceUID for series in studies[0].series for ds in (i.dataset for i in series.instances)}
    return _to_js(study_layout([ds for ds in datasets if ds.SOPInstanceUID in first]))


def _to_js(value):
    from pyodide.ffi import to_js
    import js

    return to_js(value, dict_converter=js.Object.fromEntries)


async def image_header(url: str, stop=None, first_size=None):
    """What a viewer needs to plan windows of a JPIP image: size, levels, frames, components; with
    ``first_size`` [width, height], the whole image at the largest resolution that fits it comes too."""
    if first_size is not None and hasattr(first_size, "to_py"):
        first_size = first_size.to_py()
    try:
        return _to_js(await streams().show(url, stop=stop, first_size=first_size or None))
    except JPIPClientError as error:
        raise unreachable_pixels(url, error) from error


async def show_window(url: str, reduce: int, region, post, stop=None, preview: bool = True):
    """Stream the window (discard ``reduce`` levels; ``region`` [x0, y0, x1, y1] of that frame, or
    None for all of it) and ``post`` pictures of it as they get better. Raises Superseded when
    ``stop()`` says so or a newer window of the same image comes."""
    if region is not None and hasattr(region, "to_py"):
        region = region.to_py()
    if not region:  # None, or a JavaScript null
        region = None
    if not post:
        post = None
    deliver = None if post is None else (lambda picture: post(_to_js(picture.to_dict())))
    try:
        return _to_js(await streams().show(url, reduce, region, deliver, stop, preview=bool(preview)))
    except JPIPClientError as error:
        raise unreachable_pixels(url, error) from error


def error_report(error=None):
    """What the page is told of a failure (pyjpip.errors.describe): its ``kind``, which the worker acts
    on, never the message's text. Without ``error``, the exception that just crossed into JavaScript
    (Pyodide keeps it as sys.last_exc)."""
    import sys

    from pyjpip.errors import describe

    error = error if error is not None else getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    if error is None:
        return _to_js({"kind": "internal", "message": "an error without an exception", "detail": ""})
    return _to_js(describe(error))


def unreachable_pixels(url: str, error: Exception) -> Exception:
    """What a viewer says when the server behind a Pixel Data Provider URL fails it. A hollow object's
    pixels stay with the server that sent it, and PS3.5 10.8 warns that such references may stop
    working: the user is told whose server it is, not shown a blank."""
    from urllib.parse import urlsplit

    from pyjpip.errors import TransportError

    status = getattr(error, "status", None)
    holder = urlsplit(url).netloc or url[:100]
    if status in (401, 403):
        return refused_access(url, status)
    if status is None:
        what = f"the server holding its pixels, {holder}, cannot be reached"
    elif status in (404, 410):
        what = f"the server holding its pixels, {holder}, no longer has them (HTTP {status})"
    else:
        return error
    return TransportError(f"{what}. A hollow object's pixels stay with the server its Pixel Data Provider URL "
                          "names, and such references may stop working (PS3.5 10.8).")


class SignInRequired(TransportError):
    """The server wants credentials (HTTP 401, RFC 6750 3): no token, or one that has expired. The page
    shows its sign-in state and asks again once it has a token."""

    kind = "unauthenticated"


class AccessRefused(TransportError):
    """The server knows who asks and refuses (HTTP 403): signing in again does not help."""

    kind = "forbidden"


def refused_access(url: str, status: int) -> Exception:
    """The error a page shows for a 401 or 403 from ``url``."""
    from urllib.parse import urlsplit

    holder = urlsplit(url).netloc or url[:100]
    if status == 401:
        return SignInRequired(f"{holder} asks who you are: sign in (or sign in again: the session may have expired)")
    return AccessRefused(f"{holder} refused: this account may not see these images (HTTP 403)")


def study_from_metadata(metadata: bytes, source: str):
    """Lay out a study from its hollow objects' attributes alone (no pixel data): the hanging, and for
    each viewport the JPIP URL, the grey-scale parameters and the corner text. ``metadata`` is the
    study's DICOMweb metadata (WADO-RS .../metadata, DICOM JSON), read without pydicom
    (pyjpip.dicom.json_model): pydicom's import would cost more than the first image. The page's
    worker fetches it while Python starts."""
    import json as json_module

    from pyjpip.dicom.json_model import datasets_from_json

    if hasattr(metadata, "to_bytes"):  # a JavaScript Uint8Array
        metadata = metadata.to_bytes()
    try:
        listing = json_module.loads(bytes(metadata))
    except ValueError as exc:
        raise DicomError(f"{source}: the metadata is not JSON ({exc})") from exc
    datasets = datasets_from_json(listing, source)
    if not datasets:
        raise DicomError(f"{source}: the study has no instances")
    return _to_js(study_layout(datasets))


def study_layout(datasets) -> dict:
    """The screen for one study's datasets (hollow objects: attributes only): rows and columns, the
    series hung in each viewport, and every series described as a viewport would show it."""
    from pyjpip.layout.hanging import hang
    from pyjpip.layout.ordering import group_studies

    studies = group_studies(datasets)
    if len(studies) != 1:
        raise DicomError(f"the objects belong to {len(studies)} studies; one was expected")
    (study,) = studies
    hanging = hang(study)
    by_uid = {s.series_instance_uid: s for s in study.series}
    hung = {v.series_instance_uid: v for v in hanging.viewports}
    views = {}
    for series in study.series:
        viewport = hung.get(series.series_instance_uid)
        views[series.series_instance_uid] = _series_view(series, viewport.instance if viewport else
                                                         len(series.instances) // 2, viewport.cine if viewport else False)
    layout = {
        "rows": hanging.rows, "columns": hanging.columns,
        "viewports": [views[v.series_instance_uid] for v in hanging.viewports if v.series_instance_uid in by_uid],
        "series": [views[s.series_instance_uid] for s in study.series],
        "description": study.description,
    }
    return layout


def _series_view(series, instance_index: int, cine: bool) -> dict:
    """A series as a viewport shows it: the stack of frames (URL, corner text and image plane of each),
    where it opens, how to paint it, and what places it in space: its Frame of Reference UID and the
    calibration lengths use (pyjpip.layout.spatial and .measurement; web/spatial.js works from these)."""
    from pyjpip.layout.greyscale import GreyscalePipeline
    from pyjpip.layout.measurement import calibration
    from pyjpip.layout.orientation import edge_markers
    from pyjpip.layout.overlay import corner_text
    from pyjpip.layout.overlay_planes import overlay_planes
    from pyjpip.layout.spatial import image_plane

    instance = series.instances[instance_index]
    ds = instance.dataset
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    greyscale = GreyscalePipeline.from_dataset(ds).to_dict() if photometric.startswith("MONO") else None
    stack = []
    for n, i in enumerate(series.instances):
        # Each object's own display parameters (window, rescale, LUTs and polarity are attributes of the
        # instance, PS3.3 C.11), sent with its items where they differ from the series' first shown.
        failure = None
        try:
            own = GreyscalePipeline.from_dataset(i.dataset).to_dict() if greyscale and i is not instance else greyscale
        except DicomError as error:  # this image cannot be painted right: it says so in its cell, the others show
            from pyjpip.errors import describe

            own, failure = None, {key: describe(error)[key] for key in ("kind", "message")}
        for frame in range(1, i.frames + 1):
            plane = image_plane(i.dataset, frame)
            item = {"url": _frame_url(i, frame), "corners": corner_text(
                i.dataset, instance=n + 1, instances=len(series.instances), frame=frame, frames=i.frames),
                "plane": plane.to_dict() if plane else None}
            if failure:
                item["error"] = failure
            elif own != greyscale:
                item["greyscale"] = own
            planes = overlay_planes(i.dataset, frame)
            if planes:
                item["overlays"] = planes
            stack.append(item)
    first = sum(i.frames for i in series.instances[:instance_index])  # the instance's first frame
    frame_time = float(ds.get("FrameTime", 0) or 0) or (1000.0 / float(ds.get("CineRate", 0) or 0)
                                                       if ds.get("CineRate") else 0.0)
    lengths = calibration(ds)
    return {
        "series": series.series_instance_uid, "modality": series.modality, "description": series.description,
        "count": len(series.instances), "instance": first, "url": _frame_url(instance), "stack": stack,
        "cine": cine, "frame_time": frame_time or 40.0, "photometric": photometric,
        "greyscale": greyscale,
        "markers": edge_markers(ds.get("ImageOrientationPatient")) or {},
        "frame_of_reference": series.frame_of_reference_uid,
        "calibration": lengths.to_dict() if lengths else None,
    }


def _frame_url(instance, frame: int = 1) -> str:
    """Frame n of a multi-frame object is stream=n of its Pixel Data Provider URL (PS3.5 8.4.1)."""
    url = str(instance.dataset.get("PixelDataProviderURL", ""))
    return url + ("&" if "?" in url else "?") + f"stream={frame}" if instance.frames > 1 else url
