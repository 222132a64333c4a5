"""Reader feedback on suggestions (public) and the community's numbers (``/v1/stats``)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, Request
from fastapi.exceptions import RequestValidationError

from service.api.deps import Agent, EngineDep, MetricsDep, Public, Since
from service.api.limits import client_bucket
from service.api.schemas import (
    FeedbackRequest,
    FeedbackResult,
    StatsResponse,
    documented,
    rate,
)

router = APIRouter()


@router.post(
    "/v1/feedback",
    response_model=FeedbackResult,
    responses=documented({"result": "created"}, missing=True),
    tags=["public"],
)
def feedback(
    req: FeedbackRequest, engine: EngineDep, metrics: MetricsDep, _: Public, request: Request
) -> FeedbackResult:
    """A reader found a suggestion helpful (or not). One vote per reader (key and client
    address; an IPv6 client by its /64) and thread, whichever request it comes through;
    voting again replaces it. Votes feed the ranking prior and /v1/stats."""
    shown = engine.activity.suggested(req.request_id)
    if shown is None:
        raise HTTPException(404, f"no suggest request {req.request_id!r}")
    if req.thread_id not in shown:
        raise _invalid("thread_id", "this thread was not suggested in that request")
    principal = request.state.principal
    client = client_bucket(request.client.host) if request.client else "-"
    voted = engine.store.get(req.thread_id)  # None if deleted since: no one to credit
    thread = voted.thread if voted is not None else None
    result = engine.activity.record_feedback(
        req.request_id,
        req.thread_id,
        req.helpful,
        datetime.now(UTC),
        f"{principal}@{client}",
        author=thread.answer_author if thread else None,
        language=thread.language if thread else None,
    )
    metrics.feedback.labels(str(req.helpful).lower()).inc()
    return FeedbackResult(result=result)


def _invalid(field: str, message: str) -> Exception:
    return RequestValidationError([{"loc": ("body", field), "msg": message, "type": "value_error"}])


@router.get(
    "/v1/stats",
    response_model=StatsResponse,
    responses=documented(
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
    since: Since = None,
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
