"""Kudos: a vote records whom it credits (the answer's author, as the forum gave it) and the
thread's language, so the leaderboard (``ActivityStore.leaders``) needs no join with the
thread store (which on SQLite is another file).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from index.migrations.steps import add_columns, drop_columns

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    add_columns("feedback", sa.Column("author", sa.Text), sa.Column("language", sa.Text))
    op.create_index("feedback_author", "feedback", ["author", "at"])


def downgrade() -> None:
    op.drop_index("feedback_author", "feedback")
    drop_columns("feedback", "language", "author")
