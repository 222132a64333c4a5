"""The community signals behind the ranking prior: accepted answers and answer votes from
the thread store, readers' helpful/unhelpful feedback from the activity log.

A suggest asks for the signals of every candidate the prior could move (up to a few
hundred threads); reading them costs two queries and, at a million threads, about as much
as the rest of the ranking. They change far more slowly than they are read, so they are
kept per thread for ``ttl`` seconds. A write this process makes shows at once: the cache
is emptied when this process commits a write to the thread store (a thread edited,
accepted, voted up: ``ThreadStore.writes``, no query) or records a vote. A write or vote
made through another replica reaches this replica's ranking within ``ttl``.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from index.activity import ActivityStore
from index.store.protocol import ThreadStore
from retrieval.prior import Signals

TTL_SECONDS = 10.0
CACHED_THREADS = 200_000


@dataclass
class CommunitySignals:
    store: ThreadStore
    activity: ActivityStore
    ttl: float = TTL_SECONDS
    size: int = CACHED_THREADS
    clock: Callable[[], float] = time.monotonic
    _cache: OrderedDict[int, tuple[float, Signals | None]] = field(default_factory=OrderedDict)
    _version: tuple[int, int] = (-1, -1)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, pks: Sequence[int]) -> dict[int, Signals]:
        """Only threads with some signal get an entry (no signal means a prior of 0)."""
        version = (self.store.writes(), self.activity.votes_recorded)
        now = self.clock()
        out: dict[int, Signals] = {}
        missing: list[int] = []
        with self._lock:
            if version != self._version:
                self._cache.clear()
                self._version = version
            for pk in pks:
                hit = self._cache.get(pk)
                if hit is None or now - hit[0] > self.ttl:
                    missing.append(pk)
                elif hit[1] is not None:
                    out[pk] = hit[1]
        if not missing:
            return out
        read = self._read(missing)
        out.update(read)
        with self._lock:
            if version == self._version:  # not emptied meanwhile by a newer write
                for pk in missing:
                    self._cache[pk] = (now, read.get(pk))
                    self._cache.move_to_end(pk)
                while len(self._cache) > self.size:
                    self._cache.popitem(last=False)
        return out

    def _read(self, pks: Sequence[int]) -> dict[int, Signals]:
        rows = self.store.signals(pks)
        votes = self.activity.feedback_counts([tid for tid, _, _ in rows.values()])
        out = {}
        for pk, (tid, accepted, answer_votes) in rows.items():
            helpful, unhelpful = votes.get(tid, (0, 0))
            if accepted or answer_votes or helpful or unhelpful:
                out[pk] = Signals(accepted, answer_votes, helpful, unhelpful)
        return out
