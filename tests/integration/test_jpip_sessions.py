"""Server behaviour over several requests: sessions, len, model=, tid, limits, streams, pre-emption."""

import os
import shutil
import struct
import threading
import time

import pytest

from pyjpip.archive.caches import LRU
from pyjpip.archive.sessions import FolderSessions
from pyjpip.codestream.databins import DataBinClass
from pyjpip.codestream.file_format import SIGNATURE
from pyjpip.codestream.rebuild import rebuild_codestream
from pyjpip.jpip.server import JPIPServer, MessageHeaderCache
from jpip_support import Receiver, request
from reference import opj_decode_all

pytestmark = pytest.mark.cpython_only


@pytest.fixture()
def root(tmp_path, conformance_files, demo_data):
    shutil.copy(demo_data / "ct_phantom_2048.j2k", tmp_path / "ct.j2k")
    for name in ("p0_04.j2k", "p1_05.j2k", "p0_01.j2k", "p0_09.j2k"):
        shutil.copy(next(p for p in conformance_files if p.name == name), tmp_path / name)
    return tmp_path


@pytest.fixture(params=["memory", "folder"])
def servers(request, root, tmp_path):
    """Two answerers of one session: the same server (sessions in its memory), or two servers sharing a
    session folder, as two workers or hosts do. Everything a session does must hold for both."""
    def make(**options):
        if request.param == "memory":
            server = JPIPServer(str(root), **options)
            return server, server
        return tuple(JPIPServer(str(root), sessions=FolderSessions(str(tmp_path / "sessions")), **options)
                     for _ in range(2))
    return make


def cid_of(response) -> str:
    return dict(response.headers)["JPIP-cnew"].split(",")[0].split("=", 1)[1]


def header(response, name):
    return dict(response.headers).get(name)


def test_tiny_len_in_a_session_resumes_at_the_exact_byte(root):
    server = JPIPServer(str(root))
    whole = Receiver()
    _, body = request(server, "target=p0_04.j2k&fsiz=320,240")
    whole.feed_body(body)
    receiver = Receiver()
    response, body = request(server, "target=p0_04.j2k&fsiz=320,240&cnew=http&len=700")
    cid = cid_of(response)
    requests = 1
    while receiver.feed_body(body).reason == 4:
        assert len(body) <= 700 + 3  # len bounds the messages; the EOR comes after
        _, body = request(server, f"cid={cid}&fsiz=320,240&len=700")
        requests += 1
    assert requests > 10 and receiver.duplicates == 0
    assert receiver.bins == whole.bins and receiver.complete == whole.complete


def test_tiny_len_stateless_with_model_never_resends(root):
    server = JPIPServer(str(root))
    receiver = Receiver()
    _, body = request(server, "target=p1_05.j2k&fsiz=256,256&len=900")
    rounds = 1
    while receiver.feed_body(body).reason == 4:
        _, body = request(server, f"target=p1_05.j2k&fsiz=256,256&len=900&model={receiver.model()}")
        rounds += 1
    assert rounds > 5 and receiver.duplicates == 0
    data = (root / "p1_05.j2k").read_bytes()
    rebuilt = rebuild_codestream(*receiver.codestream_bins(), reduce=1)
    assert opj_decode_all(rebuilt.codestream, 1) == opj_decode_all(data, 1)


def test_len_zero_and_len_too_small(root):
    server = JPIPServer(str(root))
    response, body = request(server, "target=p0_01.j2k&fsiz=128,128&len=0")
    assert body == b"\x00\x04\x00" and header(response, "JPIP-len") is None
    response, body = request(server, "target=p0_01.j2k&fsiz=128,128&len=1")
    assert body == b"\x00\x04\x00" and header(response, "JPIP-len") == "64"


def test_overlapping_windows_send_only_new_bytes(servers):
    server, other = servers()
    receiver = Receiver()
    response, body = request(server, "target=ct.j2k&fsiz=2048,2048&roff=0,0&rsiz=700,600&cnew=http")
    cid = cid_of(response)
    receiver.feed_body(body)
    model_after_first = receiver.model()
    _, second = request(other, f"cid={cid}&fsiz=2048,2048&roff=500,400&rsiz=700,600")
    receiver.feed_body(second)
    assert receiver.duplicates == 0
    _, stateless = request(server, f"target=ct.j2k&fsiz=2048,2048&roff=500,400&rsiz=700,600"
                                   f"&model={model_after_first}")
    assert len(stateless) == len(second)  # the session sent exactly what a correct model= leaves


