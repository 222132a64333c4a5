"""Registering a forum question (``POST /v1/questions`` and the Discourse webhook's
``topic_created``): triage runs on it (with the forum's public answers, as suggest
routes it: ``Engine.route_question``), title and body are stored redacted, and the SLA
clock starts. Registering an id again changes nothing."""

from __future__ import annotations

from datetime import datetime

from retrieval.text import question_text
from service.admission import check_ids
from service.api.schemas import QuestionCreate
from service.runtime import Engine


def register(engine: Engine, req: QuestionCreate, now: datetime) -> bool:
    """Register ``req``; False if its id was registered before (nothing changes)."""
    check_ids([req.id])
    decision = engine.route_question(question_text(req.title, req.body))
    triage = decision.model_dump(include={"route", "queue", "confidence", "reasons"}, mode="json")
    return bool(
        engine.activity.add_question(
            req.id,
            engine.redact(req.title),
            engine.redact(req.body),
            req.category,
            engine.redact(req.url) if req.url else None,
            req.request_id,
            req.created_at or now,
            now,
            triage,
        )
    )
