"""The second stage of suggest: does this thread answer this question?

The first stage (vectors, keywords, fusion) finds candidates; its cosine alone cannot say
whether any of them answers: a question about the forum's own product that no thread
answers ("Does Lumio make a smart lock?") sits as close to the product's threads (0.38-0.65)
as many answerable cross-lingual questions do (0.43-0.90). What separates them is the
shape of the candidate list: an answered question has one thread (or a few) standing out
of the product's background, an unanswered one a flat list of near misses.

``RelevanceModel`` is a logistic regression over per-candidate signals, for the best
``DEPTH`` candidates by cosine; all but the last two come from what the first stage
already computed:

- ``cosine``: the per-pair similarity (retrieval.encoders.pair);
- ``above_background``: cosine minus the mean cosine of the list's ranks 6-20 (how far the
  thread stands out of what any question about the product reaches);
- ``below_best``: the best cosine of the list minus this one;
- ``margin``: this cosine minus the best *other* candidate's (positive only for the top);
- ``cross_lingual``: the thread's language is not the question's;
- ``english_question``;
- ``keyword_overlap``: the share of the question's analysed (stemmed, stopword-free) words
  found in the thread's title, body and answer, for a thread in the question's language
  (0 across languages, which ``cross_lingual`` tells the model);
- ``word_min`` / ``word_mean``: word-level late interaction across languages
  (``WordAligner``): each content word of the question against its closest word in the
  thread's title and body, by the multilingual encoder's word vectors (cached); the least
  matched word is the concept the thread never mentions.

Its output is a probability that the thread answers the question (a logistic model is
calibrated on its own training data; the threshold is chosen on out-of-fold
probabilities). A candidate is shown when it
reaches the question language's threshold; none: ``no_match``. The weights and the
thresholds are data (``retrieval/models/relevance.json``), trained and chosen by
``unsource eval relevance`` on the dev sets' tune splits (docs/evaluation.md).
"""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from index.store.analysis import ALL_STOPWORDS, folded_words, terms
from retrieval.encoders.base import normalise

FEATURES = (
    "cosine",
    "above_background",
    "below_best",
    "margin",
    "cross_lingual",
    "english_question",
    "keyword_overlap",
    "word_min",
    "word_mean",
)
DEPTH = 5  # candidates (best cosine first) that are scored and may be shown
BACKGROUND = (5, 20)  # ranks (0-based, end excluded) whose mean cosine is the background
QUESTION_WORDS = 12  # content words of a question compared (the first ones)
THREAD_WORDS = 60  # content words of a thread's title and body compared
WORD_CACHE = 100_000  # word vectors kept (about 200 MB at 512 float32 dimensions)
TEXT_CACHE = 4096  # candidate texts whose words are kept (a few KB each)
BUNDLED = Path(__file__).parent / "models" / "relevance.json"


@dataclass(frozen=True)
class Candidate:
    """What the relevance stage needs of one first-stage candidate."""

    cosine: float
    language: str | None  # the thread's
    text: str = ""  # title and body
    answer: str = ""


def content_words(text: str, limit: int) -> list[str]:
    """The first ``limit`` distinct words of ``text`` that carry meaning: no stopword of
    any served language, no number, no single letter. Not stemmed: the
    multilingual encoder reads inflected words (and words of other languages) as they are.
    Cached: the same threads come back as candidates for question after question."""
    return list(_content_words(text, limit))


@lru_cache(maxsize=TEXT_CACHE)
def _content_words(text: str, limit: int) -> tuple[str, ...]:
    words, folded = folded_words(text)
    out: dict[str, None] = {}
    for word, f in zip(words, folded, strict=True):
        if len(word) > 1 and not word.isdigit() and f not in ALL_STOPWORDS:
            out[word] = None
            if len(out) >= limit:
                break
    return tuple(out)


def words_of(texts: Iterable[str], limit: int) -> list[str]:
    """The first ``limit`` distinct content words of ``texts`` (threads), in order."""
    seen: dict[str, None] = {}
    for text in texts:
        seen.update(dict.fromkeys(content_words(text, THREAD_WORDS)))
        if len(seen) >= limit:
            break
    return list(seen)[:limit]


