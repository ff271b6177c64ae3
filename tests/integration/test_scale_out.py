"""Many workers, many machines, and the faults between them: a JPIP session keeps working, with nothing
sent twice, wherever its requests land and whatever dies under it. Every server is the production
command (`pyjpip serve --workers N`, gunicorn) in a process of its own, over loopback; every picture
is checked against opj_decompress of the file."""

import os
import shutil
import signal
import socket
import threading

import pytest

from pyjpip.jpip.client import JPIPClient, ViewWindow, fetch_window
from pyjpip.jpip.picture import rebuild_served
from reference import opj_decode_all
from serving import Routed, production, server_pid

pytestmark = pytest.mark.cpython_only

#: A session's views of a 2048² CT: fitted, two overlapping zoomed regions, then all of it. len keeps
#: each response short, so every view takes several requests and they spread over the servers.
VIEWS = [ViewWindow(fsiz=(512, 512)),
         ViewWindow(fsiz=(2048, 2048), roff=(0, 0), rsiz=(700, 600)),
         ViewWindow(fsiz=(2048, 2048), roff=(500, 400), rsiz=(700, 600)),
         ViewWindow(fsiz=(2048, 2048))]
WHOLE = VIEWS[-1]


@pytest.fixture()
def root(tmp_path, demo_data, conformance_files):
    folder = tmp_path / "images"
    folder.mkdir()
    shutil.copy(demo_data / "ct_phantom_2048.j2k", folder / "ct.j2k")
    shutil.copy(next(p for p in conformance_files if p.name == "p0_09.j2k"), folder / "other.j2k")
    return folder


@pytest.fixture(scope="module")
def expected(demo_data):
    return opj_decode_all((demo_data / "ct_phantom_2048.j2k").read_bytes())


@pytest.fixture(scope="module")
def noise(tmp_path_factory):
    """A 2048² 16-bit lossless codestream of noise (8 MB): larger than what the kernel buffers on
    loopback, so a worker is still writing it when the client has read its first piece."""
    import numpy as np
    from reference import opj_encode

    plane = np.random.default_rng(14).integers(0, 1 << 16, (2048, 2048), dtype=np.uint16)
    data = opj_encode([plane], 16, ["-c", "[128,128]", "-p", "RPCL", "-n", "4"])
    return data, opj_decode_all(data)


def assert_exact_and_nothing_twice(client: JPIPClient, expected, whole: ViewWindow = WHOLE) -> None:
    assert client.bytes_received == client.bytes_new, \
        f"{client.bytes_received - client.bytes_new} bytes were received twice"
    view = rebuild_served(client, whole)
    assert view.rebuilt.packets_present == view.rebuilt.packets_total
    assert opj_decode_all(view.codestream) == expected


def sessions_opened(route: Routed) -> int:
    return sum("cnew=http" in q for q in route.queries)


def test_a_session_is_answered_by_any_of_four_workers(root, tmp_path, expected):
    """Four servers (think four hosts) share the session folder; each request goes to the next one."""
    sessions = tmp_path / "sessions"
    servers = [production(root, workers=1, sessions=sessions) for _ in range(4)]
    running = [s.__enter__() for s in servers]
    try:
        route = Routed([s.port for s in running])
        client = JPIPClient(f"http://127.0.0.1:{running[0].port}/jpip?target=ct.j2k", length_limit=150_000)
        for view in VIEWS:
            fetch_window(client, view, route)
        assert sessions_opened(route) == 1 and client.cid is not None  # one session all along
        assert len(route.used) == 4 and min(route.used.values()) >= 3, route.used
        assert_exact_and_nothing_twice(client, expected)
    finally:
        for s in servers:
            s.__exit__(None, None, None)


