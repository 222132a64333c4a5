"""A thread's row as the store writes it (its column values, its vector as bytes) and the
keyword search a backend runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from index.store.protocol import Exported, Row

EMPTY_VECTOR = b""  # an upsert's "text unchanged: keep the stored vector"


def vector_of(data: bytes | memoryview) -> np.ndarray:
    return np.frombuffer(bytes(data), dtype=np.float32)


def blob(vector: np.ndarray | None) -> bytes:
    if vector is None:
        return EMPTY_VECTOR
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


def record(row: Row | Exported) -> dict[str, Any]:
    """The column values of a thread about to be written (not its key nor generation)."""
    t = row.thread if isinstance(row, Row) else row.stored.thread
    content_hash, model, vector = row.content_hash, row.embed_model, row.embedding
    return {
        "id": t.id,
        "title": t.title,
        "body": t.body,
        "answer": t.answer,
        "answer_votes": t.answer_votes,
        "accepted": bool(t.accepted),
        "tags": list(t.tags),
        "language": t.language,
        "url": t.url,
        "created_at": t.created_at.isoformat() if t.created_at else None,
        "updated_at": t.updated_at.isoformat() if t.updated_at else None,
        "answer_author": t.answer_author,
        "content_hash": content_hash,
        "embed_model": model,
        "embedding": blob(vector),
    }


@dataclass(frozen=True)
class TermSearch:
    """A keyword search the backend runs: the best ``k`` threads holding any of ``terms``
    (analysed, common ones already dropped), within ``within`` keys when given, with the
    title/body/answer ``weights``."""

    terms: list[str]
    k: int
    within: list[int] | None
    weights: tuple[float, float, float]
