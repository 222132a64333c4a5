"""The community signals behind the ranking prior: accepted answers and answer votes from
the thread store, readers' helpful/unhelpful feedback from the activity log."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from index.activity import ActivityStore
from index.store import ThreadStore
from retrieval.prior import Signals


@dataclass(frozen=True)
class CommunitySignals:
    store: ThreadStore
    activity: ActivityStore

    def __call__(self, pks: Sequence[int]) -> dict[int, Signals]:
        """Only threads with some signal get an entry (no signal means a prior of 0)."""
        rows = self.store.signals(pks)
        votes = self.activity.feedback_counts([tid for tid, _, _ in rows.values()])
        out = {}
        for pk, (tid, accepted, answer_votes) in rows.items():
            helpful, unhelpful = votes.get(tid, (0, 0))
            if accepted or answer_votes or helpful or unhelpful:
                out[pk] = Signals(accepted, answer_votes, helpful, unhelpful)
        return out
