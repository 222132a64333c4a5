"""The activity tables as SQLAlchemy Core sees them (the queries in index/activity.py).

The schema itself is created and changed only by the Alembic migrations in
index/migrations/versions/; this module describes the current head for the queries.
Times are UTC ISO-8601 text with microseconds, so they compare in time order as text
(PostgreSQL columns use the "C" collation for that; see the migrations).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()


def _key(*names: str) -> list[sa.Column[str]]:
    """The primary key's text columns."""
    return [sa.Column(name, sa.Text, primary_key=True) for name in names]


def _text(*names: str, required: bool = False) -> list[sa.Column[str]]:
    """Text columns, NOT NULL when ``required``."""
    return [sa.Column(name, sa.Text, nullable=not required) for name in names]


def _count(*names: str) -> list[sa.Column[int]]:
    return [sa.Column(name, sa.Integer, nullable=False) for name in names]


suggest_log = sa.Table(
    "suggest_log",
    metadata,
    *_key("request_id"),
    *_text("at", "decision", "thread_ids", required=True),
    # ``question`` (redacted) only when nothing answered it
    *_text("queue", "question", "language"),
)

feedback = sa.Table(
    "feedback",
    metadata,
    *_key("request_id", "thread_id"),
    *_count("helpful"),
    *_text("at", required=True),
    # ``author``: whom a helpful vote credits (the answer's author); ``language``: the thread's
    *_text("reader", "author", "language"),
)

thread_feedback = sa.Table(
    "thread_feedback", metadata, *_key("thread_id"), *_count("helpful", "unhelpful")
)

questions = sa.Table(
    "questions",
    metadata,
    *_key("id"),
    *_text("title", "body", "category", "created_at", "registered_at", "triage", required=True),
    *_text("url", "request_id", "answered_at", "answer_thread"),
    *_text("notified_at", "notify_after", "notify_error", "claimed_by", "claimed_until"),
    *_count("notify_attempts"),
    # ``experts_at``: the experts notice went out (or was given up)
    *_text("experts_at", "experts_error"),
)

leases = sa.Table("leases", metadata, *_key("name"), *_text("owner", "until", required=True))

hook_events = sa.Table(
    "hook_events", metadata, *_key("source", "event_id"), *_text("at", required=True)
)
