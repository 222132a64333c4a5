"""Expert routing: who in the community is likely to answer a question nobody has answered
yet. The nearest threads in the question's language (the same search and abstention
threshold a suggestion passes) are evidence for their answers' authors: each thread counts
its similarity, more when its answer was accepted and for every reader who found it
helpful. A question triage routed to staff is confidential and never goes to experts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from index.activity import Question
from retrieval.language import detect
from retrieval.search import Hit, Searcher
from retrieval.text import question_text

NEAREST = 30  # threads searched for evidence


@dataclass
class Expert:
    author: str
    score: float = 0.0
    threads: list[str] = field(default_factory=list)
    accepted: int = 0
    helpful: int = 0


def rank(hits: Sequence[Hit], helpful: dict[str, int], limit: int) -> list[Expert]:
    """Authors of ``hits`` by the sum over their threads of similarity × (1 + accepted +
    helpful votes); threads without an author are no one's evidence."""
    experts: dict[str, Expert] = {}
    for h in hits:
        t = h.thread.thread
        if not t.answer_author:
            continue
        e = experts.setdefault(t.answer_author, Expert(t.answer_author))
        votes = helpful.get(t.id, 0)
        e.score += h.similarity * (1 + int(t.accepted) + votes)
        e.threads.append(t.id)
        e.accepted += int(t.accepted)
        e.helpful += votes
    ordered = sorted(experts.values(), key=lambda e: (-e.score, e.author))
    for e in ordered:
        e.score = round(e.score, 6)
    return ordered[:limit]


def confidential(q: Question) -> bool:
    return q.triage.get("route") == "staff"


def experts_for(
    q: Question,
    searcher: Searcher,
    helpful_counts: Callable[[Sequence[str]], dict[str, tuple[int, int]]],
    limit: int = 5,
) -> tuple[str, list[Expert]]:
    """(the question's language, its experts); none for a confidential question."""
    language = detect(question_text(q.title, q.body))
    if confidential(q):
        return language, []
    result = searcher.search(q.title, q.body, k=NEAREST, language=language)
    counts = helpful_counts([h.thread.thread.id for h in result.hits])
    return language, rank(result.hits, {tid: up for tid, (up, _) in counts.items()}, limit)


class _Engine(Protocol):  # what as_payload needs of service.runtime.Engine
    @property
    def searcher(self) -> Searcher: ...
    @property
    def activity(self) -> Any: ...


def as_payload(engine: _Engine, q: Question, limit: int = 5) -> list[dict[str, Any]]:
    """The experts of ``q`` as the webhook's ``experts`` list."""
    _, found = experts_for(q, engine.searcher, engine.activity.feedback_counts, limit)
    return [asdict(e) for e in found]
