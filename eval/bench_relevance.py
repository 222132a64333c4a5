"""``make bench``'s relevance section: what the relevance stage costs a suggest.

The demo community (the default encoder pair, in process, no HTTP) answers the lumio
dev questions (answerable, off-topic and unanswerable, all four languages) once with the
stage off and once with it on; each pass runs the question set twice, and the second
round is what is reported (the query cache is off; the word cache is what a running
replica has: its first sighting of a word costs an encode, reported apart as "cold")."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from eval.datasets import load_beir
from eval.harness import corpus_threads
from service.config import Settings
from service.runtime import build_engine

DEVSET = Path(__file__).parent / "devsets" / "lumio"


def _questions() -> list[str]:
    texts = [q.title for split in ("tune", "report") for q in load_beir(DEVSET, split).queries]
    lines = (DEVSET / "unanswerable.jsonl").read_text(encoding="utf-8").splitlines()
    return list(dict.fromkeys(texts + [json.loads(line)["text"] for line in lines]))


def _ms(samples: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(float(np.percentile(samples, 50)) * 1000, 2),
        "p99_ms": round(float(np.percentile(samples, 99)) * 1000, 2),
    }


def relevance_cost(work: Path) -> dict[str, Any]:
    questions = _questions()
    out: dict[str, Any] = {"questions": len(questions)}
    for mode in ("off", "on"):
        settings = Settings(data_dir=work / f"relevance-{mode}", relevance=mode, query_cache_size=0)
        engine = build_engine(settings, with_triage=False)
        engine.save_on_exit = False
        with engine:
            engine.ingest(corpus_threads(load_beir(DEVSET, "tune")))
            rounds = []
            for _ in range(2):
                took = []
                for q in questions:
                    start = time.perf_counter()
                    engine.searcher.search(q)
                    took.append(time.perf_counter() - start)
                rounds.append(took)
            out[mode] = {**_ms(rounds[1]), "cold": _ms(rounds[0])}
    out["added_p50_ms"] = round(out["on"]["p50_ms"] - out["off"]["p50_ms"], 2)
    return out


def markdown(result: dict[str, Any] | None) -> str:
    if not result:
        return "(not run)"
    rows = [
        f"| {mode} | {result[mode]['p50_ms']} | {result[mode]['p99_ms']} | "
        f"{result[mode]['cold']['p50_ms']} | {result[mode]['cold']['p99_ms']} |"
        for mode in ("off", "on")
    ]
    return "\n".join(
        [
            f"{result['questions']} questions, in process, one at a time "
            f"(the stage adds {result['added_p50_ms']} ms at p50).",
            "",
            "| relevance stage | p50 ms | p99 ms | first pass p50 ms | first pass p99 ms |",
            "|---|---|---|---|---|",
            *rows,
        ]
    )
