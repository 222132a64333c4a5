"""The keys a tag/language filter allows, cached per single tag (round-2 security
finding 7: a cache keyed by the exact tag set was missed by adding one random tag, and
each miss re-read every matching key, 0.6 s at 250k threads).

A filter's pool is the union of its tags' pools. Each tag's pool is read from the store
once per generation the search can see; a tag no thread carries costs one indexed query
that returns nothing and adds nothing to the union. Unions are cached too, and the whole
cache is bounded by bytes, not entries."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np

CACHE_BYTES = 64 << 20  # key arrays kept (8 bytes a key): ~8M keys
Fetch = Callable[[Sequence[str] | None, str | None], list[int]]
Key = tuple[tuple[str, ...], str | None]


class FilterPools:
    def __init__(self, fetch: Fetch, budget: int = CACHE_BYTES) -> None:
        self.fetch, self.budget = fetch, budget
        self._cache: OrderedDict[Key, tuple[object, np.ndarray]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def keys(
        self, tags: Sequence[str] | None, language: str | None, generation: object
    ) -> np.ndarray:
        """The sorted keys of threads in ``language`` (if given) with any of ``tags``."""
        wanted = sorted({t.lower() for t in tags or ()})
        if not wanted:
            return self._get(((), language), generation, lambda: self.fetch(None, language))
        parts = {
            t: self._get(((t,), language), generation, partial(self.fetch, [t], language))
            for t in wanted
        }
        present = tuple(t for t in wanted if len(parts[t]))
        if len(present) <= 1:
            return parts[present[0]] if present else np.zeros(0, np.int64)
        return self._get(
            (present, language),
            generation,
            lambda: np.unique(np.concatenate([parts[t] for t in present])).tolist(),
        )

    def _get(self, key: Key, generation: object, read: Callable[[], list[int]]) -> np.ndarray:
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] == generation:
                self._cache.move_to_end(key)
                return hit[1]
        keys = np.sort(np.asarray(read(), dtype=np.int64))
        with self._lock:
            old = self._cache.pop(key, None)
            if old is not None:
                self._bytes -= old[1].nbytes
            self._cache[key] = (generation, keys)
            self._bytes += keys.nbytes
            while self._bytes > self.budget and len(self._cache) > 1:
                self._bytes -= self._cache.popitem(last=False)[1][1].nbytes
        return keys
