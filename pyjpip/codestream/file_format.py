"""JP2-family files (ISO/IEC 15444-1 Annex I, 15444-2 Annex M for JPX, 15444-15 Annex D for JPH).

A file is a sequence of boxes; its codestreams are the contiguous codestream boxes ('jp2c') and
fragment tables ('ftbl', JPX), numbered from 0 in file order, as JPIP numbers them. A raw codestream (.j2k/.j2c/.jhc) is a
file with one codestream and no boxes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pyjpip.errors import CodestreamError

SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
RAW_CODESTREAM_START = b"\xff\x4f\xff\x51"
#: Boxes that hold other boxes (Annex I, 15444-2 Table M.1); walked to find every box, not codestreams.
SUPERBOXES = {b"jp2h", b"res ", b"uinf", b"jpch", b"jplh", b"cgrp", b"asoc", b"ftbl", b"comp", b"drep", b"dtbl"}
_MAXIMUM_DEPTH = 16


@dataclass(frozen=True)
class Box:
    """A box located in the file: its type, where its header starts and where its contents lie."""

    box_type: bytes
    offset: int
    header_length: int  # 8, or 16 with XLBox
    end: int

    @property
    def contents(self) -> tuple[int, int]:
        return self.offset + self.header_length, self.end

    @property
    def length(self) -> int:
        return self.end - self.offset


@dataclass(frozen=True)
class FileLayout:
    """Where a file's top-level boxes and codestreams are. ``boxes`` is empty for a raw codestream."""

    boxes: tuple[Box, ...]
    codestreams: tuple[tuple[tuple[int, int], ...], ...]  # each codestream's (start, end) fragments, in order

    @property
    def raw(self) -> bool:
        return not self.boxes


def read_boxes(data, start: int, end: int, depth: int = 0) -> list[Box]:
    """The boxes between ``start`` and ``end``; every length is checked against its container."""
    if depth > _MAXIMUM_DEPTH:
        raise CodestreamError(f"boxes nested more than {_MAXIMUM_DEPTH} deep", start)
    boxes = []
    position = start
    while position < end:
        if position + 8 > end:
            raise CodestreamError(f"box header cut short ({end - position} bytes left)", position)
        length, box_type = struct.unpack_from(">I4s", data, position)
        header = 8
        if length == 1:
            if position + 16 > end:
                raise CodestreamError("box with XLBox cut short", position)
            length = struct.unpack_from(">Q", data, position + 8)[0]
            header = 16
        elif length == 0:
            length = end - position  # the box runs to the end of its container
        if length < header:
            raise CodestreamError(f"box '{box_type.decode('latin-1')}' has length {length}, shorter than its header",
                                  position)
        if position + length > end:
            raise CodestreamError(f"box '{box_type.decode('latin-1')}' of {length} bytes runs past the end of its "
                                  f"container ({end - position} bytes left)", position)
        boxes.append(Box(bytes(box_type), position, header, position + length))
        position += length
    return boxes


def read_file_layout(data) -> FileLayout:
    """Find the codestreams of a raw codestream or a JP2/JPX/JPH file."""
    view = memoryview(data)
    head = bytes(view[:12])
    if head[:4] == RAW_CODESTREAM_START:
        return FileLayout((), (((0, len(view)),),))
    if head != SIGNATURE:
        raise CodestreamError("neither a JPEG 2000 codestream (SOC, SIZ) nor a JP2-family file (signature box)", 0)
    boxes = read_boxes(view, 0, len(view))
    if len(boxes) < 2 or boxes[1].box_type != b"ftyp":
        raise CodestreamError("JP2-family file without a File Type box right after the signature", 12)
    codestreams = []
    for box in boxes:  # check superboxes too, so a malformed nested box is reported, not met later
        if box.box_type in SUPERBOXES:
            _check_nested(view, box, 1)
        if box.box_type == b"jp2c":
            codestreams.append((box.contents,))
        elif box.box_type == b"ftbl":
            codestreams.append(_fragments(view, box))
    if not codestreams:
        raise CodestreamError("JP2-family file has no contiguous codestream box", 0)
    return FileLayout(tuple(boxes), tuple(codestreams))


