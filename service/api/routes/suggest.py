"""``POST /v1/suggest``: the public question box (the widget calls it)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from retrieval.language import detect
from retrieval.text import question_text
from service.api.deps import EngineDep, MetricsDep, Public
from service.api.schemas import (
    Suggestion,
    SuggestRequest,
    SuggestResponse,
    documented,
    excerpt,
)
from service.runtime import Engine
from service.suggest import SuggestOutcome

router = APIRouter()
SUGGEST_EXAMPLE = {
    "request_id": "0b8f6c1e2d3a4b5c9e7f112233445566",
    "decision": "suggest",
    "queue": None,
    "reasons": [],
    "suggestions": [
        {
            "thread_id": "hub-reset-1",
            "title": "How do I factory reset the Lumio hub?",
            "answer_excerpt": "Hold the reset button for 15 seconds until the light blinks.",
            "url": "https://community.example.com/t/hub-reset-1",
            "score": 0.712,
            "similarity": 0.803,
            "accepted": True,
            "answer_votes": 12,
        }
    ],
    "best_similarity": 0.803,
    "threshold": 0.45,
}


@router.post(
    "/v1/suggest",
    response_model=SuggestResponse,
    responses=documented(SUGGEST_EXAMPLE),
    tags=["public"],
)
async def suggest(
    req: SuggestRequest, engine: EngineDep, metrics: MetricsDep, _: Public, request: Request
) -> Response:
    """Triage first: a confidential question gets `staff` with its queue and reasons and
    no peer suggestions. Otherwise the best existing answers, or `no_match`. Quote the
    `request_id` in /v1/feedback."""
    rid: str = request.state.request_id
    # the engine and the suggest log in one hand-off to a worker thread; the response is
    # built and serialised here (pydantic-core, no second validation): each extra hop to
    # the thread pool cost a request ~0.1-0.3 ms on 2 busy cores
    outcome = await run_in_threadpool(_answer, engine, req, rid)
    metrics.decisions.labels(outcome.decision).inc()
    if any(r.kind == "answered" for r in outcome.triage.reasons):
        metrics.answered.labels("suggest").inc()
    body = _response(engine, req, rid, outcome)
    return Response(body.model_dump_json(), media_type="application/json")


def _answer(engine: Engine, req: SuggestRequest, rid: str) -> SuggestOutcome:
    outcome = engine.suggest(req.title, req.body, k=req.k, tags=req.tags, language=req.language)
    triage, result = outcome.triage, outcome.result
    hits = result.hits if result else []
    engine.activity.log_suggest(
        rid,
        datetime.now(UTC),
        outcome.decision,
        triage.queue,
        [h.thread.thread.id for h in hits],
        # kept (redacted by triage) for knowledge gaps: if nothing answered it, or if the
        # suggestions turn out not to (a not-helpful vote, a question posted after them);
        # a confidential one keeps no text unless the operator asks (security N8)
        question=triage.redacted_text
        if outcome.decision != "staff" or engine.settings.gaps_keep_confidential
        else None,
        language=result.language if result else detect(question_text(req.title, req.body)),
    )
    return outcome


def _response(
    engine: Engine, req: SuggestRequest, rid: str, outcome: SuggestOutcome
) -> SuggestResponse:
    triage, result = outcome.triage, outcome.result
    hits = result.hits if result else []
    return SuggestResponse(
        request_id=rid,
        decision=outcome.decision,
        queue=triage.queue,
        reasons=triage.reasons,
        suggestions=[
            Suggestion(
                thread_id=h.thread.thread.id,
                title=h.thread.thread.title,
                answer_excerpt=excerpt(h.thread.thread.answer),
                url=h.thread.thread.url,
                score=round(h.score, 6),
                similarity=round(h.similarity, 6),
                relevance=None if h.relevance is None else round(h.relevance, 6),
                language=h.thread.thread.language,
                accepted=h.thread.thread.accepted,
                answer_votes=h.thread.thread.answer_votes,
                answer_author=h.thread.thread.answer_author,
            )
            for h in hits
        ],
        best_similarity=None
        if result is None or result.best_similarity is None
        else round(result.best_similarity, 6),
        best_relevance=None
        if result is None or result.best_relevance is None
        else round(result.best_relevance, 6),
        threshold=engine.settings.min_similarity if result is None else result.threshold,
        language=detect(f"{req.title}\n{req.body}") if result is None else result.language,
    )
