"""``unsource eval served``: dev questions through a server's /v1/suggest, triage included."""

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from eval import served
from service.cli.root import app

runner = CliRunner()
LUMIO = served.DEVSETS / "lumio"


def _q(kind: str = "answerable", answers: tuple[str, ...] = ("t1",)) -> served.Question:
    return served.Question("q1", "how do I reset it?", "en", kind, "lumio", frozenset(answers))


def test_report_questions_are_the_report_split_with_their_answers() -> None:
    qs = served.report_questions(LUMIO)
    kinds = {k: sum(q.kind == k for q in qs) for k in ("answerable", "unanswerable", "off_topic")}
    assert kinds == {"answerable": 66, "unanswerable": 40, "off_topic": 20}
    assert all(q.answers for q in qs if q.kind == "answerable")
    assert not any(q.answers for q in qs if q.kind != "answerable")
    assert {q.language for q in qs} == {"en", "pt", "es", "it"}


def test_a_rate_limited_question_is_asked_again_after_the_wait() -> None:
    answers = iter(
        [
            (429, {}, 0.25),
            (200, {"decision": "suggest", "suggestions": [{"thread_id": "t1"}]}, 1.0),
        ]
    )
    waits: list[float] = []
    out = served.ask(lambda payload: next(answers), _q(), sleep=waits.append)
    assert waits == [0.25]
    assert (out["decision"], out["top"], out["answers"]) == ("suggest", "t1", True)


@pytest.mark.parametrize(
    ("body", "kind", "answers"),
    [
        ({"decision": "suggest", "suggestions": [{"thread_id": "t2"}]}, "answerable", False),
        ({"decision": "no_match", "suggestions": []}, "answerable", None),
        ({"decision": "staff", "triage": {"queue": "account"}}, "answerable", None),
        ({"decision": "suggest", "suggestions": [{"thread_id": "t1"}]}, "unanswerable", None),
    ],
)
def test_an_answer_counts_only_when_the_first_thread_shown_answers(
    body: dict[str, Any], kind: str, answers: bool | None
) -> None:
    question = _q(kind, ("t1",) if kind == "answerable" else ())
    out = served.ask(lambda payload: (200, body, 1.0), question)
    assert out["answers"] is answers
    assert out["decision"] == body["decision"]


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("2", 2.0), ("0.5", 0.5), (None, 1.0), ("Wed, 21 Oct 2026 07:28:00 GMT", 1.0), ("-3", 0.0)],
)
def test_retry_after_reads_seconds_and_falls_back_on_a_date(
    header: str | None, seconds: float
) -> None:
    assert served.retry_after(header) == seconds


def test_a_server_error_is_not_counted_as_a_decision() -> None:
    with pytest.raises(RuntimeError, match="500 for q1"):
        served.ask(lambda payload: (500, {"detail": "boom"}, 1.0), _q())


def test_summary_and_markdown_count_each_decision() -> None:
    rows = [
        {"source": "lumio", "language": "en", "kind": "answerable", "decision": d, "answers": a}
        for d, a in [("suggest", True), ("suggest", False), ("no_match", None), ("staff", None)]
    ] + [
        {
            "source": "lumio",
            "language": "en",
            "kind": "unanswerable",
            "decision": "suggest",
            "answers": None,
        }
    ]
    summary = served.summarise(rows)
    assert summary["lumio/en"]["answerable"] == {
        "n": 4,
        "suggest": 2,
        "answered": 1,
        "no_match": 1,
        "staff": 1,
    }
    text = served.markdown(summary, "http://x")
    assert "| lumio/en | 1 of 4 | 1 of 4 | 1 of 4 | 1 of 1 | 0 of 1 |  |" in text


def test_cli_scores_a_devset_through_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command against a stand-in server: answers what a thread's id says, once with
    429 first; it writes the JSON and Markdown."""
    seen: list[dict[str, Any]] = []
    limited = {"done": False}

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/suggest" and request.headers["X-API-Key"] == "k"
        if not limited["done"]:
            limited["done"] = True
            return httpx.Response(429, headers={"Retry-After": "0"}, json={"detail": "slow"})
        payload = json.loads(request.content)
        seen.append(payload)
        return httpx.Response(200, json={"decision": "no_match", "suggestions": []})

    real = httpx.Client
    monkeypatch.setattr(
        httpx, "Client", lambda **kw: real(transport=httpx.MockTransport(handler), **kw)
    )
    out = tmp_path / "out"
    r = runner.invoke(
        app,
        [
            "eval",
            "served",
            "--url",
            "http://test",
            "--api-key",
            "k",
            "--devset",
            str(LUMIO),
            "--out",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    result = json.loads((out / "served.json").read_text())
    assert len(seen) == len(result["outcomes"]) == 126
    assert result["summary"]["lumio/en"]["answerable"] == {"n": 22, "no_match": 22, "answered": 0}
    assert "| lumio/pt |" in (out / "served.md").read_text()


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--url", "ftp://x"], "--url"),
        (["--devset", "/nonexistent"], "--devset"),
        (["--url", "http://127.0.0.1:9"], "--url: cannot reach"),
    ],
)
def test_cli_names_the_bad_option(args: list[str], field: str, tmp_path: Path) -> None:
    r = runner.invoke(app, ["eval", "served", *args, "--out", str(tmp_path / "o")])
    assert r.exit_code == 2
    assert field in r.output
    assert not (tmp_path / "o").exists()
