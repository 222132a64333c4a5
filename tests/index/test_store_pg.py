"""What only PostgreSQL has: concurrent writers in separate connections, as replicas are.
The store contract itself (tests/index/test_store.py) runs on both backends through the
parametrized ``store`` fixture."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from index.store.factory import open_store
from index.store.postgres import PostgresStore
from index.store.protocol import Row, ThreadStore
from tests.pg import fresh_database
from tests.support import make_thread

pytestmark = pytest.mark.slow


@pytest.fixture
def pg_store(pg_server: str) -> Iterator[ThreadStore]:
    s = open_store(fresh_database(pg_server), default_path=Path("unused"))
    assert isinstance(s, PostgresStore) and s.ping()
    yield s
    s.close()


def test_concurrent_writers_get_distinct_ordered_generations(pg_store: ThreadStore) -> None:
    store = pg_store
    url = store.url  # type: ignore[attr-defined]
    others = [PostgresStore(url) for _ in range(4)]  # e.g. four replicas
    gens: list[int] = []
    lock = threading.Lock()

    def write(s: PostgresStore, n: int) -> None:
        for i in range(10):
            t = make_thread(f"w{n}-{i}", f"writer {n} thread {i}")
            _, g = s.upsert([Row(t, "h", "m", np.ones(4, dtype=np.float32))])
            with lock:
                gens.append(g)

    workers = [threading.Thread(target=write, args=(s, n)) for n, s in enumerate(others)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert sorted(gens) == list(range(1, 41)) and store.generation() == 40
    assert store.count() == 40 and store.changes_since(0).pks.size == 40
    for s in others:
        s.close()


def test_schema_is_created_once_by_replicas_starting_together(pg_server: str) -> None:
    url = fresh_database(pg_server)
    opened: list[PostgresStore] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            opened.append(PostgresStore(url))
        except BaseException as exc:
            errors.append(exc)

    starters = [threading.Thread(target=start) for _ in range(4)]
    for t in starters:
        t.start()
    for t in starters:
        t.join()
    assert errors == [] and len({s.store_id() for s in opened}) == 1
    for s in opened:
        s.close()


def test_a_store_from_before_the_answer_author_gains_it_and_is_stamped(pg_server: str) -> None:
    """A PostgreSQL store written before the thread store had migrations (no version table,
    no answer_author) is brought to head on open and keeps its threads."""
    import sqlalchemy as sa

    from index.migrate import THREADS

    url = fresh_database(pg_server)
    old = PostgresStore(url)
    old.upsert([Row(make_thread("a", "Hub offline"), "h", "m", np.ones(4, dtype=np.float32))])
    with old.db.writer.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE threads DROP COLUMN answer_author")
        conn.exec_driver_sql("DROP TABLE thread_schema_version")
    old.close()
    store = PostgresStore(url)
    assert THREADS.current(store.db.engine) == THREADS.head
    columns = {c["name"] for c in sa.inspect(store.db.engine).get_columns("threads")}
    assert {"answer_author", "fts", "gen"} <= columns
    assert [t.thread.id for t in store.get_many([1]).values()] == ["a"]
    assert [pk for pk, _ in store.keyword_search("hub", 5)] == [1]
    store.close()


def test_bad_url_is_a_clear_error() -> None:
    from index.errors import StoreError

    with pytest.raises(StoreError, match="database_url"):
        PostgresStore("postgresql://nobody@127.0.0.1:1/none", pool_size=1, timeout=2)


def test_engine_on_postgres_searches_snapshots_and_catches_up(
    pg_server: str, tmp_path: Path, triage_dir: Path
) -> None:
    from index import snapshot
    from service.config import Settings
    from service.runtime import build_engine
    from tests.support import SAMPLE, TEST_POLICY

    url = fresh_database(pg_server)

    def settings(name: str) -> Settings:
        return Settings(
            data_dir=tmp_path / name, database_url=url, model="hash:64", min_similarity=0.2,
            triage_model_dir=triage_dir, triage_policy=TEST_POLICY, fusion="bm25",
        )  # fmt: skip

    a, b = build_engine(settings("a")), build_engine(settings("b"))  # two replicas
    # one connection pool per replica: the activity tables borrow the thread store's
    assert a.activity.db.engine is a.store.db.engine is not b.store.db.engine
    pool = a.store.db.engine.pool
    assert pool.size() == 10 and pool._max_overflow == 10  # type: ignore[attr-defined]
    a.upsert(SAMPLE)
    assert b.corpus.index.count == 0 and b.corpus.refresh() == 4
    hit = b.searcher.search("microSD card", k=1).hits[0]  # keyword search on PostgreSQL
    assert hit.thread.thread.id == "t3"
    snap = snapshot.create(a.corpus, tmp_path / "s.tar")
    b.corpus.delete("t1")
    snapshot.restore(b.corpus, snap.path)
    a.corpus.refresh()
    assert a.corpus.verify().ok and b.corpus.verify().ok and a.corpus.count() == 4
    a.close()  # closes the shared pool once: the activity store does not dispose it
    assert not a.activity.db.owns_engine and a.store.db.owns_engine
    b.close()
