"""The activity store's contract, once per backend (the ``activity`` fixture: SQLite, and a
real PostgreSQL server, ``slow``): the suggest log and votes, questions, the escalation
claims that several replicas share, leases, and the schema migrations."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from index.activity import ActivityStore, Claim
from index.migrate import HEAD, current, head
from index.sql import SQLDatabase
from tests.server import BIN

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _question(a: ActivityStore, qid: str, hours_ago: float, category: str = "general") -> None:
    created = NOW - timedelta(hours=hours_ago)
    assert a.add_question(qid, f"t {qid}", "", category, None, None, created, created, {})


def _claim(a: ActivityStore, owner: str, at: datetime = NOW, lease_s: float = 60) -> str | None:
    cutoffs = {"billing": at - timedelta(hours=4)}
    until = at + timedelta(seconds=lease_s)
    q = a.claim_breached(Claim(at, cutoffs, at - timedelta(hours=24), owner, until))
    return None if q is None else q.id


def test_schema_is_at_head(activity: ActivityStore) -> None:
    assert current(activity.db.engine) == head() == HEAD  # HEAD: the no-Alembic fast path


def test_votes_one_per_reader_and_thread(activity: ActivityStore) -> None:
    activity.log_suggest("r1", NOW, "suggest", None, ["t1", "t2"])
    activity.log_suggest("r2", NOW, "suggest", None, ["t1"])
    assert activity.suggested("r1") == ["t1", "t2"] and activity.suggested("nope") is None
    assert activity.record_feedback("r1", "t1", True, NOW, "alice") == "created"
    assert activity.record_feedback("r2", "t1", True, NOW, "alice") == "unchanged"
    assert activity.record_feedback("r2", "t1", False, NOW, "alice") == "changed"
    assert activity.record_feedback("r1", "t1", True, NOW, "bob") == "changed"  # same request
    assert activity.record_feedback("r2", "t2", True, NOW, "bob") == "created"
    assert activity.feedback_counts(["t1", "t2", "t3"]) == {"t1": (1, 0), "t2": (1, 0)}
    stats = activity.stats(None)
    assert stats.suggest_count == 2 and stats.decisions == {"suggest": 2}
    assert (stats.helpful, stats.unhelpful, stats.deflected) == (2, 0, 2)
    assert activity.stats(NOW + timedelta(seconds=1)).suggest_count == 0


def test_the_suggest_log_commits_each_entry_and_refuses_a_duplicate(
    activity: ActivityStore,
) -> None:
    """On SQLite the log's insert runs on the driver (autocommit); on both backends each
    entry is committed on its own, counted, and a failed one is a StoreError."""
    from index.errors import StoreError

    before = activity.db.commits
    activity.log_suggest("r1", NOW, "no_match", None, [], question="q [EMAIL]", language="it")
    assert activity.db.commits == before + 1 and activity.suggested("r1") == []
    with pytest.raises(StoreError, match="write not committed"):
        activity.log_suggest("r1", NOW, "suggest", None, ["t1"])  # the request id is taken
    assert activity.suggested("r1") == [] and activity.db.commits == before + 1
    gaps = activity.unresolved(NOW - timedelta(hours=1), NOW + timedelta(hours=1))
    assert [(g.at, g.text, g.language, g.outcome) for g in gaps] == [
        (NOW, "q [EMAIL]", "it", "no_match")
    ]


def test_concurrent_votes_of_one_reader_count_once(activity: ActivityStore) -> None:
    """Eight requests voting for one reader at once (as through eight replicas): one vote."""
    for i in range(8):
        activity.log_suggest(f"r{i}", NOW, "suggest", None, ["t1"])
    barrier = threading.Barrier(8)

    def vote(i: int) -> None:
        barrier.wait()
        activity.record_feedback(f"r{i}", "t1", True, NOW, "alice")

    threads = [threading.Thread(target=vote, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert activity.feedback_counts(["t1"]) == {"t1": (1, 0)}


def test_questions_register_once_and_the_first_answer_counts(activity: ActivityStore) -> None:
    _question(activity, "q1", 30)
    assert not activity.add_question("q1", "again", "", "general", None, None, NOW, NOW, {})
    assert activity.mark_answered("q1", NOW, "t9")
    assert activity.mark_answered("q1", NOW + timedelta(hours=1), "t10")
    stored = activity.question("q1")
    assert stored is not None and stored.title == "t q1"
    assert stored.answer_thread == "t9" and stored.answered_at == NOW
    assert not activity.mark_answered("nope", NOW, None)
    stats = activity.stats(None)
    assert (stats.questions_posted, stats.questions_answered) == (1, 1)


def test_unanswered_pages_in_time_order(activity: ActivityStore) -> None:
    for i in range(7):
        _question(activity, f"q{i}", 10 + i)
    page = activity.unanswered_before(NOW, limit=3)
    assert [q.id for q in page] == ["q6", "q5", "q4"]
    rest = activity.unanswered_before(NOW, after=(page[-1].created_at, page[-1].id))
    assert [q.id for q in rest] == ["q3", "q2", "q1", "q0"]


def test_claims_follow_the_sla_of_each_category(activity: ActivityStore) -> None:
    _question(activity, "fresh", 2, "billing")  # billing SLA 4 h: not yet
    _question(activity, "general-10h", 10)  # default SLA 24 h: not yet
    _question(activity, "billing-5h", 5, "billing")
    _question(activity, "general-30h", 30)
    assert _claim(activity, "a") == "general-30h"
    assert _claim(activity, "a") == "billing-5h"
    assert _claim(activity, "a") is None


def test_a_claim_is_exclusive_until_its_lease_runs_out(activity: ActivityStore) -> None:
    _question(activity, "q", 30)
    assert _claim(activity, "replica-a", lease_s=60) == "q"
    assert _claim(activity, "replica-b") is None  # A is delivering
    later = NOW + timedelta(seconds=61)  # A died mid-delivery: its lease ran out
    assert _claim(activity, "replica-b", at=later) == "q"
    activity.notify_result("q", True, later, None, "", "replica-b")
    assert _claim(activity, "replica-a", at=later + timedelta(hours=1)) is None  # delivered
    stored = activity.question("q")
    assert stored is not None and stored.notified_at == later and stored.notify_attempts == 1


def test_a_failed_delivery_waits_for_its_retry(activity: ActivityStore) -> None:
    _question(activity, "q", 30)
    assert _claim(activity, "a") == "q"
    activity.notify_result("q", False, NOW, NOW + timedelta(seconds=10), "HTTP 500", "a")
    assert _claim(activity, "b") is None
    assert _claim(activity, "b", at=NOW + timedelta(seconds=10)) == "q"
    activity.release("q", "b")
    activity.notify_result("q", False, NOW, None, "HTTP 500", "a")  # gave up
    assert _claim(activity, "b", at=NOW + timedelta(days=365)) is None


def test_replicas_claiming_at_once_never_share_a_question(
    activity_url: str | None, tmp_path: Path
) -> None:
    """Four stores (four replicas: separate engines and pools) claim 40 questions at once."""
    stores = [ActivityStore.open(activity_url, tmp_path / "activity.db") for _ in range(4)]
    for i in range(40):
        _question(stores[0], f"q{i:02d}", 30)
    claimed: dict[str, list[str]] = {}
    barrier = threading.Barrier(4)

    def work(i: int) -> None:
        barrier.wait()
        mine = claimed.setdefault(f"r{i}", [])
        while (qid := _claim(stores[i], f"r{i}")) is not None:
            mine.append(qid)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [q for ids in claimed.values() for q in ids]
    assert sorted(every) == [f"q{i:02d}" for i in range(40)]  # each once, none lost
    for s in stores:
        s.close()


def test_leases_are_held_by_one_owner_at_a_time(activity: ActivityStore) -> None:
    hour = timedelta(hours=1)
    assert activity.try_lease("retention", "a", NOW, NOW + hour)
    assert not activity.try_lease("retention", "b", NOW + timedelta(minutes=30), NOW + hour)
    assert activity.try_lease("retention", "a", NOW + timedelta(minutes=30), NOW + 2 * hour)
    assert activity.try_lease("retention", "b", NOW + 2 * hour, NOW + 3 * hour)  # ran out
    assert not activity.try_lease("retention", "a", NOW + 2 * hour, NOW + 3 * hour)
    assert activity.try_lease("other-job", "a", NOW, NOW + hour)


def test_upgrading_from_many_processes_at_once_migrates_once(
    activity_url: str | None, tmp_path: Path
) -> None:
    """Four replicas run ``unsource db upgrade`` at once on an empty database: one
    migrates, the others wait for it and find the schema at head."""
    if activity_url is None:
        pytest.skip("replicas share PostgreSQL; SQLite is one machine's file")
    env = {**os.environ, "UNSOURCE_DATABASE_URL": activity_url, "UNSOURCE_DATA_DIR": str(tmp_path)}
    cli = [str(BIN), "db", "upgrade"]
    runs = [subprocess.Popen(cli, env=env, stdout=subprocess.PIPE, text=True) for _ in range(4)]
    outputs = [r.communicate(timeout=120)[0] for r in runs]
    assert [r.returncode for r in runs] == [0, 0, 0, 0], outputs
    assert sum(f"empty -> {head()}" in out for out in outputs) >= 1
    db = SQLDatabase.open(activity_url, Path("unused"))
    assert current(db.engine) == head()
    with db.read() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar() == 1
    db.close()
    shown = subprocess.run(
        [*cli[:-1], "current"], env=env, capture_output=True, text=True, check=True
    )
    assert '"up_to_date": true' in shown.stdout


def test_db_upgrade_names_an_unreachable_database(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "UNSOURCE_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
        "UNSOURCE_DATA_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [str(BIN), "db", "upgrade"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1 and "database:" in done.stderr
    assert "Traceback" not in done.stderr


OLD_SCHEMA = """
CREATE TABLE suggest_log (request_id TEXT PRIMARY KEY, at TEXT NOT NULL,
    decision TEXT NOT NULL, queue TEXT, thread_ids TEXT NOT NULL DEFAULT '[]');
