"""The activity tables: suggest log, readers' votes, per-thread vote totals, questions.

An activity.db written before migrations existed already has these tables (perhaps without
``feedback.reader``): they are kept and completed rather than created again.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from index.migrations.steps import time_text

revision = "0001"
down_revision = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    _suggest_log_and_votes(existing)
    _questions(existing)


def _suggest_log_and_votes(existing: set[str]) -> None:
    if "suggest_log" not in existing:
        op.create_table(
            "suggest_log",
            sa.Column("request_id", sa.Text, primary_key=True),
            sa.Column("at", time_text(), nullable=False),
            sa.Column("decision", sa.Text, nullable=False),
            sa.Column("queue", sa.Text),
            sa.Column("thread_ids", sa.Text, nullable=False, server_default="[]"),
        )
        op.create_index("suggest_log_at", "suggest_log", ["at"])
    if "feedback" not in existing:
        op.create_table(
            "feedback",
            sa.Column(
                "request_id",
                sa.Text,
                sa.ForeignKey("suggest_log.request_id"),
                primary_key=True,
            ),
            sa.Column("thread_id", sa.Text, primary_key=True),
            sa.Column("helpful", sa.Integer, nullable=False),
            sa.Column("at", time_text(), nullable=False),
            sa.Column("reader", sa.Text),
        )
    else:
        columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("feedback")}
        if "reader" not in columns:
            op.add_column("feedback", sa.Column("reader", sa.Text))
    indexes = set()
    if "feedback" in existing:
        indexes = {i["name"] for i in sa.inspect(op.get_bind()).get_indexes("feedback")}
    if "feedback_reader" not in indexes:
        op.create_index("feedback_reader", "feedback", ["reader", "thread_id"])
    if "thread_feedback" not in existing:
        op.create_table(
            "thread_feedback",
            sa.Column("thread_id", sa.Text, primary_key=True),
            sa.Column("helpful", sa.Integer, nullable=False, server_default="0"),
            sa.Column("unhelpful", sa.Integer, nullable=False, server_default="0"),
        )


def _questions(existing: set[str]) -> None:
    if "questions" not in existing:
        op.create_table(
            "questions",
            sa.Column("id", sa.Text, primary_key=True),
            sa.Column("title", sa.Text, nullable=False),
            sa.Column("body", sa.Text, nullable=False, server_default=""),
            sa.Column("category", sa.Text, nullable=False),
            sa.Column("url", sa.Text),
            sa.Column("request_id", sa.Text),
            sa.Column("created_at", time_text(), nullable=False),
            sa.Column("registered_at", time_text(), nullable=False),
            sa.Column("triage", sa.Text, nullable=False),
            sa.Column("answered_at", time_text()),
            sa.Column("answer_thread", sa.Text),
            sa.Column("notified_at", time_text()),
            sa.Column("notify_attempts", sa.Integer, nullable=False, server_default="0"),
            sa.Column("notify_after", time_text()),
            sa.Column("notify_error", sa.Text),
        )
        op.create_index("questions_open", "questions", ["answered_at", "created_at"])


def downgrade() -> None:
    for table in ("feedback", "thread_feedback", "questions", "suggest_log"):
        op.drop_table(table)
