"""How a request is authenticated: one interface, three ways.

- ``BearerTokens``: ``Authorization: Bearer <JWT>`` (RFC 6750 2.1), validated by
  pyjpip.security.tokens against the trusted issuers' keys. A token in the query (RFC 6750 2.3) is
  never looked at: URLs end up in logs, histories and Referer headers.
- ``TrustedHeader``: an authenticating proxy in front (oauth2-proxy, Apache mod_auth_openidc,
  nginx auth_request) names the user in a header (``X-Forwarded-User``, ``X-Remote-User``) and may
  name its groups or scopes in another. Honoured ONLY when the TCP peer is one of the pinned proxy
  addresses or networks: from any other peer the headers are ignored (anyone can send them) and the
  request is as unauthenticated as if they were absent.
- ``Anonymous``: no authentication (``--no-auth``, or the open loopback default): everyone may do
  everything.

``Authentication`` tries the configured ways in that order (trusted header, then bearer); a request
with no credentials yields None (the Site then answers 401 for what needs an identity, and serves
the viewer's own files). Failures are typed (pyjpip.errors.AuthenticationError) and become 401 with
``WWW-Authenticate`` (``challenge``).
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Mapping

from pyjpip.errors import AuthenticationError, InvalidTokenError, MissingCredentialsError
from pyjpip.security.identity import (ANONYMOUS, TRUSTED_HEADER, Identity, ScopeVocabulary, parse_scopes)

log = logging.getLogger(__name__)

MAXIMUM_USER_LENGTH = 256
REALM = "pyjpip"
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


class NotConfiguredError(MissingCredentialsError):
    """A remote client of a server started without an authentication choice."""


class Authenticator:
    """One way of authenticating: the Identity a request proves, None if it carries nothing this way
    reads, or an AuthenticationError if what it carries does not hold."""

    def authenticate(self, headers: Mapping[str, str], peer: str | None) -> Identity | None:
        raise NotImplementedError


#: Headers a proxy adds when it relays another host's request (RFC 7239 and the de facto ones).
RELAYED_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")


class Anonymous(Authenticator):
    """Everyone, with every action. ``loopback_only`` (the default when no authentication was chosen):
    only clients on this host (a peer of None is a call from this process); others are refused, so an
    app started by hand on a public address without a choice does not serve patients to the network."""

    def __init__(self, loopback_only: bool = False):
        self.loopback_only = loopback_only

    def authenticate(self, headers, peer):
        if self.loopback_only and peer is not None:
            relayed = next((h for h in RELAYED_HEADERS if headers.get(h) is not None), None)
            if not peer_in(peer, LOOPBACK) or relayed:
                # A proxy on this host (nginx in front) relays other hosts' requests from loopback.
                who = f"a request relayed by a proxy ({relayed})" if relayed and peer_in(peer, LOOPBACK) else peer
                raise NotConfiguredError(f"no authentication is configured, so this server answers only clients "
                                         f"on its own host, not {who} (start it with --auth-issuer, "
                                         "--trusted-proxy ADDR --trusted-user-header NAME, or --no-auth)")
        return ANONYMOUS


class BearerTokens(Authenticator):
    """``Authorization: Bearer <token>`` checked by a TokenValidator (pyjpip.security.tokens)."""

    def __init__(self, validator):
        self.validator = validator

    def authenticate(self, headers, peer):
        value = headers.get("Authorization")
        if value is None:
            return None
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() != "bearer":
            raise InvalidTokenError(f"Authorization scheme {scheme[:20]!r} is not Bearer (RFC 6750 2.1)")
        token = token.strip()
        if not token:
            raise InvalidTokenError("Authorization: Bearer with no token")
        return self.validator.validate(token)


def parse_networks(values) -> tuple:
    """Addresses or CIDR networks (``10.0.0.5``, ``10.0.0.0/24``, ``::1``), ValueError naming a bad one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"--trusted-proxy {value!r} is not an IP address or network") from None
    return tuple(networks)


def peer_in(peer: str | None, networks) -> bool:
    if not peer:
        return False
    try:
        address = ipaddress.ip_address(peer.split("%", 1)[0])
    except ValueError:
        return False
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


class TrustedHeader(Authenticator):
    """The user named by an authenticating proxy at one of ``proxies`` (networks) in ``user_header``;
    scopes (or groups mapped by the vocabulary) in ``scopes_header``, else ``default_scopes``."""

    def __init__(self, proxies, user_header: str = "X-Forwarded-User", scopes_header: str | None = None,
                 vocabulary: ScopeVocabulary | None = None, default_scopes=None):
        self.proxies = tuple(parse_networks([p])[0] if isinstance(p, str) else p for p in proxies or ())
        if not self.proxies:
            raise ValueError("a trusted user header needs --trusted-proxy ADDRESS (the proxy that sets it)")
        self.user_header = user_header
        self.scopes_header = scopes_header
        self.vocabulary = vocabulary or ScopeVocabulary()
        self.default_scopes = frozenset(default_scopes) if default_scopes is not None \
            else frozenset({self.vocabulary.read})

    def authenticate(self, headers, peer):
        user = headers.get(self.user_header)
        if user is None:
            return None
        if not peer_in(peer, self.proxies):
            log.warning("%s from %s ignored: not a trusted proxy", self.user_header, peer)
            return None
        user = user.strip()
        if not user or len(user) > MAXIMUM_USER_LENGTH or any(ord(c) < 32 for c in user):
            raise InvalidTokenError(f"the proxy's {self.user_header} is empty, too long or not text")
        named = headers.get(self.scopes_header) if self.scopes_header else None
        scopes = parse_scopes(named) if named is not None else self.default_scopes
        return Identity(user, f"proxy:{peer}", scopes, self.vocabulary.actions_of(scopes),
                        {"sub": user, "groups": sorted(scopes)}, TRUSTED_HEADER)


class Authentication:
    """The configured ways, tried in order; ``open`` (anonymous) answers every request with ANONYMOUS."""

    def __init__(self, authenticators: list[Authenticator], realm: str = REALM):
        self.authenticators = list(authenticators)
        self.realm = realm

    @property
    def open(self) -> bool:
        return any(isinstance(a, Anonymous) for a in self.authenticators)

    def authenticate(self, headers: Mapping[str, str], peer: str | None) -> Identity | None:
        for authenticator in self.authenticators:
            identity = authenticator.authenticate(headers, peer)
            if identity is not None:
                return identity
        return None

    def challenge(self, error: AuthenticationError | None = None, scope: str | None = None) -> str:
        """The WWW-Authenticate value (RFC 6750 3): realm, and error and error_description when there
        is one (none when the request had no credentials, 3.1)."""
        parts = [f'realm="{self.realm}"']
        if error is not None and error.error:
            parts.append(f'error="{error.error}"')
            parts.append(f'error_description="{_quoted(str(error))}"')
        if scope:
            parts.append(f'scope="{scope}"')
        return "Bearer " + ", ".join(parts)

    def insufficient_scope(self, message: str, scope: str) -> str:
        return (f'Bearer realm="{self.realm}", error="insufficient_scope", '
                f'error_description="{_quoted(message)}", scope="{scope}"')


def _quoted(text: str) -> str:
    """Text for a quoted-string (RFC 9110 5.6.4): visible ASCII, no quote or backslash, bounded."""
    return "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "'" if c == '"' else "?" for c in text[:400])
