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