CREATE TABLE feedback (request_id TEXT NOT NULL REFERENCES suggest_log(request_id),
    thread_id TEXT NOT NULL, helpful INTEGER NOT NULL, at TEXT NOT NULL,
    PRIMARY KEY (request_id, thread_id));
CREATE TABLE thread_feedback (thread_id TEXT PRIMARY KEY, helpful INTEGER NOT NULL DEFAULT 0,
    unhelpful INTEGER NOT NULL DEFAULT 0);
CREATE TABLE questions (id TEXT PRIMARY KEY, title TEXT NOT NULL, body TEXT NOT NULL
    DEFAULT '', category TEXT NOT NULL, url TEXT, request_id TEXT, created_at TEXT NOT NULL,
    registered_at TEXT NOT NULL, triage TEXT NOT NULL, answered_at TEXT, answer_thread TEXT,
    notified_at TEXT, notify_attempts INTEGER NOT NULL DEFAULT 0, notify_after TEXT,
    notify_error TEXT);
INSERT INTO suggest_log VALUES ('r-old', '2026-01-01T00:00:00.000000+00:00', 'suggest', NULL,
    '["t1"]');
INSERT INTO feedback VALUES ('r-old', 't1', 1, '2026-01-01T00:00:00.000000+00:00');
INSERT INTO thread_feedback VALUES ('t1', 1, 0);
"""


def test_an_activity_file_from_before_migrations_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "activity.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(OLD_SCHEMA)
    a = ActivityStore.open(None, path)
    assert current(a.db.engine) == head()
    assert a.suggested("r-old") == ["t1"] and a.feedback_counts(["t1"]) == {"t1": (1, 0)}
    assert a.record_feedback("r-old", "t1", False, NOW, "alice") == "changed"  # reader column
    _question(a, "q", 30)
    assert _claim(a, "r") == "q"  # claim columns
    a.close()


def test_leaders_count_deflected_requests_per_author(activity: ActivityStore) -> None:
    for rid in ("r1", "r2", "r3", "r4"):
        activity.log_suggest(rid, NOW, "suggest", None, ["t1", "t2"])
    activity.record_feedback("r1", "t1", True, NOW, "alice", author="maria", language="en")
    activity.record_feedback("r1", "t2", True, NOW, "alice", author="maria", language="en")
    activity.record_feedback("r2", "t2", True, NOW, "bob", author="maria", language="en")
    activity.record_feedback("r3", "t1", True, NOW, "carol", author="joao", language="pt")
    activity.record_feedback("r4", "t1", False, NOW, "dan", author="joao", language="pt")
    assert activity.leaders(None, None, 10) == [("maria", 2, 3), ("joao", 1, 1)]
    assert activity.leaders(None, "pt", 10) == [("joao", 1, 1)]
    _question(activity, "q", 1)
    assert activity.add_question("q2", "t", "", "general", None, "r3", NOW, NOW, {})
    assert activity.leaders(None, None, 10) == [("maria", 2, 3)]  # r3 asked anyway


def test_daily_language_and_unresolved_figures(activity: ActivityStore) -> None:
    activity.log_suggest("r1", NOW, "suggest", None, ["t1"], language="en")
    activity.log_suggest("r2", NOW, "no_match", None, [], question="q two", language="pt")
    activity.log_suggest("r3", NOW, "staff", "billing", [], question="q [CARD]")
    activity.record_feedback("r1", "t1", True, NOW, "alice", author="maria", language="en")
    day = {"suggest_count": 3, "staff": 1, "no_match": 1, "deflected": 1}
    assert activity.daily(NOW - timedelta(days=1)) == [{"key": NOW.date().isoformat(), **day}]
    by_language = {r.pop("key"): r for r in activity.by_language(None)}
    assert by_language == {
        "en": {"suggest_count": 1, "staff": 0, "no_match": 0, "deflected": 1},
        "pt": {"suggest_count": 1, "staff": 0, "no_match": 1, "deflected": 0},
        "und": {"suggest_count": 1, "staff": 1, "no_match": 0, "deflected": 0},
    }
    unresolved = activity.unresolved(NOW - timedelta(hours=1), NOW + timedelta(hours=1))
    assert sorted((u.text, u.language or "", u.outcome) for u in unresolved) == [
        ("q [CARD]", "", "staff"),
        ("q two", "pt", "no_match"),
    ]


def test_on_sqlite_the_activity_keeps_its_own_file_even_when_offered_a_pool(
    tmp_path: Path,
) -> None:
    """Sharing a pool is for PostgreSQL; on SQLite the activity tables stay in their own
    file, so a suggest's log insert never waits behind a bulk thread write."""
    threads = SQLDatabase.open(None, tmp_path / "threads.db", what="thread store")
    activity = ActivityStore.open(None, tmp_path / "activity.db", shared=threads)
    assert activity.db.engine is not threads.engine and activity.db.owns_engine
    borrowed = threads.sharing("activity store")
    assert borrowed.engine is threads.engine and not borrowed.owns_engine
    with threads.read() as conn:
        assert conn.exec_driver_sql("SELECT 1").scalar_one() == 1
    kept = threads.engine.pool.checkedin()  # type: ignore[attr-defined]
    assert kept >= 1
    borrowed.close()  # does not dispose the lender's pool: its open connections stay
    assert threads.engine.pool.checkedin() == kept  # type: ignore[attr-defined]
    threads.close()
    assert threads.engine.pool.checkedin() == 0  # type: ignore[attr-defined]
    activity.close()
