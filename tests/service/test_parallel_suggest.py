"""The suggest path: search while triage decides (``parallel_suggest``), no labelled
examples looked up for suggest, and serving pins BLAS threads."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from threadpoolctl import threadpool_info

from service.api.app import create_app
from service.config import Settings
from service.runtime import Engine, build_engine
from tests.support import SAMPLE, CountingEncoder, auth

QUESTIONS = [
    ("Camera records to microSD card", ""),  # community, suggest
    ("zzqx vvwy", ""),  # community, no match
    ("Why was I charged twice on my bill?", ""),  # staff (billing)
    ("Camera records to microSD card", "card 4111 1111 1111 1111"),  # staff (PII)
]


def _engine(settings: Settings, parallel: bool) -> Engine:
    engine = build_engine(
        settings.model_copy(update={"parallel_suggest": parallel}), encoder=CountingEncoder()
    )
    engine.upsert(SAMPLE)
    return engine


def _summary(engine: Engine, title: str, body: str) -> tuple[object, ...]:
    out = engine.suggest(title, body, k=3)
    result = out.result
    hits = [(h.thread.thread.id, round(h.score, 6)) for h in result.hits] if result else None
    return out.decision, out.triage.route, out.triage.queue, hits


def test_parallel_and_sequential_suggest_agree(tmp_path: Path, settings: Settings) -> None:
    seq = _engine(settings.model_copy(update={"data_dir": tmp_path / "seq"}), parallel=False)
    par = _engine(settings.model_copy(update={"data_dir": tmp_path / "par"}), parallel=True)
    assert par.searcher.executor is not None and seq.searcher.executor is None
    try:
        got = [_summary(par, t, b) for t, b in QUESTIONS]
        assert got == [_summary(seq, t, b) for t, b in QUESTIONS]
        assert [g[0] for g in got] == ["suggest", "no_match", "staff", "staff"]
        assert got[2][3] is None and got[3][3] is None  # staff: no peer suggestions at all
    finally:
        seq.close()
        par.close()


def test_search_failure_fails_community_questions_only(tmp_path: Path, settings: Settings) -> None:
    engine = _engine(settings.model_copy(update={"data_dir": tmp_path / "d"}), parallel=True)

    def broken(*_: object) -> None:
        raise RuntimeError("index gone")

    engine.searcher.search = broken  # type: ignore[method-assign,assignment]
    try:
        assert engine.suggest("Why was I charged twice on my bill?").decision == "staff"
        with pytest.raises(RuntimeError, match="index gone"):
            engine.suggest("Camera records to microSD card")
    finally:
        engine.close()


def _blas_threads() -> set[int]:
    """Threads of numpy's BLAS (the one the request path's matrix products use)."""
    return {
        i["num_threads"]
        for i in threadpool_info()
        if i["user_api"] == "blas" and "numpy" in i["filepath"]
    }


def test_serving_pins_blas_threads_and_restores_them(settings: Settings) -> None:
    before = _blas_threads()
    assert before, "numpy's BLAS should be visible to threadpoolctl"
    app = create_app(settings.model_copy(update={"blas_threads": 1}))
    with TestClient(app, headers=auth("admin")) as client:
        assert _blas_threads() == {1}
        assert client.post("/v1/suggest", json={"title": "hub offline"}).status_code == 200
    assert _blas_threads() == before


def test_serving_keeps_the_loaded_engine_out_of_full_collections(settings: Settings) -> None:
    """What the engine loaded is frozen out of the cyclic collector while the app serves (a
    full collection walked it inside a request: 115-130 ms at a million threads), and the
    heap is unfrozen when the app stops."""
    import gc

    assert gc.get_freeze_count() == 0
    with TestClient(create_app(settings), headers=auth("admin")) as client:
        engine = client.app.state.engine  # type: ignore[attr-defined]
        assert gc.is_tracked(engine)
        assert all(o is not engine for o in gc.get_objects())  # frozen: no generation has it
        assert gc.get_freeze_count() > 1000
        assert client.post("/v1/suggest", json={"title": "hub offline"}).status_code == 200
    assert gc.get_freeze_count() == 0


def test_suggest_skips_the_labelled_examples_triage_shows(loaded: Engine) -> None:
    text = "Camera records to microSD card"
    assert loaded.route(text).evidence  # /v1/triage shows the nearest labelled examples
    outcome = loaded.suggest(text)
    assert outcome.triage.evidence == [] and outcome.triage.p_staff is not None
    assert outcome.triage.reasons == loaded.route(text).reasons  # same decision and reasons


def test_the_engine_owns_every_pool_and_closes_them(settings: Settings) -> None:
    """One composition root: the search, keyword and triage pools are the engine's, made
    when it is built and shut when it closes (also as a context manager)."""
    with build_engine(settings, encoder=CountingEncoder()) as engine:
        pools = engine.pools
        assert pools.search is not None and pools.keyword is not None
        assert engine.searcher.executor is pools.keyword
        assert engine.triage is not None and engine.triage._pool is pools.triage
        assert engine.signals is engine.searcher.signals  # passed at construction
        engine.upsert(SAMPLE)
        assert engine.suggest("Camera records to microSD card").decision == "suggest"
    assert engine.closed
    for pool in (pools.search, pools.keyword, pools.triage):
        with pytest.raises(RuntimeError):  # shut down
            pool.submit(print)


def test_a_busy_server_searches_on_the_request_thread(tmp_path: Path, settings: Settings) -> None:
    """Beyond one suggest per core under way, the search runs after triage on the calling
    thread instead of the search pool; the answer is the same."""
    import threading

    from service.suggest import InFlight

    engine = _engine(settings.model_copy(update={"data_dir": tmp_path / "b"}), parallel=True)
    engine.in_flight = InFlight(limit=1)
    where: list[str] = []
    search = engine.searcher.search

    def spy(*args: object, **kw: object) -> object:
        where.append(threading.current_thread().name)
        return search(*args, **kw)  # type: ignore[arg-type]

    engine.searcher.search = spy  # type: ignore[method-assign,assignment]
    try:
        alone = _summary(engine, *QUESTIONS[0])
        assert where[-1].startswith("search")  # idle: on the search pool
        with engine.in_flight.entered():  # another suggest is under way
            busy = _summary(engine, *QUESTIONS[0])
        assert where[-1] == threading.current_thread().name and busy == alone
        with engine.in_flight.entered():  # staff: no search at all when not in parallel
            assert _summary(engine, *QUESTIONS[2])[0] == "staff"
        assert len(where) == 2
        assert engine.in_flight._count == 0
    finally:
        engine.close()
