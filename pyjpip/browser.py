"""What the browser page asks of Python under Pyodide: read a DICOM object and say how to show it.

Returns plain data (attributes, display parameters, codestream geometry, the codestream bytes) so
the JavaScript side needs no knowledge of DICOM or JPEG 2000 headers.
"""

from __future__ import annotations

from pyjpip.codestream.markers import read_main_header
from pyjpip.dicom.pixel_data import check_codestream_against_attributes, read_encapsulated_image
from pyjpip.errors import DicomError
from pyjpip.layout.greyscale import GreyscalePipeline


def describe_image(data: bytes, source: str = "<bytes>", frame: int = 1) -> dict:
    """Everything needed to decode and paint ``frame`` (counted from 1, as DICOM does)."""
    image = read_encapsulated_image(data, source)
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
            "Rows": int(dataset.get("Rows", 0)),
            "Columns": int(dataset.get("Columns", 0)),
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


async def open_dicom(url: str, frame: int = 1):
    """Fetch a DICOM object over HTTP and describe it; the result is converted to a JS object."""
    from pyodide.ffi import to_js  # only under Pyodide
    import js

    from pyjpip.transport.pyodide_fetch import fetch_bytes

    description = describe_image(await fetch_bytes(url), source=url, frame=frame)
    return to_js(description, dict_converter=js.Object.fromEntries)


def fit_frame(width: int, height: int, viewport_width: int, viewport_height: int) -> tuple[int, int]:
    """The frame size that fills a viewport when the image is fitted into it (aspect kept): asked
    for with round-up, it gives at least one image pixel per screen pixel."""
    scale = min(viewport_width / width, viewport_height / height, 1.0)
    return max(1, -(-int(width * scale * 1000) // 1000)), max(1, -(-int(height * scale * 1000) // 1000))


async def stream_jpip(url: str, viewport_width: int, viewport_height: int, post, stop=None,
                      every_bytes: int = 1 << 18):
    """Show a JPEG 2000 image from a JPIP URL: learn its size from the main header, ask for the frame
    that fits the viewport, and ``post`` a decodable codestream whenever ``every_bytes`` more have
    arrived and when the window is complete (a coarse picture first, then sharper ones). ``stop()``
    returning true (the user has moved on) abandons the fetch at the next piece of body."""
    from pyodide.ffi import to_js
    import js

    from pyjpip.codestream.markers import read_main_header
    from pyjpip.jpip.client import JPIPClient, ViewWindow
    from pyjpip.transport.pyodide_fetch import Cancelled, fetch_window

    client = JPIPClient(url)

    def check(events=None) -> None:
        if stop is not None and stop():
            raise Cancelled(url)

    await fetch_window(client, ViewWindow(), on_bytes=check)  # headers: the main header gives the size
    main, _, _ = client.cache.codestream_bins(client.url_stream or 0)
    if main is None:
        raise DicomError(f"{url}: the server sent no main header")
    size = read_main_header(main + b"\xff\x90").size
    window = ViewWindow(fsiz=fit_frame(size.width, size.height, viewport_width, viewport_height), round="round-up")
    state = {"next": every_bytes}

    def send(final: bool) -> None:
        view = client.rebuild(window)
        if view is None:
            return
        post(to_js({"codestream": view.codestream, "reduce": view.reduce, "frame": list(view.frame),
                    "width": size.width, "height": size.height, "received": client.bytes_received,
                    "layers": view.rebuilt.layers_complete, "final": final, "requests": client.requests_sent},
                   dict_converter=js.Object.fromEntries))

    def progress(events) -> None:
        check()
        if client.bytes_received >= state["next"]:
            state["next"] = client.bytes_received + every_bytes
            send(False)

    await fetch_window(client, window, on_bytes=progress)
    send(True)


async def open_study(base_url: str, study_uid: str):
    """Lay out a study from its hollow objects' attributes alone (no pixel data): the hanging, and for
    each viewport the JPIP URL, the grey-scale parameters and the corner text."""
    import json as json_module

    from pydicom.dataset import Dataset
    from pyodide.ffi import to_js
    import js

    from pyjpip.layout.hanging import hang
    from pyjpip.layout.orientation import edge_markers
    from pyjpip.layout.ordering import group_studies
    from pyjpip.layout.overlay import corner_text
    from pyjpip.transport.pyodide_fetch import fetch_bytes

    listing = await fetch_bytes(f"{base_url.rstrip('/')}/dicomweb/studies/{study_uid}/metadata")
    datasets = [Dataset.from_json(item) for item in json_module.loads(listing)]
    if not datasets:
        raise DicomError(f"study {study_uid} has no instances")
    (study,) = group_studies(datasets)
    hanging = hang(study)
    by_uid = {s.series_instance_uid: s for s in study.series}
    viewports = []
    for viewport in hanging.viewports:
        series = by_uid[viewport.series_instance_uid]
        instance = series.instances[viewport.instance]
        ds = instance.dataset
        url = _frame_url(instance)
        photometric = str(ds.get("PhotometricInterpretation", ""))
        stack = [{"url": _frame_url(i, frame), "corners": corner_text(
                      i.dataset, instance=n + 1, instances=len(series.instances), frame=frame, frames=i.frames)}
                 for n, i in enumerate(series.instances) for frame in range(1, i.frames + 1)]
        first = sum(i.frames for i in series.instances[: viewport.instance])  # the instance's first frame
        frame_time = float(ds.get("FrameTime", 0) or 0) or (1000.0 / float(ds.get("CineRate", 0) or 0)
                                                           if ds.get("CineRate") else 0.0)
        viewports.append({
            "series": series.series_instance_uid, "modality": series.modality, "instance": first, "url": url,
            "stack": stack,
            "cine": viewport.cine, "frame_time": frame_time or 40.0,
            "greyscale": GreyscalePipeline.from_dataset(ds).to_dict() if photometric.startswith("MONO") else None,
            "corners": corner_text(ds, instance=viewport.instance + 1, instances=len(series.instances),
                                   frames=instance.frames),
            "markers": edge_markers(ds.get("ImageOrientationPatient")) or {},
        })
    layout = {
        "rows": hanging.rows, "columns": hanging.columns, "viewports": viewports,
        "series": [{"uid": s.series_instance_uid, "modality": s.modality, "description": s.description,
                    "count": len(s.instances)} for s in study.series],
        "description": study.description,
    }
    return to_js(layout, dict_converter=js.Object.fromEntries)


def _frame_url(instance, frame: int = 1) -> str:
    """Frame n of a multi-frame object is stream=n of its Pixel Data Provider URL (PS3.5 8.4.1)."""
    url = str(instance.dataset.get("PixelDataProviderURL", ""))
    return url + ("&" if "?" in url else "?") + f"stream={frame}" if instance.frames > 1 else url
