"""Webhook deliveries already applied (``X-Discourse-Event-Id``), so that a delivery
repeated by the forum, or replayed, changes nothing the second time.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    op.create_table(
        "hook_events",
        sa.Column("source", sa.Text, primary_key=True),
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column("at", sa.Text, nullable=False),
    )
    op.create_index("hook_events_at", "hook_events", ["at"])


def downgrade() -> None:
    op.drop_index("hook_events_at", "hook_events")
    op.drop_table("hook_events")
