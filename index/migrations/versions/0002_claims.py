"""Work shared by replicas: a question's breach notice is claimed by one replica for a
lease (``claimed_by``, ``claimed_until``) before it is delivered, and named jobs (the
retention purge) run under a lease in ``leases``.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from index.migrations.steps import add_columns, drop_columns, time_text

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    add_columns(
        "questions", sa.Column("claimed_by", sa.Text), sa.Column("claimed_until", time_text())
    )
    owed = sa.text("notified_at IS NULL AND answered_at IS NULL")
    op.create_index(  # what the delivery loop claims from: owed notices, oldest first
        "questions_owed",
        "questions",
        ["created_at", "id"],
        sqlite_where=owed,
        postgresql_where=owed,
    )
    op.create_table(
        "leases",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("until", time_text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("leases")
    op.drop_index("questions_owed", "questions")
    drop_columns("questions", "claimed_until", "claimed_by")
