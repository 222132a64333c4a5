"""Knowledge gaps: what the community keeps asking that nothing answers.

The questions of a time window that nothing answered (``ActivityStore.unresolved``:
``no_match``, ``staff``, an escalation, a question posted after suggestions were shown,
suggestions voted not helpful) are embedded with the multilingual encoder (so "Como
atualizo o firmware?" and "How do I update the firmware?" fall together) and clustered
with scikit-learn's agglomerative clustering (average linkage, cosine distance, cut at
``distance``: no number of clusters to guess). A cluster of at least ``min_size`` questions
is a gap. A question's vector leans towards its words that the forum's own threads never
use (``Lean``): unanswered questions about one product share its name and frame ("Can
Lumio open my garage door?", "Can Lumio control motorised blinds?"); what tells their
topics apart is what the forum lacks. Each gap reports its size, the previous window's
questions that fall within the same distance of its centre (the trend), the languages and
outcomes, the questions nearest its centre (redacted when they were stored), and the
nearest existing thread with its similarity (a gap with a close thread is a retrieval or
wording problem; a far one is missing documentation).
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import numpy as np

from index.activity import UNRESOLVED_MAX, Unresolved
from retrieval.encoders.base import normalise
from retrieval.relevance import QUESTION_WORDS, WordAligner, content_words, words_of
from retrieval.text import thread_text
from service.ttl import TTLCache

# cosine distance where the dendrogram is cut, chosen on eval/devsets/gaps/tune.jsonl (six
# products the forum does not make, "Does Lumio make a smart lock?", asked in four languages)
# before the vectors leaned to the lacking words (then the one cut of 0.45-0.60 finding all
# six; 0.55 merged five into two; with ``Lean`` 0.425-0.525 all find them) and on the TUNE
# stream of tests/service/test_slow_insights.py (0.45-0.65 all do)
DISTANCE = 0.50
MIN_SIZE = 3
REPRESENTATIVES = 3
# the share of a question's vector given to its words the forum lacks, and the cosine at
# which two words count as one where a window's questions holding a word are counted
# (``Lean``): chosen 2026-12-07 among weights 0.3-0.6 x 0.6-0.9 (and the lean of before,
# lack alone at 0.3) as the one keeping eval/devsets/gaps/tune.jsonl's six topics found at
# the cut 0.50 that found the most topics of the other streams there and at the cuts
# beside it (report, blind, blind2, the served demo's); blind3, written before the choice,
# then found 3 of 4 topics against 2 (docs/evaluation.md)
LACKING_WEIGHT = 0.5
SAME_WORD = 0.8
FORUM_THREADS = 2000  # the newest threads whose words are the forum's vocabulary
FORUM_WORDS = 5000  # at most this many distinct words of theirs
LABEL_WORDS = 6  # words that name a gap
LABEL_LACK = 0.2  # the least lack (1 - best cosine to the forum's words) of a naming word
LEAN_NEW_WORDS = 5000  # words of the windows' questions not cached that are encoded (~1.2 s)


@dataclass
class Gap:
    size: int
    previous: int  # questions of the previous window within the same distance of the centre
    trend: int  # size - previous
    languages: dict[str, int]
    outcomes: dict[str, int]
    questions: list[str]  # nearest the centre first
    nearest_thread: str | None = None
    nearest_title: str | None = None
    nearest_similarity: float | None = None
    missing: list[str] = field(default_factory=list)  # its words the forum lacks (``Lean``)
    members: list[int] = field(default_factory=list, repr=False)  # indexes into the window


Nearest = Callable[[str], tuple[str, str, float] | None]  # question -> (id, title, similarity)


def find_gaps(
    current: Sequence[Unresolved],
    previous: Sequence[Unresolved],
    encode: Callable[[Sequence[str]], np.ndarray],
    nearest: Nearest | None = None,
    distance: float = DISTANCE,
    min_size: int = MIN_SIZE,
    naming: Callable[[list[list[str]]], list[list[str]]] | None = None,
) -> list[Gap]:
    """The gaps of ``current``, largest first (ties: growing faster first); ``naming`` (the
    ``Lean``'s ``missing``) names what each gap's questions ask that the forum lacks."""
    from sklearn.cluster import AgglomerativeClustering  # 1.5 s to import: not at start-up

    vectors = normalise(encode([u.text for u in current])) if current else np.zeros((0, 1))
    # a text the encoder gives no direction (nothing but punctuation) joins no gap
    usable = np.flatnonzero(np.linalg.norm(vectors, axis=1) > 0.5)
    if len(usable) < max(2, min_size):
        return []
    labels = np.full(len(current), -1)
    labels[usable] = AgglomerativeClustering(
        n_clusters=None, distance_threshold=distance, metric="cosine", linkage="average"
    ).fit_predict(vectors[usable])
    before = normalise(encode([u.text for u in previous])) if previous else None
    gaps = []
    for label in set(labels[usable].tolist()):
        members = [i for i, lab in enumerate(labels) if lab == label]
        if len(members) < min_size:
            continue
        centre = normalise(vectors[members].mean(axis=0, keepdims=True))[0]
        closeness = vectors[members] @ centre
        order = [members[i] for i in np.argsort(-closeness)]
        earlier = int(((before @ centre) >= 1 - distance).sum()) if before is not None else 0
        texts = list(dict.fromkeys(current[i].text for i in order))[:REPRESENTATIVES]
        gap = Gap(
            size=len(members),
            previous=earlier,
            trend=len(members) - earlier,
            languages=dict(Counter(current[i].language or "und" for i in members)),
            outcomes=dict(Counter(current[i].outcome for i in members)),
            questions=texts,
            members=order,
        )
        found = nearest(texts[0]) if nearest is not None else None
        if found is not None:
            gap.nearest_thread, gap.nearest_title, gap.nearest_similarity = found
        gaps.append(gap)
    if naming is not None and gaps:
        for gap, words in zip(
            gaps, naming([[current[i].text for i in g.members] for g in gaps]), strict=True
        ):
            gap.missing = words
    return sorted(gaps, key=lambda g: (-g.size, -g.trend))


def forum_vocabulary(
    aligner: WordAligner, texts: Iterable[str], words: int = FORUM_WORDS
) -> np.ndarray:
    """The unit word vectors of the first ``words`` distinct content words of ``texts``
    (threads' titles and bodies), in the aligner's (cached) word space."""
    return aligner.vectors(words_of(texts, words))


class Lean:
    """An encoder for a window's questions: each question's unit vector mixed, at
    ``weight``, with the weighted mean of its content words' vectors. A word weighs its
    ``lack`` (1 - its best cosine to any word of the forum, ``vocabulary``: "Lumio",
    "control" and "door" weigh nothing in a forum about Lumio's doors) times how rare it is
    among the window's questions (``log(n / df)``, a question counted for a word when it
    holds that word or one within ``SAME_WORD`` of it, a translation: "hay" and "esiste",
    lacking from an English forum too, are in every Spanish or Italian question, "persianas"
    and "blinds" only in one topic's). Two phrasings of one topic ("Can Lumio control
    motorised blinds?", "Do you sell smart blinds?") then meet in what they lack. A
    question whose words the forum all has, or all of whose lacking words every question of
    the window holds, keeps its own vector. ``missing`` names a gap by those words."""

    def __init__(
        self,
        encode: Callable[[Sequence[str]], np.ndarray],
        aligner: WordAligner,
        vocabulary: np.ndarray,
        weight: float = LACKING_WEIGHT,
    ):
        self.encode = encode
        self.aligner = aligner
        self.vocabulary = vocabulary
        self.weight = weight
        self.lack: dict[str, float] = {}  # the words of the questions encoded so far
        self._fresh: dict[str, np.ndarray] = {}  # the vectors it encoded itself (not cached)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        sentences = normalise(self.encode(texts))
        asked = [content_words(t, QUESTION_WORDS) for t in texts]
        found = self._vectors(list(dict.fromkeys(w for ws in asked for w in ws)))
        if not found or not len(self.vocabulary):
            return sentences
        unique = list(found)
        words = np.stack([found[w] for w in unique])
        far = np.clip(1.0 - (words @ self.vocabulary.T).max(axis=1), 0.0, None)
        self.lack.update(zip(unique, far.tolist(), strict=True))
        column = {w: i for i, w in enumerate(unique)}
        held = [[column[w] for w in ws if w in column] for ws in asked]
        weight = far * np.log(len(texts) / spread(words, held))
        out = sentences.copy()
        for i, rows in enumerate(held):
            mix = weight[rows] @ words[rows] if rows else None
            if mix is not None and float(np.linalg.norm(mix)) > 1e-6:
                mix /= np.linalg.norm(mix)
                out[i] = (1.0 - self.weight) * sentences[i] + self.weight * mix
        return normalise(out)

    def _vectors(self, words: list[str]) -> dict[str, np.ndarray]:
        """The vectors of ``words``: those the aligner has cached or this lean encoded
        before (a word of both windows is encoded once), and others encoded now, in order,
        without caching them in the aligner, until this lean has encoded
        ``LEAN_NEW_WORDS`` (a window's words are the public's: thousands of made-up ones
        must neither push the forum's words out of the relevance stage's cache nor cost
        more than a few seconds; a word left out gives its question no lean)."""
        found = self.aligner.known(words)
        found.update((w, self._fresh[w]) for w in words if w in self._fresh)
        room = max(0, LEAN_NEW_WORDS - len(self._fresh))
        new = [w for w in words if w not in found][:room]
        if new:
            self._fresh.update(zip(new, self.aligner.fresh(new), strict=True))
            found.update((w, self._fresh[w]) for w in new)
        return found

    def missing(self, groups: list[list[str]], top: int = LABEL_WORDS) -> list[list[str]]:
        """For each group of questions (a gap's, encoded before), its words the forum
        lacks, most telling first: each word's lack, for each of the group's questions
        holding it, times how rare it is among all the groups' questions (``log(n / df)``:
        "garaje" names its gap, "hay" and "esiste", lacking from an English forum too, are
        in every Spanish or Italian question). Words lacking less than ``LABEL_LACK`` are
        left out."""
        asked = [[content_words(t, QUESTION_WORDS) for t in group] for group in groups]
        n = sum(len(group) for group in asked)
        df = Counter(w for group in asked for words in group for w in words)
        out = []
        for group in asked:
            score: dict[str, float] = {}
            for words in group:
                for w in words:
                    lack = self.lack.get(w, 0.0)
                    if lack >= LABEL_LACK:
                        score[w] = score.get(w, 0.0) + lack * math.log(n / df[w])
            ranked = sorted(score, key=lambda w: -score[w])  # ties: first asked first
            out.append([w for w in ranked[:top] if score[w] > 0])
        return out


def spread(words: np.ndarray, held: Sequence[Sequence[int]], block: int = 1024) -> np.ndarray:
    """For each word (a row of ``words``, unit vectors), how many of the questions (each the
    rows of its words, ``held``) hold it or a word within ``SAME_WORD`` of it; at least 1.
    The word-to-word cosines are taken ``block`` rows at a time (5,000 words: 100 MB at
    once otherwise)."""
    near = np.zeros((len(words), len(words)), dtype=bool)
    for start in range(0, len(words), block):
        near[start : start + block] = words[start : start + block] @ words.T >= SAME_WORD
    counts = np.zeros(len(words), dtype=np.int64)
    for rows in held:
        if rows:
            counts += near[rows].any(axis=0)
    return np.maximum(counts, 1)


def purity(gaps: Sequence[Gap], truth: Sequence[str | None]) -> tuple[int, float]:
    """For an evaluation with planted gaps (``truth[i]``: the planted topic of question i,
    None for noise): how many topics are the majority of some gap, and the mean share of
    a gap's members that belong to its majority topic."""
    found: set[str] = set()
    shares = []
    for g in gaps:
        topics = Counter(truth[i] for i in g.members)
        top, count = topics.most_common(1)[0]
        shares.append(count / g.size)
        if top is not None:
            found.add(top)
    return len(found), round(float(np.mean(shares)), 4) if shares else 0.0


class _Engine(Protocol):  # what gaps_for needs of service.runtime.Engine
    @property
    def activity(self) -> Any: ...
    @property
    def searcher(self) -> Any: ...
    @property
    def encoder(self) -> Any: ...
    @property
    def triage(self) -> Any: ...
    @property
    def store(self) -> Any: ...


WINDOW = timedelta(days=7)
EARLIEST = datetime.min.replace(tzinfo=UTC)
CACHE_SECONDS = 60.0  # a window's gaps are computed at most once a minute
_computing = threading.Lock()  # one clustering at a time per process
_cache: TTLCache[GapsReport] = TTLCache(CACHE_SECONDS, size=64)


@dataclass(frozen=True)
class GapsReport:
    since: datetime
    until: datetime
    questions: int
    sampled: bool
    gaps: list[Gap]


def gaps_for(
    engine: _Engine,
    since: datetime | None = None,
    until: datetime | None = None,
    min_size: int = MIN_SIZE,
) -> GapsReport:
    """The gaps over ``since``..``until`` (default: the last 7 days), the trend against
    the window of the same length just before. The work is bounded whatever the public
    put in the window: at most ``UNRESOLVED_MAX`` questions (the newest) per window, each
    cut to ``QUESTION_CHARS``; one computation at a time per process, and a window's
    report (its ends taken to the minute) is reused for a minute, so the console's every
    load and concurrent agents cannot pile clusterings onto the serving threads."""
    # no window reaches before the first dates a datetime holds (until=0001-01-01 is valid)
    end = max(until or datetime.now(UTC), EARLIEST + 2 * WINDOW)
    start = min(since or end - WINDOW, end)  # a window ending before it starts is empty
    start = max(start, _before(end, timedelta(days=3660)))  # and the trend's window before it
    with _computing:
        # what the window holds now is part of the key: a new question is seen at once
        key = (id(engine), _minute(start), _minute(end), min_size, _held(engine, start, end))
        return _cache.get_or_compute(key, lambda: _compute(engine, start, end, min_size))


def _before(moment: datetime, span: timedelta) -> datetime:
    """``moment - span``, or the earliest datetime where that would be before year 1."""
    return moment - span if moment - EARLIEST > span else EARLIEST


def _held(engine: _Engine, start: datetime, end: datetime) -> int:
    return int(engine.activity.unresolved_count(start, end))


def _minute(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


def _compute(engine: _Engine, start: datetime, end: datetime, min_size: int) -> GapsReport:
    current = engine.activity.unresolved(start, end, UNRESOLVED_MAX)
    sampled = len(current) >= UNRESOLVED_MAX and _held(engine, start, end) > len(current)
    before = _before(start, end - start)
    previous = engine.activity.unresolved(before, start, UNRESOLVED_MAX)
    # the multilingual encoder: the relevance stage's word aligner's (the encoder pair's
    # multilingual half, else triage's), whose word vectors the lean is made of; without
    # one, triage's, else the retrieval encoder
    aligner = engine.searcher.aligner
    encoder = engine.triage.encoder if engine.triage is not None else engine.encoder
    encode: Callable[[Sequence[str]], np.ndarray] = encoder.encode
    naming = None
    if aligner is not None:
        corpus = engine.searcher.corpus
        stored = corpus.threads(corpus.newest(FORUM_THREADS))
        texts = (thread_text(s.thread) for s in stored.values())
        lean = Lean(aligner.encode, aligner, forum_vocabulary(aligner, texts))
        encode, naming = lean, lean.missing

    def nearest(text: str) -> tuple[str, str, float] | None:
        ranked = engine.searcher.rank(text, "", limit=5)
        if not ranked:
            return None
        pk, _, similarity, _ = max(ranked, key=lambda r: r[2])
        stored = engine.store.get_many([pk]).get(pk)
        if stored is None:
            return None
        return stored.thread.id, stored.thread.title, round(float(similarity), 4)

    gaps = find_gaps(current, previous, encode, nearest, min_size=min_size, naming=naming)
    return GapsReport(start, end, len(current), sampled, gaps)
