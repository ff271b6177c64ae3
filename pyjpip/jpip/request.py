"""JPIP request fields (ISO/IEC 15444-9 Annex C): parsed from a query string into a plain object.

Each field is split on '&' and '=' first and percent-decoded on its own (C.1), so '<', '>', '[',
']' and ',' inside context, metareq and model may arrive encoded. A malformed, unknown or repeated
field is a 400; a recognised field the server does not implement is a 501. Either way the error
says which field and what was wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

from pyjpip.errors import PyjpipError


class RequestError(PyjpipError):
    """A request that cannot be served as asked: ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str, retry_after: int | None = None):
        self.status = status
        self.retry_after = retry_after  # seconds, sent as Retry-After (RFC 9110 10.2.3) with a 503 or 429
        super().__init__(message)


ROUND_DOWN, ROUND_UP, CLOSEST = "round-down", "round-up", "closest"

#: Every field of Annex C, so unknown names can be told apart from unsupported ones.
KNOWN_FIELDS = {
    "target", "subtarget", "tid", "cnew", "cid", "cclose", "qid", "fsiz", "roff", "rsiz", "comps", "stream",
    "context", "srate", "roi", "layers", "metareq", "len", "quality", "align", "wait", "type", "drate", "model",
    "tpmodel", "need", "tpneed", "mset", "upload", "xpath", "cap", "pref", "csf", "handled", "abandon", "barrier",
    "twait",
}
UNSUPPORTED_FIELDS = {"subtarget", "srate", "roi", "drate", "tpmodel", "need", "tpneed", "mset", "upload", "xpath",
                      "csf", "abandon", "barrier", "twait"}
MAXIMUM_FIELDS = 64
MAXIMUM_QUERY_BYTES = 1 << 20


@dataclass(frozen=True)
class SampledRange:
    """``first[-last][:step]`` (C.4.6): ``last`` None means "to the end"."""

    first: int
    last: int | None
    step: int = 1

    def values(self, limit: int) -> range:
        """The ids this range selects among 0 .. limit - 1."""
        last = limit - 1 if self.last is None else min(self.last, limit - 1)
        return range(self.first, last + 1, self.step)


@dataclass(frozen=True)
class ModelItem:
    """One cache-model statement (C.9): what the client holds of a bin, or at most holds (subtractive)."""

    codestreams: tuple[SampledRange, ...] | None  # the [..] qualifier in force; None = the request's
    subtractive: bool
    kind: str  # "Hm", "H", "P", "T", "M", or "implicit"
    identifier: int | None  # None for "*"
    implicit: dict | None  # {"t": (a, b) | None, "c": ..., "r": ..., "p": ...} for the implicit form
    byte_limit: int | None  # ":N"
    layer_limit: int | None  # ":LN"


@dataclass
class JPIPRequest:
    """A parsed request. Fields absent from the query are None (or their Annex C default)."""

    target: str | None = None
    tid: str | None = None
    cnew: tuple[str, ...] | None = None
    cid: str | None = None
    cclose: tuple[str, ...] | None = None
    qid: int | None = None
    fsiz: tuple[int, int, str] | None = None
    roff: tuple[int, int] | None = None
    rsiz: tuple[int, int] | None = None
    comps: tuple[tuple[int, int | None], ...] | None = None
    stream: tuple[SampledRange, ...] | None = None
    context: tuple[str, ...] | None = None
    layers: int | None = None
    metareq: str | None = None
    metadata_only: bool = False
    len: int | None = None
    quality: int | None = None
    align: bool = False
    wait: bool = False
    type: tuple[str, ...] | None = None
    model: tuple[ModelItem, ...] = ()
    cap: str | None = None
    pref: str | None = None
    handled: bool = False
    fields: dict = field(default_factory=dict)  # every field as received (decoded), for echoes and logs

    @property
    def has_view_window(self) -> bool:
        return self.fsiz is not None


