"""Ranking prior from community signals: accepted answers, answer votes and the helpful /
unhelpful feedback readers gave when a thread was suggested.

The prior is in [-1, 1] and 0 for a thread with no signals, so it only separates threads
that the community has judged; it is added to the fused score with a small weight.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Signals:
    accepted: bool = False
    votes: int = 0
    helpful: int = 0
    unhelpful: int = 0


# pks -> their signals (threads without an entry count as no signals)
SignalSource = Callable[[Sequence[int]], dict[int, Signals]]


def prior(s: Signals) -> float:
    """Half answer quality (accepted, votes squashed by tanh), half reader feedback
    (helpful minus unhelpful, shrunk towards 0 with two pseudo-votes)."""
    quality = 0.5 * float(s.accepted) + 0.5 * math.tanh(s.votes / 5.0)
    feedback = (s.helpful - s.unhelpful) / (s.helpful + s.unhelpful + 2.0)
    return 0.5 * quality + 0.5 * feedback


def apply_prior(
    fused: dict[int, float], signals: dict[int, Signals], weight: float
) -> dict[int, float]:
    """``fused + weight * prior`` for every candidate."""
    if weight == 0.0 or not signals:
        return fused
    return {pk: s + weight * prior(signals.get(pk, Signals())) for pk, s in fused.items()}
