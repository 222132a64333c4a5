"""What happens around the index: suggest requests, feedback on them, and forum questions
waiting for an answer (the escalation queue).

One code path over both backends (index/sql.py, SQLAlchemy Core): with
``UNSOURCE_DATABASE_URL=postgresql://…`` the tables live in PostgreSQL beside the threads,
shared by every replica; otherwise in their own SQLite file beside the thread store, so
that logging a suggest never waits behind a bulk thread write. The schema is versioned by
Alembic (index/migrate.py) and brought to head when the store opens.

Times are stored as UTC ISO-8601 strings with microseconds, so they sort as text.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from index.activity.leases import Leases
from index.activity.log import SuggestLog
from index.activity.questions import Questions
from index.activity.reports import Reports
from index.activity.rows import (
    QUESTION_CHARS,
    UNRESOLVED_MAX,
    Claim,
    Question,
    Stats,
    Unresolved,
    iso,
    parse,
)
from index.activity.tables import suggest_log, thread_feedback
from index.migrate import upgrade
from index.sql import DriverStatement, SQLDatabase

__all__ = [
    "QUESTION_CHARS", "UNRESOLVED_MAX", "ActivityStore", "Claim", "Question", "Stats", "Unresolved",
    "iso", "parse",
]  # fmt: skip


class ActivityStore(SuggestLog, Reports, Questions, Leases):
    """The suggest log, feedback, forum questions and webhook state. On SQLite: WAL with
    ``synchronous=NORMAL``: a commit survives the process being killed but is not fsynced
    one by one (a power cut may lose the last moments of the log), which keeps an fsync off
    every /v1/suggest. The thread store stays ``FULL``."""

    def __init__(self, db: SQLDatabase) -> None:
        self.db = db
        upgrade(db.writer)
        # built once: a suggest runs both, and building a statement per call cost more
        # than running it (1M threads: 0.38 -> 0.13 ms for 100 threads' votes)
        t = thread_feedback.c
        self._votes_of = sa.select(t.thread_id, t.helpful, t.unhelpful).where(
            db.one_of(t.thread_id, "ids")
        )
        self._log_insert = suggest_log.insert()
        # on SQLite the same two statements run on the driver (index/sql.py)
        sqlite = db.dialect == "sqlite"
        self._votes_on_driver = DriverStatement.of(self._votes_of) if sqlite else None
        self._log_on_driver = DriverStatement.of(self._log_insert) if sqlite else None
        self.votes_recorded = 0
        """Votes this process has committed: a cache of vote totals (service/signals.py)
        drops what it holds when this moves."""

    @classmethod
    def open(
        cls, url: str | None, sqlite_path: Path, shared: SQLDatabase | None = None
    ) -> ActivityStore:
        """PostgreSQL for a ``postgresql://`` URL, else the SQLite file ``sqlite_path``. On
        PostgreSQL, ``shared`` (the thread store's database) lends its pool: one pool per
        replica. On SQLite the tables keep their own file, so that logging a suggest never
        waits behind a bulk thread write."""
        postgres = url is not None and url.startswith(("postgresql://", "postgres://"))
        if postgres and shared is not None and shared.dialect == "postgresql":
            return cls(shared.sharing("activity store"))
        return cls(SQLDatabase.open(url, sqlite_path, synchronous="NORMAL"))

    def ping(self) -> bool:
        return self.db.ping()

    def close(self) -> None:
        self.db.close()
