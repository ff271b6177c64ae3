"""TLS for pyjpip's HTTP servers (the dev server and the production workers), and HTTP Strict
Transport Security (RFC 6797).

The TLS settings are the ones DICOM's secure transport uses, from one place
(pyjpip.network.secure_transport.acceptor_context: RFC 9325 / BCP 195, TLS 1.2 at least, for 1.2
only AEAD suites with forward secrecy, no compression, no renegotiation). No client certificate is
asked for over HTTP: users authenticate with tokens at the HTTP layer.
"""

from __future__ import annotations

import ssl

from pyjpip.network.secure_transport import TLSConfigurationError, acceptor_context  # noqa: F401

#: The default max-age of Strict-Transport-Security: one year (RFC 6797 11.2 leaves it to the site).
HSTS_SECONDS = 31536000


def server_context(certfile: str, keyfile: str | None = None) -> ssl.SSLContext:
    """The server side of every HTTPS listener pyjpip runs. ``certfile`` is the PEM certificate
    chain (leaf first), ``keyfile`` its private key (default: in ``certfile``); TLSConfigurationError
    says which file cannot be used and why."""
    return acceptor_context(certfile, keyfile)


def hsts_headers(seconds: int) -> list[tuple[str, str]]:
    """Strict-Transport-Security for an answer sent over TLS (RFC 6797 7.2: never over plain HTTP,
    where browsers ignore it); none when ``seconds`` is 0."""
    return [("Strict-Transport-Security", f"max-age={int(seconds)}")] if seconds > 0 else []
