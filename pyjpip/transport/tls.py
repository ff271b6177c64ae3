"""TLS for pyjpip's HTTP servers (the dev server and the production workers): one server context
with the settings of RFC 9325 (BCP 195), and HTTP Strict Transport Security (RFC 6797).

RFC 9325 as applied here: TLS 1.2 at least (3.1.1: TLS 1.0 and 1.1 MUST NOT be negotiated; 1.3
preferred, 3.1.1); for TLS 1.2 only the AEAD suites with ECDHE key agreement (4.2, and 4.1: no NULL,
RC4, export or anonymous suites, no static RSA key transport, no finite-field DHE); no TLS-level
compression (3.3); no renegotiation (3.5: TLS 1.2 renegotiation is refused rather than secured).
TLS 1.3 suites are OpenSSL's, all AEAD. Certificates are the operator's; no client certificate is
asked for (users authenticate with tokens at the HTTP layer).
"""

from __future__ import annotations

import ssl

from pyjpip.errors import TLSConfigurationError

#: OpenSSL names: ECDHE key agreement with AES-GCM or ChaCha20-Poly1305 (RFC 9325 4.2), for TLS 1.2.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
#: The default max-age of Strict-Transport-Security: one year (RFC 6797 11.2 leaves it to the site).
HSTS_SECONDS = 31536000


def server_context(certfile: str, keyfile: str | None = None) -> ssl.SSLContext:
    """The server side of every HTTPS listener pyjpip runs. ``certfile`` is the PEM certificate
    chain (leaf first), ``keyfile`` its private key (default: in ``certfile``)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION | ssl.OP_CIPHER_SERVER_PREFERENCE
    try:
        context.load_cert_chain(certfile, keyfile)
    except FileNotFoundError as error:
        raise TLSConfigurationError(f"--certfile/--keyfile: {error.filename or certfile}: no such file") from None
    except (ssl.SSLError, OSError) as error:
        raise TLSConfigurationError(f"--certfile {certfile} / --keyfile {keyfile or certfile}: not a usable PEM "
                                    f"certificate chain and matching private key ({error})") from None
    return context


def hsts_headers(seconds: int) -> list[tuple[str, str]]:
    """Strict-Transport-Security for an answer sent over TLS (RFC 6797 7.1: never over plain HTTP,
    where browsers ignore it); none when ``seconds`` is 0."""
    return [("Strict-Transport-Security", f"max-age={int(seconds)}")] if seconds > 0 else []
