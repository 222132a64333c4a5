"""The thread store's tables, declared once for SQLAlchemy Core queries on both backends.

The DDL itself stays with each backend (index/store/sqlite.py, index/store/postgres.py): the key
generator (AUTOINCREMENT / identity), the vector's type (BLOB / BYTEA) and the keyword
index (an FTS5 table kept by triggers / a ``tsvector`` column with a GIN index) differ, and
stores written by earlier releases must open unchanged. These declarations name only the
columns both have.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData()

threads = sa.Table(
    "threads",
    metadata,
    sa.Column("pk", sa.BigInteger, primary_key=True),
    sa.Column("id", sa.Text, nullable=False, unique=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("answer", sa.Text, nullable=False),
    sa.Column("answer_votes", sa.Integer, nullable=False),
    sa.Column("accepted", sa.Boolean, nullable=False),
    # a JSON array: text on SQLite (json_each reads it), JSONB on PostgreSQL (?| reads it)
    sa.Column("tags", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
    sa.Column("language", sa.Text),
    sa.Column("url", sa.Text),
    sa.Column("created_at", sa.Text),
    sa.Column("updated_at", sa.Text),
    sa.Column("answer_author", sa.Text),
    sa.Column("content_hash", sa.Text, nullable=False),
    sa.Column("embed_model", sa.Text, nullable=False),
    sa.Column("embedding", sa.LargeBinary, nullable=False),
    sa.Column("gen", sa.BigInteger, nullable=False),
)

meta = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

tombstones = sa.Table(
    "tombstones",
    metadata,
    sa.Column("pk", sa.BigInteger, primary_key=True),
    sa.Column("gen", sa.BigInteger, nullable=False),
)

THREAD_COLUMNS = tuple(
    threads.c[name]
    for name in (
        "pk", "id", "title", "body", "answer", "answer_votes", "accepted", "tags", "language",
        "url", "created_at", "updated_at", "answer_author",
    )
)  # fmt: skip
"""What ``to_stored`` reads: a thread's record with its key."""
