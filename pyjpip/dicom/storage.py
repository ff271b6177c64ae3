"""What a Storage SCP does with one C-STORE (PS3.4 B.2.2, B.2.3), decided from bytes alone.

The network adapter (pyjpip.network.scp) hands over what arrived: the presentation context's
transfer syntax, the command's Affected SOP Class and Instance UIDs, the calling AE title and the
data set exactly as it came. This module says what the object is, a hollow object (PS3.5 A.6, A.7,
A.11, A.12), an ordinary one with pixels, or one to refuse, and which DIMSE status the sender
gets. No sockets and no files here, so every rule is tested with bytes.

A Storage SCP given a URL policy (pyjpip.network.url_policy: the schemes and hosts its viewers may
fetch pixels from) refuses a hollow object whose Pixel Data Provider URL is outside it, with
Refused: Not Authorized, and stores nothing. Without one, the default policy (http or https, any
host) still refuses what every policy refuses: credentials in the URL, characters a URL cannot hold,
hosts written to hide what they are.

One case is recognised on purpose: an object in an ordinary syntax that carries a Pixel Data
Provider URL and no pixels. DCMTK's storescu sends exactly that when it converts a .94 file to
Explicit VR Little Endian because the acceptor took no JPIP syntax; it is stored as the hollow
object it is, under a JPIP syntax, with a warning.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from pyjpip.dicom.hollow import (
    DEFLATED,
    JPIP_HTJ2K_REFERENCED,
    JPIP_REFERENCED,
    JPIP_TRANSFER_SYNTAXES,
    MAXIMUM_INFLATED_BYTES,
    check_hollow,
    inflate,
    parse_explicit_little_endian,
)
from pyjpip.dicom.limits import MAXIMUM_ORDINARY_BYTES
from pyjpip.dicom.uid_paths import is_uid
from pyjpip.errors import DamagedDatasetError, DatasetTooLargeError, DicomError, NotHollowError, UntrustedURLError

log = logging.getLogger(__name__)

# C-STORE statuses (PS3.4 B.2.3, PS3.7 C.4.2): the ones this SCP answers.
SUCCESS = 0x0000
#: Refused: Out of Resources. Also what a data set beyond the size limits gets.
OUT_OF_RESOURCES = 0xA700
#: Error: Data Set does not match SOP Class (a required attribute missing or against its module).
DATA_SET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
#: Error: Cannot understand (the bytes cannot be parsed in the negotiated transfer syntax).
CANNOT_UNDERSTAND = 0xC000
#: Refused: Not Authorized (PS3.7 Annex C, a status every DIMSE service may answer): a Pixel Data
#: Provider URL outside this SCP's allow-list of schemes and hosts.
NOT_AUTHORIZED = 0x0124

EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1.99"
EXPLICIT_VR_BIG_ENDIAN = "1.2.840.10008.1.2.2"
#: Hollow data sets hold no pixels: anything larger than this is refused before it is parsed.
MAXIMUM_HOLLOW_BYTES = MAXIMUM_INFLATED_BYTES
#: Attributes the archive files an instance by (PS3.3 C.7.2.1, C.7.3.1, C.12.1: all Type 1).
REQUIRED = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")
#: File name endings of HTJ2K targets, for a hollow object that arrived in an ordinary syntax.
HTJ2K_ENDINGS = (".jph", ".jhc")


@dataclass(frozen=True)
class Received:
    """One C-STORE request as it arrived."""

    transfer_syntax: str
    sop_class_uid: str
    sop_instance_uid: str
    encoded: bytes  # the data set as sent: no file meta, deflated if the syntax deflates
    calling_ae_title: str = ""
    called_ae_title: str = ""


@dataclass(frozen=True)
class Hollow:
    """A hollow object to store. ``dataset_bytes`` is its data set in Explicit VR Little Endian,
    not deflated; ``wire_bytes`` what was sent (the same bytes, or deflated for .95/.205)."""

    dataset: object  # pydicom Dataset
    transfer_syntax: str  # the JPIP syntax it is stored under
    received_transfer_syntax: str
    dataset_bytes: bytes
    wire_bytes: bytes
    url: str
    frames: int
    warnings: tuple[str, ...] = ()

    @property
    def status(self) -> int:
        return SUCCESS


@dataclass(frozen=True)
class Ordinary:
    """An object with its pixels: ingested (pyjpip.dicom.ingest), then stored as a hollow object
    whose URL points at this server."""

    dataset: object
    received_transfer_syntax: str
    encoded: bytes


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str
    attribute: str | None = None
    #: An update of an instance already stored (audited as action U).
    update: bool = False
    #: The data set refused, when it could be read (for the audit trail's study and patient).
    dataset: object = None

    @property
    def error_comment(self) -> str:
        """Error Comment (0000,0902) is LO: 64 characters at most, and a backslash would split it."""
        return self.reason.replace("\\", "/")[:64]


def classify(received: Received, maximum_hollow_bytes: int = MAXIMUM_HOLLOW_BYTES,
             maximum_ordinary_bytes: int = MAXIMUM_ORDINARY_BYTES, url_policy=None) -> Hollow | Ordinary | Refusal:
    """What ``received`` is and what the SCU is answered; never raises for bad input. With
    ``url_policy`` (a pyjpip.network.url_policy.URLPolicy), a hollow object whose URL it refuses is
    refused."""
    source = f"{received.sop_instance_uid or '(no SOP Instance UID)'} from {received.calling_ae_title or '?'}"
    try:
        if received.transfer_syntax in JPIP_TRANSFER_SYNTAXES:
            return _allowed(_check(_hollow_in_jpip_syntax(received, source, maximum_hollow_bytes), received),
                            url_policy)
        if len(received.encoded) > maximum_ordinary_bytes:
            return Refusal(OUT_OF_RESOURCES, f"data set of {len(received.encoded)} bytes is over this SCP's "
                                             f"limit of {maximum_ordinary_bytes}")
        dataset = _read_ordinary(received, source, maximum_ordinary_bytes)
        if any(k in dataset for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
            return _check(Ordinary(dataset, received.transfer_syntax, received.encoded), received)
        if "PixelDataProviderURL" in dataset:
            if len(received.encoded) > maximum_hollow_bytes:
                raise DatasetTooLargeError(f"{source}: a hollow data set of {len(received.encoded)} bytes; "
                                           f"at most {maximum_hollow_bytes} are taken")
            return _allowed(_check(_hollow_in_ordinary_syntax(dataset, received, source), received), url_policy)
        return Refusal(DATA_SET_DOES_NOT_MATCH_SOP_CLASS,
                       "neither Pixel Data nor a Pixel Data Provider URL (0028,7FE0)", "PixelData")
    except DatasetTooLargeError as error:
        return Refusal(OUT_OF_RESOURCES, _without_source(error, source))
    except NotHollowError as error:
        return Refusal(DATA_SET_DOES_NOT_MATCH_SOP_CLASS, _without_source(error, source), error.attribute)
    except DamagedDatasetError as error:
        return Refusal(CANNOT_UNDERSTAND, _without_source(error, source))
    except DicomError as error:
        return Refusal(CANNOT_UNDERSTAND, _without_source(error, source))


def _hollow_in_jpip_syntax(received: Received, source: str, maximum: int) -> Hollow:
    wire = received.encoded
    if received.transfer_syntax in DEFLATED:
        dataset_bytes = inflate(wire, source, limit=maximum)
    else:
        if len(wire) > maximum:
            raise DatasetTooLargeError(f"{source}: a hollow data set of {len(wire)} bytes; at most {maximum} "
                                       "are taken")
        dataset_bytes = wire
    dataset = parse_explicit_little_endian(dataset_bytes, source)
    url, frames = check_hollow(dataset, source)
    return Hollow(dataset, received.transfer_syntax, received.transfer_syntax, bytes(dataset_bytes), bytes(wire),
                  url, frames)


def _allowed(found, url_policy):
    """A hollow object whose Pixel Data Provider URL the policy refuses is refused: Not Authorized.
    Without a policy, the default one (any host): what every policy refuses (credentials, characters a
    URL cannot hold, hosts written to hide what they are) is refused all the same."""
    if not isinstance(found, Hollow):
        return found
    if url_policy is None:
        from pyjpip.network.url_policy import DEFAULT_POLICY

        url_policy = DEFAULT_POLICY
    try:
        url_policy.check(found.url)
    except UntrustedURLError as error:
        return Refusal(NOT_AUTHORIZED, f"Pixel Data Provider URL: {error.reason}", "PixelDataProviderURL",
                       dataset=found.dataset)
    return found


def _read_ordinary(received: Received, source: str, maximum: int = MAXIMUM_ORDINARY_BYTES):
    """A data set in an ordinary syntax, read by pydicom (which knows them all)."""
    from pydicom.filereader import read_dataset
    from pydicom.filebase import DicomBytesIO

    syntax = received.transfer_syntax
    body = received.encoded
    if syntax == DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN:
        body = inflate(body, source, limit=maximum)
    implicit = syntax == IMPLICIT_VR_LITTLE_ENDIAN
    little = syntax != EXPLICIT_VR_BIG_ENDIAN
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            dataset = read_dataset(DicomBytesIO(body), is_implicit_VR=implicit, is_little_endian=little)
            for element in dataset.iterall():
                if element.tag != 0x7FE00010:
                    element.value
    except Exception as exc:  # pydicom has many ways to say the bytes are not a data set
        raise DamagedDatasetError(f"{source}: data set is damaged ({type(exc).__name__}: {exc})") from exc
    for warning in caught:
        text = str(warning.message)
        if "End of file" in text or "Expected explicit VR" in text or "Expected implicit VR" in text:
            raise DamagedDatasetError(f"{source}: data set is damaged or cut short ({text})")
    return dataset


def _hollow_in_ordinary_syntax(dataset, received: Received, source: str) -> Hollow:
    """A URL and no pixels in an ordinary syntax (DCMTK storescu's conversion of a JPIP object): the
    hollow object it is. Explicit VR Little Endian is already the JPIP encoding (A.6), so its bytes
    stay as they came; other syntaxes are written again as Explicit VR Little Endian."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    url, frames = check_hollow(dataset, source)
    syntax = JPIP_HTJ2K_REFERENCED if _names_htj2k(url) else JPIP_REFERENCED
    notes = [f"arrived in {_syntax_name(received.transfer_syntax)} with a Pixel Data Provider URL and no "
             f"pixels (as DCMTK's storescu converts JPIP objects): stored as {_syntax_name(syntax)}"]
    if received.transfer_syntax == EXPLICIT_VR_LITTLE_ENDIAN:
        dataset_bytes = bytes(received.encoded)
    else:
        out = DicomBytesIO()
        out.is_little_endian, out.is_implicit_VR = True, False
        try:
            write_dataset(out, dataset)
        except Exception as exc:  # an element whose VR cannot be known
            raise DamagedDatasetError(f"{source}: cannot be written as Explicit VR Little Endian ({exc})") from exc
        dataset_bytes = out.getvalue()
        dataset = parse_explicit_little_endian(dataset_bytes, source)
        notes.append("its data set was written again in Explicit VR Little Endian")
    return Hollow(dataset, syntax, received.transfer_syntax, dataset_bytes, bytes(received.encoded), url, frames,
                  tuple(notes))


def _check(found: Hollow | Ordinary, received: Received) -> Hollow | Ordinary | Refusal:
    """What every stored instance must carry, and agreement with the C-STORE command."""
    dataset = found.dataset
    for keyword in REQUIRED:
        value = str(dataset.get(keyword, "") or "").strip()
        if not value:
            return Refusal(DATA_SET_DOES_NOT_MATCH_SOP_CLASS, f"no {keyword}", keyword)
        if not is_uid(value):
            return Refusal(DATA_SET_DOES_NOT_MATCH_SOP_CLASS, f"{keyword} {value[:40]!r} is not a UID (PS3.5 9.1)",
                           keyword)
    if str(dataset.SOPClassUID) != received.sop_class_uid:
        return Refusal(DATA_SET_DOES_NOT_MATCH_SOP_CLASS,
                       f"SOP Class UID {dataset.SOPClassUID} is not the command's {received.sop_class_uid}",
                       "SOPClassUID")
    if str(dataset.SOPInstanceUID) != received.sop_instance_uid:
        return Refusal(CANNOT_UNDERSTAND, f"SOP Instance UID {dataset.SOPInstanceUID} is not the command's "
                                          f"{received.sop_instance_uid}", "SOPInstanceUID")
    return found


def _names_htj2k(url: str) -> bool:
    parts = urlsplit(url)
    target = dict(parse_qsl(parts.query)).get("target") or parts.path
    return target.lower().endswith(HTJ2K_ENDINGS)


def _syntax_name(uid: str) -> str:
    from pydicom.uid import UID

    name = UID(uid).name
    return f"{name} ({uid})" if name and name != uid else uid


def _without_source(error: Exception, source: str) -> str:
    """The reason alone: the log line and the status already say which instance and sender."""
    text = str(error)
    return text[len(source) + 2:] if text.startswith(source + ": ") else text


def part10_for_ingest(ordinary: Ordinary, sop_class_uid: str, sop_instance_uid: str) -> bytes:
    """Part 10 bytes of an ordinary object as it came (file meta added), for pyjpip.dicom.ingest."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_file_meta_info
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class_uid)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    meta.TransferSyntaxUID = UID(ordinary.received_transfer_syntax)
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = True, False
    out.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(out, meta, enforce_standard=True)
    return out.getvalue() + bytes(ordinary.encoded)


__all__ = ["Received", "Hollow", "Ordinary", "Refusal", "classify", "part10_for_ingest", "SUCCESS",
           "OUT_OF_RESOURCES", "DATA_SET_DOES_NOT_MATCH_SOP_CLASS", "CANNOT_UNDERSTAND", "NOT_AUTHORIZED",
           "MAXIMUM_ORDINARY_BYTES"]
