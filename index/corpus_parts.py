"""What the corpus reports and needs (index/corpus.py): its encoder's interface, what an
upsert did, how the vector index compares with the store."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


class Encoder(Protocol):
    """Turns texts into L2-normalised float32 vectors of a fixed dimension: what the corpus
    needs from an encoder, and the interface every encoder in retrieval/encoders/ has."""

    @property
    def name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class Prepared:
    """Vectors encoded ahead of an upsert (``Corpus.prepare``): by the hash of the text
    each was made from, in the embedding space ``space``."""

    space: str
    vectors: dict[str, np.ndarray]


@dataclass
class UpsertReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged_text: list[str] = field(default_factory=list)

    @property
    def embedded(self) -> int:
        return len(self.created) + len(self.updated)

    def merge(self, other: UpsertReport) -> None:
        self.created += other.created
        self.updated += other.updated
        self.unchanged_text += other.unchanged_text


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Verification:
    """How the vector index compares with the store (lists hold at most 20 keys)."""

    threads: int
    indexed: int
    missing: list[int]  # in the store, not in the index
    extra: list[int]  # in the index, not in the store
    duplicated: int  # index entries beyond one per key
    sampled: int
    misranked: list[int]  # sampled threads whose own vector did not rank first

    @property
    def ok(self) -> bool:
        return self.threads == self.indexed and not (
            self.missing or self.extra or self.duplicated or self.misranked
        )


def duplicate_ids(ids: Iterable[str]) -> list[tuple[int, str]]:
    seen: set[str] = set()
    dups = []
    for i, tid in enumerate(ids):
        if tid in seen:
            dups.append((i, tid))
        seen.add(tid)
    return dups
