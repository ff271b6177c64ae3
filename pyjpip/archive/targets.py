"""JPIP targets as files under a root folder (ISO/IEC 15444-9 C.2.2/C.2.3: a target is named by the
server, here by its path under the root), opened once, memory-mapped and kept while used.

This is the file-system side the sans-IO JPIP core (pyjpip.jpip.server) is given: it resolves
names, refuses every way out of the root, and gives each file's content a target id (C.2.3) that
changes when the file does, so a client holding bins of the old content starts over.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import OrderedDict

from pyjpip.codestream.source import JPEG2000Source
from pyjpip.errors import CodestreamError
from pyjpip.jpip.request import RequestError

log = logging.getLogger(__name__)

SERVED_SUFFIXES = (".jp2", ".jpx", ".jph", ".j2k", ".j2c", ".jhc", ".jpf")
MAXIMUM_NAME = 1024
#: Format characters that make a name look like another (bidirectional overrides, zero widths).
INVISIBLE = frozenset("\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                      "\u2066\u2067\u2068\u2069\ufeff")


def check_name(target: str) -> str:
    """The relative file name a target stands for, or RequestError(404).

    Names arrive percent-decoded once (by the query parser or the adapter); nothing here decodes
    again, so ``%252e%252e`` stays the literal name ``%2e%2e``. Refused: NUL and control characters,
    backslashes, empty, ``.`` and ``..`` components, hidden files (the root may hold caches), absolute
    paths, bytes that were not UTF-8 (overlong forms decode to U+FFFD), and anything not a JPEG 2000
    file name."""
    shown = repr(target[:200])
    name = target[1:] if target.startswith("/") and not target.startswith("//") else target
    if (not name or len(name) > MAXIMUM_NAME or "\\" in name or name.startswith("/") or "\ufffd" in name
            or any(c < " " or "\x7f" <= c <= "\x9f" or c in INVISIBLE for c in name)
            or any(part in ("", ".", "..") or part.startswith(".") for part in name.split("/"))):
        raise RequestError(404, f"target {shown} is not a file name under the server's root")
    if not name.lower().endswith(SERVED_SUFFIXES):
        raise RequestError(404, f"target {shown} is not a JPEG 2000 file ({', '.join(SERVED_SUFFIXES)})")
    return name


class TargetStore:
    """Resolves target names to files under a root folder, and keeps the opened ones.

    Symbolic links are followed only while they stay inside the root (checked on the resolved path).
    Sources are kept by path with the file's (size, mtime, inode): a replaced file is opened again
    and gets a new target id."""

    def __init__(self, root: str, cache_dir: str | None = None, keep_open: int = 64):
        self.root = os.path.realpath(root)
        if not os.path.isdir(self.root):
            raise FileNotFoundError(f"JPIP root {root} is not a folder")
        self.cache_dir = cache_dir
        self.keep_open = keep_open
        self.opened: OrderedDict[str, tuple[tuple, JPEG2000Source]] = OrderedDict()
        self.lock = threading.Lock()

    def resolve(self, target: str) -> str:
        name = check_name(target)
        path = os.path.realpath(os.path.join(self.root, name))
        if os.path.commonpath([path, self.root]) != self.root:
            raise RequestError(404, f"target {target[:200]!r} leads outside the server's root")
        if not os.path.isfile(path):
            raise RequestError(404, f"target {target[:200]!r} does not exist")
        return path

    def open(self, target: str) -> tuple[JPEG2000Source, str]:
        """The source and its target id (changes when the file does)."""
        path = self.resolve(target)
        try:
            status = os.stat(path)
        except OSError:
            raise RequestError(404, f"target {target[:200]!r} does not exist") from None
        stamp = (status.st_size, status.st_mtime_ns, status.st_ino)
        with self.lock:
            kept = self.opened.get(path)
            if kept and kept[0] == stamp:
                self.opened.move_to_end(path)
                return kept[1], target_id(path, stamp)
        try:
            source = JPEG2000Source.open(path, cache_dir=self.cache_dir, name=target[:200])
        except CodestreamError as error:
            raise RequestError(404, f"target is not a readable JPEG 2000 file: {error.reason}") from None
        except OSError as error:
            raise RequestError(404, f"target {target[:200]!r} cannot be read ({error.strerror})") from None
        with self.lock:
            self.opened[path] = (stamp, source)
            while len(self.opened) > self.keep_open:
                self.opened.popitem(last=False)
        return source, target_id(path, stamp)


def target_id(path: str, stamp: tuple) -> str:
    """The same on every worker and host that sees the same file (shared storage): a session or a
    stateless client may move between them."""
    return hashlib.sha256(f"{path}\0{stamp}".encode()).hexdigest()[:24]
