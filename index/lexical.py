"""Which query terms are worth full-text scoring in a large store.

BM25 weighs a term by its inverse document frequency; a term in a large share of the
documents adds almost nothing to any score but costs a walk over its whole posting
list, which at a million threads dominates the query. ``CommonTerms`` drops query terms
found in more than ``max(floor, fraction × documents)`` documents. Below ``floor``
documents nothing is ever dropped, so small stores (and the SemEval evaluation) rank
exactly as before. ``doc_freq(term, cap)`` need only count up to ``cap + 1``; the counts
are cached for ``ttl`` seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence


class CommonTerms:
    def __init__(
        self,
        doc_freq: Callable[[str, int], int],
        total: Callable[[], int],
        floor: int = 5000,
        fraction: float = 0.005,
        ttl: float = 60.0,
        size: int = 100_000,
    ) -> None:
        self._doc_freq = doc_freq
        self._total = total
        self.floor = floor
        self.fraction = fraction
        self.ttl = ttl
        self.size = size
        self._lock = threading.Lock()
        self._cache: dict[str, int] = {}
        self._documents = 0
        self._stamp = float("-inf")

    def _fresh(self) -> None:
        if time.monotonic() - self._stamp > self.ttl:
            self._cache.clear()
            self._documents = self._total()
            self._stamp = time.monotonic()

    def limit(self) -> int:
        with self._lock:
            self._fresh()
            return max(self.floor, int(self.fraction * self._documents))

    def keep(self, terms: Sequence[str]) -> list[str]:
        """``terms`` without the too-common ones (all of them in a small store)."""
        with self._lock:
            self._fresh()
            if self._documents <= self.floor:
                return list(terms)
            cap = max(self.floor, int(self.fraction * self._documents))
            kept = []
            for term in terms:
                df = self._cache.get(term)
                if df is None:
                    df = self._doc_freq(term, cap)
                    if len(self._cache) < self.size:
                        self._cache[term] = df
                if df <= cap:
                    kept.append(term)
            return kept
