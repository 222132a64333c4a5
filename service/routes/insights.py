"""What community managers read (agent): knowledge gaps, the clusters of questions that
nothing answered (``GET /v1/insights/gaps``; service/insights.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from index.models import AwareTimestamp
from service.deps import Agent, EngineDep
from service.insights import MIN_SIZE, gaps_for
from service.schemas import AUTH_ERRORS, GapPublic, GapsResponse, example

router = APIRouter()
GAPS_EXAMPLE = {
    "since": "2026-11-24T00:00:00Z",
    "until": "2026-12-01T00:00:00Z",
    "questions": 212,
    "gaps": [
        {
            "size": 14,
            "previous": 3,
            "trend": 11,
            "languages": {"pt": 9, "en": 5},
            "outcomes": {"no_match": 12, "escalated": 2},
            "questions": ["Como pareio o sensor novo com o hub?", "pair new door sensor"],
            "nearest_thread": "lumio-031",
            "nearest_title": "Adding a Zigbee device to the hub",
            "nearest_similarity": 0.41,
        }
    ],
}


@router.get(
    "/v1/insights/gaps",
    response_model=GapsResponse,
    responses=AUTH_ERRORS | example(GAPS_EXAMPLE),
    tags=["agent"],
)
def gaps(
    engine: EngineDep,
    _: Agent,
    since: Annotated[
        AwareTimestamp | None, Query(description="Window start (default: 7 days before until).")
    ] = None,
    until: Annotated[AwareTimestamp | None, Query(description="Window end (default: now).")] = None,
    min_size: Annotated[int, Query(ge=2, le=1000)] = MIN_SIZE,
) -> GapsResponse:
    """Clusters of the window's questions that ended in `no_match`, `staff` or an
    escalation, across languages, largest first: size, trend against the previous window
    of the same length, languages, outcomes, representative (redacted) questions and the
    nearest existing thread."""
    start, end, count, found = gaps_for(engine, since, until, min_size)
    return GapsResponse(
        since=start,
        until=end,
        questions=count,
        gaps=[GapPublic.model_validate(g, from_attributes=True) for g in found],
    )
