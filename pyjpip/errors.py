"""Typed errors: each says what was wrong and where, so a caller can report it without guessing.

Every error has a ``kind`` a caller acts on without reading the message (the viewer's worker does:
it falls back to an ordinary object on "not-hollow", offers Retry on "network", drops
"superseded" silently):

- ``not-hollow``: a DICOM object that is not a JPIP Referenced one (use it as an ordinary object);
- ``damaged``: bytes that cannot be read as what they claim (codestream, JPP-stream, data set, a
  hollow object breaking its transfer syntax's rules);
- ``network``: no usable answer from a server (connection, HTTP status, a JPIP refusal);
- ``refused``: a URL or redirect pyjpip will not follow (policy, not failure);
- ``too-large``: over a limit set against abuse;
- ``superseded``: a newer request replaced this one (not a failure);
- ``invalid``: a request or object that cannot be used as asked; ``archive``: a store failed.
"""

from __future__ import annotations

from typing import ClassVar


class PyjpipError(Exception):
    """Base of every error pyjpip raises on purpose."""

    kind: ClassVar[str] = "invalid"


def error_kind(error: BaseException) -> str:
    """The kind of any exception: a PyjpipError's own, "network" for the OS's connection errors,
    "internal" for anything else (a bug: its message is all there is)."""
    if isinstance(error, PyjpipError):
        return error.kind
    if isinstance(error, (ConnectionError, TimeoutError)):
        return "network"
    return "internal"


def describe(error: BaseException) -> dict:
    """An error as a user interface is told of it: kind, the message alone (no traceback), the type's
    name, the traceback for a console, and the HTTP status where there was one."""
    import traceback

    report = {"kind": error_kind(error), "message": str(error) or type(error).__name__,
              "type": type(error).__name__, "detail": "".join(traceback.format_exception(error))}
    status = getattr(error, "status", None)
    if status is not None:
        report["status"] = status
    return report


class Superseded(PyjpipError):
    """The viewer stopped this request (a newer one replaced it): not a failure."""

    kind = "superseded"


class CodestreamError(PyjpipError):
    """A JPEG 2000 codestream is malformed or not what was expected.

    ``offset`` is the byte position in the codestream where the problem was found.
    """

    kind = "damaged"

    def __init__(self, message: str, offset: int | None = None):
        self.reason = message
        self.offset = offset
        where = f" at byte {offset}" if offset is not None else ""
        super().__init__(f"{message}{where}")

    def within(self, context: str, shift: int = 0) -> CodestreamError:
        """The same error seen from an enclosing object: ``context`` prefixed, offset moved by ``shift``."""
        return type(self)(f"{context}: {self.reason}", None if self.offset is None else self.offset + shift)


class DicomError(PyjpipError):
    """A DICOM object cannot be used as asked (not DICOM, wrong transfer syntax, missing attribute)."""


class DamagedDatasetError(DicomError):
    """The bytes of a data set (or its deflated stream) cannot be parsed: cut short, wrong encoding."""

    kind = "damaged"


class NotPart10Error(DicomError):
    """The bytes are not a DICOM Part 10 file (PS3.10 7.1: no preamble and 'DICM' prefix)."""

    kind = "not-hollow"


class NotJPIPReferencedError(DicomError):
    """A DICOM file whose transfer syntax is not one of the JPIP Referenced ones (PS3.5 A.6, A.7,
    A.11, A.12): an ordinary object, not a hollow one."""

    kind = "not-hollow"


class NotHollowError(DicomError):
    """A data set breaks the rules of the JPIP Referenced transfer syntaxes (PS3.5 A.6, A.7, A.11, A.12):
    Pixel Data present, no Pixel Data Provider URL or a malformed one, a Photometric Interpretation
    they do not allow. ``attribute`` names the element at fault. A hollow object that is damaged,
    hence kind "damaged": it is not to be taken for an ordinary one."""

    kind = "damaged"

    def __init__(self, message: str, attribute: str | None = None):
        self.attribute = attribute
        super().__init__(message)


class GeometryError(DicomError):
    """An object's attributes do not place its image in the patient (PS3.3 C.7.6.2): Image Position or
    Orientation (Patient), Pixel Spacing, Rows or Columns missing or unusable (cosines that are not
    orthonormal, a spacing that is not positive). ``attribute`` names the element at fault."""

    def __init__(self, message: str, attribute: str | None = None):
        self.attribute = attribute
        super().__init__(message)


class PixelAttributeError(DicomError):
    """An attribute the pixels are read by (the Image Pixel Module, PS3.3 C.7.6.3, and Number of
    Frames) is missing, not a number, or outside what the standard or pyjpip's bounds allow.
    ``attribute`` names the element at fault."""

    def __init__(self, message: str, attribute: str | None = None):
        self.attribute = attribute
        super().__init__(message)


class UnsupportedPixelsError(DicomError):
    """Pixels pyjpip cannot serve exactly (a precision no JPEG 2000 decoder here reproduces, an
    encoding no installed decoder reads): refused, with the attribute or frame that makes it so."""

    def __init__(self, message: str, attribute: str | None = None):
        self.attribute = attribute
        super().__init__(message)


class PixelMismatchError(DicomError):
    """What would be served does not decode to the source's own pixels: the proof at ingest failed.
    Says the frame (from 1) and the first differing sample (row, column, component from 0) with both
    values; nothing is stored."""

    kind = "damaged"

    def __init__(self, message: str, frame: int | None = None, position: tuple[int, ...] | None = None):
        self.frame = frame
        self.position = position
        super().__init__(message)


class UnsafePathError(DicomError):
    """A value from a data set that was to name a file is not a UID (PS3.5 9.1), so it names none
    (pyjpip.dicom.uid_paths). ``attribute`` names its element."""

    def __init__(self, message: str, attribute: str | None = None):
        self.attribute = attribute
        super().__init__(message)


class DatasetTooLargeError(DicomError):
    """A data set (or what a deflated one inflates to) is larger than a limit set to stop abuse."""

    kind = "too-large"


class ArchiveError(PyjpipError):
    """A store of received objects (files or a database) could not record or give back an instance."""

    kind = "archive"


class TransportError(PyjpipError):
    """A request did not get a usable answer (network failure or an HTTP error status)."""

    kind = "network"


class UntrustedURLError(TransportError):
    """A URL pyjpip will not fetch or keep: a scheme or host outside the allow-list, credentials in
    it, characters a URL cannot hold, a port out of range, a host written to hide what it is.
    ``url`` is the URL as given (it may be long: messages show its start), ``reason`` why."""

    kind = "refused"

    def __init__(self, url: str, reason: str):
        self.url = url
        self.reason = reason
        shown = url if len(url) <= 200 else url[:200] + "..."
        super().__init__(f"{shown!r}: refused, {reason}")


class RedirectRefusedError(TransportError):
    """An HTTP server answered with a redirect (3xx). pyjpip never follows one: a Pixel Data Provider
    URL must name the JPIP server itself, and a redirect could lead a fetch anywhere."""

    kind = "refused"

    def __init__(self, url: str, status: int, location: str | None):
        self.url = url
        self.status = status
        self.location = location
        where = f" to {location[:200]!r}" if location else ""
        super().__init__(f"{url[:200]}: the server answered {status}, a redirect{where}; redirects are not "
                         "followed (give the URL of the server that answers)")
