"""What the activity revisions (versions/) share: the time column type and adding or
dropping columns through a batch (SQLite rebuilds the table; PostgreSQL alters it)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


def time_text() -> sa.types.TypeEngine[str]:
    """UTC ISO-8601 text that must sort in time order: byte order on PostgreSQL (a
    locale collation may weigh punctuation differently), SQLite's default already is."""
    return sa.Text().with_variant(sa.Text(collation="C"), "postgresql")


def add_columns(table: str, *columns: sa.Column[object]) -> None:
    with op.batch_alter_table(table) as batch:
        for column in columns:
            batch.add_column(column)


def drop_columns(table: str, *names: str) -> None:
    """Dropped in the order given (the reverse of ``add_columns``)."""
    with op.batch_alter_table(table) as batch:
        for name in names:
            batch.drop_column(name)
