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

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from index.activity_tables import (
    feedback,
    hook_events,
    leases,
    questions,
    suggest_log,
    thread_feedback,
)
from index.migrate import upgrade
from index.sql import SQLDatabase


def iso(moment: datetime) -> str:
    """UTC text that sorts in time order (naive datetimes are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


@dataclass(frozen=True)
class Question:
    id: str
    title: str
    body: str
    category: str
    url: str | None
    request_id: str | None
    created_at: datetime
    registered_at: datetime
    triage: dict[str, Any]
    answered_at: datetime | None
    answer_thread: str | None
    notified_at: datetime | None
    notify_attempts: int
    experts_at: datetime | None = None


@dataclass(frozen=True)
class Unresolved:
    """A question nobody could answer (knowledge gaps are made of these)."""

    at: datetime
    text: str
    language: str | None
    outcome: str  # no_match, staff or escalated


@dataclass(frozen=True)
class Stats:
    suggest_count: int
    decisions: dict[str, int]
    helpful: int
    unhelpful: int
    deflected: int
    questions_posted: int
    questions_answered: int


UNRESOLVED_MAX = 2000  # the most questions one knowledge-gaps window clusters (the newest)
QUESTION_CHARS = 1000  # a stored question is cut to this: only representatives are shown

_LOG_INSERT = (
    "INSERT INTO suggest_log (request_id, at, decision, queue, thread_ids, question, language) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


class ActivityStore:
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
        self.votes_recorded = 0
        """Votes this process has committed: a cache of vote totals (service/signals.py)
        drops what it holds when this moves."""

    @classmethod
    def open(cls, url: str | None, sqlite_path: Path) -> ActivityStore:
        """PostgreSQL for a ``postgresql://`` URL, else the SQLite file ``sqlite_path``."""
        return cls(SQLDatabase.open(url, sqlite_path, synchronous="NORMAL"))

    def ping(self) -> bool:
        return self.db.ping()

    def close(self) -> None:
        self.db.close()

    # -- suggest log and feedback -------------------------------------------------------
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
        if self.db.dialect == "sqlite":  # every suggest writes this: on the driver
            self.db.driver_write(_LOG_INSERT, tuple(row.values()))
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
            up, down = (1, 0) if helpful else (0, 1)
            if old is not None:  # the vote flipped: take back the old one
                up, down = up - down, down - up
            insert = self.db.insert(thread_feedback).values(
                thread_id=thread_id, helpful=up, unhelpful=down
            )
            conn.execute(
                insert.on_conflict_do_update(
                    index_elements=["thread_id"],
                    set_={
                        "helpful": thread_feedback.c.helpful + insert.excluded.helpful,
                        "unhelpful": thread_feedback.c.unhelpful + insert.excluded.unhelpful,
                    },
                )
            )
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

    def feedback_counts(self, thread_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
        """thread id -> (helpful, unhelpful), for threads with any feedback."""
        if not thread_ids:
            return {}
        if self.db.dialect == "sqlite":  # every suggest reads these: on the driver
            found = self.db.driver_rows(
                "SELECT thread_id, helpful, unhelpful FROM thread_feedback "
                "WHERE thread_id IN (SELECT value FROM json_each(?))",
                (json.dumps(list(thread_ids)),),
            )
            return {r[0]: (int(r[1]), int(r[2])) for r in found}
        with self.db.read() as conn:
            rows = conn.execute(self._votes_of, {"ids": list(thread_ids)})
            return {r.thread_id: (int(r.helpful), int(r.unhelpful)) for r in rows}

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

    # -- forum questions and escalation -------------------------------------------------
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

    def claim_breached(
        self,
        now: datetime,
        cutoffs: Mapping[str, datetime],
        default_cutoff: datetime,
        owner: str,
        until: datetime,
    ) -> Question | None:
        """Claim the oldest question whose breach notice is owed now: unanswered, created
        before its category's cutoff (``cutoffs``, else ``default_cutoff``), never
        delivered, not waiting for a retry, and not claimed by a live lease. The claim
        holds until ``until``; a replica that dies while delivering leaves a lease that
        runs out, and another replica claims the question then. Row locks with SKIP LOCKED
        on PostgreSQL, the IMMEDIATE write lock on SQLite: two replicas never claim the
        same question at once."""
        q = questions.c
        now_text = iso(now)
        owed = sa.and_(
            q.notified_at.is_(None),
            sa.or_(q.notify_after.is_(None), q.notify_after <= now_text),
        )
        return self._claim(owed, now, cutoffs, default_cutoff, owner, until)

    def claim_experts_due(
        self,
        now: datetime,
        cutoffs: Mapping[str, datetime],
        default_cutoff: datetime,
        owner: str,
        until: datetime,
    ) -> Question | None:
        """Claim the oldest question whose notice to community experts is due (created
        before its cutoff, a fraction of its SLA), not yet sent or given up, and not yet
        past its SLA notice (staff have it then). Same claims as ``claim_breached``."""
        q = questions.c
        owed = sa.and_(q.experts_at.is_(None), q.notified_at.is_(None))
        return self._claim(owed, now, cutoffs, default_cutoff, owner, until)

    def _claim(
        self,
        owed: sa.ColumnElement[bool],
        now: datetime,
        cutoffs: Mapping[str, datetime],
        default_cutoff: datetime,
        owner: str,
        until: datetime,
    ) -> Question | None:
        q = questions.c
        now_text = iso(now)
        due = [
            sa.and_(q.category == category, q.created_at <= iso(cutoff))
            for category, cutoff in cutoffs.items()
        ]
        due.append(sa.and_(q.category.not_in(list(cutoffs)), q.created_at <= iso(default_cutoff)))
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
                .values(claimed_by=owner, claimed_until=iso(until))
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

    # -- jobs that one replica at a time runs -------------------------------------------
    def try_lease(self, name: str, owner: str, now: datetime, until: datetime) -> bool:
        """Take (or renew) the lease ``name`` until ``until`` if nobody else holds a live
        one; True when ``owner`` holds it now."""
        lease = leases.c
        with self.db.write() as conn:
            held = conn.execute(
                sa.select(lease.owner, lease.until).where(lease.name == name).with_for_update()
            ).first()
            if held is None:
                insert = self.db.insert(leases).values(name=name, owner=owner, until=iso(until))
                taken = insert.on_conflict_do_nothing().returning(leases.c.name)
                return conn.execute(taken).first() is not None
            if held.owner != owner and held.until > iso(now):
                return False
            conn.execute(
                leases.update().where(lease.name == name).values(owner=owner, until=iso(until))
            )
            return True


def _optional(text: str | None) -> datetime | None:
    return parse(text) if text else None


def _question(r: Any) -> Question:
    return Question(
        id=r["id"],
        title=r["title"],
        body=r["body"],
        category=r["category"],
        url=r["url"],
        request_id=r["request_id"],
        created_at=parse(r["created_at"]),
        registered_at=parse(r["registered_at"]),
        triage=json.loads(r["triage"]),
        answered_at=_optional(r["answered_at"]),
        answer_thread=r["answer_thread"],
        notified_at=_optional(r["notified_at"]),
        notify_attempts=int(r["notify_attempts"]),
        experts_at=_optional(r["experts_at"]),
    )