def _fragments(view, table: Box) -> tuple[tuple[int, int], ...]:
    """A fragmented codestream (15444-2 M.11.3): the fragment list of a fragment table box."""
    inner = read_boxes(view, *table.contents, depth=1)
    lists = [b for b in inner if b.box_type == b"flst"]
    if len(lists) != 1:
        raise CodestreamError("fragment table box without exactly one fragment list box", table.offset)
    start, end = lists[0].contents
    if end - start < 2:
        raise CodestreamError("fragment list box is too short", lists[0].offset)
    count = struct.unpack_from(">H", view, start)[0]
    if end - start != 2 + 14 * count or count == 0:
        raise CodestreamError(f"fragment list box length does not match its {count} fragments", lists[0].offset)
    fragments = []
    for n in range(count):
        offset, length, reference = struct.unpack_from(">QIH", view, start + 2 + 14 * n)
        if reference != 0:
            raise CodestreamError("codestream fragments in other files (data reference) are not supported",
                                  lists[0].offset)
        if offset + length > len(view):
            raise CodestreamError(f"codestream fragment {n} ({offset}+{length}) lies past the end of the file",
                                  lists[0].offset)
        fragments.append((offset, offset + length))
    return tuple(fragments)


def _check_nested(view, box: Box, depth: int) -> None:
    start, end = box.contents
    for inner in read_boxes(view, start, end, depth):
        if inner.box_type in SUPERBOXES:
            _check_nested(view, inner, depth + 1)


def placeholder_box(original: Box, codestream: int, data) -> bytes:
    """A placeholder box standing for a codestream box in metadata-bin 0 (15444-9 A.3.6.3).

    Flags = 4: the box's contents are codestream CSID, fetched as that codestream's data-bins.
    Fields: Flags, OrigID (0: the original contents are not a metadata-bin), OrigBH (the original
    box header), EquivID and EquivBH (present because bit 4 is set; zero: no equivalent box),
    CSID. This is the form Kakadu and esajpip write and their clients read: 52 bytes, or 60 for a
    box with XLBox.
    """
    original_header = bytes(data[original.offset : original.offset + original.header_length])
    body = struct.pack(">IQ", 4, 0) + original_header + struct.pack(">QQQ", 0, 0, codestream)
    return struct.pack(">I4s", 8 + len(body), b"phld") + body


def write_frames_file(codestreams: list[bytes], width: int, height: int, components: int, precision: int,
                      signed: bool) -> bytes:
    """A JPX file holding frames 1..N as codestreams 1..N (contiguous codestream boxes), with
    codestream 0 a fragment table pointing at frame 1's bytes.

    DICOM numbers frames from 1 and asks for frame n with stream=n (PS3.5 8.4.1), while JPIP numbers
    codestreams from 0: the fragment table makes both agree without storing frame 1 twice, and a
    request without stream= still shows the first frame.
    """
    ihdr = struct.pack(">IIHBBBB", height, width, components, (precision - 1) | (0x80 if signed else 0), 7, 0, 0)
    colour = 17 if components == 1 else 16  # greyscale, or sRGB (what the inverse RCT/ICT gives back)
    header = _box(b"jp2h", _box(b"ihdr", ihdr) + _box(b"colr", struct.pack(">BBBI", 1, 0, 0, colour)))
    head = SIGNATURE + _box(b"ftyp", b"jpx \x00\x00\x00\x00jpx jp2 ") + header
    table_length = 8 + 8 + 2 + 14
    first_contents = len(head) + table_length + 8
    fragment_list = struct.pack(">HQIH", 1, first_contents, len(codestreams[0]), 0)
    table = _box(b"ftbl", _box(b"flst", fragment_list))
    assert len(table) == table_length
    return head + table + b"".join(_box(b"jp2c", c) for c in codestreams)


def _box(box_type: bytes, contents: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(contents), box_type) + contents
