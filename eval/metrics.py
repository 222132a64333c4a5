"""Ranking metrics. ``average_precision`` follows the official SemEval-2016 Task 3 scorer:
precision at each relevant position in the ranked list, averaged over the relevant items
found in that list; a list with no relevant item scores 0."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence


def average_precision(ranked: Sequence[str], relevant: Collection[str]) -> float:
    hits, total = 0, 0.0
    for position, item in enumerate(ranked, start=1):
        if item in relevant:
            hits += 1
            total += hits / position
    return total / hits if hits else 0.0


def reciprocal_rank(ranked: Sequence[str], relevant: Collection[str], k: int = 10) -> float:
    for position, item in enumerate(ranked[:k], start=1):
        if item in relevant:
            return 1.0 / position
    return 0.0


def ndcg(ranked: Sequence[str], gains: Mapping[str, float], k: int = 10) -> float:
    """nDCG@k with graded gains (e.g. PerfectMatch 2, Relevant 1), log2 discount."""
    dcg = sum(gains.get(item, 0.0) / math.log2(i + 2) for i, item in enumerate(ranked[:k]))
    ideal = sorted(gains.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    if not relevant:
        return 0.0
    return len(set(ranked[:k]) & set(relevant)) / len(relevant)


def precision_at_1(ranked: Sequence[str], relevant: Collection[str]) -> float:
    return 1.0 if ranked and ranked[0] in relevant else 0.0


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0
