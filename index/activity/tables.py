"""The activity tables as SQLAlchemy Core sees them (the queries in index/activity.py).

The schema itself is created and changed only by the Alembic migrations in
index/migrations/versions/; this module describes the current head for the queries.
Times are UTC ISO-8601 text with microseconds, so they compare in time order as text
(PostgreSQL columns use the "C" collation for that; see the migrations).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

suggest_log = sa.Table(
    "suggest_log",
    metadata,
    sa.Column("request_id", sa.Text, primary_key=True),
    sa.Column("at", sa.Text, nullable=False),
    sa.Column("decision", sa.Text, nullable=False),
    sa.Column("queue", sa.Text),
    sa.Column("thread_ids", sa.Text, nullable=False),
    sa.Column("question", sa.Text),  # redacted; only when nothing answered it
    sa.Column("language", sa.Text),
)

feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("request_id", sa.Text, primary_key=True),
    sa.Column("thread_id", sa.Text, primary_key=True),
    sa.Column("helpful", sa.Integer, nullable=False),
    sa.Column("at", sa.Text, nullable=False),
    sa.Column("reader", sa.Text),
    sa.Column("author", sa.Text),  # whom a helpful vote credits (the answer's author)
    sa.Column("language", sa.Text),  # the voted thread's language
)

thread_feedback = sa.Table(
    "thread_feedback",
    metadata,
    sa.Column("thread_id", sa.Text, primary_key=True),
    sa.Column("helpful", sa.Integer, nullable=False),
    sa.Column("unhelpful", sa.Integer, nullable=False),
)

questions = sa.Table(
    "questions",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("category", sa.Text, nullable=False),
    sa.Column("url", sa.Text),
    sa.Column("request_id", sa.Text),
    sa.Column("created_at", sa.Text, nullable=False),
    sa.Column("registered_at", sa.Text, nullable=False),
    sa.Column("triage", sa.Text, nullable=False),
    sa.Column("answered_at", sa.Text),
    sa.Column("answer_thread", sa.Text),
    sa.Column("notified_at", sa.Text),
    sa.Column("notify_attempts", sa.Integer, nullable=False),
    sa.Column("notify_after", sa.Text),
    sa.Column("notify_error", sa.Text),
    sa.Column("claimed_by", sa.Text),
    sa.Column("claimed_until", sa.Text),
    sa.Column("experts_at", sa.Text),  # the experts notice went out (or was given up)
    sa.Column("experts_error", sa.Text),
)

leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("owner", sa.Text, nullable=False),
    sa.Column("until", sa.Text, nullable=False),
)

hook_events = sa.Table(
    "hook_events",
    metadata,
    sa.Column("source", sa.Text, primary_key=True),
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("at", sa.Text, nullable=False),
)
