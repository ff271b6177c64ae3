"""Request fields (15444-9 Annex C): parsed per field after percent-decoding; errors say which and why."""

import pytest

from pyjpip.jpip.request import CLOSEST, ROUND_DOWN, ROUND_UP, RequestError, SampledRange, parse_query


def test_view_window_fields():
    request = parse_query("target=a%2Fb.jp2&fsiz=640,480,closest&roff=10,20&rsiz=100,50&comps=0,2-3&layers=3")
    assert request.target == "a/b.jp2"
    assert request.fsiz == (640, 480, CLOSEST) and request.roff == (10, 20) and request.rsiz == (100, 50)
    assert request.comps == ((0, 0), (2, 3)) and request.layers == 3
    assert parse_query("fsiz=1,2").fsiz == (1, 2, ROUND_DOWN)
    assert parse_query("fsiz=1,2,round-up").fsiz == (1, 2, ROUND_UP)


def test_streams_with_ranges_and_sampling():
    request = parse_query("stream=0,3-7:2,10-")
    assert request.stream == (SampledRange(0, 0), SampledRange(3, 7, 2), SampledRange(10, None))
    assert list(request.stream[1].values(100)) == [3, 5, 7]
    assert list(request.stream[2].values(13)) == [10, 11, 12]


def test_channel_fields():
    request = parse_query("cnew=http,http-tcp&qid=7&tid=0")
    assert request.cnew == ("http", "http-tcp") and request.qid == 7 and request.tid == "0"
    assert parse_query("cid=abc&cclose=*").cclose == ("*",)


def test_type_lists_and_media_type_form():
    assert parse_query("type=jpt-stream,image/jpp-stream").type == ("jpt-stream", "image/jpp-stream")


def test_model_explicit_implicit_subtractive_and_qualified():
    request = parse_query("model=Hm,H*,M0,P12:300,-P5,[1-2],P7:L2,t0c1r2p3-4:L1,-H3:10")
    items = request.model
    assert [(i.kind, i.identifier, i.subtractive) for i in items] == [
        ("Hm", 0, False), ("H", None, False), ("M", 0, False), ("P", 12, False), ("P", 5, True),
        ("P", 7, False), ("implicit", None, False), ("H", 3, True)]
    assert items[3].byte_limit == 300 and items[5].layer_limit == 2
    assert items[5].codestreams == (SampledRange(1, 2),) and items[0].codestreams is None
    assert items[6].implicit == {"t": (0, 0), "c": (1, 1), "r": (2, 2), "p": (3, 4)}


def test_percent_encoded_model_and_metareq():
    request = parse_query("model=%5B0%5D%2CHm&metareq=%5B*%5D!!")
    assert request.model[0].kind == "Hm" and request.metadata_only


@pytest.mark.parametrize("query, status, words", [
    ("fsiz=1,2&fsiz=3,4", 400, "more than once"),
    ("target=x&frobnicate=1", 400, "unknown request field 'frobnicate'"),
    ("fsiz=12", 400, "fsiz"),
    ("fsiz=1,2,sideways", 400, "round direction"),
    ("fsiz=-5,3", 400, "unsigned"),
    ("roff=1,2", 400, "only valid with fsiz"),
    ("stream=5-2", 400, "backwards"),
    ("stream=1:0", 400, "sampling factor"),
    ("layers=99999999999", 400, "malformed"),
    ("model=Q5", 400, "not a bin descriptor"),
    ("model=t0p1:50", 400, "only layer limits"),
    ("model=H3:L2", 400, "only applies to precincts"),
    ("cclose=*", 400, "needs the cid"),
    ("cid=abc&cnew=http", 501, "second channel"),
    ("tpmodel=T0", 501, "not supported"),
    ("context=jpxl%3C0-2%3E", 501, "contexts are not served"),
    ("pref=fvsize:1024/r", 501, "required"),
    ("quality=101", 400, "0 to 100"),
    ("align=maybe", 400, "yes or no"),
    ("target", 400, "no '='"),
    ("target=%ff%fe", 400, "not valid text"),
    ("&".join(f"qid={i}" for i in range(100)), 400, "at most 64"),
])
def test_bad_requests_get_the_right_status_and_say_why(query, status, words):
    with pytest.raises(RequestError) as caught:
        parse_query(query)
    assert caught.value.status == status and words in str(caught.value), str(caught.value)


def test_long_context_lists_split_in_one_pass():
    """context= was split by a regex whose lookahead scanned to the end for every comma: 150,000
    commas (a 300 KB POST body) took about 12 s (found by tests/hardening.py). Still split as
    before, commas inside <..> kept."""
    import time

    from pyjpip.jpip.request import _split_contexts

    started = time.perf_counter()
    for value in ("," * 150_000, "0," * 150_000, "%2C" * 150_000):
        with pytest.raises(RequestError) as caught:
            parse_query("context=" + value)
        assert caught.value.status == 400
    assert time.perf_counter() - started < 10
    with pytest.raises(RequestError) as caught:
        parse_query("context=jpxl<0-2,4>;mjpl<1>,jpxl<7>[s0i0]")
    assert caught.value.status == 501
    assert _split_contexts("a<1,2>,b;c<>,") == ["a<1,2>", "b", "c<>", ""]
