"""One SQL core over SQLite and PostgreSQL (SQLAlchemy Core), for the tables that are the
same on both backends (the activity tables, index/activity.py).

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
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from index.errors import StoreError


def sqlalchemy_url(url: str) -> str:
    """``postgresql://`` (libpq spelling, as UNSOURCE_DATABASE_URL takes it) → the psycopg 3
    driver SQLAlchemy should use; ``sqlite:///path`` stays."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def _sqlite_engine(path: Path, synchronous: str) -> Engine:
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        f"sqlite:///{path}", connect_args={"timeout": 30}, pool_size=8, max_overflow=24
    )

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy's begin event says when to BEGIN
        for pragma in ("journal_mode=WAL", f"synchronous={synchronous}", "foreign_keys=ON"):
            dbapi_conn.execute(f"PRAGMA {pragma}")

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class SQLDatabase:
    """A SQLite file or a PostgreSQL database behind one SQLAlchemy engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.writer = engine.execution_options(immediate=True)
        """The engine for write transactions (BEGIN IMMEDIATE on SQLite)."""
        self._lock: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if self.dialect == "sqlite" else contextlib.nullcontext()
        )

    @classmethod
    def open(cls, url: str | None, sqlite_path: Path, synchronous: str = "NORMAL") -> SQLDatabase:
        """PostgreSQL for a ``postgresql://`` URL; otherwise the SQLite file ``sqlite_path``."""
        if url and url.startswith(("postgresql://", "postgres://")):
            engine = sa.create_engine(
                sqlalchemy_url(url), pool_size=8, max_overflow=24, pool_pre_ping=True
            )
            return cls(engine)
        return cls(_sqlite_engine(sqlite_path, synchronous))

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except sa.exc.OperationalError as exc:
            raise StoreError(f"activity store unavailable: {exc.orig}") from exc

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        with self._lock:
            try:
                with self.writer.begin() as conn:
                    yield conn
            except sa.exc.OperationalError as exc:  # disk full, I/O error, lost connection
                raise StoreError(f"write not committed: {exc.orig}") from exc

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

    def close(self) -> None:
        self.engine.dispose()
