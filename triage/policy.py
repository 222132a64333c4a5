"""The routing policy file (TOML): thresholds operators tune without retraining."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from index.errors import ValidationFailed
from triage.lexicon import QUEUES

DEFAULT_POLICY = Path(__file__).parent / "policy.toml"
PII_TYPES = ("card", "iban", "email", "phone", "account")


def _check_queue(queue: str) -> str:
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}; use one of {QUEUES}")
    return queue


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClassifierPolicy(_Strict):
    threshold: float = Field(default=0.3, gt=0.0, le=1.0)
    timeout_seconds: float = Field(default=2.0, gt=0.0, le=60.0)
    evidence: int = Field(default=3, ge=0, le=20)
    queue_thresholds: dict[str, float] = Field(default_factory=dict)

    @field_validator("queue_thresholds")
    @classmethod
    def _queues(cls, value: dict[str, float]) -> dict[str, float]:
        for queue, threshold in value.items():
            _check_queue(queue)
            if not 0.0 < threshold <= 1.0:
                raise ValueError(f"{queue}: threshold must be in (0, 1]")
        return value

    def threshold_for(self, queue: str) -> float:
        return self.queue_thresholds.get(queue, self.threshold)


class PiiPolicy(_Strict):
    staff_types: dict[str, str] = Field(
        default_factory=lambda: {"card": "security", "iban": "payments", "account": "account"}
    )

    @field_validator("staff_types")
    @classmethod
    def _types(cls, value: dict[str, str]) -> dict[str, str]:
        for kind, queue in value.items():
            if kind not in PII_TYPES:
                raise ValueError(f"unknown PII type {kind!r}; use one of {PII_TYPES}")
            _check_queue(queue)
        return value


class LexiconPolicy(_Strict):
    enabled: bool = True
    confidence: float = Field(default=0.9, gt=0.0, le=1.0)
    # a hint phrase ("my bill", "can't log in") lowers the classifier threshold to this
    hint_threshold: float = Field(default=0.3, gt=0.0, le=1.0)


class AnsweredPolicy(_Strict):
    """Where the service routes a question with its forum at hand (``/v1/suggest``,
    ``/v1/triage``, a registered question; not the ``unsource triage`` command, which has
    no forum): a staff call the classifier made alone (no PII, no lexicon phrase) with
    P(staff) below ``max_p_staff`` yields to a thread the forum already answers the
    question with, one the relevance stage gives at least ``min_relevance``."""

    enabled: bool = True
    min_relevance: float = Field(default=0.7, gt=0.0, le=1.0)
    max_p_staff: float = Field(default=0.45, gt=0.0, le=1.0)


class Policy(_Strict):
    fallback_queue: str = "account"
    classifier: ClassifierPolicy = Field(default_factory=ClassifierPolicy)
    pii: PiiPolicy = Field(default_factory=PiiPolicy)
    lexicon: LexiconPolicy = Field(default_factory=LexiconPolicy)
    answered: AnsweredPolicy = Field(default_factory=AnsweredPolicy)

    @field_validator("fallback_queue")
    @classmethod
    def _fallback(cls, value: str) -> str:
        return _check_queue(value)

    @classmethod
    def load(cls, path: Path = DEFAULT_POLICY) -> Policy:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ValidationFailed([(str(path), "-", str(exc))]) from exc
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ValidationFailed(
                [
                    (str(path), ".".join(str(p) for p in e["loc"]) or "-", e["msg"])
                    for e in exc.errors()
                ]
            ) from exc
