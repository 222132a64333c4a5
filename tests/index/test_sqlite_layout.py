"""The SQLite thread table's column layout: the vector column comes last in a new store (a
read of a later column would walk the vector's overflow pages), and a store made before
the later columns existed gains them on open and keeps working."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from index.store.protocol import Row
from index.store.sqlite import SQLiteStore
from tests.support import make_thread

FIRST_RELEASE = """
CREATE TABLE threads (
    pk INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, title TEXT NOT NULL,
    body TEXT NOT NULL DEFAULT '', answer TEXT NOT NULL DEFAULT '',
    answer_votes INTEGER NOT NULL DEFAULT 0, accepted INTEGER NOT NULL DEFAULT 0,
    tags TEXT NOT NULL DEFAULT '[]', language TEXT, url TEXT, created_at TEXT,
    updated_at TEXT, content_hash TEXT NOT NULL, embed_model TEXT NOT NULL,
    embedding BLOB NOT NULL
)"""


def _columns(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [r[1] for r in conn.execute("PRAGMA table_info(threads)")]


def _round_trip(store: SQLiteStore) -> None:
    thread = make_thread("a", "Hub offline", answer="Restart it", answer_author="maria.h")
    pks, _ = store.upsert([Row(thread, "h", "m", np.ones(4, dtype=np.float32))])
    got = store.get_many([pks["a"]])[pks["a"]]
    assert got.thread.answer_author == "maria.h" and got.thread.answer == "Restart it"
    assert [pk for pk, _ in store.keyword_search("hub", 5)] == [pks["a"]]
    assert store.changes_since(0).pks.tolist() == [pks["a"]]


def test_a_new_store_keeps_the_vector_column_last(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "new.db")
    columns = _columns(tmp_path / "new.db")
    assert columns[-1] == "embedding" and {"gen", "answer_author"} <= set(columns)
    _round_trip(store)
    store.close()


def test_a_store_from_the_first_release_gains_the_later_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute(FIRST_RELEASE)
    store = SQLiteStore(path)
    assert _columns(path)[-2:] == ["gen", "answer_author"]  # appended after the vector
    _round_trip(store)
    store.close()


def test_suggest_reads_on_the_driver_match_the_shared_queries_and_fail_as_store_errors(
    tmp_path: Path,
) -> None:
    """signals and get_many skip SQLAlchemy's row machinery on SQLite; they must read what
    the shared (both-backend) queries read, and a failure is a StoreError naming the store."""
    from index.errors import StoreError
    from index.store.thread_store import SQLThreadStore

    store = SQLiteStore(tmp_path / "s.db")
    rows = [
        Row(
            make_thread(f"t{i}", f"Title {i}", answer="A", tags=["x", "y"], accepted=i % 2 == 0),
            "h",
            "m",
            np.ones(4, dtype=np.float32),
        )
        for i in range(6)
    ]
    pks = list(store.upsert(rows)[0].values())
    assert store.get_many(pks) == SQLThreadStore.get_many(store, pks)
    assert store.get_many(pks)[pks[0]].thread.tags == ["x", "y"]
    assert store.signals(pks) == SQLThreadStore.signals(store, pks)
    assert store.get_many([]) == {} and store.signals([]) == {}
    with pytest.raises(StoreError, match="store unavailable: no such table"):
        store.db.driver_rows("SELECT * FROM no_such_table")
    store.close()
