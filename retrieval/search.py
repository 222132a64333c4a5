"""Hybrid search over the corpus: dense + BM25, fused, with an abstention threshold."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, wait
from dataclasses import dataclass, field
from functools import partial
from typing import Literal, TypedDict

import numpy as np

from index.corpus import Corpus
from index.store.protocol import StoredThread
from index.vectors.layered import Keys
from retrieval.encoders.base import Encoder
from retrieval.fusion import linear_fusion, reciprocal_rank_fusion
from retrieval.language import detect
from retrieval.pools import FilterPools
from retrieval.prior import SignalSource, apply_prior
from retrieval.relevance import (
    DEPTH,
    QUESTION_WORDS,
    Candidate,
    RelevanceModel,
    WordAligner,
    content_words,
    list_features,
)
from retrieval.rescore import keyword_rescore
from retrieval.text import question_text, thread_text

Fusion = Literal["rescore", "linear", "rrf", "dense", "bm25"]
KEYWORD_OVERFETCH = 20  # filtered keyword search: candidates fetched per one kept
KEYWORD_MAX = 5000


@dataclass(frozen=True)
class SearchParams:
    fusion: Fusion = "linear"
    dense_weight: float = 0.8
    rrf_k: int = 60
    candidates: int = 100
    min_similarity: float = 0.45
    bm25_weights: tuple[float, float, float] = (2.0, 1.0, 0.5)
    prior_weight: float = 0.0
    # abstention threshold per question language (``min_similarity`` for the others)
    language_thresholds: tuple[tuple[str, float], ...] = ()
    # ``rescore``: the question languages whose best same-language candidates BM25 reads,
    # how many of them, and the keyword term's weight (retrieval/rescore.py)
    rescore_languages: tuple[str, ...] = ("en",)
    rescore_depth: int = 10
    keyword_weight: float = 0.3

    def threshold_for(self, language: str) -> float:
        return dict(self.language_thresholds).get(language, self.min_similarity)


@dataclass(frozen=True)
class Shown:
    """What a search will show: the best ``top`` candidates whose cosine is ``floor`` or more."""

    top: int
    floor: float


def contenders(
    fused: dict[int, float], cosine: dict[int, float], shown: Shown, weight: float
) -> list[int]:
    """The candidates whose prior can matter to what is shown. The prior moves a score by
    at most ``weight`` either way, so with F the ``top``-th best fused score among the
    candidates that can be shown, one below ``F - 2 * weight`` stays below at least
    ``top`` others whatever the priors: its signals need not be read."""
    eligible = [pk for pk in fused if cosine[pk] >= shown.floor]
    if shown.top <= 0:
        return []
    if len(eligible) <= shown.top:
        return eligible
    cut = sorted((fused[pk] for pk in eligible), reverse=True)[shown.top - 1] - 2 * weight
    return [pk for pk in eligible if fused[pk] >= cut]


def _no_keyword_hits() -> list[tuple[int, float]]:
    """Dense ranking runs no keyword search. Its hits would only add candidates, scored by
    their cosine: over an exact index one outside the dense top ``limit`` scores below all
    of it, so it can never be shown; over IVF it could only stand in for a miss, and at a
    million threads (200 questions) the IVF's top 100 held 99.6 % of the exact top 5 with
    or without them. It cost 4-7 ms (p90 17 ms) of each question's two cores."""
    return []


@dataclass(frozen=True)
class Hit:
    thread: StoredThread
    score: float
    similarity: float
    bm25: float | None
    relevance: float | None = None  # the relevance stage's probability that it answers


@dataclass
class SearchResult:
    decision: Literal["suggest", "no_match"]
    hits: list[Hit] = field(default_factory=list)
    best_similarity: float | None = None
    language: str = "en"  # the question's detected language
    threshold: float = 0.0  # the abstention threshold applied (on relevance when it is on)
    best_relevance: float | None = None


class SearchOptions(TypedDict, total=False):
    """What a search may be asked besides the question (``Searcher.search``'s keywords)."""

    k: int
    tags: Sequence[str] | None
    language: str | None


