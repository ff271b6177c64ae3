"""The JPIP client core (pyjpip.jpip.client) fed bytes by hand, no server: the requests it asks
for, channels (JPIP-cnew, cid, qid, cclose), the window as served (JPIP-fsiz/roff/rsiz/layers/comps,
15444-9 D.2), the cache it fills from a JPP-stream in pieces of any size, and its recoveries."""

from urllib.parse import parse_qsl, urlsplit

import pytest

from pyjpip.codestream.source import JPEG2000Source
from pyjpip.jpip.client import JPIPClient, ViewWindow
from pyjpip.jpip.messages import EndOfResponseReason, MessageEncoder
from pyjpip.jpip.picture import rebuild_served, rebuild_view
from pyjpip.jpip.response_headers import ResponseHeaderError

URL = "http://jpip.example/jpip?target=image.j2k"
WINDOW = ViewWindow(fsiz=(640, 480), roff=(10, 20), rsiz=(300, 200), layers=2)
PRECINCT = bytes(range(90))


def fields(request) -> dict:
    query = request.body.decode() if request.method == "POST" else urlsplit(request.url).query
    return dict(parse_qsl(query, keep_blank_values=True))


def jpp_stream(main_header: bytes, reason=EndOfResponseReason.WINDOW_DONE) -> bytes:
    """A main header and precinct 4 in two messages (the second inheriting class and codestream), EOR."""
    encoder = MessageEncoder()
    return (encoder.header(6, 0, 0, 0, len(main_header), True) + main_header
            + encoder.header(0, 0, 4, 0, 40, False) + PRECINCT[:40]
            + encoder.header(0, 0, 4, 40, 50, True) + PRECINCT[40:]
            + MessageEncoder.end_of_response(reason))


@pytest.fixture(scope="module")
def main_header(conformance_files) -> bytes:
    """p0_04's main header (640 x 480, 6 levels): a real one, so pictures can be rebuilt."""
    source = JPEG2000Source(next(p for p in conformance_files if p.name == "p0_04.j2k").read_bytes())
    return bytes(source.databins(0).main_header().read(source.codestream(0).data))


def answer(client: JPIPClient, body: bytes, headers: dict, piece: int = 7, status: int = 200):
    summary = client.receive_headers(status, headers)
    for start in range(0, len(body), piece):
        client.receive_body(body[start : start + piece])
    assert client.end_of_body() is summary
    return summary


def test_a_first_request_asks_for_a_channel_and_states_the_window():
    client = JPIPClient(URL)
    request = client.next_request(WINDOW)
    assert request.method == "GET" and urlsplit(request.url).path == "/jpip"
    assert fields(request) == {"target": "image.j2k", "cnew": "http", "type": "jpp-stream", "fsiz": "640,480",
                               "roff": "10,20", "rsiz": "300,200", "layers": "2"}
    rounding = fields(JPIPClient(URL, stateless=True).next_request(ViewWindow(fsiz=(64, 48), round="closest")))
    assert rounding["fsiz"] == "64,48,closest" and "cnew" not in rounding


def test_a_granted_channel_is_followed_and_the_cache_filled(main_header):
    client = JPIPClient(URL)
    client.next_request(WINDOW)
    summary = answer(client, jpp_stream(main_header), {"JPIP-cnew": "cid=C1,path=jpip/channel,transport=http",
                                                       "JPIP-tid": "T1", "Pyjpip-Codestream-Length": "9000"})
    assert (client.cid, client.channel_path, client.tid, client.codestream_length) == ("C1", "jpip/channel", "T1", 9000)
    assert summary.reason == EndOfResponseReason.WINDOW_DONE and not summary.more and summary.answered is None
    assert client.cache.prefix((6, 0, 0)) == main_header and client.cache.complete((6, 0, 0))
    assert client.cache.prefix((0, 0, 4)) == PRECINCT and client.cache.complete((0, 0, 4))
    assert summary.new_bytes == client.bytes_new == client.bytes_received == len(main_header) + len(PRECINCT)
    assert client.body_bytes == len(jpp_stream(main_header))
    # On the channel: its path, cid and qid; the target and model= stay out (the server keeps the model).
    following = client.next_request(WINDOW)
    assert urlsplit(following.url).path == "/jpip/channel"
    assert fields(following) == {"cid": "C1", "qid": "1", "fsiz": "640,480", "roff": "10,20", "rsiz": "300,200",
                                 "layers": "2"}
    assert fields(client.next_request(WINDOW))["qid"] == "2"
    closing = client.close_request()
    assert fields(closing) == {"cid": "C1", "cclose": "C1"} and client.cid is None


def test_a_repeated_message_is_kept_once_and_counted_as_received(main_header):
    client = JPIPClient(URL, stateless=True)
    for _ in range(2):
        client.next_request(WINDOW)
        answer(client, jpp_stream(main_header), {"JPIP-tid": "T1"}, piece=1)
    assert client.bytes_received == 2 * client.bytes_new


