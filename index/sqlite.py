"""One SQLite database file: per-thread connections (WAL), serialised writes, transactions."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from index.errors import StoreError

T = TypeVar("T")


def chunks(items: Sequence[T], size: int = 500) -> Iterator[list[T]]:
    """Consecutive slices of at most ``size`` (SQLite caps the parameters of one query)."""
    items = list(items)
    for i in range(0, len(items), size):
        yield items[i : i + size]


class SQLiteDatabase:
    """Thread-safe access to one SQLite file. Writes are serialised; reads use per-thread
    connections; ``schema`` runs once when the file is opened."""

    def __init__(self, path: Path, schema: str, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._synchronous = synchronous
        self._local = threading.local()
        self._write_lock = threading.Lock()
        with self._write_lock:
            self._conn().executescript(schema)

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.row_factory = sqlite3.Row
            self._setup(conn)
            self._local.conn = conn
        return conn

    def _setup(self, conn: sqlite3.Connection) -> None:
        """Per-connection set-up for subclasses (SQL functions); runs before the schema."""

    def ping(self) -> bool:
        """True when the file answers a trivial query."""
        try:
            self._conn().execute("SELECT 1").fetchone()
        except sqlite3.Error:
            return False
        return True

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _transaction(self) -> _Tx:
        return _Tx(self._conn())


class _Tx:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any error."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            try:
                self.conn.execute("COMMIT")
                return
            except sqlite3.Error as failed:  # e.g. disk full or an I/O error at commit
                exc = failed
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            raise StoreError(f"write not committed: {exc}") from exc
