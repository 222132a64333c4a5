"""Combining a dense and a keyword ranking into one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[int]], k: int = 60, weights: Sequence[float] | None = None
) -> dict[int, float]:
    """RRF (Cormack et al. 2009): sum over rankings of weight / (k + rank), rank from 1."""
    weights = weights or [1.0] * len(rankings)
    out: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, key in enumerate(ranking, start=1):
            out[key] = out.get(key, 0.0) + weight / (k + rank)
    return out


def linear_fusion(
    dense: Mapping[int, float], lexical: Mapping[int, float], dense_weight: float
) -> dict[int, float]:
    """Convex mix of cosine similarity and max-normalised BM25 (missing BM25 counts 0)."""
    top = max(lexical.values(), default=0.0)
    keys = set(dense) | set(lexical)
    return {
        key: dense_weight * dense.get(key, 0.0)
        + (1.0 - dense_weight) * (lexical.get(key, 0.0) / top if top > 0 else 0.0)
        for key in keys
    }
