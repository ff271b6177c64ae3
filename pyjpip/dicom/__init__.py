"""DICOM objects whose pixels are JPEG 2000 codestreams (PS3.5 A.4.4, A.4.11 and the JPIP syntaxes A.6/A.7/A.11/A.12)."""

from pyjpip.dicom.pixel_data import (
    JPEG2000_TRANSFER_SYNTAXES,
    EncapsulatedImage,
    check_codestream_against_attributes,
    read_encapsulated_image,
)

__all__ = [
    "JPEG2000_TRANSFER_SYNTAXES",
    "EncapsulatedImage",
    "check_codestream_against_attributes",
    "read_encapsulated_image",
]
