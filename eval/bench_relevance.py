"""``make bench``'s relevance section: what the relevance stage costs a suggest.

The demo community (the default encoder pair, in process, no HTTP) answers the lumio
dev questions (answerable, off-topic and unanswerable, all four languages) once with the
stage off and once with it on; each pass runs the question set twice, and the second
round is what is reported (the query cache is off; the word cache is what a running
replica has: its first sighting of a word costs an encode, reported apart as "cold").

Then the served path (``triage_dir`` given): the same questions through the suggest policy
with triage on, as ``/v1/suggest`` runs them, first sighting of each (its new words not
cached), with the question's words riding in the multilingual encode (the default,
``BatchingEncoder.riders``) and without (each new word a model call of the relevance stage
in the request)."""

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


def served_first_pass(work: Path, triage_dir: Path, riders: bool) -> dict[str, float]:
    """p50 / p99 of each question's first suggest (triage on), riders on or off."""
    from retrieval.encoders.batching import BatchingEncoder

    name = "riders" if riders else "no-riders"
    settings = Settings(
        data_dir=work / f"relevance-served-{name}", triage_model_dir=triage_dir, query_cache_size=0
    )
    engine = build_engine(settings)
    engine.save_on_exit = False
    with engine:
        engine.ingest(corpus_threads(load_beir(DEVSET, "tune")))
        shared = engine.triage.encoder if engine.triage is not None else None
        if not riders and isinstance(shared, BatchingEncoder):
            shared.riders = None
        for q in ("How do I reset the hub?", "Como atualizo o firmware?"):
            engine.suggest(q)
        took = []
        for q in _questions():
            start = time.perf_counter()
            engine.suggest(q)
            took.append(time.perf_counter() - start)
    return _ms(took)


def relevance_cost(work: Path, triage_dir: Path | None = None) -> dict[str, Any]:
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
    if triage_dir is not None:
        out["served"] = {
            "no_riders": served_first_pass(work, triage_dir, riders=False),
            "riders": served_first_pass(work, triage_dir, riders=True),
        }
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
            *_served_rows(result.get("served")),
        ]
    )


def _served_rows(served: dict[str, Any] | None) -> list[str]:
    if not served:
        return []
    return [
        "",
        "Through the suggest policy with triage on (as `/v1/suggest`, no HTTP), each "
        "question's first sighting:",
        "",
        "| a question's new words | p50 ms | p99 ms |",
        "|---|---|---|",
        f"| encoded by the relevance stage, a model call of their own | "
        f"{served['no_riders']['p50_ms']} | {served['no_riders']['p99_ms']} |",
        f"| riding in the question's multilingual encode (default) | "
        f"{served['riders']['p50_ms']} | {served['riders']['p99_ms']} |",
    ]
