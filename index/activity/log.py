"""The suggest log and the votes on it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from index.activity.rows import QUESTION_CHARS, iso
from index.activity.tables import (
    feedback,
    hook_events,
    suggest_log,
    thread_feedback,
)
from index.sql import DriverStatement, SQLDatabase


class SuggestLog:
    """Suggest requests, readers' votes on them, webhook deliveries already applied, and
    the retention purge."""

    db: SQLDatabase
    _votes_of: Any
    _log_insert: Any
    _votes_on_driver: DriverStatement | None  # SQLite: the statements above, on the driver
    _log_on_driver: DriverStatement | None
    votes_recorded: int

    def log_suggest(
        self,
        request_id: str,
        at: datetime,
        decision: str,
        queue: str | None,
        ids: Sequence[str],
        question: str | None = None,
        language: str | None = None,
    ) -> None:
        """Log a suggest request; ``question`` (already redacted, kept to its first
        ``QUESTION_CHARS``): the material of knowledge gaps, for a request nothing answered
        and for one whose suggestions may yet turn out not to answer it (a not-helpful vote,
        a question posted after); ``language`` (the question's) for every one."""
        if question is not None:
            question = question[:QUESTION_CHARS]
        row = {
            "request_id": request_id,
            "at": iso(at),
            "decision": decision,
            "queue": queue,
            "thread_ids": json.dumps(list(ids)),
            "question": question,
            "language": language,
        }
        if self._log_on_driver is not None:  # every suggest writes this: on the driver
            self.db.driver_write(self._log_on_driver, row)
            return
        with self.db.write() as conn:
            conn.execute(self._log_insert, row)

    def delivered(self, source: str, event_id: str) -> bool:
        """Whether a webhook delivery was recorded (applied) before."""
        h = hook_events.c
        query = sa.select(h.at).where(h.source == source, h.event_id == event_id)
        with self.db.read() as conn:
            return conn.execute(query).first() is not None

    def first_delivery(self, source: str, event_id: str, at: datetime) -> bool:
        """Record a webhook delivery; False (and no change) if it was recorded before."""
        insert = self.db.insert(hook_events).values(source=source, event_id=event_id, at=iso(at))
        with self.db.write() as conn:
            added = insert.on_conflict_do_nothing().returning(hook_events.c.event_id)
            return conn.execute(added).first() is not None

    def suggested(self, request_id: str) -> list[str] | None:
        """Thread ids a suggest request returned; None for an unknown request id."""
        query = sa.select(suggest_log.c.thread_ids).where(suggest_log.c.request_id == request_id)
        with self.db.read() as conn:
            text = conn.execute(query).scalar()
        return None if text is None else list(json.loads(text))

    def record_feedback(
        self,
        request_id: str,
        thread_id: str,
        helpful: bool,
        at: datetime,
        reader: str,
        author: str | None = None,
        language: str | None = None,
    ) -> str:
        """One vote per reader and thread, whatever request it comes through (and one per
        request and thread): a second vote replaces the first, so a reader who asks again
        and again cannot vote again and again. ``author`` (the answer's, if the forum named
        one) and the thread's ``language`` are kept with the vote for the leaderboard.
        Returns ``created``, ``changed`` or ``unchanged``."""
        f = feedback.c
        with self.db.write() as conn:
            self.db.lock(conn, f"vote\x00{reader}\x00{thread_id}")
            old = conn.execute(
                sa.select(f.request_id, f.helpful)
                .where(f.thread_id == thread_id)
                .where(sa.or_(f.reader == reader, f.request_id == request_id))
                .order_by(sa.case((f.reader == reader, 0), else_=1))
                .limit(1)
                .with_for_update()
            ).first()
            if old is not None and bool(old.helpful) == helpful:
                return "unchanged"
            vote = {
                "helpful": int(helpful),
                "at": iso(at),
                "reader": reader,
                "author": author,
                "language": language,
            }
            if old is not None:
                conn.execute(
                    feedback.update()
                    .where(f.request_id == old.request_id, f.thread_id == thread_id)
                    .values(vote)
                )
            else:
                conn.execute(
                    feedback.insert().values(request_id=request_id, thread_id=thread_id, **vote)
                )
            _count_vote(self.db, conn, thread_id, helpful, old is not None)
            self.votes_recorded += 1  # (counted even if the commit then fails: harmless)
            return "created" if old is None else "changed"

    def purge(self, before: datetime) -> tuple[int, int]:
        """Retention: delete suggest-log rows and reader votes older than ``before`` (a vote
        goes with its request). The per-thread vote totals that feed the ranking prior
        stay: they name no reader. Returns (suggest rows, votes) deleted."""
        cutoff = iso(before)
        old_requests = sa.select(suggest_log.c.request_id).where(suggest_log.c.at < cutoff)
        with self.db.write() as conn:
            votes = conn.execute(
                feedback.delete().where(
                    sa.or_(feedback.c.at < cutoff, feedback.c.request_id.in_(old_requests))
                )
            ).rowcount
            logged = conn.execute(suggest_log.delete().where(suggest_log.c.at < cutoff)).rowcount
            conn.execute(hook_events.delete().where(hook_events.c.at < cutoff))
        return int(logged), int(votes)

    def feedback_counts(self, thread_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
        """thread id -> (helpful, unhelpful), for threads with any feedback."""
        if not thread_ids:
            return {}
        if self._votes_on_driver is not None:  # every suggest reads these: on the driver
            ids = {"ids": json.dumps(list(thread_ids))}
            found = self.db.driver_rows(self._votes_on_driver, ids)
            return {r[0]: (int(r[1]), int(r[2])) for r in found}
        with self.db.read() as conn:
            rows = conn.execute(self._votes_of, {"ids": list(thread_ids)})
            return {r.thread_id: (int(r.helpful), int(r.unhelpful)) for r in rows}


def _count_vote(
    db: SQLDatabase, conn: sa.Connection, thread_id: str, helpful: bool, flipped: bool
) -> None:
    """The thread's running tally: a new vote adds one; a flipped one also takes back the
    vote it replaces."""
    up, down = (1, 0) if helpful else (0, 1)
    if flipped:
        up, down = up - down, down - up
    insert = db.insert(thread_feedback).values(thread_id=thread_id, helpful=up, unhelpful=down)
    conn.execute(
        insert.on_conflict_do_update(
            index_elements=["thread_id"],
            set_={
                "helpful": thread_feedback.c.helpful + insert.excluded.helpful,
                "unhelpful": thread_feedback.c.unhelpful + insert.excluded.unhelpful,
            },
        )
    )
