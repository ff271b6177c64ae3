"""Presentation contexts for storing hollow objects (PS3.17 GG, PS3.8 7.1.1.13 and 9.3.2.2; PS3.5 8.4.1, 10.8).

GG: JPIP and non-JPIP transfer syntaxes are proposed in different presentation contexts of the same
SOP class, so an acceptor may take several and the initiator chooses which to use; an acceptor
that takes no JPIP syntax must be sent the pixels. So a Storage SCU proposes, for each SOP class,
one context per transfer syntax in its order of preference, and chooses per instance among those
accepted:

    1. the object's own JPIP syntax (bytes sent as they are),
    2. the other JPIP syntax of its family, deflated or not (the same data set, inflated or deflated),
    3. the pixels themselves: fetched by JPIP at full resolution with every layer and sent
       encapsulated, JPEG 2000 Part 1 as .90 (only when the codestream is reversible) or .91,
       HTJ2K as .201 (reversible) or .203.

Part 1 and HTJ2K never stand for each other: the URL's server delivers the codestream the syntax
names (PS3.5 8.4.1). Sans-IO: the network adapter (pyjpip.network.scu) does the sending.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyjpip.dicom.hollow import (
    DEFLATED,
    JPIP_HTJ2K_REFERENCED,
    JPIP_HTJ2K_REFERENCED_DEFLATE,
    JPIP_REFERENCED,
    JPIP_REFERENCED_DEFLATE,
    JPIP_TRANSFER_SYNTAXES,
)

JPEG2000_LOSSLESS = "1.2.840.10008.1.2.4.90"
JPEG2000 = "1.2.840.10008.1.2.4.91"
HTJ2K_LOSSLESS = "1.2.840.10008.1.2.4.201"
HTJ2K = "1.2.840.10008.1.2.4.203"
#: PS3.8 9.3.2.2: Presentation Context IDs are odd numbers 1-255, so at most 128 per association.
MAXIMUM_CONTEXTS = 128

#: What to do with an object for a chosen syntax.
AS_STORED = "as stored"
INFLATE = "inflate"
DEFLATE = "deflate"
WITH_PIXELS = "with pixels"

_FAMILIES = {
    JPIP_REFERENCED: (JPIP_REFERENCED_DEFLATE, JPEG2000_LOSSLESS, JPEG2000),
    JPIP_REFERENCED_DEFLATE: (JPIP_REFERENCED, JPEG2000_LOSSLESS, JPEG2000),
    JPIP_HTJ2K_REFERENCED: (JPIP_HTJ2K_REFERENCED_DEFLATE, HTJ2K_LOSSLESS, HTJ2K),
    JPIP_HTJ2K_REFERENCED_DEFLATE: (JPIP_HTJ2K_REFERENCED, HTJ2K_LOSSLESS, HTJ2K),
}
LOSSLESS_ONLY = frozenset({JPEG2000_LOSSLESS, HTJ2K_LOSSLESS})


@dataclass(frozen=True)
class Outgoing:
    """One object to send: its SOP class and instance, the syntax it is stored in, where it is."""

    path: str
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax: str


def preferences(transfer_syntax: str) -> tuple[str, ...]:
    """Transfer syntaxes an object can be sent in, best first."""
    return (str(transfer_syntax), *_FAMILIES.get(transfer_syntax, ()))


def how(stored: str, chosen: str) -> str:
    """What sending an object stored as ``stored`` in ``chosen`` takes."""
    if chosen == stored:
        return AS_STORED
    if chosen in JPIP_TRANSFER_SYNTAXES:
        return INFLATE if stored in DEFLATED else DEFLATE
    return WITH_PIXELS


def associations(objects: list[Outgoing]) -> list[list[tuple[str, str]]]:
    """The presentation contexts (SOP class, transfer syntax) to propose, split into as few
    associations as the 128-context limit allows; every object's SOP class gets all its choices in
    one association."""
    wanted: dict[str, list[str]] = {}
    for item in objects:
        syntaxes = wanted.setdefault(item.sop_class_uid, [])
        for syntax in preferences(item.transfer_syntax):
            if syntax not in syntaxes:
                syntaxes.append(syntax)
    groups: list[list[tuple[str, str]]] = [[]]
    for sop_class, syntaxes in wanted.items():
        contexts = [(sop_class, s) for s in syntaxes[:MAXIMUM_CONTEXTS]]
        if len(groups[-1]) + len(contexts) > MAXIMUM_CONTEXTS:
            groups.append([])
        groups[-1].extend(contexts)
    return [g for g in groups if g]


def choices(item: Outgoing, accepted: set[tuple[str, str]]) -> list[str]:
    """The accepted syntaxes ``item`` may go in, best first ([] when none: the acceptor refused them all).
    A lossless-only syntax is listed; whether the pixels allow it is known only once they are fetched
    (``lossless_allowed``)."""
    return [s for s in preferences(item.transfer_syntax) if (item.sop_class_uid, s) in accepted]


def lossless_allowed(syntax: str, reversible: bool) -> bool:
    """.90 and .201 say the pixels are exactly the original's: only a reversible codestream may use them."""
    return reversible or syntax not in LOSSLESS_ONLY
