"""Expert routing: when a question's notice to community experts went out (or was given
up: ``experts_error``), at a fraction of its SLA, before staff hear of it at the SLA.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    with op.batch_alter_table("questions") as batch:
        batch.add_column(
            sa.Column("experts_at", sa.Text().with_variant(sa.Text(collation="C"), "postgresql"))
        )
        batch.add_column(sa.Column("experts_error", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("questions") as batch:
        batch.drop_column("experts_error")
        batch.drop_column("experts_at")
