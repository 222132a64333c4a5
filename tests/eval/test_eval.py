import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from eval.datasets import load, load_beir
from eval.harness import abstention_curve, recommend
from service.cli.root import app

runner = CliRunner()


def test_abstention_curve_hand_computed() -> None:
    top = [(0.9, True), (0.8, False), (0.7, True), (0.5, False)]
    pts = {round(p.threshold, 2): (p.coverage, p.precision) for p in abstention_curve(top)}
    assert pts[0.9] == (0.25, 1.0)
    assert pts[0.8] == (0.5, 0.5)
    assert pts[0.7] == (0.75, pytest.approx(2 / 3))
    assert pts[0.5] == (1.0, 0.5)
    assert recommend(abstention_curve(top), 0.6).threshold == 0.7  # type: ignore[union-attr]
    assert recommend(abstention_curve(top), 1.01) is None


def _semeval_dir(root: Path) -> Path:
    d = root / "sem"
    d.mkdir()
    corpus = [
        {
            "id": "Q1_R1",
            "title": "cheap car rental in town",
            "body": "",
            "answer": "",
            "split": "dev",
        },
        {"id": "Q1_R2", "title": "best pizza place", "body": "", "answer": "", "split": "dev"},
        {
            "id": "Q2_R1",
            "title": "visa renewal documents",
            "body": "",
            "answer": "",
            "split": "dev",
        },
        {
            "id": "Q2_R2",
            "title": "football match tickets",
            "body": "",
            "answer": "",
            "split": "dev",
        },
    ]
    rows: dict[str, list[dict[str, Any]]] = {
        "corpus.jsonl": corpus,
        "queries.jsonl": [
            {"id": "Q1", "title": "car rental cheap", "body": "", "split": "dev"},
            {"id": "Q2", "title": "documents for visa renewal", "body": "", "split": "dev"},
        ],
        "qrels.jsonl": [
            {"query_id": "Q1", "thread_id": "Q1_R1", "relevance": 2},
            {"query_id": "Q2", "thread_id": "Q2_R1", "relevance": 1},
        ],
        # the relevant thread is listed last: the given order scores badly
        "candidates.jsonl": [
            {"query_id": "Q1", "thread_ids": ["Q1_R2", "Q1_R1"]},
            {"query_id": "Q2", "thread_ids": ["Q2_R2", "Q2_R1"]},
        ],
    }  # fmt: skip
    for name, items in rows.items():
        (d / name).write_text("".join(json.dumps(i) + "\n" for i in items))
    return d


@pytest.fixture
def hashing_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNSOURCE_MODEL", "hash:64")


def test_eval_retrieval_cli_writes_reports(tmp_path: Path, hashing_env: None) -> None:
    data, out = _semeval_dir(tmp_path), tmp_path / "out"
    r = runner.invoke(app, ["eval", "retrieval", "--data", str(data), "--split", "dev",
                            "--out", str(out)])  # fmt: skip
    assert r.exit_code == 0, r.output
    result = json.loads((out / "retrieval.json").read_text())
    assert result["map"] == 1.0  # lexical overlap puts the relevant thread first
    assert result["runs"]["given order (search engine)"]["map"] == 0.5
    assert set(result["runs"]) >= {"bm25 (FTS5)", "dense", "hybrid rrf", "final (rescore)"}
    assert (out / "retrieval.md").read_text().startswith("# Retrieval")
    assert (out / "retrieval.png").read_bytes()[:4] == b"\x89PNG"


def test_eval_abstention_cli(tmp_path: Path, hashing_env: None) -> None:
    data, out = _semeval_dir(tmp_path), tmp_path / "abs"
    r = runner.invoke(app, ["eval", "abstention", "--data", str(data), "--out", str(out)])
    assert r.exit_code == 0, r.output
    result = json.loads((out / "abstention.json").read_text())
    assert result["queries"] == 2 and result["precision_at_full_coverage"] == 1.0
    assert result["recommended_threshold"] == min(p["threshold"] for p in result["curve"])


def test_eval_bad_input_exits_2(tmp_path: Path, hashing_env: None) -> None:
    data = _semeval_dir(tmp_path)
    r = runner.invoke(app, ["eval", "retrieval", "--data", str(tmp_path / "nope")])
    assert r.exit_code == 2 and "--data" in r.output
    r = runner.invoke(app, ["eval", "retrieval", "--data", str(data), "--split", "test9"])
    assert r.exit_code == 2 and "split" in r.output
    r = runner.invoke(app, ["eval", "retrieval", "--data", str(data), "--protocol", "x"])
    assert r.exit_code == 2 and "--protocol" in r.output


def test_beir_loader(tmp_path: Path) -> None:
    d = tmp_path / "scifact"
    (d / "qrels").mkdir(parents=True)
    (d / "corpus.jsonl").write_text(json.dumps({"_id": "d1", "title": "T", "text": "body"}) + "\n")
    (d / "queries.jsonl").write_text(
        json.dumps({"_id": "q1", "text": "question"}) + "\n"
        + json.dumps({"_id": "q2", "text": "unjudged"}) + "\n"
    )  # fmt: skip
    (d / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    data = load(d, "test")
    assert data == load_beir(d, "test")
    assert [q.id for q in data.queries] == ["q1"] and data.relevant("q1") == {"d1"}
    assert data.corpus[0] == {"id": "d1", "title": "T", "body": "body", "answer": ""}


def test_finetune_triples_use_only_judged_candidates() -> None:
    from eval.datasets import Query, RetrievalSet
    from eval.finetune import triples

    data = RetrievalSet(
        "toy",
        [
            {"id": "a", "title": "Reset hub", "body": "how"},
            {"id": "b", "title": "Pizza", "body": ""},
            {"id": "c", "title": "Hub factory reset", "body": ""},
        ],
        [Query("q1", "How to reset the hub?", ""), Query("q2", "No judgements", "")],
        {"q1": {"a": 2, "c": 1}},
        {"q1": ["a", "b", "c"], "q2": ["b"]},
    )
    out = triples(data)
    assert [(t.question, t.positive, t.negative) for t in out] == [
        ("How to reset the hub?", "Reset hub. how", "Pizza"),
        ("How to reset the hub?", "Hub factory reset", "Pizza"),
    ]
