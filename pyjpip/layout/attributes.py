"""What the layout reads of an object's attributes, whoever parsed them."""

from __future__ import annotations

from typing import Any, Protocol


class Attributes(Protocol):
    """A pydicom ``Dataset`` (Part 10 files, hollow objects) or a ``pyjpip.dicom.json_model.JSONDataset``
    (DICOMweb metadata in the browser, where pydicom's import would cost more than the first image)."""

    def get(self, keyword: str, default: Any = None) -> Any: ...

    def __contains__(self, keyword: str) -> bool: ...
