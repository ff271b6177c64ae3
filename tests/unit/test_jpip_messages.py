"""JPP-stream messages (15444-9 A.2, D.3): VBAS, Bin-IDs, inheritance, EOR, incremental parsing."""

import random

import pytest

from pyjpip.jpip.messages import EndOfResponse, JPPStreamParser, Message, MessageEncoder
from pyjpip.jpip.vbas import JPPStreamError, decode_vbas, encode_vbas


@pytest.mark.parametrize("value, encoded", [
    (0, b"\x00"), (127, b"\x7f"), (128, b"\x81\x00"), (300, b"\x82\x2c"), (2**21, b"\x81\x80\x80\x00"),
])
def test_vbas_groups_seven_bits_with_continuation(value, encoded):
    assert encode_vbas(value) == encoded
    assert decode_vbas(encoded, 0) == (value, len(encoded))


def test_vbas_too_long_and_cut_short():
    assert decode_vbas(b"\x81\x80", 0) is None  # needs more bytes
    with pytest.raises(JPPStreamError, match="longer than 9 bytes"):
        decode_vbas(b"\x81" * 10 + b"\x00", 0)


def test_bin_id_forms_follow_table_a1():
    encoder = MessageEncoder()
    # First message of a response: class and codestream stated (bb = 11), id 5 fits in 4 bits.
    assert encoder.header(6, 0, 0, 0, 10, True) == bytes([0b0111_0000, 6, 0, 0, 10])
    # Same class and codestream: both inherited (bb = 01).
    assert encoder.header(6, 0, 5, 0, 3, False)[0] == 0b0010_0101
    # New class, same codestream: class only (bb = 10).
    header = encoder.header(0, 0, 20, 7, 1, False)
    assert header[0] >> 5 & 3 == 2 and header[0] & 0x80  # id 20 needs a second byte
    # Codestream change always restates both (there is no codestream-only form).
    assert encoder.header(0, 3, 1, 0, 1, False)[0] >> 5 & 3 == 3


def test_odd_classes_carry_aux():
    encoder = MessageEncoder()
    header = encoder.header(1, 0, 2, 0, 4, False, aux=9)
    parser = JPPStreamParser()
    (message,) = parser.feed(header + b"abcd")
    assert message.aux == 9 and message.bin_class == 1
    with pytest.raises(ValueError):
        encoder.header(5, 0, 0, 0, 0, True)


def stream_of(messages, reason=2):
    encoder = MessageEncoder()
    out = bytearray()
    for m in messages:
        out += encoder.header(m.bin_class, m.codestream, m.identifier, m.offset, len(m.data), m.complete) + m.data
    return bytes(out) + MessageEncoder.end_of_response(reason)


MESSAGES = [Message(8, 0, 0, 0, b"", True), Message(6, 0, 0, 0, b"main header!", True),
            Message(2, 0, 0, 0, b"", True), Message(0, 0, 0, 0, b"x" * 300, False),
            Message(0, 0, 2**40, 17, b"far id", True), Message(0, 2, 7, 0, b"other codestream", False),
            Message(6, 2, 0, 0, b"hdr", True), Message(0, 0, 1, 0, b"back to codestream 0", True)]


def test_round_trip_in_one_piece():
    events = JPPStreamParser().feed(stream_of(MESSAGES))
    assert events[:-1] == MESSAGES and events[-1] == EndOfResponse(2)


def test_any_split_gives_the_same_bytes_per_bin():
    data = stream_of(MESSAGES, reason=4)
    rng = random.Random(7)
    for _ in range(200):
        parser, events, position = JPPStreamParser(), [], 0
        while position < len(data):
            step = rng.randint(1, 40)
            events += parser.feed(data[position : position + step])
            position += step
        parser.finish()
        joined = {}
        for event in events[:-1]:
            held = joined.setdefault((event.bin_class, event.codestream, event.identifier), bytearray())
            assert event.offset == len(held) + [m.offset for m in MESSAGES if
                                                 (m.bin_class, m.codestream, m.identifier) ==
                                                 (event.bin_class, event.codestream, event.identifier)][0]
            held += event.data
        assert {k: bytes(v) for k, v in joined.items()} == {(m.bin_class, m.codestream, m.identifier): m.data
                                                           for m in MESSAGES}
        assert events[-1] == EndOfResponse(4)
        completes = [e for e in events[:-1] if e.complete]
        assert len(completes) == sum(m.complete for m in MESSAGES)


@pytest.mark.parametrize("data, message", [
    (b"\x05\x00", "prohibited"),  # bb = 00 with a non-zero first byte
    (bytes([0x70, 3, 0, 0, 0]), "unknown data-bin class 3"),
])
def test_malformed_streams_are_refused(data, message):
    with pytest.raises(JPPStreamError, match=message):
        JPPStreamParser().feed(data)


def test_cut_stream_and_trailing_bytes_are_errors():
    data = stream_of(MESSAGES)
    parser = JPPStreamParser()
    parser.feed(data[:40])
    with pytest.raises(JPPStreamError, match="ends inside a message"):
        parser.finish()
    parser = JPPStreamParser()
    parser.feed(data)
    with pytest.raises(JPPStreamError, match="after the end-of-response"):
        parser.feed(b"\x20")
