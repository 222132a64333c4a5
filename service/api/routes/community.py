"""The community's recognition (public): who answered the questions readers found answered
(``GET /v1/community/leaders``), so a forum can show "your answer helped 37 people this
month". Authors appear only as the forum named them on its threads (``answer_author``);
readers never appear."""

from __future__ import annotations

from datetime import UTC
from typing import Annotated

from fastapi import APIRouter, Query, Request

from index.models import Language
from service.api.deps import EngineDep, Public, Since
from service.api.schemas import Leader, LeadersResponse, documented
from service.ttl import TTLCache

router = APIRouter()
LEADERS_CACHE_SECONDS = 300.0


@router.get(
    "/v1/community/leaders",
    response_model=LeadersResponse,
    responses=documented(
        {
            "since": "2026-11-01T00:00:00Z",
            "language": None,
            "leaders": [
                {"author": "maria.h", "deflected": 37, "helpful_votes": 41},
                {"author": "u/8812", "deflected": 12, "helpful_votes": 12},
            ],
        }
    ),
    tags=["public"],
)
def leaders(
    engine: EngineDep,
    _: Public,
    request: Request,
    since: Since = None,
    language: Annotated[
        Language | None, Query(description="Only votes on threads in this language.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> LeadersResponse:
    """Answer authors ranked by the questions their answers deflected: suggest requests
    where a reader marked one of their threads helpful and posted no question after.
    Credit lasts as long as the votes do (UNSOURCE_RETENTION_DAYS). ``since`` counts from
    the start of its day (UTC) and each answer is reused for five minutes, so that no
    window and no polling can single out one reader's vote."""
    if since is not None:
        since = since.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    answers = getattr(request.app.state, "leaders", None)
    if answers is None:  # one per app: a test's fresh app starts with none
        answers = request.app.state.leaders = TTLCache(LEADERS_CACHE_SECONDS, size=512)
    key = (since, language, limit)
    rows = answers.get_or_compute(key, lambda: engine.activity.leaders(since, language, limit))
    return LeadersResponse(
        since=since,
        language=language,
        leaders=[Leader(author=a, deflected=d, helpful_votes=v) for a, d, v in rows],
    )