def test_a_worker_killed_mid_response_costs_nothing_twice(root, tmp_path, noise):
    """SIGKILL to the worker that is streaming: gunicorn starts another, the client reopens with
    model= (it cannot know what the dead worker recorded as sent) and gets only what it lacks."""
    killed = []

    def kill_the_worker(_):
        if not killed and route.port is not None:
            pid = server_pid(server.port, route.local_port())
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    with production(root, workers=2, sessions=tmp_path / "sessions") as server:
        (root / "noise.j2k").write_bytes(noise[0])
        route = Routed([server.port], on_bytes=kill_the_worker, receive_buffer=32768)
        client = JPIPClient(f"http://127.0.0.1:{server.port}/jpip?target=noise.j2k")
        fetch_window(client, WHOLE, route)
        assert killed
        server.wait_workers(old={killed[0]})  # gunicorn replaced it
        assert_exact_and_nothing_twice(client, noise[1])
        assert sessions_opened(route) == 2


def test_a_restarted_server_forgets_sessions_in_memory_and_the_client_loses_nothing(root, expected):
    """Sessions in each worker's memory (no --sessions): a whole restart in the middle of a session.
    The client's channel is answered 503; it opens a new session told with model= what it holds."""
    with production(root, workers=2) as server:
        port = server.port
        route = Routed([port])
        client = JPIPClient(f"http://127.0.0.1:{port}/jpip?target=ct.j2k", length_limit=200_000)
        fetch_window(client, VIEWS[0], route)
        fetch_window(client, VIEWS[1], route)
        held = client.bytes_new
    with production(root, workers=2, port=port):
        for view in VIEWS[2:]:
            fetch_window(client, view, route)
        assert client.bytes_new > held and sessions_opened(route) == 2
        assert_exact_and_nothing_twice(client, expected)


class Cutter:
    """A loopback TCP relay in front of a server that drops the first connection after ``cut`` bytes
    of the answer (mid-message, mid-chunk), then relays faithfully."""

    def __init__(self, port: int, cut: int):
        self.port, self.cut = port, cut
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = self.listener.getsockname()
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                downstream, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.port))
            cut = self.cut if self.cuts == 0 else None
            self.cuts += cut is not None
            threading.Thread(target=self._pipe, args=(downstream, upstream, None), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, downstream, cut), daemon=True).start()

    @staticmethod
    def _pipe(source, sink, cut):
        sent = 0
        try:
            while data := source.recv(65536):
                if cut is not None and sent + len(data) >= cut:
                    sink.sendall(data[: cut - sent])
                    break
                sink.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self.listener.close()


def test_a_connection_dropped_mid_chunk_costs_nothing_twice(root, tmp_path, expected):
    with production(root, workers=2, sessions=tmp_path / "sessions") as server:
        cutter = Cutter(server.port, cut=1_000_003)
        try:
            route = Routed([cutter.address[1]])
            client = JPIPClient(f"http://127.0.0.1:{cutter.address[1]}/jpip?target=ct.j2k")
            fetch_window(client, WHOLE, route)
        finally:
            cutter.close()
        assert cutter.cuts == 1 and sessions_opened(route) == 2
        assert_exact_and_nothing_twice(client, expected)


def test_a_file_replaced_under_a_live_session_starts_over_with_the_new_one(root, tmp_path, demo_data, expected):
    """The tid changes: the client drops what it held of the old file and ends with the new picture."""
    with production(root, workers=2, sessions=tmp_path / "sessions") as server:
        route = Routed([server.port])
        client = JPIPClient(f"http://127.0.0.1:{server.port}/jpip?target=ct.j2k")
        fetch_window(client, VIEWS[0], route)
        old_tid = client.tid
        replacement = root / "ct.j2k.new"
        shutil.copy(root / "other.j2k", replacement)
        os.replace(replacement, root / "ct.j2k")
        small = ViewWindow(fsiz=(17, 37))  # p0_09 is 17x37: all of it
        fetch_window(client, small, route)
        assert client.tid != old_tid and sessions_opened(route) == 1
        view = rebuild_served(client, small)
        assert opj_decode_all(view.codestream) == opj_decode_all((root / "ct.j2k").read_bytes())
        assert client.cache.codestream_bytes(0) <= len((root / "ct.j2k").read_bytes())
