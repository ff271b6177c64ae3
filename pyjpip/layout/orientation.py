"""Orientation markers for the four edges of an image (PS3.3 C.7.6.1.1.1, C.7.6.2.1.1).

Patient directions in the LPS system: +x left (L), +y posterior (P), +z head (H); the opposite
ends are R, A, F. The right edge of the image lies along the row direction cosines, the bottom
edge along the column direction cosines. An oblique direction gets up to three letters, the
largest component first; components under a quarter of the vector are left out.
"""

from __future__ import annotations

_LETTERS = (("L", "R"), ("P", "A"), ("H", "F"))
OBLIQUE_THRESHOLD = 0.25


def direction_letters(vector) -> str:
    components = [float(v) for v in vector]
    order = sorted(range(3), key=lambda axis: -abs(components[axis]))
    letters = ""
    for axis in order:
        if abs(components[axis]) >= OBLIQUE_THRESHOLD or not letters:
            letters += _LETTERS[axis][0 if components[axis] > 0 else 1]
    return letters


def edge_markers(orientation) -> dict[str, str] | None:
    """Letters for the left, right, top and bottom edges, or None without a usable orientation."""
    if orientation is None or len(orientation) != 6:
        return None
    row, column = [float(v) for v in orientation[:3]], [float(v) for v in orientation[3:]]
    if not any(row) or not any(column):
        return None
    return {
        "right": direction_letters(row),
        "left": direction_letters([-v for v in row]),
        "bottom": direction_letters(column),
        "top": direction_letters([-v for v in column]),
    }