class WordAligner:
    """Late interaction at the word level, across languages: each content word of the
    question is matched with its closest word in the thread (cosine of the multilingual
    encoder's word vectors); ``word_min`` is the least-matched question word (the concept
    the thread does not mention: "doorbell" against a thread about bulbs), ``word_mean``
    the average match. Word vectors are cached (LRU), so a corpus's words are encoded once."""

    def __init__(self, encode: Callable[[Sequence[str]], np.ndarray], size: int = WORD_CACHE):
        self.encode = encode
        self.size = size
        # the cache: word -> its row of ``_rows`` (LRU order), rows freed by evictions reused;
        # a request's words are then one gather (``_rows[slots]``) instead of a row copied
        # per word (300 words: about 0.6 ms a question under the lock before)
        self._slots: OrderedDict[str, int] = OrderedDict()
        self._rows = np.zeros((0, 0), dtype=np.float32)
        self._free: list[int] = []
        self._lock = threading.Lock()

    def missing(self, words: Sequence[str]) -> list[str]:
        """The distinct ``words`` whose vectors are not cached."""
        with self._lock:
            return [w for w in dict.fromkeys(words) if w not in self._slots]

    def known(self, words: Sequence[str]) -> dict[str, np.ndarray]:
        """The cached vectors of those of ``words`` that have one (the cache unchanged)."""
        with self._lock:
            return {w: self._rows[self._slots[w]].copy() for w in words if w in self._slots}

    def fresh(self, words: Sequence[str]) -> np.ndarray:
        """The unit vectors of ``words`` (at least one), encoded now in one call and not
        cached: ``vectors`` caches them, a one-off job leaves the forum's words cached."""
        return normalise(self.encode(list(words)))

    def riders(self, question: str) -> list[str]:
        """The question's words the stage will align and has not cached: encoded in the
        same model call as the question itself (``BatchingEncoder.riders``)."""
        return self.missing(content_words(question, QUESTION_WORDS))

    def keep(self, words: Sequence[str], vectors: np.ndarray) -> None:
        """Cache ``words``' vectors (one row each, as the encoder gives them)."""
        found = normalise(vectors)
        with self._lock:
            for w, v in zip(words, found, strict=True):
                self._put(w, v)

    def _put(self, word: str, vector: np.ndarray) -> None:
        """Cache one unit vector, evicting the least recently used past ``size`` (under the
        lock)."""
        slot = self._slots.get(word)
        if slot is None:
            if self._free:
                slot = self._free.pop()
            else:
                slot = len(self._slots)
                if slot >= len(self._rows) or self._rows.shape[1] != len(vector):
                    self._grow(len(vector))
            self._slots[word] = slot
        else:
            self._slots.move_to_end(word)
        self._rows[slot] = vector
        while len(self._slots) > self.size:
            self._free.append(self._slots.popitem(last=False)[1])

    def _grow(self, dimension: int) -> None:
        """Room for twice the rows (at most ``size`` + 1: one word over, then evicted)."""
        rows = min(max(256, 2 * len(self._rows)), self.size + 1)
        grown = np.zeros((rows, dimension), dtype=np.float32)
        if self._rows.shape[1] == dimension:
            grown[: len(self._rows)] = self._rows
        self._rows = grown

    def vectors(self, words: Sequence[str]) -> np.ndarray:
        """The unit vectors of ``words``, one row each (cached; the missing ones encoded in
        one call)."""
        if not words:
            return np.zeros((0, 1), dtype=np.float32)
        with self._lock:  # the usual case: every word cached, one pass
            found = self._gather(words, encode_missing=False)
        if found is not None:
            return found
        missing = self.missing(words)
        if missing:
            self.keep(missing, self.encode(list(missing)))
        with self._lock:
            found = self._gather(words, encode_missing=True)
        assert found is not None
        return found

    def _gather(self, words: Sequence[str], encode_missing: bool) -> np.ndarray | None:
        """The cached rows of ``words`` (under the lock), marked recently used; a word not
        cached is encoded alone with ``encode_missing`` (evicted meanwhile by another
        request), else None is returned."""
        slots = [self._slots.get(w, -1) for w in words]
        if not encode_missing and -1 in slots:
            return None
        for w, slot in zip(words, slots, strict=True):
            if slot >= 0:
                self._slots.move_to_end(w)
        out = self._rows[np.asarray(slots, dtype=np.intp)]  # a copy; -1 rows set below
        for i, slot in enumerate(slots):
            if slot < 0:
                v = np.asarray(self.encode([words[i]]), dtype=np.float32)[0]
                out[i] = v / max(float(np.linalg.norm(v)), 1e-9)
        return out

    def warm(self, texts: Iterable[str], stop: threading.Event, words: int = 5000) -> int:
        """Encode the content words of ``texts`` (at most ``words`` distinct ones, 256 at a
        time) into the cache before questions need them, until done or ``stop`` is set;
        the words encoded. A replica's first questions otherwise pay for every new word
        (measured at 1M threads: p50 about 3-4 ms more over its first 300 questions)."""
        todo = words_of(texts, min(words, self.size))
        done = 0
        for start in range(0, len(todo), 256):
            if stop.is_set():
                break
            done += len(self.vectors(todo[start : start + 256]))
        return done

    def align(self, question: str, threads: Sequence[str]) -> list[tuple[float, float]]:
        """(word_min, word_mean) of the question against each thread text."""
        asked = content_words(question, QUESTION_WORDS)
        per_thread = [content_words(t, THREAD_WORDS) for t in threads]
        every = asked + [w for ws in per_thread for w in ws]
        if not asked or not every:
            return [(0.0, 0.0)] * len(threads)
        unique = list(dict.fromkeys(every))  # the question's words first (distinct already)
        column = {w: i for i, w in enumerate(unique)}
        matrix = self.vectors(unique)
        # every question word against every word of the candidates, in one product
        sims = matrix[: len(asked)] @ matrix.T
        out = []
        for ws in per_thread:
            if not ws:
                out.append((0.0, 0.0))
                continue
            best = sims[:, [column[w] for w in ws]].max(axis=1)
            out.append((float(best.min()), float(best.mean())))
        return out


