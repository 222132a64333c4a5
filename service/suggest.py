"""The suggest policy: triage decides first, and a confidential question gets ``staff``
and no peer suggestions. With a pool the search (on redacted text only) runs meanwhile on
it, and its result is dropped when triage says staff; triage and the search then share
the question's multilingual encoding (``BatchingEncoder``).

Running the two at once shortens one request on an idle server; on a busy one the cores
are taken anyway, and the extra hand-offs between threads cost throughput. So a suggest
uses the pool only while no more suggests are under way than there are cores (``InFlight``).
At 10k threads on 2 cores (600 new questions, 3 alternating runs): 16 clients 88-94 req/s
against 76-87 always in parallel; 1 client p50 12.2-14.2 against 12.1-13.5 ms (one step
after another: 15.0-15.5 ms).

A staff call the classifier made alone, in the routing policy's ``answered`` band, yields
to the search: if a thread answers the question in public (relevance at least the band's
``min_relevance``), the question is a public how-to the forum already answers, and gets
those threads (``triage.decision.yields_to_answer``; docs/triage.md)."""

from __future__ import annotations

import concurrent.futures as cf
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Literal, Unpack

from retrieval.search import Searcher, SearchOptions, SearchResult
from retrieval.text import question_text
from triage import pii
from triage.decision import TriageDecision, answered_in_public, yields_to_answer
from triage.policy import AnsweredPolicy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SuggestOutcome:
    decision: Literal["suggest", "no_match", "staff"]
    triage: TriageDecision
    result: SearchResult | None  # None when triage sent the question to staff


class InFlight:
    """How many suggests are under way; ``entered`` says whether this one is within
    ``limit`` (one per core by default) and may run its search in parallel."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit if limit is not None else len(os.sched_getaffinity(0))
        self._count = 0
        self._lock = threading.Lock()

    @contextmanager
    def entered(self) -> Iterator[bool]:
        with self._lock:
            self._count += 1
            room = self._count <= self.limit
        try:
            yield room
        finally:
            with self._lock:
                self._count -= 1


@dataclass(frozen=True)
class SuggestPolicy:
    searcher: Searcher
    route: Callable[..., TriageDecision]  # (text, evidence=...) -> decision; fails closed
    pool: cf.Executor | None  # None: triage, then the search, one after the other
    in_flight: InFlight = field(default_factory=InFlight)
    answered: AnsweredPolicy | None = None  # None: a staff decision is final

    def __call__(
        self, title: str, body: str = "", **options: Unpack[SearchOptions]
    ) -> SuggestOutcome:
        """Triage, and the search (``options``: ``k``, ``tags``, ``language``)."""
        with self.in_flight.entered() as room:
            return self._decide(title, body, self.pool if room else None, **options)

    def _decide(
        self, title: str, body: str, pool: cf.Executor | None, **options: Unpack[SearchOptions]
    ) -> SuggestOutcome:
        search = partial(self.searcher.search, pii.redact(title), pii.redact(body), **options)
        pending = pool.submit(search) if pool is not None else None
        # suggest responses carry the reasons, not the labelled examples: skip finding them
        decision = self.route(question_text(title, body), evidence=0)
        if decision.route == "staff":
            return self._staff_or_answered(decision, pending, search)
        result = pending.result() if pending is not None else search()
        return SuggestOutcome(result.decision, decision, result)

    def _staff_or_answered(
        self,
        decision: TriageDecision,
        pending: cf.Future[SearchResult] | None,
        search: Callable[[], SearchResult],
    ) -> SuggestOutcome:
        """``staff``, unless the decision yields to a public answer (``answered_in_forum``):
        then the threads that answer it. A staff call that cannot yield is never searched
        (in series) or its search is cancelled (in parallel)."""
        found = answered_in_forum(self.answered, decision, pending.result if pending else search)
        if found is None:
            if pending is not None:
                pending.cancel()
            return SuggestOutcome("staff", decision, None)
        return SuggestOutcome("suggest", *found)


def answered_in_forum(
    rule: AnsweredPolicy | None, decision: TriageDecision, search: Callable[[], SearchResult]
) -> tuple[TriageDecision, SearchResult] | None:
    """If ``decision`` is a staff call that may yield (``yields_to_answer``) and ``search``
    (of the redacted question) shows threads the relevance stage gives at least the
    band's ``min_relevance``: the decision turned community, naming the best of them, and
    the result cut to them. Otherwise None, also when the search fails (staff stays)."""
    if rule is None or not yields_to_answer(rule, decision):
        return None
    try:
        result = search()
    except Exception as exc:
        log.warning("search failed on a staff question; it stays staff: %r", exc)
        return None
    shown = [h for h in result.hits if (h.relevance or 0.0) >= rule.min_relevance]
    if not shown:
        return None
    best = max(shown, key=lambda h: h.relevance or 0.0)
    public = answered_in_public(rule, decision, best.thread.thread.id, best.relevance or 0.0)
    return public, replace(result, hits=shown)
