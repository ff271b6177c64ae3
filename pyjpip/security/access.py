"""A server's access settings (what ``pyjpip serve`` options and ``PYJPIP_AUTH_*`` variables say) and the
access control they build: authentication (pyjpip.security.authentication), authorization
(pyjpip.security.authorization) and the audit trail (pyjpip.security.audit), as the Site uses them.

Settings are plain, picklable values: the production server builds its access control in each
worker, after the fork (keys fetched and cached per worker).

Environment of the production app (pyjpip.transport.asgi.app_from_environment), one per option:

    PYJPIP_AUTH_ISSUER           --auth-issuer (several: separated by spaces or commas)
    PYJPIP_AUTH_AUDIENCE         --auth-audience
    PYJPIP_AUTH_JWKS_URL         --auth-jwks-url (URL, or ISSUER=URL, several separated by spaces)
    PYJPIP_AUTH_LEEWAY           --auth-leeway (seconds)
    PYJPIP_AUTH_SCOPE_CLAIM      --auth-scope-claim
    PYJPIP_TRUSTED_PROXIES       --trusted-proxy (several: spaces or commas; PYJPIP_AUTH_TRUSTED_PROXY too)
    PYJPIP_AUTH_TRUSTED_USER_HEADER / PYJPIP_AUTH_TRUSTED_SCOPES_HEADER
    PYJPIP_AUTH_ACCESS_POLICY    --access-policy
    PYJPIP_AUTH_NONE=1           --no-auth
    PYJPIP_AUDIT_FILE, PYJPIP_AUDIT_SYSLOG   --audit-file, --audit-syslog
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from pyjpip.security.identity import ScopeVocabulary

#: Accesses and logins are audited once per identity and study (or target) in this many seconds.
AUDIT_ONCE_SECONDS = 600.0
AUDIT_ONCE_KEPT = 10000


@dataclass(frozen=True)
class AccessSettings:
    issuers: tuple[str, ...] = ()
    audience: str | None = None
    jwks_urls: tuple[str, ...] = ()  # URL (one issuer) or ISSUER=URL
    leeway: float = 60.0
    scope_claim: str | None = None
    trusted_proxies: tuple[str, ...] = ()
    trusted_user_header: str | None = None
    trusted_scopes_header: str | None = None
    access_policy: str | None = None
    no_auth: bool = False
    audit_file: str | None = None
    audit_syslog: str | None = None

    @property
    def chosen(self) -> bool:
        """Whether an authentication choice was made (tokens, a trusted proxy's user header, or
        explicitly none). A trusted proxy alone only names clients (X-Forwarded-For)."""
        return bool(self.issuers or (self.trusted_proxies and self.trusted_user_header) or self.no_auth)

    def check(self) -> None:
        """ValueError naming the options that do not fit together."""
        if self.no_auth and (self.issuers or self.trusted_user_header):
            raise ValueError("--no-auth with --auth-issuer or --trusted-user-header: choose one")
        if self.trusted_user_header and not self.trusted_proxies:
            raise ValueError("--trusted-user-header needs --trusted-proxy ADDR|CIDR (only that peer is believed)")
        if self.issuers and not self.audience:
            raise ValueError("--auth-issuer needs --auth-audience (the aud this server's tokens carry, RFC 7519 "
                             "4.1.3)")
        if self.jwks_urls and not self.issuers:
            raise ValueError("--auth-jwks-url needs --auth-issuer")
        self.jwks_uris()
        if self.leeway < 0 or self.leeway > 600:
            raise ValueError(f"--auth-leeway {self.leeway}: between 0 and 600 seconds")
        from pyjpip.security.authentication import parse_networks

        parse_networks(self.trusted_proxies)

    def jwks_uris(self) -> dict[str, str]:
        """Issuer -> JWKS URL: ``ISSUER=URL`` for a configured issuer, a bare URL for the only one."""
        uris = {}
        for value in self.jwks_urls:
            issuer, equals, url = value.partition("=")
            if equals and issuer in self.issuers:
                uris[issuer] = url
            elif len(self.issuers) == 1:
                uris[self.issuers[0]] = value
            else:
                raise ValueError(f"--auth-jwks-url {value!r}: with several issuers, give ISSUER=URL")
        return uris

    def describe(self) -> str:
        """The startup line's words for who may ask."""
        if self.no_auth:
            return "no authentication (--no-auth): anyone who reaches this port reads everything"
        ways = []
        if self.issuers:
            ways.append(f"bearer tokens from {', '.join(self.issuers)} for audience {self.audience}")
        if self.trusted_proxies and self.trusted_user_header:
            ways.append(f"{self.trusted_user_header} from {', '.join(self.trusted_proxies)}")
        if not ways:
            return "no authentication: loopback only"
        return "authentication: " + "; ".join(ways) + (f"; access policy {self.access_policy}"
                                                       if self.access_policy else "")

    @classmethod
    def from_environment(cls, environ=None) -> AccessSettings:
        env = os.environ if environ is None else environ

        def words(name):
            return tuple(w for w in env.get(name, "").replace(",", " ").split() if w)

        return cls(issuers=words("PYJPIP_AUTH_ISSUER"), audience=env.get("PYJPIP_AUTH_AUDIENCE") or None,
                   jwks_urls=tuple(env.get("PYJPIP_AUTH_JWKS_URL", "").split()),
                   leeway=float(env.get("PYJPIP_AUTH_LEEWAY") or 60),
                   scope_claim=env.get("PYJPIP_AUTH_SCOPE_CLAIM") or None,
                   trusted_proxies=words("PYJPIP_TRUSTED_PROXIES") or words("PYJPIP_AUTH_TRUSTED_PROXY"),
                   trusted_user_header=env.get("PYJPIP_AUTH_TRUSTED_USER_HEADER") or None,
                   trusted_scopes_header=env.get("PYJPIP_AUTH_TRUSTED_SCOPES_HEADER") or None,
                   access_policy=env.get("PYJPIP_AUTH_ACCESS_POLICY") or None,
                   no_auth=env.get("PYJPIP_AUTH_NONE", "").lower() in ("1", "true", "yes"),
                   audit_file=env.get("PYJPIP_AUDIT_FILE") or None, audit_syslog=env.get("PYJPIP_AUDIT_SYSLOG") or None)

    def audit_trail(self):
        """The audit trail the settings name (a new one each call: each worker has its own)."""
        from pyjpip.security import audit

        if not (self.audit_file or self.audit_syslog):
            return audit.NO_AUDIT
        return audit.AuditTrail.from_options(file=self.audit_file, syslog=self.audit_syslog)

    def build(self) -> AccessControl:
        from pyjpip.security import audit
        from pyjpip.security.authentication import Anonymous, Authentication, BearerTokens, TrustedHeader
        from pyjpip.security.authorization import Authorizer, load_policy

        self.check()
        vocabulary = ScopeVocabulary(claim=self.scope_claim)
        authenticators = []
        if self.trusted_proxies and self.trusted_user_header:
            authenticators.append(TrustedHeader(self.trusted_proxies, self.trusted_user_header,
                                                self.trusted_scopes_header, vocabulary))
        if self.issuers:
            from pyjpip.security.tokens import TokenValidator

            authenticators.append(BearerTokens(TokenValidator(self.issuers, self.audience, jwks_uris=self.jwks_uris(),
                                                              leeway=self.leeway, vocabulary=vocabulary)))
        if not authenticators:
            authenticators.append(Anonymous(loopback_only=not self.no_auth))
        trail = self.audit_trail()
        return AccessControl(Authentication(authenticators), Authorizer(load_policy(self.access_policy), vocabulary),
                             trail)


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class AccessControl:
    """What the Site asks on each request: who (``authentication``), may they (``authorizer``), and
    where it is recorded (``audit``), with a memory of what was recorded lately (``once``)."""

    def __init__(self, authentication, authorizer, audit_trail=None):
        from pyjpip.security import audit

        self.authentication = authentication
        self.authorizer = authorizer
        self.audit = audit_trail if audit_trail is not None else audit.NO_AUDIT
        self.recent: OrderedDict = OrderedDict()
        self.lock = threading.Lock()

    @classmethod
    def open(cls, audit_trail=None, loopback_only: bool = True) -> AccessControl:
        """No authentication: everyone may do everything (still audited when a trail is given); with
        ``loopback_only``, everyone on this host."""
        from pyjpip.security.authentication import Anonymous, Authentication
        from pyjpip.security.authorization import Authorizer

        return cls(Authentication([Anonymous(loopback_only)]), Authorizer(), audit_trail)

    def once(self, *key, now: float | None = None) -> bool:
        """True the first time ``key`` is seen in AUDIT_ONCE_SECONDS (bounded memory)."""
        now = time.monotonic() if now is None else now
        with self.lock:
            seen = self.recent.get(key)
            if seen is not None and now - seen < AUDIT_ONCE_SECONDS:
                return False
            self.recent[key] = now
            self.recent.move_to_end(key)
            while len(self.recent) > AUDIT_ONCE_KEPT:
                self.recent.popitem(last=False)
            return True


def credential_key(headers) -> str:
    """A short digest of what authenticated a request (never the token itself, in memory or logs)."""
    value = headers.get("Authorization") or ""
    return hashlib.sha256(value.encode("latin-1", "replace")).hexdigest()[:24]
