"""``unsource eval gaps``: the planted-topic scoring, on a tiny deterministic encoder."""

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from eval.gaps import GAPS, STREAMS, evaluate, load_stream
from service.cli.root import app

runner = CliRunner()
AXES = {"lock": 0, "vacuum": 1, "gift": 2}


def _one_hot(texts: Sequence[str]) -> np.ndarray:
    """A word's axis (the questions of a topic share it); anything else its own axis."""
    out = np.zeros((len(texts), 16), dtype=np.float32)
    for i, text in enumerate(texts):
        hit = [a for w, a in AXES.items() if w in text]
        out[i, hit[0] if hit else 3 + i % 13] = 1.0
    return out


def _rows(topic: str, word: str, n: int = 8) -> list[dict[str, object]]:
    langs = ["en", "pt", "es", "it"]
    return [{"topic": topic, "language": langs[i % 4], "text": f"{word} {i}"} for i in range(n)]


def test_each_planted_topic_is_found_once() -> None:
    rows = (
        _rows("lock", "lock")
        + _rows("vacuum", "vacuum")
        + [{"topic": None, "language": "en", "text": "alone"}]
    )
    result = evaluate(rows, _one_hot)
    assert (result["found"], result["topics"]) == (2, 2)
    assert result["per_topic"]["lock"]["gaps"] == [{"lock": 8}]


def test_merged_topics_and_one_language_are_not_found() -> None:
    # both topics on one axis: one gap of 16, neither topic is 75 % of it
    merged = _rows("lock", "lock") + _rows("other-lock", "lock")
    result = evaluate(merged, _one_hot)
    assert result["found"] == 0 and result["gaps"] == 1
    english = [{**r, "language": "en"} for r in _rows("gift", "gift")]
    assert evaluate(english, _one_hot)["found"] == 0  # one gap, but a single language


def test_the_shipped_streams_load() -> None:
    for name in STREAMS:
        rows = load_stream(GAPS / f"{name}.jsonl")
        topics = {r["topic"] for r in rows if r["topic"]}
        assert len(topics) >= 4
        for t in topics:  # each planted topic is asked in all four languages
            assert {r["language"] for r in rows if r["topic"] == t} == {"en", "pt", "es", "it"}


def test_cli_writes_reports_and_refuses_bad_streams(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UNSOURCE_TRIAGE_ENCODER", "hash:64")
    stream = tmp_path / "s.jsonl"
    stream.write_text("\n".join(json.dumps(r) for r in _rows("lock", "lock")) + "\n")
    out = tmp_path / "out"
    r = runner.invoke(app, ["eval", "gaps", "--stream", str(stream), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert json.loads((out / "gaps.json").read_text())["s"]["topics"] == 1
    assert "| s | **all** |" in (out / "gaps.md").read_text()
    r = runner.invoke(app, ["eval", "gaps", "--stream", str(tmp_path / "nope.jsonl")])
    assert r.exit_code == 2 and "--stream" in r.output
    stream.write_text(json.dumps({"topic": "x", "text": ""}) + "\n")
    r = runner.invoke(app, ["eval", "gaps", "--stream", str(stream)])
    assert r.exit_code == 2 and "text" in r.output
    stream.write_text("{not json\n")
    r = runner.invoke(app, ["eval", "gaps", "--stream", str(stream)])
    assert r.exit_code == 2 and "--stream" in r.output
