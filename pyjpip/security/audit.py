"""The audit trail: who saw, stored, changed or was refused what, and when.

Each access event is one DICOM audit message (PS3.15 Annex A.5: the DICOM Audit Message schema,
A.5.1, with the event vocabulary of A.5.3), written

- to a file, one message per line (the XML has no line breaks: a line is a message), and/or
- to a syslog collector as RFC 5424 messages (APP-NAME ``pyjpip``, MSGID ``DICOM+RFC3881``, the XML
  as MSG after a BOM, facility 10 security/authorization, severity notice or warning by outcome),
  over UDP (RFC 5426, one message per datagram), TCP (RFC 6587 octet counting) or TLS (RFC 5425).

Builders make the messages this codebase emits (one per event of A.5.3 used here):

| builder | Event ID (DCM) | when |
|---|---|---|
| ``application_activity`` | 110100 Application Activity | a server starts or stops |
| ``instances_accessed`` | 110103 DICOM Instances Accessed | a study's attributes or pixels are read |
| ``instances_transferred`` | 110104 DICOM Instances Transferred | an instance is stored (created or updated) |
| ``query`` | 110112 Query | a study list (QIDO-RS) is asked for |
| ``security_alert`` | 110113 Security Alert | a peer or request is refused by configuration |
| ``user_authentication`` | 110114 User Authentication | a token or login is checked |

``AuditTrail.record`` never raises: auditing must not turn an answer into a failure, so a destination
that fails is logged (once per kind of failure until it works again) and the event is still kept by
the other destinations.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
import threading
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from typing import Iterable
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

#: EventOutcomeIndicator (PS3.15 A.5.1, from RFC 3881).
SUCCESS = 0
MINOR_FAILURE = 4
SERIOUS_FAILURE = 8
MAJOR_FAILURE = 12

#: Role ID codes of a transfer (DCM, PS3.16 CID 402).
SOURCE = ("110153", "Source Role ID")
DESTINATION = ("110152", "Destination Role ID")
APPLICATION = ("110150", "Application")
APPLICATION_LAUNCHER = ("110151", "Application Launcher")

#: Security Alert event types (DCM, PS3.16 CID 403) used here.
NODE_AUTHENTICATION = ("110126", "Node Authentication")
USE_OF_RESTRICTED_FUNCTION = ("110132", "Use of Restricted Function")
SECURITY_CONFIGURATION = ("110129", "Security Configuration")

_EVENTS = {
    "110100": "Application Activity", "110103": "DICOM Instances Accessed",
    "110104": "DICOM Instances Transferred", "110112": "Query", "110113": "Security Alert",
    "110114": "User Authentication",
}
_ACTIONS = ("C", "R", "U", "D", "E")
#: Bounds on what one message carries from outside (values are attacker-controlled).
MAXIMUM_TEXT = 1024
MAXIMUM_INSTANCES = 10000


@dataclass(frozen=True)
class Participant:
    """An ActiveParticipant: a user (token subject), an application (AE title) or a node.

    ``network_access_point`` is an IP address or host name; ``role`` one of SOURCE, DESTINATION,
    APPLICATION, APPLICATION_LAUNCHER or None."""

    user_id: str
    requestor: bool
    network_access_point: str | None = None
    user_name: str | None = None
    role: tuple[str, str] | None = None
    alternative_user_id: str | None = None


@dataclass(frozen=True)
class ParticipantObject:
    """A ParticipantObjectIdentification: a patient, a study (with its instances), a query."""

    id: str
    type_code: int  # 1 person, 2 system object
    role: int  # 1 patient, 3 report, 13 security resource, 24 query
    id_type: tuple[str, str, str]  # (code, coding scheme, meaning)
    name: str | None = None
    query: str | None = None
    instances: tuple[tuple[str, str], ...] = ()  # (SOP Class UID, SOP Instance UID)


@dataclass(frozen=True)
class AuditMessage:
    event_id: str
    action: str
    outcome: int
    participants: tuple[Participant, ...]
    objects: tuple[ParticipantObject, ...] = ()
    event_type: tuple[str, str, str] | None = None  # (code, scheme, meaning)
    detail: str | None = None
    time: datetime.datetime = field(default_factory=lambda: datetime.datetime.now(datetime.timezone.utc))

    @property
    def event_name(self) -> str:
        return _EVENTS.get(self.event_id, self.event_id)

    def to_element(self, source_id: str, enterprise_site: str | None = None) -> ElementTree.Element:
        """The message as PS3.15 A.5.1's AuditMessage element."""
        root = ElementTree.Element("AuditMessage")
        event = ElementTree.SubElement(root, "EventIdentification", EventActionCode=self.action,
                                       EventDateTime=self.time.isoformat(timespec="milliseconds"),
                                       EventOutcomeIndicator=str(self.outcome))
        _code(event, "EventID", self.event_id, "DCM", self.event_name)
        if self.event_type is not None:
            _code(event, "EventTypeCode", *self.event_type)
        if self.detail:
            ElementTree.SubElement(event, "EventOutcomeDescription").text = _bounded(self.detail)
        for participant in self.participants:
            attributes = {"UserID": _bounded(participant.user_id) or "-",
                          "UserIsRequestor": "true" if participant.requestor else "false"}
            if participant.alternative_user_id:
                attributes["AlternativeUserID"] = _bounded(participant.alternative_user_id)
            if participant.user_name:
                attributes["UserName"] = _bounded(participant.user_name)
            if participant.network_access_point:
                attributes["NetworkAccessPointID"] = _bounded(participant.network_access_point)
                attributes["NetworkAccessPointTypeCode"] = "2" if _is_address(participant.network_access_point) else "1"
            element = ElementTree.SubElement(root, "ActiveParticipant", attributes)
            if participant.role is not None:
                _code(element, "RoleIDCode", participant.role[0], "DCM", participant.role[1])
        source = ElementTree.SubElement(root, "AuditSourceIdentification", AuditSourceID=_bounded(source_id))
        if enterprise_site:
            source.set("AuditEnterpriseSiteID", _bounded(enterprise_site))
        _code(source, "AuditSourceTypeCode", "4", "DCM", "Application Server Process Tier")
        for item in self.objects:
            element = ElementTree.SubElement(root, "ParticipantObjectIdentification",
                                             ParticipantObjectID=_bounded(item.id),
                                             ParticipantObjectTypeCode=str(item.type_code),
                                             ParticipantObjectTypeCodeRole=str(item.role))
            _code(element, "ParticipantObjectIDTypeCode", *item.id_type)
            if item.name:
                ElementTree.SubElement(element, "ParticipantObjectName").text = _bounded(item.name)
            if item.query is not None:
                import base64

                ElementTree.SubElement(element, "ParticipantObjectQuery").text = \
                    base64.b64encode(_bounded(item.query).encode()).decode()
            by_class: dict[str, list[str]] = {}
            for sop_class, sop_instance in item.instances[:MAXIMUM_INSTANCES]:
                by_class.setdefault(sop_class, []).append(sop_instance)
            for sop_class, instances in by_class.items():
                sop = ElementTree.SubElement(element, "SOPClass", UID=_bounded(sop_class),
                                             NumberOfInstances=str(len(instances)))
                for uid in instances:
                    ElementTree.SubElement(sop, "Instance", UID=_bounded(uid))
        return root

    def to_xml(self, source_id: str = "pyjpip", enterprise_site: str | None = None) -> str:
        return ElementTree.tostring(self.to_element(source_id, enterprise_site), encoding="unicode")


