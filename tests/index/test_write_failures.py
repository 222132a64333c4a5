"""Writes that fail (disk full, fsync errors) answer 5xx, never 2xx, and leave the previous
state intact: store, keyword index, vector index and the saved index files."""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.pool import Pool

from index import files
from index.vectors import layered as vectors
from service.config import Settings
from service.runtime import Engine

BIG = "Bulbs and hubs and cameras. " * 700  # ~20k characters: needs new database pages


@pytest.fixture
def disk(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, bool]]:
    """``disk["full"] = True`` makes the thread store's file unable to grow (SQLITE_FULL,
    as on a full disk); False lets it grow again."""
    state = {"full": False}

    def checkout(c: sqlite3.Connection, _record: object, _proxy: object) -> None:
        if not isinstance(c, sqlite3.Connection):
            return
        files = {Path(row[2]) for row in c.execute("PRAGMA database_list")}
        if settings.database_path.resolve() in {f.resolve() for f in files if str(f)}:
            if state["full"]:
                pages = c.execute("PRAGMA page_count").fetchone()[0]
                c.execute(f"PRAGMA max_page_count={pages}")
            else:
                c.execute("PRAGMA max_page_count=1073741823")

    sa.event.listen(Pool, "checkout", checkout)  # every connection the store takes
    yield state
    sa.event.remove(Pool, "checkout", checkout)


def _state(engine: Engine) -> tuple[object, ...]:
    threads = {t.thread.id: t for b in engine.store.iter_threads() for t in b}
    return (
        threads,
        engine.store.generation(),
        sorted(engine.corpus.index.ids().tolist()),
        [pk for pk, _ in engine.store.keyword_search("bulbs hubs cameras", 10)],
    )


def test_disk_full_answers_503_and_changes_nothing(
    client: TestClient, loaded: Engine, disk: dict[str, bool]
) -> None:
    before = _state(loaded)
    disk["full"] = True
    writes = [
        client.put("/v1/threads/new-1", json={"title": "Big one", "body": BIG}),
        client.put("/v1/threads/t1", json={"title": "Reset changed", "body": BIG}),
        client.post(
            "/v1/threads:bulk",
            json={
                "threads": [{"id": f"b{i}", "title": f"Bulk {i}", "body": BIG} for i in range(5)]
            },
        ),
    ]
    for r in writes:
        assert r.status_code == 503, r.text
        assert r.json()["error"] == "unavailable"
        assert "full" in r.json()["detail"][0]["message"]
    assert _state(loaded) == before
    assert client.get("/v1/threads/new-1").status_code == 404
    assert client.get("/v1/threads/t1").json()["title"] == "Reset the hub to factory settings"
    assert client.get("/v1/admin/verify").json()["ok"]
    disk["full"] = False  # space again: the same write now commits
    assert (
        client.put("/v1/threads/new-1", json={"title": "Big one", "body": BIG}).status_code == 201
    )
    assert client.get("/v1/admin/verify").json()["ok"]


def test_fsync_error_on_index_save_answers_503_and_keeps_the_saved_index(
    client: TestClient, loaded: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved = loaded.corpus.save()
    on_disk = {p.name: p.read_bytes() for p in settings.index_dir.iterdir()}

    def eio(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(files.os, "fsync", eio)
    r = client.post("/v1/admin/reindex")
    assert r.status_code == 503 and "not saved" in r.json()["detail"][0]["message"]
    assert {p.name: p.read_bytes() for p in settings.index_dir.iterdir()} == on_disk
    assert vectors.read(settings.index_dir)[0] == saved
    # the service itself still answers from its (rebuilt) in-memory index
    assert client.get("/readyz").status_code == 200
    hit = client.post("/v1/suggest", json={"title": "Camera records to microSD card"})
    assert hit.json()["suggestions"][0]["thread_id"] == "t3"


def test_failed_commit_is_reported_and_rolled_back(
    loaded: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An error at COMMIT itself (where an fsync failure surfaces) is a StoreError and
    the transaction is rolled back."""
    from index.errors import StoreError
    from index.store.sqlite import SQLiteStore
    from tests.support import make_thread

    assert isinstance(loaded.store, SQLiteStore)
    dialect = type(loaded.store.db.engine.dialect)

    def failing_commit(self: object, dbapi_connection: sqlite3.Connection) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    before = _state(loaded)
    monkeypatch.setattr(dialect, "do_commit", failing_commit)
    with pytest.raises(StoreError, match="disk I/O error"):
        loaded.corpus.upsert([make_thread("z", "Zigbee range extender")])
    monkeypatch.undo()
    assert _state(loaded) == before
