"""DICOM objects whose pixels are JPEG 2000 codestreams (PS3.5 A.4.4, A.4.11 and the JPIP syntaxes A.6/A.7/A.11/A.12).

The names below load pydicom on first use, not on import: pyjpip.dicom.json_model (a study's
DICOMweb metadata in the browser) must not pay for pydicom's import.
"""

from importlib import import_module

_FROM_PIXEL_DATA = ("JPEG2000_TRANSFER_SYNTAXES", "EncapsulatedImage", "check_codestream_against_attributes",
                    "read_encapsulated_image")
__all__ = list(_FROM_PIXEL_DATA)


def __getattr__(name: str):
    if name in _FROM_PIXEL_DATA:
        return getattr(import_module("pyjpip.dicom.pixel_data"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