def parse_query(query: str | bytes) -> JPIPRequest:
    """Parse ``field=value&...`` (a URL query or a POST body)."""
    if isinstance(query, str):
        query = query.encode("latin-1", "replace")
    if len(query) > MAXIMUM_QUERY_BYTES:
        raise RequestError(400, f"request of {len(query)} bytes is longer than {MAXIMUM_QUERY_BYTES} bytes")
    fields: dict[str, str] = {}
    parts = [p for p in query.split(b"&") if p]
    if len(parts) > MAXIMUM_FIELDS:
        raise RequestError(400, f"{len(parts)} request fields; a JPIP request has at most {MAXIMUM_FIELDS}")
    for part in parts:
        name, separator, value = part.partition(b"=")
        try:
            name_text = unquote_to_bytes(name).decode("ascii")
            value_text = unquote_to_bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise RequestError(400, f"field {name[:40]!r} is not valid text after percent-decoding") from None
        if not separator:
            raise RequestError(400, f"field {name_text[:40]!r} has no '=' and no value")
        if name_text not in KNOWN_FIELDS:
            raise RequestError(400, f"unknown request field {name_text[:40]!r}")
        if name_text in fields:
            raise RequestError(400, f"field {name_text!r} appears more than once")
        fields[name_text] = value_text
    request = JPIPRequest(fields=fields)
    for name, value in fields.items():
        if name in UNSUPPORTED_FIELDS:
            raise RequestError(501, f"request field {name!r} is recognised but not supported by this server")
        parser = _PARSERS.get(name)
        if parser is None:
            continue
        try:
            parser(request, value)
        except RequestError:
            raise
        except (ValueError, IndexError) as exc:
            raise RequestError(400, f"{name}={value[:80]!r} is malformed ({exc})") from None
    _check_combinations(request)
    return request


_UINT = re.compile(r"^[0-9]{1,10}$")


def uint_value(text: str, name: str, maximum: int = 2**32 - 1) -> int:
    """UINT; the ValueError names ``name``. The response headers of D.2 are read with it too."""
    if not _UINT.match(text):
        raise ValueError(f"{name} must be an unsigned integer")
    value = int(text)
    if value > maximum:
        raise ValueError(f"{name} {value} is larger than {maximum}")
    return value


def pair_value(text: str, name: str) -> tuple[int, int]:
    """UINT "," UINT, as in fsiz, roff, rsiz and their JPIP-* response headers."""
    parts = text.split(",")
    if len(parts) != 2:
        raise ValueError(f"{name} needs two numbers separated by a comma")
    return uint_value(parts[0], name), uint_value(parts[1], name)


def _sampled_ranges(text: str, name: str) -> tuple[SampledRange, ...]:
    ranges = []
    for item in text.split(","):
        span, _, step_text = item.partition(":")
        first_text, dash, last_text = span.partition("-")
        first = uint_value(first_text, name)
        last = (uint_value(last_text, name) if last_text else None) if dash else first
        step = uint_value(step_text, name) if step_text else 1
        if step == 0:
            raise ValueError(f"{name} sampling factor must be at least 1")
        if last is not None and last < first:
            raise ValueError(f"{name} range {first}-{last} runs backwards")
        ranges.append(SampledRange(first, last, step))
    return tuple(ranges)


def _set(name):
    def parse(request: JPIPRequest, value: str) -> None:
        setattr(request, name, value)
    return parse


def _target(request: JPIPRequest, value: str) -> None:
    if not value:
        raise ValueError("target is empty")
    request.target = value


def _tid(request: JPIPRequest, value: str) -> None:
    if not value or len(value) > 255 or any(ord(ch) < 33 or ord(ch) > 126 for ch in value):
        raise ValueError("tid is 1 to 255 printable characters")
    request.tid = value


def _cnew(request: JPIPRequest, value: str) -> None:
    transports = tuple(t.strip() for t in value.split(","))
    if not all(transports):
        raise ValueError("cnew lists transports separated by commas")
    request.cnew = transports


def _cid(request: JPIPRequest, value: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9._~-]{1,64}", value):
        raise ValueError("cid is a token of letters, digits and . _ ~ -")
    request.cid = value


