"""Storage SCU (pynetdicom): push hollow objects to a Storage SCP, proposing the JPIP syntaxes first.

The choices are pyjpip.dicom.presentation's (PS3.17 GG); this module opens the associations and
sends. An object that goes in the syntax it is stored in is sent from its file, byte for byte
(pynetdicom's chunked sending: a .95/.205 object keeps its deflate stream; pynetdicom itself would
send a deflated syntax undeflated). Inflating or deflating for the other JPIP syntax is done here,
and so is the last resort: fetching the pixels by JPIP and sending them encapsulated.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass, field

from pyjpip.dicom import presentation
from pydicom.uid import UID

from pyjpip.dicom.hollow import DEFLATED, JPIP_TRANSFER_SYNTAXES, inflate, part10, read_file_meta, read_hollow
from pyjpip.dicom.limits import MAXIMUM_HOLLOW_BYTES, read_limited
from pyjpip.errors import DicomError, PyjpipError, RedirectRefusedError, UntrustedURLError
from pyjpip.network.url_policy import DEFAULT_POLICY, URLPolicy

log = logging.getLogger(__name__)

#: Statuses a C-STORE SCP may answer with that still mean "stored" (PS3.4 B.2.3 warnings).
WARNINGS = (0xB000, 0xB006, 0xB007)


@dataclass
class Sent:
    """What became of one file."""

    path: str
    sop_instance_uid: str = ""
    transfer_syntax: str = ""  # the syntax it went in
    status: int | None = None  # the SCP's DIMSE status; None when it was never sent
    comment: str = ""  # the SCP's Error Comment, or why it was not sent

    @property
    def ok(self) -> bool:
        return self.status is not None and (self.status == 0 or self.status in WARNINGS)

    def describe(self) -> str:
        if self.status is None:
            return f"not sent: {self.comment}"
        word = "stored" if self.status == 0 else "stored with a warning" if self.ok else "refused"
        text = f"{word} (0x{self.status:04X})"
        if self.transfer_syntax:
            text += f" as {self.transfer_syntax}"
        return text + (f": {self.comment}" if self.comment else "")


@dataclass
class Report:
    sent: list[Sent] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[Sent]:
        return [s for s in self.sent if not s.ok]


def collect(paths: list[str]) -> tuple[list[presentation.Outgoing], list[Sent]]:
    """DICOM files among ``paths`` (folders walked); files that are not DICOM are reported."""
    found, bad = [], []
    for path in _files(paths):
        try:
            with open(path, "rb") as f:
                head = f.read(1 << 16)
            meta, _ = read_file_meta(head, path)
            found.append(presentation.Outgoing(path, str(meta.MediaStorageSOPClassUID),
                                               str(meta.MediaStorageSOPInstanceUID), str(meta.TransferSyntaxUID)))
        except (OSError, DicomError, AttributeError) as error:
            bad.append(Sent(path, comment=f"not a DICOM Part 10 file ({error})"))
    return found, bad


def _files(paths: list[str]):
    for path in paths:
        if os.path.isdir(path):
            for folder, _, names in sorted(os.walk(path)):
                for name in sorted(names):
                    if not name.startswith("."):
                        yield os.path.join(folder, name)
        else:
            yield path


def store(host: str, port: int, paths: list[str], ae_title: str = "PYJPIP", called_ae_title: str = "PYJPIP",
          progress=None, timeout: float = 30.0, jpip_transport=None, url_policy: URLPolicy | None = None,
          tls_context=None) -> Report:
    """Send every DICOM file of ``paths``; ``progress(number, total, Sent)`` after each. Never raises
    for a refused or unreachable peer: the report says what happened to each file.

    ``url_policy`` is where pixels may be fetched from when an SCP takes no JPIP syntax (the
    gateway's last resort): an object whose Pixel Data Provider URL is outside it is not sent.

    An SCP may accept a JPIP syntax and then abort when the data set comes (DCMTK's DIMSE layer,
    and so Orthanc, has no JPIP case: 0006:0212). Then the association is opened again without the
    JPIP syntaxes and the objects go with their pixels (PS3.17 GG), each saying so in the report.

    ``tls_context`` (pyjpip.network.secure_transport.requestor_context): DICOM over TLS, the SCP's
    certificate checked for ``host``."""
    from pynetdicom import _config

    started = time.monotonic()
    objects, report_bad = collect(paths)
    report = Report(list(report_bad))
    counter = {"done": len(report_bad), "total": len(objects) + len(report_bad)}

    def finished(result: Sent) -> None:
        report.sent.append(result)
        counter["done"] += 1
        if progress:
            progress(counter["done"], counter["total"], result)

    _config.STORE_SEND_CHUNKED_DATASET = True  # files go as they are, not re-encoded by pydicom
    with tempfile.TemporaryDirectory(prefix="pyjpip-scu-") as scratch:
        for contexts in presentation.associations(objects):
            wanted = {c for c, _ in contexts}
            batch = [o for o in objects if o.sop_class_uid in wanted and (o.sop_class_uid, o.transfer_syntax) in
                     set(contexts)]
            _send_batch(host, port, ae_title, called_ae_title, timeout, contexts, batch, scratch, jpip_transport,
                        finished, url_policy, tls_context)
    report.seconds = time.monotonic() - started
    return report


def _send_batch(host, port, ae_title, called_ae_title, timeout, contexts, batch, scratch, jpip_transport,
                finished, url_policy=None, tls_context=None) -> None:
    from pynetdicom import AE, evt

    from pyjpip.network.scp import no_delay

    pending = list(batch)
    without_jpip = False
    note = ""
    while pending:
        ae = AE(ae_title=ae_title)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
        for sop_class, syntax in contexts:
            if not (without_jpip and syntax in JPIP_TRANSFER_SYNTAXES):
                ae.add_requested_context(sop_class, [syntax])
        assoc = ae.associate(host, port, ae_title=called_ae_title, evt_handlers=[(evt.EVT_CONN_OPEN, no_delay)],
                             tls_args=(tls_context, host) if tls_context is not None else None)
        try:
            if not assoc.is_established:
                why = (_rejection(assoc) if assoc.is_rejected else _unreachable(host, port, timeout)
                       or ("the association was aborted" + (" (TLS: see the log)" if tls_context else "")
                           if assoc.is_aborted else f"no association with {host}:{port}"))
                for item in pending:
                    finished(Sent(item.path, item.sop_instance_uid, comment=why))
                return
            accepted = {(str(cx.abstract_syntax), str(cx.transfer_syntax[0])) for cx in assoc.accepted_contexts}
            while pending:
                item = pending[0]
                result = _send_one(assoc, item, accepted, scratch, jpip_transport, url_policy)
                if not assoc.is_established:  # the SCP aborted on this object
                    if result.transfer_syntax in JPIP_TRANSFER_SYNTAXES and not without_jpip:
                        log.warning("%s:%s aborted the association on a %s data set (it accepted the syntax but "
                                    "cannot take it); sending with pixels instead", host, port, result.transfer_syntax)
                        without_jpip = True
                        note = (f"sent with its pixels: the SCP aborted on {result.transfer_syntax} after "
                                "accepting it")
                        break
                    result.status = None
                    result.comment = result.comment or "the association was aborted by the SCP"
                    finished(result)
                    pending.pop(0)
                    for item in pending:
                        finished(Sent(item.path, item.sop_instance_uid, comment="not sent: the association was "
                                                                                "aborted by the SCP"))
                    return
                if note and result.status is not None and not result.comment:
                    result.comment = note
                finished(result)
                pending.pop(0)
        finally:
            if assoc.is_established:
                assoc.release()


#: A-ASSOCIATE-RJ (result, source, diagnostic) as PS3.8 9.3.4 names them.
_REJECTIONS = {(1, 3): "calling AE title not recognized", (1, 7): "called AE title not recognized",
               (1, 2): "application context name not supported", (3, 2): "local limit exceeded",
               (3, 1): "temporary congestion"}


def _rejection(assoc) -> str:
    """Why the SCP rejected the association, from its A-ASSOCIATE-RJ."""
    primitive = getattr(assoc.acceptor, "primitive", None)
    result, source, diagnostic = (getattr(primitive, name, None) for name in ("result", "result_source", "diagnostic"))
    said = _REJECTIONS.get((source, diagnostic)) if source in (1, 3) else None
    kind = {1: "permanently", 2: "transiently"}.get(result, "")
    return f"the association was rejected {kind}".rstrip() + (f": {said}" if said else
                                                              f" (source {source}, reason {diagnostic})")


def _unreachable(host: str, port: int, timeout: float) -> str | None:
    """Why no connection could be made (pynetdicom reports a refused connection as an abort)."""
    import socket

    try:
        with socket.create_connection((host, port), timeout=min(timeout, 10)):
            return None
    except OSError as error:
        return f"no association with {host}:{port} ({error.strerror or error})"


def _send_one(assoc, item: presentation.Outgoing, accepted, scratch: str, jpip_transport, url_policy=None) -> Sent:
    result = Sent(item.path, item.sop_instance_uid)
    options = presentation.choices(item, accepted)
    if not options:
        result.comment = (f"the SCP accepted none of {', '.join(presentation.preferences(item.transfer_syntax))} "
                          f"for SOP class {item.sop_class_uid}")
        return result
    try:
        chosen, payload = _prepare(item, options, scratch, jpip_transport, url_policy)
    except (PyjpipError, OSError) as error:
        result.comment = str(error)
        return result
    result.transfer_syntax = chosen
    try:
        status = assoc.send_c_store(payload)
    except (ValueError, AttributeError, RuntimeError) as error:
        result.comment = f"pynetdicom could not send it ({error})"
        return result
    if "Status" not in status:
        deadline = time.monotonic() + 2.0  # an A-ABORT is processed by pynetdicom's reactor thread
        while assoc.is_established and time.monotonic() < deadline:
            time.sleep(0.01)
        result.comment = "the SCP aborted the association" if assoc.is_aborted else "no answer from the SCP"
        return result
    result.status = int(status.Status)
    result.comment = str(status.get("ErrorComment", "") or "")
    return result


def _prepare(item: presentation.Outgoing, options: list[str], scratch: str, jpip_transport, url_policy=None):
    """The syntax chosen and what to hand pynetdicom: a file path (sent byte for byte) or a data set."""
    first = options[0]
    way = presentation.how(item.transfer_syntax, first)
    if way == presentation.AS_STORED:
        return first, item.path
    data = read_limited(item.path, MAXIMUM_HOLLOW_BYTES, "hollow object")  # what is converted is hollow
    if way in (presentation.INFLATE, presentation.DEFLATE):
        meta, start = read_file_meta(data, item.path)
        body = data[start:]
        if item.transfer_syntax in DEFLATED:
            body = inflate(body, item.path)
        meta.TransferSyntaxUID = UID(first)
        descriptor, converted = tempfile.mkstemp(suffix=".dcm", dir=scratch)  # named by no value of the file
        with os.fdopen(descriptor, "wb") as f:
            f.write(part10(meta, body))  # deflated again when ``first`` deflates
        return first, converted
    return _with_pixels(item, data, options, jpip_transport, url_policy)


def _with_pixels(item: presentation.Outgoing, data: bytes, options: list[str], jpip_transport, url_policy=None):
    """PS3.17 GG's last resort: the acceptor takes no JPIP syntax, so the pixels go in the C-STORE.
    Every frame is fetched by JPIP at full resolution with all layers and sent encapsulated."""
    from pydicom.encaps import encapsulate

    from pyjpip.codestream.markers import read_main_header

    hollow = read_hollow(data, item.path)
    codestreams = [fetch_codestream(hollow.frame_url(n), hollow.dataset, jpip_transport, url_policy)
                   for n in range(1, hollow.number_of_frames + 1)]
    header = read_main_header(codestreams[0])
    reversible = header.coding_style.reversible and str(hollow.dataset.get("LossyImageCompression", "00")) != "01"
    usable = [s for s in options if s not in JPIP_TRANSFER_SYNTAXES and presentation.lossless_allowed(s, reversible)]
    if not usable:
        raise DicomError(f"{item.path}: its codestream is not reversible, and the SCP takes only lossless syntaxes")
    chosen = usable[0]
    dataset = hollow.dataset
    del dataset.PixelDataProviderURL
    dataset.PixelData = encapsulate(codestreams)
    dataset["PixelData"].VR = "OB"
    dataset["PixelData"].is_undefined_length = True
    dataset.file_meta.TransferSyntaxUID = UID(chosen)
    if not reversible:
        dataset.LossyImageCompression = "01"
    return chosen, dataset


def fetch_codestream(url: str, dataset, transport=None, policy: URLPolicy | None = None) -> bytes:
    """The whole codestream behind a Pixel Data Provider URL: full resolution, every layer.

    The URL is untrusted (it came in a data set): ``policy`` (default: http(s), any host, no
    credentials) is checked before anything is sent, and the transport made here follows no
    redirect. Either refusal is raised as it is (UntrustedURLError, RedirectRefusedError)."""
    from pyjpip.dicom.image_pixel import integer
    from pyjpip.jpip.client import JPIPClient, ViewWindow, fetch_whole_window
    from pyjpip.jpip.picture import rebuild_served
    from pyjpip.transport.http_client import HTTPTransport

    policy = policy or DEFAULT_POLICY
    policy.check(url)
    window = ViewWindow(fsiz=(integer(dataset, "Columns", None, url[:200]), integer(dataset, "Rows", None, url[:200])),
                        round="round-up")
    client = JPIPClient(url, stateless=False)
    own = transport is None
    transport = transport or HTTPTransport(timeout=30, policy=policy)
    try:
        fetch_whole_window(client, window, transport)
    except (UntrustedURLError, RedirectRefusedError):
        raise
    except (ConnectionError, OSError, PyjpipError) as error:
        raise DicomError(f"the pixels at {url[:200]} cannot be fetched ({error})") from None
    finally:
        if own:
            transport.close()
    view = rebuild_served(client, window)
    if view is None or view.reduce != 0 or view.rebuilt.packets_present != view.rebuilt.packets_total:
        raise DicomError(f"{url[:200]}: the server did not send the whole codestream")
    return view.codestream


def print_progress(number: int, total: int, sent: Sent) -> None:
    import sys

    sys.stderr.write(f"[{number}/{total}] {os.path.basename(sent.path)}: {sent.describe()}\n")
    sys.stderr.flush()