def test_the_served_window_is_read_and_pictures_follow_it(main_header):
    """A server that serves less than asked says so (D.2); the picture is then of what was served."""
    client = JPIPClient(URL)
    client.next_request(WINDOW)
    summary = answer(client, jpp_stream(main_header), {"JPIP-fsiz": "320,240", "JPIP-roff": "5,10",
                                                       "JPIP-rsiz": "150,100", "JPIP-layers": "1", "JPIP-comps": "0"})
    served = ViewWindow(fsiz=(320, 240), roff=(5, 10), rsiz=(150, 100), comps="0", layers=1)
    assert summary.answered == served and client.served(WINDOW) == served
    other = ViewWindow(fsiz=(64, 48))
    assert client.served(other) == other  # nothing was said about it
    as_asked = rebuild_view(client.cache, 0, WINDOW)
    picture = rebuild_served(client, WINDOW)
    assert (as_asked.reduce, as_asked.frame, as_asked.frame_region) == (0, (640, 480), (10, 20, 310, 220))
    assert (picture.reduce, picture.frame, picture.frame_region) == (1, (320, 240), (5, 10, 155, 110))
    assert picture.region == (10, 20, 310, 220)  # the same place on the reference grid
    # The next answer to the same window says nothing: it is served as asked again.
    client.next_request(WINDOW)
    assert answer(client, MessageEncoder.end_of_response(2), {}).answered is None
    assert client.served(WINDOW) == WINDOW


@pytest.mark.parametrize("header, value", [
    ("JPIP-fsiz", "320"), ("JPIP-fsiz", "0,240"), ("JPIP-roff", "-5,10"), ("JPIP-rsiz", "a,b"),
    ("JPIP-layers", "many"), ("JPIP-comps", "2-1"),
])
def test_a_malformed_window_header_is_a_typed_error_naming_it(header, value):
    client = JPIPClient(URL)
    client.next_request(WINDOW)
    with pytest.raises(ResponseHeaderError, match=header) as error:
        client.receive_headers(200, {header: value})
    assert error.value.header == header


def test_a_lost_connection_reopens_a_session_told_what_is_held(main_header):
    client = JPIPClient(URL)
    client.next_request(WINDOW)
    summary = client.receive_headers(200, {"JPIP-cnew": "cid=C1,transport=http", "JPIP-tid": "T1"})
    client.receive_body(jpp_stream(main_header)[: len(main_header) + 30])  # cut short
    assert summary.reason is None and summary.more
    client.connection_lost()
    assert client.cid is None
    again = fields(client.next_request(WINDOW))
    held = len(client.cache.prefix((0, 0, 4)))
    assert 0 < held < 40  # a message's bytes are kept as they come, before it ends
    assert again["cnew"] == "http" and again["tid"] == "T1" and again["model"] == f"[0],Hm,P4:{held}"
    assert "cid" not in again


def test_abandon_closes_the_channel_and_keeps_what_arrived(main_header):
    client = JPIPClient(URL)
    assert client.abandon() is None  # no channel yet: nothing to close
    client.next_request(WINDOW)
    client.receive_headers(200, {"JPIP-cnew": "cid=C2,transport=http", "JPIP-tid": "T1"})
    client.receive_body(jpp_stream(main_header)[:-3])
    closing = client.abandon()
    assert fields(closing) == {"cid": "C2", "cclose": "C2"} and client.cid is None
    assert client.cache.complete((6, 0, 0)) and client.cache.complete((0, 0, 4))
    assert fields(client.next_request(WINDOW))["model"] == "[0],Hm,P4"


def test_503_recoveries_and_refusals():
    client = JPIPClient(URL)
    client.next_request(WINDOW)
    client.receive_headers(200, {"JPIP-cnew": "cid=C3,transport=http"})
    client.receive_body(MessageEncoder.end_of_response(2))
    client.next_request(WINDOW)
    lost = client.receive_headers(503, {})
    assert lost.retry and client.cid is None and not client.stateless  # the channel is gone: a new one
    client.next_request(WINDOW)
    refused = client.receive_headers(503, {})
    assert refused.retry and client.stateless  # no session granted: go on without one
    assert "cnew" not in fields(client.next_request(WINDOW))
    client.next_request(WINDOW)
    bad = answer(client, b"window out of range", {}, status=400)
    assert bad.status == 400 and not bad.retry and not bad.more


def test_a_new_target_id_empties_the_cache_and_a_channel_without_grant_goes_stateless(main_header):
    client = JPIPClient(URL)
    client.next_request(WINDOW)
    answer(client, jpp_stream(main_header), {"JPIP-tid": "T1"})
    assert client.stateless and client.cache.bytes  # cnew asked, nothing granted
    client.next_request(WINDOW)
    answer(client, MessageEncoder.end_of_response(2), {"JPIP-tid": "T2"})
    assert client.tid == "T2" and not client.cache.bytes


def test_a_stream_named_by_the_url_is_repeated_on_the_channel_only():
    client = JPIPClient("http://jpip.example/jpip?target=study.dcm&stream=3")
    first = fields(client.next_request(ViewWindow(fsiz=(64, 64))))
    assert first["stream"] == "3" and first["target"] == "study.dcm"  # the URL's own query, once
    client.receive_headers(200, {"JPIP-cnew": "cid=C4,transport=http"})
    following = fields(client.next_request(ViewWindow(fsiz=(64, 64))))
    assert following["stream"] == "3" and "target" not in following
    assert client.stream_of(ViewWindow()) == 3 and client.stream_of(ViewWindow(stream=5)) == 5


def test_long_models_go_by_post():
    client = JPIPClient(URL, stateless=True)
    encoder = MessageEncoder()
    body = b"".join(encoder.header(0, 0, i, 0, 1, True) + b"x" for i in range(0, 3000, 3))
    client.next_request(WINDOW)
    answer(client, body + MessageEncoder.end_of_response(2), {}, piece=4096)
    request = client.next_request(WINDOW)
    assert request.method == "POST" and request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    model = fields(request)["model"].split(",")
    assert model[0] == "[0]" and sorted(model[1:]) == sorted(f"P{i}" for i in range(0, 3000, 3))
