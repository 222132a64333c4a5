"""Knowledge gaps: a suggest request that ended in ``no_match`` or ``staff`` keeps its
question (redacted), so the questions nobody could answer can be clustered
(service/insights.py); requests that found an answer keep no text. Every request keeps the
question's language (per-language figures).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa

from index.migrations.steps import add_columns, drop_columns

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    add_columns("suggest_log", sa.Column("question", sa.Text), sa.Column("language", sa.Text))


def downgrade() -> None:
    drop_columns("suggest_log", "language", "question")
