"""Which query terms are worth full-text scoring in a large store.

BM25 weighs a term by its inverse document frequency; a term in a large share of the
documents adds almost nothing to any score but costs a walk over its whole posting
list, which at a million threads dominates the query. ``CommonTerms`` drops query terms
found in more than ``max(floor, fraction × documents)`` documents. Below ``floor``
documents nothing is ever dropped, so small stores (and the SemEval evaluation) rank
exactly as before. ``doc_freq(term, cap)`` need only count up to ``cap + 1``.

The terms left can still add up: a long question with twenty terms under the cap makes
FTS5 score every thread that holds any of them (at a million threads, p99 98 ms for one
question). So the terms are also kept rarest first while their document counts add up to
no more than ``budget`` postings (the rarest term always stays): the terms given up are
the question's commonest, whose IDF adds least to BM25. The budget too applies only above
``floor`` documents.

Counting a common term costs about half a millisecond at a million threads, so counts are
kept: the document total is re-read every ``ttl`` seconds, each term's count for
``term_ttl`` seconds (a term's share of the documents moves slowly), and at most ``size``
terms (rare terms beyond that are counted each time, which is cheap for them). Counting
happens outside the lock, so concurrent queries do not wait on each other.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence


class CommonTerms:
    def __init__(
        self,
        doc_freq: Callable[[str, int], int],
        total: Callable[[], int],
        floor: int = 5000,
        fraction: float = 0.005,
        budget: int = 5000,
        ttl: float = 60.0,
        term_ttl: float = 3600.0,
        size: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._doc_freq = doc_freq
        self._total = total
        self.floor = floor
        self.fraction = fraction
        self.budget = budget
        self.ttl = ttl
        self.term_ttl = term_ttl
        self.size = size
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[int, int, float]] = {}  # term -> (count, cap, when)
        self._documents = 0
        self._stamp = float("-inf")
        self.counted = 0  # doc_freq calls made

    def _refresh(self) -> int:
        """The document total, re-read once ``ttl`` has passed; expired terms go then."""
        with self._lock:
            now = self._clock()
            if now - self._stamp > self.ttl:
                self._documents = self._total()
                self._stamp = now
                old = [t for t, (_, _, when) in self._cache.items() if now - when > self.term_ttl]
                for term in old:
                    del self._cache[term]
            return self._documents

    def limit(self) -> int:
        return max(self.floor, int(self.fraction * self._refresh()))

    def prime(self, counts: Iterable[tuple[str, int]]) -> int:
        """Take exact document counts, read in one pass over the keyword index as a replica
        starts, so its first questions do not each count their terms (at a million threads
        a question's unseen terms cost milliseconds to count). Kept: the terms whose
        counting would walk more than a tenth of the cap's postings, at most ``size``
        terms in all; nothing in a store small enough never to drop a term. The terms
        kept; ``counts`` is read no further once the cache is full."""
        documents = self._refresh()
        if documents <= self.floor:
            return 0
        cap = max(self.floor, int(self.fraction * documents))
        kept = 0
        for term, df in counts:
            if df * 10 <= cap:
                continue
            with self._lock:
                if term not in self._cache and len(self._cache) >= self.size:
                    break
                self._cache[term] = (df, cap, self._clock())
            kept += 1
        return kept

    def keep(self, terms: Sequence[str]) -> list[str]:
        """``terms`` without the too-common ones, in their order (all of them in a small
        store)."""
        documents = self._refresh()
        if documents <= self.floor:
            return list(terms)
        cap = max(self.floor, int(self.fraction * documents))
        counted: list[tuple[int, str]] = []
        for term in terms:
            now = self._clock()
            hit = self._cache.get(term)
            # a count that hit an older cap says only "more than that cap": count again
            if hit is None or now - hit[2] > self.term_ttl or (hit[1] != cap and hit[0] > hit[1]):
                df = self._doc_freq(term, cap)
                self.counted += 1
                with self._lock:
                    if term in self._cache or len(self._cache) < self.size:
                        self._cache[term] = (df, cap, now)
            else:
                df = hit[0]
            if df <= cap:
                counted.append((df, term))
        within: set[str] = set()
        postings = 0
        for df, term in sorted(counted):
            if within and postings + df > self.budget:
                break
            within.add(term)
            postings += df
        return [term for _, term in counted if term in within]
