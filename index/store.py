"""SQLite thread store: the source of truth, with an FTS5 table for keyword search.

One file (WAL mode) under the data dir. Each thread has a stable integer ``pk`` (never
reused, SQLite AUTOINCREMENT) that keys it in the vector index, and keeps its own
embedding so the vector index can be rebuilt without re-encoding. A ``generation``
counter goes up with every committed write; the vector index records the generation
it was built at, which tells a stale index file from a current one.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from index.errors import StoreError
from index.models import Thread
from index.sqlite import SQLiteDatabase, chunks

SCHEMA = """
CREATE TABLE IF NOT EXISTS threads (
    pk            INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    title         TEXT NOT NULL,
    body          TEXT NOT NULL DEFAULT '',
    answer        TEXT NOT NULL DEFAULT '',
    answer_votes  INTEGER NOT NULL DEFAULT 0,
    accepted      INTEGER NOT NULL DEFAULT 0,
    tags          TEXT NOT NULL DEFAULT '[]',
    language      TEXT,
    url           TEXT,
    created_at    TEXT,
    updated_at    TEXT,
    content_hash  TEXT NOT NULL,
    embed_model   TEXT NOT NULL,
    embedding     BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS threads_language ON threads(language);
CREATE VIRTUAL TABLE IF NOT EXISTS threads_fts USING fts5(
    title, body, answer,
    content='threads', content_rowid='pk',
    tokenize='unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS threads_ai AFTER INSERT ON threads BEGIN
    INSERT INTO threads_fts(rowid, title, body, answer)
    VALUES (new.pk, new.title, new.body, new.answer);
END;
CREATE TRIGGER IF NOT EXISTS threads_ad AFTER DELETE ON threads BEGIN
    INSERT INTO threads_fts(threads_fts, rowid, title, body, answer)
    VALUES ('delete', old.pk, old.title, old.body, old.answer);
END;
CREATE TRIGGER IF NOT EXISTS threads_au AFTER UPDATE OF title, body, answer ON threads BEGIN
    INSERT INTO threads_fts(threads_fts, rowid, title, body, answer)
    VALUES ('delete', old.pk, old.title, old.body, old.answer);
    INSERT INTO threads_fts(rowid, title, body, answer)
    VALUES (new.pk, new.title, new.body, new.answer);
END;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta(key, value) VALUES ('generation', '0');
"""

_COLUMNS = (
    "pk, id, title, body, answer, answer_votes, accepted, tags, language, url, "
    "created_at, updated_at"
)

# Words too common to help BM25 (en, pt, es, it); keeps OR-queries small and fast.
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "can",
        "could",
        "do",
        "does",
        "for",
        "from",
        "had",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "is",
        "it",
        "its",
        "me",
        "my",
        "of",
        "on",
        "or",
        "our",
        "so",
        "that",
        "the",
        "their",
        "them",
        "there",
        "they",
        "this",
        "to",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "any",
        "some",
        "get",
        "got",
        "just",
        "o",
        "os",
        "as",
        "um",
        "uma",
        "de",
        "da",
        "do",
        "das",
        "dos",
        "em",
        "no",
        "na",
        "nos",
        "nas",
        "que",
        "e",
        "para",
        "por",
        "com",
        "se",
        "eu",
        "meu",
        "minha",
        "el",
        "la",
        "los",
        "las",
        "un",
        "una",
        "del",
        "al",
        "en",
        "y",
        "es",
        "por",
        "con",
        "mi",
        "lo",
        "le",
        "su",
        "il",
        "lo",
        "gli",
        "le",
        "di",
        "da",
        "che",
        "per",
        "con",
        "non",
        "un",
        "una",
        "mio",
        "mia",
    ]
)
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class StoredThread:
    """A thread as stored, with its integer key."""

    pk: int
    thread: Thread


@dataclass(frozen=True)
class Existing:
    """What an upsert needs to know about a thread already in the store."""

    pk: int
    content_hash: str
    embed_model: str


@dataclass(frozen=True)
class Row:
    """One thread ready to be written: the record, its text hash and its vector."""

    thread: Thread
    content_hash: str
    embed_model: str
    embedding: np.ndarray | None  # None: text unchanged, keep the stored vector


def fts_query(text: str, max_terms: int = 32) -> str | None:
    """Turn free text into a safe FTS5 OR-query of quoted terms (None if nothing is left)."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(text.lower()):
        if len(word) > 1 and word not in STOPWORDS and not word.isdigit():
            seen.setdefault(word, None)
    terms = list(seen)[:max_terms]
    if not terms:
        return None
    return " OR ".join(f'"{t}"' for t in terms)


def _blob(vector: np.ndarray | None) -> bytes:
    if vector is None:
        return b""
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


class SQLiteStore(SQLiteDatabase):
    """Thread-safe SQLite thread store. Writes are serialised; reads use per-thread connections."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, SCHEMA)

    # -- reads -------------------------------------------------------------------------
    def generation(self) -> int:
        row = self._conn().execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        return int(row[0])

    def count(self) -> int:
        return int(self._conn().execute("SELECT count(*) FROM threads").fetchone()[0])

    def existing(self, ids: Sequence[str]) -> dict[str, Existing]:
        out: dict[str, Existing] = {}
        conn = self._conn()
        for chunk in chunks(ids):
            marks = ",".join("?" * len(chunk))
            for r in conn.execute(
                f"SELECT pk, id, content_hash, embed_model FROM threads WHERE id IN ({marks})",
                chunk,
            ):
                out[r["id"]] = Existing(r["pk"], r["content_hash"], r["embed_model"])
        return out

    def get(self, thread_id: str) -> StoredThread | None:
        row = (
            self._conn()
            .execute(f"SELECT {_COLUMNS} FROM threads WHERE id = ?", (thread_id,))
            .fetchone()
        )
        return _to_stored(row) if row else None

    def get_many(self, pks: Sequence[int]) -> dict[int, StoredThread]:
        out: dict[int, StoredThread] = {}
        conn = self._conn()
        for chunk in chunks(pks):
            marks = ",".join("?" * len(chunk))
            for r in conn.execute(f"SELECT {_COLUMNS} FROM threads WHERE pk IN ({marks})", chunk):
                out[r["pk"]] = _to_stored(r)
        return out

    def signals(self, pks: Sequence[int]) -> dict[int, tuple[str, bool, int]]:
        """pk -> (thread id, accepted, answer votes): what the ranking prior needs."""
        out: dict[int, tuple[str, bool, int]] = {}
        conn = self._conn()
        for chunk in chunks(pks):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT pk, id, accepted, answer_votes FROM threads WHERE pk IN ({marks})"
            for r in conn.execute(sql, chunk):
                out[int(r[0])] = (r[1], bool(r[2]), int(r[3]))
        return out

    def pks_for_ids(self, ids: Sequence[str]) -> dict[str, int]:
        return {k: v.pk for k, v in self.existing(ids).items()}

    def iter_embeddings(
        self, batch: int = 2048
    ) -> Iterator[tuple[np.ndarray, list[str], list[np.ndarray]]]:
        """Yield (pks, models, vectors) in pk order, ``batch`` rows at a time."""
        last = 0
        conn = self._conn()
        while True:
            rows = conn.execute(
                "SELECT pk, embed_model, embedding FROM threads WHERE pk > ? ORDER BY pk LIMIT ?",
                (last, batch),
            ).fetchall()
            if not rows:
                return
            pks = np.array([r["pk"] for r in rows], dtype=np.int64)
            models = [r["embed_model"] for r in rows]
            vectors = [np.frombuffer(r["embedding"], dtype=np.float32) for r in rows]
            last = int(pks[-1])
            yield pks, models, vectors

    def pks(self) -> np.ndarray:
        """Every thread's key, ascending."""
        rows = self._conn().execute("SELECT pk FROM threads ORDER BY pk").fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def embeddings_for(self, pks: Sequence[int]) -> dict[int, tuple[str, np.ndarray]]:
        """pk -> (embedding space, stored vector)."""
        out: dict[int, tuple[str, np.ndarray]] = {}
        conn = self._conn()
        for chunk in chunks(pks):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT pk, embed_model, embedding FROM threads WHERE pk IN ({marks})"
            for r in conn.execute(sql, chunk):
                out[int(r[0])] = (r[1], np.frombuffer(r[2], dtype=np.float32))
        return out

    def iter_threads(self, batch: int = 512) -> Iterator[list[StoredThread]]:
        last = 0
        conn = self._conn()
        while True:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM threads WHERE pk > ? ORDER BY pk LIMIT ?", (last, batch)
            ).fetchall()
            if not rows:
                return
            last = rows[-1]["pk"]
            yield [_to_stored(r) for r in rows]

    def filter_pks(self, tags: Sequence[str] | None, language: str | None) -> list[int]:
        """Keys of threads with ``language`` and at least one of ``tags`` (each if given)."""
        where, params = [], []
        if language:
            where.append("language = ?")
            params.append(language)
        if tags:
            marks = ",".join("?" * len(tags))
            where.append(f"EXISTS (SELECT 1 FROM json_each(threads.tags) WHERE value IN ({marks}))")
            params.extend(t.lower() for t in tags)
        sql = "SELECT pk FROM threads" + (" WHERE " + " AND ".join(where) if where else "")
        return [r[0] for r in self._conn().execute(sql, params)]

    def keyword_search(
        self,
        text: str,
        k: int,
        within: Sequence[int] | None = None,
        weights: tuple[float, float, float] = (2.0, 1.0, 0.5),
    ) -> list[tuple[int, float]]:
        """BM25 over title/body/answer; returns (pk, score) with higher = better."""
        query = fts_query(text)
        if query is None or (within is not None and not within):
            return []
        sql = (
            "SELECT rowid, bm25(threads_fts, ?, ?, ?) AS s FROM threads_fts "
            "WHERE threads_fts MATCH ?"
        )
        params: list[object] = [*weights, query]
        if within is not None:
            sql += f" AND rowid IN ({','.join('?' * len(within))})"
            params.extend(int(p) for p in within)
        sql += " ORDER BY s LIMIT ?"
        params.append(int(k))
        try:
            rows = self._conn().execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:  # malformed query: treat as no keyword hits
            raise StoreError(f"keyword search failed: {exc}") from exc
        return [(int(r[0]), -float(r[1])) for r in rows]

    # -- writes ------------------------------------------------------------------------
    def upsert(self, rows: Sequence[Row]) -> dict[str, int]:
        """Insert or replace threads by id in one transaction; returns id -> pk."""
        out: dict[str, int] = {}
        with self._write_lock, self._transaction() as conn:
            for row in rows:
                t = row.thread
                cur = conn.execute(
                    """
                    INSERT INTO threads (id, title, body, answer, answer_votes, accepted, tags,
                        language, url, created_at, updated_at, content_hash, embed_model, embedding)
                    VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)
                    ON CONFLICT(id) DO UPDATE SET
                        title=excluded.title, body=excluded.body, answer=excluded.answer,
                        answer_votes=excluded.answer_votes, accepted=excluded.accepted,
                        tags=excluded.tags, language=excluded.language, url=excluded.url,
                        created_at=excluded.created_at, updated_at=excluded.updated_at,
                        content_hash=excluded.content_hash, embed_model=excluded.embed_model,
                        embedding=CASE WHEN length(excluded.embedding) = 0
                                  THEN threads.embedding ELSE excluded.embedding END
                    RETURNING pk
                    """,
                    (
                        t.id, t.title, t.body, t.answer, t.answer_votes, int(t.accepted),
                        json.dumps(t.tags), t.language, t.url, _iso(t.created_at),
                        _iso(t.updated_at), row.content_hash, row.embed_model,
                        _blob(row.embedding),
                    ),
                )  # fmt: skip
                out[t.id] = int(cur.fetchone()[0])
            self._bump(conn)
        return out

    def delete(self, thread_id: str) -> int | None:
        """Delete a thread; returns its pk, or None if it was not there."""
        with self._write_lock, self._transaction() as conn:
            row = conn.execute("DELETE FROM threads WHERE id = ? RETURNING pk", (thread_id,))
            found = row.fetchone()
            if found is None:
                return None
            self._bump(conn)
            return int(found[0])

    def replace_embeddings(self, items: Sequence[tuple[int, str, str, np.ndarray]]) -> None:
        """Store re-computed vectors: (pk, content_hash, model, vector)."""
        with self._write_lock, self._transaction() as conn:
            conn.executemany(
                "UPDATE threads SET content_hash=?, embed_model=?, embedding=? WHERE pk=?",
                [(h, m, _blob(v), pk) for pk, h, m, v in items],
            )
            self._bump(conn)

    def _bump(self, conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")


def _to_stored(r: sqlite3.Row) -> StoredThread:
    fields = {
        "id": r["id"],
        "title": r["title"],
        "body": r["body"],
        "answer": r["answer"],
        "answer_votes": r["answer_votes"],
        "accepted": bool(r["accepted"]),
        "tags": json.loads(r["tags"]),
        "language": r["language"],
        "url": r["url"],
        "created_at": r["created_at"],
        "updated_at": r["updated_at"],
    }
    return StoredThread(pk=int(r["pk"]), thread=Thread.model_validate(fields))
