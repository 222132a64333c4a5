from pathlib import Path
from typing import Any

import pytest

from index.models import Thread
from retrieval.search import Searcher, SearchParams
from service.runtime import Engine
from tests.support import make_thread


def test_exact_question_finds_its_thread(loaded: Engine) -> None:
    result = loaded.searcher.search("Bulb flickers with a wall dimmer", "My bulbs buzz", k=2)
    assert result.decision == "suggest"
    assert result.hits[0].thread.thread.id == "t2"
    assert result.hits[0].similarity > 0.9


def test_nothing_close_abstains(loaded: Engine) -> None:
    strict = Searcher(loaded.corpus, loaded.encoder, SearchParams(min_similarity=0.99))
    result = strict.search("quarterly tax filing deadline", k=3)
    assert result.decision == "no_match" and result.hits == []
    assert result.best_similarity is not None and result.best_similarity < 0.99


def test_filters_restrict_results(loaded: Engine) -> None:
    open_ = Searcher(loaded.corpus, loaded.encoder, SearchParams(min_similarity=-1))
    pt = open_.search("reset hub factory", k=5, language="pt")
    assert [h.thread.thread.id for h in pt.hits] == ["t4"]
    cams = open_.search("reset hub factory", k=5, tags=["camera"])
    assert [h.thread.thread.id for h in cams.hits] == ["t3"]
    both = open_.search("reset hub factory", k=5, tags=["hub"], language="en")
    assert [h.thread.thread.id for h in both.hits] == ["t1"]


def test_deleted_thread_is_never_suggested(loaded: Engine) -> None:
    assert loaded.corpus.delete("t1")
    result = loaded.searcher.search("Reset the hub to factory settings", k=10)
    assert "t1" not in {h.thread.thread.id for h in result.hits}
    assert "t1" not in [t for t, _ in loaded.searcher.rerank("Reset the hub", "", ["t1", "t4"])][:1]


def test_rerank_orders_given_candidates_only(loaded: Engine) -> None:
    ranked = loaded.searcher.rerank("microSD camera", "", ["t1", "t3", "nope"])
    assert ranked[0][0] == "t3"
    assert {t for t, _ in ranked} == {"t1", "t3", "nope"}
    assert ranked[-1] == ("nope", float("-inf"))


def test_each_fusion_mode_ranks_the_match_first(loaded: Engine) -> None:
    for mode in ("rescore", "linear", "rrf", "dense", "bm25"):
        s = Searcher(loaded.corpus, loaded.encoder, SearchParams(fusion=mode, min_similarity=0))
        assert s.search("Camera records to microSD card", k=1).hits[0].thread.thread.id == "t3", (
            mode
        )


def test_new_thread_is_searchable_immediately(loaded: Engine) -> None:
    thread: Thread = make_thread("t9", "Water leak sensor placement", "Where to put it")
    loaded.corpus.upsert([thread])
    assert (
        loaded.searcher.search("Water leak sensor placement", k=1).hits[0].thread.thread.id == "t9"
    )


def test_filters_never_become_sql_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Audit finding 7: a filter matching more threads than SQLite allows variables (250,000)
    answered 503. With the limit lowered to 600, 700 matching threads stand in for it."""
    import sqlite3

    from index.models import Thread
    from index.store.sqlite import SQLiteStore
    from service.config import Settings
    from service.runtime import build_engine

    setup = SQLiteStore._setup

    def tight(self: SQLiteStore, conn: sqlite3.Connection) -> None:
        setup(self, conn)
        conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 600)

    monkeypatch.setattr(SQLiteStore, "_setup", tight)
    engine = build_engine(Settings(data_dir=tmp_path, model="hash:64"), with_triage=False)
    try:
        engine.upsert(
            [
                Thread(id=f"t{i}", title=f"router firmware question {i}", tags=["net"],
                       language="en")
                for i in range(700)
            ]
        )  # fmt: skip
        for tags, language in ((["net"], None), (None, "en"), (["net"], "en")):
            result = engine.searcher.search("router firmware", k=5, tags=tags, language=language)
            assert result.decision == "suggest" and len(result.hits) == 5
        assert engine.searcher.search("router firmware", k=5, tags=["other"]).hits == []
    finally:
        engine.close(save=False)


def test_dense_ranking_runs_no_keyword_search_and_shows_what_it_would_have(
    loaded: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keyword hits only add candidates to a dense ranking, scored by cosine: over an exact
    index they rank below the dense candidates, so the search is not run at all."""
    store = loaded.corpus.store
    questions = ["Reset the hub to factory settings", "Camera records to microSD card"]
    linear = Searcher(loaded.corpus, loaded.encoder, SearchParams(fusion="linear", dense_weight=1))
    widened = {q: [r[0] for r in linear.rank(q, limit=2)] for q in questions}
    calls: list[str] = []

    def keyword_search(text: str, *args: object, **kwargs: object) -> list[tuple[int, float]]:
        calls.append(text)
        return []

    monkeypatch.setattr(store, "keyword_search", keyword_search)
    dense = Searcher(loaded.corpus, loaded.encoder, SearchParams(fusion="dense", min_similarity=-1))
    for q in questions:
        shown = [r[0] for r in dense.rank(q, limit=2)]
        assert shown == widened[q][: len(shown)] and len(shown) == 2
        assert dense.search(q, k=2).hits
    assert calls == []  # never asked
    assert [r[0] for r in linear.rank(questions[0], limit=2)] and calls  # linear still asks


def test_a_filter_is_read_once_per_change_own_writes_at_once_others_at_the_refresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The keys a filter allows are cached: read again after this process writes (at once)
    or when the index applies another process's writes (its refresh), not per request."""
    from service.config import Settings
    from service.runtime import build_engine

    settings = Settings(data_dir=tmp_path, model="hash:64", min_similarity=-1)
    ours, other = (build_engine(settings, with_triage=False) for _ in range(2))
    reads: list[object] = []
    filter_pks = ours.store.filter_pks

    def counted(*args: Any) -> list[int]:
        reads.append(args)
        return filter_pks(*args)

    monkeypatch.setattr(ours.store, "filter_pks", counted)

    def found() -> set[str]:
        hits = ours.searcher.search("router firmware", k=10, tags=["net"]).hits
        return {h.thread.thread.id for h in hits}

    def thread(tid: str) -> Thread:
        return Thread(id=tid, title=f"router firmware {tid}", tags=["net"], language="en")

    try:
        ours.upsert([thread("t1"), Thread(id="t2", title="router firmware", tags=["x"])])
        assert found() == {"t1"} and found() == {"t1"}
        assert len(reads) == 1
        ours.upsert([thread("t3")])
        assert found() == {"t1", "t3"} and len(reads) == 2
        other.upsert([thread("t4")])
        assert found() == {"t1", "t3"} and len(reads) == 2  # not in our index yet
        ours.refresh_index()
        assert found() == {"t1", "t3", "t4"} and len(reads) == 3
    finally:
        ours.close(save=False)
        other.close(save=False)


def test_an_unknown_encoder_backend_is_refused_by_name() -> None:
    """Architecture review 7: an unknown backend silently became torch fp32."""
    from index.errors import EncoderError
    from retrieval.encoders.factory import load_encoder

    with pytest.raises(EncoderError, match="unknown encoder backend 'onnx'"):
        load_encoder("hash:8", backend="onnx")  # type: ignore[arg-type]
