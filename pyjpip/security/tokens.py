"""OAuth 2.0 bearer tokens (RFC 6750) that are JWTs (RFC 7519, RFC 9068), checked against their issuer's
JSON Web Key Set (RFC 7517).

A token is accepted only when all of these hold, in this order (each failure an InvalidTokenError
saying which):

1. it is a compact JWS of three base64url parts, at most ``MAXIMUM_TOKEN_BYTES`` (RFC 7515 7.1);
2. its ``alg`` is an asymmetric signature algorithm (``ALGORITHMS``): never ``none`` and never an
   HMAC, whatever the token says, so a public key cannot be used as an HMAC secret (RFC 8725 2.1,
   3.1: the verifier, not the token, chooses the algorithms);
3. its ``iss`` is one of the trusted issuers (several may be: a sender's server may trust a
   receiver's identity provider too);
4. its ``kid`` names a key in that issuer's JWKS (fetched from ``jwks_uri``, discovered from the
   issuer's ``/.well-known/openid-configuration`` (OpenID Connect Discovery 1.0 4, RFC 8414) or
   configured; kept ``key_seconds``, fetched again at once when a token names a kid not in it, but at
   most once per ``refetch_seconds`` per issuer so made-up kids cannot make us hammer the IdP), of the
   type the algorithm needs, and the signature verifies with it (joserfc);
5. ``exp`` is present and in the future, ``nbf`` and ``iat`` not in the future, each with
   ``leeway`` seconds for clock skew (RFC 7519 4.1.4-4.1.6);
6. ``aud`` names this server's audience (RFC 7519 4.1.3), when one is configured.

joserfc (Authlib's author's JOSE library) does the JOSE work: RFC 7515/7517/7518/7519/8037 complete,
typed claims validation, no "none" algorithm unless asked. Fetching keys is the standard library's
HTTP client: HTTPS (plain HTTP only to a loopback issuer, for tests), no redirects, bounded size and
time.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import ipaddress
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable
from urllib.parse import urlsplit

from pyjpip.errors import InvalidTokenError, KeysUnavailableError
from pyjpip.security.identity import BEARER, Identity, ScopeVocabulary

log = logging.getLogger(__name__)

#: Asymmetric JWS algorithms (RFC 7518 3.3-3.5, RFC 8037 3.1). HS256/384/512 and "none" are never taken.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
MAXIMUM_TOKEN_BYTES = 16384
MAXIMUM_DOCUMENT_BYTES = 1 << 20  # a discovery document or a JWKS
MAXIMUM_KEYS = 100
FETCH_SECONDS = 10.0


def _part(text: str, what: str) -> dict:
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        value = json.loads(data)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidTokenError(f"the token's {what} is not base64url JSON") from None
    if not isinstance(value, dict):
        raise InvalidTokenError(f"the token's {what} is not a JSON object")
    return value


def _when(seconds) -> str:
    try:
        return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return repr(seconds)


def fetch_json(url: str, timeout: float = FETCH_SECONDS, maximum: int = MAXIMUM_DOCUMENT_BYTES) -> dict:
    """GET a JSON object over HTTPS (HTTP only from a loopback host): no redirects, at most ``maximum``
    bytes, ``timeout`` seconds per socket operation. KeysUnavailableError says why not."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "http":
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            raise KeysUnavailableError(f"{url[:200]}: keys are fetched over https only (http only from loopback)")
    elif parts.scheme != "https":
        raise KeysUnavailableError(f"{url[:200]}: not an https URL")
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = kind(parts.netloc, timeout=timeout)
    try:
        connection.request("GET", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
                           headers={"Accept": "application/json"})
        response = connection.getresponse()
        body = response.read(maximum + 1)
    except (OSError, http.client.HTTPException) as error:
        raise KeysUnavailableError(f"{url[:200]} did not answer: {error}") from None
    finally:
        connection.close()
    if response.status != 200:
        raise KeysUnavailableError(f"{url[:200]} answered {response.status}" +
                                   (" (a redirect, not followed)" if 300 <= response.status < 400 else ""))
    if len(body) > maximum:
        raise KeysUnavailableError(f"{url[:200]}: the answer is over {maximum} bytes")
    try:
        value = json.loads(body)
    except ValueError:
        raise KeysUnavailableError(f"{url[:200]}: the answer is not JSON") from None
    if not isinstance(value, dict):
        raise KeysUnavailableError(f"{url[:200]}: the answer is not a JSON object")
    return value


