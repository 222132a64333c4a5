"""Operations routes: forum questions and their escalation, feedback, stats, metrics,
reindex."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from index.activity import Question
from index.models import MAX_ID, AwareTimestamp
from retrieval.text import question_text
from service.admission import check_ids
from service.deps import Admin, Agent, EngineDep, Public
from service.escalation import Escalations
from service.schemas import (
    AUTH_ERRORS,
    ERRORS,
    AnsweredRequest,
    EscalationList,
    FeedbackRequest,
    FeedbackResult,
    QuestionCreate,
    QuestionPublic,
    QuestionTriage,
    StatsResponse,
    VerifyResult,
    example,
    rate,
)

router = APIRouter()
QUESTION_EXAMPLE = {
    "id": "forum-48213",
    "title": "Hub keeps dropping off Wi-Fi every night",
    "category": "connectivity",
    "url": "https://community.example.com/t/48213",
    "created_at": "2026-11-23T09:15:00Z",
    "due_at": "2026-11-24T09:15:00Z",
    "sla_hours": 24.0,
    "answered_at": None,
    "overdue": False,
    "notified": False,
    "triage": {"route": "community", "queue": None, "confidence": 0.93, "reasons": []},
}


def _escalations(request: Request) -> Escalations:
    esc: Escalations = request.app.state.escalations
    return esc


def _public(q: Question, esc: Escalations, now: datetime) -> QuestionPublic:
    t = q.triage
    return QuestionPublic(
        id=q.id,
        title=q.title,
        category=q.category,
        url=q.url,
        created_at=q.created_at,
        due_at=esc.due_at(q),
        sla_hours=esc.settings.sla_for(q.category),
        answered_at=q.answered_at,
        overdue=q.answered_at is None and esc.due_at(q) <= now,
        notified=q.notified_at is not None,
        triage=QuestionTriage(
            route=t["route"], queue=t.get("queue"), confidence=t["confidence"], reasons=t["reasons"]
        ),
    )


@router.post(
    "/v1/questions",
    response_model=QuestionPublic,
    status_code=201,
    responses={
        **AUTH_ERRORS,
        200: {"description": "Already registered (unchanged)"},
        **example(QUESTION_EXAMPLE, 201),
    },
    tags=["agent"],
)
def register_question(
    req: QuestionCreate, engine: EngineDep, _: Agent, request: Request, response: Response
) -> QuestionPublic:
    """Register a question just posted on the forum (triage runs on it; title and body are
    stored redacted). If nobody answers it within its category's SLA it is escalated.
    Registering the same id again changes nothing and answers 200."""
    now = datetime.now(UTC)
    check_ids([req.id])
    decision = engine.route(question_text(req.title, req.body))
    triage = decision.model_dump(include={"route", "queue", "confidence", "reasons"}, mode="json")
    title, body = engine.redact(req.title), engine.redact(req.body)
    created = engine.activity.add_question(
        req.id,
        title,
        body,
        req.category,
        engine.redact(req.url) if req.url else None,
        req.request_id,
        req.created_at or now,
        now,
        triage,
    )
    if not created:
        response.status_code = 200
    stored = engine.activity.question(req.id)
    assert stored is not None
    return _public(stored, _escalations(request), now)


@router.post(
    "/v1/questions/{question_id}/answered",
    response_model=QuestionPublic,
    responses={**AUTH_ERRORS, 404: ERRORS[404]},
    tags=["agent"],
)
def mark_answered(
    question_id: str, req: AnsweredRequest, engine: EngineDep, _: Agent, request: Request
) -> QuestionPublic:
    """Mark a registered question answered; it leaves the escalation list. The first
    answer's time counts."""
    now = datetime.now(UTC)
    if not engine.activity.mark_answered(question_id, req.at or now, req.thread_id):
        raise HTTPException(404, f"question {question_id!r} is not registered")
    stored = engine.activity.question(question_id)
    assert stored is not None
    return _public(stored, _escalations(request), now)


@router.get(
    "/v1/escalations",
    response_model=EscalationList,
    responses={**AUTH_ERRORS, 404: ERRORS[404]}
    | example(
        {
            "now": "2026-11-24T10:00:00Z",
            "count": 1,
            "escalations": [{**QUESTION_EXAMPLE, "overdue": True, "notified": True}],
        }
    ),
    tags=["agent"],
)
def escalations(
    request: Request,
    _: Agent,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[
        str | None,
        Query(
            max_length=MAX_ID,
            description="A question id from the previous page (its `next`): continue after it "
            "(404 if there is no such question).",
        ),
    ] = None,
) -> EscalationList:
    """Questions still unanswered past their category's SLA, oldest first, with the
    triage each got when it was registered; page on with `after=<next>`."""
    now = datetime.now(UTC)
    esc = _escalations(request)
    cursor = None
    if after is not None:
        last = esc.activity.question(after)
        if last is None:
            raise HTTPException(404, f"after: no question {after!r}")
        cursor = (last.created_at, last.id)
    found = esc.overdue(now, limit, cursor)
    items = [_public(q, esc, now) for q in found]
    more = len(found) == limit and bool(esc.overdue(now, 1, (found[-1].created_at, found[-1].id)))
    return EscalationList(
        now=now, count=len(items), escalations=items, next=found[-1].id if more else None
    )


