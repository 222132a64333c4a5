"""The suggest policy: triage decides first, and a confidential question gets ``staff``
and no peer suggestions. With ``parallel`` the search (on redacted text only) runs
meanwhile on the given pool, and its result is dropped when triage says staff; triage and
the search then share the question's multilingual encoding (``BatchingEncoder``)."""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Literal, Unpack

from retrieval.search import Searcher, SearchOptions, SearchResult
from retrieval.text import question_text
from triage import pii
from triage.decision import TriageDecision


@dataclass(frozen=True)
class SuggestOutcome:
    decision: Literal["suggest", "no_match", "staff"]
    triage: TriageDecision
    result: SearchResult | None  # None when triage sent the question to staff


@dataclass(frozen=True)
class SuggestPolicy:
    searcher: Searcher
    route: Callable[..., TriageDecision]  # (text, evidence=...) -> decision; fails closed
    pool: cf.Executor | None  # None: triage, then the search, one after the other

    def __call__(
        self, title: str, body: str = "", **options: Unpack[SearchOptions]
    ) -> SuggestOutcome:
        """Triage, and the search (``options``: ``k``, ``tags``, ``language``)."""
        search = partial(self.searcher.search, pii.redact(title), pii.redact(body), **options)
        pending = self.pool.submit(search) if self.pool is not None else None
        # suggest responses carry the reasons, not the labelled examples: skip finding them
        decision = self.route(question_text(title, body), evidence=0)
        if decision.route == "staff":
            if pending is not None:
                pending.cancel()
            return SuggestOutcome("staff", decision, None)
        result = pending.result() if pending is not None else search()
        return SuggestOutcome(result.decision, decision, result)
