"""``unsource eval gaps``: do the knowledge gaps gather each unanswered topic into one gap?

A stream (``eval/devsets/gaps/*.jsonl``: ``topic``, ``language``, ``text``;
``topic`` null for a one-off question) is clustered as the service clusters a window's
unanswered questions (``service.insights.find_gaps``, the multilingual encoder). A planted
topic is *found* when exactly one gap has it as its majority, that gap holds at least
``SHARE`` of the topic's questions in at least ``LANGUAGES`` languages, and at least
``SHARE`` of the gap is that topic (issue 29's target: 8 questions in four languages, one
gap of at least 6 spanning at least 3 languages, not merged with another topic).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from index.activity import Unresolved
from index.ingest import read_threads
from retrieval.relevance import WordAligner
from retrieval.text import thread_text
from service.insights import DISTANCE, Gap, Lean, find_gaps, forum_vocabulary

GAPS = Path(__file__).parent / "devsets" / "gaps"
STREAMS = ("tune", "report", "blind", "blind2", "blind3")  # ``unsource eval gaps``'s default
# the forum the streams ask about: the demo's threads (what a served window is clustered with)
FORUM = Path(__file__).parents[1] / "service" / "demo" / "threads.jsonl"
SHARE = 0.75
LANGUAGES = 3


def load_stream(path: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    for i, row in enumerate(rows, 1):
        if (
            not isinstance(row, dict)
            or not isinstance(row.get("text"), str)
            or not row["text"].strip()
        ):
            raise ValueError(f"{path}:{i}: text: a non-empty string is required")
        row.setdefault("topic", None)  # a one-off question
        row.setdefault("language", None)
    return rows


def score(rows: Sequence[dict[str, Any]], gaps: Sequence[Gap]) -> dict[str, Any]:
    """Per planted topic: found or not, and where its questions went."""
    sizes = Counter(r["topic"] for r in rows if r["topic"])
    by_majority: dict[str, list[Gap]] = {}
    placed: dict[str, list[dict[str, int]]] = {t: [] for t in sizes}
    for g in gaps:
        topics = Counter(rows[i]["topic"] for i in g.members)
        top, _ = topics.most_common(1)[0]
        if top is not None:
            by_majority.setdefault(top, []).append(g)
        for t in topics:
            if t is not None:
                placed[t].append({str(k): v for k, v in topics.items()})
    topics_out = {}
    for topic, size in sorted(sizes.items()):
        own = by_majority.get(topic, [])
        found = False
        if len(own) == 1:
            g = own[0]
            mine = [i for i in g.members if rows[i]["topic"] == topic]
            languages = {rows[i]["language"] for i in mine}
            found = (
                len(mine) >= SHARE * size
                and len(languages) >= LANGUAGES
                and len(mine) >= SHARE * g.size
            )
        named = own[0].missing if len(own) == 1 else []
        topics_out[topic] = {
            "questions": size,
            "found": found,
            "gaps": placed[topic],
            "missing": named,
        }
    return {
        "found": sum(t["found"] for t in topics_out.values()),
        "topics": len(topics_out),
        "gaps": len(gaps),
        "per_topic": topics_out,
    }


def served_encode(
    encode: Callable[[Sequence[str]], np.ndarray], forum: Path = FORUM
) -> Callable[[Sequence[str]], np.ndarray]:
    """``encode`` as the service clusters with it: leaning towards the words ``forum``'s
    threads (a JSONL or CSV export) never use (``service.insights.Lean``)."""
    aligner = WordAligner(encode)
    texts = (thread_text(t) for t in read_threads(forum).threads)
    return Lean(encode, aligner, forum_vocabulary(aligner, texts))


def evaluate(
    rows: Sequence[dict[str, Any]],
    encode: Callable[[Sequence[str]], np.ndarray],
    distance: float = DISTANCE,
) -> dict[str, Any]:
    now = datetime.now(UTC)
    items = [Unresolved(now, r["text"], r.get("language"), "no_match") for r in rows]
    naming = encode.missing if isinstance(encode, Lean) else None
    return score(rows, find_gaps(items, [], encode, distance=distance, naming=naming))


def markdown(results: dict[str, dict[str, Any]], distance: float) -> str:
    lines = [
        f"Knowledge gaps at distance {distance}: a topic is found as one gap holding "
        f"≥ {SHARE:.0%} of its questions in ≥ {LANGUAGES} languages, ≥ {SHARE:.0%} of it "
        "that topic.",
        "",
        "| stream | topic | found | where its questions went (topic: count, per gap) "
        "| its gap's words the forum lacks |",
        "|---|---|---|---|---|",
    ]
    for stream, result in results.items():
        for topic, t in result["per_topic"].items():
            went = "; ".join(", ".join(f"{k}: {v}" for k, v in g.items()) for g in t["gaps"])
            named = ", ".join(t.get("missing", []))
            found = "yes" if t["found"] else "no"
            lines.append(f"| {stream} | {topic} | {found} | {went} | {named} |")
        lines.append(f"| {stream} | **all** | **{result['found']} of {result['topics']}** | | |")
    return "\n".join(lines) + "\n"
