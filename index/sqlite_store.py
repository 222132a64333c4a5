"""SQLite backend of the thread store: one file (WAL mode), FTS5 for keyword search.

Keys come from AUTOINCREMENT, so a deleted thread's key is never reused.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from index.analysis import ANALYZER, analyze_text
from index.errors import StoreError
from index.lexical import CommonTerms
from index.sqlite import SQLiteDatabase, chunks
from index.store import (
    _COLUMNS,
    Changes,
    Existing,
    Exported,
    Row,
    StoredThread,
    _blob,
    _iso,
    fts_match,
    fts_terms,
    to_stored,
)

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
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta(key, value) VALUES ('generation', '0');
INSERT OR IGNORE INTO meta(key, value) VALUES ('store_id', lower(hex(randomblob(16))));
CREATE TABLE IF NOT EXISTS tombstones (pk INTEGER PRIMARY KEY, gen INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS tombstones_gen ON tombstones(gen);
"""
# added after the first release: the generation that last wrote each row
MIGRATIONS = {
    "gen": "ALTER TABLE threads ADD COLUMN gen INTEGER NOT NULL DEFAULT 0",
    "answer_author": "ALTER TABLE threads ADD COLUMN answer_author TEXT",
}
GEN_INDEX = "CREATE INDEX IF NOT EXISTS threads_gen ON threads(gen)"


# The keyword index holds analysed text (index/analysis.py: stemmed in each thread's
# language), computed by the Python function analyze_text that every connection registers;
# the triggers keep it in step with the threads table. A 'delete' must be given the values
# that were indexed: analyze_text is deterministic, so re-analysing the old row gives them.
THREAD_TEXT = ("title", "body", "answer")
_ANALYZED = {
    side: ", ".join(
        f"analyze_text({side}.{f}, {side}.language)" for f in ("title", "body", "answer")
    )
    for side in ("new", "old")
}
FTS_STATEMENTS = [
    "CREATE VIRTUAL TABLE IF NOT EXISTS threads_fts USING fts5(title, body, answer, "
    "content='threads', content_rowid='pk', tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER IF NOT EXISTS threads_ai AFTER INSERT ON threads BEGIN "
    f"INSERT INTO threads_fts(rowid, title, body, answer) VALUES (new.pk, {_ANALYZED['new']}); "
    "END",
    "CREATE TRIGGER IF NOT EXISTS threads_ad AFTER DELETE ON threads BEGIN "
    "INSERT INTO threads_fts(threads_fts, rowid, title, body, answer) "
    f"VALUES ('delete', old.pk, {_ANALYZED['old']}); END",
    "CREATE TRIGGER IF NOT EXISTS threads_au AFTER UPDATE OF title, body, answer, language "
    "ON threads BEGIN "
    "INSERT INTO threads_fts(threads_fts, rowid, title, body, answer) "
    f"VALUES ('delete', old.pk, {_ANALYZED['old']}); "
    f"INSERT INTO threads_fts(rowid, title, body, answer) VALUES (new.pk, {_ANALYZED['new']}); "
    "END",
]
# tags as rows, so a tag filter is an index lookup rather than a scan of every thread's
# JSON (1M threads: ~1 s); kept by triggers, filled once for stores from before it
TAG_STATEMENTS = [
    "CREATE TABLE IF NOT EXISTS thread_tags (tag TEXT NOT NULL, pk INTEGER NOT NULL, "
    "PRIMARY KEY (tag, pk)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS thread_tags_pk ON thread_tags(pk)",
    "CREATE TRIGGER IF NOT EXISTS threads_tags_ai AFTER INSERT ON threads BEGIN "
    "INSERT OR IGNORE INTO thread_tags(tag, pk) SELECT value, new.pk FROM json_each(new.tags); "
    "END",
    "CREATE TRIGGER IF NOT EXISTS threads_tags_ad AFTER DELETE ON threads BEGIN "
    "DELETE FROM thread_tags WHERE pk = old.pk; END",
    "CREATE TRIGGER IF NOT EXISTS threads_tags_au AFTER UPDATE OF tags ON threads BEGIN "
    "DELETE FROM thread_tags WHERE pk = old.pk; "
    "INSERT OR IGNORE INTO thread_tags(tag, pk) SELECT value, new.pk FROM json_each(new.tags); "
    "END",
]
_DROP_FTS = [
    "DROP TRIGGER IF EXISTS threads_ai",
    "DROP TRIGGER IF EXISTS threads_ad",
    "DROP TRIGGER IF EXISTS threads_au",
    "DROP TABLE IF EXISTS threads_fts",
]


