"""Who may store into a Storage SCP, from where, and whether they may change what another sent.

DICOM upper-layer association has no authentication of its own (PS3.8 7.1: the calling AE title is
whatever the requestor writes; PS3.15 B.1 puts the identity check in TLS certificates). A site
still names its senders: an AE title, the addresses or networks it comes from, and what it may do:

    create   store new instances; re-send its own ones (identical: Success, nothing changes;
             changed: an update of its own instance, logged and audited)
    update   all of create, and replace an instance another sender stored (a correcting system,
             a PACS migration); refused to every sender without it

Configured on the command line (``--sender AE[@ADDRESS-or-CIDR][:create|update]``, repeatable) or
in a JSON file::

    {"senders": [{"ae_title": "CT1", "addresses": ["10.1.2.3", "10.1.3.0/24"], "permission": "create"},
                 {"ae_title": "MIGRATION", "permission": "update"}]}

With senders configured, an association from any other calling AE title, or from an address its
entry does not name, is rejected (A-ASSOCIATE-RJ, permanent, "calling AE title not recognized",
PS3.8 9.3.4). Without any: every calling AE may create, none may update another sender's
instance (OPEN_CREATE_ONLY). A sender is the pair (calling AE title, peer address): the same AE
title from another address is another sender.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass

from pyjpip.errors import PyjpipError

CREATE = "create"
UPDATE = "update"
PERMISSIONS = (CREATE, UPDATE)
#: AE titles: 1 to 16 characters of the Default Character Repertoire, no backslash, no control
#: characters; leading and trailing spaces are not significant (PS3.5 Table 6.2-1, AE).
_AE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")
#: A senders file is a short configuration: anything larger is refused before it is parsed.
MAXIMUM_FILE_BYTES = 1 << 20
MAXIMUM_SENDERS = 10_000


class SenderConfigurationError(PyjpipError):
    """A --sender value or a senders file that cannot be used: says which and why."""

    kind = "configuration"


@dataclass(frozen=True)
class Sender:
    ae_title: str
    networks: tuple = ()  # ipaddress networks; empty: any address
    permission: str = CREATE

    def comes_from(self, address: str) -> bool:
        if not self.networks:
            return True
        try:
            ip = ipaddress.ip_address(_plain(address))
        except ValueError:
            return False
        return any(ip.version == n.version and ip in n for n in self.networks)

    def describe(self) -> str:
        where = ",".join(str(n) for n in self.networks) or "any address"
        return f"{self.ae_title}@{where}:{self.permission}"


@dataclass(frozen=True)
class Admission:
    """What an association's requestor may do; ``allowed`` False: reject it (``reason`` says why)."""

    allowed: bool
    may_update_others: bool = False
    reason: str = ""
    sender: Sender | None = None


class SenderPolicy:
    """The configured senders, or none (OPEN_CREATE_ONLY)."""

    def __init__(self, senders: list[Sender] | tuple = ()):
        self.senders = tuple(senders)

    @property
    def configured(self) -> bool:
        return bool(self.senders)

    def admit(self, calling_ae_title: str, address: str) -> Admission:
        title = (calling_ae_title or "").strip()
        if not self.senders:
            return Admission(True, False, "no senders configured: any calling AE may create")
        named = [s for s in self.senders if s.ae_title == title]
        if not named:
            return Admission(False, False, f"calling AE title {title[:16]!r} is not a configured sender")
        for sender in named:
            if sender.comes_from(address):
                return Admission(True, sender.permission == UPDATE, "", sender)
        return Admission(False, False, f"calling AE title {title!r} may not connect from {_plain(address)[:64]}")

    def titles_from(self, address: str) -> list[str]:
        """The calling AE titles accepted from ``address`` (pynetdicom's require_calling_aet)."""
        return sorted({s.ae_title for s in self.senders if s.comes_from(address)})

    def describe(self) -> str:
        if not self.senders:
            return "any calling AE may create; none may update another sender's instance"
        return "; ".join(s.describe() for s in self.senders)


OPEN_CREATE_ONLY = SenderPolicy()


def parse_sender(text: str) -> Sender:
    """``AE[@ADDRESS-or-CIDR[,ADDRESS-or-CIDR...]][:create|update]``. An IPv6 address goes in
    brackets (``CT1@[2001:db8::/64]:update``)."""
    given = text
    permission = CREATE
    head, colon, tail = text.rpartition(":")
    if colon and tail in PERMISSIONS:
        text, permission = head, tail
    if ":" in re.sub(r"\[[^\]]*\]", "", text):
        raise SenderConfigurationError(f"--sender {given!r}: the permission after ':' is one of "
                                       f"{', '.join(PERMISSIONS)} (an IPv6 address goes in brackets)")
    title, at, where = text.partition("@")
    networks = tuple(_network(w.strip().removeprefix("[").removesuffix("]"), f"--sender {given!r}")
                     for w in where.split(",")) if at else ()
    return _sender(title, networks, permission, f"--sender {given!r}")


def load_senders(path: str) -> list[Sender]:
    """The senders of a JSON file (see the module's docstring)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAXIMUM_FILE_BYTES + 1)
    except OSError as error:
        raise SenderConfigurationError(f"{path}: cannot be read ({error.strerror or error})") from None
    if len(data) > MAXIMUM_FILE_BYTES:
        raise SenderConfigurationError(f"{path}: larger than {MAXIMUM_FILE_BYTES} bytes")
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise SenderConfigurationError(f"{path}: not JSON ({error})") from None
    entries = document.get("senders") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise SenderConfigurationError(f"{path}: needs {{\"senders\": [...]}}")
    if len(entries) > MAXIMUM_SENDERS:
        raise SenderConfigurationError(f"{path}: more than {MAXIMUM_SENDERS} senders")
    senders = []
    for number, entry in enumerate(entries, 1):
        where = f"{path}: sender {number}"
        if not isinstance(entry, dict) or not isinstance(entry.get("ae_title"), str):
            raise SenderConfigurationError(f"{where}: needs an \"ae_title\" string")
        addresses = entry.get("addresses", [])
        if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
            raise SenderConfigurationError(f"{where}: \"addresses\" is a list of addresses or CIDR networks")
        permission = entry.get("permission", CREATE)
        if permission not in PERMISSIONS:
            raise SenderConfigurationError(f"{where}: \"permission\" is one of {', '.join(PERMISSIONS)}")
        senders.append(_sender(entry["ae_title"], tuple(_network(a, where) for a in addresses), permission, where))
    return senders


def _sender(title: str, networks: tuple, permission: str, where: str) -> Sender:
    title = title.strip()
    if not _AE.match(title):
        raise SenderConfigurationError(f"{where}: {title[:40]!r} is not an AE title (1 to 16 characters, no "
                                       "backslash or control character)")
    return Sender(title, networks, permission)


def _network(text: str, where: str):
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise SenderConfigurationError(f"{where}: {text[:64]!r} is not an IP address or CIDR network") from None


def _plain(address: str) -> str:
    """An IPv4-mapped IPv6 peer (::ffff:10.1.2.3) is the IPv4 address it maps."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    mapped = getattr(ip, "ipv4_mapped", None)
    return str(mapped) if mapped else str(ip)
