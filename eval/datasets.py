"""Loaders for labelled retrieval sets: SemEval-2016 Task 3 JSONL and BEIR layouts."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from index.errors import ValidationFailed


@dataclass(frozen=True)
class Query:
    id: str
    title: str
    body: str = ""
    language: str = ""  # BEIR sets may give each query (and document) a language
    off_topic: bool = False  # no document answers it (abstention sets)


@dataclass
class RetrievalSet:
    """Queries, graded qrels (query -> doc -> relevance), and optional candidate lists."""

    name: str
    corpus: list[dict[str, Any]]
    queries: list[Query]
    qrels: dict[str, dict[str, int]]
    candidates: dict[str, list[str]] = field(default_factory=dict)

    def relevant(self, query_id: str) -> set[str]:
        return {d for d, r in self.qrels.get(query_id, {}).items() if r > 0}


def jsonl_rows(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSONL file, one a line (blank lines skipped); a line that is
    not JSON is a ``ValidationFailed`` naming the file and line."""
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValidationFailed([(f"{path}:{number}", "-", exc.msg)]) from exc


def _require(path: Path) -> Path:
    if not path.is_file():
        raise ValidationFailed([(str(path), "data", "file not found")])
    return path


def load_semeval(directory: Path, split: str) -> RetrievalSet:
    """``corpus/queries/qrels/candidates.jsonl``; queries filtered by ``split``.

    The corpus is returned whole (all splits) so that the full-corpus protocol searches
    the pooled threads; candidates and qrels are restricted to the split's queries.
    """
    directory = Path(directory)
    queries = [
        Query(q["id"], q.get("title", ""), q.get("body", ""))
        for q in jsonl_rows(_require(directory / "queries.jsonl"))
        if q.get("split") == split
    ]
    if not queries:
        raise ValidationFailed([(str(directory), "split", f"no queries with split {split!r}")])
    wanted = {q.id for q in queries}
    qrels: dict[str, dict[str, int]] = {}
    for r in jsonl_rows(_require(directory / "qrels.jsonl")):
        if r["query_id"] in wanted:
            qrels.setdefault(r["query_id"], {})[r["thread_id"]] = int(r["relevance"])
    candidates = {}
    cand_path = directory / "candidates.jsonl"
    if cand_path.is_file():
        candidates = {
            c["query_id"]: list(c["thread_ids"])
            for c in jsonl_rows(cand_path)
            if c["query_id"] in wanted
        }
    corpus = list(jsonl_rows(_require(directory / "corpus.jsonl")))
    return RetrievalSet(f"semeval2016/{split}", corpus, queries, qrels, candidates)


def load_beir(directory: Path, split: str) -> RetrievalSet:
    """BEIR: ``corpus.jsonl`` (_id, title, text; optional answer, language),
    ``queries.jsonl`` (_id, text; optional language, and ``off_topic: true`` with a
    ``split`` for questions nothing answers), ``qrels/{split}.tsv`` (query-id, corpus-id,
    score, with a header row)."""
    directory = Path(directory)
    qrels: dict[str, dict[str, int]] = {}
    with _require(directory / "qrels" / f"{split}.tsv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    queries = [
        Query(
            str(q["_id"]),
            q.get("text", ""),
            language=q.get("language", ""),
            off_topic=bool(q.get("off_topic")),
        )
        for q in jsonl_rows(_require(directory / "queries.jsonl"))
        if str(q["_id"]) in qrels or (q.get("off_topic") and q.get("split", split) == split)
    ]
    corpus = [
        {
            "id": str(d["_id"]),
            "title": d.get("title", "") or "",
            "body": d.get("text", ""),
            "answer": d.get("answer", ""),
            **({"language": d["language"]} if d.get("language") else {}),
        }
        for d in jsonl_rows(_require(directory / "corpus.jsonl"))
    ]
    return RetrievalSet(f"beir/{directory.name}/{split}", corpus, queries, qrels)


def load(directory: Path, split: str) -> RetrievalSet:
    """Detect the layout: BEIR if a ``qrels/`` folder exists, else SemEval JSONL."""
    if (Path(directory) / "qrels").is_dir():
        return load_beir(directory, split)
    return load_semeval(directory, split)
