"""HTTP request and response models. Inputs forbid unknown fields and bound every length."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from index.models import (
    MAX_BODY,
    MAX_ID,
    MAX_TAGS,
    MAX_TITLE,
    NO_NUL,
    NON_BLANK_NO_NUL,
    AwareTimestamp,
    JsonBool,
    JsonInt,
    Language,
    RawLengthChecked,
    Tag,
    Thread,
)
from triage.decision import Reason

MAX_K = 50
CLOCK_SKEW = timedelta(days=1)  # how far ahead of this replica's clock a forum's may run


def _not_ahead(moment: datetime) -> datetime:
    """A moment that has happened: a question posted (or answered) in the future would be
    due long after anything could escalate it, and past year 9999 no date can say when."""
    if moment - datetime.now(UTC) > CLOCK_SKEW:
        raise ValueError("in the future (more than a day ahead of this server's clock)")
    return moment


Happened = Annotated[AwareTimestamp, AfterValidator(_not_ahead)]
MAX_BULK = 1000
EXCERPT_CHARS = 300


class SuggestRequest(RawLengthChecked):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [{"title": "How do I reset my hub to factory settings?", "k": 3}]
        },
    )

    # no NUL: the question is logged, and PostgreSQL text cannot hold one (security N11)
    title: str = Field(min_length=1, max_length=MAX_TITLE, pattern=NON_BLANK_NO_NUL)
    body: str = Field(default="", max_length=MAX_BODY, pattern=NO_NUL)
    k: JsonInt = Field(default=5, ge=1, le=MAX_K)
    tags: list[Tag] | None = Field(default=None, max_length=MAX_TAGS)
    language: Language | None = None


class Suggestion(BaseModel):
    thread_id: str
    title: str
    answer_excerpt: str
    url: str | None
    score: float = Field(description="Fused ranking score (higher is better).")
    similarity: float = Field(description="Cosine similarity of question and thread.")
    relevance: float | None = Field(
        default=None,
        description="The relevance stage's calibrated probability that this thread answers "
        "the question (null where the stage is off: then `similarity` decided).",
    )
    language: str | None = Field(
        default=None,
        description="The thread's language (declared, or detected when it was stored); it "
        "may differ from the question's: answers are found across en, pt, es and it.",
    )
    accepted: bool
    answer_votes: int
    answer_author: str | None = Field(
        default=None, description="Who answered, as the forum named them on the thread."
    )


class SuggestResponse(BaseModel):
    request_id: str = Field(description="Quote it in /v1/feedback and /v1/questions.")
    decision: Literal["suggest", "no_match", "staff"] = Field(
        description="`staff`: confidential, route to support staff and do not post publicly; "
        "`suggest`: existing answers fit; `no_match`: nothing fits, post the question."
    )
    queue: str | None = Field(description="Staff queue when the decision is `staff`.")
    reasons: list[Reason] = Field(description="Why triage routed the question as it did.")
    suggestions: list[Suggestion] = Field(description="Empty unless the decision is `suggest`.")
    best_similarity: float | None = Field(
        description="Highest cosine similarity seen, whether or not it passed the threshold."
    )
    best_relevance: float | None = Field(
        default=None,
        description="Highest probability the relevance stage gave any candidate, whether or "
        "not it passed the threshold (null: stage off, or staff).",
    )
    threshold: float = Field(
        description="The abstention threshold for the question's language: on `relevance` "
        "when the relevance stage is on, else on `similarity`."
    )
    language: str = Field(
        default="en", description="The question's language, detected from its text."
    )


class TriageRequest(RawLengthChecked):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [{"text": "I was charged twice for my Lumio Plus subscription"}]
        },
    )

    text: str = Field(min_length=1, max_length=MAX_TITLE + MAX_BODY, pattern=NON_BLANK_NO_NUL)


class BulkRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "threads": [
                        {"id": "lumio-002", "title": "Bulb flickers with a dimmer", "answer": "…"}
                    ]
                }
            ]
        },
    )

    threads: list[Thread] = Field(min_length=1, max_length=MAX_BULK)


class WriteResult(BaseModel):
    id: str
    result: Literal["created", "updated", "unchanged_text"]


class BulkResult(BaseModel):
    created: int
    updated: int
    unchanged_text: int
    count: int


class ThreadPublic(Thread):
    pass


class Health(BaseModel):
    status: Literal["ok"]
    threads: int
    model: str


class Ready(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: dict[str, bool] = Field(description="encoder, triage, store, activity, index")
    threads: int
    indexed: int
    fast_scan: Literal["off", "building", "ready"] = Field(
        "off",
        description="The IVF index's fast-scan codes (large corpora): `building` in the "
        "background after a start or an index refresh, when searches use the 8-bit scan; "
        "`ready`; `off` for an index too small to need them. Does not affect `status`.",
    )
    warm_up: Literal["running", "done"] = Field(
        "done",
        description="The caches a started replica fills in the background (the store's "
        "pages, keyword term counts, word vectors): `running` until they are filled, when "
        "its first questions may be slower. Does not affect `status`.",
    )


ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$"
CATEGORY_PATTERN = r"^[a-z0-9][a-z0-9_\-]*$"


class QuestionCreate(RawLengthChecked):
    """A question just posted on the forum, registered so it can be escalated if it stays
    unanswered."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "forum-48213",
                    "title": "Hub keeps dropping off Wi-Fi every night",
                    "body": "Since the last update my hub disconnects around 2am.",
                    "category": "connectivity",
                    "created_at": "2026-11-23T09:15:00Z",
                    "url": "https://community.example.com/t/48213",
                    "request_id": "0b8f6c1e2d3a4b5c9e7f112233445566",
                }
            ]
        },
    )

    id: str = Field(min_length=1, max_length=MAX_ID, pattern=ID_PATTERN)
    # stored (PostgreSQL text holds no NUL): refused here with the field named, not a 500
    title: str = Field(min_length=1, max_length=MAX_TITLE, pattern=NON_BLANK_NO_NUL)
    body: str = Field(default="", max_length=MAX_BODY, pattern=NO_NUL)
    category: str = Field(default="default", min_length=1, max_length=64, pattern=CATEGORY_PATTERN)
    created_at: Happened | None = Field(
        default=None, description="When it was posted (timezone required); default: now."
    )
    url: str | None = Field(default=None, max_length=2048, pattern=NO_NUL)
    request_id: str | None = Field(
        default=None,
        max_length=64,
        pattern=r"^[0-9a-f]{32}$",
        description="The /v1/suggest request the asker saw before posting (deflection stats).",
    )


class AnsweredRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"thread_id": "forum-48213", "at": "2026-11-23T11:02:00Z"}]
        },
    )

    at: Happened | None = Field(default=None, description="Default: now.")
    thread_id: str | None = Field(
        default=None, max_length=MAX_ID, pattern=ID_PATTERN, description="The answering thread."
    )


class QuestionTriage(BaseModel):
    route: Literal["staff", "community"]
    queue: str | None
    confidence: float
    reasons: list[Reason]


class QuestionPublic(BaseModel):
    id: str
    title: str = Field(description="As stored: redacted.")
    category: str
    url: str | None
    created_at: datetime
    due_at: datetime = Field(description="created_at + the category's SLA.")
    sla_hours: float
    answered_at: datetime | None
    overdue: bool
    notified: bool = Field(description="The escalation webhook was delivered.")
    triage: QuestionTriage


class EscalationList(BaseModel):
    now: datetime
    count: int
    escalations: list[QuestionPublic] = Field(description="Oldest first.")
    next: str | None = Field(
        default=None, description="More are overdue: ask again with `after` set to this."
    )


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "request_id": "0b8f6c1e2d3a4b5c9e7f112233445566",
                    "thread_id": "hub-reset-1",
                    "helpful": True,
                }
            ]
        },
    )

    request_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    thread_id: str = Field(min_length=1, max_length=MAX_ID, pattern=ID_PATTERN)
    helpful: JsonBool


class FeedbackResult(BaseModel):
    result: Literal["created", "changed", "unchanged"]


class StatsResponse(BaseModel):
    since: datetime | None
    suggest_count: int
    decisions: dict[str, int]
    suggest_rate: float | None
    no_match_rate: float | None
    staff_rate: float | None
    helpful: int
    unhelpful: int
    helpful_rate: float | None = Field(description="helpful / (helpful + unhelpful).")
    deflected: int = Field(
        description="Suggest requests with a helpful vote and no question posted after them."
    )
    deflection_estimate: float | None = Field(
        description="deflected / requests that were not routed to staff."
    )
    questions_posted: int
    questions_answered: int


