"""One SQL core over SQLite and PostgreSQL (SQLAlchemy Core), for every table unsource keeps:
the thread store (index/store/thread_store.py, with its dialect's keyword index in
index/store/sqlite.py and index/store/postgres.py) and the activity tables (index/activity.py).

``SQLDatabase`` gives three things the callers need and nothing else:

* ``read()``: a connection for reads. On SQLite a deferred ``BEGIN`` (WAL: a consistent
  snapshot that never waits for a writer); on PostgreSQL READ COMMITTED.
* ``write()``: one transaction that commits or rolls back as a whole. On SQLite it starts
  with ``BEGIN IMMEDIATE`` (the write lock is taken before the first read, so a
  read-then-write cannot be overtaken by another process) and writers in this process
  queue on a lock instead of spinning in SQLite's busy handler. On PostgreSQL row locks
  (``FOR UPDATE SKIP LOCKED``) order writers across replicas.
* ``insert(table)``: the dialect's INSERT with ``ON CONFLICT`` (both dialects spell the
  upsert the same way in SQLAlchemy; only the import differs).

A failed commit or a lost connection surfaces as ``StoreError``, like the thread stores.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.sqlite.base import SQLiteCompiler
from sqlalchemy.engine import Connection, Engine

from index.errors import StoreError


def sqlalchemy_url(url: str) -> str:
    """``postgresql://`` (libpq spelling, as UNSOURCE_DATABASE_URL takes it) → the psycopg 3
    driver SQLAlchemy should use; ``sqlite:///path`` stays."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


T = TypeVar("T")


def chunks(items: Sequence[T], size: int = 500) -> Iterator[list[T]]:
    """Consecutive slices of at most ``size`` (SQLite caps the parameters of one query)."""
    items = list(items)
    for i in range(0, len(items), size):
        yield items[i : i + size]


OnConnect = Callable[[Any], None]
"""Per-connection set-up on the driver's own connection (e.g. SQL functions for SQLite)."""
POOL_SIZE = 8  # connections kept open; up to OVERFLOW more while requests need them
OVERFLOW = 56  # SQLite: connections are files, not server processes
PG_POOL_SIZE = 10  # PostgreSQL, per replica (settings database_pool_size / _overflow)
PG_OVERFLOW = 10


class _SQLiteCompiler(SQLiteCompiler):
    """SQLite's statement compiler, also rendering a table hint given for "sqlite"
    (``select.with_hint(table, "INDEXED BY <index>", "sqlite")``) after the table's name,
    where SQLite's planner must be told which index to use."""

    def get_from_hint_text(self, table: Any, text: str | None) -> str | None:
        return text


_SQLITE = sqlite.dialect()
_SQLITE.statement_compiler = _SQLiteCompiler


