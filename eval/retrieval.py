"""Retrieval evaluation over a labelled set, through the same Searcher the service uses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from eval import metrics
from eval.datasets import RetrievalSet
from retrieval.search import Searcher

Protocol = Literal["candidates", "full"]


@dataclass
class RunResult:
    name: str
    protocol: Protocol
    scores: dict[str, float]
    per_query: dict[str, dict[str, float]] = field(default_factory=dict)
    rankings: dict[str, list[str]] = field(default_factory=dict)
    top_similarity: dict[str, float] = field(default_factory=dict)


def rank_queries(
    searcher: Searcher, data: RetrievalSet, protocol: Protocol, depth: int = 100
) -> tuple[dict[str, list[str]], dict[str, float]]:
    """Ranked thread ids per query, and the top-ranked thread's cosine similarity."""
    rankings: dict[str, list[str]] = {}
    top_sim: dict[str, float] = {}
    pk_to_id: dict[int, str] = {}
    for q in data.queries:
        if protocol == "candidates":
            cands = data.candidates.get(q.id)
            if cands is None:
                raise ValueError(f"query {q.id} has no candidate list; use --protocol full")
            rankings[q.id] = [t for t, _ in searcher.rerank(q.title, q.body, cands)]
            continue
        ranked = searcher.rank(q.title, q.body, limit=depth)
        missing = [pk for pk, *_ in ranked if pk not in pk_to_id]
        if missing:
            pk_to_id.update({pk: s.thread.id for pk, s in searcher.corpus.threads(missing).items()})
        rankings[q.id] = [pk_to_id[pk] for pk, *_ in ranked if pk in pk_to_id]
        if ranked:
            top_sim[q.id] = ranked[0][2]
    return rankings, top_sim


def score(
    data: RetrievalSet, rankings: dict[str, list[str]]
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    per_query: dict[str, dict[str, float]] = {}
    for q in data.queries:
        if q.off_topic:  # nothing answers it: scored by the abstention evaluation
            continue
        ranked = rankings.get(q.id, [])
        rel = data.relevant(q.id)
        gains = {d: float(r) for d, r in data.qrels.get(q.id, {}).items() if r > 0}
        per_query[q.id] = {
            "map": metrics.average_precision(ranked, rel),
            "mrr@10": metrics.reciprocal_rank(ranked, rel, 10),
            "ndcg@10": metrics.ndcg(ranked, gains, 10),
            "recall@5": metrics.recall_at(ranked, rel, 5),
            "recall@10": metrics.recall_at(ranked, rel, 10),
            "p@1": metrics.precision_at_1(ranked, rel),
        }
    names = next(iter(per_query.values())).keys() if per_query else []
    overall = {m: metrics.mean([pq[m] for pq in per_query.values()]) for m in names}
    return overall, per_query


def evaluate(name: str, searcher: Searcher, data: RetrievalSet, protocol: Protocol) -> RunResult:
    rankings, top_sim = rank_queries(searcher, data, protocol)
    overall, per_query = score(data, rankings)
    return RunResult(name, protocol, overall, per_query, rankings, top_sim)


def given_order(data: RetrievalSet) -> RunResult:
    """The candidates in the order they were given (SemEval's search-engine baseline)."""
    rankings = {q.id: list(data.candidates.get(q.id, [])) for q in data.queries}
    overall, per_query = score(data, rankings)
    return RunResult("given order (search engine)", "candidates", overall, per_query, rankings)
