"""The thread store: the source of truth, with its own keyword search.

One implementation, ``SQLThreadStore`` (index/store/thread_store.py, on SQLAlchemy Core), runs on
two backends: SQLite (index/store/sqlite.py, the default, one file under the data dir,
FTS5) and PostgreSQL (index/store/postgres.py, by URL, tsvector); index/store/factory.py picks one.
Each thread has a stable integer ``pk`` (never reused) that keys it in the vector index,
and keeps its own embedding so the vector index can be rebuilt without re-encoding. A
``generation`` counter goes up with every committed write, and each row and each
deletion (tombstone) records the generation that wrote it: ``changes_since(g)`` is the
change feed that keeps vector indexes (this process's after a crash, other replicas')
in step without a full rebuild.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from threading import Event
from typing import Any, Protocol

import numpy as np

from index.models import Thread
from index.store.analysis import query_terms


@dataclass(frozen=True)
class StoredThread:
    """A thread as stored, with its integer key."""

    pk: int
    thread: Thread


@dataclass(frozen=True)
class Existing:
    """What an upsert needs to know about a thread already in the store."""

    pk: int
    content_hash: str
    embed_model: str


@dataclass(frozen=True)
class Changes:
    """What changed after a generation, up to ``generation``: rows written (with their
    vectors) and keys deleted. Apply deletions first: a key can be in both."""

    generation: int
    pks: np.ndarray
    models: list[str]
    vectors: list[np.ndarray]
    deleted: list[int]


@dataclass(frozen=True)
class Exported:
    """One thread with everything the store keeps about it (for snapshots)."""

    stored: StoredThread
    content_hash: str
    embed_model: str
    embedding: np.ndarray


@dataclass(frozen=True)
class Row:
    """One thread ready to be written: the record, its text hash and its vector."""

    thread: Thread
    content_hash: str
    embed_model: str
    embedding: np.ndarray | None  # None: text unchanged, keep the stored vector


def fts_terms(text: str, max_terms: int = 32, language: str | None = None) -> list[str]:
    """The distinct analysed words of a question worth searching for (index/store/analysis.py:
    no stopwords, no numbers, stemmed in ``language``)."""
    return query_terms(text, language, max_terms)


def fts_query(text: str, max_terms: int = 32, language: str | None = None) -> str | None:
    """Turn free text into a safe FTS5 OR-query of quoted terms (None if nothing is left)."""
    return fts_match(fts_terms(text, max_terms, language))


def fts_match(terms: Sequence[str]) -> str | None:
    """An FTS5 OR-query of quoted terms (None for no terms)."""
    return " OR ".join(f'"{t}"' for t in terms) or None


class ThreadStore(Protocol):
    """What the corpus, search and snapshots need from a store backend."""

    def generation(self) -> int: ...
    def writes(self) -> int: ...  # write transactions this process committed (no query)
    def store_id(self) -> str: ...
    def count(self) -> int: ...
    def ping(self) -> bool: ...
    def close(self) -> None: ...
    def warm_keyword_index(self, stop: Event) -> int: ...
    def warm_pages(self, stop: Event) -> int: ...
    def existing(self, ids: Sequence[str]) -> dict[str, Existing]: ...
    def get(self, thread_id: str) -> StoredThread | None: ...
    def get_many(self, pks: Sequence[int]) -> dict[int, StoredThread]: ...
    def signals(self, pks: Sequence[int]) -> dict[int, tuple[str, bool, int]]: ...
    def pks_for_ids(self, ids: Sequence[str]) -> dict[str, int]: ...
    def pks(self) -> np.ndarray: ...
    def newest(self, count: int) -> list[int]: ...
    def embeddings_for(self, pks: Sequence[int]) -> dict[int, tuple[str, np.ndarray]]: ...
    def iter_embeddings(
        self, batch: int = 2048
    ) -> Iterator[tuple[np.ndarray, list[str], list[np.ndarray]]]: ...
    def iter_threads(self, batch: int = 512) -> Iterator[list[StoredThread]]: ...
    def iter_export(self, batch: int = 1024) -> Iterator[list[Exported]]: ...
    def changes_since(self, generation: int) -> Changes: ...
    def filter_pks(self, tags: Sequence[str] | None, language: str | None) -> list[int]: ...
    def keyword_search(
        self,
        text: str,
        k: int,
        within: Sequence[int] | None = None,
        weights: tuple[float, float, float] = (2.0, 1.0, 0.5),
        language: str | None = None,
    ) -> list[tuple[int, float]]: ...
    def upsert(self, rows: Sequence[Row]) -> tuple[dict[str, int], int]: ...
    def delete(self, thread_id: str) -> tuple[int | None, int]: ...
    def replace_embeddings(self, items: Sequence[tuple[int, str, str, np.ndarray]]) -> int: ...
    def replace_all(self, rows: Iterable[Exported]) -> int: ...


def to_stored(r: Mapping[Any, Any]) -> StoredThread:
    """A StoredThread from a database row addressed by column name."""
    fields = {
        "id": r["id"],
        "title": r["title"],
        "body": r["body"],
        "answer": r["answer"],
        "answer_votes": r["answer_votes"],
        "accepted": bool(r["accepted"]),
        "tags": json.loads(r["tags"]) if isinstance(r["tags"], str) else r["tags"],
        "language": r["language"],
        "url": r["url"],
        "created_at": r["created_at"],
        "updated_at": r["updated_at"],
        "answer_author": r["answer_author"],
    }
    return StoredThread(pk=int(r["pk"]), thread=Thread.model_validate(fields))