@dataclass(frozen=True)
class DriverStatement:
    """A SQLAlchemy statement compiled once for the SQLite driver (``SQLDatabase.driver_rows``
    and ``driver_write``): its SQL with ``?`` placeholders and the parameters' names in
    their order. The fast paths run the very statements the shared code builds."""

    sql: str
    names: tuple[str, ...]

    @classmethod
    def of(cls, statement: sa.Executable) -> DriverStatement:
        compiled = statement.compile(dialect=_SQLITE)  # type: ignore[attr-defined]
        return cls(str(compiled), tuple(compiled.positiontup or ()))

    def params(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(values[name] for name in self.names)


def in_json_list(column: sa.ColumnElement[Any], name: str = "keys") -> sa.ColumnElement[bool]:
    """SQLite: ``column`` is one of the JSON list bound as ``:name`` (``json_each``)."""
    keys = sa.func.json_each(sa.bindparam(name, type_=sa.JSON)).table_valued("value")
    return column.in_(sa.select(keys.c.value))


def _sqlite_engine(path: Path, synchronous: str, on_connect: OnConnect | None) -> Engine:
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        f"sqlite:///{path}",
        connect_args={"timeout": 30},
        pool_size=POOL_SIZE,
        max_overflow=OVERFLOW,
    )
    engine.dialect.statement_compiler = _SQLiteCompiler

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy's begin event says when to BEGIN
        for pragma in ("journal_mode=WAL", f"synchronous={synchronous}", "foreign_keys=ON"):
            dbapi_conn.execute(f"PRAGMA {pragma}")
        if on_connect is not None:
            on_connect(dbapi_conn)

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class SQLDatabase:
    """A SQLite file or a PostgreSQL database behind one SQLAlchemy engine."""

    def __init__(self, engine: Engine, what: str = "store", owns_engine: bool = True) -> None:
        self.engine = engine
        self.owns_engine = owns_engine  # False: another SQLDatabase's pool, closed by it
        self.what = what  # named in errors: "thread store", "activity store"
        self.dialect = engine.dialect.name
        self.writer = engine.execution_options(immediate=True)
        """The engine for write transactions (BEGIN IMMEDIATE on SQLite)."""
        self._lock: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if self.dialect == "sqlite" else contextlib.nullcontext()
        )
        self.commits = 0
        """Write transactions this process committed (caches of what it wrote key on it)."""

    @classmethod
    def open(
        cls,
        url: str | None,
        sqlite_path: Path | None,
        synchronous: str = "NORMAL",
        what: str = "activity store",
        on_connect: OnConnect | None = None,
        pool_size: int = PG_POOL_SIZE,
        pool_timeout: float = 30.0,
        max_overflow: int = PG_OVERFLOW,
    ) -> SQLDatabase:
        """PostgreSQL for a ``postgresql://`` URL; otherwise the SQLite file ``sqlite_path``
        (``synchronous`` and ``on_connect`` apply to SQLite only; ``pool_size``,
        ``max_overflow`` and ``pool_timeout``, the seconds to connect or wait for a
        connection, to PostgreSQL: at most ``pool_size + max_overflow`` connections)."""
        if url and url.startswith(("postgresql://", "postgres://")):
            engine = sa.create_engine(
                sqlalchemy_url(url),
                pool_pre_ping=True,
                pool_size=pool_size,
                max_overflow=max_overflow,
                pool_timeout=pool_timeout,
                connect_args={"connect_timeout": max(1, int(pool_timeout))},
            )
            return cls(engine, what)
        if sqlite_path is None:
            raise ValueError("a SQLite database needs a file path")
        return cls(_sqlite_engine(sqlite_path, synchronous, on_connect), what)

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except sa.exc.DBAPIError as exc:
            raise StoreError(f"{self.what} unavailable: {exc.orig}") from exc

    def driver_rows(
        self, statement: DriverStatement, values: Mapping[str, Any]
    ) -> list[tuple[Any, ...]]:
        """One read statement on SQLite, run on a pooled connection's driver directly:
        no SQLAlchemy transaction events or row objects, for the few reads every suggest
        makes (100 candidates' signals at a million threads: 0.95 -> 0.52 ms). The driver
        connection is in autocommit mode, so the statement is its own read transaction.
        ``values`` go to the driver as they are (a ``json_each`` list as JSON text)."""
        return self._on_driver(statement.sql, statement.params(values), f"{self.what} unavailable")

    def driver_write(self, statement: DriverStatement, values: Mapping[str, Any]) -> None:
        """One write statement on SQLite, on the driver (as ``driver_rows``), committed
        on its own (autocommit) under the same lock as ``write``: the suggest log's insert
        every request makes."""
        with self._lock:
            self._on_driver(statement.sql, statement.params(values), "write not committed")
            self.commits += 1

    def _on_driver(self, sql: str, params: Sequence[Any], failed: str) -> list[tuple[Any, ...]]:
        if self.dialect != "sqlite":
            raise NotImplementedError("driver statements are for SQLite")
        try:
            conn = self.engine.raw_connection()
        except sa.exc.DBAPIError as exc:
            raise StoreError(f"{failed}: {exc.orig}") from exc
        try:
            cursor = conn.cursor()
            cursor.execute(sql, params)
            return list(cursor.fetchall())
        except sqlite3.Error as exc:
            raise StoreError(f"{failed}: {exc}") from exc
        finally:
            conn.close()

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """Reads that see one consistent state of the database: SQLite's read transaction
        is one already; PostgreSQL is asked for REPEATABLE READ."""
        if self.dialect != "postgresql":
            with self.read() as conn:
                yield conn
            return
        try:
            with (
                self.engine.connect() as conn,
                conn.execution_options(isolation_level="REPEATABLE READ").begin(),
            ):
                yield conn
        except sa.exc.DBAPIError as exc:
            raise StoreError(f"{self.what} unavailable: {exc.orig}") from exc

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        with self._lock:
            try:
                with self.writer.begin() as conn:
                    yield conn
            except sa.exc.DBAPIError as exc:  # disk full, I/O error, lost connection
                raise StoreError(f"write not committed: {exc.orig}") from exc
            self.commits += 1

    def one_of(self, column: sa.ColumnElement[Any], name: str = "keys") -> sa.ColumnElement[bool]:
        """``column`` is one of the list bound as ``:name``: the list travels as one
        parameter (``json_each`` on SQLite, ``= ANY`` on PostgreSQL), so no length meets a
        parameter limit and a statement built once is never re-expanded per list length."""
        if self.dialect == "postgresql":
            return column == sa.any_(sa.bindparam(name, type_=postgresql.ARRAY(column.type)))
        return in_json_list(column, name)

    def insert(self, table: sa.Table) -> Any:
        """INSERT with ``on_conflict_do_nothing`` / ``on_conflict_do_update``."""
        dialect = postgresql if self.dialect == "postgresql" else sqlite
        return dialect.insert(table)

    def lock(self, conn: Connection, key: str) -> None:
        """Serialise write transactions about ``key`` until this one ends: an advisory
        transaction lock on PostgreSQL (for a read-then-write no row lock can cover, such
        as "no vote yet"); on SQLite the IMMEDIATE write lock already does."""
        if self.dialect == "postgresql":
            digest = hashlib.sha256(key.encode()).digest()[:8]
            lock_id = int.from_bytes(digest, "big", signed=True)
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(lock_id)))

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError:
            return False
        return True

    def sharing(self, what: str) -> SQLDatabase:
        """Another store's tables over this database's pool (one pool per replica on
        PostgreSQL: the thread store's and the activity store's connections together)."""
        return SQLDatabase(self.engine, what, owns_engine=False)

    def close(self) -> None:
        if self.owns_engine:
            self.engine.dispose()
