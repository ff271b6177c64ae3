"""Errors have kinds a caller acts on without reading messages (pyjpip.errors): the viewer's worker falls
back to an ordinary object on "not-hollow", drops "superseded", offers Retry on "network". The kinds
come from real failures here: the demo's ordinary object, a hollow object cut short or without its
URL, a malformed JPP-stream, a bad request."""

import pydicom
import pytest

from pyjpip.dicom.hollow import read_hollow, write_hollow
from pyjpip.errors import PyjpipError, Superseded, TransportError, describe, error_kind
from pyjpip.jpip.client_cache import DataBinCache
from pyjpip.jpip.messages import JPPStreamParser
from pyjpip.jpip.request import parse_query

URL = "http://pacs.example/jpip?target=ct.j2k"


def kind_of(call) -> str:
    with pytest.raises(PyjpipError) as caught:
        call()
    return caught.value.kind


def test_an_ordinary_object_and_other_bytes_are_not_hollow(demo_data):
    ordinary = (demo_data / "ct_phantom_2048.dcm").read_bytes()
    assert kind_of(lambda: read_hollow(ordinary, "ct.dcm")) == "not-hollow"
    assert kind_of(lambda: read_hollow(b"<html></html>" * 20, "index.html")) == "not-hollow"


def test_a_hollow_object_that_breaks_its_rules_is_damaged(demo_data):
    ds = pydicom.dcmread(demo_data / "ct_phantom_2048.dcm", stop_before_pixels=True)
    hollow = write_hollow(ds, URL)
    assert read_hollow(hollow).url == URL
    assert kind_of(lambda: read_hollow(hollow[: len(hollow) - 7], "cut.dcm")) == "damaged"
    without_url = hollow.replace(URL.encode(), b"x" * len(URL))  # not http(s): a malformed Pixel Data Provider URL
    assert kind_of(lambda: read_hollow(without_url, "no-url.dcm")) == "damaged"


def test_a_malformed_jpp_stream_is_damaged_and_a_bad_request_invalid():
    def parse_bad_stream():
        parser = JPPStreamParser()
        cache = DataBinCache()
        for message in parser.feed(b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01"):  # a VBAS too long
            cache.add(message)
        parser.finish()

    assert kind_of(parse_bad_stream) == "damaged"
    assert kind_of(lambda: parse_query("target=a.j2k&fsiz=10,ten")) == "invalid"


def test_kinds_of_other_failures_and_what_the_page_is_told():
    assert Superseded("http://x/jpip").kind == "superseded"
    assert error_kind(ConnectionResetError("reset")) == "network"
    assert error_kind(KeyError("x")) == "internal"
    try:
        raise TransportError("http://x/jpip: HTTP 503")
    except TransportError as error:
        report = describe(error)
    assert report["kind"] == "network" and report["message"] == "http://x/jpip: HTTP 503"
    assert report["type"] == "TransportError" and "Traceback" in report["detail"]
