"""Start pyjpip's servers for tests: the dev server in a thread, the production command
(`pyjpip serve --workers N`, gunicorn) as a process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

from pyjpip.transport.http_server import make_server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port: int, process=None, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


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

    def __init__(self, root, static=None, workers=2, sessions=None, extra=()):
        self.port = free_port()
        command = [sys.executable, "-m", "pyjpip", "serve", str(root), "--workers", str(workers),
                   "--port", str(self.port), *extra]
        if static:
            command += ["--static", str(static)]
        if sessions:
            command += ["--sessions", str(sessions)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
        wait_for(self.port, self.process)
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
def production(root, static=None, workers=2, sessions=None, extra=()):
    server = Production(root, static, workers, sessions, extra)
    try:
        yield server
    finally:
        server.stop()
