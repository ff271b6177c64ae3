"""TLS for DICOM associations: the BCP 195 secure transport connection profiles of PS3.15 B.9
(BCP195 TLS Secure Transport Connection Profile) and B.10 (its non-downgrading form).

PS3.15 B.9/B.10 defer to BCP 195 (RFC 9325, which replaced RFC 7525): TLS 1.2 at least (1.3
preferred when both sides have it), no compression, no renegotiation, and for TLS 1.2 only
cipher suites with forward secrecy and AEAD (RFC 9325 4.2: ECDHE/DHE with AES-GCM, and
ChaCha20-Poly1305). Nothing falls back to an older version (B.10: non-downgrading). The
acceptor presents its certificate; with a CA file it requires one from every requestor too
(mutual TLS, the node authentication of PS3.15 B.1). A requestor verifies the acceptor's
certificate against the CA given (or the system's) and checks its host name (RFC 9525).

pynetdicom takes these contexts as they are: ``AE.associate(tls_args=(context, hostname))``, and
for the acceptor pyjpip.network.association_server does the handshake in the connection's own
thread (pynetdicom's server would do it in its accept loop, where one silent client stops all).
"""

from __future__ import annotations

import ssl

from pyjpip.errors import PyjpipError

#: RFC 9325 4.2 for TLS 1.2 (TLS 1.3 suites are all AEAD with forward secrecy and are left as OpenSSL has them).
BCP195_CIPHERS = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
                  "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
                  "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384")


class TLSConfigurationError(PyjpipError):
    """A certificate, key or CA file that cannot be used: which one and why."""

    kind = "configuration"


def _hardened(context: ssl.SSLContext) -> ssl.SSLContext:
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(BCP195_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    return context


def acceptor_context(certfile: str, keyfile: str | None = None, client_ca: str | None = None) -> ssl.SSLContext:
    """The SCP's context: its certificate and key; with ``client_ca``, requestors must present a
    certificate that CA issued (mutual TLS)."""
    context = _hardened(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    _load_chain(context, certfile, keyfile)
    if client_ca:
        _load_ca(context, client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def requestor_context(ca: str | None = None, certfile: str | None = None, keyfile: str | None = None,
                      check_hostname: bool = True) -> ssl.SSLContext:
    """An SCU's context: the acceptor's certificate verified against ``ca`` (else the system's CAs)
    and its host name checked; ``certfile``/``keyfile`` for an acceptor that requires a client
    certificate."""
    context = _hardened(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    context.check_hostname = check_hostname
    context.verify_mode = ssl.CERT_REQUIRED
    if ca:
        _load_ca(context, ca)
    else:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if certfile:
        _load_chain(context, certfile, keyfile)
    return context


def peer_identity(sock) -> str | None:
    """The subject common name of the certificate a peer presented (mutual TLS), or None."""
    try:
        certificate = sock.getpeercert()
    except (AttributeError, ValueError, OSError):
        return None
    for rdn in (certificate or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)[:128]
    return None


def _load_chain(context: ssl.SSLContext, certfile: str, keyfile: str | None) -> None:
    try:
        context.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as error:
        raise TLSConfigurationError(f"certificate {certfile} / key {keyfile or certfile}: cannot be used "
                                    f"({getattr(error, 'strerror', None) or error})") from None


def _load_ca(context: ssl.SSLContext, ca: str) -> None:
    try:
        context.load_verify_locations(cafile=ca)
    except (OSError, ssl.SSLError) as error:
        raise TLSConfigurationError(f"CA file {ca}: cannot be used ({getattr(error, 'strerror', None) or error})") \
            from None