class SQLiteStore(SQLiteDatabase):
    """Thread-safe SQLite thread store. Writes are serialised; reads use per-thread connections."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, SCHEMA)
        self._keyword_index()

    def _setup(self, conn: sqlite3.Connection) -> None:
        conn.create_function("analyze_text", 2, analyze_text, deterministic=True)

    def _keyword_index(self) -> None:
        """Create the keyword index, or rebuild it when it was analysed another way (a store
        from before per-language stemming, or another analyzer version)."""
        with self._write_lock:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute("SELECT value FROM meta WHERE key='analyzer'").fetchone()
                if row is None or row[0] != ANALYZER:
                    for statement in _DROP_FTS:
                        conn.execute(statement)
                for statement in FTS_STATEMENTS:
                    conn.execute(statement)
                tagged = conn.execute("SELECT value FROM meta WHERE key='tag_rows'").fetchone()
                for statement in TAG_STATEMENTS:
                    conn.execute(statement)
                if tagged is None:
                    conn.execute(
                        "INSERT OR IGNORE INTO thread_tags(tag, pk) "
                        "SELECT j.value, t.pk FROM threads t, json_each(t.tags) j"
                    )
                    conn.execute("INSERT INTO meta(key, value) VALUES ('tag_rows', '1')")
                if row is None or row[0] != ANALYZER:
                    conn.execute(
                        "INSERT INTO threads_fts(rowid, title, body, answer) SELECT pk, "
                        + _ANALYZED["new"].replace("new.", "")
                        + " FROM threads"
                    )
                    conn.execute(
                        "INSERT OR REPLACE INTO meta(key, value) VALUES ('analyzer', ?)",
                        (ANALYZER,),
                    )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        with self._write_lock:
            conn = self._conn()
            have = {r[1] for r in conn.execute("PRAGMA table_info(threads)")}
            for column, ddl in MIGRATIONS.items():
                if column not in have:
                    conn.execute(ddl)
            conn.execute(GEN_INDEX)
        self.common_terms = CommonTerms(self._doc_freq, self.count)

    # -- reads -------------------------------------------------------------------------
    def generation(self) -> int:
        row = self._conn().execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        return int(row[0])

    def store_id(self) -> str:
        """Random and fixed when the store was created: tells one store from another."""
        row = self._conn().execute("SELECT value FROM meta WHERE key='store_id'").fetchone()
        return str(row[0])

    def _doc_freq(self, term: str, cap: int) -> int:
        """Threads containing ``term``, counted no further than ``cap + 1``."""
        row = (
            self._conn()
            .execute(
                "SELECT count(*) FROM (SELECT rowid FROM threads_fts WHERE threads_fts MATCH ? "
                "LIMIT ?)",
                (f'"{term}"', cap + 1),
            )
            .fetchone()
        )
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
        return to_stored(row) if row else None

    def get_many(self, pks: Sequence[int]) -> dict[int, StoredThread]:
        out: dict[int, StoredThread] = {}
        conn = self._conn()
        for chunk in chunks(pks):
            marks = ",".join("?" * len(chunk))
            for r in conn.execute(f"SELECT {_COLUMNS} FROM threads WHERE pk IN ({marks})", chunk):
                out[r["pk"]] = to_stored(r)
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
            yield [to_stored(r) for r in rows]

    def filter_pks(self, tags: Sequence[str] | None, language: str | None) -> list[int]:
        """Keys of threads with ``language`` and at least one of ``tags`` (each if given)."""
        where, params = [], []
        if language:
            where.append("language = ?")
            params.append(language)
        if tags:
            marks = ",".join("?" * len(tags))
            where.append(f"pk IN (SELECT pk FROM thread_tags WHERE tag IN ({marks}))")
            params.extend(t.lower() for t in tags)
        sql = "SELECT pk FROM threads" + (" WHERE " + " AND ".join(where) if where else "")
        return [r[0] for r in self._conn().execute(sql, params)]

    def keyword_search(
        self,
        text: str,
        k: int,
        within: Sequence[int] | None = None,
        weights: tuple[float, float, float] = (2.0, 1.0, 0.5),
        language: str | None = None,
    ) -> list[tuple[int, float]]:
        """BM25 over title/body/answer, the question analysed in ``language``; returns
        (pk, score) with higher = better; ``within`` is an explicit, small key list. In a
        large store, terms in a large share of the threads are left out (index/lexical.py)."""
        query = fts_match(self.common_terms.keep(fts_terms(text, language=language)))
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

    def changes_since(self, generation: int) -> Changes:
        """Rows written and keys deleted after ``generation``, read in one snapshot."""
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            now = int(conn.execute("SELECT value FROM meta WHERE key='generation'").fetchone()[0])
            rows = conn.execute(
                # by the gen index: left to itself the planner scans all rows in pk order
                "SELECT pk, embed_model, embedding FROM threads INDEXED BY threads_gen "
                "WHERE gen > ? ORDER BY pk",
                (generation,),
            ).fetchall()
            dead = conn.execute("SELECT pk FROM tombstones WHERE gen > ?", (generation,))
            deleted = [int(r[0]) for r in dead]
        finally:
            conn.execute("COMMIT")
        return Changes(
            generation=now,
            pks=np.array([r[0] for r in rows], dtype=np.int64),
            models=[r[1] for r in rows],
            vectors=[np.frombuffer(r[2], dtype=np.float32) for r in rows],
            deleted=deleted,
        )

    def iter_export(self, batch: int = 1024) -> Iterator[list[Exported]]:
        """Every thread with its key, hash, embedding space and vector, in pk order."""
        last = 0
        conn = self._conn()
        while True:
            rows = conn.execute(
                f"SELECT {_COLUMNS}, content_hash, embed_model, embedding FROM threads "
                "WHERE pk > ? ORDER BY pk LIMIT ?",
                (last, batch),
            ).fetchall()
            if not rows:
                return
            last = rows[-1]["pk"]
            yield [
                Exported(
                    to_stored(r),
                    r["content_hash"],
                    r["embed_model"],
                    np.frombuffer(r["embedding"], dtype=np.float32),
                )
                for r in rows
            ]

    # -- writes ------------------------------------------------------------------------
    def upsert(self, rows: Sequence[Row]) -> tuple[dict[str, int], int]:
        """Insert or replace threads by id in one transaction; returns (id -> pk, the
        generation this write committed as)."""
        out: dict[str, int] = {}
        with self._write_lock, self._transaction() as conn:
            gen = self._bump(conn)
            for row in rows:
                t = row.thread
                cur = conn.execute(
                    """
                    INSERT INTO threads (id, title, body, answer, answer_votes, accepted, tags,
                        language, url, created_at, updated_at, content_hash, embed_model, embedding,
                        gen, answer_author)
                    VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
                    ON CONFLICT(id) DO UPDATE SET
                        title=excluded.title, body=excluded.body, answer=excluded.answer,
                        answer_author=excluded.answer_author,
                        answer_votes=excluded.answer_votes, accepted=excluded.accepted,
                        tags=excluded.tags, language=excluded.language, url=excluded.url,
                        created_at=excluded.created_at, updated_at=excluded.updated_at,
                        content_hash=excluded.content_hash, embed_model=excluded.embed_model,
                        gen=excluded.gen,
                        embedding=CASE WHEN length(excluded.embedding) = 0
                                  THEN threads.embedding ELSE excluded.embedding END
                    RETURNING pk
                    """,
                    (
                        t.id, t.title, t.body, t.answer, t.answer_votes, int(t.accepted),
                        json.dumps(t.tags), t.language, t.url, _iso(t.created_at),
                        _iso(t.updated_at), row.content_hash, row.embed_model,
                        _blob(row.embedding), gen, t.answer_author,
                    ),
                )  # fmt: skip
                out[t.id] = int(cur.fetchone()[0])
        return out, gen

    def delete(self, thread_id: str) -> tuple[int | None, int]:
        """Delete a thread; returns (its pk or None if it was not there, the generation)."""
        with self._write_lock, self._transaction() as conn:
            row = conn.execute("DELETE FROM threads WHERE id = ? RETURNING pk", (thread_id,))
            found = row.fetchone()
            if found is None:
                return None, self.generation()
            gen = self._bump(conn)
            conn.execute(
                "INSERT OR REPLACE INTO tombstones(pk, gen) VALUES (?, ?)", (int(found[0]), gen)
            )
            return int(found[0]), gen

    def replace_embeddings(self, items: Sequence[tuple[int, str, str, np.ndarray]]) -> int:
        """Store re-computed vectors: (pk, content_hash, model, vector); returns the generation."""
        with self._write_lock, self._transaction() as conn:
            gen = self._bump(conn)
            conn.executemany(
                "UPDATE threads SET content_hash=?, embed_model=?, embedding=?, gen=? WHERE pk=?",
                [(h, m, _blob(v), gen, pk) for pk, h, m, v in items],
            )
            return gen

    def replace_all(self, rows: Iterable[Exported]) -> int:
        """Make the store hold exactly ``rows`` (keys kept), in one transaction; threads not
        in ``rows`` are deleted. Returns the generation."""
        with self._write_lock, self._transaction() as conn:
            gen = self._bump(conn)
            keep: set[int] = set()
            replaced: set[int] = set()  # keys whose id comes back under the snapshot's key
            for e in rows:
                t = e.stored.thread
                keep.add(e.stored.pk)
                # delete, then insert: the FTS triggers see both (REPLACE would skip them)
                for r in conn.execute(
                    "DELETE FROM threads WHERE id = ? OR pk = ? RETURNING pk", (t.id, e.stored.pk)
                ).fetchall():
                    if r[0] != e.stored.pk:
                        replaced.add(int(r[0]))
                conn.execute(
                    """
                    INSERT INTO threads (pk, id, title, body, answer, answer_votes,
                        accepted, tags, language, url, created_at, updated_at, content_hash,
                        embed_model, embedding, gen, answer_author)
                    VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
                    """,
                    (
                        e.stored.pk, t.id, t.title, t.body, t.answer, t.answer_votes,
                        int(t.accepted), json.dumps(t.tags), t.language, t.url,
                        _iso(t.created_at), _iso(t.updated_at), e.content_hash, e.embed_model,
                        _blob(e.embedding), gen, t.answer_author,
                    ),
                )  # fmt: skip
            gone = [int(r[0]) for r in conn.execute("SELECT pk FROM threads") if r[0] not in keep]
            for chunk in chunks(gone):
                conn.execute(
                    f"DELETE FROM threads WHERE pk IN ({','.join('?' * len(chunk))})", chunk
                )
            conn.executemany(
                "INSERT OR REPLACE INTO tombstones(pk, gen) VALUES (?, ?)",
                [(pk, gen) for pk in [*gone, *(replaced - keep)]],
            )
            return gen

    def _bump(self, conn: sqlite3.Connection) -> int:
        row = conn.execute(
            "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation' "
            "RETURNING value"
        ).fetchone()
        return int(row[0])
