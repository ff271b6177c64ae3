"""The acceptor's side of the DICOM upper layer, guarded: timeouts, caps on connections, TLS, and
who may associate (PS3.8 7.1, 9.1.5; PS3.15 B.9).

pynetdicom 3.0.4's AssociationServer starts a thread and an Association for every TCP connection
and counts it among the active associations at once; the Association waits for the
A-ASSOCIATE-RQ as long as its ARTIM timer (pynetdicom: the ACSE timeout, 60 s as pyjpip set
it). So 64 silent connections (--max-associations) made every real requestor "local limit
exceeded" for a minute, and over TLS one silent client stopped the accept loop itself
(pynetdicom does the handshake there). Here:

- ARTIM (PS3.8 9.1.5) is short while the A-ASSOCIATE-RQ is awaited (``Timeouts.artim``, 10 s),
  and the ACSE timeout is set to its own value once the association is accepted;
- a peer address may hold ``per_peer`` connections that are not associated yet (waiting for
  the A-ASSOCIATE-RQ, or in the TLS handshake); past that, and past ``maximum`` associations
  (plus ``per_peer``) in all, a connection is closed as soon as it is accepted, said in the log
  and to ``on_refused``. Associations themselves are capped by ``maximum`` (pynetdicom answers
  A-ASSOCIATE-RJ "local limit exceeded"), and one that stays silent is aborted after the network
  timeout;
- the TLS handshake runs in the connection's own thread, bounded by ARTIM;
- the calling AE titles accepted depend on the peer's address (pyjpip.network.senders): the
  application entity answers pynetdicom's ``require_calling_aet`` for the association being
  negotiated (its thread), so the A-ASSOCIATE-RJ says "calling AE title not recognized".
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections import Counter
from dataclasses import dataclass

log = logging.getLogger(__name__)

#: An AE title no requestor can have (a backslash is not in the AE repertoire): pynetdicom takes an
#: empty require_calling_aet as "any", so an address no sender may come from gets this one.
_NOBODY = "\\"


@dataclass(frozen=True)
class Timeouts:
    """Seconds. ``artim``: from TCP connection to A-ASSOCIATE-RQ (and TLS handshake), and after a
    reject or release until the peer closes; ``acse``: association messages once accepted;
    ``dimse``: a DIMSE message's parts; ``network``: an association with nothing on the wire."""

    artim: float = 10.0
    acse: float = 30.0
    dimse: float = 60.0
    network: float = 60.0

    def __post_init__(self):
        for name in ("artim", "acse", "dimse", "network"):
            value = getattr(self, name)
            if not (0 < value <= 86400):
                raise ValueError(f"{name} timeout {value!r}: between 0 and 86400 seconds")


def application_entity(ae_title: str, sender_policy=None):
    """A pynetdicom AE whose accepted calling AE titles depend on the requestor's address."""
    from pynetdicom import AE

    class GuardedAE(AE):
        senders = sender_policy

        @property
        def require_calling_aet(self) -> list[str]:
            if self.senders is None or not self.senders.configured:
                return []
            association = threading.current_thread()  # pynetdicom negotiates in the association's thread
            requestor = getattr(association, "requestor", None)
            address = getattr(requestor, "address", None)
            return (self.senders.titles_from(address) if address else []) or [_NOBODY]

        @require_calling_aet.setter
        def require_calling_aet(self, titles: list[str]) -> None:
            raise AttributeError("set the senders (pyjpip.network.senders) instead")

    return GuardedAE(ae_title=ae_title)


