"""Reports bounded by indexes (security finding N1): ``questions.request_id`` is what every
deflection count asks of each vote or request ("was a question registered after it?"); with
no index SQLite scanned the questions table once per row (the public leaderboard took 55 s
at 20k votes and 20k questions). ``feedback.at`` bounds the leaderboard's window,
``questions.registered_at`` the stats' and the knowledge gaps'.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.create_index("questions_request", "questions", ["request_id"])
    op.create_index("feedback_at", "feedback", ["at"])
    op.create_index("questions_registered", "questions", ["registered_at"])


def downgrade() -> None:
    op.drop_index("questions_registered", "questions")
    op.drop_index("feedback_at", "feedback")
    op.drop_index("questions_request", "questions")