def _code(parent, tag: str, code: str, scheme: str, meaning: str):
    return ElementTree.SubElement(parent, tag, {"csd-code": code, "codeSystemName": scheme, "originalText": meaning})


def _bounded(text: str) -> str:
    """Text from outside, at most MAXIMUM_TEXT characters, without characters XML cannot carry."""
    text = str(text)[:MAXIMUM_TEXT]
    return "".join(c if c in "\t\n\r" or (" " <= c and c != "\ufffe" and c != "\uffff") else "?" for c in text) \
        .replace("\n", " ").replace("\r", " ")


def _is_address(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _study_objects(study_uid, patient_id, patient_name, instances) -> tuple[ParticipantObject, ...]:
    objects = []
    if study_uid or instances:
        objects.append(ParticipantObject(study_uid or "-", 2, 3, ("110180", "DCM", "Study Instance UID"),
                                         instances=tuple(instances)))
    if patient_id or patient_name:
        objects.append(ParticipantObject(patient_id or "-", 1, 1, ("2", "RFC-3881", "Patient Number"),
                                         name=patient_name))
    return tuple(objects)


def _action(action: str) -> str:
    if action not in _ACTIONS:
        raise ValueError(f"EventActionCode {action!r} is not one of {', '.join(_ACTIONS)}")
    return action


# --- builders (PS3.15 A.5.3) ----------------------------------------------------------------------

def instances_accessed(action: str, outcome: int, participants: Iterable[Participant], study_uid: str | None = None,
                       patient_id: str | None = None, patient_name: str | None = None,
                       instances: Iterable[tuple[str, str]] = (), detail: str | None = None) -> AuditMessage:
    """A.5.3.2 DICOM Instances Accessed: a study's attributes or pixels were read (R), or created,
    updated, deleted in place."""
    return AuditMessage("110103", _action(action), outcome, tuple(participants),
                        _study_objects(study_uid, patient_id, patient_name, instances), detail=detail)


def instances_transferred(action: str, outcome: int, participants: Iterable[Participant], study_uid: str | None = None,
                          patient_id: str | None = None, patient_name: str | None = None,
                          instances: Iterable[tuple[str, str]] = (), detail: str | None = None) -> AuditMessage:
    """A.5.3.3 DICOM Instances Transferred: instances received (C: new, U: replacing, R: sent)."""
    return AuditMessage("110104", _action(action), outcome, tuple(participants),
                        _study_objects(study_uid, patient_id, patient_name, instances), detail=detail)


def query(outcome: int, participants: Iterable[Participant], query: str, detail: str | None = None) -> AuditMessage:
    """A.5.3.10 Query: ``query`` is what was asked (a QIDO-RS path and query string)."""
    target = ParticipantObject(query.partition("?")[0] or "-", 2, 3, ("12", "RFC-3881", "URI"), query=query)
    return AuditMessage("110112", "E", outcome, tuple(participants), (target,), detail=detail)


def user_authentication(outcome: int, participants: Iterable[Participant], detail: str | None = None,
                        logout: bool = False) -> AuditMessage:
    """A.5.3.12 User Authentication: a login (a token checked) or a logout."""
    kind = ("110123", "DCM", "Logout") if logout else ("110122", "DCM", "Login")
    return AuditMessage("110114", "E", outcome, tuple(participants), event_type=kind, detail=detail)


def security_alert(outcome: int, participants: Iterable[Participant], alert: tuple[str, str],
                   detail: str | None = None) -> AuditMessage:
    """A.5.3.11 Security Alert: e.g. NODE_AUTHENTICATION for a peer refused at association."""
    return AuditMessage("110113", "E", outcome, tuple(participants), event_type=(alert[0], "DCM", alert[1]),
                        detail=detail)


def application_activity(started: bool, participants: Iterable[Participant], detail: str | None = None) -> AuditMessage:
    """A.5.3.1 Application Activity: a server started or stopped."""
    kind = ("110120", "DCM", "Application Start") if started else ("110121", "DCM", "Application Stop")
    return AuditMessage("110100", "E", SUCCESS, tuple(participants), event_type=kind, detail=detail)


# --- destinations --------------------------------------------------------------------------------

class FileDestination:
    """Appends one message per line to a file (opened per write: rotation by logrotate is safe)."""

    def __init__(self, path: str):
        self.path = path
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise FileNotFoundError(f"audit file {path}: folder {directory} does not exist")

    def send(self, message: AuditMessage, xml: str) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (xml + "\n").encode())
        finally:
            os.close(fd)

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return self.path


