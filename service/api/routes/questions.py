"""Forum questions (agent): register one as it is posted (triage runs on it), mark it
answered, and list those past their category's SLA (``/v1/escalations``)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response

from index.activity import ActivityStore, Question
from index.models import MAX_ID
from service import experts, intake
from service.api.deps import Agent, EngineDep, EscalationsDep
from service.api.schemas import (
    ID_PATTERN,
    AnsweredRequest,
    EscalationList,
    ExpertPublic,
    ExpertsResponse,
    QuestionCreate,
    QuestionPublic,
    QuestionTriage,
    documented,
    example,
)
from service.escalation import Escalations

router = APIRouter(tags=["agent"])
QuestionIdPath = Annotated[
    str, Path(min_length=1, max_length=MAX_ID, pattern=ID_PATTERN, examples=["forum-48213"])
]
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


def _registered(activity: ActivityStore, question_id: str) -> Question:
    """The registered question, or a 404 naming it."""
    stored = activity.question(question_id)
    if stored is None:
        raise HTTPException(404, f"question {question_id!r} is not registered")
    return stored


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
    responses=documented(QUESTION_EXAMPLE, 201)
    | {200: {"description": "Already registered (unchanged)"}},
)
def register_question(
    req: QuestionCreate,
    engine: EngineDep,
    esc: EscalationsDep,
    _: Agent,
    response: Response,
) -> QuestionPublic:
    """Register a question just posted on the forum (triage runs on it; title and body are
    stored redacted). If nobody answers it within its category's SLA it is escalated.
    Registering the same id again changes nothing and answers 200."""
    now = datetime.now(UTC)
    if not intake.register(engine, req, now):
        response.status_code = 200
    stored = engine.activity.question(req.id)
    assert stored is not None
    return _public(stored, esc, now)


@router.get(
    "/v1/questions/{question_id}",
    response_model=QuestionPublic,
    responses=documented(QUESTION_EXAMPLE, missing=True),
)
def get_question(
    question_id: QuestionIdPath, engine: EngineDep, esc: EscalationsDep, _: Agent
) -> QuestionPublic:
    """A registered question: its SLA, whether it is answered, overdue or escalated."""
    stored = _registered(engine.activity, question_id)
    return _public(stored, esc, datetime.now(UTC))


@router.get(
    "/v1/questions/{question_id}/experts",
    response_model=ExpertsResponse,
    responses=documented(missing=True)
    | example(
        {
            "question_id": "forum-48213",
            "language": "en",
            "withheld": None,
            "experts": [
                {
                    "author": "maria.h",
                    "score": 2.41,
                    "threads": ["lumio-014", "lumio-002"],
                    "accepted": 1,
                    "helpful": 3,
                }
            ],
        }
    ),
)
def question_experts(
    question_id: QuestionIdPath,
    engine: EngineDep,
    _: Agent,
    limit: Annotated[int, Query(ge=1, le=50)] = 5,
) -> ExpertsResponse:
    """Community members likely to answer this question: the authors of the nearest
    threads in its language, by similarity, accepted answers and helpful votes. A question
    triage routed to staff is confidential: no experts are named."""
    stored = _registered(engine.activity, question_id)
    language, found = experts.experts_for(
        stored, engine.searcher, engine.activity.feedback_counts, limit
    )
    return ExpertsResponse(
        question_id=question_id,
        language=language,
        withheld="confidential: routed to staff" if experts.confidential(stored) else None,
        experts=[ExpertPublic(**asdict(e)) for e in found],
    )


@router.post(
    "/v1/questions/{question_id}/answered",
    response_model=QuestionPublic,
    responses=documented(missing=True),
)
def mark_answered(
    question_id: QuestionIdPath,
    req: AnsweredRequest,
    engine: EngineDep,
    esc: EscalationsDep,
    _: Agent,
) -> QuestionPublic:
    """Mark a registered question answered; it leaves the escalation list. The first
    answer's time counts."""
    now = datetime.now(UTC)
    if not engine.activity.mark_answered(question_id, req.at or now, req.thread_id):
        raise HTTPException(404, f"question {question_id!r} is not registered")
    stored = engine.activity.question(question_id)
    assert stored is not None
    return _public(stored, esc, now)


@router.get(
    "/v1/escalations",
    response_model=EscalationList,
    responses=documented(missing=True)
    | example(
        {
            "now": "2026-11-24T10:00:00Z",
            "count": 1,
            "escalations": [{**QUESTION_EXAMPLE, "overdue": True, "notified": True}],
        }
    ),
)
def escalations(
    esc: EscalationsDep,
    _: Agent,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[
        str | None,
        Query(
            max_length=MAX_ID,
            pattern=ID_PATTERN,
            description="A question id from the previous page (its `next`): continue after it "
            "(404 if there is no such question).",
        ),
    ] = None,
    include_open: Annotated[
        bool,
        Query(description="Also the unanswered questions still within their SLA (`due_at`)."),
    ] = False,
) -> EscalationList:
    """Questions still unanswered past their category's SLA, oldest first, with the
    triage each got when it was registered; page on with `after=<next>`. With
    `include_open=true`, every unanswered question: the whole queue, SLA left included."""
    now = datetime.now(UTC)
    cursor = None
    if after is not None:
        last = esc.activity.question(after)
        if last is None:
            raise HTTPException(404, f"after: no question {after!r}")
        cursor = (last.created_at, last.id)
    pending = esc.activity.unanswered_before if include_open else esc.overdue
    found = pending(now, limit, cursor)
    items = [_public(q, esc, now) for q in found]
    more = len(found) == limit and bool(pending(now, 1, (found[-1].created_at, found[-1].id)))
    return EscalationList(
        now=now, count=len(items), escalations=items, next=found[-1].id if more else None
    )
