"""The thread store as this release writes it (index/store/tables.py), reached from any
store an earlier release wrote: those had no version table, and their schema grew by
``CREATE ... IF NOT EXISTS`` and added columns. A new store is created from tables.py and
stamped here instead (index/migrate.py); later revisions change both.

Revision ID: t0001
Revises:
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = "t0001"
down_revision = None

# columns added after the first release, on each dialect
ADDED = {
    "sqlite": (
        sa.Column("gen", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("answer_author", sa.Text),
    ),
    "postgresql": (sa.Column("answer_author", sa.Text),),
}


def upgrade() -> None:
    from index.store import postgres, sqlite, tables

    bind = op.get_bind()
    dialect = bind.dialect.name
    # the first releases kept their generation and deletions in tables made later
    tables.metadata.create_all(bind, tables=[tables.meta, tables.tombstones])
    have_meta = {r.key for r in bind.execute(sa.select(tables.meta.c.key))}
    seeds = {"generation": "0", "store_id": uuid.uuid4().hex}
    for key, value in seeds.items():
        if key not in have_meta:
            bind.execute(tables.meta.insert().values(key=key, value=value))
    have = {c["name"] for c in sa.inspect(bind).get_columns("threads")}
    for column in ADDED[dialect]:
        if column.name not in have:
            op.add_column("threads", column)
    for index in ("threads_language", "threads_gen"):
        columns = index.removeprefix("threads_")
        op.execute(f"CREATE INDEX IF NOT EXISTS {index} ON threads ({columns})")
    for statement in sqlite.DDL if dialect == "sqlite" else postgres.DDL:
        op.execute(statement)


def downgrade() -> None:
    raise NotImplementedError("the first revision of the thread store has nothing before it")
