"""The SQLite thread table's column layout: the vector column comes last in a new store (a
read of a later column would walk the vector's overflow pages), and a store made before
the later columns existed gains them on open (Alembic, index/store/migrations/), keeps
working, and ends with the schema a new store is created with."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from index.migrate import THREADS
from index.sql import DriverStatement
from index.store import sqlite as sqlite_store
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
    assert THREADS.current(store.db.engine) == THREADS.head
    _round_trip(store)
    store.close()


def _schema(path: Path) -> tuple[set[str], set[tuple[str, str]]]:
    """Each table's columns and every index, trigger and table by name."""
    with sqlite3.connect(path) as conn:
        objects = set(
            conn.execute("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")
        )
        columns = {
            f"{table}.{r[1]}"
            for kind, table in objects
            if kind == "table"
            for r in conn.execute(f"PRAGMA table_info({table})")
        }
    return columns, objects


def test_a_migrated_store_has_the_schema_of_a_new_one(tmp_path: Path) -> None:
    """The one schema (index/store/tables.py + the dialect's DDL) and the revisions that
    bring an earlier store there must agree: same tables, columns, indexes and triggers."""
    with sqlite3.connect(tmp_path / "old.db") as conn:
        conn.execute(FIRST_RELEASE)
    SQLiteStore(tmp_path / "old.db").close()
    SQLiteStore(tmp_path / "new.db").close()
    old, new = _schema(tmp_path / "old.db"), _schema(tmp_path / "new.db")
    assert old == new
    assert ("table", "thread_schema_version") in new[1] and ("index", "threads_signals") in new[1]


def test_head_names_the_newest_thread_store_revision() -> None:
    """``THREADS.head`` lets an up-to-date store open without Alembic: it must be the
    newest script's revision, and a new store is stamped with it."""
    assert THREADS.head == THREADS.newest()


def test_suggest_reads_on_the_driver_match_the_shared_queries_and_fail_as_store_errors(
    tmp_path: Path,
) -> None:
    """signals and get_many skip SQLAlchemy's row machinery on SQLite; they must read what
    the shared (both-backend) queries read, and a failure is a StoreError naming the store."""
    from index.errors import StoreError
    from index.store.thread_store import WRITTEN_AFTER, SQLThreadStore

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
        store.db.driver_rows(DriverStatement("SELECT * FROM no_such_table", ()), {})
    # the fast paths are the shared statements compiled for the driver, told their index
    plans = {
        "threads_signals": (sqlite_store._SIGNALS.sql, json.dumps(pks)),
        "threads_gen": (DriverStatement.of(WRITTEN_AFTER).sql, 0),
    }
    for index, (sql, param) in plans.items():
        explain = DriverStatement(f"EXPLAIN QUERY PLAN {sql}", ("p",))
        plan = store.db.driver_rows(explain, {"p": param})
        assert index in " ".join(str(step[-1]) for step in plan), (sql, plan)
        assert len(store.db.driver_rows(DriverStatement(sql, ("p",)), {"p": param})) == 6
    store.close()
