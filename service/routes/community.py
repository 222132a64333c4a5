"""The community's recognition (public): who answered the questions readers found answered
(``GET /v1/community/leaders``), so a forum can show "your answer helped 37 people this
month". Authors appear only as the forum named them on its threads (``answer_author``);
readers never appear."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from index.models import AwareTimestamp, Language
from service.deps import EngineDep, Public
from service.schemas import AUTH_ERRORS, Leader, LeadersResponse, example

router = APIRouter()


@router.get(
    "/v1/community/leaders",
    response_model=LeadersResponse,
    responses=AUTH_ERRORS
    | example(
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
    since: Annotated[
        AwareTimestamp | None, Query(description="ISO-8601 time with offset; default: all time")
    ] = None,
    language: Annotated[
        Language | None, Query(description="Only votes on threads in this language.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> LeadersResponse:
    """Answer authors ranked by the questions their answers deflected: suggest requests
    where a reader marked one of their threads helpful and posted no question after.
    Credit lasts as long as the votes do (UNSOURCE_RETENTION_DAYS). ``since`` counts from
    the start of its hour, so that no window can single out one reader's vote."""
    if since is not None:
        since = since.replace(minute=0, second=0, microsecond=0)
    rows = engine.activity.leaders(since, language, limit)
    return LeadersResponse(
        since=since,
        language=language,
        leaders=[Leader(author=a, deflected=d, helpful_votes=v) for a, d, v in rows],
    )