class SyslogDestination:
    """RFC 5424 messages to a collector: udp:// (RFC 5426), tcp:// (RFC 6587 octet counting) or
    tls:// (RFC 5425, the server's certificate verified against the system's or ``ca_file``)."""

    FACILITY = 10  # security/authorization messages
    NOTICE, WARNING = 5, 4

    def __init__(self, url: str, ca_file: str | None = None, timeout: float = 5.0):
        parts = urlsplit(url)
        if parts.scheme not in ("udp", "tcp", "tls") or not parts.hostname:
            raise ValueError(f"syslog destination {url!r}: give udp://HOST[:514], tcp://HOST[:601] or tls://HOST[:6514]")
        self.url, self.scheme, self.host = url, parts.scheme, parts.hostname
        self.port = parts.port or {"udp": 514, "tcp": 601, "tls": 6514}[parts.scheme]
        self.ca_file, self.timeout = ca_file, timeout
        self.socket = None
        self.hostname = socket.gethostname()[:255] or "-"

    def frame(self, message: AuditMessage, xml: str) -> bytes:
        severity = self.NOTICE if message.outcome == SUCCESS else self.WARNING
        stamp = message.time.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        head = f"<{self.FACILITY * 8 + severity}>1 {stamp} {self.hostname} pyjpip {os.getpid()} DICOM+RFC3881 - "
        return head.encode("ascii", "replace") + b"\xef\xbb\xbf" + xml.encode()

    def send(self, message: AuditMessage, xml: str) -> None:
        data = self.frame(message, xml)
        if self.scheme == "udp":
            with socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(data[:65000], (self.host, self.port))
            return
        framed = b"%d %s" % (len(data), data)
        if self.socket is not None:  # a collector that closed an idle connection gets one reconnect
            try:
                self.socket.sendall(framed)
                return
            except OSError:
                self.close()
        self.socket = self._connect()
        try:
            self.socket.sendall(framed)
        except OSError:
            self.close()
            raise

    def _connect(self):
        raw = socket.create_connection((self.host, self.port), timeout=self.timeout)
        if self.scheme == "tls":
            import ssl

            context = ssl.create_default_context(cafile=self.ca_file)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            return context.wrap_socket(raw, server_hostname=self.host)
        return raw

    def close(self) -> None:
        if self.socket is not None:
            try:
                self.socket.close()
            finally:
                self.socket = None

    def describe(self) -> str:
        return self.url


