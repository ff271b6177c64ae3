"""Paths made from DICOM values: the one place a UID becomes a file name (ingest, push, store-scp,
the files archive).

A UID is at most 64 characters of ASCII digits in components separated by dots, none empty (PS3.5
9.1). Only such a value names a folder or file, so a data set from outside cannot write elsewhere
than below its store: "..", "/", a backslash, a drive letter, a NUL, or a Unicode digit never get
this far. The joined path is checked to lie below the root as well.
"""

from __future__ import annotations

import os

from pyjpip.errors import UnsafePathError


def is_uid(value) -> bool:
    """PS3.5 9.1: at most 64 characters, components of ASCII digits separated by dots, none empty."""
    value = str(value)
    return 0 < len(value) <= 64 and all(part.isdigit() and part.isascii() for part in value.split("."))


def uid_path(root: str, *uids: tuple[str, object], suffix: str = "") -> str:
    """``root``/uid/uid/.../uid``suffix``, each ``(keyword, value)`` a UID, the result below ``root``.
    Raises UnsafePathError naming the attribute whose value is not a UID."""
    parts = []
    for keyword, value in uids:
        text = str(value if value is not None else "").strip()
        if not is_uid(text):
            raise UnsafePathError(f"{keyword} {text[:80]!r} is not a UID (digits and dots, at most 64; PS3.5 9.1): "
                                  "it cannot name a file", keyword)
        parts.append(text)
    path = os.path.join(root, *parts[:-1], parts[-1] + suffix) if parts else root
    base = os.path.abspath(root)
    if os.path.commonpath([base, os.path.abspath(path)]) != base:  # cannot happen for UIDs: kept as a guard
        raise UnsafePathError(f"{path[:200]!r} is not below {base[:200]!r}")
    return path
