"""PostgreSQL backend of the thread store (``UNSOURCE_DATABASE_URL=postgresql://...``).

Everything both backends share is index/store/thread_store.py (several replicas share one
database; the generation row orders their writes); this file is the PostgreSQL dialect.

Keyword search is PostgreSQL full-text search: a ``tsvector`` column (title weight A, body
B, answer C) with a GIN index, ranked by ``ts_rank``. The vector is built by the ``simple``
configuration over text already analysed in the thread's language by index/store/analysis.py
(Snowball stems, the algorithms of PostgreSQL's english/portuguese/spanish/italian
configurations, stopwords out, folded), so both backends index and query the same terms.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, TSVECTOR
from sqlalchemy.engine import Connection

from index.errors import StoreError
from index.sql import PG_OVERFLOW, PG_POOL_SIZE, SQLDatabase
from index.store.analysis import ANALYZER, analyze_text
from index.store.records import TermSearch
from index.store.tables import threads
from index.store.thread_store import SQLThreadStore

SCHEMA_LOCK = 7_320_416  # pg_advisory_xact_lock key: replicas re-analysing at once
# what a new store adds to index/store/tables.py's schema (each statement IF NOT EXISTS)
DDL = (
    "ALTER TABLE threads ADD COLUMN IF NOT EXISTS fts TSVECTOR NOT NULL",
    "CREATE INDEX IF NOT EXISTS threads_fts ON threads USING GIN (fts)",
    "CREATE INDEX IF NOT EXISTS threads_signals ON threads (pk) "
    "INCLUDE (id, accepted, answer_votes)",
)
FIELDS = ("title", "body", "answer")
# the shared columns and the keyword index's own
pg_threads = sa.Table(
    "threads", sa.MetaData(), *(c._copy() for c in threads.c), sa.Column("fts", TSVECTOR)
)


def _tsvector(title: Any, body: Any, answer: Any) -> sa.ColumnElement[Any]:
    """title weight A, body B, answer C, over text already analysed (index/store/analysis.py)."""
    simple: sa.ColumnElement[Any] = sa.literal_column("'simple'::regconfig")
    parts = [
        sa.func.setweight(sa.func.to_tsvector(simple, text), sa.literal_column(f"'{weight}'"))
        for text, weight in ((title, "A"), (body, "B"), (answer, "C"))
    ]
    return parts[0].op("||")(parts[1]).op("||")(parts[2])


def _analysed(thread: Any) -> dict[str, str]:
    return {f"fts_{f}": analyze_text(getattr(thread, f), thread.language) for f in FIELDS}


class PostgresStore(SQLThreadStore):
    """The thread store in a PostgreSQL database (see the module doc)."""

    DDL = DDL

    def __init__(
        self,
        url: str,
        pool_size: int = PG_POOL_SIZE,
        timeout: float = 30.0,
        max_overflow: int = PG_OVERFLOW,
    ) -> None:
        self.url = url
        db = SQLDatabase.open(
            url, None, what="thread store", pool_size=pool_size, pool_timeout=timeout,
            max_overflow=max_overflow,
        )  # fmt: skip
        try:
            super().__init__(db)
        except (StoreError, sa.exc.SQLAlchemyError) as exc:
            db.close()
            raise StoreError(f"database_url: cannot open the PostgreSQL store: {exc}") from exc

    def _maintain(self, conn: Connection) -> None:
        """Every thread's tsvector rebuilt once when it was analysed another way (a store
        from before per-language stemming), under a lock (replicas starting at once)."""
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(SCHEMA_LOCK)))
        analyzer = conn.exec_driver_sql("SELECT value FROM meta WHERE key = 'analyzer'").scalar()
        if analyzer == ANALYZER:
            return
        update = (
            sa.update(pg_threads)
            .where(pg_threads.c.pk == sa.bindparam("key"))
            .values(fts=_tsvector(*(sa.bindparam(f"fts_{f}") for f in FIELDS)))
        )
        last = -1
        while True:
            rows = conn.execute(
                sa.select(threads.c.pk, threads.c.title, threads.c.body, threads.c.answer,
                          threads.c.language)
                .where(threads.c.pk > last).order_by(threads.c.pk).limit(1000)
            ).all()  # fmt: skip
            if not rows:
                break
            conn.execute(update, [{"key": r.pk, **_analysed(r)} for r in rows])
            last = rows[-1].pk
        conn.exec_driver_sql(
            "INSERT INTO meta (key, value) VALUES ('analyzer', %(v)s) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            {"v": ANALYZER},
        )

    def _tagged(self, tags: list[str]) -> sa.ColumnElement[bool]:
        return threads.c.tags.op("?|")(sa.cast(sa.literal(tags, ARRAY(sa.Text)), ARRAY(sa.Text)))

    def _count_term(self, conn: Connection, term: str, limit: int) -> int:
        return int(
            conn.exec_driver_sql(
                "SELECT count(*) FROM (SELECT 1 FROM threads "
                "WHERE fts @@ to_tsquery('simple', %(q)s) LIMIT %(n)s) AS m",
                {"q": f"'{term}'", "n": limit},
            ).scalar_one()
        )

    def _search_terms(self, conn: Connection, search: TermSearch) -> list[tuple[int, float]]:
        """ts_rank with the title/body/answer weights BM25 has on SQLite (as D, C, B, A)."""
        weights = search.weights
        top = max(weights)
        ranks = [0.0, weights[2] / top, weights[1] / top, weights[0] / top]
        sql = (
            "SELECT pk, ts_rank(%(ranks)s::float4[], fts, q) AS s "
            "FROM threads, to_tsquery('simple', %(q)s) AS q WHERE fts @@ q"
        )
        terms = " | ".join(f"'{t}'" for t in search.terms)
        params: dict[str, Any] = {"ranks": ranks, "q": terms}
        if search.within is not None:
            sql += " AND pk = ANY(%(within)s)"
            params["within"] = search.within
        sql += " ORDER BY s DESC, pk LIMIT %(k)s"
        params["k"] = search.k
        return [(int(r[0]), float(r[1])) for r in conn.exec_driver_sql(sql, params)]

    table = pg_threads

    def _indexed_values(self) -> dict[str, Any]:
        return {"fts": _tsvector(*(sa.bindparam(f"fts_{f}") for f in FIELDS))}

    def _indexed_params(self, thread: Any) -> dict[str, Any]:
        return _analysed(thread)

    def _restored(self, conn: Connection) -> None:
        conn.exec_driver_sql(
            "SELECT setval(pg_get_serial_sequence('threads', 'pk'), "
            "GREATEST((SELECT coalesce(max(pk), 1) FROM threads), "
            "(SELECT last_value FROM threads_pk_seq)))"
        )
