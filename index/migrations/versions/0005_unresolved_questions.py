"""Knowledge gaps: a suggest request that ended in ``no_match`` or ``staff`` keeps its
question (redacted), so the questions nobody could answer can be clustered
(service/insights.py); requests that found an answer keep no text. Every request keeps the
question's language (per-language figures).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    with op.batch_alter_table("suggest_log") as batch:
        batch.add_column(sa.Column("question", sa.Text))
        batch.add_column(sa.Column("language", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("suggest_log") as batch:
        batch.drop_column("language")
        batch.drop_column("question")
