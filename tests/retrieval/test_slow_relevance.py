"""The default configuration (encoder pair + relevance stage) on the demo community's
``report`` split, through ``Searcher.search`` (the path /v1/suggest takes): questions no
thread answers get ``no_match``, answerable ones keep their answer. The model never saw
these questions (eval/relevance.py trains on ``tune``); the bounds are the levels
measured when the model was chosen (docs/evaluation.md), so a change that loses them
fails here."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from eval.datasets import load_beir
from eval.harness import corpus_threads
from eval.relevance import REPORT_WEEKS, sumo_questions
from service.cli.output import load_settings
from service.runtime import Engine, build_engine
from tests.support import SHARED

pytestmark = pytest.mark.slow
DEVSET = Path(__file__).resolve().parents[2] / "eval" / "devsets" / "lumio"


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    settings = load_settings(data_dir=tmp_path_factory.mktemp("relevance"))
    assert settings.relevance_on()
    with build_engine(settings, with_triage=False) as eng:
        eng.ingest(corpus_threads(load_beir(DEVSET, "report")))
        yield eng


def _rate(values: list[bool]) -> float:
    return sum(values) / len(values)


def test_unanswerable_questions_about_the_product_get_no_match(engine: Engine) -> None:
    asked: dict[str, list[bool]] = defaultdict(list)
    for line in (DEVSET / "unanswerable.jsonl").read_text(encoding="utf-8").splitlines():
        q = json.loads(line)
        if q["split"] == "report":
            asked[q["language"]].append(engine.searcher.search(q["text"]).decision == "no_match")
    assert set(asked) == {"en", "pt", "es", "it"}
    for language, no_match in asked.items():
        assert _rate(no_match) >= 0.8, (language, no_match)


def test_off_topic_questions_get_no_suggestion(engine: Engine) -> None:
    data = load_beir(DEVSET, "report")
    texts = [q.title for q in data.queries if q.off_topic]
    texts += [title for _, title in sumo_questions(SHARED / "data", REPORT_WEEKS, 60)]
    shown = [engine.searcher.search(t).decision == "suggest" for t in texts]
    assert _rate(shown) <= 0.05, sum(shown)


def test_answerable_questions_keep_their_answer(engine: Engine) -> None:
    data = load_beir(DEVSET, "report")
    lost, right = [], []
    for q in data.queries:
        if q.off_topic:
            continue
        found = engine.searcher.search(q.title, q.body)
        lost.append(found.decision == "no_match")
        if found.hits:
            right.append(found.hits[0].thread.thread.id in data.relevant(q.id))
    # measured: 5 of 66 lost (7.6 %; the target is 3 %: not met), top-1 1.00
    assert _rate(lost) <= 0.10, sum(lost)
    assert _rate(right) >= 0.95