def keyword_overlap(question: str, thread: str, language: str) -> float:
    """The share of the question's analysed words that the thread's text holds."""
    asked = set(terms(question, language))
    if not asked:
        return 0.0
    return len(asked & _terms_of(thread, language)) / len(asked)


@lru_cache(maxsize=TEXT_CACHE)
def _terms_of(text: str, language: str) -> frozenset[str]:
    """A candidate thread's analysed words (cached like ``content_words``)."""
    return frozenset(terms(text, language))


def list_features(
    question: str,
    language: str,
    candidates: Sequence[Candidate],
    aligner: WordAligner | None,
    depth: int = DEPTH,
) -> np.ndarray:
    """One row of ``FEATURES`` for each of the first ``depth`` candidates (given best cosine
    first); the list's background is read from all of them."""
    n = len(candidates)
    scored = candidates[:depth]
    out = np.zeros((len(scored), len(FEATURES)), dtype=np.float64)
    if n == 0:
        return out
    cos = np.array([c.cosine for c in candidates], dtype=np.float64)
    lo, hi = BACKGROUND
    tail = cos[lo:hi] if n > lo else cos[1:] if n > 1 else cos
    background = float(tail.mean())
    best = float(cos.max())
    second = float(np.sort(cos)[-2]) if n > 1 else background
    top = cos[: len(scored)]
    out[:, 0] = top
    out[:, 1] = top - background
    out[:, 2] = best - top
    out[:, 3] = np.where(top >= best, top - second, top - best)
    out[:, 5] = 1.0 if language == "en" else 0.0
    for i, c in enumerate(scored):
        same = c.language is None or c.language == language
        out[i, 4] = 0.0 if same else 1.0
        if same:
            out[i, 6] = keyword_overlap(question, f"{c.text} {c.answer}", language)
    if aligner is not None:
        for i, (low, mean) in enumerate(aligner.align(question, [c.text for c in scored])):
            out[i, 7], out[i, 8] = low, mean
    return out


@dataclass(frozen=True)
class RelevanceModel:
    """Logistic weights over ``FEATURES`` and a probability threshold per question language."""

    weights: tuple[float, ...]
    bias: float
    thresholds: dict[str, float] = field(default_factory=dict)
    default_threshold: float = 0.5
    version: str = "untrained"
    scale: tuple[float, ...] = ()  # feature standardisation (mean, std) used in training
    mean: tuple[float, ...] = ()

    def threshold_for(self, language: str) -> float:
        return self.thresholds.get(language, self.default_threshold)

    def probabilities(self, rows: np.ndarray) -> np.ndarray:
        if rows.size == 0:
            return np.zeros(0)
        x = rows
        if self.mean:
            x = (rows - np.asarray(self.mean)) / np.asarray(self.scale)
        z = x @ np.asarray(self.weights) + self.bias
        return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))

    def to_json(self) -> dict[str, object]:
        return {
            "features": list(FEATURES),
            "weights": list(self.weights),
            "bias": self.bias,
            "mean": list(self.mean),
            "scale": list(self.scale),
            "thresholds": self.thresholds,
            "default_threshold": self.default_threshold,
            "version": self.version,
        }

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> RelevanceModel:
        """Read a model file; a file for other features, or with non-finite numbers, is
        refused (ValueError naming the problem)."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if data.get("features") != list(FEATURES):
            raise ValueError(
                f"{path}: relevance model built for features {data.get('features')}, "
                f"this code computes {list(FEATURES)}"
            )
        numbers = [*data["weights"], data["bias"], *data["mean"], *data["scale"]]
        numbers += [*data["thresholds"].values(), data["default_threshold"]]
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in numbers):
            raise ValueError(f"{path}: relevance model holds a non-finite number")
        return cls(
            weights=tuple(float(w) for w in data["weights"]),
            bias=float(data["bias"]),
            thresholds={str(k): float(v) for k, v in data["thresholds"].items()},
            default_threshold=float(data["default_threshold"]),
            version=str(data["version"]),
            mean=tuple(float(v) for v in data["mean"]),
            scale=tuple(float(v) for v in data["scale"]),
        )
