"""Forum questions and the escalation queue."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from index.activity.rows import Claim, Question, _question, iso
from index.activity.tables import (
    questions,
)
from index.sql import SQLDatabase


class Questions:
    """Forum questions waiting for an answer, their SLA notices and the experts' notices,
    each claimed by one replica at a time."""

    db: SQLDatabase

    def add_question(
        self,
        question_id: str,
        title: str,
        body: str,
        category: str,
        url: str | None,
        request_id: str | None,
        created_at: datetime,
        registered_at: datetime,
        triage: dict[str, Any],
    ) -> bool:
        """Register a question; False (and no change) if the id is already registered."""
        insert = self.db.insert(questions).values(
            id=question_id, title=title, body=body, category=category, url=url,
            request_id=request_id, created_at=iso(created_at),
            registered_at=iso(registered_at), triage=json.dumps(triage), notify_attempts=0,
        )  # fmt: skip
        with self.db.write() as conn:
            added = insert.on_conflict_do_nothing().returning(questions.c.id)
            return conn.execute(added).first() is not None

    def question(self, question_id: str) -> Question | None:
        with self.db.read() as conn:
            row = conn.execute(sa.select(questions).where(questions.c.id == question_id)).first()
        return _question(row._mapping) if row else None

    def mark_answered(self, question_id: str, at: datetime, thread_id: str | None) -> bool:
        """Mark answered (the first answer counts); False for an unknown id."""
        q = questions.c
        with self.db.write() as conn:
            done = conn.execute(
                questions.update()
                .where(q.id == question_id)
                .values(
                    answered_at=sa.func.coalesce(q.answered_at, iso(at)),
                    answer_thread=sa.func.coalesce(q.answer_thread, thread_id),
                )
            )
            return done.rowcount == 1

    def unanswered_before(
        self,
        cutoff: datetime,
        limit: int | None = None,
        after: tuple[datetime, str] | None = None,
    ) -> list[Question]:
        """Unanswered questions created at or before ``cutoff``, oldest first; ``after``
        (created_at, id) pages on from a previous page's last row."""
        q = questions.c
        query = sa.select(questions).where(q.answered_at.is_(None), q.created_at <= iso(cutoff))
        if after is not None:
            query = query.where(sa.tuple_(q.created_at, q.id) > sa.tuple_(iso(after[0]), after[1]))
        query = query.order_by(q.created_at, q.id).limit(limit)
        with self.db.read() as conn:
            return [_question(r._mapping) for r in conn.execute(query)]

    def claim_breached(self, claim: Claim) -> Question | None:
        """Claim the oldest question whose breach notice is owed now: unanswered, created
        before its category's cutoff (``cutoffs``, else ``default_cutoff``), never
        delivered, not waiting for a retry, and not claimed by a live lease. The claim
        holds until ``until``; a replica that dies while delivering leaves a lease that
        runs out, and another replica claims the question then. Row locks with SKIP LOCKED
        on PostgreSQL, the IMMEDIATE write lock on SQLite: two replicas never claim the
        same question at once."""
        q = questions.c
        now_text = iso(claim.now)
        owed = sa.and_(
            q.notified_at.is_(None),
            sa.or_(q.notify_after.is_(None), q.notify_after <= now_text),
        )
        return self._claim(owed, claim)

    def claim_experts_due(self, claim: Claim) -> Question | None:
        """Claim the oldest question whose notice to community experts is due (created
        before its cutoff, a fraction of its SLA), not yet sent or given up, and not yet
        past its SLA notice (staff have it then). Same claims as ``claim_breached``."""
        q = questions.c
        owed = sa.and_(q.experts_at.is_(None), q.notified_at.is_(None))
        return self._claim(owed, claim)

    def _claim(self, owed: sa.ColumnElement[bool], claim: Claim) -> Question | None:
        q = questions.c
        now_text = iso(claim.now)
        due = [
            sa.and_(q.category == category, q.created_at <= iso(cutoff))
            for category, cutoff in claim.cutoffs.items()
        ]
        default = iso(claim.default_cutoff)
        due.append(sa.and_(q.category.not_in(list(claim.cutoffs)), q.created_at <= default))
        query = (
            sa.select(questions)
            .where(
                q.answered_at.is_(None),
                owed,
                sa.or_(q.claimed_until.is_(None), q.claimed_until <= now_text),
                sa.or_(*due),
            )
            .order_by(q.created_at, q.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        with self.db.write() as conn:
            row = conn.execute(query).first()
            if row is None:
                return None
            conn.execute(
                questions.update()
                .where(q.id == row.id)
                .values(claimed_by=claim.owner, claimed_until=iso(claim.until))
            )
        return _question(row._mapping)

    def experts_result(self, question_id: str, now: datetime, error: str, owner: str) -> None:
        """The experts notice went out (``error`` empty) or was given up (one attempt: it
        is a head start, the SLA notice to staff follows regardless); releases the claim."""
        q = questions.c
        with self.db.write() as conn:
            conn.execute(
                questions.update()
                .where(q.id == question_id)
                .values(experts_at=iso(now), experts_error=error[:500] or None)
            )
            self._release(conn, question_id, owner)

    def notify_result(
        self,
        question_id: str,
        ok: bool,
        now: datetime,
        retry_at: datetime | None,
        error: str,
        owner: str | None = None,
    ) -> None:
        """Record a delivery attempt: sent, or failed and retried at ``retry_at`` (None:
        give up); the claim of ``owner`` is released."""
        q = questions.c
        values: dict[str, Any] = {"notify_attempts": q.notify_attempts + 1}
        if ok:
            values |= {"notified_at": iso(now), "notify_error": None}
        else:
            after = iso(retry_at) if retry_at else "9999"  # "9999" sorts after every time
            values |= {"notify_after": after, "notify_error": error[:500]}
        with self.db.write() as conn:
            conn.execute(questions.update().where(q.id == question_id).values(values))
            if owner is not None:
                self._release(conn, question_id, owner)

    def release(self, question_id: str, owner: str) -> None:
        """Give up ``owner``'s claim on a question without recording an attempt."""
        with self.db.write() as conn:
            self._release(conn, question_id, owner)

    @staticmethod
    def _release(conn: sa.Connection, question_id: str, owner: str) -> None:
        q = questions.c
        conn.execute(
            questions.update()
            .where(q.id == question_id, q.claimed_by == owner)
            .values(claimed_by=None, claimed_until=None)
        )