def test_tid_cclose_qid_and_unknown_channels(servers):
    server, other = servers()
    response, _ = request(server, "target=p0_01.j2k&fsiz=64,64&qid=3")
    tid = header(response, "JPIP-tid")
    assert tid and header(response, "JPIP-qid") == "3"
    response, _ = request(server, f"target=p0_01.j2k&fsiz=64,64&tid={tid}")
    assert header(response, "JPIP-tid") is None  # the client's tid is current
    full = Receiver()
    full.feed_body(request(server, "target=p0_01.j2k&fsiz=128,128")[1])
    response, body = request(server, f"target=p0_01.j2k&fsiz=128,128&tid=stale&model={full.model()}")
    assert header(response, "JPIP-tid") == tid and len(body) > 100  # another tid: its model is ignored
    response, _ = request(server, "target=p0_01.j2k&cnew=http&fsiz=64,64")
    cid = cid_of(response)
    response, body = request(other, f"cid={cid}&cclose=*")
    assert response.status == 200
    response, body = request(server, f"cid={cid}&fsiz=64,64")
    assert response.status == 503 and b"does not exist or has been closed" in body


def test_idle_sessions_expire_and_the_cap_answers_503(root):
    server = JPIPServer(str(root), session_limit=2, idle_timeout=60)
    first = server.handle("GET", "target=p0_01.j2k&cnew=http", now=0.0)
    server.handle("GET", "target=p0_01.j2k&cnew=http", now=1.0)
    third = server.handle("GET", "target=p0_01.j2k&cnew=http", now=2.0)
    assert third.status == 503 and b"limit of 2 sessions" in b"".join(third.body)
    cid = cid_of(first)
    assert server.handle("GET", f"cid={cid}", now=30.0).status == 200
    assert server.handle("GET", f"cid={cid}", now=200.0).status == 503
    assert server.handle("GET", "target=p0_01.j2k&cnew=http", now=201.0).status == 200


def test_changed_file_changes_tid_and_resets_the_session_model(root, servers):
    server, other = servers()
    response, body = request(server, "target=p0_01.j2k&fsiz=128,128&cnew=http")
    cid, tid = cid_of(response), header(response, "JPIP-tid")
    shutil.copy(root / "p0_09.j2k", root / "p0_01.j2k")
    os.utime(root / "p0_01.j2k", ns=(1, 1))
    response, body = request(other, f"cid={cid}&fsiz=17,37&tid={tid}")
    assert header(response, "JPIP-tid") not in (None, tid) and len(body) > 50


def test_folder_sessions_expire_when_idle_and_are_capped(root, tmp_path):
    folder = str(tmp_path / "sessions")
    first, second = (JPIPServer(str(root), sessions=FolderSessions(folder), session_limit=2, idle_timeout=0.5)
                     for _ in range(2))
    kept = cid_of(first.handle("GET", "target=p0_01.j2k&cnew=http", now=0.0))
    second.handle("GET", "target=p0_01.j2k&cnew=http", now=0.0)
    third = second.handle("GET", "target=p0_01.j2k&cnew=http", now=0.0)
    assert third.status == 503 and b"limit of 2 sessions" in b"".join(third.body)  # counted over both
    time.sleep(0.8)
    assert second.handle("GET", f"cid={kept}", now=0.0).status == 503  # idle past 0.5 s: gone for both
    assert len(os.listdir(folder)) == 0
    assert first.handle("GET", "target=p0_01.j2k&cnew=http", now=0.0).status == 200


def test_end_of_response_reasons_and_window_headers(root):
    server = JPIPServer(str(root))
    assert request(server, "target=p0_04.j2k&fsiz=640,480")[1].endswith(b"\x00\x01\x00")  # image done
    assert request(server, "target=p0_04.j2k&fsiz=320,240")[1].endswith(b"\x00\x02\x00")  # window done
    response, _ = request(server, "target=p0_04.j2k&fsiz=500,400&layers=99&comps=1-7")
    headers = dict(response.headers)
    assert headers["JPIP-fsiz"] == "320,240" and headers["JPIP-layers"] == "20" and headers["JPIP-comps"] == "1,2"
    response, _ = request(server, "target=p0_04.j2k&fsiz=500,400,round-up")
    assert dict(response.headers)["JPIP-fsiz"] == "640,480"
    response, _ = request(server, "target=p0_04.j2k&fsiz=500,400,closest")
    assert dict(response.headers)["JPIP-fsiz"] == "640,480"  # 307,200 px is closer than 76,800 to 200,000


