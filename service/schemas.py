"""HTTP request and response models. Inputs forbid unknown fields and bound every length."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from index.models import MAX_BODY, MAX_TAGS, MAX_TITLE, Language, Tag, Thread
from triage.router import Reason

MAX_K = 50
MAX_BULK = 1000
EXCERPT_CHARS = 300


class SuggestRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [{"title": "How do I reset my hub to factory settings?", "k": 3}]
        },
    )

    title: str = Field(min_length=1, max_length=MAX_TITLE)
    body: str = Field(default="", max_length=MAX_BODY)
    k: int = Field(default=5, ge=1, le=MAX_K)
    tags: list[Tag] | None = Field(default=None, max_length=MAX_TAGS)
    language: Language | None = None


class Suggestion(BaseModel):
    thread_id: str
    title: str
    answer_excerpt: str
    url: str | None
    score: float = Field(description="Fused ranking score (higher is better).")
    similarity: float = Field(description="Cosine similarity of question and thread.")
    accepted: bool
    answer_votes: int


class SuggestResponse(BaseModel):
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
    threshold: float


class TriageRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [{"text": "I was charged twice for my Lumio Plus subscription"}]
        },
    )

    text: str = Field(min_length=1, max_length=MAX_TITLE + MAX_BODY)


class BulkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

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
