"""The thread record: what a community thread looks like in unsource."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

MAX_ID = 200
# "has a character that is not whitespace" under every regex engine that reads this schema
# (Python's str.strip, pydantic's Rust regex, ECMA-262 for JSON Schema clients)
NON_BLANK = r"[^\s\x1c-\x1f\x85\ufeff]"
# stored text never holds NUL (PostgreSQL text cannot): part of the schema, so clients and
# fuzzers see it; "some non-blank character, no NUL anywhere"
NO_NUL = r"^[^\x00]*$"
NON_BLANK_NO_NUL = r"^[^\x00]*[^\s\x00\x1c-\x1f\x85\ufeff][^\x00]*$"
MAX_TITLE = 500
MAX_BODY = 20_000
MAX_ANSWER = 20_000
MAX_TAGS = 20

ThreadId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_ID, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$"),
]
MAX_TAG = 50


def _tag_as_sent(value: Any) -> Any:
    """A tag's length is checked as sent, before stripping (as ``RawLengthChecked`` does
    for fields: list items escape it; found by the schema fuzzer)."""
    if isinstance(value, str) and len(value) > MAX_TAG:
        raise ValueError(f"String should have at most {MAX_TAG} characters")
    return value


Tag = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=MAX_TAG, pattern=NON_BLANK_NO_NUL
    ),
    BeforeValidator(_tag_as_sent),
]
Language = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")]


MAX_TIMESTAMP = 64  # "2026-11-23T18:30:50.123456789+05:30" is 35 characters


def _is_number(text: str) -> bool:
    """True for text float() reads as a number (linear in its length, unlike a regex)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def _not_a_number(value: object) -> object:
    """Times are ISO-8601 text (or datetimes), never numbers read as Unix seconds; the text
    is bounded before pydantic's (linear, Rust) date-time parser sees it."""
    if isinstance(value, int | float):
        raise ValueError("expected an ISO-8601 date-time string")
    if isinstance(value, str):
        if len(value) > MAX_TIMESTAMP:
            raise ValueError(f"a date-time is at most {MAX_TIMESTAMP} characters")
        if _is_number(value):
            raise ValueError("expected an ISO-8601 date-time string")
    return value


def _json_int(value: object, info: ValidationInfo) -> object:
    """JSON integers only (3 or 3.0, as JSON Schema has it), not "3" or true; text cells
    (CSV, validated with context ``{"text": True}``) are parsed."""
    if (info.context or {}).get("text"):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("expected an integer")
    return value


def _json_bool(value: object, info: ValidationInfo) -> object:
    if (info.context or {}).get("text"):
        return value
    if not isinstance(value, bool):
        raise ValueError("expected true or false")
    return value


def _utc_representable(moment: datetime) -> datetime:
    """A moment the store can keep: it must exist in UTC (``0001-01-01T00:00+00:01`` is
    before year 1 there, ``9999-12-31T23:59-00:01`` after 9999)."""
    if moment.tzinfo is not None:
        try:
            moment.astimezone(UTC)
        except OverflowError:
            raise ValueError("date-time is out of range once converted to UTC") from None
    return moment


JsonInt = Annotated[int, BeforeValidator(_json_int)]
JsonBool = Annotated[bool, BeforeValidator(_json_bool)]
Timestamp = Annotated[datetime, BeforeValidator(_not_a_number), AfterValidator(_utc_representable)]
AwareTimestamp = Annotated[
    AwareDatetime, BeforeValidator(_not_a_number), AfterValidator(_utc_representable)
]

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


class RawLengthChecked(BaseModel):
    """Request models that strip whitespace: a field's ``max_length`` is checked on the text
    as sent, before stripping, so the server and the published schema agree (a title of
    501 characters starting with a space was accepted, found by the schema fuzzer)."""

    @field_validator("*", mode="before")
    @classmethod
    def _raw_length(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str) and info.field_name:
            field = cls.model_fields.get(info.field_name)
            for meta in field.metadata if field is not None else ():
                limit = getattr(meta, "max_length", None)
                if limit is not None and len(value) > limit:
                    raise ValueError(f"String should have at most {limit} characters")
        return value


class ThreadFields(RawLengthChecked):
    """Everything about a thread except its id (the body of ``PUT /v1/threads/{id}``)."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={"examples": [{k: v for k, v in EXAMPLE.items() if k != "id"}]},
    )

    title: str = Field(min_length=1, max_length=MAX_TITLE, pattern=NON_BLANK_NO_NUL)
    body: str = Field(default="", max_length=MAX_BODY, pattern=NO_NUL)
    answer: str = Field(default="", max_length=MAX_ANSWER, pattern=NO_NUL)
    answer_votes: JsonInt = Field(default=0, ge=-1_000_000, le=1_000_000)
    accepted: JsonBool = False
    answer_author: str | None = Field(
        default=None,
        max_length=128,
        pattern=NON_BLANK_NO_NUL,
        description="Who wrote the answer, as the forum identifies them (an id or a handle): "
        "a helpful vote on this thread credits them (GET /v1/community/leaders).",
    )
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    language: Language | None = None
    url: str | None = Field(
        default=None, max_length=2_000, pattern=r"^https?://[^\s\x00\x85\ufeff]+$"
    )
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None

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