def _cclose(request: JPIPRequest, value: str) -> None:
    ids = tuple(v for v in value.split(","))
    if not all(ids) or ("*" in ids and len(ids) > 1):
        raise ValueError("cclose is '*' or a list of channel ids")
    request.cclose = ids


def _fsiz(request: JPIPRequest, value: str) -> None:
    parts = value.split(",")
    if len(parts) not in (2, 3):
        raise ValueError("fsiz is fx,fy[,round-down|round-up|closest]")
    direction = parts[2] if len(parts) == 3 else ROUND_DOWN
    if direction not in (ROUND_DOWN, ROUND_UP, CLOSEST):
        raise ValueError(f"unknown round direction {direction!r}")
    request.fsiz = (uint_value(parts[0], "fx"), uint_value(parts[1], "fy"), direction)


def component_ranges(value: str) -> tuple[tuple[int, int | None], ...]:
    """1#UINT-RANGE: the comps field (C.4), and the JPIP-comps response header (D.2)."""
    ranges = []
    for item in value.split(","):
        first, dash, last = item.partition("-")
        start = uint_value(first, "component")
        end = (uint_value(last, "component") if last else None) if dash else start
        if end is not None and end < start:
            raise ValueError(f"component range {start}-{end} runs backwards")
        ranges.append((start, end))
    return tuple(ranges)


def _comps(request: JPIPRequest, value: str) -> None:
    request.comps = component_ranges(value)


def _context(request: JPIPRequest, value: str) -> None:
    contexts = tuple(c for c in _split_contexts(value) if c)
    if not contexts or not all(re.fullmatch(r"[a-z0-9]{4}<[^<>]*>(\[[^\]]*\])?", c) for c in contexts):
        raise ValueError("context is a list of context-ranges such as jpxl<0-3>")
    request.context = contexts
    raise RequestError(501, f"context={value[:80]!r} is understood but codestream contexts are not served; "
                            "ask for codestreams with stream=")


def _split_contexts(value: str) -> list[str]:
    """Split on ';' and on every ',' whose next angle bracket is not '>' (one outside <..>), in one
    pass from the end: re.split with a lookahead saying so took time in the square of the commas."""
    pieces, end, following = [], len(value), None
    for i in range(len(value) - 1, -1, -1):
        ch = value[i]
        if ch in "<>":
            following = ch
        elif ch == ";" or (ch == "," and following != ">"):
            pieces.append(value[i + 1 : end])
            end = i
    pieces.append(value[:end])
    return pieces[::-1]


def _metareq(request: JPIPRequest, value: str) -> None:
    text = value
    if text.endswith("!!"):
        request.metadata_only = True
        text = text[:-2]
    item = r"\[[^\[\]]+\](R[0-9]+)?(D[0-9]+)?"
    if text and not re.fullmatch(f"{item}(,{item})*", text):
        raise ValueError("metareq is a list of [box-type...] requests")
    request.metareq = value


def _yes_no(name):
    def parse(request: JPIPRequest, value: str) -> None:
        if value not in ("yes", "no"):
            raise ValueError(f"{name} is yes or no")
        setattr(request, name, value == "yes")
    return parse


def _type(request: JPIPRequest, value: str) -> None:
    kinds = tuple(t.strip() for t in value.split(","))
    if not all(kinds):
        raise ValueError("type lists image return types separated by commas")
    request.type = kinds


def _quality(request: JPIPRequest, value: str) -> None:
    if value == "-1":
        request.quality = -1
        return
    quality = uint_value(value, "quality")
    if quality > 100:
        raise ValueError("quality is 0 to 100")
    request.quality = quality


def _pref(request: JPIPRequest, value: str) -> None:
    request.pref = value
    if "/r" in value:
        raise RequestError(501, f"pref={value[:80]!r} makes preferences required that this server does not offer")


def _handled(request: JPIPRequest, value: str) -> None:
    request.handled = True


_MODEL_ITEM = re.compile(
    r"^(?P<minus>-)?(?:(?P<explicit>Hm|H\*|H[0-9]+|P\*|P[0-9]+|T\*|T[0-9]+|M\*|M[0-9]+)"
    r"|(?P<implicit>(?:[tcrp](?:\*|[0-9]+(?:-[0-9]+)?))+))(?::(?P<limit>L?[0-9]+))?$")


