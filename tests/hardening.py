"""Counted hardening of the parsers that take bytes from outside (issue 14): seeded case generators,
one "exercise" per parser, and a runner that times every case, counts typed refusals, accepted
inputs and anything else, and watches memory.

The five parsers and what each may refuse with (anything else is a failure):

    request     pyjpip.jpip.request.parse_query, and now and then JPIPServer.handle      RequestError
    model       model= through parse_query, then CacheModel.apply on real sources      RequestError
    jpp         JPPStreamParser fed in random pieces into a DataBinCache, or a whole
                JPIPClient (receive_headers/receive_body/end_of_body, next request,
                then its next request)           JPPStreamError, CacheConflictError, JPIPClientError
    dicom       read_hollow (.94/.95/.204/.205) and storage.classify from bytes       DicomError (a Refusal)
    codestream  JPEG2000Source(data).databins(n), bins read, rebuilt                  CodestreamError

Case ``i`` of seed ``s`` is made by ``random.Random(case_seed(s, i))`` alone, so any case can be
made again on its own (``replay``; ``bench/hardening.py --replay PARSER SEED INDEX``).

Used by tests/integration/test_hardening.py (thousands of cases) and bench/hardening.py (100,000
per parser, each parser in a process of its own under a watchdog). Pure Python and the project's
own dependencies; the inputs are the ISO conformance codestreams and objects built here.
"""

from __future__ import annotations

import atexit
import gc
import logging
import os
import random
import resource
import shutil
import signal
import struct
import sys
import tempfile
import threading
import time
import tracemalloc
import warnings
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from paths import CONFORMANCE  # noqa: E402

from pyjpip.codestream.file_format import SIGNATURE, write_frames_file  # noqa: E402
from pyjpip.codestream.rebuild import rebuild_codestream  # noqa: E402
from pyjpip.codestream.source import JPEG2000Source  # noqa: E402
from pyjpip.errors import CodestreamError, DicomError  # noqa: E402
from pyjpip.jpip.cache_model import CacheModel  # noqa: E402
from pyjpip.jpip.client import JPIPClient, JPIPClientError, ViewWindow  # noqa: E402
from pyjpip.jpip.client_cache import CacheConflictError, DataBinCache  # noqa: E402
from pyjpip.jpip.messages import JPPStreamParser, Message, MessageEncoder  # noqa: E402
from pyjpip.jpip.request import MAXIMUM_QUERY_BYTES, RequestError, parse_query  # noqa: E402
from pyjpip.jpip.vbas import JPPStreamError, encode_vbas  # noqa: E402

#: Small conformance codestreams: real files from other encoders, quick to index (a few ms at most).
SMALL_CODESTREAMS = ["p0_01.j2k", "p0_02.j2k", "p0_03.j2k", "p0_09.j2k", "p0_11.j2k", "p0_12.j2k", "p0_14.j2k",
                     "p0_15.j2k", "p0_16.j2k", "p1_01.j2k", "p1_06.j2k", "p1_07.j2k", "p0_10.j2k"]
#: Files the JPIP server of the request, model and jpp cases serves.
SERVED = ["p0_01.j2k", "p0_03.j2k", "p1_06.j2k", "p0_12.j2k"]


class HardeningFailure(AssertionError):
    """An exercise found something wrong that is not an exception of the parser (a bad status...)."""


class CaseTimeout(BaseException):
    """Raised by the alarm in a case that runs far past the bound (a BaseException, so that a parser's
    ``except Exception`` cannot swallow it)."""


def case_seed(seed: int, index: int) -> int:
    return (seed & 0xFFFFFFFF) << 32 | (index & 0xFFFFFFFF)


def read_conformance(name: str) -> bytes:
    return (CONFORMANCE / name).read_bytes()


# --- mutation primitives ------------------------------------------------------------------------

INTERESTING_8 = (0, 1, 0x7F, 0x80, 0xFE, 0xFF)
INTERESTING_16 = (0, 1, 2, 3, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF)
INTERESTING_32 = (0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF, 0x10000, 0xFFFF)
LIMIT_BYTES = 1 << 20  # a mutated input never grows past this


def mutate_bytes(data: bytes, rng: random.Random, tokens: tuple = (), rounds: int | None = None,
                 big_endian: bool = False) -> bytes:
    """Generic byte mutations: flips, interesting values, truncation, insertion of tokens or random
    bytes, deletion, duplication, repetition."""
    out = bytearray(data)
    order = ">" if big_endian else "<"
    for _ in range(rounds or rng.choice((1, 1, 1, 2, 2, 3, 5))):
        size = len(out)
        op = rng.randrange(11)
        if op == 0 and size:  # flip bits
            for _ in range(rng.randint(1, 8)):
                out[rng.randrange(size)] ^= 1 << rng.randrange(8)
        elif op == 1 and size:
            out[rng.randrange(size)] = rng.choice(INTERESTING_8)
        elif op == 2 and size:  # cut short
            del out[rng.randrange(size):]
        elif op == 3 and tokens:
            position = rng.randrange(size + 1)
            out[position:position] = rng.choice(tokens)
        elif op == 4 and size:
            start = rng.randrange(size)
            del out[start:start + rng.randint(1, 32)]
        elif op == 5 and size:  # copy a slice elsewhere
            start = rng.randrange(size)
            piece = out[start:start + rng.randint(1, 64)]
            position = rng.randrange(size + 1)
            out[position:position] = piece
        elif op == 6 and size >= 2:
            position = rng.randrange(size - 1)
            out[position:position + 2] = struct.pack(order + "H", rng.choice(INTERESTING_16))
        elif op == 7 and size >= 4:
            position = rng.randrange(size - 3)
            out[position:position + 4] = struct.pack(order + "I", rng.choice(INTERESTING_32))
        elif op == 8:
            position = rng.randrange(size + 1)
            out[position:position] = rng.randbytes(rng.randint(1, 24))
        elif op == 9 and size:  # a slice repeated many times
            start = rng.randrange(size)
            piece = out[start:start + rng.randint(1, 16)]
            out[start:start] = piece * rng.randint(2, 200)
        elif op == 10 and size:
            position = rng.randrange(size)
            out[position] = rng.randrange(256)
        if len(out) > LIMIT_BYTES:
            del out[LIMIT_BYTES:]
    return bytes(out)


