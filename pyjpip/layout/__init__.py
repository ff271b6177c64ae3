"""Layout logic computed from DICOM attributes alone, before any pixel arrives."""

from pyjpip.layout.greyscale import GreyscalePipeline

__all__ = ["GreyscalePipeline"]
