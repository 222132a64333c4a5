"""Security finding N1 (2026-12-04): every report the API serves (the public leaderboard,
stats, the daily and per-language breakdowns) asks, per vote or request, whether a forum
question quoted it. Without an index on ``questions.request_id`` SQLite scanned the whole
questions table once per row (55 s at 20k votes and 20k questions). The plans of the
statements those reports run must find questions by index, never scan them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from index.activity import ActivityStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ActivityStore]:
    a = ActivityStore.open(None, tmp_path / "activity.db")
    yield a
    a.close()


def _plans(a: ActivityStore, report: Any) -> list[str]:
    """Run ``report`` and return SQLite's query plan of each statement it executed."""
    seen: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        seen.append((statement, params))

    sa.event.listen(a.db.engine, "before_cursor_execute", capture)
    try:
        report()
    finally:
        sa.event.remove(a.db.engine, "before_cursor_execute", capture)
    plans = []
    raw = a.db.engine.raw_connection()
    try:
        for statement, params in seen:
            rows = raw.cursor().execute(f"EXPLAIN QUERY PLAN {statement}", params).fetchall()
            plans.append("\n".join(str(r[-1]) for r in rows))
    finally:
        raw.close()
    return plans


@pytest.mark.parametrize("name", ["leaders", "stats", "daily", "by_language"])
def test_reports_find_questions_by_index(store: ActivityStore, name: str) -> None:
    since = datetime.now(UTC) - timedelta(days=1)
    report = {
        "leaders": lambda: store.leaders(since, None, 10),
        "stats": lambda: store.stats(since),
        "daily": lambda: store.daily(since),
        "by_language": lambda: store.by_language(since),
    }[name]
    plans = [p for p in _plans(store, report) if "questions" in p]
    assert plans, f"{name} asked nothing of the questions table"
    for plan in plans:
        assert "SCAN questions" not in plan, plan
