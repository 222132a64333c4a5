"""What happens around the index: suggest requests, feedback on them, and forum questions
waiting for an answer (the escalation queue). Its own SQLite file beside the thread store,
so that logging a suggest never waits behind a bulk thread write.

Times are stored as UTC ISO-8601 strings with microseconds, so they sort as text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from index.sqlite import SQLiteDatabase, chunks

SCHEMA = """
CREATE TABLE IF NOT EXISTS suggest_log (
    request_id  TEXT PRIMARY KEY,
    at          TEXT NOT NULL,
    decision    TEXT NOT NULL,
    queue       TEXT,
    thread_ids  TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS suggest_log_at ON suggest_log(at);
CREATE TABLE IF NOT EXISTS feedback (
    request_id  TEXT NOT NULL REFERENCES suggest_log(request_id),
    thread_id   TEXT NOT NULL,
    helpful     INTEGER NOT NULL,
    at          TEXT NOT NULL,
    reader      TEXT,
    PRIMARY KEY (request_id, thread_id)
);
CREATE TABLE IF NOT EXISTS thread_feedback (
    thread_id   TEXT PRIMARY KEY,
    helpful     INTEGER NOT NULL DEFAULT 0,
    unhelpful   INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS questions (
    id              TEXT PRIMARY KEY,
    title           TEXT NOT NULL,
    body            TEXT NOT NULL DEFAULT '',
    category        TEXT NOT NULL,
    url             TEXT,
    request_id      TEXT,
    created_at      TEXT NOT NULL,
    registered_at   TEXT NOT NULL,
    triage          TEXT NOT NULL,
    answered_at     TEXT,
    answer_thread   TEXT,
    notified_at     TEXT,
    notify_attempts INTEGER NOT NULL DEFAULT 0,
    notify_after    TEXT,
    notify_error    TEXT
);
CREATE INDEX IF NOT EXISTS questions_open ON questions(answered_at, created_at);
"""


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


@dataclass(frozen=True)
class Stats:
    suggest_count: int
    decisions: dict[str, int]
    helpful: int
    unhelpful: int
    deflected: int
    questions_posted: int
    questions_answered: int


class ActivityStore(SQLiteDatabase):
    """The suggest log, feedback, forum questions and webhook state. WAL with
    ``synchronous=NORMAL``: a commit survives the process being killed but is not
    fsynced one by one (a power cut may lose the last moments of the log), which keeps
    an fsync off every /v1/suggest. The thread store stays ``FULL``."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, SCHEMA, synchronous="NORMAL")
        with self._write_lock:  # activity files from before votes were per reader
            conn = self._conn()
            columns = {r[1] for r in conn.execute("PRAGMA table_info(feedback)")}
            if "reader" not in columns:
                conn.execute("ALTER TABLE feedback ADD COLUMN reader TEXT")
            conn.execute(
                "CREATE INDEX IF NOT EXISTS feedback_reader ON feedback(reader, thread_id)"
            )

    # -- suggest log and feedback -------------------------------------------------------
    def log_suggest(
        self, request_id: str, at: datetime, decision: str, queue: str | None, ids: Sequence[str]
    ) -> None:
        with self._write_lock, self._transaction() as conn:
            conn.execute(
                "INSERT INTO suggest_log (request_id, at, decision, queue, thread_ids) "
                "VALUES (?,?,?,?,?)",
                (request_id, iso(at), decision, queue, json.dumps(list(ids))),
            )

    def suggested(self, request_id: str) -> list[str] | None:
        """Thread ids a suggest request returned; None for an unknown request id."""
        row = (
            self._conn()
            .execute("SELECT thread_ids FROM suggest_log WHERE request_id = ?", (request_id,))
            .fetchone()
        )
        return None if row is None else list(json.loads(row[0]))

    def record_feedback(
        self, request_id: str, thread_id: str, helpful: bool, at: datetime, reader: str
    ) -> str:
        """One vote per reader and thread, whatever request it comes through (and one per
        request and thread): a second vote replaces the first, so a reader who asks again
        and again cannot vote again and again. Returns ``created``, ``changed`` or
        ``unchanged``."""
        with self._write_lock, self._transaction() as conn:
            old = conn.execute(
                "SELECT request_id, helpful FROM feedback WHERE thread_id = ? "
                "AND (reader = ? OR request_id = ?) ORDER BY reader = ? DESC LIMIT 1",
                (thread_id, reader, request_id, reader),
            ).fetchone()
            if old is not None and bool(old[1]) == helpful:
                return "unchanged"
            if old is not None:
                conn.execute(
                    "UPDATE feedback SET helpful = ?, at = ?, reader = ? "
                    "WHERE request_id = ? AND thread_id = ?",
                    (int(helpful), iso(at), reader, old[0], thread_id),
                )
            else:
                conn.execute(
                    "INSERT INTO feedback (request_id, thread_id, helpful, at, reader) "
                    "VALUES (?,?,?,?,?)",
                    (request_id, thread_id, int(helpful), iso(at), reader),
                )
            up, down = (1, 0) if helpful else (0, 1)
            if old is not None:  # the vote flipped: take back the old one
                up, down = up - down, down - up
            conn.execute(
                "INSERT INTO thread_feedback (thread_id, helpful, unhelpful) VALUES (?,?,?) "
                "ON CONFLICT(thread_id) DO UPDATE SET helpful = helpful + excluded.helpful, "
                "unhelpful = unhelpful + excluded.unhelpful",
                (thread_id, up, down),
            )
            return "created" if old is None else "changed"

    def purge(self, before: datetime) -> tuple[int, int]:
        """Retention: delete suggest-log rows and reader votes older than ``before`` (a vote
        goes with its request). The per-thread vote totals that feed the ranking prior
        stay: they name no reader. Returns (suggest rows, votes) deleted."""
        cutoff = iso(before)
        with self._write_lock, self._transaction() as conn:
            votes = conn.execute(
                "DELETE FROM feedback WHERE at < ? OR request_id IN "
                "(SELECT request_id FROM suggest_log WHERE at < ?)",
                (cutoff, cutoff),
            ).rowcount
            logged = conn.execute("DELETE FROM suggest_log WHERE at < ?", (cutoff,)).rowcount
        return int(logged), int(votes)

    def feedback_counts(self, thread_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
        """thread id -> (helpful, unhelpful), for threads with any feedback."""
        out: dict[str, tuple[int, int]] = {}
        conn = self._conn()
        for chunk in chunks(thread_ids):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT * FROM thread_feedback WHERE thread_id IN ({marks})"
            for r in conn.execute(sql, chunk):
                out[r["thread_id"]] = (int(r["helpful"]), int(r["unhelpful"]))
        return out

    def stats(self, since: datetime | None) -> Stats:
        start = iso(since) if since else ""
        conn = self._conn()
        decisions = {
            r[0]: int(r[1])
            for r in conn.execute(
                "SELECT decision, count(*) FROM suggest_log WHERE at >= ? GROUP BY decision",
                (start,),
            )
        }
        votes = conn.execute(
            "SELECT coalesce(sum(helpful), 0), coalesce(sum(1 - helpful), 0) FROM feedback "
            "JOIN suggest_log USING (request_id) WHERE suggest_log.at >= ?",
            (start,),
        ).fetchone()
        deflected = conn.execute(
            "SELECT count(*) FROM suggest_log s WHERE s.at >= ? AND s.decision = 'suggest' "
            "AND EXISTS (SELECT 1 FROM feedback f WHERE f.request_id = s.request_id "
            "AND f.helpful = 1) "
            "AND NOT EXISTS (SELECT 1 FROM questions q WHERE q.request_id = s.request_id)",
            (start,),
        ).fetchone()[0]
        posted, answered = conn.execute(
            "SELECT count(*), count(answered_at) FROM questions WHERE registered_at >= ?",
            (start,),
        ).fetchone()
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
        with self._write_lock, self._transaction() as conn:
            cur = conn.execute(
                "INSERT INTO questions (id, title, body, category, url, request_id, created_at, "
                "registered_at, triage) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO NOTHING",
                (
                    question_id, title, body, category, url, request_id, iso(created_at),
                    iso(registered_at), json.dumps(triage),
                ),
            )  # fmt: skip
            return cur.rowcount == 1

    def question(self, question_id: str) -> Question | None:
        row = (
            self._conn().execute("SELECT * FROM questions WHERE id = ?", (question_id,)).fetchone()
        )
        return _question(row) if row else None

    def mark_answered(self, question_id: str, at: datetime, thread_id: str | None) -> bool:
        """Mark answered (the first answer counts); False for an unknown id."""
        with self._write_lock, self._transaction() as conn:
            cur = conn.execute(
                "UPDATE questions SET answered_at = coalesce(answered_at, ?), "
                "answer_thread = coalesce(answer_thread, ?) WHERE id = ?",
                (iso(at), thread_id, question_id),
            )
            return cur.rowcount == 1

    def unanswered_before(
        self,
        cutoff: datetime,
        limit: int | None = None,
        after: tuple[datetime, str] | None = None,
        owed_at: datetime | None = None,
    ) -> list[Question]:
        """Unanswered questions created at or before ``cutoff``, oldest first; ``after``
        (created_at, id) pages on from a previous page's last row; ``owed_at`` keeps only
        those whose breach notice is still owed and may be tried then (never delivered,
        not waiting for a retry)."""
        sql = "SELECT * FROM questions WHERE answered_at IS NULL AND created_at <= ?"
        params: list[object] = [iso(cutoff)]
        if after is not None:
            sql += " AND (created_at > ? OR (created_at = ? AND id > ?))"
            params += [iso(after[0]), iso(after[0]), after[1]]
        if owed_at is not None:
            sql += " AND notified_at IS NULL AND (notify_after IS NULL OR notify_after <= ?)"
            params.append(iso(owed_at))
        sql += " ORDER BY created_at, id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [_question(r) for r in self._conn().execute(sql, params)]

    def notify_due(self, question_id: str, now: datetime) -> bool:
        """True when a breach notice for this question is still owed and may be tried now."""
        row = (
            self._conn()
            .execute(
                "SELECT notified_at, notify_after, answered_at FROM questions WHERE id = ?",
                (question_id,),
            )
            .fetchone()
        )
        if row is None or row[0] is not None or row[2] is not None:
            return False
        return row[1] is None or row[1] <= iso(now)

    def notify_result(
        self, question_id: str, ok: bool, now: datetime, retry_at: datetime | None, error: str
    ) -> None:
        """Record a delivery attempt: sent, or failed and retried at ``retry_at`` (None:
        give up)."""
        with self._write_lock, self._transaction() as conn:
            if ok:
                conn.execute(
                    "UPDATE questions SET notified_at = ?, notify_attempts = notify_attempts + 1, "
                    "notify_error = NULL WHERE id = ?",
                    (iso(now), question_id),
                )
            else:
                after = iso(retry_at) if retry_at else "9999"  # "9999" sorts after every time
                conn.execute(
                    "UPDATE questions SET notify_attempts = notify_attempts + 1, "
                    "notify_after = ?, notify_error = ? WHERE id = ?",
                    (after, error[:500], question_id),
                )


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
    )
