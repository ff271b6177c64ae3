"""Who is asking, and what they may do: an authenticated ``Identity`` and the scope vocabulary.

Three actions are all pyjpip distinguishes (issue 23):

- ``read``: see studies: DICOMweb (QIDO-RS lists, WADO-RS metadata and hollow objects), JPIP pixels,
  the site's data files;
- ``store``: add objects (a Storage SCP's HTTP side, a future STOW-RS);
- ``administer``: everything the others may, on every study whatever the access policy (implies both).

Each action is granted by one OAuth 2.0 scope (RFC 6749 3.3: space-separated, case-sensitive
strings the authorization server defines). The defaults are ``pyjpip.read``, ``pyjpip.store`` and
``pyjpip.admin``: dotted and prefixed with the resource server's name, as identity providers name
API scopes (Azure AD ``api://app/Name``, Google ``https://www.googleapis.com/auth/...``, SMART on FHIR
``patient/*.read``), so they cannot collide with an IdP's own (``openid``, ``profile``, ``email``)
or another application's; short enough to type into a Keycloak or Auth0 console. A site whose IdP
already has roles maps them with ``ScopeVocabulary(read=..., store=..., administer=...)``.

Where the scopes are in a token: the ``scope`` claim (RFC 8693 4.2, RFC 9068 2.2.3: one
space-separated string), ``scp`` (Okta, Azure AD: a list or a string), or a roles/groups claim
(Keycloak's ``realm_access.roles``: a dotted path walks into objects). ``ScopeVocabulary.claim``
names it; the default looks at ``scope`` then ``scp``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

READ = "read"
STORE = "store"
ADMINISTER = "administer"
ACTIONS = (READ, STORE, ADMINISTER)

#: How a request was authenticated.
BEARER = "bearer"
TRUSTED_HEADER = "trusted-header"
ANONYMOUS_METHOD = "anonymous"

#: Bounds on what a token or header may make us keep.
MAXIMUM_SCOPES = 256
MAXIMUM_SCOPE_LENGTH = 256


@dataclass(frozen=True)
class ScopeVocabulary:
    """The scope (or role) names that grant each action, and the claim that carries them (None: ``scope``,
    then ``scp``)."""

    read: str = "pyjpip.read"
    store: str = "pyjpip.store"
    administer: str = "pyjpip.admin"
    claim: str | None = None

    def scopes_in(self, claims: Mapping) -> frozenset[str]:
        """The scopes a token's claims carry (a space-separated string or a list of strings), bounded."""
        if self.claim:
            value = claims
            for step in self.claim.split("."):
                value = value.get(step) if isinstance(value, Mapping) else None
        else:
            value = claims.get("scope")
            if value is None:
                value = claims.get("scp")
        return parse_scopes(value)

    def actions_of(self, scopes: frozenset[str]) -> frozenset[str]:
        if self.administer in scopes:
            return frozenset(ACTIONS)
        return frozenset(a for a, name in ((READ, self.read), (STORE, self.store)) if name in scopes)

    def scope_for(self, action: str) -> str:
        return {READ: self.read, STORE: self.store, ADMINISTER: self.administer}[action]


def parse_scopes(value) -> frozenset[str]:
    """Scopes from a claim or header value: a space- (or comma-) separated string or a list of strings;
    anything else, and entries beyond the bounds, count for nothing."""
    if isinstance(value, str):
        items = value.replace(",", " ").split()
    elif isinstance(value, (list, tuple)):
        items = [v for v in value if isinstance(v, str)]
    else:
        return frozenset()
    return frozenset(v for v in items[:MAXIMUM_SCOPES] if 0 < len(v) <= MAXIMUM_SCOPE_LENGTH)


@dataclass(frozen=True)
class Identity:
    """An authenticated caller: ``subject`` (the token's ``sub``, or the proxy's user header), ``issuer``
    (the token's ``iss``; the proxy's address for a trusted header; None when anonymous), the
    ``scopes`` it carried, the ``actions`` they grant, its ``claims`` (for access policies) and
    ``method`` (BEARER, TRUSTED_HEADER, ANONYMOUS_METHOD)."""

    subject: str
    issuer: str | None
    scopes: frozenset[str]
    actions: frozenset[str]
    claims: Mapping = field(default_factory=dict, hash=False, compare=False)
    method: str = BEARER

    def may(self, action: str) -> bool:
        return action in self.actions

    @property
    def anonymous(self) -> bool:
        return self.method == ANONYMOUS_METHOD

    @property
    def key(self) -> str:
        """Who this is, across requests: the subject within its issuer (RFC 7519 4.1.2: ``sub`` is
        unique only within ``iss``)."""
        return f"{self.method}:{self.issuer or ''}#{self.subject}"

    def __str__(self) -> str:
        return self.subject if self.issuer is None else f"{self.subject} ({self.issuer})"


#: Anyone, when the server runs with no authentication (``--no-auth``, or open on loopback): every action.
ANONYMOUS = Identity("anonymous", None, frozenset(), frozenset(ACTIONS), {}, ANONYMOUS_METHOD)
