"""The product-community dev sets (eval/devsets) hold together: a question that names a
thread the corpus lacks, or that no split takes, would silently drop out of every report
(``load_beir`` keeps only judged and off-topic questions), and a blind set that shares a
question with a tune split would not be blind."""

from __future__ import annotations

import csv
import difflib
from pathlib import Path
from typing import Any

import pytest

from eval.datasets import jsonl_rows
from eval.relevance import DEFAULT_DEVSETS, DEVSETS, LANGUAGES, not_trained
from index.store.analysis import fold

BLIND = [name for name in DEFAULT_DEVSETS if name.startswith("lumio_blind")]


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return list(jsonl_rows(path))


def _qrels(folder: Path) -> dict[str, dict[str, set[str]]]:
    """split -> query id -> the threads that answer it."""
    out: dict[str, dict[str, set[str]]] = {}
    for path in sorted((folder / "qrels").glob("*.tsv")):
        with path.open(encoding="utf-8") as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                out.setdefault(path.stem, {}).setdefault(row["query-id"], set()).add(
                    row["corpus-id"]
                )
    return out


@pytest.mark.parametrize("name", DEFAULT_DEVSETS)
def test_every_question_is_judged_against_threads_the_corpus_holds(name: str) -> None:
    folder = DEVSETS / name
    corpus = {d["_id"] for d in _jsonl(folder / "corpus.jsonl")}
    queries = _jsonl(folder / "queries.jsonl")
    unanswerable = _jsonl(folder / "unanswerable.jsonl")
    qrels = _qrels(folder)
    judged = {qid: split for split, rows in qrels.items() for qid in rows}
    ids = [q["_id"] for q in queries] + [u["_id"] for u in unanswerable]
    assert len(ids) == len(set(ids)), "a question id repeats"
    for split, rows in qrels.items():
        for qid, threads in rows.items():
            assert threads <= corpus, (split, qid, threads - corpus)
    for q in queries:
        assert q["language"] in LANGUAGES, q
        assert q["_id"] in judged or q.get("off_topic"), f"{q['_id']} is in no qrels split"
        if q["_id"] in judged and "split" in q:
            assert q["split"] == judged[q["_id"]], q
    for u in unanswerable:
        assert u["language"] in LANGUAGES and u["topic"] and u["split"] in ("tune", "report"), u
        assert u["_id"] not in judged, u


def test_questions_kept_out_of_training_are_tune_questions() -> None:
    """eval/devsets/not_trained.txt names questions of a tune split (a report question
    there would say nothing, a misspelt id would train on what it meant to leave out)."""
    tune: set[str] = set()
    for name in ("lumio", "velora"):
        folder = DEVSETS / name
        tune |= {f"{name}/{q}" for q in _qrels(folder).get("tune", {})}
        tune |= {
            f"{name}/{u['_id']}"
            for u in _jsonl(folder / "unanswerable.jsonl")
            if u["split"] == "tune"
        }
    held = not_trained()
    assert len(held) == 148 and held <= tune, sorted(held - tune)[:5]


@pytest.mark.parametrize("name", BLIND)
def test_blind_sets_are_report_only_on_the_demo_corpus(name: str) -> None:
    folder = DEVSETS / name
    demo = (DEVSETS / "lumio" / "corpus.jsonl").read_bytes()
    assert (folder / "corpus.jsonl").read_bytes() == demo
    assert not _qrels(folder).get("tune")
    assert {u["split"] for u in _jsonl(folder / "unanswerable.jsonl")} == {"report"}
    texts = [q["text"] for q in _jsonl(folder / "queries.jsonl")]
    texts += [u["text"] for u in _jsonl(folder / "unanswerable.jsonl")]
    langs = [q["language"] for q in _jsonl(folder / "queries.jsonl")]
    assert sorted(set(langs)) == sorted(LANGUAGES)  # every language asks
    assert len(texts) == len({fold(t) for t in texts})


# pairs at difflib >= 0.9 written before this check existed (a reported question and the
# tune question it nearly repeats); the blind sets' numbers for these five may be
# optimistic for a model trained on the tune side (docs/evaluation.md)
KNOWN_NEAR = {
    ("lumio_blind3/b3-pt-09", "lumio/pt-same-05"),
    ("lumio_blind/bl-es-02", "lumio/es-tune-13"),
    ("lumio_blind2/b2-es-07", "lumio/es-t24-03"),
    ("lumio_blind3/b3-es-08", "lumio/es-t24-07"),
    ("lumio_blind2/b2-pt-02", "lumio/pt-tune-10"),
}
NEAR = 0.9


def _split_questions() -> tuple[dict[str, str], list[tuple[str, str]]]:
    """(tune question -> where, [(reported question, where)]), case- and accent-folded;
    off-topic questions (another forum's, asked of both communities) left out."""
    tune: dict[str, str] = {}
    reported: list[tuple[str, str]] = []
    for name in DEFAULT_DEVSETS:
        folder = DEVSETS / name
        rows = _jsonl(folder / "queries.jsonl") + _jsonl(folder / "unanswerable.jsonl")
        for row in (r for r in rows if not r.get("off_topic")):
            key = " ".join(fold(row["text"]).split()).strip("¿¡?!. ")
            where = f"{name}/{row['_id']}"
            if row.get("split") == "tune":
                tune[key] = where
            else:
                reported.append((key, where))
    return tune, reported


def test_no_reported_question_is_a_tune_question_word_for_word() -> None:
    """A report or blind question repeated in a tune split would score what was trained
    on. (Two report questions alike only count twice.)"""
    tune, reported = _split_questions()
    assert len(tune) > 100 and len(reported) > 400  # both sides were read
    repeated = [(where, tune[key]) for key, where in reported if key in tune]
    assert not repeated, repeated


def test_no_new_reported_question_nearly_repeats_a_tune_question() -> None:
    """The same at difflib ratio >= ``NEAR`` (a word added or changed), but for the pairs
    known before the check: a new dev question must be worded apart from the tune ones."""
    tune, reported = _split_questions()
    near = set()
    match = difflib.SequenceMatcher(autojunk=False)
    for other, there in tune.items():
        match.set_seq2(other)  # analysed once, compared with every reported question
        for key, where in reported:
            match.set_seq1(key)
            if (
                match.real_quick_ratio() >= NEAR
                and match.quick_ratio() >= NEAR
                and match.ratio() >= NEAR
            ):
                near.add((where, there))
    assert near - KNOWN_NEAR == set(), near - KNOWN_NEAR
    assert near >= KNOWN_NEAR  # a pair reworded since: drop it from KNOWN_NEAR
