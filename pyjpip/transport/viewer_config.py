"""The viewer's settings, as the Site serves them to the page at /viewer-config.json.

A declared contract between Python and the browser (web/viewer-config.js reads exactly these keys;
tests/browser/test_viewer_security.py checks both sides):

    {"version": 1,
     "pixel_origins":  ["https://pacs.example"],   # origins other than the site's own that a hollow
                                                   # object's Pixel Data Provider URL may name
     "source_origins": [],                         # origins other than the site's own that ?dicom=,
                                                   # ?jpip=, ?dicomweb= (and the element's src/server)
                                                   # may name; default none: own origin only
     "embed_origins":  ["https://portal.example"], # pages that may frame the viewer and drive its
                                                   # iframe API (postMessage)
     "token_origins":  [],                         # pixel origins that take this site's bearer token
     "oidc": null | {"issuer", "client_id", "scope", "audience"}}

An origin is RFC 6454's: scheme "://" host [":" port], lower case, no path, no credentials, the
default port left out (as a browser's ``location.origin`` has it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlsplit

VERSION = 1
#: The keys of the JSON document, in order: the contract web/viewer-config.js reads.
KEYS = ("version", "pixel_origins", "source_origins", "embed_origins", "token_origins", "oidc")
OIDC_KEYS = ("issuer", "client_id", "scope", "audience")
PATH = "/viewer-config.json"
#: More origins than this in one list is a configuration mistake (and a header too long).
MAXIMUM_ORIGINS = 64
DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(text: str, what: str = "origin") -> str:
    """``text`` as a serialised origin (RFC 6454 6.2), or ValueError saying why it is not one."""
    value = text.strip().rstrip("/")
    if not value or len(value) > 300:
        raise ValueError(f"{what} {text[:80]!r}: not an origin (give scheme://host[:port])")
    parts = urlsplit(value)
    if parts.scheme not in DEFAULT_PORTS:
        raise ValueError(f"{what} {text[:80]!r}: only http and https origins")
    if parts.path or parts.query or parts.fragment or "@" in parts.netloc or not parts.hostname:
        raise ValueError(f"{what} {text[:80]!r}: an origin is scheme://host[:port], nothing more")
    if any(c in parts.netloc for c in "\\ *") or any(ord(c) < 0x21 or ord(c) > 0x7e for c in parts.netloc):
        raise ValueError(f"{what} {text[:80]!r}: characters an origin's host cannot hold")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{what} {text[:80]!r}: the port is not a number from 0 to 65535") from None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    shown = "" if port is None or port == DEFAULT_PORTS[parts.scheme] else f":{port}"
    return f"{parts.scheme}://{host}{shown}"


def origins(values, what: str) -> tuple[str, ...]:
    """Each value as an origin, duplicates dropped, at most MAXIMUM_ORIGINS."""
    result = tuple(dict.fromkeys(origin(v, what) for v in (values or ())))
    if len(result) > MAXIMUM_ORIGINS:
        raise ValueError(f"{what}: {len(result)} origins, more than {MAXIMUM_ORIGINS}")
    return result


@dataclass(frozen=True)
class OpenIDSettings:
    """Where the viewer signs in (OpenID Connect Core 1.0, authorization code flow with PKCE,
    RFC 7636): the issuer (its discovery document is {issuer}/.well-known/openid-configuration),
    this viewer's client id, the scope it asks for and the audience of the tokens (the resource
    server, this site)."""

    issuer: str
    client_id: str
    scope: str = "openid"
    audience: str | None = None

    def __post_init__(self):
        parts = urlsplit(self.issuer)
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname or parts.query or parts.fragment \
                or "@" in parts.netloc:
            raise ValueError(f"OpenID issuer {self.issuer[:80]!r}: an http(s) URL with no query or credentials")
        for name in ("client_id", "scope"):
            value = getattr(self, name)
            if not value or len(value) > 500 or any(ord(c) < 0x20 for c in value):
                raise ValueError(f"OpenID {name} {value[:80]!r}: empty, too long or with control characters")

    @property
    def issuer_origin(self) -> str:
        parts = urlsplit(self.issuer)
        return origin(f"{parts.scheme}://{parts.netloc}", "OpenID issuer")

    def to_dict(self) -> dict:
        return {"issuer": self.issuer.rstrip("/"), "client_id": self.client_id, "scope": self.scope,
                "audience": self.audience}


@dataclass(frozen=True)
class ViewerConfig:
    """What the viewer page may fetch, who may frame and drive it, and where it signs in."""

    pixel_origins: tuple[str, ...] = ()
    source_origins: tuple[str, ...] = ()
    embed_origins: tuple[str, ...] = ()
    token_origins: tuple[str, ...] = ()
    oidc: OpenIDSettings | None = None

    @classmethod
    def from_options(cls, pixel_origins=(), source_origins=(), embed_origins=(), token_origins=(),
                     oidc_issuer=None, oidc_client_id=None, oidc_scope="openid", oidc_audience=None) -> "ViewerConfig":
        """The settings `pyjpip serve`'s options give (ValueError naming the option when one is wrong)."""
        pixel = origins(pixel_origins, "--viewer-pixel-origin")
        token = origins(token_origins, "--viewer-token-origin")
        if set(token) - set(pixel):
            raise ValueError(f"--viewer-token-origin {sorted(set(token) - set(pixel))[0]}: "
                             "not a --viewer-pixel-origin (a token goes only where pixels are fetched)")
        oidc = None
        if oidc_issuer or oidc_client_id:
            if not (oidc_issuer and oidc_client_id):
                raise ValueError("--oidc-issuer and --oidc-client-id go together")
            oidc = OpenIDSettings(oidc_issuer, oidc_client_id, oidc_scope or "openid", oidc_audience)
        return cls(pixel, origins(source_origins, "--viewer-allow-origin"), origins(embed_origins, "--embed-origin"),
                   token, oidc)

    def to_dict(self) -> dict:
        document = {"version": VERSION, "pixel_origins": list(self.pixel_origins),
                    "source_origins": list(self.source_origins), "embed_origins": list(self.embed_origins),
                    "token_origins": list(self.token_origins),
                    "oidc": self.oidc.to_dict() if self.oidc else None}
        assert tuple(document) == KEYS
        return document

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":")).encode()

    def connect_origins(self) -> tuple[str, ...]:
        """Origins other than the site's own the page and its workers connect to (CSP connect-src)."""
        extra = (self.oidc.issuer_origin,) if self.oidc else ()
        return tuple(dict.fromkeys((*self.pixel_origins, *self.source_origins, *extra)))
