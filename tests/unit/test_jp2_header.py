"""pyjpip.codestream.jp2_header on JP2 Header boxes written here field by field (ISO/IEC 15444-1 I.5.3):
the first colr box rules, palette columns of any depth and sign, cmap's mapping, cdef's order,
restricted ICC profiles named by their colour space, damaged boxes said, never raised."""

import struct

from pyjpip.codestream.jp2_header import describe_colour


def box(kind: bytes, contents: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(contents), kind) + contents


def jp2(*inner: bytes) -> bytes:
    return box(b"jP  ", b"\r\n\x87\n") + box(b"ftyp", b"jp2 \x00\x00\x00\x00jp2 ") + box(b"jp2h", b"".join(inner))


def ihdr(components: int, bits: int = 8) -> bytes:
    return box(b"ihdr", struct.pack(">IIHBBBB", 4, 5, components, bits - 1, 7, 0, 0))


def enumerated(space: int) -> bytes:
    return box(b"colr", struct.pack(">BBBI", 1, 0, 0, space))


def icc(kind: bytes) -> bytes:
    profile = bytes(16) + kind + bytes(108)
    return box(b"colr", bytes([2, 0, 0]) + profile)


def test_a_raw_codestream_or_no_header_has_no_colour():
    assert describe_colour(b"") is None
    assert describe_colour(box(b"jP  ", b"\r\n\x87\n")) is None


def test_enumerated_spaces_and_the_first_colr_box_rules():
    colour = describe_colour(jp2(ihdr(3), enumerated(18), enumerated(16)))
    assert (colour.space, colour.method, colour.enumerated, colour.note) == ("sYCC", 1, 18, None)
    assert [c.component for c in colour.channels] == [0, 1, 2]
    grey = describe_colour(jp2(ihdr(1, 12), enumerated(17)))
    assert grey.space == "greyscale" and len(grey.channels) == 1
    other = describe_colour(jp2(ihdr(3), enumerated(21)))  # ROMM-RGB: JPX's, not JP2's
    assert other.space is None and "21" in other.note


def test_restricted_icc_profiles_are_shown_as_their_kind_and_said_so():
    assert describe_colour(jp2(ihdr(1), icc(b"GRAY"))).note == "restricted ICC profile not applied: shown as greyscale"
    colour = describe_colour(jp2(ihdr(3), icc(b"RGB "), enumerated(20)))
    assert (colour.space, colour.method) == ("sRGB", 2) and "not applied" in colour.note
    assert describe_colour(jp2(ihdr(4), icc(b"CMYK"))).space is None


def test_palette_columns_of_any_depth_and_sign_through_cmap():
    # 3 entries, columns of 8 bits unsigned, 12 bits signed (two bytes) and 5 bits unsigned
    rows = [(0, -2048, 31), (255, 2047, 0), (7, -1, 16)]
    body = struct.pack(">HB", 3, 3) + bytes([7, 0x80 | 11, 4])
    for a, b, c in rows:
        body += bytes([a]) + struct.pack(">h", b) + bytes([c])
    cmap = box(b"cmap", struct.pack(">HBB", 0, 1, 2) + struct.pack(">HBB", 0, 1, 0) + struct.pack(">HBB", 0, 1, 1))
    colour = describe_colour(jp2(ihdr(1), box(b"pclr", body), cmap, enumerated(16)))
    palette = colour.palette
    assert palette.columns == ((0, 255, 7), (-2048, 2047, -1), (31, 0, 16))
    assert palette.bits == (8, 12, 5) and palette.signed == (False, True, False)
    assert [(c.component, c.column) for c in colour.channels] == [(0, 2), (0, 0), (0, 1)]
    assert colour.to_dict()["palette"]["columns"][1] == [-2048, 2047, -1]


def test_channel_definitions_order_the_colours_and_leave_opacity_out():
    cdef = struct.pack(">H", 4) + b"".join(struct.pack(">HHH", *entry) for entry in
                                           [(0, 0, 3), (1, 1, 0), (2, 0, 1), (3, 0, 2)])
    colour = describe_colour(jp2(ihdr(4), enumerated(16), box(b"cdef", cdef)))
    assert [c.component for c in colour.channels] == [2, 3, 0]


def test_damaged_boxes_are_said_not_raised():
    cut = describe_colour(jp2(ihdr(1), box(b"pclr", struct.pack(">HB", 300, 3) + bytes(5)), enumerated(16)))
    assert cut.space is None and "Palette box" in cut.note
    no_cmap = describe_colour(jp2(ihdr(1), box(b"pclr", struct.pack(">HB", 1, 1) + bytes([7, 9])), enumerated(16)))
    assert no_cmap.space is None and "Component Mapping" in no_cmap.note
    few = describe_colour(jp2(ihdr(1), enumerated(16)))
    assert few.space is None and "needs 3 channels" in few.note
    assert describe_colour(jp2(enumerated(16))).note.endswith("no Image Header box (I.5.3.1)")
