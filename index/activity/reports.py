"""Reports over the suggest log, the votes and the forum questions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from index.activity.rows import QUESTION_CHARS, UNRESOLVED_MAX, Stats, Unresolved, iso, parse
from index.activity.tables import (
    feedback,
    questions,
    suggest_log,
)
from index.sql import SQLDatabase


class Reports:
    """What the stats, the leaderboard and the knowledge gaps read: every query bounded by
    an index on its time column and a window."""

    db: SQLDatabase

    def leaders(
        self, since: datetime | None, language: str | None, limit: int
    ) -> list[tuple[str, int, int]]:
        """Answer authors by questions their answers deflected: suggest requests since
        ``since`` where a reader found one of their threads helpful and no forum question
        was registered after (as ``stats`` counts deflection). Returns (author, deflected,
        helpful votes), most first; ``language`` keeps votes on threads in that language.
        Votes older than the retention window are gone, and so is their credit."""
        f, s, q = feedback.c, suggest_log.c, questions.c
        deflected = sa.func.count(sa.distinct(f.request_id))
        query = (
            sa.select(f.author, deflected.label("deflected"), sa.func.count().label("votes"))
            .select_from(feedback.join(suggest_log, f.request_id == s.request_id))
            .where(
                f.helpful == 1,
                f.author.is_not(None),
                # a vote comes after its request: the vote's time (indexed) bounds the window
                f.at >= (iso(since) if since else ""),
                s.at >= (iso(since) if since else ""),
                ~sa.exists().where(q.request_id == f.request_id),
            )
            .group_by(f.author)
            .order_by(deflected.desc(), f.author)
            .limit(limit)
        )
        if language is not None:
            query = query.where(f.language == language)
        with self.db.read() as conn:
            return [(r.author, int(r.deflected), int(r.votes)) for r in conn.execute(query)]

    def daily(self, start: datetime) -> list[dict[str, Any]]:
        """Per UTC day since ``start``: suggest requests, how many ended in ``staff`` and
        ``no_match``, and how many were deflected (as ``stats`` counts it)."""
        return self._grouped(sa.func.substr(suggest_log.c.at, 1, 10), start)

    def by_language(self, start: datetime | None) -> list[dict[str, Any]]:
        """The same figures per question language (``und`` where none was detected)."""
        return self._grouped(sa.func.coalesce(suggest_log.c.language, "und"), start)

    def _grouped(self, key: Any, start: datetime | None) -> list[dict[str, Any]]:
        s, f, q = suggest_log.c, feedback.c, questions.c
        helped = sa.exists().where(f.request_id == s.request_id, f.helpful == 1)
        registered = sa.exists().where(q.request_id == s.request_id)
        deflected = sa.and_(s.decision == "suggest", helped, ~registered)

        def count_of(condition: Any) -> Any:
            return sa.func.sum(sa.case((condition, 1), else_=0))

        query = (
            sa.select(
                key.label("key"),
                sa.func.count().label("suggest_count"),
                count_of(s.decision == "staff").label("staff"),
                count_of(s.decision == "no_match").label("no_match"),
                count_of(deflected).label("deflected"),
            )
            .where(s.at >= (iso(start) if start else ""))
            .group_by(key)
            .order_by(key)
        )
        with self.db.read() as conn:
            return [
                {
                    "key": r.key,
                    "suggest_count": int(r.suggest_count),
                    "staff": int(r.staff or 0),
                    "no_match": int(r.no_match or 0),
                    "deflected": int(r.deflected or 0),
                }
                for r in conn.execute(query)
            ]

    def unresolved(
        self, start: datetime, end: datetime, limit: int = UNRESOLVED_MAX
    ) -> list[Unresolved]:
        """Questions nothing answered between ``start`` and ``end``, the newest ``limit`` of
        them (each text cut to ``QUESTION_CHARS``): suggest requests that ended in
        ``no_match`` or ``staff``; requests whose suggestions did not answer them (the
        reader posted a question quoting the request: ``posted``, or voted a suggestion not
        helpful and none helpful: ``not_helpful``); and forum questions escalated to staff
        at their SLA (by when they were registered) that no request above already counts.
        Every statement is bounded by an index on its time column and by ``limit``."""
        s, q, f = suggest_log.c, questions.c, feedback.c
        lo, hi = iso(start), iso(end)
        text = sa.func.substr(s.question, 1, QUESTION_CHARS)
        in_window = sa.and_(s.at >= lo, s.at < hi, s.question.is_not(None))
        posted = sa.exists().where(q.request_id == s.request_id)
        helped = sa.exists().where(f.request_id == s.request_id, f.helpful == 1)
        unhelped = sa.exists().where(f.request_id == s.request_id, f.helpful == 0)
        outcome = sa.case(
            (s.decision != "suggest", s.decision),
            (posted, "posted"),
            else_="not_helpful",
        )
        asked = (
            sa.select(s.at, s.request_id, text.label("text"), s.language, outcome.label("outcome"))
            .where(
                in_window,
                sa.or_(
                    s.decision != "suggest",
                    posted,
                    sa.and_(unhelped, ~helped),
                ),
            )
            .order_by(s.at.desc())
            .limit(limit)
        )
        escalated = (
            sa.select(
                q.registered_at,
                q.request_id,
                sa.func.substr(q.title + "\n" + q.body, 1, QUESTION_CHARS).label("text"),
            )
            .where(q.registered_at >= lo, q.registered_at < hi, q.notified_at.is_not(None))
            .order_by(q.registered_at.desc())
            .limit(limit)
        )
        with self.db.read() as conn:
            rows = conn.execute(asked).all()
            counted = {r.request_id for r in rows}
            out = [Unresolved(parse(r.at), r.text, r.language, r.outcome) for r in rows]
            out += [
                Unresolved(parse(r.registered_at), r.text.strip(), None, "escalated")
                for r in conn.execute(escalated)
                if r.request_id is None or r.request_id not in counted
            ]
        return sorted(out, key=lambda u: u.at)[-limit:]

    def unresolved_count(self, start: datetime, end: datetime) -> int:
        """How many suggest requests of the window kept their question (an upper bound on
        what ``unresolved`` could return before its limit), by the index on time."""
        s = suggest_log.c
        query = sa.select(sa.func.count()).where(
            s.at >= iso(start), s.at < iso(end), s.question.is_not(None)
        )
        with self.db.read() as conn:
            return int(conn.execute(query).scalar_one())

    def stats(self, since: datetime | None) -> Stats:
        start = iso(since) if since else ""
        s, f, q = suggest_log.c, feedback.c, questions.c
        with self.db.read() as conn:
            decisions = {
                r.decision: int(r.n)
                for r in conn.execute(
                    sa.select(s.decision, sa.func.count().label("n"))
                    .where(s.at >= start)
                    .group_by(s.decision)
                )
            }
            votes = conn.execute(
                sa.select(
                    sa.func.coalesce(sa.func.sum(f.helpful), 0),
                    sa.func.coalesce(sa.func.sum(1 - f.helpful), 0),
                )
                .select_from(feedback.join(suggest_log, f.request_id == s.request_id))
                .where(s.at >= start)
            ).one()
            helped = sa.exists().where(f.request_id == s.request_id, f.helpful == 1)
            registered = sa.exists().where(q.request_id == s.request_id)
            deflected = conn.execute(
                sa.select(sa.func.count())
                .select_from(suggest_log)
                .where(s.at >= start, s.decision == "suggest", helped, ~registered)
            ).scalar_one()
            posted, answered = conn.execute(
                sa.select(sa.func.count(), sa.func.count(q.answered_at)).where(
                    q.registered_at >= start
                )
            ).one()
        return Stats(
            suggest_count=sum(decisions.values()),
            decisions=decisions,
            helpful=int(votes[0]),
            unhelpful=int(votes[1]),
            deflected=int(deflected),
            questions_posted=int(posted),
            questions_answered=int(answered),
        )
