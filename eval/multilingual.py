"""Per-language evaluation: retrieval by pair of languages, and abstention per question
language (off-topic questions that get a suggestion; answerable ones that get none)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from eval.datasets import RetrievalSet
from eval.retrieval import RunResult
from retrieval.language import detect
from retrieval.search import Searcher

# targets of the multilingual issue: at most 5 % of off-topic questions get a suggestion,
# at most 3 % of answerable ones get no_match
OFF_TOPIC_MAX = 0.05
ANSWERABLE_NO_MATCH_MAX = 0.03


def pair_of(data: RetrievalSet, query_id: str, language: str) -> str:
    """``pt->other`` when no relevant document shares the question's language, else
    ``pt->pt`` (documents without a language count as the question's)."""
    langs = {
        doc.get("language") or language
        for doc in data.corpus
        if doc["id"] in data.relevant(query_id)
    }
    return f"{language}->{language}" if language in langs or not langs else f"{language}->other"


def per_pair(data: RetrievalSet, run: RunResult) -> dict[str, dict[str, float]]:
    """p@1, MRR@10 and MAP per pair of languages, with the number of questions."""
    groups: dict[str, list[dict[str, float]]] = defaultdict(list)
    for q in data.queries:
        if q.off_topic or q.id not in run.per_query:
            continue
        language = q.language or detect(f"{q.title}\n{q.body}")
        groups[pair_of(data, q.id, language)].append(run.per_query[q.id])
    return {
        pair: {
            "questions": float(len(rows)),
            "p@1": float(np.mean([r["p@1"] for r in rows])),
            "mrr@10": float(np.mean([r["mrr@10"] for r in rows])),
            "map": float(np.mean([r["map"] for r in rows])),
        }
        for pair, rows in sorted(groups.items())
    }


def best_similarities(
    searcher: Searcher, data: RetrievalSet
) -> list[tuple[str, bool, float, bool]]:
    """Per question: (language, off topic?, best similarity, top-1 relevant?)."""
    out = []
    for q in data.queries:
        ranked = searcher.rank(q.title, q.body, limit=20)
        language = q.language or detect(f"{q.title}\n{q.body}")
        if not ranked:
            out.append((language, q.off_topic, -1.0, False))
            continue
        best_pk, _, _, _ = ranked[0]
        stored = searcher.corpus.threads([best_pk]).get(best_pk)
        correct = stored is not None and stored.thread.id in data.relevant(q.id)
        out.append((language, q.off_topic, max(r[2] for r in ranked), correct))
    return out


def choose_threshold(
    rows: list[tuple[bool, float, bool]], grid: np.ndarray
) -> tuple[float, float, float]:
    """The threshold with the fewest errors of both kinds (off-topic suggested, answerable
    abstained), preferring the middle of the widest run of thresholds that meet both
    targets; returns (threshold, off-topic suggest rate, answerable no_match rate)."""
    off = np.array([s for o, s, _ in rows if o])
    on = np.array([s for o, s, _ in rows if not o])

    def rates(t: float) -> tuple[float, float]:
        return (
            float((off >= t).mean()) if len(off) else 0.0,
            float((on < t).mean()) if len(on) else 0.0,
        )

    ok = [
        t for t in grid if rates(t)[0] <= OFF_TOPIC_MAX and rates(t)[1] <= ANSWERABLE_NO_MATCH_MAX
    ]
    t = float(ok[len(ok) // 2]) if ok else float(min(grid, key=lambda t: sum(rates(t))))
    return (round(t, 3), *rates(t))


def language_abstention(
    searcher: Searcher, data: RetrievalSet, current: dict[str, float], default: float
) -> dict[str, Any]:
    rows = best_similarities(searcher, data)
    grid = np.round(np.arange(0.20, 0.80, 0.01), 3)
    out: dict[str, Any] = {}
    for language in sorted({r[0] for r in rows}):
        mine = [(o, s, c) for lang, o, s, c in rows if lang == language]
        t, off_rate, miss_rate = choose_threshold(mine, grid)
        now = current.get(language, default)
        off = [s for o, s, _ in mine if o]
        on = [s for o, s, _ in mine if not o]
        out[language] = {
            "answerable": len(on),
            "off_topic": len(off),
            "top1_correct": float(np.mean([c for o, _, c in mine if not o])) if on else None,
            "recommended_threshold": t,
            "off_topic_suggested_at_recommended": off_rate,
            "answerable_no_match_at_recommended": miss_rate,
            "current_threshold": now,
            "off_topic_suggested_at_current": float(np.mean([s >= now for s in off]))
            if off
            else None,
            "answerable_no_match_at_current": float(np.mean([s < now for s in on])) if on else None,
        }
    return out


def markdown_language_abstention(result: dict[str, Any]) -> str:
    lines = [
        "| language | answerable | off-topic | top-1 correct | threshold now | off-topic "
        "suggested | answerable no_match | recommended | off-topic | no_match |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for lang, r in result.items():

        def pct(x: float | None) -> str:
            return "—" if x is None else f"{100 * x:.1f} %"

        lines.append(
            f"| {lang} | {r['answerable']} | {r['off_topic']} | {pct(r['top1_correct'])} | "
            f"{r['current_threshold']} | {pct(r['off_topic_suggested_at_current'])} | "
            f"{pct(r['answerable_no_match_at_current'])} | {r['recommended_threshold']} | "
            f"{pct(r['off_topic_suggested_at_recommended'])} | "
            f"{pct(r['answerable_no_match_at_recommended'])} |"
        )
    return "\n".join(lines)


def markdown_pairs(pairs: dict[str, dict[str, float]]) -> str:
    lines = ["| pair | questions | p@1 | MRR@10 | MAP |", "|---|---|---|---|---|"]
    for pair, r in pairs.items():
        lines.append(
            f"| {pair} | {int(r['questions'])} | {r['p@1']:.3f} | {r['mrr@10']:.3f} | "
            f"{r['map']:.3f} |"
        )
    return "\n".join(lines)