def _model(request: JPIPRequest, value: str) -> None:
    items: list[ModelItem] = []
    qualifier = None
    for raw in _split_model(value):
        if raw.startswith("["):
            if not raw.endswith("]"):
                raise ValueError(f"codestream qualifier {raw[:40]!r} is not closed")
            qualifier = _sampled_ranges(raw[1:-1].replace(";", ","), "codestream")
            continue
        match = _MODEL_ITEM.match(raw)
        if not match:
            raise ValueError(f"model item {raw[:40]!r} is not a bin descriptor")
        limit = match["limit"]
        byte_limit = layer_limit = None
        if limit is not None:
            if limit.startswith("L"):
                layer_limit = uint_value(limit[1:], "layer limit")
            else:
                byte_limit = uint_value(limit, "byte limit", 2**63 - 1)
        if match["explicit"]:
            text = match["explicit"]
            kind = "Hm" if text == "Hm" else text[0]
            identifier = None if text.endswith("*") or kind == "Hm" else uint_value(text[1:], "bin id", 2**63 - 1)
            if layer_limit is not None and kind != "P":
                raise ValueError(f"a layer limit only applies to precincts, not {text}")
            items.append(ModelItem(qualifier, bool(match["minus"]), kind, 0 if kind == "Hm" else identifier,
                                   None, byte_limit, layer_limit))
        else:
            if byte_limit is not None:
                raise ValueError("implicit precinct descriptors take only layer limits (:L)")
            implicit = {}
            for letter, span in re.findall(r"([tcrp])(\*|[0-9]+(?:-[0-9]+)?)", match["implicit"]):
                if letter in implicit:
                    raise ValueError(f"'{letter}' appears twice in {raw[:40]!r}")
                if span == "*":
                    implicit[letter] = None
                else:
                    first, _, last = span.partition("-")
                    implicit[letter] = (int(first), int(last) if last else int(first))
            items.append(ModelItem(qualifier, bool(match["minus"]), "implicit", None, implicit, None, layer_limit))
    request.model = tuple(items)


def _split_model(value: str) -> list[str]:
    """Split on commas outside [..] qualifiers."""
    items, depth, current = [], 0, []
    for ch in value:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "," and depth == 0:
            items.append("".join(current))
            current = []
        else:
            current.append(ch)
    items.append("".join(current))
    if any(not item for item in items):
        raise ValueError("empty model item")
    return items


_PARSERS = {
    "target": _target,
    "tid": _tid,
    "cnew": _cnew,
    "cid": _cid,
    "cclose": _cclose,
    "qid": lambda r, v: setattr(r, "qid", uint_value(v, "qid")),
    "fsiz": _fsiz,
    "roff": lambda r, v: setattr(r, "roff", pair_value(v, "roff")),
    "rsiz": lambda r, v: setattr(r, "rsiz", pair_value(v, "rsiz")),
    "comps": _comps,
    "stream": lambda r, v: setattr(r, "stream", _sampled_ranges(v, "stream")),
    "context": _context,
    "layers": lambda r, v: setattr(r, "layers", uint_value(v, "layers", 65535)),
    "metareq": _metareq,
    "len": lambda r, v: setattr(r, "len", uint_value(v, "len", 2**63 - 1)),
    "quality": _quality,
    "align": _yes_no("align"),
    "wait": _yes_no("wait"),
    "type": _type,
    "model": _model,
    "cap": _set("cap"),
    "pref": _pref,
    "handled": _handled,
}


def _check_combinations(request: JPIPRequest) -> None:
    if (request.roff is not None or request.rsiz is not None) and request.fsiz is None:
        raise RequestError(400, "roff and rsiz are only valid with fsiz")
    if request.cclose is not None and request.cid is None:
        raise RequestError(400, "cclose needs the cid of the session it closes")
    if request.cnew is not None and request.cid is not None:
        raise RequestError(501, "cnew with cid asks for a second channel in a session; this server gives one "
                                "channel per session (open a new session with cnew alone)")
