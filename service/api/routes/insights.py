"""What community managers read (agent): knowledge gaps, the clusters of questions that
nothing answered (``GET /v1/insights/gaps``; service/insights.py), and the suggest
figures per day and per language (``/v1/insights/daily``, ``/v1/insights/languages``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query

from index.models import AwareTimestamp
from service.api.deps import Agent, EngineDep, Since
from service.api.schemas import (
    Breakdown,
    BreakdownResponse,
    GapPublic,
    GapsResponse,
    documented,
    rate,
)
from service.insights import MIN_SIZE, gaps_for

router = APIRouter(prefix="/v1/insights", tags=["agent"])
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
            "questions": ["Lumio fa un apriporta per il garage?", "garage door opener?"],
            "missing": ["abridor", "portão", "apriporta", "garaje"],
            "nearest_thread": "lumio-031",
            "nearest_title": "Door sensor shows open when the door is closed",
            "nearest_similarity": 0.38,
        }
    ],
}


@router.get(
    "/gaps",
    response_model=GapsResponse,
    responses=documented(GAPS_EXAMPLE),
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
    of the same length, languages, outcomes, representative (redacted) questions, the
    words they use that the forum lacks and the nearest existing thread."""
    report = gaps_for(engine, since, until, min_size)
    return GapsResponse(
        since=report.since,
        until=report.until,
        questions=report.questions,
        sampled=report.sampled,
        gaps=[GapPublic.model_validate(g, from_attributes=True) for g in report.gaps],
    )


def _rows(rows: list[dict[str, Any]]) -> list[Breakdown]:
    return [
        Breakdown(
            **r,
            staff_rate=rate(r["staff"], r["suggest_count"]),
            deflection_rate=rate(r["deflected"], r["suggest_count"] - r["staff"]),
        )
        for r in rows
    ]


def _example(since: str | None, key: str, counts: tuple[int, int, int, int]) -> Any:
    """A breakdown response of one row (requests, staff, no_match, deflected), its rates
    computed as ``_rows`` computes them."""
    row = dict(zip(("suggest_count", "staff", "no_match", "deflected"), counts, strict=True))
    return {"since": since, "rows": [r.model_dump() for r in _rows([{"key": key, **row}])]}


BREAKDOWN_EXAMPLE = _example("2026-11-01T00:00:00Z", "2026-11-30", (120, 9, 30, 41))
LANGUAGES_EXAMPLE = _example(None, "pt", (80, 6, 21, 25))


@router.get(
    "/daily",
    response_model=BreakdownResponse,
    responses=documented(BREAKDOWN_EXAMPLE),
)
def daily(
    engine: EngineDep, _: Agent, days: Annotated[int, Query(ge=1, le=366)] = 30
) -> BreakdownResponse:
    """Suggest requests per UTC day over the last ``days``: staff and no_match counts,
    deflections, the staff rate and the deflection rate (over requests not sent to staff)."""
    since = datetime.now(UTC) - timedelta(days=days)
    return BreakdownResponse(since=since, rows=_rows(engine.activity.daily(since)))


@router.get(
    "/languages",
    response_model=BreakdownResponse,
    responses=documented(LANGUAGES_EXAMPLE),
)
def languages(
    engine: EngineDep,
    _: Agent,
    since: Since = None,
) -> BreakdownResponse:
    """The same figures per question language (``und``: none detected)."""
    return BreakdownResponse(since=since, rows=_rows(engine.activity.by_language(since)))