class MemoryDestination:
    """Keeps the messages (tests, and callers that show the trail)."""

    def __init__(self):
        self.messages: list[AuditMessage] = []
        self.xml: list[str] = []

    def send(self, message: AuditMessage, xml: str) -> None:
        self.messages.append(message)
        self.xml.append(xml)

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return "memory"


class AuditTrail:
    """Where audit messages go. ``record`` never raises."""

    def __init__(self, destinations: Iterable = (), source_id: str | None = None, enterprise_site: str | None = None):
        self.destinations = list(destinations)
        self.source_id = source_id or f"pyjpip@{socket.gethostname()}"
        self.enterprise_site = enterprise_site
        self.lock = threading.Lock()
        self.failing: set[tuple[str, str]] = set()

    @classmethod
    def from_options(cls, file: str | None = None, syslog: str | None = None, syslog_ca: str | None = None,
                     source_id: str | None = None) -> "AuditTrail":
        destinations = []
        if file:
            destinations.append(FileDestination(file))
        if syslog:
            destinations.append(SyslogDestination(syslog, syslog_ca))
        return cls(destinations, source_id)

    @classmethod
    def in_memory(cls) -> "AuditTrail":
        return cls([MemoryDestination()], "pyjpip-test")

    @property
    def enabled(self) -> bool:
        return bool(self.destinations)

    @property
    def messages(self) -> list[AuditMessage]:
        """The messages a MemoryDestination kept (empty without one)."""
        return [m for d in self.destinations if isinstance(d, MemoryDestination) for m in d.messages]

    def describe(self) -> str:
        return ", ".join(d.describe() for d in self.destinations) or "none"

    def record(self, message: AuditMessage) -> None:
        if not self.destinations:
            return
        try:
            xml = message.to_xml(self.source_id, self.enterprise_site)
        except Exception:  # noqa: BLE001 - auditing never fails an answer
            log.exception("audit message %s could not be written as XML", message.event_id)
            return
        with self.lock:
            for destination in self.destinations:
                key = (destination.describe(), "")
                try:
                    destination.send(message, xml)
                except Exception as error:  # noqa: BLE001
                    failure = (destination.describe(), type(error).__name__)
                    if failure not in self.failing:
                        log.error("audit messages to %s are failing: %s", destination.describe(), error)
                        self.failing.add(failure)
                    continue
                if any(f[0] == key[0] for f in self.failing):
                    log.warning("audit messages to %s are written again", destination.describe())
                    self.failing = {f for f in self.failing if f[0] != key[0]}

    def close(self) -> None:
        for destination in self.destinations:
            destination.close()


#: Records nothing: the default wherever no trail is configured.
NO_AUDIT = AuditTrail([])


def parse(xml: str) -> dict:
    """A message read back (tests, tools): event id, action, outcome, participants, objects."""
    root = ElementTree.fromstring(xml)
    event = root.find("EventIdentification")
    participants = [dict(p.attrib, role=(p.find("RoleIDCode").get("csd-code") if p.find("RoleIDCode") is not None
                                         else None)) for p in root.findall("ActiveParticipant")]
    objects = []
    for item in root.findall("ParticipantObjectIdentification"):
        objects.append({"id": item.get("ParticipantObjectID"), "type": item.find("ParticipantObjectIDTypeCode")
                        .get("csd-code"), "name": item.findtext("ParticipantObjectName"),
                        "instances": [(sop.get("UID"), i.get("UID")) for sop in item.findall("SOPClass")
                                      for i in sop.findall("Instance")]})
    event_type = event.find("EventTypeCode")
    return {"event_id": event.find("EventID").get("csd-code"), "action": event.get("EventActionCode"),
            "outcome": int(event.get("EventOutcomeIndicator")), "time": event.get("EventDateTime"),
            "event_type": event_type.get("csd-code") if event_type is not None else None,
            "detail": event.findtext("EventOutcomeDescription"), "participants": participants, "objects": objects,
            "source": root.find("AuditSourceIdentification").get("AuditSourceID")}
