"""The thread record: what a community thread looks like in unsource."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

MAX_ID = 200
MAX_TITLE = 500
MAX_BODY = 20_000
MAX_ANSWER = 20_000
MAX_TAGS = 20

ThreadId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_ID, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$"),
]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
Language = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")]


EXAMPLE: dict[str, Any] = {
    "id": "lumio-001",
    "title": "How do I reset the Lumio Hub to factory settings?",
    "body": "My hub is stuck with a blinking orange light.",
    "answer": "Hold the pinhole button on the back for 15 seconds until the ring turns white.",
    "answer_votes": 42,
    "accepted": True,
    "tags": ["hub", "setup"],
    "language": "en",
    "url": "https://community.example.com/t/lumio-001",
}


class ThreadFields(BaseModel):
    """Everything about a thread except its id (the body of ``PUT /v1/threads/{id}``)."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={"examples": [{k: v for k, v in EXAMPLE.items() if k != "id"}]},
    )

    title: str = Field(min_length=1, max_length=MAX_TITLE)
    body: str = Field(default="", max_length=MAX_BODY)
    answer: str = Field(default="", max_length=MAX_ANSWER)
    answer_votes: int = Field(default=0, ge=-1_000_000, le=1_000_000)
    accepted: bool = False
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    language: Language | None = None
    url: str | None = Field(default=None, max_length=2_000, pattern=r"^https?://\S+$")
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @field_validator("tags")
    @classmethod
    def _dedupe_tags(cls, tags: list[str]) -> list[str]:
        return list(dict.fromkeys(t.lower() for t in tags))

    @field_validator("created_at", "updated_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Thread(ThreadFields):
    """A complete thread, keyed by the forum's own string id."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE]})

    id: ThreadId
