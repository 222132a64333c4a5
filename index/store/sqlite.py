"""SQLite backend of the thread store: one file (WAL mode), FTS5 for keyword search.

Everything both backends share is index/store/thread_store.py, their schema
index/store/tables.py; this file is the SQLite dialect: the FTS5 keyword index kept by
triggers, the tag rows, the covering index of the ranking prior (``DDL``) and the
``analyze_text`` SQL function every connection registers. Keys come from AUTOINCREMENT, so a deleted
thread's key is never reused.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing
from pathlib import Path
from threading import Event
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from index.sql import DriverStatement, SQLDatabase, in_json_list
from index.store import bm25
from index.store.analysis import ANALYZER, analyze_text
from index.store.prewarm import prewarm_file
from index.store.protocol import StoredThread, fts_match, to_stored
from index.store.records import TermSearch
from index.store.tables import THREAD_COLUMNS, threads
from index.store.thread_store import SIGNAL_COLUMNS, SQLThreadStore, keyed

# the ranking prior reads these four columns for every candidate of every suggest: from this
# index, not the rows (each a page or more with its vector), 150 lookups cost far less
SIGNALS_INDEX = (
    "CREATE INDEX IF NOT EXISTS threads_signals ON threads(pk, id, accepted, answer_votes)"
)
# what every suggest reads, on the driver: the shared statements (index/store/thread_store.py)
# compiled once; the candidates' signals from the covering index (the planner would go to
# the rows: 1.5-5 ms instead of 0.5 for 150 keys at a million threads)
_THREAD_NAMES = tuple(c.name for c in THREAD_COLUMNS)
_GET_MANY = DriverStatement.of(keyed(THREAD_COLUMNS, threads.c.pk, in_json_list))
_SIGNALS = DriverStatement.of(
    keyed(SIGNAL_COLUMNS, threads.c.pk, in_json_list).with_hint(
        threads, "INDEXED BY threads_signals", "sqlite"
    )
)

# the rescore's few candidates: their text (analysed here, as the triggers did) and their
# token counts per column, and the keyword index's totals (FTS5's averages record)
_KNOWN_ROWS = (
    "SELECT t.pk, t.title, t.body, t.answer, t.language, d.sz FROM threads t "
    "JOIN threads_fts_docsize d ON d.id = t.pk WHERE t.pk IN (SELECT value FROM json_each(?))"
)
_AVERAGES = "SELECT block FROM threads_fts_data WHERE id = 1"
KNOWN_ROWS_MAX = 64  # a longer ``within`` list is left to FTS5


# The keyword index holds analysed text (index/store/analysis.py: stemmed in each thread's
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
# what a new store adds to index/store/tables.py's schema (each statement IF NOT EXISTS)
DDL = (SIGNALS_INDEX, *FTS_STATEMENTS, *TAG_STATEMENTS)
thread_tags = sa.table("thread_tags", sa.column("tag"), sa.column("pk"))
_DROP_FTS = [
    "DROP TRIGGER IF EXISTS threads_ai",
    "DROP TRIGGER IF EXISTS threads_ad",
    "DROP TRIGGER IF EXISTS threads_au",
    "DROP TABLE IF EXISTS threads_fts",
]


class SQLiteStore(SQLThreadStore):
    """The thread store in one SQLite file (see the module doc)."""

    DDL = DDL

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        db = SQLDatabase.open(
            None, self.path, synchronous="FULL", what="thread store", on_connect=self._setup
        )
        super().__init__(db)
        self.doc_counts = bm25.DocCounts(self.writes)

    def _setup(self, conn: sqlite3.Connection) -> None:
        """Per connection: the analyzer the FTS triggers call."""
        conn.create_function("analyze_text", 2, analyze_text, deterministic=True)

    def _maintain(self, conn: Connection) -> None:
        """Rebuild the keyword index when it was analysed another way (a store from before
        per-language stemming, or another analyzer version); fill the tag rows of a store
        from before them."""
        run = conn.exec_driver_sql
        row = run("SELECT value FROM meta WHERE key='analyzer'").fetchone()
        stale = row is None or row[0] != ANALYZER
        if stale:
            for statement in (*_DROP_FTS, *FTS_STATEMENTS):
                run(statement)
        tagged = run("SELECT value FROM meta WHERE key='tag_rows'").fetchone()
        if tagged is None:
            run(
                "INSERT OR IGNORE INTO thread_tags(tag, pk) "
                "SELECT j.value, t.pk FROM threads t, json_each(t.tags) j"
            )
            run("INSERT INTO meta(key, value) VALUES ('tag_rows', '1')")
        if stale:
            run(
                "INSERT INTO threads_fts(rowid, title, body, answer) SELECT pk, "
                + _ANALYZED["new"].replace("new.", "")
                + " FROM threads"
            )
            run("INSERT OR REPLACE INTO meta(key, value) VALUES ('analyzer', ?)", (ANALYZER,))

    def warm_pages(self, stop: Event) -> int:
        """The database file handed to the kernel's read-ahead (``prewarm_file``)."""
        return prewarm_file(self.path, stop)

    def _term_counts(self, stop: Event) -> Iterator[tuple[str, int]]:
        """The FTS5 vocabulary with each term's thread count (``fts5vocab``, on a read-only
        connection of its own), then the document lengths read through, so that BM25
        finds both in the page cache. At a million threads the keyword index is 140 MB,
        read in about 3 s from a cold disk; in process, with the page cache dropped, new
        English questions ran p50 19.1 then 15.1 ms (two sets of 200) without it, 16.1 and
        14.0 ms after it."""
        with closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)) as conn:
            conn.execute("CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, threads_fts, row)")
            terms = conn.execute("SELECT term, doc FROM temp.vocab")
            while not stop.is_set() and (rows := terms.fetchmany(512)):
                yield from ((str(term), int(doc)) for term, doc in rows)
            sizes = conn.execute("SELECT sz FROM threads_fts_docsize")
            while not stop.is_set() and sizes.fetchmany(512):
                pass

    def signals(self, pks: Sequence[int]) -> dict[int, tuple[str, bool, int]]:
        """As the shared query, on the driver, from the covering index."""
        if not len(pks):
            return {}
        rows = self.db.driver_rows(_SIGNALS, {"keys": json.dumps([int(p) for p in pks])})
        return {int(r[0]): (r[1], bool(r[2]), int(r[3])) for r in rows}

    def get_many(self, pks: Sequence[int]) -> dict[int, StoredThread]:
        """As the shared query, on the driver (``SQLDatabase.driver_rows``): a suggest
        reads the threads it shows this way."""
        if not len(pks):
            return {}
        rows = self.db.driver_rows(_GET_MANY, {"keys": json.dumps([int(p) for p in pks])})
        return {int(r[0]): to_stored(dict(zip(_THREAD_NAMES, r, strict=True))) for r in rows}

    def _tagged(self, tags: list[str]) -> sa.ColumnElement[bool]:
        return threads.c.pk.in_(sa.select(thread_tags.c.pk).where(thread_tags.c.tag.in_(tags)))

    def _count_term(self, conn: Connection, term: str, limit: int) -> int:
        return int(
            conn.exec_driver_sql(
                "SELECT count(*) FROM (SELECT rowid FROM threads_fts WHERE threads_fts MATCH ? "
                "LIMIT ?)",
                (f'"{term}"', limit),
            ).scalar_one()
        )

    def _search_terms(self, conn: Connection, search: TermSearch) -> list[tuple[int, float]]:
        """BM25 (lower is better in FTS5, so negated); for a few known threads computed
        from their rows (``_known_rows_bm25``)."""
        within = search.within
        few = within is not None and len(within) <= KNOWN_ROWS_MAX
        if within is not None and few and all(bm25.plain(t) for t in search.terms):
            return self._known_rows_bm25(conn, search, within)
        sql = (
            "SELECT rowid, bm25(threads_fts, ?, ?, ?) AS s FROM threads_fts "
            "WHERE threads_fts MATCH ?"
        )
        params: list[Any] = [*search.weights, fts_match(search.terms)]
        if search.within is not None:
            sql += f" AND rowid IN ({','.join('?' * len(search.within))})"
            params.extend(search.within)
        sql += " ORDER BY s LIMIT ?"
        params.append(search.k)
        rows = conn.exec_driver_sql(sql, tuple(params)).all()
        return [(int(r[0]), -float(r[1])) for r in rows]

    def _known_rows_bm25(
        self, conn: Connection, search: TermSearch, within: list[int]
    ) -> list[tuple[int, float]]:
        """What ``bm25()`` gives the threads of ``within`` holding any term, computed from
        their rows and the kept document counts (index/store/bm25.py) instead of walking
        each term's postings: 1.8 -> 0.8 ms for ten candidates at 10,000 threads."""
        blob = conn.exec_driver_sql(_AVERAGES).scalar()
        totals = bm25.varints(bytes(blob)) if blob else [0]
        rows = totals[0]
        if rows == 0:
            return []
        average = sum(totals[1:]) / rows
        wanted = set(search.terms)
        found = []
        for pk, title, body, answer, language, sizes in conn.exec_driver_sql(
            _KNOWN_ROWS, (json.dumps([int(p) for p in within]),)
        ):
            columns = [
                [w for w in bm25.field_tokens(text, language) if w in wanted]
                for text in (title, body, answer)
            ]
            if any(columns):  # FTS5 finds only the rows holding a term
                found.append((int(pk), columns, sum(bm25.varints(bytes(sizes)))))
        if not found:
            return []
        counts = self.doc_counts.get(
            search.terms, lambda term: self._count_term(conn, term, rows + 1)
        )
        idfs = [bm25.idf(rows, n) for n in counts]
        scored = [
            (pk, bm25.score(search.terms, search.weights, columns, length, average, idfs))
            for pk, columns, length in found
        ]
        scored.sort(key=lambda hit: (-hit[1], hit[0]))
        return scored[: search.k]
