"""FTS5's BM25 for a handful of known threads, without walking the keyword index.

The search's rescore asks for the BM25 of its ten best dense candidates. Asked of FTS5
(``MATCH ... AND rowid IN (...)``), that walks every posting of every query term, for
the OR-query and again for ``bm25()``'s document counts: about 2-3 ms a question at
10,000 threads (docs/benchmarks.md). Here the same number is computed from what the
few rows hold: their analysed text (re-analysed, as the triggers did), their token
counts (FTS5's ``%_docsize`` rows), the table's totals (its averages record) and each
term's document count, counted once and kept (``DocCounts``).

The formula is ``fts5Bm25Function`` in SQLite's fts5_aux.c: k1 = 1.2, b = 0.75;
``idf = ln((N - n + 0.5) / (n + 0.5))``, 1e-6 where that is not positive; a term's
frequency in a row is the sum of its column weights over its occurrences; the row's
length is its token count over all columns, the average that over the table.
tests/index/test_bm25.py checks it against ``bm25()`` on text in the four languages.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from functools import lru_cache

from index.store.analysis import analyze_text

K1 = 1.2
B = 0.75
# what the unicode61 tokenizer keeps as a token in analysed (folded, lower-case) text
_TOKEN = re.compile(r"[^\W_]+")


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


@lru_cache(maxsize=4096)
def field_tokens(text: str | None, language: str | None) -> tuple[str, ...]:
    """The tokens the keyword index holds for one field of a thread: its text analysed
    (as the triggers did) and split as FTS5 splits it. Cached: the same candidates come
    back question after question, and re-analysing them was about half of a rescore's time
    (cProfile, 2,000 threads: 0.66 of 1.4 ms)."""
    return tuple(tokens(analyze_text(text, language)))


def plain(term: str) -> bool:
    """A term FTS5 reads as one token: one only these can be counted by token equality
    (another is a phrase query, left to FTS5)."""
    return _TOKEN.fullmatch(term) is not None


def varints(blob: bytes) -> list[int]:
    """The SQLite varints FTS5 writes one after another (its averages and size records):
    big-endian 7-bit groups, the high bit set on all but the last; a 9th byte is 8 bits."""
    out: list[int] = []
    i = 0
    while i < len(blob):
        value = 0
        for n in range(9):
            byte = blob[i]
            i += 1
            if n == 8:
                value = (value << 8) | byte
                break
            value = (value << 7) | (byte & 0x7F)
            if not byte & 0x80:
                break
        out.append(value)
    return out


def idf(rows: int, hits: int) -> float:
    value = math.log((rows - hits + 0.5) / (hits + 0.5))
    return value if value > 0.0 else 1e-6


def score(
    terms: Sequence[str],
    weights: Sequence[float],
    columns: Sequence[Sequence[str]],
    length: int,
    average: float,
    idfs: Sequence[float],
) -> float:
    """One row's BM25 (higher = better, FTS5's value negated): ``columns`` its tokens per
    column, ``length`` its token count, ``average`` the table's mean row length."""
    total = 0.0
    norm = K1 * (1 - B + B * length / average)
    for term, term_idf in zip(terms, idfs, strict=True):
        freq = 0.0
        for column, weight in zip(columns, weights, strict=True):
            freq += weight * column.count(term)
        total += term_idf * ((freq * (K1 + 1.0)) / (freq + norm))
    return total


class DocCounts:
    """Each term's document count, counted once and kept until this process writes to
    the store (``writes`` moves) or ``ttl`` seconds pass (another process's writes move a
    count by little in that time); at most ``size`` terms."""

    def __init__(
        self,
        writes: Callable[[], int],
        ttl: float = 30.0,
        size: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._writes = writes
        self.ttl = ttl
        self.size = size
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[int, int, float]] = {}  # term -> (count, writes, when)
        self.counted = 0  # terms counted, not found kept

    def get(self, terms: Sequence[str], count: Callable[[str], int]) -> list[int]:
        """The document count of each of ``terms``; ``count`` counts one not kept."""
        now, writes = self._clock(), self._writes()
        out: list[int] = []
        for term in terms:
            hit = self._cache.get(term)
            if hit is not None and hit[1] == writes and now - hit[2] <= self.ttl:
                out.append(hit[0])
                continue
            found = count(term)  # outside the lock: concurrent questions do not wait
            self.counted += 1
            with self._lock:
                if len(self._cache) >= self.size:
                    self._cache.clear()
                self._cache[term] = (found, writes, now)
            out.append(found)
        return out
