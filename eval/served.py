"""A product's dev questions through a running server's ``/v1/suggest``, as held-out sets
score it: triage included, so a question can come back ``suggest``, ``no_match`` or
``staff``, and an answerable one is kept only if it is shown a thread that answers it.

``unsource eval relevance`` scores the relevance stage alone (``Searcher.search``, no
triage); this scores what a forum frontend gets. The server must hold the dev set's corpus
(the demo's for lumio and the lumio_blind sets: ``make serve``).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.datasets import jsonl_rows, load_beir

DEVSETS = Path(__file__).parent / "devsets"
# the dev sets on the demo corpus (what ``make serve`` loads)
DEFAULT_DEVSETS = ("lumio", "lumio_blind", "lumio_blind2", "lumio_blind3", "lumio_blind4")
DECISIONS = ("suggest", "no_match", "staff")
RETRIES = 30  # answers 429 (the server's rate limit) waited out, at most, per question


@dataclass(frozen=True)
class Question:
    qid: str
    text: str
    language: str
    kind: str  # answerable, unanswerable, off_topic
    source: str  # the dev set's folder name
    answers: frozenset[str]  # thread ids that answer it (answerable only)


def report_questions(devset: Path) -> list[Question]:
    """The ``report`` split of a product dev set: answerable and off-topic questions
    (``queries.jsonl`` with ``qrels/report.tsv``) and the unanswerable ones."""
    data = load_beir(devset, "report")
    out = [
        Question(
            q.id,
            q.title,
            q.language,
            "off_topic" if q.off_topic else "answerable",
            devset.name,
            frozenset(data.relevant(q.id)),
        )
        for q in data.queries
    ]
    path = devset / "unanswerable.jsonl"
    if path.exists():
        out += [
            Question(
                str(r["_id"]),
                r["text"],
                r.get("language", ""),
                "unanswerable",
                devset.name,
                frozenset(),
            )
            for r in jsonl_rows(path)
            if r.get("split") == "report"
        ]
    return out


Post = Callable[[dict[str, Any]], tuple[int, dict[str, Any], float]]  # status, JSON, retry-after


def retry_after(value: str | None, default: float = 1.0) -> float:
    """Seconds to wait from a ``Retry-After`` header: a number of seconds, else (absent, or
    an HTTP date) ``default``."""
    try:
        return max(0.0, float(value)) if value is not None else default
    except ValueError:
        return default


def ask(
    post: Post, question: Question, k: int = 5, sleep: Callable[[float], None] = time.sleep
) -> dict[str, Any]:
    """One question's outcome: the decision, the first thread shown and whether it answers."""
    for _ in range(RETRIES):
        status, body, wait = post({"title": question.text, "k": k})
        if status != 429:
            break
        sleep(wait)
    if status != 200:
        raise RuntimeError(f"/v1/suggest answered {status} for {question.qid}: {body}")
    shown = body.get("suggestions") or []
    top = shown[0]["thread_id"] if shown else None
    return {
        "id": question.qid,
        "source": question.source,
        "language": question.language,
        "kind": question.kind,
        "decision": body["decision"],
        "top": top,
        "answers": bool(top in question.answers) if question.kind == "answerable" and top else None,
        "queue": (body.get("triage") or {}).get("queue"),
        "text": question.text,
    }


def summarise(outcomes: Iterable[dict[str, Any]]) -> dict[str, dict[str, dict[str, int]]]:
    """Per ``source/language`` and kind: how many questions, each decision's count, and for
    answerable ones how many were shown an answering thread first (``answered``)."""
    cells: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    for o in outcomes:
        cell = cells[f"{o['source']}/{o['language']}"][o["kind"]]
        cell["n"] += 1
        cell[o["decision"]] += 1
        cell["answered"] += bool(o["answers"])
    return {k: {kind: dict(c) for kind, c in v.items()} for k, v in sorted(cells.items())}


def _cell(counts: dict[str, int] | None, name: str) -> str:
    return f"{counts.get(name, 0)} of {counts['n']}" if counts else ""


def markdown(summary: dict[str, dict[str, dict[str, int]]], url: str) -> str:
    lines = [
        f"## /v1/suggest at {url}",
        "",
        "| set | answerable: shown an answer first | answerable: no_match | answerable: staff "
        "| unanswerable: suggest | unanswerable: staff | off-topic: suggest |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, kinds in summary.items():
        a, u, o = kinds.get("answerable"), kinds.get("unanswerable"), kinds.get("off_topic")
        lines.append(
            f"| {key} | {_cell(a, 'answered')} | {_cell(a, 'no_match')} | {_cell(a, 'staff')} "
            f"| {_cell(u, 'suggest')} | {_cell(u, 'staff')} | {_cell(o, 'suggest')} |"
        )
    return "\n".join(lines) + "\n"


def evaluate(post: Post, devsets: Sequence[Path], k: int = 5) -> list[dict[str, Any]]:
    return [ask(post, q, k) for devset in devsets for q in report_questions(devset)]
