"""A small per-process cache with a time bound, for hot-path lookups.

Each gunicorn worker has its own; nothing in it must be shared, and every entry is
at most `ttl` seconds stale. A ttl of 0 turns it off.
"""

import time


class TTLCache:
    MAX_ENTRIES = 10_000

    def __init__(self, ttl):
        self.ttl = ttl
        self.entries = {}

    def get(self, key):
        entry = self.entries.get(key)
        if entry and entry[1] > time.monotonic():
            return entry[0]
        return None

    def put(self, key, value):
        if self.ttl <= 0:
            return
        if len(self.entries) >= self.MAX_ENTRIES:
            self.entries = {}  # crude but bounded: a full cache starts over
        self.entries[key] = (value, time.monotonic() + self.ttl)
