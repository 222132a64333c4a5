"""The thread store written once, on the SQL core (index/sql.py, SQLAlchemy Core).

Both backends share every query here: reads by key and by id, keyset pagination, the change
feed, the generation counter, upserts, deletes with tombstones and the whole-store restore.
A backend (index/store/sqlite.py, index/store/postgres.py) adds only what its dialect does its own
way, as the hooks at the end of ``SQLThreadStore``: the schema, the keyword index (FTS5 /
tsvector), the tag filter and what a restore must fix up.

Every write transaction bumps the ``generation`` row first. On SQLite the transaction holds
the file's write lock from its start (BEGIN IMMEDIATE); on PostgreSQL the bump's row lock
serialises writers across replicas until commit. Either way generations commit in order,
so ``changes_since`` (read in one snapshot) never skips a write that commits later with a
smaller number.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from threading import Event
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from index.migrate import THREADS
from index.sql import SQLDatabase, chunks
from index.store import tables
from index.store.common_terms import CommonTerms
from index.store.protocol import (
    Changes,
    Existing,
    Exported,
    Row,
    StoredThread,
    fts_terms,
    to_stored,
)
from index.store.records import TermSearch, blob, record, vector_of
from index.store.tables import THREAD_COLUMNS, meta, threads, tombstones

SIGNAL_COLUMNS = (threads.c.pk, threads.c.id, threads.c.accepted, threads.c.answer_votes)
"""What the ranking prior reads of every candidate (``signals``)."""
# rows written after a generation, in key order (the change feed): by the gen index, which
# SQLite's planner must be told (left to itself it scans all rows in key order)
WRITTEN_AFTER = (
    sa.select(threads.c.pk, threads.c.embed_model, threads.c.embedding)
    .where(threads.c.gen > sa.bindparam("gen"))
    .order_by(threads.c.pk)
    .with_hint(threads, "INDEXED BY threads_gen", "sqlite")
)


def keyed(
    columns: Sequence[Any], key: Any, one_of: Callable[[Any], sa.ColumnElement[bool]]
) -> sa.Select[Any]:
    """``columns`` of the rows whose ``key`` is one of the list bound as ``:keys``."""
    return sa.select(*columns).where(one_of(key))


class SQLThreadStore:
    """A ``ThreadStore`` (index/store/protocol.py) over one ``SQLDatabase``; see the module doc."""

    table: sa.Table = threads  # what inserts write: a backend may add its index's columns

    DDL: Sequence[str] = ()  # what the dialect adds to the schema (index/store/tables.py)

    def __init__(self, db: SQLDatabase) -> None:
        self.db = db
        THREADS.create_or_upgrade(
            db.writer, tables.exists, partial(tables.create, dialect_ddl=self.DDL)
        )
        with self.db.write() as conn:
            self._maintain(conn)
        self.common_terms = CommonTerms(self._doc_freq, self.count)
        self._keyed: dict[tuple[int, ...], Any] = {}  # _by_keys statements, built once each

    # -- plumbing ----------------------------------------------------------------------
    def _scalar(self, query: Any) -> Any:
        with self.db.read() as conn:
            return conn.execute(query).scalar()

    def _rows(self, query: Any, params: dict[str, Any] | None = None) -> list[sa.Row[Any]]:
        with self.db.read() as conn:
            return list(conn.execute(query, params or {}))

    def _by_keys(self, columns: Sequence[Any], key: Any, keys: Sequence[Any]) -> list[sa.Row[Any]]:
        """Rows whose ``key`` column is in ``keys``: the list travels as one parameter
        (``_one_of``), so no length meets a parameter limit and no statement is re-expanded
        per list length (a suggest reads its candidates' signals and records this way)."""
        if not keys:
            return []
        spec = (*map(id, columns), id(key))  # table columns: they live as long as the module
        query = self._keyed.get(spec)
        if query is None:
            query = self._keyed[spec] = keyed(columns, key, self._one_of)
        return self._rows(query, {"keys": list(keys)})

    def _pages(self, columns: Sequence[Any], batch: int) -> Iterator[list[sa.Row[Any]]]:
        """Every thread in key order, ``batch`` rows per read (keyset pagination)."""
        last = 0
        while True:
            page = self._rows(
                sa.select(*columns).where(threads.c.pk > last).order_by(threads.c.pk).limit(batch)
            )
            if not page:
                return
            last = int(page[-1].pk)
            yield page

    def _meta(self, key: str) -> str:
        return str(self._scalar(sa.select(meta.c.value).where(meta.c.key == key)))

    def ping(self) -> bool:
        return self.db.ping()

    def close(self) -> None:
        self.db.close()

    def warm_keyword_index(self, stop: Event) -> int:
        """Read the keyword index once as a replica starts, until done or ``stop`` is set,
        so that its first searches neither wait on the disk for it nor count their terms
        (``CommonTerms.prime``); the terms whose counts were kept."""
        return self.common_terms.prime(self._term_counts(stop))

    def warm_pages(self, stop: Event) -> int:
        """Read the store's file into the page cache as a replica starts (SQLite,
        ``index.store.prewarm``); the bytes read. PostgreSQL's server keeps its own
        buffer cache, which ``pg_prewarm`` warms: nothing here."""
        return 0

    def _term_counts(self, stop: Event) -> Iterator[tuple[str, int]]:
        """Every indexed term with the number of threads holding it, in one pass over the
        keyword index. PostgreSQL keeps its own buffer cache (``pg_prewarm`` warms it)
        and its tsvector statistics are not a term count: none."""
        return iter(())

    # -- reads -------------------------------------------------------------------------
    def generation(self) -> int:
        return int(self._meta("generation"))

    def writes(self) -> int:
        """Write transactions this process committed to the store: moves with every own
        write, read without a query (other processes' writes: ``generation``)."""
        return self.db.commits

    def store_id(self) -> str:
        """Random and fixed when the store was created: tells one store from another."""
        return self._meta("store_id")

    def count(self) -> int:
        return int(self._scalar(sa.select(sa.func.count()).select_from(threads)))

    def _doc_freq(self, term: str, cap: int) -> int:
        """Threads containing the analysed ``term``, counted no further than ``cap + 1``."""
        with self.db.read() as conn:
            return self._count_term(conn, term, cap + 1)

    def existing(self, ids: Sequence[str]) -> dict[str, Existing]:
        columns = (threads.c.pk, threads.c.id, threads.c.content_hash, threads.c.embed_model)
        return {
            r.id: Existing(int(r.pk), r.content_hash, r.embed_model)
            for r in self._by_keys(columns, threads.c.id, ids)
        }

    def get(self, thread_id: str) -> StoredThread | None:
        rows = self._rows(sa.select(*THREAD_COLUMNS).where(threads.c.id == thread_id))
        return to_stored(rows[0]._mapping) if rows else None

    def get_many(self, pks: Sequence[int]) -> dict[int, StoredThread]:
        rows = self._by_keys(THREAD_COLUMNS, threads.c.pk, [int(p) for p in pks])
        return {int(r.pk): to_stored(r._mapping) for r in rows}

    def signals(self, pks: Sequence[int]) -> dict[int, tuple[str, bool, int]]:
        """pk -> (thread id, accepted, answer votes): what the ranking prior needs."""
        rows = self._by_keys(SIGNAL_COLUMNS, threads.c.pk, [int(p) for p in pks])
        return {int(r.pk): (r.id, bool(r.accepted), int(r.answer_votes)) for r in rows}

    def pks_for_ids(self, ids: Sequence[str]) -> dict[str, int]:
        return {k: v.pk for k, v in self.existing(ids).items()}

    def pks(self) -> np.ndarray:
        """Every thread's key, ascending."""
        rows = self._rows(sa.select(threads.c.pk).order_by(threads.c.pk))
        return np.array([r.pk for r in rows], dtype=np.int64)

    def newest(self, count: int) -> list[int]:
        """The keys of the ``count`` newest threads (the last keys given), newest first."""
        rows = self._rows(sa.select(threads.c.pk).order_by(threads.c.pk.desc()).limit(count))
        return [int(r.pk) for r in rows]

    def embeddings_for(self, pks: Sequence[int]) -> dict[int, tuple[str, np.ndarray]]:
        """pk -> (embedding space, stored vector)."""
        columns = (threads.c.pk, threads.c.embed_model, threads.c.embedding)
        rows = self._by_keys(columns, threads.c.pk, [int(p) for p in pks])
        return {int(r.pk): (r.embed_model, vector_of(r.embedding)) for r in rows}

    def iter_embeddings(
        self, batch: int = 2048
    ) -> Iterator[tuple[np.ndarray, list[str], list[np.ndarray]]]:
        """Yield (pks, models, vectors) in pk order, ``batch`` rows at a time."""
        columns = (threads.c.pk, threads.c.embed_model, threads.c.embedding)
        for page in self._pages(columns, batch):
            yield (
                np.array([r.pk for r in page], dtype=np.int64),
                [r.embed_model for r in page],
                [vector_of(r.embedding) for r in page],
            )

    def iter_threads(self, batch: int = 512) -> Iterator[list[StoredThread]]:
        for page in self._pages(THREAD_COLUMNS, batch):
            yield [to_stored(r._mapping) for r in page]

    def iter_export(self, batch: int = 1024) -> Iterator[list[Exported]]:
        """Every thread with its key, hash, embedding space and vector, in pk order."""
        columns = (*THREAD_COLUMNS, threads.c.content_hash, threads.c.embed_model,
                   threads.c.embedding)  # fmt: skip
        for page in self._pages(columns, batch):
            yield [
                Exported(
                    to_stored(r._mapping), r.content_hash, r.embed_model, vector_of(r.embedding)
                )
                for r in page
            ]

    def changes_since(self, generation: int) -> Changes:
        """Rows written and keys deleted after ``generation``, read in one snapshot."""
        with self.db.snapshot() as conn:
            now = conn.execute(sa.select(meta.c.value).where(meta.c.key == "generation")).scalar()
            rows = conn.execute(WRITTEN_AFTER, {"gen": generation}).all()
            dead = conn.execute(sa.select(tombstones.c.pk).where(tombstones.c.gen > generation))
            deleted = [int(r.pk) for r in dead]
        return Changes(
            generation=int(now or 0),
            pks=np.array([r.pk for r in rows], dtype=np.int64),
            models=[r.embed_model for r in rows],
            vectors=[vector_of(r.embedding) for r in rows],
            deleted=deleted,
        )

    def filter_pks(self, tags: Sequence[str] | None, language: str | None) -> list[int]:
        """Keys of threads with ``language`` and at least one of ``tags`` (each if given)."""
        query = sa.select(threads.c.pk)
        if language:
            query = query.where(threads.c.language == language)
        if tags:
            query = query.where(self._tagged([t.lower() for t in tags]))
        return [int(r.pk) for r in self._rows(query)]

    def keyword_search(
        self,
        text: str,
        k: int,
        within: Sequence[int] | None = None,
        weights: tuple[float, float, float] = (2.0, 1.0, 0.5),
        language: str | None = None,
    ) -> list[tuple[int, float]]:
        """Keyword search over title/body/answer with those field weights, the question
        analysed in ``language``; (pk, score), higher = better. ``within`` is an explicit,
        small key list. In a large store, terms in a large share of the threads are left
        out (index/store/common_terms.py)."""
        terms = self.common_terms.keep(fts_terms(text, language=language))
        if not terms or (within is not None and not within):
            return []
        keys = None if within is None else [int(p) for p in within]
        with self.db.read() as conn:
            return self._search_terms(conn, TermSearch(terms, int(k), keys, weights))

    # -- writes ------------------------------------------------------------------------
    def _bump(self, conn: Connection) -> int:
        """The next generation; its row lock orders this transaction's commit."""
        value = conn.execute(
            sa.update(meta)
            .where(meta.c.key == "generation")
            .values(value=sa.cast(sa.cast(meta.c.value, sa.BigInteger) + 1, sa.Text))
            .returning(meta.c.value)
        ).scalar_one()
        return int(value)

    def _tombstone(self, conn: Connection, pks: Iterable[int], gen: int) -> None:
        rows = [{"pk": int(pk), "gen": gen} for pk in pks]
        if rows:
            insert = self.db.insert(tombstones)
            conn.execute(
                insert.on_conflict_do_update(
                    index_elements=[tombstones.c.pk], set_={"gen": insert.excluded.gen}
                ),
                rows,
            )

    def upsert(self, rows: Sequence[Row]) -> tuple[dict[str, int], int]:
        """Insert or replace threads by id in one transaction; returns (id -> pk, the
        generation this write committed as). A row without a vector keeps the stored one;
        an id given twice is written once, as its last row. The rows go in one
        executemany and their keys are read back after (a bulk load writes thousands)."""
        insert = self.db.insert(self.table)
        indexed = self._indexed_values()
        columns = [c.name for c in threads.c if c.name not in ("pk", "id", "embedding")]
        changed = {name: insert.excluded[name] for name in [*columns, *indexed]}
        changed["embedding"] = sa.case(
            (sa.func.length(insert.excluded.embedding) == 0, self.table.c.embedding),
            else_=insert.excluded.embedding,
        )
        statement = (insert.values(indexed) if indexed else insert).on_conflict_do_update(
            index_elements=[self.table.c.id], set_=changed
        )
        last = {row.thread.id: row for row in rows}
        if not last:
            return {}, self._bump_alone()
        with self.db.write() as conn:
            gen = self._bump(conn)
            conn.execute(
                statement,
                [
                    {**record(row), **self._indexed_params(row.thread), "gen": gen}
                    for row in last.values()
                ],
            )
            keys = conn.execute(
                sa.select(threads.c.id, threads.c.pk).where(self._one_of(threads.c.id)),
                {"keys": list(last)},
            )
            out = {r.id: int(r.pk) for r in keys}
        return out, gen

    def _bump_alone(self) -> int:
        """A write with nothing in it still commits a generation (as it always has)."""
        with self.db.write() as conn:
            return self._bump(conn)

    def delete(self, thread_id: str) -> tuple[int | None, int]:
        """Delete a thread; returns (its pk or None if it was not there, the generation).
        A missing id bumps nothing."""
        with self.db.write() as conn:
            found = conn.execute(
                sa.delete(threads).where(threads.c.id == thread_id).returning(threads.c.pk)
            ).scalar()
            if found is None:
                now = conn.execute(sa.select(meta.c.value).where(meta.c.key == "generation"))
                return None, int(now.scalar_one())
            gen = self._bump(conn)
            self._tombstone(conn, [int(found)], gen)
        return int(found), gen

    def replace_embeddings(self, items: Sequence[tuple[int, str, str, np.ndarray]]) -> int:
        """Store re-computed vectors: (pk, content_hash, model, vector); returns the generation."""
        statement = (
            sa.update(threads)
            .where(threads.c.pk == sa.bindparam("key"))
            .values(
                content_hash=sa.bindparam("hash"),
                embed_model=sa.bindparam("model"),
                embedding=sa.bindparam("vector"),
                gen=sa.bindparam("generation"),
            )
        )
        with self.db.write() as conn:
            gen = self._bump(conn)
            if items:
                conn.execute(
                    statement,
                    [
                        {"key": int(pk), "hash": h, "model": m, "vector": blob(v),
                         "generation": gen}
                        for pk, h, m, v in items
                    ],
                )  # fmt: skip
        return gen

    def replace_all(self, rows: Iterable[Exported]) -> int:
        """Make the store hold exactly ``rows`` (keys kept), in one transaction; threads not
        in ``rows`` are deleted (tombstoned). Returns the generation."""
        indexed = self._indexed_values()
        insert = sa.insert(self.table).values(indexed) if indexed else sa.insert(self.table)
        with self.db.write() as conn:
            gen = self._bump(conn)
            keep: set[int] = set()
            replaced: set[int] = set()  # keys whose id comes back under the snapshot's key
            for e in rows:
                pk, thread = e.stored.pk, e.stored.thread
                keep.add(pk)
                # delete, then insert: the keyword index sees both (SQLite: its triggers)
                for r in conn.execute(
                    sa.delete(threads)
                    .where((threads.c.id == thread.id) | (threads.c.pk == pk))
                    .returning(threads.c.pk)
                ):
                    if r.pk != pk:
                        replaced.add(int(r.pk))
                values = {**record(e), **self._indexed_params(thread), "pk": pk, "gen": gen}
                conn.execute(insert, values)
            present = conn.execute(sa.select(threads.c.pk)).scalars()
            gone = [int(p) for p in present if int(p) not in keep]
            for chunk in chunks(gone):
                conn.execute(sa.delete(threads).where(threads.c.pk.in_(chunk)))
            self._tombstone(conn, [*gone, *(replaced - keep)], gen)
            self._restored(conn)
        return gen

    def _one_of(self, column: sa.Column[Any]) -> sa.ColumnElement[bool]:
        """``column`` is one of the list bound as ``:keys``."""
        return self.db.one_of(column)

    # -- what each backend does its own way ---------------------------------------------

    def _maintain(self, conn: Connection) -> None:
        """Once the schema is at head: rebuild what an older store holds another way (in a
        write transaction)."""
        raise NotImplementedError

    def _tagged(self, tags: list[str]) -> sa.ColumnElement[bool]:
        """Threads carrying at least one of ``tags`` (lower-cased)."""
        raise NotImplementedError

    def _count_term(self, conn: Connection, term: str, limit: int) -> int:
        """Threads whose keyword index holds ``term``, counted up to ``limit``."""
        raise NotImplementedError

    def _search_terms(self, conn: Connection, search: TermSearch) -> list[tuple[int, float]]:
        """The best ``k`` threads holding any of ``terms``: (pk, score), higher = better."""
        raise NotImplementedError

    def _indexed_values(self) -> dict[str, Any]:
        """Insert values that keep the keyword index (SQLite: none, its triggers do)."""
        return {}

    def _indexed_params(self, thread: Any) -> dict[str, Any]:
        """The parameters ``_indexed_values`` binds, for one thread."""
        return {}

    def _restored(self, conn: Connection) -> None:
        """After ``replace_all`` wrote keys of its own: keep new keys beyond all of them."""
