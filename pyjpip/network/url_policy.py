"""Which URLs pyjpip fetches, and which Pixel Data Provider URLs a Storage SCP keeps: an allow-list of
schemes and hosts. Sans-IO: a URL in, the URL or an UntrustedURLError out; nothing is resolved or
connected to here.

A Pixel Data Provider URL (0028,7FE0), the Image Pixel Module's reference to the pixels of an object
in a JPIP Referenced transfer syntax (PS3.3 C.7.6.3; PS3.5 8.4.1, A.6, A.7, A.11, A.12), arrives
inside a data set that anyone able to open an association may send. It is untrusted input. Where
pyjpip dereferences one on a server (the SCU fetching pixels for an SCP that takes no JPIP syntax,
`pyjpip fetch` run by a service, a Storage SCP whose viewers will follow what it keeps), a URL
naming a host of the site's own network is a request forged on the sender's behalf. So:

- schemes: http and https only, as PS3.5 8.4.1 says (a deployment may narrow this to https);
- hosts: any, unless the deployment gives a list. Entries are ``host`` (any port), ``host:port``,
  ``*.example.org`` (any name under example.org, not example.org itself), ``[::1]`` or
  ``[::1]:8000``; names compare without case and without a final dot, international names by
  their ``xn--`` form (an entry may be written either way);
- always refused: credentials (``user:password@``), characters RFC 3986 does not allow in a URL
  (controls, spaces, backslashes, anything beyond ASCII: an international name must arrive in its
  ``xn--`` form, which cannot be mistaken for another), ports outside 1-65535, and hosts written
  so as to hide what they are: IPv4 addresses as one number, in hexadecimal or octal, or in fewer
  than four parts (``2130706433``, ``0x7f.1``, ``0177.0.0.1``, ``127.1`` all mean 127.0.0.1 to the
  resolver), and IPv6 addresses carrying an IPv4 one (``[::ffff:127.0.0.1]``).

Redirects are a transport's business: pyjpip's HTTP transport follows none (a 3xx answer is a
RedirectRefusedError), so a checked URL cannot lead elsewhere. The allow-list is by name: a name
that the site's DNS resolves to an internal address is the DNS administrator's to prevent.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from pyjpip.errors import UntrustedURLError

#: Schemes PS3.5 8.4.1 allows for a Pixel Data Provider URL; a policy may allow fewer, never others.
JPIP_SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
#: Longer URLs are refused (as pyjpip.dicom.hollow refuses longer Pixel Data Provider URLs).
MAXIMUM_URL_LENGTH = 8192

#: RFC 3986 2.2 and 2.3: reserved and unreserved characters, and '%' of percent-encoding.
_URL_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?#[]@!$&'()*+,;=%")
_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?")
#: What inet_aton takes as a part of an IPv4 address: decimal, octal (leading 0) or hexadecimal.
_NUMERIC_PART = re.compile(r"(0x[0-9a-f]*|[0-9]+)")
_CANONICAL_IPV4 = re.compile(r"(0|[1-9][0-9]{0,2})(\.(0|[1-9][0-9]{0,2})){3}")


@dataclass(frozen=True)
class HostEntry:
    """One allowed host: a name, an IPv4 or IPv6 address (``host``), or the names under ``host``
    when ``subdomains``; on ``port`` only, or any port when it is None."""

    host: str
    port: int | None = None
    subdomains: bool = False

    @classmethod
    def parse(cls, text: str) -> HostEntry:
        """An entry as an operator writes it; ValueError saying what is wrong with a bad one."""
        given = text
        text = text.strip()
        if not text or "://" in text or "/" in text or "@" in text:
            raise ValueError(f"allowed host {given!r}: give a host, host:port or *.domain, not a URL")
        port = None
        if text.startswith("["):
            inner, bracket, rest = text[1:].partition("]")
            if not bracket or (rest and not rest.startswith(":")):
                raise ValueError(f"allowed host {given!r}: an IPv6 address is written [address] or [address]:port")
            host, port_text = inner, rest[1:] if rest else None
            try:
                host = ipaddress.IPv6Address(host).compressed
            except ValueError:
                raise ValueError(f"allowed host {given!r}: {inner!r} is not an IPv6 address") from None
        else:
            host, colon, port_text = text.partition(":")
            if not colon:
                port_text = None
        if port_text is not None:
            if not (port_text.isascii() and port_text.isdigit() and 1 <= int(port_text) <= 65535):
                raise ValueError(f"allowed host {given!r}: port {port_text!r} is not a number from 1 to 65535")
            port = int(port_text)
        if text.startswith("["):
            return cls(host, port)
        subdomains = host.startswith("*.")
        if subdomains:
            host = host[2:]
        host = host.lower()
        if host.endswith(".") and not host.endswith(".."):
            host = host[:-1]  # the root's dot
        if not host.isascii():
            try:
                host = host.encode("idna").decode("ascii")
            except UnicodeError as error:
                raise ValueError(f"allowed host {given!r}: not a valid international name ({error})") from None
        problem = _name_problem(host)
        if problem:
            raise ValueError(f"allowed host {given!r}: {problem}")
        return cls(host, port, subdomains)

    def matches(self, host: str, port: int) -> bool:
        if self.port is not None and port != self.port:
            return False
        return host.endswith("." + self.host) if self.subdomains else host == self.host

    def __str__(self) -> str:
        name = f"[{self.host}]" if ":" in self.host else ("*." if self.subdomains else "") + self.host
        return name if self.port is None else f"{name}:{self.port}"


@dataclass(frozen=True)
class URLPolicy:
    """The URLs a deployment lets pyjpip fetch. ``hosts`` None: any host (the other rules still hold)."""

    schemes: tuple[str, ...] = JPIP_SCHEMES
    hosts: tuple[HostEntry, ...] | None = None

    def __post_init__(self):
        schemes = tuple(s.strip().lower() for s in self.schemes)
        wrong = [s for s in schemes if s not in JPIP_SCHEMES]
        if wrong or not schemes:
            raise ValueError(f"allowed scheme {wrong[0] if wrong else '(none)'!r}: JPIP is fetched over http and "
                             "https only (PS3.5 8.4.1)")
        object.__setattr__(self, "schemes", schemes)
        if self.hosts is not None:
            object.__setattr__(self, "hosts", tuple(h if isinstance(h, HostEntry) else HostEntry.parse(h)
                                                    for h in self.hosts))

    @classmethod
    def from_options(cls, hosts: list[str] | None = None, schemes: list[str] | None = None) -> URLPolicy:
        """From command-line options (repeatable; an option may also hold a comma-separated list)."""
        split = lambda values: [v for value in values for v in value.split(",") if v.strip()]  # noqa: E731
        return cls(tuple(split(schemes)) if schemes else JPIP_SCHEMES, tuple(split(hosts)) if hosts else None)

    @property
    def restricted(self) -> bool:
        """Whether a deployment narrowed anything (hosts listed, or fewer schemes than http and https)."""
        return self.hosts is not None or set(self.schemes) != set(JPIP_SCHEMES)

    def describe(self) -> str:
        hosts = "any host" if self.hosts is None else "hosts " + ", ".join(map(str, self.hosts))
        return f"schemes {', '.join(self.schemes)}; {hosts}"

    def check(self, url: str) -> str:
        """``url`` unchanged when it may be fetched; otherwise UntrustedURLError saying why."""
        if not isinstance(url, str):
            raise UntrustedURLError(repr(url), "a URL must be text")
        if len(url) > MAXIMUM_URL_LENGTH:
            raise UntrustedURLError(url, f"it is {len(url)} characters long (at most {MAXIMUM_URL_LENGTH})")
        for character in url:
            if character not in _URL_CHARACTERS:
                raise UntrustedURLError(url, f"it holds {_describe(character)}, which a URL cannot hold (RFC 3986; "
                                             "other characters are percent-encoded, international names written "
                                             "xn--)")
        scheme, separator, _ = url.partition(":")
        scheme = scheme.lower()
        if not separator or not re.fullmatch(r"[a-z][a-z0-9+.-]*", scheme):
            raise UntrustedURLError(url, "it is not an absolute URL (no scheme)")
        if scheme not in self.schemes:
            raise UntrustedURLError(url, f"scheme {scheme!r} is not allowed (allowed: {', '.join(self.schemes)})")
        try:
            netloc = urlsplit(url).netloc
        except ValueError as error:  # an unbalanced [ or ]
            raise UntrustedURLError(url, f"it is malformed ({error})") from None
        if not url[len(scheme) + 1:].startswith("//") or not netloc:
            raise UntrustedURLError(url, "it names no host")
        if "@" in netloc:
            raise UntrustedURLError(url, "it carries credentials (user:password@); give them to the transport, "
                                         "never in a URL that is stored and passed on")
        host, port = _host_and_port(url, netloc, scheme)
        if self.hosts is not None and not any(entry.matches(host, port) for entry in self.hosts):
            shown = ", ".join(map(str, self.hosts[:8])) + (", ..." if len(self.hosts) > 8 else "")
            name = f"[{host}]" if ":" in host else host
            raise UntrustedURLError(url, f"host {name}:{port} is not allowed (allowed hosts: {shown})")
        return url

    def allows(self, url: str) -> bool:
        try:
            self.check(url)
            return True
        except UntrustedURLError:
            return False


#: What every fetch checks when the deployment gives no list: http(s), well-formed, no credentials.
DEFAULT_POLICY = URLPolicy()


def _host_and_port(url: str, netloc: str, scheme: str) -> tuple[str, int]:
    """The host (lower case, no final dot; an IPv6 address compressed) and the port a connection uses."""
    if netloc.startswith("["):
        inner, _, rest = netloc[1:].partition("]")
        try:
            address = ipaddress.IPv6Address(inner)
        except ValueError:
            raise UntrustedURLError(url, f"[{inner}] is not an IPv6 address") from None
        if address.scope_id is not None:
            raise UntrustedURLError(url, f"[{inner}] names a network interface (a zone), which is not a host")
        if address.ipv4_mapped is not None or (address.packed[:12] == bytes(12) and int(address) > 1):
            raise UntrustedURLError(url, f"host [{inner}] is an IPv4 address written as IPv6, which hides it; "
                                         "write the IPv4 address")
        host, port_text = address.compressed, rest[1:] if rest.startswith(":") else None
        if rest and port_text is None:
            raise UntrustedURLError(url, f"{rest!r} after the IPv6 address is not a port")
    else:
        host, colon, port_text = netloc.partition(":")
        if not colon:
            port_text = None
        host = host.lower()
        if host.endswith(".") and not host.endswith(".."):
            host = host[:-1]  # the root's dot: pacs.example. is pacs.example
        problem = _name_problem(host)
        if problem:
            raise UntrustedURLError(url, problem)
    if port_text:  # "host:" is the default port (RFC 3986 3.2.3)
        if not (port_text.isdigit() and 1 <= int(port_text) <= 65535):
            raise UntrustedURLError(url, f"port {port_text[:20]!r} is not a number from 1 to 65535")
        return host, int(port_text)
    return host, DEFAULT_PORTS[scheme]


def _name_problem(host: str) -> str | None:
    """Why ``host`` (lower case, ASCII) cannot be a host name or a plain IPv4 address, or None."""
    if not host:
        return "it names no host"
    labels = host.split(".")
    if all(_NUMERIC_PART.fullmatch(label) for label in labels):
        if _CANONICAL_IPV4.fullmatch(host) and all(int(label) <= 255 for label in labels):
            return None
        return (f"host {host!r} is an IPv4 address written in a form that hides it (one number, hexadecimal, "
                "octal or fewer than four parts); write it as four decimal numbers a.b.c.d")
    if len(host) > 253:
        return f"host name {host[:40]!r}... is longer than 253 characters"
    for label in labels:
        if not label:
            return f"host {host!r} has an empty label (two dots in a row, or a dot first)"
        if len(label) > 63 or not _LABEL.fullmatch(label):
            return (f"host {host!r} is not a host name (labels of letters, digits, '-' and '_', at most 63 "
                    "characters, not starting or ending with '-')")
    return None


def _describe(character: str) -> str:
    code = ord(character)
    if code < 0x20 or code == 0x7F:
        return f"a control character (U+{code:04X})"
    if character == " ":
        return "a space"
    return f"{character!r} (U+{code:04X})"