def test_a_newer_request_pre_empts_a_streaming_one(servers, tmp_path):
    server, other = servers()
    response = server.handle("GET", "target=ct.j2k&fsiz=2048,2048&cnew=http", now=0.0)
    cid = cid_of(response)
    first = next(response.body)  # one 64 kB chunk goes out, then the client changes its mind
    answers = []
    newer_request = threading.Thread(target=lambda: answers.append(other.handle("GET", f"cid={cid}&fsiz=256,256",
                                                                                 now=1.0)))
    newer_request.start()  # another worker: it waits for the channel's turn, the running answer sees it
    turns = tmp_path / "sessions" / f"{cid}.turns"
    while turns.exists() and turns.stat().st_size < 2:
        time.sleep(0.01)
    rest = b"".join(response.body)
    newer_request.join(10)
    (newer,) = answers
    assert rest.endswith(b"\x00\x03\x00") and len(rest) < 100  # EOR 3: window change
    receiver = Receiver()
    receiver.feed_body(first + rest)
    receiver.feed_body(b"".join(newer.body))
    assert receiver.duplicates == 0


def test_a_client_that_leaves_gets_the_undelivered_bytes_again(servers):
    server, other = servers()
    response = server.handle("GET", "target=ct.j2k&fsiz=512,512&cnew=http", now=0.0)
    cid = cid_of(response)
    first = next(response.body)
    second = next(response.body)  # handed to the adapter, which then fails to deliver it
    response.body.close()
    receiver = Receiver()
    parsed = receiver.bins
    from pyjpip.jpip.messages import JPPStreamParser
    parser = JPPStreamParser()
    for message in parser.feed(first):  # only the first chunk arrived
        held = parsed.setdefault((message.bin_class, message.codestream, message.identifier), bytearray())
        if message.offset == len(held):
            held += message.data
            if message.complete:
                receiver.complete.add((message.bin_class, message.codestream, message.identifier))
    again = b"".join(other.handle("GET", f"cid={cid}&fsiz=512,512", now=1.0).body)
    stateless = b"".join(server.handle("GET", f"target=ct.j2k&fsiz=512,512&model={receiver.model()}",
                                       now=1.0).body)
    assert len(again) >= len(second) and len(again) == len(stateless)


def box(kind: bytes, contents: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(contents), kind) + contents


def test_streams_select_codestreams_of_a_jpx(root):
    first, second = (root / "p0_01.j2k").read_bytes(), (root / "p0_09.j2k").read_bytes()
    (root / "two.jpx").write_bytes(SIGNATURE + box(b"ftyp", b"jpx \0\0\0\0jpx ") + box(b"jp2c", first)
                                   + box(b"jp2c", second))
    server = JPIPServer(str(root))
    receiver = Receiver()
    receiver.feed_body(request(server, "target=two.jpx&stream=1&fsiz=17,37")[1])
    assert {n for (_, n, _) in receiver.bins} == {0, 1} and (6, 0, 0) not in receiver.bins
    assert receiver.bins[(6, 1, 0)] == second[: len(receiver.bins[(6, 1, 0)])]
    rebuilt = rebuild_codestream(*receiver.codestream_bins(1))
    assert opj_decode_all(rebuilt.codestream) == opj_decode_all(second)
    receiver = Receiver()
    receiver.feed_body(request(server, "target=two.jpx&stream=0-&fsiz=17,37")[1])
    assert (6, 0, 0) in receiver.bins and (6, 1, 0) in receiver.bins
    response, body = request(server, "target=two.jpx&stream=4")
    assert response.status == 400 and b"has 2 (numbered from 0)" in body
    response, _ = request(server, "target=two.jpx&stream=1-9&fsiz=8,8")
    assert header(response, "JPIP-stream") == "1"


def test_metadata_only_and_return_types(root):
    server = JPIPServer(str(root))
    receiver = Receiver()
    receiver.feed_body(request(server, "target=ct.j2k&metareq=[*]!!&fsiz=256,256")[1])
    assert set(receiver.bins) == {(8, 0, 0), (6, 0, 0)} and (8, 0, 0) in receiver.complete
    assert request(server, "target=ct.j2k&type=jpt-stream")[0].status == 415
    assert request(server, "target=ct.j2k&type=jpt-stream,image/jpp-stream&fsiz=8,8")[0].status == 200


