"""A test PKI made with the openssl command at run time: a CA and a server certificate for
127.0.0.1/localhost signed by it; and client contexts that trust the CA, or speak only TLS 1.1."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path


@dataclass
class PKI:
    ca: Path
    certificate: Path
    key: Path

    def client(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))


def make_pki(folder: Path) -> PKI:
    folder.mkdir(parents=True, exist_ok=True)

    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)

    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
            "-out", "ca.pem", "-days", "2", "-subj", "/CN=pyjpip test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "server.key",
            "-out", "server.csr", "-subj", "/CN=localhost")
    (folder / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
                                       "basicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "server.ext")
    return PKI(folder / "ca.pem", folder / "server.pem", folder / "server.key")


def tls11_client() -> ssl.SSLContext:
    """A client that offers TLS 1.1 only (OpenSSL's security level 0 lets it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


def tls11_handshake(address) -> str:
    """The version a TLS 1.1 client gets from ``address`` (raises ssl.SSLError when refused)."""
    with socket.create_connection(address, timeout=10) as raw:
        with tls11_client().wrap_socket(raw) as wrapped:
            return wrapped.version()


def permissive_server(pki: PKI):
    """A one-shot TLS server that accepts TLS 1.1: the control showing the client can speak it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.load_cert_chain(pki.certificate, pki.key)
    listener = socket.create_server(("127.0.0.1", 0))

    def accept():
        connection, _ = listener.accept()
        try:
            context.wrap_socket(connection, server_side=True).close()
        except (ssl.SSLError, OSError):
            connection.close()
        listener.close()

    threading.Thread(target=accept, daemon=True).start()
    return listener.getsockname()
