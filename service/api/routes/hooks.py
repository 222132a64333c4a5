"""``POST /v1/hooks/discourse``: live sync from a Discourse forum's webhook.

A delivery is verified before it is parsed: ``X-Discourse-Event-Signature`` must be
``sha256=`` + the HMAC-SHA256 of the raw body under ``UNSOURCE_DISCOURSE_WEBHOOK_SECRET``
(compared in constant time); an unsigned or wrongly signed one is refused (401). A
delivery whose event is older than ``UNSOURCE_DISCOURSE_MAX_AGE_HOURS`` is refused as
stale (400): the event id header is not signed, so a captured body replayed under a new
id is stopped by its own timestamps (a post's ``updated_at``, a new topic's
``created_at``; a topic edit carries no time of its own, and replaying one only makes
unsource read the forum's current state again). A repeated ``X-Discourse-Event-Id`` changes nothing
(200, ``duplicate``).

What each event does:

- ``topic_created``: the topic is registered as a forum question, with triage, exactly as
  ``POST /v1/questions`` does (its SLA clock starts);
- ``post_created``, ``post_edited``, ``post_destroyed``, ``accepted_solution``,
  ``unaccepted_solution``: the topic is read again from the forum (``GET /t/{id}.json``)
  and its thread stored as it now is, searchable when the 2xx returns (so deliveries that
  arrive out of order end in the forum's current state); a reply by staff or an accepted
  solution marks the question answered;
- ``topic_edited``, ``topic_destroyed``: a topic deleted, unlisted or moved to a private
  category (or a personal message) is removed; otherwise re-read as above.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from index.sources.discourse import DiscourseClient, DiscourseError, skip_reason, topic_thread
from service.api.deps import EngineDep
from service.api.schemas import QuestionCreate
from service.intake import register
from service.runtime import Engine

router = APIRouter()
PREFIX = "discourse-"
SIGNATURE = "X-Discourse-Event-Signature"
TOPIC_EVENTS = {"topic_created", "topic_edited", "topic_destroyed", "topic_recovered"}
POST_EVENTS = {"post_created", "post_edited", "post_destroyed", "post_recovered"}
SOLVED_EVENTS = {"accepted_solution", "unaccepted_solution"}


def _refuse(status: int, error: str, field: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": error, "detail": [{"field": field, "message": message}]}, status_code=status
    )


def _parse_time(value: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@router.post("/v1/hooks/discourse", include_in_schema=False)  # for the forum, not API users
async def discourse_hook(request: Request, engine: EngineDep) -> JSONResponse:
    """A Discourse webhook delivery (see the module doc): 200 with what was done."""
    settings = engine.settings
    secret = settings.discourse_webhook_secret
    if not secret:
        return _refuse(404, "not_found", "path", "no Discourse webhook is configured")
    raw = await request.body()
    signature = request.headers.get(SIGNATURE, "")
    if not signature:
        return _refuse(401, "unauthorized", SIGNATURE, "unsigned delivery")
    expected = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        return _refuse(401, "unauthorized", SIGNATURE, "signature does not match the body")
    event_id = request.headers.get("X-Discourse-Event-Id", "").strip()
    event = request.headers.get("X-Discourse-Event", "").strip()
    if not event_id or len(event_id) > 64:
        return _refuse(400, "bad_request", "X-Discourse-Event-Id", "missing or too long")
    try:
        payload = json.loads(raw)
        subject = next(v for k, v in payload.items() if k in ("topic", "post", "solved"))
        topic_id = int(subject["id"] if "topic" in payload else subject["topic_id"])
    except (ValueError, StopIteration, KeyError, TypeError, AttributeError):
        return _refuse(400, "bad_request", "body", "not a Discourse topic, post or solved event")
    now = datetime.now(UTC)
    # the event's own time: a post's last edit, a new topic's creation (an edited or deleted
    # topic carries no time of the edit; replaying one only re-reads the forum's state)
    dated = event == "topic_created" or "topic" not in payload
    moment = _parse_time(subject.get("updated_at") or subject.get("created_at")) if dated else None
    if moment is not None and now - moment > timedelta(hours=settings.discourse_max_age_hours):
        return _refuse(400, "stale_delivery", "body", f"event of {moment.isoformat()} is stale")
    if await run_in_threadpool(engine.activity.delivered, "discourse", event_id):
        return JSONResponse({"result": "duplicate", "event_id": event_id})
    try:
        result = await run_in_threadpool(_apply, engine, event, topic_id, subject, now)
    except DiscourseError as exc:  # the forum could not be read: Discourse will retry
        return _refuse(503, "unavailable", "discourse_url", str(exc))
    await run_in_threadpool(engine.activity.first_delivery, "discourse", event_id, now)
    return JSONResponse(
        {"result": result, "event_id": event_id, "thread_id": f"{PREFIX}{topic_id}"}
    )


def _apply(
    engine: Engine, event: str, topic_id: int, subject: dict[str, Any], now: datetime
) -> str:
    if event == "topic_created":
        if subject.get("archetype") not in (None, "regular"):
            return "ignored: personal message"
        question = QuestionCreate(
            id=f"{PREFIX}{topic_id}",
            title=str(subject.get("title") or subject.get("fancy_title") or "(untitled)")[:500],
            created_at=_parse_time(subject.get("created_at")) or now,
            url=_url(engine, subject),
        )
        return "registered" if register(engine, question, now) else "already registered"
    if event not in TOPIC_EVENTS | POST_EVENTS | SOLVED_EVENTS:
        return "ignored"
    result = _sync(engine, topic_id)
    answered = event == "accepted_solution" or (
        event == "post_created"
        and int(subject.get("post_number") or 0) > 1
        and any(subject.get(k) for k in ("staff", "admin", "moderator"))
    )
    if answered and engine.activity.mark_answered(
        f"{PREFIX}{topic_id}", now, f"{PREFIX}{topic_id}"
    ):
        result += ", question answered"
    return result


def _url(engine: Engine, topic: dict[str, Any]) -> str | None:
    base = engine.settings.discourse_url
    if not base or not topic.get("slug"):
        return None
    return f"{base.rstrip('/')}/t/{topic['slug']}/{int(topic['id'])}"


def _sync(engine: Engine, topic_id: int) -> str:
    """Store the topic's thread as the forum now has it, or remove it."""
    settings = engine.settings
    if not settings.discourse_url:
        raise DiscourseError("UNSOURCE_DISCOURSE_URL is not set: the topic cannot be read")
    client = DiscourseClient(
        settings.discourse_url, settings.discourse_api_key, settings.discourse_api_username
    )
    try:
        categories = client.categories()
        topic = client.topic(topic_id)
    finally:
        client.close()
    thread_id = f"{PREFIX}{topic_id}"
    reason = "deleted" if topic is None else skip_reason(topic, categories)
    if topic is None or reason is not None:
        removed = engine.corpus.delete(thread_id)
        return f"removed ({reason})" if removed else f"not stored ({reason})"
    category = categories.get(int(topic.get("category_id") or 0))
    thread = topic_thread(topic, client.url, PREFIX, category.slug if category else None)
    if thread is None:
        return "not stored (no reply yet)"
    engine.upsert([thread])
    return "stored"