def test_a_session_that_outgrows_its_resources_ends_with_eor_6(servers):
    server, other = servers(session_model_limit=5)
    response, body = request(server, "target=p0_01.j2k&fsiz=16,16&cnew=http")
    cid = cid_of(response)
    assert body.endswith(b"\x00\x02\x00")
    response, body = request(other, f"cid={cid}&fsiz=128,128")
    assert body.endswith(b"\x00\x06\x00")  # served, then the session is over
    assert request(server, f"cid={cid}&fsiz=128,128")[0].status == 503


def test_align_splits_metadata_at_top_level_boxes(root):
    codestream = (root / "p0_01.j2k").read_bytes()
    (root / "one.jp2").write_bytes(SIGNATURE + box(b"ftyp", b"jp2 \0\0\0\0jp2 ") + box(b"jp2c", codestream))
    server = JPIPServer(str(root))
    from pyjpip.jpip.messages import JPPStreamParser
    events = JPPStreamParser().feed(request(server, "target=one.jp2&align=yes&metareq=[*]!!")[1])
    metadata = [e for e in events[:-1] if e.bin_class == 8]
    assert [len(e.data) for e in metadata] == [12, 20, 52]  # signature, ftyp, placeholder
    assert [e.complete for e in metadata] == [False, False, True]


def test_message_headers_are_kept_only_between_packet_boundaries(root):
    """What a client holds may end at any byte: the headers of messages starting there are not kept
    (a client stating a new offset each time would otherwise grow the server without end)."""
    server = JPIPServer(str(root))
    for held in range(1, 120):
        response, body = request(server, f"target=p0_04.j2k&fsiz=640,480&model=P*:{held}")
        assert response.status == 200 and len(body) > 1000
    source, tid = server.store.open("p0_04.j2k")
    bins = source.databins(0)
    kept = list(server.message_headers.store.entries)
    assert kept and all(name[0] == tid for name in kept)
    for _, (bin_class, _, identifier), start, _ in kept:
        assert start == 0 or bin_class == DataBinClass.PRECINCT \
            and start in bins.precinct_by_identifier(identifier).packet_ends
    assert any(start > 0 for *_, start, _ in kept)  # a precinct's later layers are kept too


def test_message_headers_kept_are_bounded(root):
    """Whatever the targets and ranges, the server keeps at most the MessageHeaderCache's size."""
    server = JPIPServer(str(root))
    server.message_headers = MessageHeaderCache(LRU(50))
    for name in ("p0_04.j2k", "p1_05.j2k"):
        for layers in (1, 2, 3):
            response, _ = request(server, f"target={name}&fsiz=640,480&layers={layers}")
            assert response.status == 200
    assert len(server.message_headers.store.entries) == 50


def test_one_client_cannot_take_every_session(servers):
    """One client's 253 cnew took every session of --max-sessions 256: now each client (the token's
    subject, else the peer address) holds at most its share; over it, 503 with Retry-After (the
    client goes on statelessly), while other clients still get sessions, on any worker."""
    server, other = servers(session_limit=256, client_session_limit=4, idle_timeout=60)
    opened = []
    for n in range(4):
        response = (server if n % 2 else other).handle("GET", "target=p0_01.j2k&fsiz=8,8&cnew=http", time.monotonic(),
                                                       client="10.1.1.1")
        b"".join(response.body)
        opened.append(cid_of(response))
    refused = server.handle("GET", "target=p0_01.j2k&fsiz=8,8&cnew=http", time.monotonic(), client="10.1.1.1")
    text = b"".join(refused.body)
    assert refused.status == 503 and b"10.1.1.1 holds 4 sessions" in text, text
    assert int(header(refused, "Retry-After")) > 0
    for client in ("10.1.1.2", "subject:alice"):
        response = other.handle("GET", "target=p0_01.j2k&fsiz=8,8&cnew=http", time.monotonic(), client=client)
        b"".join(response.body)
        assert response.status == 200 and header(response, "JPIP-cnew")
    # A closed session gives its share back.
    request(server, f"cid={opened[0]}&cclose={opened[0]}")
    response = server.handle("GET", "target=p0_01.j2k&fsiz=8,8&cnew=http", time.monotonic(), client="10.1.1.1")
    b"".join(response.body)
    assert response.status == 200 and header(response, "JPIP-cnew")
