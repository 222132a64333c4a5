"""The thread store's schema, written once: the tables both backends create and every
query reads, and how a new store is created from them (``create``).

What each dialect adds is its own keyword index (``KeywordIndex.ddl``: an FTS5 table kept
by triggers and tag rows on SQLite, a ``tsvector`` column with a GIN index on PostgreSQL)
and the covering index the ranking prior reads. A new store is created from these
declarations and stamped at the newest revision; a store from an earlier release is
brought there by the Alembic revisions in index/store/migrations/ (index/migrate.py).
A new column is one edit here and one revision there.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection

metadata = sa.MetaData()

threads = sa.Table(
    "threads",
    metadata,
    # SQLite: INTEGER PRIMARY KEY AUTOINCREMENT (the rowid, never reused); PostgreSQL: an
    # identity column
    sa.Column(
        "pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), sa.Identity(),
        primary_key=True,
    ),
    sa.Column("id", sa.Text, nullable=False, unique=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False, server_default=""),
    sa.Column("answer", sa.Text, nullable=False, server_default=""),
    sa.Column("answer_votes", sa.Integer, nullable=False, server_default="0"),
    sa.Column("accepted", sa.Boolean, nullable=False, server_default=sa.false()),
    # a JSON array: text on SQLite (json_each reads it), JSONB on PostgreSQL (?| reads it)
    sa.Column(
        "tags", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False,
        server_default="[]",
    ),
    sa.Column("language", sa.Text),
    sa.Column("url", sa.Text),
    sa.Column("created_at", sa.Text),
    sa.Column("updated_at", sa.Text),
    sa.Column("content_hash", sa.Text, nullable=False),
    sa.Column("embed_model", sa.Text, nullable=False),
    sa.Column("gen", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("answer_author", sa.Text),
    # last: SQLite reads a row's columns in order, and the vector (kilobytes, in overflow
    # pages) is read only when the index is built
    sa.Column("embedding", sa.LargeBinary, nullable=False),
    sa.Index("threads_language", "language"),
    sa.Index("threads_gen", "gen"),
    sqlite_autoincrement=True,
)  # fmt: skip

meta = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

tombstones = sa.Table(
    "tombstones",
    metadata,
    sa.Column(
        "pk",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=False,
    ),
    sa.Column("gen", sa.BigInteger, nullable=False),
    sa.Index("tombstones_gen", "gen"),
)

THREAD_COLUMNS = tuple(
    threads.c[name]
    for name in (
        "pk", "id", "title", "body", "answer", "answer_votes", "accepted", "tags", "language",
        "url", "created_at", "updated_at", "answer_author",
    )
)  # fmt: skip
"""What ``to_stored`` reads: a thread's record with its key."""


def exists(conn: Connection) -> bool:
    """The store has its tables (written by this release or an earlier one)."""
    return sa.inspect(conn).has_table("threads")


def create(conn: Connection, dialect_ddl: Sequence[str]) -> None:
    """A new store: the tables and their indexes, the dialect's keyword index and covering
    index (``dialect_ddl``), the first generation and the store's random id."""
    metadata.create_all(conn)
    for statement in dialect_ddl:
        conn.exec_driver_sql(statement)
    conn.execute(
        meta.insert(),
        [{"key": "generation", "value": "0"}, {"key": "store_id", "value": uuid.uuid4().hex}],
    )