class Searcher:
    def __init__(
        self,
        corpus: Corpus,
        encoder: Encoder,
        params: SearchParams | None = None,
        signals: SignalSource | None = None,
        executor: Executor | None = None,
        query_form: Callable[[np.ndarray], np.ndarray] | None = None,
        relevance: RelevanceModel | None = None,
        aligner: WordAligner | None = None,
        words_ahead: bool = True,
    ):
        self.corpus = corpus
        # the second stage: None decides by the cosine threshold alone
        self.relevance = relevance
        self.aligner = aligner
        self.words_ahead = words_ahead  # the stage's new question words encoded ahead
        # the query vector from the question's document vector (pairwise encoders)
        self.query_form = query_form
        self._pools = FilterPools(self.corpus.filter_keys)
        self.encoder = encoder
        self.params = params or SearchParams()
        self.signals = signals  # community signals for the ranking prior
        self.executor = executor  # given: keyword search runs there while the query encodes

    def _keyword(
        self,
        query: str,
        limit: int,
        within: Sequence[int] | None,
        allowed: np.ndarray | None = None,
        asked_in: str | None = None,
    ) -> Callable[[], list[tuple[int, float]]]:
        """The BM25 candidates (the question analysed in its own language), started now on
        the executor if there is one. With a tag/language filter (``allowed``, its keys)
        the search is not restricted in SQL (SQLite checks a key list or a subquery row by
        row: 240 ms at 10k threads, and a list over 250,000 keys is refused); it fetches
        ``KEYWORD_OVERFETCH`` times as many and keeps the allowed ones."""
        fetch = limit if allowed is None else min(limit * KEYWORD_OVERFETCH, KEYWORD_MAX)
        search = partial(
            self.corpus.keyword_search,
            query,
            fetch,
            within=within,
            weights=self.params.bm25_weights,
            language=asked_in or detect(query),
        )

        def job() -> list[tuple[int, float]]:
            hits = search()
            if allowed is None or not hits:
                return hits
            keys = np.fromiter((pk for pk, _ in hits), dtype=np.int64, count=len(hits))
            keep = np.isin(keys, allowed)
            return [h for h, ok in zip(hits, keep, strict=True) if ok][:limit]

        return job if self.executor is None else self.executor.submit(job).result

    def _score(
        self,
        qvec: np.ndarray,
        pool: Keys | None,
        limit: int,
        keyword: Callable[[], list[tuple[int, float]]],
        shown: Shown | None = None,
        rescore: Callable[[dict[int, float]], dict[int, float]] | None = None,
    ) -> tuple[dict[int, float], dict[int, float], dict[int, float]]:
        """Scores for the candidates: (fused, cosine, bm25), keyed by thread pk. With
        ``shown``, the prior is looked up only for the candidates it could carry into
        what is shown (``contenders``); the others keep their fused score. ``rescore``
        (fusion ``rescore``): BM25 of the best same-language candidates, from the cosines."""
        p = self.params
        dense = dict(self.corpus.nearest(qvec, limit, within=pool))
        lexical = dict(keyword())
        missing = [pk for pk in lexical if pk not in dense]
        if missing:
            vecs = self.corpus.vectors_for(missing)
            dense.update({pk: float(np.dot(v, qvec)) for pk, v in vecs.items()})
        lexical = {pk: s for pk, s in lexical.items() if pk in dense}  # drop rows deleted mid-way
        if rescore is not None:
            lexical = rescore(dense)
            fused = keyword_rescore(dense, lexical, lexical.keys(), p.keyword_weight)
        elif p.fusion in ("dense", "rescore"):
            fused = dict(dense)
        elif p.fusion == "bm25":
            fused = {pk: lexical.get(pk, 0.0) for pk in dense}
        elif p.fusion == "rrf":
            rankings = [
                sorted(dense, key=lambda k: -dense[k]),
                sorted(lexical, key=lambda k: -lexical[k]),
            ]
            fused = reciprocal_rank_fusion(rankings, k=p.rrf_k)
        else:
            fused = linear_fusion(dense, lexical, p.dense_weight)
        if self.signals is not None and p.prior_weight:
            judged = (
                list(fused) if shown is None else contenders(fused, dense, shown, p.prior_weight)
            )
            fused = apply_prior(fused, self.signals(judged), p.prior_weight)
        return fused, dense, lexical

    def rank(
        self,
        title: str,
        body: str = "",
        limit: int | None = None,
        tags: Sequence[str] | None = None,
        language: str | None = None,
        within: Sequence[int] | None = None,
        asked_in: str | None = None,
        shown: Shown | None = None,
        read: dict[int, StoredThread] | None = None,
    ) -> list[tuple[int, float, float, float | None]]:
        """All candidates, best first, as (pk, fused score, cosine, bm25 or None).

        ``within`` restricts the search to those thread keys; tags/language filter further.
        ``asked_in`` is the question's language when the caller has detected it already.
        ``shown``: only the best ``top`` candidates at or above a cosine ``floor`` will be
        used, so the rest of the order need not be exact (``contenders``). ``read``
        collects the candidate rows the ranking read (the rescore's), for the caller to
        reuse instead of reading them again.
        """
        query = question_text(title, body)
        allowed = self._pool(tags, language) if (tags or language) else None
        pool: Keys | None = allowed
        if within is not None:
            pool = list(within) if allowed is None else sorted(set(allowed.tolist()) & set(within))
        limit = limit or self.params.candidates
        fusion = self.params.fusion
        keyword = (
            _no_keyword_hits
            if fusion in ("dense", "rescore")
            else self._keyword(query, limit, within, allowed, asked_in)
        )
        language = asked_in or detect(query)
        rescore = (
            partial(self._same_language_bm25, query, language, {} if read is None else read)
            if fusion == "rescore" and language in self.params.rescore_languages
            else None
        )
        qvec = self.encoder.encode([query])[0]
        if self.query_form is not None:
            qvec = self.query_form(qvec)
        fused, dense, lexical = self._score(qvec, pool, limit, keyword, shown, rescore)
        order = sorted(fused, key=lambda pk: (-fused[pk], pk))
        return [(pk, fused[pk], dense[pk], lexical.get(pk)) for pk in order]

    def _same_language_bm25(
        self, query: str, language: str, read: dict[int, StoredThread], cosine: dict[int, float]
    ) -> dict[int, float]:
        """BM25 for the best ``rescore_depth`` candidates (by cosine) written in the
        question's language, keyed by thread pk; one with no keyword hit scores 0. The
        rows it reads (for their language) are added to ``read``."""
        best = sorted(cosine, key=lambda pk: (-cosine[pk], pk))[: self.params.rescore_depth]
        stored = self._threads(best, read)
        same = [pk for pk in best if pk in stored and stored[pk].thread.language == language]
        if not same:
            return {}
        hits = self.corpus.keyword_search(
            query, len(same), within=same, weights=self.params.bm25_weights, language=language
        )
        found = dict(hits)
        return {pk: found.get(pk, 0.0) for pk in same}

    def _threads(self, pks: list[int], read: dict[int, StoredThread]) -> dict[int, StoredThread]:
        """The stored rows of ``pks``, those already in ``read`` (this request's) not read
        again; the new ones are added to it."""
        missing = [pk for pk in pks if pk not in read]
        if missing:
            read.update(self.corpus.threads(missing))
        return {pk: read[pk] for pk in pks if pk in read}

    def warm_words(self, stop: threading.Event, threads: int = 2000) -> int:
        """The relevance stage's word vectors for the words of the ``threads`` newest
        threads, encoded before questions need them (a replica's start-up job); the words
        encoded, 0 without the stage."""
        if self.aligner is None or self.relevance is None:
            return 0
        stored = self.corpus.threads(self.corpus.newest(threads))
        return self.aligner.warm((thread_text(s.thread) for s in stored.values()), stop)

    def _pool(self, tags: Sequence[str] | None, language: str | None) -> np.ndarray:
        """The keys a tag/language filter allows, as an array, cached per tag until this
        process writes to the store or the vector index applies other processes' writes
        (at its refresh): a popular filter is read from the store once per change the
        search can see, not once per request; a key the index lacks is never found
        anyway. (Asking the store its generation instead cost 0.9 ms a request at 1M
        threads.)"""
        generation = self.corpus.seen()
        return self._pools.keys(tags, language, generation)

    def search(
        self,
        title: str,
        body: str = "",
        k: int = 5,
        tags: Sequence[str] | None = None,
        language: str | None = None,
    ) -> SearchResult:
        """Top ``k`` threads that answer the question: with the relevance stage, those
        whose probability reaches the question language's threshold (``_relevant``);
        without it, those whose cosine passes the abstention threshold."""
        question = question_text(title, body)
        asked_in = detect(question)
        model = self.relevance
        ahead = self._words_ahead(question) if model is not None else None
        if model is not None:  # the candidates the relevance stage may show: its best DEPTH
            threshold, shown = model.threshold_for(asked_in), Shown(DEPTH, -1.0)
        else:
            threshold = self.params.threshold_for(asked_in)
            shown = Shown(k, threshold)
        read: dict[int, StoredThread] = {}
        ranked = self.rank(
            title,
            body,
            max(self.params.candidates, k),
            tags,
            language,
            asked_in=asked_in,
            shown=shown,
            read=read,
        )
        if model is not None:
            if ahead is not None:
                wait([ahead])  # its failure, if any, is met again (and raised) by the stage
            return self._relevant(model, question, ranked, k, asked_in, read)
        best = max((r[2] for r in ranked), default=None)
        passing = [r for r in ranked if r[2] >= threshold][:k]
        stored = self._threads([r[0] for r in passing], read)
        hits = [Hit(stored[pk], s, sim, b) for pk, s, sim, b in passing if pk in stored]
        decision: Literal["suggest", "no_match"] = "suggest" if hits else "no_match"
        return SearchResult(decision, hits, best, asked_in, threshold)

    def _words_ahead(self, question: str) -> Future[np.ndarray] | None:
        """The relevance stage's vectors for the question's words not yet cached, encoded
        on the executor while the question itself is encoded and searched (new words cost
        the multilingual model a call of their own, 2-3 ms on one core); not with
        ``words_ahead`` off (the engine turns it off when triage encodes beside it)."""
        if not self.words_ahead or self.executor is None or self.aligner is None:
            return None
        missing = self.aligner.missing(content_words(question, QUESTION_WORDS))
        return self.executor.submit(self.aligner.vectors, missing) if missing else None

    def _relevant(
        self,
        model: RelevanceModel,
        question: str,
        ranked: list[tuple[int, float, float, float | None]],
        k: int,
        asked_in: str,
        read: dict[int, StoredThread],
    ) -> SearchResult:
        """The two-stage search: the first stage's candidates, best cosine first, are read
        by the relevance model (its list signals over the best 20, its pair signals for
        the best ``DEPTH``); those reaching the threshold are shown in the first stage's
        order (fused score with the community prior), at most ``k``."""
        threshold = model.threshold_for(asked_in)
        by_cosine = sorted(ranked, key=lambda r: (-r[2], r[0]))[:20]
        best = by_cosine[0][2] if by_cosine else None
        stored = self._threads([r[0] for r in by_cosine[:DEPTH]], read)
        candidates = [
            Candidate(cos, stored[pk].thread.language, thread_text(stored[pk].thread),
                      stored[pk].thread.answer)
            if pk in stored else Candidate(cos, None)
            for pk, _, cos, _ in by_cosine
        ]  # fmt: skip
        probs = model.probabilities(list_features(question, asked_in, candidates, self.aligner))
        passing = [
            (r, float(p))
            for r, p in zip(by_cosine, probs, strict=False)
            if p >= threshold and r[0] in stored
        ]
        passing.sort(key=lambda rp: (-rp[0][1], rp[0][0]))
        hits = [Hit(stored[pk], s, sim, b, p) for (pk, s, sim, b), p in passing[:k]]
        decision: Literal["suggest", "no_match"] = "suggest" if hits else "no_match"
        top = float(probs.max()) if len(probs) else None
        return SearchResult(decision, hits, best, asked_in, threshold, top)

    def rerank(self, title: str, body: str, thread_ids: Sequence[str]) -> list[tuple[str, float]]:
        """Score given threads for a question (the SemEval candidates protocol), best first."""
        pks = self.corpus.keys_for(thread_ids)
        ranked = self.rank(title, body, limit=len(pks), within=list(pks.values()))
        fused = {pk: score for pk, score, _, _ in ranked}
        by_pk = {pk: tid for tid, pk in pks.items()}
        scored = [(by_pk[pk], s) for pk, s in fused.items()]
        scored += [(t, float("-inf")) for t in thread_ids if t not in pks]
        return sorted(scored, key=lambda x: -x[1])
