"""The ``rescore`` fusion: BM25 read for the best same-language candidates, centred."""

import pytest

from retrieval.rescore import keyword_rescore
from retrieval.search import Searcher, SearchParams
from service.runtime import Engine


def test_the_keyword_term_is_centred_over_the_rescored_keys_only() -> None:
    cosine = {1: 0.60, 2: 0.58, 3: 0.55, 9: 0.59}  # 9: a thread in another language
    fused = keyword_rescore(cosine, {1: 0.0, 2: 8.0, 3: 4.0}, [1, 2, 3], weight=0.3)
    assert fused[9] == cosine[9]  # not rescored: keeps its cosine
    rescored = [fused[k] - cosine[k] for k in (1, 2, 3)]
    assert sum(rescored) == pytest.approx(0.0)  # on average the rescored keys stay put
    # max-normalised 0, 1, 0.5 (mean 0.5): moved by -0.15, +0.15, 0
    assert [fused[k] for k in (1, 2, 3)] == pytest.approx([0.45, 0.73, 0.55])


def test_among_the_rescored_keys_the_order_is_linear_fusion_at_dense_weight_1_over_1_plus_w() -> (
    None
):
    cosine = {1: 0.62, 2: 0.60, 3: 0.52, 4: 0.50}
    bm25 = {1: 1.0, 2: 3.0, 3: 9.0}
    w = 0.3
    fused = keyword_rescore(cosine, bm25, list(cosine), w)
    dense_weight = 1 / (1 + w)
    linear = {
        k: dense_weight * c + (1 - dense_weight) * bm25.get(k, 0) / 9.0 for k, c in cosine.items()
    }
    assert sorted(fused, key=fused.__getitem__) == sorted(linear, key=linear.__getitem__)


def test_without_any_keyword_hit_the_cosines_stand() -> None:
    cosine = {1: 0.5, 2: 0.4}
    assert keyword_rescore(cosine, {}, [1, 2], 0.3) == cosine
    assert keyword_rescore(cosine, {1: 2.0}, [], 0.3) == cosine


def test_an_english_question_reads_bm25_within_its_best_english_candidates_only(
    loaded: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = loaded.corpus.store
    asked: list[tuple[str, list[int], str | None]] = []
    search = store.keyword_search

    def spy(text: str, k: int, within=None, weights=(2.0, 1.0, 0.5), language=None):  # type: ignore[no-untyped-def]
        asked.append((text, sorted(within or []), language))
        return search(text, k, within=within, weights=weights, language=language)

    monkeypatch.setattr(store, "keyword_search", spy)
    params = SearchParams(fusion="rescore", min_similarity=-1, rescore_depth=3)
    searcher = Searcher(loaded.corpus, loaded.encoder, params)
    ranked = searcher.rank("Reset the hub to factory settings", limit=4)
    assert ranked[0][0] == store.pks_for_ids(["t1"])["t1"]
    english = set(store.pks_for_ids(["t1", "t2", "t3"]).values())
    ((text, within, language),) = asked
    assert text.startswith("Reset") and language == "en"
    assert set(within) <= english and len(within) <= 3
    portuguese = store.pks_for_ids(["t4"])["t4"]
    fused, cosine = {r[0]: r[1] for r in ranked}, {r[0]: r[2] for r in ranked}
    assert fused[portuguese] == cosine[portuguese]  # another language keeps its cosine
    asked.clear()
    searcher.rank("Como reiniciar o hub de fábrica", limit=4)
    assert asked == []  # a Portuguese question is not rescored (English only by default)


def test_a_search_reads_its_candidates_rows_once_for_the_rescore_and_for_what_it_shows(
    loaded: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = loaded.corpus
    reads: list[list[int]] = []
    threads = corpus.threads

    def spy(pks):  # type: ignore[no-untyped-def]
        reads.append(list(pks))
        return threads(pks)

    monkeypatch.setattr(corpus, "threads", spy)
    params = SearchParams(fusion="rescore", min_similarity=-1, rescore_depth=10)
    searcher = Searcher(corpus, loaded.encoder, params)
    result = searcher.search("Reset the hub to factory settings", k=3)
    assert result.hits and len(reads) == 1  # the hits shown come from the rescore's read
    read_keys = {pk for pks in reads for pk in pks}
    assert {h.thread.pk for h in result.hits} <= read_keys