@router.post(
    "/v1/feedback",
    response_model=FeedbackResult,
    responses={**AUTH_ERRORS, 404: ERRORS[404], **example({"result": "created"})},
    tags=["public"],
)
def feedback(
    req: FeedbackRequest, engine: EngineDep, _: Public, request: Request
) -> FeedbackResult:
    """A reader found a suggestion helpful (or not). One vote per reader (key and client
    address) and thread, whichever request it comes through; voting again replaces it.
    Votes feed the ranking prior and /v1/stats."""
    shown = engine.activity.suggested(req.request_id)
    if shown is None:
        raise HTTPException(404, f"no suggest request {req.request_id!r}")
    if req.thread_id not in shown:
        raise _invalid("thread_id", "this thread was not suggested in that request")
    principal = request.state.principal
    client = request.client.host if request.client else "-"
    result = engine.activity.record_feedback(
        req.request_id, req.thread_id, req.helpful, datetime.now(UTC), f"{principal}@{client}"
    )
    request.app.state.metrics.feedback.labels(str(req.helpful).lower()).inc()
    return FeedbackResult(result=result)


def _invalid(field: str, message: str) -> Exception:
    return RequestValidationError([{"loc": ("body", field), "msg": message, "type": "value_error"}])


@router.get(
    "/v1/stats",
    response_model=StatsResponse,
    responses=AUTH_ERRORS
    | example(
        {
            "since": "2026-11-01T00:00:00Z",
            "suggest_count": 1200,
            "decisions": {"suggest": 700, "no_match": 380, "staff": 120},
            "suggest_rate": 0.583333,
            "no_match_rate": 0.316667,
            "staff_rate": 0.1,
            "helpful": 210,
            "unhelpful": 40,
            "helpful_rate": 0.84,
            "deflected": 190,
            "deflection_estimate": 0.175926,
            "questions_posted": 400,
            "questions_answered": 350,
        }
    ),
    tags=["agent"],
)
def stats(
    engine: EngineDep,
    _: Agent,
    since: Annotated[
        AwareTimestamp | None, Query(description="ISO-8601 time with offset; default: all time")
    ] = None,
) -> StatsResponse:
    """Suggest volume and outcome rates, reader feedback and a deflection estimate:
    suggest requests where a reader marked an answer helpful and no question was posted
    after them, over requests not routed to staff."""
    s = engine.activity.stats(since)
    staff = s.decisions.get("staff", 0)
    return StatsResponse(
        since=since,
        suggest_count=s.suggest_count,
        decisions=s.decisions,
        suggest_rate=rate(s.decisions.get("suggest", 0), s.suggest_count),
        no_match_rate=rate(s.decisions.get("no_match", 0), s.suggest_count),
        staff_rate=rate(staff, s.suggest_count),
        helpful=s.helpful,
        unhelpful=s.unhelpful,
        helpful_rate=rate(s.helpful, s.helpful + s.unhelpful),
        deflected=s.deflected,
        deflection_estimate=rate(s.deflected, s.suggest_count - staff),
        questions_posted=s.questions_posted,
        questions_answered=s.questions_answered,
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses=AUTH_ERRORS
    | {200: {"content": {"text/plain": {"example": "unsource_index_threads 1170.0\n"}}}},
    tags=["agent"],
)
def metrics(request: Request, _: Agent) -> Response:
    """Prometheus metrics: request latency per route, suggest decisions, triage routes,
    feedback, rate-limit refusals, webhook attempts and index size."""
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


@router.post(
    "/v1/admin/reindex",
    responses=AUTH_ERRORS | example({"threads": 1170, "re_embedded": 1170}),
    tags=["admin"],
)
def reindex(engine: EngineDep, _: Admin) -> dict[str, int]:
    """Rebuild the vector index from the store's vectors, re-embedding only threads whose
    stored vector came from another model (searches wait while it runs)."""
    done = engine.catalog.rebuild()
    return {"threads": engine.catalog.count(), "re_embedded": done}


VERIFY_EXAMPLE = {
    "ok": True, "threads": 1170, "indexed": 1170, "missing": [], "extra": [], "duplicated": 0,
    "sampled": 100, "misranked": [],
}  # fmt: skip


@router.get(
    "/v1/admin/verify",
    response_model=VerifyResult,
    responses=AUTH_ERRORS | example(VERIFY_EXAMPLE),
    tags=["admin"],
)
def verify(
    engine: EngineDep,
    _: Admin,
    sample: Annotated[
        int, Query(ge=0, le=10_000, description="Threads ranked by their own vector.")
    ] = 100,
) -> VerifyResult:
    """Compare the vector index with the store: the same keys, each once, and each sampled
    thread's own stored vector ranks it first. `ok` is false on any difference."""
    v = engine.catalog.verify(sample)
    return VerifyResult(ok=v.ok, **asdict(v))