def rate(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


def example(payload: Any, code: int = 200) -> dict[int | str, dict[str, Any]]:
    """An OpenAPI ``responses`` entry with one JSON example."""
    key: int | str = code
    return {key: {"content": {"application/json": {"example": payload}}}}


class ErrorItem(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    error: str
    detail: list[ErrorItem]


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return cut + "…"


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or unknown API key"},
    403: {"model": ErrorBody, "description": "The key's role may not call this"},
    404: {"model": ErrorBody, "description": "Not found"},
    413: {"model": ErrorBody, "description": "Request body too large"},
    422: {"model": ErrorBody, "description": "Invalid input; `detail[].field` names the field"},
    429: {"model": ErrorBody, "description": "Rate limited; see the Retry-After header"},
}
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {c: ERRORS[c] for c in (401, 403, 413, 422, 429)}


def documented(
    payload: Any = None, code: int = 200, *, missing: bool = False
) -> dict[int | str, dict[str, Any]]:
    """A route's OpenAPI ``responses``: the errors every keyed route can answer, 404 when
    what it names may be ``missing``, and one JSON example of its ``code`` answer."""
    out = dict(AUTH_ERRORS)
    if missing:
        out[404] = ERRORS[404]
    if payload is not None:
        out |= example(payload, code)
    return out


class VerifyResult(BaseModel):
    """The vector index checked against the store (key lists hold at most 20)."""

    ok: bool
    threads: int
    indexed: int
    missing: list[int] = Field(description="Keys in the store and not in the index.")
    extra: list[int] = Field(description="Keys in the index and not in the store.")
    duplicated: int = Field(description="Index entries beyond one per key.")
    sampled: int
    misranked: list[int] = Field(description="Sampled keys whose own vector did not rank first.")


class Leader(BaseModel):
    author: str = Field(description="As the forum named the answer's author on its threads.")
    deflected: int = Field(
        description="Suggest requests where a reader marked one of this author's threads "
        "helpful and posted no question after."
    )
    helpful_votes: int


class LeadersResponse(BaseModel):
    since: datetime | None
    language: str | None
    leaders: list[Leader]


class ExpertPublic(BaseModel):
    author: str = Field(description="As the forum named the answer's author on its threads.")
    score: float = Field(
        description="Sum over their nearest threads of similarity × (1 + accepted + helpful)."
    )
    threads: list[str] = Field(description="Their threads near the question, nearest first.")
    accepted: int
    helpful: int


class ExpertsResponse(BaseModel):
    question_id: str
    language: str = Field(description="The question's language; experts answered in it.")
    withheld: str | None = Field(
        description="Why no experts are named (a confidential question goes to staff only)."
    )
    experts: list[ExpertPublic]


class GapPublic(BaseModel):
    size: int = Field(description="Questions in the window in this cluster.")
    previous: int = Field(description="Questions of the previous window as close to its centre.")
    trend: int = Field(description="size - previous.")
    languages: dict[str, int]
    outcomes: dict[str, int] = Field(
        description="How its questions went unanswered: no_match, staff, escalated, posted "
        "(the reader posted after seeing suggestions), not_helpful (suggestions voted down)."
    )
    questions: list[str] = Field(description="Nearest its centre first (stored redacted).")
    missing: list[str] = Field(
        default_factory=list,
        description="Its questions' words that no thread of the forum uses, the most telling "
        "first, in any language: what the missing documentation is about.",
    )
    nearest_thread: str | None
    nearest_title: str | None
    nearest_similarity: float | None = Field(
        description="Close: the answer exists but was not found; far: it is missing."
    )


class GapsResponse(BaseModel):
    since: datetime
    until: datetime
    questions: int = Field(description="Unanswered questions clustered from the window.")
    sampled: bool = Field(
        False,
        description="The window held more than the most that are clustered "
        "(UNRESOLVED_MAX, 2000): only the newest were.",
    )
    gaps: list[GapPublic]


class Breakdown(BaseModel):
    key: str = Field(description="A UTC day (YYYY-MM-DD) or a question language.")
    suggest_count: int
    staff: int
    no_match: int
    deflected: int
    staff_rate: float | None
    deflection_rate: float | None = Field(description="deflected / requests not sent to staff.")


class BreakdownResponse(BaseModel):
    since: datetime | None
    rows: list[Breakdown]