def chunked(data: bytes, rng: random.Random) -> list[bytes]:
    """``data`` in random pieces: whole, fixed sizes, random cuts, or a byte at a time."""
    kind = rng.randrange(5)
    if kind == 0 or not data:
        return [data]
    if kind == 1:
        size = rng.choice((1, 2, 3, 7, 64, 1000)) if len(data) < 4000 else rng.choice((7, 64, 1000))
        return [data[i:i + size] for i in range(0, len(data), size)]
    if kind == 2:
        cuts = sorted({0, len(data), *(rng.randrange(len(data) + 1) for _ in range(rng.randint(1, 40)))})
        return [data[a:b] for a, b in zip(cuts, cuts[1:])] + ([b""] if rng.random() < 0.1 else [])
    if kind == 3:
        return [data[:1], data[1:2], data[2:]]
    return [data[: len(data) // 2], b"", data[len(data) // 2:]]


# --- the request parser -------------------------------------------------------------------------

FIELD_NAMES = ["target", "subtarget", "tid", "cnew", "cid", "cclose", "qid", "fsiz", "roff", "rsiz", "comps",
               "stream", "context", "srate", "roi", "layers", "metareq", "len", "quality", "align", "wait", "type",
               "drate", "model", "tpmodel", "need", "tpneed", "mset", "upload", "xpath", "cap", "pref", "csf",
               "handled", "abandon", "barrier", "twait"]
HUGE_NUMBERS = ["4294967295", "4294967296", "9999999999", "10000000000", "18446744073709551616", "9" * 40,
                "9" * 400, "0" * 30 + "1", "-1", "+1", " 1", "1 ", "0x10", "1e3", "1.5", "\u0661\u0662",
                "\uff11\uff12", "\u00b2", "", "00", "0"]
QUERY_TOKENS = tuple(t.encode("latin-1") if isinstance(t, str) else t for t in [
    "&", "&&", "=", "==", ",", ",,", ";", "[", "]", "[[", "]]", "<", ">", "-", ":", ":L", "*", "!!", "%", "%2",
    "%zz", "%00", "%26", "%3D", "%3d", "%2C", "%5B", "%5D", "%25", "%2525", "%c0%ae", "%c0%af", "%e0%80%ae",
    "%ed%a0%80", "%ff", "%fe%ff", "%f4%90%80%80", "%c2%80", "%e2%80%ae", b"\x00", b"\xff", b"\xc0\xae",
    b"\x80", "+", " ", "\t", "\r\n", "4294967296", "99999999999", "-1", "0", "9" * 40, "L", "yes", "no",
    "http", "round-up", "closest", "jpp-stream", "model=", "target=", "cid=", "fsiz=", "&stream=0-",
    "Hm", "H*", "P*", "t*c*r*p*", "[0-]", "/r", "..", "/", "\\", "\u2603".encode(), "%e2%98%83",
])


def _number(rng: random.Random, small: int = 20) -> str:
    return str(rng.randint(0, small)) if rng.random() < 0.85 else rng.choice(HUGE_NUMBERS)


def _range_list(rng: random.Random, small: int = 4, separator: str = ",") -> str:
    items = []
    for _ in range(rng.randint(1, 3)):
        first = rng.randint(0, small)
        kind = rng.randrange(4)
        item = str(first) if kind == 0 else f"{first}-" if kind == 1 else f"{first}-{first + rng.randint(0, small)}"
        if rng.random() < 0.25:
            item += f":{rng.randint(1, 3)}"
        items.append(item)
    return separator.join(items)


def model_value(rng: random.Random, bins: int = 40) -> str:
    """model= statements from the C.9 grammar: explicit and implicit bin descriptors, limits,
    subtractive items and [codestream] qualifiers; mostly well formed, numbers now and then absurd."""
    items = []
    for _ in range(rng.choice((1, 1, 2, 3, 5, 12))):
        if rng.random() < 0.15:
            items.append(f"[{_range_list(rng, 3, rng.choice((',', ';')))}]")
            continue
        minus = "-" if rng.random() < 0.2 else ""
        kind = rng.randrange(10)
        if kind < 6:
            letter = rng.choice(("Hm", "H", "P", "P", "T", "M"))
            name = letter if letter == "Hm" else letter + ("*" if rng.random() < 0.25 else _number(rng, bins))
            limit = ""
            if rng.random() < 0.35:
                limit = f":L{_number(rng, 6)}" if letter == "P" and rng.random() < 0.6 else f":{_number(rng, 3000)}"
            items.append(minus + name + limit)
        else:
            letters = rng.sample("tcrp", rng.randint(1, 4))
            parts = []
            for letter in letters:
                choice = rng.randrange(3)
                if choice == 0:
                    parts.append(letter + "*")
                elif choice == 1:
                    parts.append(letter + _number(rng, 6))
                else:
                    first = rng.randint(0, 6)
                    parts.append(f"{letter}{first}-{first + rng.randint(0, 8)}")
            limit = f":L{_number(rng, 6)}" if rng.random() < 0.3 else ""
            items.append(minus + "".join(parts) + limit)
    return ",".join(items)


def field_value(name: str, rng: random.Random) -> str:
    """A plausible value of a request field (valid most of the time)."""
    n = lambda small=2000: _number(rng, small)  # noqa: E731
    if name == "target":
        return rng.choice(SERVED + ["frames.jpx", "cut.j2k", "missing.j2k", "../p0_01.j2k", "/p0_01.j2k", ".hidden.j2k",
                                    "dir/x.jp2", "p0_01.j2k\x00.txt", "%2e%2e/p0_01.j2k", "\u00e9.j2k", "x" * 300])
    if name == "fsiz":
        value = f"{n()},{n()}"
        return value + rng.choice(("", "", ",round-up", ",closest", ",round-down", ",sideways"))
    if name in ("roff", "rsiz"):
        return f"{n(200)},{n(200)}"
    if name == "comps":
        return _range_list(rng, 3)
    if name == "stream":
        return _range_list(rng, 3)
    if name in ("layers", "qid"):
        return n(10)
    if name == "len":
        return n(100000)
    if name == "quality":
        return rng.choice(("-1", "0", "50", "100", "101", n(120)))
    if name in ("align", "wait"):
        return rng.choice(("yes", "no", "YES", "", "maybe"))
    if name == "cnew":
        return rng.choice(("http", "http-tcp", "http,http-tcp", "", ",", "udp"))
    if name == "cid":
        return rng.choice(("abc", "JPH_1", "x" * 64, "x" * 65, "a b", "", "~.-_"))
    if name == "cclose":
        return rng.choice(("*", "abc", "abc,def", "*,abc", ",", ""))
    if name == "tid":
        return rng.choice(("0", "abc", "x" * 255, "x" * 256, "a b", "\x7f", ""))
    if name == "type":
        return rng.choice(("jpp-stream", "image/jpp-stream", "jpp-stream;ptype=ext", "jpt-stream", "", ",",
                           "jpp-stream,jpt-stream"))
    if name == "metareq":
        return rng.choice(("[ihdr]", "[colr]R0D1,[*]!!", "[*]", "!!", "[]", "[ihdr", "[a][b]", "[ihdr]R99999999999"))
    if name == "model":
        return model_value(rng)
    if name == "context":
        return rng.choice(("jpxl<0-3>", "jpxl<0-3>[s0i0]", "jpxl<>", "bad", ""))
    if name == "pref":
        return rng.choice(("fullwait", "fullwait/r", "", "mbw:1M"))
    if name == "cap":
        return rng.choice(("config=512", "", "mbw:1M"))
    if name == "handled":
        return ""
    return rng.choice(("", "1", "yes", "x"))


REAL_REQUESTS = [
    "target=p0_01.j2k&type=jpp-stream",
    "target=p0_03.j2k&fsiz=64,64&type=jpp-stream&cnew=http",
    "target=p1_06.j2k&fsiz=128,128,round-up&roff=16,16&rsiz=64,64&type=jpp-stream&len=4000",
    "target=p0_01.j2k&fsiz=32,32,closest&comps=0&layers=1&type=jpp-stream&model=Hm,H0,P0:L1,P1:20",
    "target=frames.jpx&stream=0-2&type=jpp-stream&model=[0],Hm,P*,[1-2:1],-P0:L1",
    "target=p0_12.j2k&metareq=[ihdr]R0D1,[colr]!!&type=image/jpp-stream&align=yes",
    "target=p0_01.j2k&tid=0&qid=1&wait=no&quality=50&type=jpp-stream",
    "target=p0_03.j2k&fsiz=256,256&type=jpp-stream&model=t0-1c*r0-2p0-4:L1,t*c0r*",
    "target=p1_06.j2k&cnew=http&type=jpp-stream&fsiz=16,16&pref=fullwait&cap=config%3D1",
    "cid=abc&qid=3&fsiz=64,64",
    "cid=abc&cclose=abc",
    "target=p0_01.j2k&len=0&type=jpp-stream",
    "target=p0_01.j2k&type=jpp-stream&handled=&model=M0,Hm:10",
    "target=p0_01.j2k&stream=0&type=jpp-stream&model=%5B0%5D%2CHm%2CP0",
    "target=cut.j2k&fsiz=64,64&type=jpp-stream&model=Hm,H*,P*:L1",
]


def client_queries() -> list[str]:
    """Queries as the client writes them (sessions, stateless, with model= from a cache it holds)."""
    out = []
    cache = DataBinCache()
    for key, data, complete in (((6, 0, 0), b"main", True), ((2, 0, 0), b"", True), ((0, 0, 3), b"abcdef", False),
                                ((0, 1, 9), b"x" * 40, True), ((8, 0, 0), b"m", False)):
        cache.add(Message(key[0], key[1], key[2], 0, data, complete))
    for stateless in (False, True):
        for window in (ViewWindow(), ViewWindow(fsiz=(64, 64), round="closest", roff=(2, 2), rsiz=(30, 30),
                                                 comps="0,2-3", layers=2, stream=1)):
            client = JPIPClient("http://host:8000/jpip?target=p0_03.j2k", stateless=stateless, cache=cache,
                                length_limit=5000)
            request = client.next_request(window)
            out.append(request.url.split("?", 1)[1] if request.body is None else request.body.decode())
    return out


def percent_encode(text: bytes, rng: random.Random) -> bytes:
    """Some or all bytes as %XX (upper or lower hex), maybe twice over."""
    if not text:
        return text
    start = rng.randrange(len(text))
    end = start + rng.randint(1, len(text) - start) if rng.random() < 0.7 else len(text)
    if rng.random() < 0.3:
        start = 0
    hexes = "%{:02X}" if rng.random() < 0.5 else "%{:02x}"
    middle = "".join(hexes.format(b) for b in text[start:end]).encode()
    if rng.random() < 0.1:
        middle = middle.replace(b"%", b"%25")
    return text[:start] + middle + text[end:]


def mutate_query(query: bytes, rng: random.Random) -> bytes:
    """Field-aware mutations of a query, then maybe byte mutations."""
    fields = [f for f in query.split(b"&") if f]
    for _ in range(rng.choice((0, 1, 1, 2, 3))):
        op = rng.randrange(11)
        if op == 0 and fields:  # repeat a field
            fields.insert(rng.randrange(len(fields) + 1), rng.choice(fields))
        elif op == 1 and fields:
            del fields[rng.randrange(len(fields))]
        elif op == 2:  # a field, known or unsupported or unknown
            name = rng.choice(FIELD_NAMES + ["bogus", "TARGET", "", "target "])
            fields.insert(rng.randrange(len(fields) + 1), f"{name}={field_value(name, rng)}".encode("utf-8"))
        elif op == 3 and fields:  # an absurd value
            i = rng.randrange(len(fields))
            name = fields[i].partition(b"=")[0]
            fields[i] = name + b"=" + rng.choice(HUGE_NUMBERS + ["*", ",", "-", "[", "x" * 5000]).encode("utf-8")
        elif op == 4 and fields:  # percent-encode part of a field
            i = rng.randrange(len(fields))
            fields[i] = percent_encode(fields[i], rng)
        elif op == 5 and fields:  # a value from another field
            i = rng.randrange(len(fields))
            name = fields[i].partition(b"=")[0]
            fields[i] = name + b"=" + field_value(rng.choice(FIELD_NAMES), rng).encode("utf-8")
        elif op == 6:
            rng.shuffle(fields)
        elif op == 7 and fields:  # no '=' at all
            i = rng.randrange(len(fields))
            fields[i] = fields[i].replace(b"=", b"")
        elif op == 8:  # many fields
            fields += [b"qid=1"] * rng.choice((30, 63, 64, 65, 200))
        elif op == 9 and fields:  # overlong UTF-8 or a lone surrogate inside a value
            i = rng.randrange(len(fields))
            position = rng.randrange(len(fields[i]) + 1)
            fields[i] = fields[i][:position] + rng.choice((b"%c0%ae", b"%e0%80%ae", b"%ed%a0%80", b"%c0%80",
                                                             b"%f8%88%80%80%80", b"\xc0\xae")) + fields[i][position:]
        elif op == 10:  # a long value of delimiters and the like (a POST body may hold 1 MB)
            name = rng.choice(("context", "model", "metareq", "comps", "stream", "cclose", "cnew", "type", "fsiz",
                               "roff", "target", "cid", "tid", "pref")).encode()
            token = rng.choice((b",", b";", b"[", b"]", b"<", b">", b"-", b":", b"*", b"!!", b",<", b"[0],",
                                b"%2C", b"0,", b"P*,", b"t"))
            fields.append(name + b"=" + token * rng.choice((100, 3000, 30_000, 150_000)))
    out = b"&".join(fields)
    if rng.random() < 0.35:
        out = mutate_bytes(out, rng, QUERY_TOKENS)
    return out


class RequestCases:
    """parse_query on real and client-made queries, mutated; one case in eight goes through the server."""

    name = "request"
    typed = (RequestError,)

    def __init__(self):
        self.corpus = [q.encode() for q in REAL_REQUESTS + client_queries()]
        self._server = None
        self.now = 1_000_000.0

    @property
    def server(self):
        if self._server is None:
            from pyjpip.jpip.server import JPIPServer

            self._server = JPIPServer(served_root())
        return self._server

    def generate(self, rng: random.Random):
        roll = rng.random()
        if roll < 0.04:
            query = rng.randbytes(rng.randint(0, 300))
        elif roll < 0.08:
            alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789&=,;:-*[]<>%!/._~"
            query = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 200)))
        elif roll < 0.09:  # at the length limit and just past it
            size = rng.choice((MAXIMUM_QUERY_BYTES, MAXIMUM_QUERY_BYTES + 1))
            if rng.random() < 0.03:  # a model= of 349,000 items, parsed (about a second)
                query = (b"target=p0_01.j2k&model=" + b"P1," * 350_000)[:size]
            else:
                query = (b"target=p0_01.j2k&cap=" + b"x" * size)[:size]
        elif roll < 0.3:  # fields from the grammar, in any number
            names = rng.sample(FIELD_NAMES[:24], rng.randint(1, 6))
            query = "&".join(f"{n}={quote(field_value(n, rng), safe=',:-*[]<>;!/')}" for n in names).encode()
        else:
            query = mutate_query(rng.choice(self.corpus), rng)
        if rng.random() < 0.1:  # a str, as an adapter may pass one (non-Latin-1 characters included)
            query = query.decode("latin-1") + rng.choice(("", "\u2603", "\ud800", "\x00"))
        return query, rng.random() < 0.125, rng.choice(("GET", "POST"))

    def exercise(self, case):
        query, via_server, method = case
        refused = None
        if not via_server or len(query) < 65536:  # a long one is parsed once, by the server
            try:
                parse_query(query)
            except RequestError as error:
                if not 400 <= error.status <= 599:
                    raise HardeningFailure(f"RequestError with status {error.status}") from None
                refused = error
        if via_server:
            self.now += 7.0  # sessions of earlier cases expire
            response = self.server.handle(method, query, self.now)
            try:
                body = b"".join(response.body)
            finally:
                close = getattr(response.body, "close", None)
                if close is not None:
                    close()
            if refused is not None and response.status != refused.status:
                raise HardeningFailure(f"parse_query refused with {refused.status}, the server answered "
                                       f"{response.status}")
            if response.status >= 400 and refused is None:  # refused by the server (no target...): typed too
                refused = RequestError(response.status, body.decode("utf-8", "replace"))
        if refused is not None:
            raise refused


