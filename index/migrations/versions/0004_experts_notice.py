"""Expert routing: when a question's notice to community experts went out (or was given
up: ``experts_error``), at a fraction of its SLA, before staff hear of it at the SLA.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa

from index.migrations.steps import add_columns, drop_columns, time_text

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    add_columns(
        "questions", sa.Column("experts_at", time_text()), sa.Column("experts_error", sa.Text)
    )


def downgrade() -> None:
    drop_columns("questions", "experts_error", "experts_at")
