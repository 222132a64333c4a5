"""``open_store``: the thread store a database URL names (the one place that knows both
backends; they build on ``index.store``, so the factory cannot live there)."""

from __future__ import annotations

from pathlib import Path

from index.errors import StoreError
from index.pg_store import PostgresStore
from index.sqlite_store import SQLiteStore
from index.store import ThreadStore


def open_store(url: str | None, default_path: Path) -> ThreadStore:
    """``postgresql://...`` → PostgreSQL; ``sqlite:///path`` or None (``default_path``)
    → SQLite."""
    if url is None or url == "":
        return SQLiteStore(default_path)
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresStore(url)
    if url.startswith("sqlite:///"):
        return SQLiteStore(Path(url.removeprefix("sqlite:///")))
    raise StoreError("database URL must start with postgresql:// or sqlite:///")
