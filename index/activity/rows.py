"""The activity store's rows as the rest of the code sees them (typed, not dicts), and
its time format: UTC ISO-8601 strings with microseconds, which sort as text."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


def iso(moment: datetime) -> str:
    """UTC text that sorts in time order (naive datetimes are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


@dataclass(frozen=True)
class Claim:
    """A replica (``owner``) claiming, at ``now`` until ``until``, a question that is due:
    created before its category's cutoff (``cutoffs``, else ``default_cutoff``)."""

    now: datetime
    cutoffs: Mapping[str, datetime]
    default_cutoff: datetime
    owner: str
    until: datetime


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


def _optional(text: str | None) -> datetime | None:
    return parse(text) if text else None


_AS_STORED = ("id", "title", "body", "category", "url", "request_id", "answer_thread")


def _question(r: Any) -> Question:
    return Question(
        **{name: r[name] for name in _AS_STORED},
        created_at=parse(r["created_at"]),
        registered_at=parse(r["registered_at"]),
        triage=json.loads(r["triage"]),
        answered_at=_optional(r["answered_at"]),
        notified_at=_optional(r["notified_at"]),
        notify_attempts=int(r["notify_attempts"]),
        experts_at=_optional(r["experts_at"]),
    )


UNRESOLVED_MAX = 2000  # the most questions one knowledge-gaps window clusters (the newest)
QUESTION_CHARS = 1000  # a stored question is cut to this: only representatives are shown
