"""The relevance stage (retrieval/relevance.py) with the hashing encoder: its signals, its
model file, and the two-stage search deciding suggest / no_match by probability."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from retrieval.encoders.base import HashingEncoder
from retrieval.relevance import (
    BUNDLED,
    FEATURES,
    Candidate,
    RelevanceModel,
    WordAligner,
    content_words,
    list_features,
)
from retrieval.search import Searcher
from service.config import ConfigError, Settings
from service.runtime import Engine, build_engine

COSINE = FEATURES.index("cosine")


class CountingWords:
    """The hashing encoder over words, counting the words it was asked for."""

    def __init__(self) -> None:
        self.inner = HashingEncoder(256)
        self.asked: list[str] = []
        self.calls: list[list[str]] = []

    def __call__(self, words: Sequence[str]) -> np.ndarray:
        self.asked.extend(words)
        self.calls.append(list(words))
        return self.inner.encode(words)


def cosine_model(threshold: float = 0.5) -> RelevanceModel:
    """A model whose probability rises with the cosine alone: 0.5 at a cosine of 0.5."""
    weights = [0.0] * len(FEATURES)
    weights[COSINE] = 20.0
    return RelevanceModel(tuple(weights), -10.0, {}, threshold, "test")


def test_content_words_drop_stopwords_numbers_and_single_letters() -> None:
    words = content_words("How do I reset the hub in 2024? A Lumio 4k cam, o meu hub", 10)
    assert words == ["reset", "hub", "lumio", "4k", "cam"]
    assert content_words("a b c the of", 5) == []


def test_word_alignment_finds_the_missing_concept_and_caches_words() -> None:
    words = CountingWords()
    aligner = WordAligner(words)
    (covered, partly) = aligner.align(
        "reset hub factory", ["factory reset for the hub", "doorbell battery hub"]
    )
    assert covered[0] == pytest.approx(1.0) and covered[1] == pytest.approx(1.0)
    # "reset" and "factory" are not in the second thread: only "hub" of three matches
    assert partly[0] < 0.5 and partly[1] == pytest.approx(1 / 3, abs=0.15)
    asked = len(words.asked)
    aligner.align("reset hub", ["factory reset hub"])
    assert len(words.asked) == asked  # every word was cached
    assert aligner.align("", ["anything"]) == [(0.0, 0.0)]


def test_the_word_cache_evicts_the_least_recently_used_and_reuses_its_rows() -> None:
    """A bounded cache: past ``size`` words the least recently used goes and its row takes
    the next word; every vector read back is its word's own, before and after."""
    words = CountingWords()
    aligner = WordAligner(words, size=3)
    letters = list("abcde")
    vecs = words.inner.encode(letters)
    truth = {w: v / np.linalg.norm(v) for w, v in zip(letters, vecs, strict=True)}

    def same(ws: list[str]) -> bool:
        return np.allclose(aligner.vectors(ws), np.vstack([truth[w] for w in ws]), atol=1e-6)

    assert same(["a", "b", "c"]) and words.asked == ["a", "b", "c"]
    assert same(["a"])  # a is now the most recently used: b goes first
    assert same(["d"]) and aligner.missing(list("abcd")) == ["b"]
    assert same(["e", "a"]) and aligner.missing(list("abcde")) == ["b", "c"]
    assert len(aligner._rows) <= 4  # three words and one over, never more rows
    assert same(list("edcba")) and same(["b", "b"])  # more words than the cache holds
    assert set(aligner.known(list("abcde"))) == set(aligner._slots) and len(aligner._slots) == 3
    assert aligner.vectors([]).shape == (0, 1)


def test_list_features_read_the_background_and_the_margin() -> None:
    cosines = [0.8, 0.5] + [0.3] * 18
    cands = [Candidate(c, "en" if i else "pt", f"thread {i}") for i, c in enumerate(cosines)]
    rows = list_features("question words", "en", cands, None, depth=3)
    assert rows.shape == (3, len(FEATURES))
    f = dict(zip(FEATURES, rows[0], strict=True))
    assert f["above_background"] == pytest.approx(0.5)  # ranks 6-20 are all 0.3
    assert f["margin"] == pytest.approx(0.3) and f["below_best"] == 0.0
    assert f["cross_lingual"] == 1.0 and f["english_question"] == 1.0
    g = dict(zip(FEATURES, rows[1], strict=True))
    assert g["margin"] == pytest.approx(-0.3) and g["below_best"] == pytest.approx(0.3)
    assert g["cross_lingual"] == 0.0
    assert list_features("q", "en", [], None).shape == (0, len(FEATURES))


def test_a_model_file_round_trips_and_bad_ones_are_refused(tmp_path: Path) -> None:
    model = RelevanceModel((0.5,) * len(FEATURES), -1.0, {"pt": 0.4}, 0.5, "v1")
    path = tmp_path / "m.json"
    model.save(path)
    assert RelevanceModel.load(path) == model
    assert model.threshold_for("pt") == 0.4 and model.threshold_for("it") == 0.5
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "features": ["cosine"]}))
    with pytest.raises(ValueError, match="features"):
        RelevanceModel.load(path)
    path.write_text(json.dumps({**data, "bias": float("nan")}))
    with pytest.raises(ValueError, match="non-finite"):
        RelevanceModel.load(path)


def test_the_shipped_model_loads() -> None:
    model = RelevanceModel.load(BUNDLED)
    assert set(model.thresholds) == {"en", "pt", "es", "it"}
    assert all(0.0 < t < 1.0 for t in model.thresholds.values())