@dataclass
class _IssuerKeys:
    """One issuer's keys as last fetched."""

    issuer: str
    jwks_uri: str | None
    keys: dict = field(default_factory=dict)  # kid -> joserfc Key ("" for a key without kid)
    fetched: float | None = None  # monotonic time of the last successful fetch
    refetched: float | None = None  # ... of the last fetch for a kid not known (bounds them)
    failed: tuple | None = None  # (monotonic time, error) of the last failed fetch: not retried at once
    lock: threading.Lock = field(default_factory=threading.Lock)


class TokenValidator:
    """Validates bearer JWTs from ``issuers`` for ``audience`` (see the module's docstring).

    ``jwks_uris`` maps an issuer to its JWKS URL when discovery is not to be used. ``fetch`` (a URL to
    a JSON object) and ``clock`` (seconds since the epoch) are the validator's only contact with the
    world."""

    def __init__(self, issuers, audience: str | None, *, jwks_uris: dict[str, str] | None = None,
                 leeway: float = 60.0, vocabulary: ScopeVocabulary | None = None,
                 key_seconds: float = 600.0, refetch_seconds: float = 30.0,
                 fetch: Callable[[str], dict] = fetch_json, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic):
        import joserfc  # noqa: F401 - missing, it is said at startup, not as a 500 on the first token

        issuers = [i for i in issuers if i]
        if not issuers:
            raise ValueError("no issuer to trust: give --auth-issuer URL")
        self.issuers = {i: _IssuerKeys(i, (jwks_uris or {}).get(i)) for i in issuers}
        self.audience = audience
        self.leeway = float(leeway)
        self.vocabulary = vocabulary or ScopeVocabulary()
        self.key_seconds = key_seconds
        self.refetch_seconds = refetch_seconds
        self.fetch = fetch
        self.clock = clock
        self.monotonic = monotonic

    # -- keys --------------------------------------------------------------------------------------------

    def _jwks_uri(self, keys: _IssuerKeys) -> str:
        if keys.jwks_uri:
            return keys.jwks_uri
        document = self.fetch(keys.issuer.rstrip("/") + "/.well-known/openid-configuration")
        if document.get("issuer") != keys.issuer:  # OpenID Connect Discovery 4.3
            raise KeysUnavailableError(f"the discovery document of {keys.issuer} names issuer "
                                       f"{str(document.get('issuer'))[:200]!r}")
        uri = document.get("jwks_uri")
        if not isinstance(uri, str):
            raise KeysUnavailableError(f"the discovery document of {keys.issuer} has no jwks_uri")
        keys.jwks_uri = uri
        return uri

    def _load(self, keys: _IssuerKeys) -> None:
        from joserfc.jwk import JWKRegistry

        now = self.monotonic()
        if keys.failed is not None and now - keys.failed[0] < self.refetch_seconds:
            raise KeysUnavailableError(f"{keys.failed[1]} (not asked again for {self.refetch_seconds:.0f} s)")
        try:
            document = self.fetch(self._jwks_uri(keys))
        except KeysUnavailableError as error:
            keys.failed = (now, str(error))
            log.warning("keys of %s: %s", keys.issuer, error)
            raise
        keys.failed = None
        found = {}
        for entry in (document.get("keys") or [])[:MAXIMUM_KEYS]:
            if not isinstance(entry, dict) or entry.get("kty") not in ("RSA", "EC", "OKP"):
                continue  # symmetric ("oct") keys are never taken from a key set
            if entry.get("use", "sig") != "sig":
                continue
            try:
                key = JWKRegistry.import_key(entry)
            except Exception as error:  # noqa: BLE001 - a key we cannot read is left out, said once
                log.warning("%s: a key of the JWKS left out: %s", keys.issuer, error)
                continue
            found[str(entry.get("kid", ""))] = key
        keys.keys = found
        keys.fetched = self.monotonic()
        log.info("keys of %s: %s", keys.issuer, ", ".join(sorted(found)) or "none")

    def _key(self, keys: _IssuerKeys, kid: str, alg: str):
        with keys.lock:
            now = self.monotonic()
            if keys.fetched is None or now - keys.fetched > self.key_seconds:
                self._load(keys)
            key = keys.keys.get(kid)
            if key is None and (keys.refetched is None or now - keys.refetched >= self.refetch_seconds):
                keys.refetched = now  # a kid we do not know: perhaps the issuer rotated its keys
                self._load(keys)
                key = keys.keys.get(kid)
        if key is None:
            raise InvalidTokenError(f"unknown key: kid {kid[:100]!r} is not among the keys of {keys.issuer}")
        if key.key_type != KEY_TYPES[alg[:2]]:
            raise InvalidTokenError(f"key {kid[:100]!r} is an {key.key_type} key, which cannot verify {alg}")
        return key

    # -- tokens ------------------------------------------------------------------------------------------

    def validate(self, token: str) -> Identity:
        """The identity a token proves, or InvalidTokenError (KeysUnavailableError: keys not fetched)."""
        from joserfc import jwt
        from joserfc.errors import BadSignatureError, JoseError

        if len(token) > MAXIMUM_TOKEN_BYTES:
            raise InvalidTokenError(f"the token is {len(token)} bytes, over {MAXIMUM_TOKEN_BYTES}")
        parts = token.split(".")
        if len(parts) != 3:
            raise InvalidTokenError(f"the token is not a signed JWT (compact JWS: 3 parts, not {len(parts)})")
        header = _part(parts[0], "header")
        claims = _part(parts[1], "payload")
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise InvalidTokenError(f"algorithm {str(alg)[:20]!r} is not accepted (asymmetric signatures only: "
                                    f"{', '.join(ALGORITHMS)})")
        issuer = claims.get("iss")
        keys = self.issuers.get(issuer) if isinstance(issuer, str) else None
        if keys is None:
            raise InvalidTokenError(f"issuer {str(issuer)[:200]!r} is not trusted (trusted: "
                                    f"{', '.join(self.issuers)})")
        kid = header.get("kid", "")
        if not isinstance(kid, str):
            raise InvalidTokenError("the token's kid is not a string")
        key = self._key(keys, kid, alg)
        try:
            verified = jwt.decode(token, key, algorithms=[alg])
        except BadSignatureError:
            raise InvalidTokenError(f"bad signature: the token is not signed by key {kid[:100]!r} of {issuer}") \
                from None
        except JoseError as error:
            raise InvalidTokenError(f"the token cannot be verified: {error.description or error.error}") from None
        self._check_claims(verified.claims)
        subject = verified.claims.get("sub")
        if not isinstance(subject, str) or not subject or len(subject) > 256:
            raise InvalidTokenError("the token has no usable sub (subject) claim")
        scopes = self.vocabulary.scopes_in(verified.claims)
        return Identity(subject, issuer, scopes, self.vocabulary.actions_of(scopes), verified.claims, BEARER)

    def _check_claims(self, claims: dict) -> None:
        from joserfc.errors import ClaimError, ExpiredTokenError, MissingClaimError
        from joserfc.jwt import JWTClaimsRegistry

        options = {"exp": {"essential": True}}
        if self.audience:
            options["aud"] = {"essential": True, "value": self.audience}
        now = self.clock()
        registry = JWTClaimsRegistry(now=int(now), leeway=int(self.leeway), **options)
        try:
            registry.validate(claims)
        except ExpiredTokenError:
            raise InvalidTokenError(f"the token expired at {_when(claims['exp'])} ({now - claims['exp']:.0f} s ago; "
                                    f"leeway {self.leeway:.0f} s)") from None
        except MissingClaimError as error:
            raise InvalidTokenError(f"the token has no {error.claim} claim") from None
        except ClaimError as error:
            name = getattr(error, "claim", None) or ""
            value = claims.get(name)
            if name == "aud":
                raise InvalidTokenError(f"audience {str(value)[:200]!r} is not {self.audience!r}") from None
            if name == "nbf" and isinstance(value, (int, float)):
                raise InvalidTokenError(f"the token is not valid before {_when(value)} (in {value - now:.0f} s; "
                                        f"leeway {self.leeway:.0f} s)") from None
            if name == "iat" and isinstance(value, (int, float)):
                raise InvalidTokenError(f"the token was issued in the future, at {_when(value)}") from None
            raise InvalidTokenError(f"claim {name!r}: {error.description}") from None
