"""Memory the JPIP core may use to answer faster, kept outside it (it holds locks; the core does not).

Both caches are keyed by the target id, which names one file's content for good: a replaced file
gets a new id, so nothing here can answer with another file's bytes (id() of an evicted source
would be reused by the next object)."""

from __future__ import annotations

import threading
from collections import OrderedDict


class LRU:
    """At most ``size`` entries, least recently used out first; thread-safe."""

    def __init__(self, size: int):
        self.size = size
        self.entries: OrderedDict = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key):
        with self.lock:
            value = self.entries.get(key)
            if value is not None:
                self.entries.move_to_end(key)
            return value

    def put(self, key, value) -> None:
        with self.lock:
            self.entries[key] = value
            self.entries.move_to_end(key)
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)


class ResponseCache:
    """Bodies of stateless responses, least recently used out first, within a byte budget.

    A stateless response is a function of the target's content (its tid) and the request's
    fields, so a repeated request (a thumbnail strip, a popular view) costs a dictionary lookup.
    """

    def __init__(self, budget: int):
        self.budget = budget
        self.largest = budget // 8  # 0 turns the cache off
        self.used = 0
        self.entries: OrderedDict = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key):
        with self.lock:
            entry = self.entries.get(key)
            if entry is not None:
                self.entries.move_to_end(key)
            return entry

    def put(self, key, headers: list, body: bytes) -> None:
        with self.lock:
            if key in self.entries:
                return
            self.entries[key] = (headers, body)
            self.used += len(body)
            while self.used > self.budget:
                _, (_, old) = self.entries.popitem(last=False)
                self.used -= len(old)