# --- the model= parser and the cache model ------------------------------------------------------

MODEL_TOKENS = tuple(t.encode() for t in [
    ",", ",,", "[", "]", "[0]", "[0-]", "[0;1]", "-", ":", ":L", ":L0", "L", "*", "Hm", "H", "P", "T", "M", "t",
    "c", "r", "p", "t*", "p0-", "99999999999", "4294967296", "-1", "0", "9" * 30, "%2C", "%5B", "%5D", "%00",
    "%c0%ac", "%e2%80%ae", "\u2603",
])


class ModelCases:
    """model= statements from the grammar, mutated, parsed and folded into a cache model of a real
    source (single and multi-tile codestreams, a three-codestream JPX)."""

    name = "model"
    typed = (RequestError,)

    def __init__(self):
        self.sources = [JPEG2000Source(read_conformance(name), name) for name in ("p0_01.j2k", "p0_03.j2k",
                                                                                 "p1_06.j2k", "p0_12.j2k")]
        self.sources.append(JPEG2000Source(frames_jpx(), "frames.jpx"))
        self.sources.append(JPEG2000Source(missing_tile(), "cut.j2k"))
        for source in self.sources:  # indexed once: the cases measure the model, not the indexer
            for number in range(source.codestream_count):
                source.databins(number)
            source.metadata_bin()

    def generate(self, rng: random.Random):
        value = model_value(rng, bins=rng.choice((4, 40, 200))).encode()
        roll = rng.random()
        if roll < 0.3:
            value = mutate_bytes(value, rng, MODEL_TOKENS)
        elif roll < 0.35:
            value = rng.randbytes(rng.randint(0, 60))
        elif roll < 0.37:  # long lists, up to 300 KB
            value = b",".join([value] * max(1, rng.choice((1000, 10_000, 100_000, 300_000)) // (len(value) + 1)))
        if rng.random() < 0.3:
            value = percent_encode(value, rng)
        else:
            value = value.replace(b"&", b"%26")
        query = b"model=" + value
        if rng.random() < 0.3:
            query += b"&stream=" + _range_list(rng, 3).encode()
        if rng.random() < 0.1:
            query += b"&model=Hm"  # repeated field
        return query, rng.randrange(len(self.sources))

    def exercise(self, case):
        query, which = case
        request = parse_query(query)
        source = self.sources[which]
        if request.stream:
            codestreams = sorted({n for r in request.stream for n in r.values(source.codestream_count)})
        else:
            codestreams = [0]
        model = CacheModel()
        model.apply(request.model, source, codestreams)
        if len(request.model) < 1000:
            model.apply(request.model, source, codestreams)  # again: a session folds statements in repeatedly
        for key, held in model.held.items():
            if not isinstance(held, int) or held < 0:
                raise HardeningFailure(f"cache model holds {held!r} bytes of {key}")


# --- the JPP-stream parser and the client's cache -----------------------------------------------

JPP_TOKENS = (b"\x00\x01\x00", b"\x00\x02\x00", b"\x00\xff\x03abc", b"\x00", b"\x80" * 9, b"\x80" * 10, b"\xff" * 9,
              b"\x05", b"\x1f", b"\x7f", b"\x70\x03\x00\x00\x01", b"\x70\x07\x00\x00\x01", b"\x70\x09\x00\x00\x01",
              b"\x70\x06\x00\x00\x01x", b"\x30\x00\x00\x05", b"\x70\x01\x00\x00\x02\x81\x80\x00ab",
              encode_vbas(2**62), encode_vbas(2**40), b"\xff\x90", b"\xff\xd9")


def encode_messages(messages: list[Message], reason: int | None = 2, eor_body: bytes = b"") -> bytes:
    encoder = MessageEncoder()
    out = bytearray()
    for m in messages:
        aux = m.aux if m.aux is not None else (0 if m.bin_class & 1 else None)
        out += encoder.header(m.bin_class, m.codestream, m.identifier, m.offset, len(m.data), m.complete, aux)
        out += m.data
    if reason is not None:
        out += MessageEncoder.end_of_response(reason, eor_body)
    return bytes(out)


def parse_messages(body: bytes) -> list[Message]:
    parser = JPPStreamParser()
    return [e for e in parser.feed(body) if isinstance(e, Message)]


class JPPCases:
    """JPP-streams as the server writes them (real files, several windows, len limits) and made up
    (extended classes with Aux, far ids, several codestreams, overlaps, one bin in thousands of small
    messages in any order), mutated at the message and the byte level, fed in random pieces."""

    name = "jpp"
    typed = (JPPStreamError, CacheConflictError, JPIPClientError)

    def __init__(self):
        from pyjpip.jpip.server import JPIPServer

        server = JPIPServer(served_root())
        self.streams = []
        for query in ("target=p0_01.j2k&type=jpp-stream", "target=p0_03.j2k&fsiz=32,32&type=jpp-stream",
                      "target=p1_06.j2k&fsiz=64,64&roff=8,8&rsiz=40,40&type=jpp-stream",
                      "target=frames.jpx&stream=0-3&type=jpp-stream&len=6000",
                      "target=p0_12.j2k&type=jpp-stream&align=yes", "target=p0_01.j2k&type=jpp-stream&len=700",
                      "target=cut.j2k&type=jpp-stream",
                      "target=p0_03.j2k&type=jpp-stream&layers=1&model=Hm,P0"):
            response = server.handle("GET", query, 0.0)
            self.streams.append(b"".join(response.body))
        self.messages = [parse_messages(s) for s in self.streams]

    def _made_up(self, rng: random.Random) -> bytes:
        messages = []
        for _ in range(rng.randint(1, 12)):
            bin_class = rng.choice((0, 0, 1, 2, 4, 5, 6, 8))
            data = rng.randbytes(rng.choice((0, 1, 5, 40, 300)))
            identifier = rng.choice((0, 1, 2, 15, 16, 127, 128, 2**20, 2**40, 2**56))
            codestream = rng.choice((0, 0, 0, 1, 2, 2**30))
            offset = rng.choice((0, 0, 1, 10, 2**32))
            aux = rng.choice((0, 1, 2**40)) if bin_class & 1 else None
            messages.append(Message(bin_class, codestream, identifier, offset, data, rng.random() < 0.5, aux))
        return encode_messages(messages, rng.choice((1, 2, 4, 7, 255, None)), rng.randbytes(rng.choice((0, 0, 5))))

    def _rearranged(self, rng: random.Random) -> bytes:
        """A real response's messages cut into pieces, repeated, reordered, changed."""
        messages = list(rng.choice(self.messages))
        out = []
        for m in messages:
            pieces = rng.choice((1, 1, 2, 5, 30)) if m.data else 1
            cuts = sorted({0, len(m.data), *(rng.randrange(len(m.data) + 1) for _ in range(pieces - 1))})
            for a, b in zip(cuts, cuts[1:]) if m.data else [(0, 0)]:
                out.append(Message(m.bin_class, m.codestream, m.identifier, m.offset + a, m.data[a:b],
                                   m.complete and b == len(m.data), m.aux))
        for _ in range(rng.randint(0, 4)):
            if not out:
                break
            i = rng.randrange(len(out))
            m = out[i]
            op = rng.randrange(6)
            if op == 0:
                out.insert(rng.randrange(len(out) + 1), m)  # a repeat
            elif op == 1 and m.data:  # a repeat with other contents: a conflict
                changed = bytes([m.data[0] ^ 1]) + m.data[1:]
                out.insert(rng.randrange(len(out) + 1), Message(m.bin_class, m.codestream, m.identifier, m.offset,
                                                               changed, m.complete, m.aux))
            elif op == 2:  # says complete at another length
                out.append(Message(m.bin_class, m.codestream, m.identifier, m.offset, m.data[:-1] if m.data else b"x",
                                   True, m.aux))
            elif op == 3:
                out[i] = Message(m.bin_class, m.codestream, m.identifier, m.offset + rng.choice((1, -1, 2**33)) if
                                 m.offset else rng.choice((1, 2**33)), m.data, m.complete, m.aux)
            elif op == 4:
                del out[i]
            else:
                rng.shuffle(out)
        if rng.random() < 0.3:
            rng.shuffle(out)
        return encode_messages(out, rng.choice((1, 2, 2, 4, None)))

    def _scattered(self, rng: random.Random) -> bytes:
        """One bin in many small messages (as a server cutting at every packet, or a hostile one,
        sends it), in order, reversed, every other one first, or shuffled."""
        size = rng.choice((100, 1000, 5000, 20000))
        data = rng.randbytes(size)
        piece = rng.choice((1, 1, 2, 3, 7))
        cuts = list(range(0, size, piece))
        order = rng.randrange(4)
        if order == 1:
            cuts.reverse()
        elif order == 2:
            cuts = cuts[::2] + cuts[1::2]
        elif order == 3:
            rng.shuffle(cuts)
        bin_class = rng.choice((0, 6, 8))
        messages = [Message(bin_class, 0, 3, a, data[a:a + piece], a + piece >= size) for a in cuts]
        return encode_messages(messages, 2)

    def generate(self, rng: random.Random):
        roll = rng.random()
        if roll < 0.03:
            body = rng.randbytes(rng.randint(0, 400))
        elif roll < 0.05:
            body = self._scattered(rng)
        elif roll < 0.25:
            body = rng.choice(self.streams)
        elif roll < 0.45:
            body = self._rearranged(rng)
        elif roll < 0.6:
            body = self._made_up(rng)
        else:
            body = mutate_bytes(rng.choice(self.streams), rng, JPP_TOKENS, big_endian=True)
        if 0.25 <= roll < 0.6 and rng.random() < 0.3:
            body = mutate_bytes(body, rng, JPP_TOKENS, rounds=1, big_endian=True)
        pieces = chunked(body, rng)
        if rng.random() < 0.6:
            return ("parser", pieces, rng.choice((None, None, None, 0, 500, 5000)))
        headers = {}
        if rng.random() < 0.8:
            headers["JPIP-tid"] = rng.choice(("0", "T1", "T2", "", " "))
        if rng.random() < 0.5:
            headers["JPIP-cnew"] = rng.choice(("cid=C1,path=jpip,transport=http", "cid=,transport=http", "cid",
                                               "transport=http-tcp,cid=C2", "=,=,=", "path=/x,cid=C3",
                                               "cid=C1=2,path=a"))
        if rng.random() < 0.5:
            headers["Pyjpip-Codestream-Length"] = rng.choice(("7390", "", "-1", "9" * 30, "\u0663"))
        if rng.random() < 0.2:
            headers["JPIP-fsiz"] = "64,64"
        window = rng.choice((ViewWindow(), ViewWindow(fsiz=(32, 32)), ViewWindow(fsiz=(64, 64), roff=(8, 8),
                                                                                   rsiz=(20, 20), layers=1),
                             ViewWindow(stream=1)))
        url = rng.choice(("http://h/jpip?target=p0_01.j2k", "http://h/jpip?target=frames.jpx&stream=2",
                          "https://h:8443/p0_03.j2k"))
        status = rng.choice((200, 200, 200, 200, 200, 202, 400, 503))
        return ("client", pieces, (url, rng.random() < 0.3, window, status, headers, rng.choice((None, 0, 2000))))

    def exercise(self, case):
        mode, pieces, options = case
        if mode == "parser":
            parser = JPPStreamParser()
            cache = DataBinCache(options)
            codestreams = set()
            for piece in pieces:
                for event in parser.feed(piece):
                    if isinstance(event, Message):
                        cache.add(event)
                        codestreams.add(event.codestream)
            parser.finish()
            cache.model_statements(sorted(codestreams)[:4])
            cache.codestream_bins(0)
            return
        url, stateless, window, status, headers, limit = options
        client = JPIPClient(url, stateless=stateless, cache=DataBinCache(limit))
        client.next_request(window)
        client.receive_headers(status, headers)
        for piece in pieces:
            client.receive_body(piece)
        client.end_of_body()
        client.next_request(window)  # model= statements from what the cache now holds


# --- the hollow DICOM reader --------------------------------------------------------------------

URL = "http://pacs.example/jpip?target=studies/1/ct.j2k"
EXPLICIT_LE, IMPLICIT_LE, BIG_ENDIAN, DEFLATED_LE = ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2",
                                                     "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99")
URL_VALUES = [URL, "", " ", "ftp://pacs.example/x.j2k", "http://", "http://[::1", "http://host:99999/x",
              "http://host:abc/x", "http://h\x00/x", "HTTP://H/x.j2k", "http://h/" + "a" * 9000, "//host/x",
              "https://[fe80::1%25eth0]/x", "http:host", "http://h/\r\nx", "http://\u00e9.example/x",
              "http://h/x?stream=1&target=a.jph", "http://user:pw@h:0/x", "\x00" * 8, "http://h/x\\y"]
FRAME_VALUES = [b"1", b"3", b"0", b"-1", b"1e9", b"abc", b"1\\2", b"99999999999999999999", b" ", b"2.5", b"+4"]
PHOTOMETRIC_VALUES = [b"MONOCHROME2", b"MONOCHROME1", b"YBR_RCT ", b"RGB ", b"", b"PALETTE COLOR ", b"\x00\x00"]
UID_VALUES = [b"1.2.3", b"", b"1..2", b"x.y", b"1.2.840.10008.5.1.4.1.1.2\x00", b"9" * 70]
VR_VALUES = [b"UN", b"SQ", b"OB", b"OW", b"UT", b"LO", b"UR", b"DS", b"IS", b"AT", b"XX", b"ab", b"\x00\x00",
             b"OF", b"SV", b"US"]
TAG_VALUES = [(0xFFFE, 0xE000), (0xFFFE, 0xE00D), (0xFFFE, 0xE0DD), (0x7FE0, 0x0010), (0x7FE0, 0x0008),
              (0x0028, 0x7FE0), (0x0002, 0x0010), (0x6000, 0x0100), (0x0000, 0x0000), (0xFFFF, 0xFFFF),
              (0x0028, 0x0008), (0x0008, 0x0005)]
DICOM_TOKENS = (b"\xfe\xff\x00\xe0\xff\xff\xff\xff", b"\xfe\xff\x0d\xe0\x00\x00\x00\x00",
                b"\xfe\xff\xdd\xe0\x00\x00\x00\x00", b"\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff",
                b"\x08\x00\x15\x11SQ\x00\x00\xff\xff\xff\xff", b"\x09\x00\x10\x10UN\x00\x00\xff\xff\xff\xff",
                b"\x28\x00\xe0\x7fUR\x00\x00\x10\x00\x00\x00ftp://x/y.j2k   ", b"DICM", b"\x02\x00\x10\x00UI")


def _hollow_datasets() -> list:
    """Data sets a hollow object may hold: plain, with sequences of both lengths and nesting, private
    and UN elements, overlays, multi-frame colour; and pydicom's CT_small without its pixels."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    def base(number: int) -> Dataset:
        ds = Dataset()
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.8.498.{number}.1"
        ds.StudyInstanceUID = f"1.2.826.0.1.3680043.8.498.{number}.2"
        ds.SeriesInstanceUID = f"1.2.826.0.1.3680043.8.498.{number}.3"
        ds.PatientName = "Hardening^Case"
        ds.PatientID = f"H{number}"
        ds.Modality = "CT"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.Rows, ds.Columns = 64, 64
        ds.SamplesPerPixel = 1
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.WindowCenter, ds.WindowWidth = [40, 400], [400, 2000]
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        return ds

    plain = base(1)
    with_sequences = base(2)
    item = Dataset()
    item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    item.ReferencedSOPInstanceUID = "1.2.3.4"
    inner = Dataset()
    inner.CodeValue, inner.CodingSchemeDesignator, inner.CodeMeaning = "121311", "DCM", "Localizer"
    item.PurposeOfReferenceCodeSequence = Sequence([inner])
    with_sequences.ReferencedImageSequence = Sequence([item, Dataset(item)])
    with_sequences["ReferencedImageSequence"].is_undefined_length = True
    for entry in with_sequences.ReferencedImageSequence:
        entry.is_undefined_length_sequence_item = True
    source = Dataset()
    source.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    with_sequences.SourceImageSequence = Sequence([source])  # defined length
    colour = base(3)
    colour.SamplesPerPixel = 3
    colour.PlanarConfiguration = 0
    colour.PhotometricInterpretation = "YBR_RCT"
    colour.BitsAllocated, colour.BitsStored, colour.HighBit = 8, 8, 7
    colour.NumberOfFrames = 3
    colour.add_new(0x00090010, "LO", "HARDENING")
    colour.add_new(0x00091001, "OB", bytes(range(40)))
    colour.add_new(0x00091002, "UN", b"\x10\x00\x10\x00\x04\x00\x00\x00ABCD")
    colour.add_new(0x60000010, "US", 64)
    colour.add_new(0x60000011, "US", 64)
    colour.add_new(0x60000100, "US", 1)
    colour.add_new(0x60003000, "OB", bytes(512))
    colour.add_new(0x00204000, "LT", "comment " * 20)
    colour.add_new(0x00081030, "LO", "Study\u00e9")
    colour.SpecificCharacterSet = "ISO_IR 100"
    out = [plain, with_sequences, colour]
    try:
        from pydicom import dcmread
        from pydicom.data import get_testdata_file

        ct = dcmread(get_testdata_file("CT_small.dcm"))
        del ct.PixelData
        out.append(ct)
    except Exception:  # noqa: BLE001 - pydicom's test data is a bonus, not a requirement
        pass
    return out


def _element_spans(body: bytes, offset: int = 0, end: int | None = None, depth: int = 0) -> list[tuple]:
    """(header offset, header length, value length, VR) of every element of a valid Explicit VR Little
    Endian data set, nested ones included (item headers as VR b'IT')."""
    end = len(body) if end is None else end
    spans = []
    while offset + 8 <= end:
        group, element = struct.unpack_from("<HH", body, offset)
        if group == 0xFFFE:
            (length,) = struct.unpack_from("<I", body, offset + 4)
            spans.append((offset, 8, 0 if length == 0xFFFFFFFF else length, b"IT"))
            if element == 0xE00D:
                return spans + [(offset + 8, 0, 0, b"END")]
            offset += 8
            if element == 0xE000 and length != 0xFFFFFFFF:
                spans += _element_spans(body, offset, offset + length, depth + 1)
                offset += length
            continue
        vr = body[offset + 4:offset + 6]
        if vr in (b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV", b"UV"):
            (length,) = struct.unpack_from("<I", body, offset + 8)
            header = 12
        else:
            (length,) = struct.unpack_from("<H", body, offset + 6)
            header = 8
        spans.append((offset, header, 0 if length == 0xFFFFFFFF else length, vr))
        offset += header
        if vr == b"SQ":
            if length == 0xFFFFFFFF:
                continue  # its items follow; walked as they come
            spans += _element_spans(body, offset, offset + length, depth + 1)
        offset += length if length != 0xFFFFFFFF else 0
    return spans


def _element(tag: tuple[int, int], vr: bytes, value: bytes) -> bytes:
    if vr in (b"OB", b"OW", b"SQ", b"UN", b"UR", b"UT"):
        return struct.pack("<HH2sHI", tag[0], tag[1], vr, 0, len(value)) + value
    return struct.pack("<HH2sH", tag[0], tag[1], vr, len(value) & 0xFFFF) + value


@dataclass
class _HollowFile:
    head: bytes  # preamble and file meta
    plain: bytes  # the data set, Explicit VR Little Endian, not deflated
    syntax: str
    sop_class: str
    sop_instance: str
    spans: list


class DicomCases:
    """Hollow objects in all four JPIP syntaxes, mutated at the element level (lengths, VRs, tags,
    values, nesting, delimiters) and at the byte level, deflated again or damaged in their deflate
    stream; read with read_hollow, and their data sets classified by the Storage SCP's rules."""

    name = "dicom"
    typed = (DicomError,)

    def __init__(self):
        from pyjpip.dicom.hollow import DEFLATED, JPIP_TRANSFER_SYNTAXES, inflate, write_hollow

        self.deflated = {str(s) for s in DEFLATED}
        self.files: list[_HollowFile] = []
        for dataset in _hollow_datasets():
            for syntax in sorted(JPIP_TRANSFER_SYNTAXES):
                data = write_hollow(dataset, URL, syntax)
                (length,) = struct.unpack_from("<I", data, 140)
                head, body = data[:144 + length], data[144 + length:]
                plain = inflate(body) if str(syntax) in self.deflated else body
                self.files.append(_HollowFile(head, plain, str(syntax), str(dataset.SOPClassUID),
                                              str(dataset.SOPInstanceUID), _element_spans(plain)))

    def _mutate_dataset(self, rng: random.Random, f: _HollowFile) -> bytes:
        body = bytearray(f.plain)
        spans = [s for s in f.spans if s[0] + s[1] <= len(body)]
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            if not spans:
                break
            offset, header, length, vr = rng.choice(spans)
            op = rng.randrange(10)
            if op == 0 and header:  # the length field
                if header == 12:
                    body[offset + 8:offset + 12] = struct.pack("<I", rng.choice(
                        INTERESTING_32 + (length + 1, length - 1 & 0xFFFFFFFF, length + 2)))
                elif header == 8 and vr != b"IT":
                    body[offset + 6:offset + 8] = struct.pack("<H", rng.choice(INTERESTING_16 + (length + 1,)))
                else:
                    body[offset + 4:offset + 8] = struct.pack("<I", rng.choice(INTERESTING_32 + (length + 1,)))
            elif op == 1 and header and vr != b"IT":
                body[offset + 4:offset + 6] = rng.choice(VR_VALUES + [bytes(rng.choices(range(65, 91), k=2))])
            elif op == 2 and header:
                body[offset:offset + 4] = struct.pack("<HH", *rng.choice(TAG_VALUES))
            elif op == 3:  # a value replaced by another (header rewritten)
                tag = rng.choice(((0x0028, 0x7FE0), (0x0028, 0x0008), (0x0028, 0x0004), (0x0008, 0x0018),
                                  (0x0008, 0x0016), (0x0020, 0x000D)))
                value = {(0x0028, 0x7FE0): lambda: rng.choice(URL_VALUES).encode("utf-8", "surrogatepass"),
                         (0x0028, 0x0008): lambda: rng.choice(FRAME_VALUES),
                         (0x0028, 0x0004): lambda: rng.choice(PHOTOMETRIC_VALUES)}.get(
                    tag, lambda: rng.choice(UID_VALUES))()
                if len(value) % 2:
                    value += b" "
                vr_of = {(0x0028, 0x7FE0): b"UR", (0x0028, 0x0008): b"IS", (0x0028, 0x0004): b"CS"}.get(tag, b"UI")
                new = _element(tag, vr_of, value)
                found = [s for s in spans if s[3] != b"IT" and
                         struct.unpack_from("<HH", body, s[0]) == tag and s[0] + s[1] + s[2] <= len(body)]
                if found:
                    o, h, n, _ = found[0]
                    body[o:o + h + n] = new
                else:  # insert it in order-ignoring position: a duplicate or out-of-order element
                    position = rng.choice([s[0] for s in spans] + [len(body)])
                    body[position:position] = new
                spans = []  # offsets moved: later rounds fall back to byte mutations
            elif op == 4 and header:  # delete an element (value included)
                del body[offset:offset + header + length]
                spans = []
            elif op == 5 and header:  # repeat an element
                piece = body[offset:offset + header + length]
                body[offset:offset] = piece
                spans = []
            elif op == 6:  # cut at or just after an element boundary
                del body[offset + rng.choice((0, 1, 4, 7, 8, header + 1)):]
                spans = []
            elif op == 7:  # sequences of undefined length nested deep, closed or not
                depth = rng.choice((2, 10, 31, 33, 40, 200))
                opening = (b"\x08\x00\x15\x11SQ\x00\x00\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0\xff\xff\xff\xff") * depth
                closing = (b"\xfe\xff\x0d\xe0\x00\x00\x00\x00" + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00") * depth
                if rng.random() < 0.3:
                    closing = closing[:rng.randrange(len(closing) + 1)]
                body[offset:offset] = opening + closing
                spans = []
            elif op == 8:  # an undefined-length UN, its contents implicit VR
                contents = b"\x10\x00\x10\x00\x04\x00\x00\x00ABCD" * rng.randint(0, 3)
                if rng.random() < 0.5:
                    contents += b"\x10\x00\x20\x00\xff\xff\xff\xff"
                item = b"\xfe\xff\x00\xe0\xff\xff\xff\xff" + contents + b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
                body[offset:offset] = (b"\x09\x00\x20\x10UN\x00\x00\xff\xff\xff\xff" + item +
                                       rng.choice((b"\xfe\xff\xdd\xe0\x00\x00\x00\x00", b"")))
                spans = []
            else:
                body = bytearray(mutate_bytes(bytes(body), rng, DICOM_TOKENS, rounds=1))
                spans = []
        return bytes(body)

    def generate(self, rng: random.Random):
        from pyjpip.dicom.hollow import deflate

        f = rng.choice(self.files)
        roll = rng.random()
        plain = f.plain
        if roll < 0.55:
            plain = self._mutate_dataset(rng, f)
        elif roll < 0.65:
            plain = mutate_bytes(plain, rng, DICOM_TOKENS)
        deflated = f.syntax in self.deflated
        body = deflate(plain) if deflated else plain
        if deflated and rng.random() < 0.15:  # the deflate stream itself damaged, wrapped or a bomb
            kind = rng.randrange(5)
            if kind == 0:
                body = body[:rng.randrange(len(body) + 1)]
            elif kind == 1:
                body = mutate_bytes(body, rng)
            elif kind == 2:
                body = zlib.compress(plain)
            elif kind == 3:
                body = body + rng.randbytes(rng.randint(1, 20))
            elif rng.random() < 0.05:
                compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
                body = compressor.compress(b"\x00" * ((64 << 20) + 4096)) + compressor.flush()
        head = f.head
        roll = rng.random()
        if roll < 0.1:  # the file meta of another syntax (the body does not match it)
            head = rng.choice(self.files).head
        elif roll < 0.2:
            head = mutate_bytes(head[128:], rng, DICOM_TOKENS, rounds=1)
            head = f.head[:128] + head
        data = head + body
        if rng.random() < 0.03:
            data = rng.choice((b"", b"\x00" * 128 + b"DICM")) + rng.randbytes(rng.randint(0, 400))
        if rng.random() < 0.5:
            return ("file", data)
        syntax = f.syntax if rng.random() < 0.75 else rng.choice((EXPLICIT_LE, IMPLICIT_LE, BIG_ENDIAN, DEFLATED_LE,
                                                                  "1.2.3", rng.choice(list(self.deflated))))
        if syntax == DEFLATED_LE and not deflated:
            body = deflate(plain)
        sop_class = f.sop_class if rng.random() < 0.9 else "1.2.3"
        return ("wire", (syntax, sop_class, f.sop_instance, body))

    def exercise(self, case):
        from pyjpip.dicom import storage
        from pyjpip.dicom.hollow import read_hollow

        kind, data = case
        if kind == "file":
            hollow = read_hollow(data, "hardening.dcm")
            hollow.frame_url(1)
            return None
        syntax, sop_class, sop_instance, body = data
        decision = storage.classify(storage.Received(syntax, sop_class, sop_instance, body, "FUZZ", "PYJPIP"))
        if isinstance(decision, storage.Refusal):
            if not decision.reason or decision.status not in (storage.OUT_OF_RESOURCES, storage.CANNOT_UNDERSTAND,
                                                              storage.DATA_SET_DOES_NOT_MATCH_SOP_CLASS):
                raise HardeningFailure(f"refusal without a reason or with status {decision.status:#x}")
            return ("Refusal", decision.reason)
        return None


# --- the codestream indexer ---------------------------------------------------------------------

MARKER_SEGMENTS = (0xFF50, 0xFF51, 0xFF52, 0xFF53, 0xFF55, 0xFF57, 0xFF58, 0xFF5C, 0xFF5D, 0xFF5E, 0xFF5F, 0xFF60,
                   0xFF61, 0xFF63, 0xFF64, 0xFF59, 0xFF56, 0xFF30, 0xFF3F, 0xFF70)
CODESTREAM_TOKENS = (b"\xff\x90", b"\xff\xd9", b"\xff\x91\x00\x04\x00\x00", b"\xff\x92", b"\xff", b"\xff\x93",
                     b"\xff\x4f\xff\x51", b"\xff\x90\x00\x0a\x00\x00\x00\x00\x00\x00\x00\x01",
                     b"\xff\x58\x00\x03\x00", b"\xff\x60\x00\x04\x00\xff", b"\xff\x5f\x00\x09\x00\x00\x00\xff\xff\x05\x04")


def marker_segments(codestream: bytes) -> list[tuple[int, int, int]]:
    """(offset, marker, Lxxx) of every marker segment of a valid codestream, main and tile-part
    headers; SOT segments with Psot. Stops quietly at anything unexpected."""
    out = []
    position = 2
    tile_part_end = None
    while position + 4 <= len(codestream):
        marker, length = struct.unpack_from(">HH", codestream, position)
        if marker == 0xFF93:  # SOD: jump to the next tile-part
            out.append((position, marker, 0))
            if tile_part_end is None or tile_part_end <= position:
                break
            position = tile_part_end
            continue
        if marker < 0xFF30 or length < 2:
            break
        out.append((position, marker, length))
        if marker == 0xFF90:
            if position + 10 > len(codestream):
                break
            psot = struct.unpack_from(">I", codestream, position + 6)[0]
            tile_part_end = position + psot if psot else len(codestream) - 2
        position += 2 + length
    return out


def _box(kind: bytes, contents: bytes, extended: bool = False) -> bytes:
    if extended:
        return struct.pack(">I4sQ", 1, kind, 16 + len(contents)) + contents
    return struct.pack(">I4s", 8 + len(contents), kind) + contents


def as_jp2(codestream: bytes, extended: bool = False) -> bytes:
    header = _box(b"jp2h", _box(b"ihdr", bytes(14)) + _box(b"colr", b"\x01\x00\x00\x00\x00\x00\x11"))
    return SIGNATURE + _box(b"ftyp", b"jp2 \0\0\0\0jp2 ") + header + _box(b"jp2c", codestream, extended)


def missing_tile() -> bytes:
    """p0_03 without its last tile's tile-part: served as it is, its precincts there have no packets."""
    data = read_conformance("p0_03.j2k")
    last = [offset for offset, marker, _ in marker_segments(data) if marker == 0xFF90][-1]
    return data[:last] + b"\xff\xd9"


def frames_jpx() -> bytes:
    """A three-frame JPX (codestream 0 a fragment table of frame 1), as pyjpip writes DICOM frames."""
    frames = [read_conformance(name) for name in ("p0_01.j2k", "p0_12.j2k", "p0_01.j2k")]
    return write_frames_file(frames, 128, 128, 1, 8, False)


class CodestreamCases:
    """Small conformance codestreams and smaller ones rebuilt from them (fewer levels, one layer), raw
    or in JP2 and JPX boxes; mutated in their marker segments (fields, lengths, repeats, removals,
    foreign segments, cuts at boundaries), in their boxes and at the byte level."""

    name = "codestream"
    typed = (CodestreamError,)

    def __init__(self):
        self.codestreams = []
        for name in SMALL_CODESTREAMS:
            data = read_conformance(name)
            self.codestreams.append(data)
            source = JPEG2000Source(data, name)
            bins = source.databins(0)
            view = source.codestream(0).data
            main = bins.main_header().read(view)
            headers = {t: bins.tile_header(t).read(view) for t in range(bins.tiles)}
            precincts = {b.identifier: b.read(view) for b in bins.precincts()}
            for reduce, layers in ((1, 1), (0, 1)):
                self.codestreams.append(rebuild_codestream(main, headers, precincts, reduce=reduce,
                                                           layers=layers).codestream)
        self.segments = [marker_segments(c) for c in self.codestreams]

    def _mutate_segments(self, rng: random.Random, data: bytes, segments: list) -> bytes:
        out = bytearray(data)
        if not segments:
            return mutate_bytes(data, rng, CODESTREAM_TOKENS, big_endian=True)
        position, marker, length = rng.choice(segments)
        op = rng.randrange(8)
        if op <= 2 and length > 2:  # a field of the segment (SIZ, COD, QCD, SOT... sizes and counts)
            for _ in range(rng.randint(1, 3)):
                at = position + 4 + rng.randrange(length - 2)
                width = rng.choice((1, 1, 2, 4))
                value = rng.choice({1: INTERESTING_8, 2: INTERESTING_16, 4: INTERESTING_32}[width])
                if rng.random() < 0.3:
                    value = rng.randrange(1 << (8 * width))
                out[at:at + width] = value.to_bytes(width, "big")[: max(0, len(out) - at)]
        elif op == 3:  # the length field
            out[position + 2:position + 4] = struct.pack(">H", rng.choice(INTERESTING_16 + (length + 1, length - 1)) & 0xFFFF)
        elif op == 4:  # repeated
            out[position:position] = out[position:position + 2 + length]
        elif op == 5 and marker not in (0xFF51, 0xFF93):
            del out[position:position + 2 + length]
        elif op == 6:  # a foreign segment
            kind = rng.choice(MARKER_SEGMENTS)
            body = rng.randbytes(rng.choice((0, 1, 2, 5, 20, 100)))
            out[position:position] = struct.pack(">HH", kind, len(body) + 2) + body
        else:
            del out[position + rng.choice((0, 1, 2, 3, 4, 6, 10)):]
        return bytes(out)

    def _boxes(self, rng: random.Random, codestream: bytes) -> bytes:
        kind = rng.randrange(6)
        if kind == 0:
            data = as_jp2(codestream, extended=rng.random() < 0.3)
        elif kind == 1:
            data = write_frames_file([codestream, rng.choice(self.codestreams)], 64, 64, 1, 8, False)
        else:
            data = as_jp2(codestream)
            boxes = [12, 32]  # ftyp, jp2h offsets in as_jp2
            at = rng.choice(boxes + [len(data) - len(codestream) - 8])
            if kind == 2:
                data = data[:at] + struct.pack(">I", rng.choice((0, 1, 7, 8, 9, 0xFFFFFFFF, 100000))) + data[at + 4:]
            elif kind == 3:
                data = data[:at + 4] + rng.choice((b"ftbl", b"asoc", b"jp2c", b"xxxx", b"flst")) + data[at + 8:]
            elif kind == 4:
                nested = b"".join(_box(b"asoc", b"") for _ in range(1))
                for _ in range(rng.choice((3, 16, 17, 40))):
                    nested = _box(b"asoc", nested)
                data = data[:at] + nested + data[at:]
            else:
                table = _box(b"ftbl", _box(b"flst", struct.pack(">HQIH", 1, rng.choice((0, 40, 2**63)),
                                                              rng.choice((0, 10, 2**32 - 1)), rng.choice((0, 1)))))
                data = data[:at] + table + data[at:]
        return data

    def generate(self, rng: random.Random):
        which = rng.randrange(len(self.codestreams))
        data, segments = self.codestreams[which], self.segments[which]
        roll = rng.random()
        if roll < 0.45:
            data = self._mutate_segments(rng, data, segments)
            if rng.random() < 0.3:
                data = self._mutate_segments(rng, data, marker_segments(data))
        elif roll < 0.8:
            data = mutate_bytes(data, rng, CODESTREAM_TOKENS, big_endian=True)
        elif roll < 0.84:
            data = rng.choice((b"\xff\x4f\xff\x51", SIGNATURE, b"")) + rng.randbytes(rng.randint(0, 300))
        if rng.random() < 0.2:
            data = self._boxes(rng, data)
            if rng.random() < 0.2:
                data = mutate_bytes(data, rng, (b"jp2c", b"ftbl", b"\x00\x00\x00\x01"), rounds=1, big_endian=True)
        return data, rng.random() < 0.3

    def exercise(self, case):
        data, rebuild = case
        source = JPEG2000Source(data, "hardening.j2k")
        source.metadata_bin()
        for number in range(min(source.codestream_count, 3)):
            bins = source.databins(number)
            view = source.codestream(number).data
            main = bins.main_header().read(view)
            headers = {t: bins.tile_header(t).read(view) for t in range(bins.tiles)}
            precincts = {b.identifier: b.read(view) for b in bins.precincts()}
            if rebuild:
                rebuild_codestream(main, headers, precincts, layers=1)


# --- shared inputs ------------------------------------------------------------------------------

_ROOT: str | None = None


def served_root() -> str:
    """A folder of small files for the JPIP server (made once per process, removed at exit)."""
    global _ROOT
    if _ROOT is None:
        folder = tempfile.mkdtemp(prefix="pyjpip-hardening-")
        atexit.register(shutil.rmtree, folder, True)
        for name in SERVED:
            shutil.copy(CONFORMANCE / name, os.path.join(folder, name))
        with open(os.path.join(folder, "frames.jpx"), "wb") as f:
            f.write(frames_jpx())
        with open(os.path.join(folder, "cut.j2k"), "wb") as f:
            f.write(missing_tile())
        _ROOT = folder
    return _ROOT


PARSERS = {"request": RequestCases, "model": ModelCases, "jpp": JPPCases, "dicom": DicomCases,
           "codestream": CodestreamCases}


# --- the runner ---------------------------------------------------------------------------------

@dataclass
class Failure:
    parser: str
    seed: int
    index: int
    kind: str  # "exception", "slow", "hang", "memory", "empty message"
    detail: str

    def __str__(self) -> str:
        return f"{self.parser} seed {self.seed} case {self.index}: {self.kind}: {self.detail}"


@dataclass
class Result:
    parser: str
    seed: int
    cases: int = 0
    accepted: int = 0
    refused: int = 0
    other: int = 0
    hangs: int = 0
    slowest: float = 0.0  # CPU seconds of the slowest case
    slowest_index: int = -1
    slowest_wall: float = 0.0  # wall seconds of the case that took longest by the clock
    seconds: float = 0.0
    durations: list = field(default_factory=list, repr=False)  # CPU seconds per case, for medians
    traced_peak: int = 0  # largest tracemalloc peak of a sampled case, bytes
    traced_peak_index: int = -1
    rss_start: int = 0  # KiB
    rss_peak: int = 0  # KiB (ru_maxrss of the process)
    refusal_kinds: Counter = field(default_factory=Counter)
    failures: list = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.cases / self.seconds if self.seconds else 0.0

    @property
    def median(self) -> float:
        ordered = sorted(self.durations)
        return ordered[len(ordered) // 2] if ordered else 0.0

    def merge(self, other: Result) -> None:
        for name in ("cases", "accepted", "refused", "other", "hangs", "seconds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        if other.slowest > self.slowest:
            self.slowest, self.slowest_index = other.slowest, other.slowest_index
        self.slowest_wall = max(self.slowest_wall, other.slowest_wall)
        if other.traced_peak > self.traced_peak:
            self.traced_peak, self.traced_peak_index = other.traced_peak, other.traced_peak_index
        self.rss_start = self.rss_start or other.rss_start
        self.rss_peak = max(self.rss_peak, other.rss_peak)
        self.durations += other.durations
        self.refusal_kinds += other.refusal_kinds
        self.failures += other.failures


def _max_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _on_alarm(signum, frame):
    raise CaseTimeout()


def _traced_peak(parser, case, alarm: bool, bound: float) -> int:
    """The case run again under tracemalloc (so that its overhead is not in the timing): its peak."""
    gc.collect()
    tracemalloc.start()
    if alarm:
        signal.setitimer(signal.ITIMER_REAL, hang_after(bound) * 4)  # tracemalloc slows a case down
    try:
        parser.exercise(case)
    except BaseException:  # noqa: BLE001 - the outcome was taken from the timed run
        pass
    finally:
        if alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def hang_after(bound: float) -> float:
    """Wall seconds after which a case is stopped as hung: far past the bound, because the bound
    is on CPU time and a shared machine may give a case a small share of a core."""
    return max(10 * bound, 20.0)


def make_case(parser, seed: int, index: int):
    return parser.generate(random.Random(case_seed(seed, index)))


def run(parser, cases: int, seed: int, bound: float = 2.0, start: int = 0, memory_every: int = 16,
        memory_bound: int = 256 << 20, rss_growth_bound: int = 1 << 30, progress=None,
        keep_durations: bool = True) -> Result:
    """Run cases ``start`` .. ``start + cases - 1`` of ``parser`` (an instance from PARSERS).

    Each case is timed by the clock and in CPU time; one over ``bound`` CPU seconds is a failure (the
    CPU time, because the machine may be shared), and on the main thread an alarm stops a case after
    ``hang_after(bound)`` seconds by the clock (a hang). Every ``memory_every``-th case runs once more under
    tracemalloc: its peak must stay under ``memory_bound``; the process's peak RSS may grow by at most
    ``rss_growth_bound`` over the run. ``progress(index)`` is called before each case."""
    result = Result(parser.name, seed)
    result.rss_start = _max_rss_kib()
    alarm = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
    previous = signal.signal(signal.SIGALRM, _on_alarm) if alarm else None
    typed = parser.typed
    quiet = warnings.catch_warnings()  # pydicom warns and the engine logs about damaged input: expected here
    quiet.__enter__()
    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)
    began = time.perf_counter()
    try:
        for index in range(start, start + cases):
            if progress is not None:
                progress(index)
            case = make_case(parser, seed, index)
            if alarm:
                signal.setitimer(signal.ITIMER_REAL, hang_after(bound))
            started, started_cpu = time.perf_counter(), time.process_time()
            outcome, refusal = "accepted", None
            try:
                answer = parser.exercise(case)
                if answer is not None:
                    outcome, refusal = "refused", answer
            except typed as error:
                outcome, refusal = "refused", (type(error).__name__, str(error))
            except CaseTimeout:
                outcome = "hang"
            except (Exception, RecursionError, MemoryError) as error:  # noqa: BLE001 - what we hunt for
                outcome = "other"
                result.failures.append(Failure(parser.name, seed, index, "exception",
                                               f"{type(error).__name__}: {str(error)[:300]}"))
            finally:
                elapsed = time.perf_counter() - started
                cpu = time.process_time() - started_cpu
                if alarm:
                    signal.setitimer(signal.ITIMER_REAL, 0)
            if memory_every and index % memory_every == 0 and outcome != "hang":
                peak = _traced_peak(parser, case, alarm, bound)
                if peak > result.traced_peak:
                    result.traced_peak, result.traced_peak_index = peak, index
                if peak > memory_bound:
                    result.failures.append(Failure(parser.name, seed, index, "memory",
                                                   f"traced peak {peak >> 20} MiB"))
            result.cases += 1
            if outcome == "accepted":
                result.accepted += 1
            elif outcome == "refused":
                result.refused += 1
                kind, message = refusal
                result.refusal_kinds[kind] += 1
                if not str(message).strip():
                    result.failures.append(Failure(parser.name, seed, index, "empty message",
                                                   f"{kind} without a message"))
            elif outcome == "hang":
                result.hangs += 1
                result.failures.append(Failure(parser.name, seed, index, "hang",
                                               f"stopped after {elapsed:.1f} s"))
            else:
                result.other += 1
            if keep_durations:
                result.durations.append(cpu)
            if cpu > result.slowest:
                result.slowest, result.slowest_index = cpu, index
            result.slowest_wall = max(result.slowest_wall, elapsed)
            if cpu > bound and outcome != "hang":
                result.failures.append(Failure(parser.name, seed, index, "slow",
                                               f"{cpu * 1000:.0f} ms of CPU, {elapsed * 1000:.0f} ms by the clock "
                                               f"(bound {bound * 1000:.0f} ms)"))
    finally:
        if alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        logging.disable(logging.NOTSET)
        quiet.__exit__(None, None, None)
    result.seconds = time.perf_counter() - began
    result.rss_peak = _max_rss_kib()
    if (result.rss_peak - result.rss_start) * 1024 > rss_growth_bound:
        result.failures.append(Failure(parser.name, seed, -1, "memory", f"peak RSS grew by "
                                       f"{(result.rss_peak - result.rss_start) >> 10} MiB over the run"))
    return result


def replay(name: str, seed: int, index: int):
    """Make case ``index`` of ``seed`` again and run it without catching anything (for debugging)."""
    parser = PARSERS[name]()
    case = make_case(parser, seed, index)
    return case, parser.exercise(case)
