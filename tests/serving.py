"""Start pyjpip's servers for tests: the dev server in a thread, the production command
(`pyjpip serve --workers N`: gunicorn with uvicorn workers) as a process; route a client's requests."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

from network_support import free_port, wait_for_port
from pyjpip.transport.http_server import make_server


@contextmanager
def dev_server(root=None, static=None, **options):
    server = make_server(str(static) if static else None, "127.0.0.1", 0,
                         jpip_root=str(root) if root else None, **options)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[:2]
    finally:
        server.shutdown()
        server.server_close()


class Production:
    """`pyjpip serve ROOT --workers N` on a free port; ``workers()`` are the worker pids."""

    def __init__(self, root, static=None, workers=2, sessions=None, extra=(), port=None):
        self.port = port or free_port()
        command = [sys.executable, "-m", "pyjpip", "serve", str(root), "--workers", str(workers),
                   "--port", str(self.port), *extra]
        if static:
            command += ["--static", str(static)]
        if sessions:
            command += ["--sessions", str(sessions)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
        wait_for_port(self.port, self.process)
        self.count = workers
        self.wait_workers()

    @property
    def address(self):
        return ("127.0.0.1", self.port)

    def workers(self) -> list[int]:
        try:
            with open(f"/proc/{self.process.pid}/task/{self.process.pid}/children") as f:
                return [int(p) for p in f.read().split()]
        except FileNotFoundError:
            return []

    def wait_workers(self, old: set[int] = frozenset(), seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            pids = set(self.workers())
            if len(pids) == self.count and not pids & old:
                return
            time.sleep(0.05)
        raise TimeoutError(f"gunicorn has workers {self.workers()}, wanted {self.count} new ones")

    def kill_worker(self, pid: int) -> None:
        os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@contextmanager
def production(root, static=None, workers=2, sessions=None, extra=(), port=None):
    server = Production(root, static, workers, sessions, extra, port)
    try:
        yield server
    finally:
        server.stop()


class Routed:
    """A transport for pyjpip's client that sends each request to the next of ``ports`` in turn, as a
    load balancer with no stickiness would, and counts where they went. ``on_bytes(n)`` runs after
    each piece of a body is read (a test cuts a response there)."""

    def __init__(self, ports, on_bytes=None, receive_buffer: int | None = None):
        from pyjpip.transport.http_client import HTTPTransport

        self.receive_buffer = receive_buffer  # a small window keeps the server writing (and killable) mid-response
        self.ports = list(ports)
        self.turn = 0
        self.inner = HTTPTransport(timeout=30, on_bytes=on_bytes)
        self.used: dict[int, int] = {}
        self.queries: list[str] = []
        self.port = None

    def __call__(self, request, client):
        from urllib.parse import urlsplit, urlunsplit

        self.port = self.ports[self.turn % len(self.ports)]
        self.turn += 1
        self.used[self.port] = self.used.get(self.port, 0) + 1
        parts = urlsplit(request.url)
        request.url = urlunsplit(parts._replace(netloc=f"127.0.0.1:{self.port}"))
        self.queries.append(parts.query or (request.body or b"").decode())
        key = ("http", f"127.0.0.1:{self.port}")
        if self.receive_buffer and key not in self.inner.connections:
            self.inner.connections[key] = _SmallWindow(key[1], timeout=30, receive_buffer=self.receive_buffer)
        return self.inner(request, client)

    def local_port(self) -> int:
        """This side's port of the connection to the server last asked."""
        connection = self.inner.connections[("http", f"127.0.0.1:{self.port}")]
        return connection.sock.getsockname()[1]

    def close(self):
        self.inner.close()


def server_end(server_port: int, client_port: int) -> tuple[str, str] | None:
    """The server's end of a loopback TCP connection as /proc/net/tcp lists it: (state, inode); None
    once it is gone. States: 01 established, 04 FIN-WAIT-1 (closed by the server, bytes still queued)."""
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            local, remote = fields[1].split(":")[1], fields[2].split(":")[1]
            if local == f"{server_port:04X}" and remote == f"{client_port:04X}":
                return fields[3], fields[9]
    return None


def server_pid(server_port: int, client_port: int) -> int:
    """The process holding the server's end of a loopback TCP connection (from /proc, as ss -p does)."""
    end = server_end(server_port, client_port)
    if end is None:
        raise LookupError(f"no connection from {client_port} to {server_port}")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{end[1]}]":
                    return int(pid)
        except OSError:
            continue
    raise LookupError(f"no process holds socket {end[1]}")


class _SmallWindow(http.client.HTTPConnection):
    def __init__(self, *args, receive_buffer: int, **kwargs):
        self.receive_buffer = receive_buffer
        super().__init__(*args, **kwargs)

    def connect(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer)
        self.sock.settimeout(self.timeout)
        self.sock.connect((self.host, self.port))