def test_two_stage_search_shows_only_what_reaches_the_threshold(loaded: Engine) -> None:
    searcher = Searcher(
        loaded.corpus,
        loaded.encoder,
        loaded.searcher.params,
        relevance=cosine_model(0.5),
        aligner=WordAligner(CountingWords()),
    )
    found = searcher.search("Reset the hub to factory settings", "The hub light blinks orange")
    assert found.decision == "suggest" and found.hits[0].thread.thread.id == "t1"
    assert all(h.relevance is not None and h.relevance >= 0.5 for h in found.hits)
    assert found.threshold == 0.5 and found.best_relevance == pytest.approx(
        max(h.relevance or 0 for h in found.hits)
    )
    nothing = searcher.search("quux frobnicate widget zzqx")
    assert nothing.decision == "no_match" and nothing.hits == []
    assert nothing.best_relevance is not None and nothing.best_relevance < 0.5


def test_the_question_words_are_encoded_ahead_on_the_executor(loaded: Engine) -> None:
    """With an executor the question's new words are encoded there while the question is
    searched; the result is the one a search without it gives, and a question whose words
    are all known sends nothing ahead."""
    from concurrent.futures import ThreadPoolExecutor

    words = CountingWords()
    question = ("Reset the hub to factory settings", "The hub light blinks orange")
    model, params = cosine_model(0.5), loaded.searcher.params
    plain = Searcher(
        loaded.corpus, loaded.encoder, params, relevance=model, aligner=WordAligner(CountingWords())
    )
    with ThreadPoolExecutor(1) as pool:
        ahead = Searcher(
            loaded.corpus, loaded.encoder, params,
            relevance=model, aligner=WordAligner(words), executor=pool,
        )  # fmt: skip
        found = ahead.search(*question)
        asked = content_words(" ".join(question), 12)
        assert words.calls[0] == asked  # the question's words alone, ahead of the stage
        assert ahead._words_ahead(" ".join(question)) is None
    expected = plain.search(*question)
    assert [(h.thread.thread.id, h.relevance) for h in found.hits] == [
        (h.thread.thread.id, h.relevance) for h in expected.hits
    ]


def test_words_ahead_off_sends_nothing_ahead(loaded: Engine) -> None:
    """An engine with triage turns it off: triage's encode already runs beside the English
    model's."""
    from concurrent.futures import ThreadPoolExecutor

    assert loaded.triage is not None and not loaded.searcher.words_ahead
    words = CountingWords()
    with ThreadPoolExecutor(1) as pool:
        searcher = Searcher(
            loaded.corpus, loaded.encoder, loaded.searcher.params,
            relevance=cosine_model(0.5), aligner=WordAligner(words), executor=pool,
            words_ahead=False,
        )  # fmt: skip
        assert searcher._words_ahead("Reset the hub to factory settings") is None
        searcher.search("Reset the hub to factory settings")
    assert len(words.calls) == 1  # the stage's one call, question and thread words together


def test_warming_encodes_the_newest_threads_words_once_and_stops_when_asked(
    loaded: Engine,
) -> None:
    words = CountingWords()
    searcher = Searcher(
        loaded.corpus,
        loaded.encoder,
        loaded.searcher.params,
        relevance=cosine_model(0.5),
        aligner=WordAligner(words),
    )
    stopped = threading.Event()
    stopped.set()
    assert searcher.warm_words(stopped) == 0 and words.asked == []
    warmed = searcher.warm_words(threading.Event())
    assert warmed == len(words.asked) == len(set(words.asked)) > 0  # each word once
    assert "hub" in words.asked
    searcher.search("Reset the hub to factory settings", "The hub light blinks orange")
    assert len(words.asked) == warmed  # every word of the question and threads was warm
    assert Searcher(loaded.corpus, loaded.encoder).warm_words(threading.Event()) == 0


def test_warming_stops_at_its_word_budget() -> None:
    words = CountingWords()
    aligner = WordAligner(words)
    texts = [f"alpha{i} beta{i} gamma{i}" for i in range(100)]
    assert aligner.warm(texts, threading.Event(), words=10) == 10
    assert len(words.asked) == 10


def test_engine_warm_caches_reads_the_keyword_index_the_words_then_the_pages(
    loaded: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[str] = []
    monkeypatch.setattr(loaded.corpus, "warm_keyword_index", lambda stop: ran.append("kw"))
    monkeypatch.setattr(loaded.searcher, "warm_words", lambda stop: ran.append("words"))
    monkeypatch.setattr(loaded.corpus, "warm_pages", lambda stop: ran.append("pages"))
    assert not loaded.warmed.is_set()
    loaded.warm_caches(threading.Event())
    assert ran == ["kw", "words", "pages"]  # the default ranking (rescore) reads BM25
    assert loaded.warmed.is_set()
    ran.clear()
    monkeypatch.setattr(loaded.settings, "fusion", "dense")
    monkeypatch.setattr(loaded.settings, "prewarm_store", False)
    loaded.warm_caches(threading.Event())
    assert ran == ["words"]  # dense ranking never reads the keyword index


def test_a_failed_warm_up_still_ends_it(loaded: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(stop: threading.Event) -> int:
        raise OSError("disk gone")

    monkeypatch.setattr(loaded.corpus, "warm_keyword_index", broken)
    with pytest.raises(OSError):
        loaded.warm_caches(threading.Event())
    assert loaded.warmed.is_set()  # /readyz says done, not running for ever


def test_relevance_on_with_a_broken_model_is_refused_by_name(
    settings: Settings, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(ConfigError, match="relevance_model"):
        build_engine(settings.model_copy(update={"relevance": "on", "relevance_model": bad}))


def test_relevance_is_off_by_default_for_other_encoders(loaded: Engine) -> None:
    assert loaded.settings.relevance_on() is False and loaded.searcher.relevance is None
