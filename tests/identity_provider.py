"""A real OpenID Connect provider for tests: keys the suite makes, served over HTTP on a free loopback port.

Use it through the ``identity_provider`` fixture (tests/conftest.py; a fresh provider per test) or
directly::

    from identity_provider import IdentityProvider
    with IdentityProvider(audience="pyjpip", user="alice", scope="pyjpip.read") as idp:
        idp.issuer                       # "http://127.0.0.1:PORT" (the "iss" of every token it signs)
        idp.jwks_uri                     # idp.issuer + "/jwks"
        token = idp.mint()               # a valid RS256 access token for idp.user, idp.scope, idp.audience
        idp.mint(subject="bob", scope="pyjpip.read pyjpip.store", lifetime=60, claims={"pyjpip_studies": [...]})
        idp.mint(expires_in=-600)        # expired ten minutes ago
        idp.mint(not_before=+600)        # not valid for ten minutes
        idp.mint(audience="someone-else"), idp.mint(issuer="http://evil.example")
        idp.mint(kid="nobody-knows")     # signed by a key the JWKS does not publish
        idp.mint(key="ec")               # ES256 with the provider's EC key (RS256 with its RSA key by default)
        idp.mint_alg_none()              # {"alg": "none"}, no signature (RFC 8725 2.1)
        idp.mint_hs256_with_public_key() # HMAC keyed with the RSA public key's PEM (RFC 8725 2.1, key confusion)
        idp.rotate()                     # a new RSA key signs from now on; the old one leaves the JWKS
        idp.jwks_requests                # how many times /jwks was fetched

Endpoints (OpenID Connect Discovery 1.0, RFC 6749, RFC 7636):

- ``GET /.well-known/openid-configuration``: issuer, authorization_endpoint, token_endpoint, jwks_uri;
- ``GET /jwks``: the public keys (RFC 7517), each with its ``kid``;
- ``GET /authorize?response_type=code&client_id=..&redirect_uri=..&state=..&code_challenge=..``
  ``&code_challenge_method=S256`` (``&scope=..&nonce=..`` optional):
  the redirect_uri must be one registered for the client (``clients={"viewer": ["http://127.0.0.1:8000/"]}``,
  or ``idp.register(client_id, redirect_uri)``), PKCE S256 is required; the configured ``user`` is
  logged in at once (``login_form=True`` shows a one-button form instead, POSTed back to /authorize)
  and the browser is sent to ``redirect_uri?code=..&state=..`` (302);
- ``POST /token`` (application/x-www-form-urlencoded): ``grant_type=authorization_code`` with ``code``,
  ``redirect_uri``, ``client_id`` and ``code_verifier`` (checked against the challenge: RFC 7636 4.6),
  or ``grant_type=refresh_token`` with ``refresh_token``; answers access_token, token_type "Bearer",
  expires_in (``access_token_seconds``), refresh_token, id_token, scope. Errors are RFC 6749 5.2 JSON.

Every answer allows any origin (CORS), so a page served elsewhere (the viewer) can call /token and
/jwks from the browser. ``idp.events`` lists what it was asked (for assertions).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class IdentityProvider:
    """An OpenID provider on 127.0.0.1 (see the module's docstring)."""

    def __init__(self, *, audience: str = "pyjpip", user: str = "alice", scope: str = "pyjpip.read",
                 clients: dict[str, list[str]] | None = None, access_token_seconds: int = 300,
                 login_form: bool = False, extra_claims: dict | None = None):
        self.audience = audience
        self.user = user
        self.scope = scope
        self.clients = {k: list(v) for k, v in (clients or {}).items()}
        self.access_token_seconds = access_token_seconds
        self.login_form = login_form
        self.extra_claims = dict(extra_claims or {})
        self.rsa = RSAKey.generate_key(2048, parameters={"kid": "rsa-1", "use": "sig", "alg": "RS256"})
        self.ec = ECKey.generate_key("P-256", parameters={"kid": "ec-1", "use": "sig", "alg": "ES256"})
        self.stranger = RSAKey.generate_key(2048, parameters={"kid": "stranger", "use": "sig", "alg": "RS256"})
        self.published = [self.rsa, self.ec]
        self.generation = 1
        self.jwks_requests = 0
        self.events: list[tuple[str, str]] = []
        self.codes: dict[str, dict] = {}
        self.refresh_tokens: dict[str, dict] = {}
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    # -- lifetime -------------------------------------------------------------------------------------

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> IdentityProvider:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def jwks_uri(self) -> str:
        return self.issuer + "/jwks"

    @property
    def discovery_url(self) -> str:
        return self.issuer + "/.well-known/openid-configuration"

    def register(self, client_id: str, redirect_uri: str) -> None:
        self.clients.setdefault(client_id, []).append(redirect_uri)

    def rotate(self) -> RSAKey:
        """A new RSA key signs from now on; the old RSA key leaves the JWKS (the EC key stays)."""
        self.generation += 1
        new = RSAKey.generate_key(2048, parameters={"kid": f"rsa-{self.generation}", "use": "sig", "alg": "RS256"})
        with self.lock:
            old = self.rsa
            self.published = [k for k in self.published if k is not old] + [new]
            self.rsa = new
        return old

    def jwks(self) -> dict:
        with self.lock:
            return KeySet(list(self.published)).as_dict(private=False)

    # -- tokens ---------------------------------------------------------------------------------------

    def claims(self, *, subject: str | None = None, scope: str | None = None, audience=None,
               issuer: str | None = None, expires_in: float | None = None, not_before: float | None = None,
               issued_at: float | None = None, claims: dict | None = None) -> dict:
        now = int(time.time())
        body = {"iss": issuer or self.issuer, "sub": subject or self.user,
                "aud": self.audience if audience is None else audience,
                "iat": now + int(issued_at or 0),
                "exp": now + int(self.access_token_seconds if expires_in is None else expires_in),
                "jti": secrets.token_hex(8), **self.extra_claims}
        if scope is not None or self.scope:
            body["scope"] = self.scope if scope is None else scope
        if not_before is not None:
            body["nbf"] = now + int(not_before)
        body.update(claims or {})
        return {k: v for k, v in body.items() if v is not None}

    def mint(self, *, key: str = "rsa", kid: str | None = None, header: dict | None = None, **claim_options) -> str:
        """A signed JWT access token (RS256 with the current RSA key, or ``key="ec"``: ES256;
        ``kid``: a key the JWKS does not publish, named so; ``header``: more header fields)."""
        if kid is not None:
            signer, alg = RSAKey.import_key(self.stranger.as_dict(private=True),
                                            parameters={"kid": kid}), "RS256"
        elif key == "ec":
            signer, alg = self.ec, "ES256"
        else:
            signer, alg = self.rsa, "RS256"
        head = {"alg": alg, "kid": signer.kid, "typ": "at+jwt", **(header or {})}
        return jwt.encode(head, self.claims(**claim_options), signer, algorithms=[alg])

    def mint_alg_none(self, **claim_options) -> str:
        """An unsecured JWT (alg "none", RFC 7519 6): header.payload. with no signature."""
        head = {"alg": "none", "typ": "JWT", "kid": self.rsa.kid}
        return (f"{_b64(json.dumps(head).encode())}.{_b64(json.dumps(self.claims(**claim_options)).encode())}.")

    def mint_hs256_with_public_key(self, **claim_options) -> str:
        """HS256 keyed with the published RSA key's PEM: the algorithm-confusion attack (RFC 8725 2.1)
        that fools a verifier which lets the token choose the algorithm."""
        head = {"alg": "HS256", "typ": "JWT", "kid": self.rsa.kid}
        signing_input = f"{_b64(json.dumps(head).encode())}.{_b64(json.dumps(self.claims(**claim_options)).encode())}"
        secret = self.rsa.as_pem(private=False)
        signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(signature)}"

    def id_token(self, subject: str, client_id: str, nonce: str | None) -> str:
        return jwt.encode({"alg": "RS256", "kid": self.rsa.kid},
                          self.claims(subject=subject, audience=client_id, scope="",
                                      claims={"nonce": nonce, "name": subject}), self.rsa, algorithms=["RS256"])

    def _issue(self, grant: dict) -> dict:
        refresh = secrets.token_urlsafe(24)
        with self.lock:
            self.refresh_tokens[refresh] = grant
        access = self.mint(subject=grant["user"], scope=grant["scope"])
        return {"access_token": access, "token_type": "Bearer", "expires_in": self.access_token_seconds,
                "refresh_token": refresh, "scope": grant["scope"],
                "id_token": self.id_token(grant["user"], grant["client_id"], grant.get("nonce"))}

    # -- HTTP -----------------------------------------------------------------------------------------

    def _handler(self):
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _answer(self, status: int, body=b"", content_type="application/json", headers=()):
                data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Access-Control-Allow-Origin", "*")
                self.send_header("Access-Control-Allow-Headers", "Content-Type, Authorization")
                self.send_header("Cache-Control", "no-store")
                for name, value in headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status: int, error: str, description: str):
                self._answer(status, {"error": error, "error_description": description})

            def do_OPTIONS(self):
                self._answer(204, b"", headers=[("Access-Control-Allow-Methods", "GET, POST, OPTIONS")])

            def do_GET(self):
                parts = urlsplit(self.path)
                provider.events.append(("GET", parts.path))
                if parts.path == "/.well-known/openid-configuration":
                    return self._answer(200, {
                        "issuer": provider.issuer, "jwks_uri": provider.jwks_uri,
                        "authorization_endpoint": provider.issuer + "/authorize",
                        "token_endpoint": provider.issuer + "/token",
                        "response_types_supported": ["code"], "grant_types_supported":
                            ["authorization_code", "refresh_token"],
                        "code_challenge_methods_supported": ["S256"],
                        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                        "subject_types_supported": ["public"],
                        "token_endpoint_auth_methods_supported": ["none"],
                        "scopes_supported": ["openid", "pyjpip.read", "pyjpip.store", "pyjpip.admin"]})
                if parts.path == "/jwks":
                    with provider.lock:
                        provider.jwks_requests += 1
                    return self._answer(200, provider.jwks(), "application/jwk-set+json")
                if parts.path == "/authorize":
                    return self._authorize({k: v[0] for k, v in parse_qs(parts.query).items()}, form=False)
                self._error(404, "not_found", f"{parts.path}: no such endpoint")

            def _form(self) -> dict:
                length = int(self.headers.get("Content-Length") or 0)
                return {k: v[0] for k, v in parse_qs(self.rfile.read(min(length, 65536)).decode()).items()}

            def do_POST(self):
                parts = urlsplit(self.path)
                provider.events.append(("POST", parts.path))
                if parts.path == "/authorize":
                    return self._authorize(self._form(), form=True)
                if parts.path == "/token":
                    return self._token(self._form())
                self._error(404, "not_found", f"{parts.path}: no such endpoint")

            def _authorize(self, params: dict, form: bool):
                client, redirect = params.get("client_id"), params.get("redirect_uri")
                if client not in provider.clients:
                    return self._error(400, "unauthorized_client", f"client {client!r} is not registered")
                if redirect not in provider.clients[client]:
                    return self._error(400, "invalid_request", f"redirect_uri {redirect!r} is not registered for "
                                                               f"{client!r}")
                state = params.get("state")

                def back(**fields):
                    if state is not None:
                        fields["state"] = state
                    sep = "&" if "?" in redirect else "?"
                    self._answer(302, b"", "text/plain", [("Location", redirect + sep + urlencode(fields))])

                if params.get("response_type") != "code":
                    return back(error="unsupported_response_type")
                if params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
                    return back(error="invalid_request", error_description="PKCE with S256 is required")
                if provider.login_form and not form:
                    hidden = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                                     for k, v in params.items())
                    page = (f'<!doctype html><title>Sign in</title><form method="post" action="/authorize">'
                            f'{hidden}<p>Sign in as {html.escape(provider.user)}</p><button id="login">Sign in</button></form>')
                    return self._answer(200, page.encode(), "text/html; charset=utf-8")
                code = secrets.token_urlsafe(24)
                scope = " ".join(s for s in (params.get("scope") or provider.scope).split() if s != "openid") \
                    or provider.scope
                with provider.lock:
                    provider.codes[code] = {"client_id": client, "redirect_uri": redirect, "user": provider.user,
                                            "challenge": params["code_challenge"], "scope": scope,
                                            "nonce": params.get("nonce"), "expires": time.time() + 60}
                back(code=code)

            def _token(self, form: dict):
                grant = form.get("grant_type")
                if grant == "authorization_code":
                    with provider.lock:
                        issued = provider.codes.pop(form.get("code", ""), None)
                    if issued is None or issued["expires"] < time.time():
                        return self._error(400, "invalid_grant", "unknown, used or expired code")
                    if form.get("client_id") != issued["client_id"] or form.get("redirect_uri") != \
                            issued["redirect_uri"]:
                        return self._error(400, "invalid_grant", "client_id or redirect_uri differ from the "
                                                                 "authorization request's")
                    verifier = form.get("code_verifier", "")
                    if _b64(hashlib.sha256(verifier.encode()).digest()) != issued["challenge"]:
                        return self._error(400, "invalid_grant", "code_verifier does not match the code_challenge "
                                                                 "(RFC 7636 4.6)")
                    return self._answer(200, provider._issue(issued))
                if grant == "refresh_token":
                    with provider.lock:
                        issued = provider.refresh_tokens.pop(form.get("refresh_token", ""), None)
                    if issued is None:
                        return self._error(400, "invalid_grant", "unknown or used refresh_token")
                    return self._answer(200, provider._issue(issued))
                self._error(400, "unsupported_grant_type", f"grant_type {grant!r}")

        return Handler


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, code_challenge) for RFC 7636 S256, for tests that play the client."""
    verifier = secrets.token_urlsafe(48)
    return verifier, _b64(hashlib.sha256(verifier.encode()).digest())