def server_class():
    from pynetdicom.transport import ThreadedAssociationServer

    class GuardedAssociationServer(ThreadedAssociationServer):
        """Set after construction: ``per_peer``, ``maximum``, ``tls_context``, ``timeouts``,
        ``on_refused(address, reason)``, ``on_tls_failure(address, reason)``."""

        per_peer = 8
        maximum = 64
        tls_context: ssl.SSLContext | None = None
        timeouts = Timeouts()
        daemon_threads = True

        def on_refused(self, address: str, reason: str) -> None:
            pass

        def on_tls_failure(self, address: str, reason: str) -> None:
            pass

        def get_request(self):
            """Accept only: the TLS handshake is the connection thread's (process_request_thread)."""
            return self.socket.accept()

        def verify_request(self, request, client_address) -> bool:
            peer = client_address[0]
            with self._guard_lock():
                associations = self.active_associations
                # Connections that are not an association yet: waiting for the A-ASSOCIATE-RQ, in the
                # TLS handshake, or accepted and not yet handed to pynetdicom.
                waiting = [a for a in associations
                           if not (a.is_established or a.is_released or a.is_aborted or a.is_rejected)]
                sockets = {id(getattr(getattr(a.dul, "socket", None), "socket", None)) for a in associations}
                held_by = Counter(str(a.requestor.address) for a in waiting)
                for (address, request_id) in self._pending():
                    if request_id not in sockets:
                        held_by[address] += 1
                held = held_by[peer]
                total = len(associations) + sum(1 for _, r in self._pending() if r not in sockets)
                if held >= self.per_peer:
                    reason = (f"{held} connections from {peer} are not associated yet (at most {self.per_peer} a "
                              "peer)")
                elif total >= self.maximum + self.per_peer:
                    reason = f"{total} connections already (at most {self.maximum} associations)"
                else:
                    self._pending()[(peer, id(request))] = request
                    return True
            log.warning("connection from %s:%s closed: %s", peer, client_address[1], reason)
            self.on_refused(peer, reason)
            return False

        def process_request_thread(self, request, client_address) -> None:
            key = (client_address[0], id(request))
            try:
                if self.tls_context is not None:
                    wrapped = self._handshake(request, client_address)
                    if wrapped is None:
                        return
                    with self._guard_lock():  # the Association will hold the wrapped socket
                        self._pending()[(client_address[0], id(wrapped))] = self._pending().pop(key)
                        key = (client_address[0], id(wrapped))
                    request = wrapped
                super().process_request_thread(request, client_address)  # starts the Association's thread
            finally:
                with self._guard_lock():
                    self._pending().pop(key, None)

        def _handshake(self, request, client_address):
            try:
                request.settimeout(self.timeouts.artim)
                wrapped = self.tls_context.wrap_socket(request, server_side=True)
                wrapped.settimeout(None)
                return wrapped
            except (ssl.SSLEOFError, ConnectionError, TimeoutError) as error:
                # Closed, or silent, before a handshake: a port probe (a monitor, a reachability check)
                # or a slow client; logged, not a failed authentication.
                log.info("connection from %s:%s closed without a TLS handshake (%s)", client_address[0],
                         client_address[1], getattr(error, "reason", None) or type(error).__name__)
                self._close(request)
                return None
            except (ssl.SSLError, OSError) as error:
                reason = f"TLS handshake failed: {getattr(error, 'reason', None) or error}"
                log.warning("connection from %s:%s closed: %s", client_address[0], client_address[1], reason)
                self.on_tls_failure(client_address[0], reason)
                self._close(request)
                return None

        @staticmethod
        def _close(request) -> None:
            try:
                request.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            request.close()

        def _guard_lock(self):
            if "_lock" not in vars(self):
                self._lock = threading.Lock()
            return self._lock

        def _pending(self) -> dict:
            """(peer address, id of its socket) -> socket, from acceptance until its Association runs."""
            if "_pending_connections" not in vars(self):
                self._pending_connections = {}
            return self._pending_connections

    return GuardedAssociationServer


def start(ae, address: tuple[str, int], handlers: list, block: bool = False, per_peer: int = 8,
          maximum: int = 64, tls_context: ssl.SSLContext | None = None, timeouts: Timeouts = Timeouts(),
          on_refused=None, on_tls_failure=None):
    """Listen as pynetdicom's AE.start_server does, with the guarded server; returns the server
    (``.shutdown()``) unless ``block``."""
    from pynetdicom import evt

    ae.maximum_associations = maximum
    ae.acse_timeout = timeouts.artim  # pynetdicom's ARTIM timer is its ACSE timeout
    ae.dimse_timeout = timeouts.dimse
    ae.network_timeout = timeouts.network

    def accepted(event) -> None:
        event.assoc.acse_timeout = timeouts.acse

    server = ae.make_server(address, evt_handlers=[*handlers, (evt.EVT_ACCEPTED, accepted)],
                            server_class=server_class())
    server.per_peer, server.maximum, server.tls_context, server.timeouts = per_peer, maximum, tls_context, timeouts
    if on_refused:
        server.on_refused = on_refused
    if on_tls_failure:
        server.on_tls_failure = on_tls_failure
    ae._servers.append(server)
    if block:
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            server.shutdown()
        return None
    thread = threading.Thread(target=server.serve_forever, name="pyjpip-store-scp-accept", daemon=True)
    thread.start()
    return server
