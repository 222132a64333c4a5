"""``open_store``: the thread store a database URL names (the one place that knows both
backends; they build on ``index.store.protocol``, so the factory cannot live there)."""

from __future__ import annotations

from pathlib import Path

from index.errors import StoreError
from index.sql import PG_OVERFLOW, PG_POOL_SIZE
from index.store.postgres import PostgresStore
from index.store.sqlite import SQLiteStore
from index.store.thread_store import SQLThreadStore


def open_store(
    url: str | None,
    default_path: Path,
    pool_size: int = PG_POOL_SIZE,
    max_overflow: int = PG_OVERFLOW,
) -> SQLThreadStore:
    """``postgresql://...`` → PostgreSQL (a pool of ``pool_size`` connections, up to
    ``max_overflow`` more under load); ``sqlite:///path`` or None (``default_path``) →
    SQLite."""
    if url is None or url == "":
        return SQLiteStore(default_path)
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresStore(url, pool_size=pool_size, max_overflow=max_overflow)
    if url.startswith("sqlite:///"):
        return SQLiteStore(Path(url.removeprefix("sqlite:///")))
    raise StoreError("database URL must start with postgresql:// or sqlite:///")
