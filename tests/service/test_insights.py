"""Knowledge gaps through the API and the CLI, on a stream with planted gaps (the hashing
encoder: the planted questions share their words; the multilingual case is
tests/service/test_slow_insights.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from service.cli.root import app
from service.config import Settings
from service.runtime import Engine
from tests.support import PLANTED, auth

NOISE = ["zzqx vvwy", "quux frobnicate widget", "lorem ipsum dolor", "?!", "..."]  # no words


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Only near-exact matches suggest (the 64-dim hashing encoder collides at 0.2)."""
    return settings.model_copy(update={"min_similarity": 0.7})


def _ask(client: TestClient, title: str, body: str = "") -> str:
    r = client.post("/v1/suggest", json={"title": title, "body": body}, headers=auth("public"))
    assert r.status_code == 200
    return str(r.json()["decision"])


def test_planted_gaps_are_found_with_their_questions(client: TestClient, loaded: Engine) -> None:
    # the test triage is crude (some planted questions go to staff): keep their text too
    loaded.settings = loaded.settings.model_copy(update={"gaps_keep_confidential": True})
    for qs in PLANTED.values():
        for q in qs:
            assert _ask(client, q) in ("no_match", "staff"), q  # the test triage is crude
    for q in NOISE:
        _ask(client, q)
    answered = _ask(client, "Reset the hub to factory settings", "The hub light blinks orange")
    assert answered == "suggest"  # found its answer: its text is not kept
    r = client.get("/v1/insights/gaps", headers=auth("agent"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["questions"] == sum(map(len, PLANTED.values())) + len(NOISE)
    gaps = body["gaps"]
    topic_of = {q: t for t, qs in PLANTED.items() for q in qs}
    found = {topic_of[g["questions"][0]] for g in gaps}
    assert found == set(PLANTED) and len(gaps) == 3
    for g in gaps:  # pure: every representative question is from the gap's topic
        assert {topic_of.get(q) for q in g["questions"]} == {topic_of[g["questions"][0]]}
        assert g["previous"] == 0 and g["trend"] == g["size"]
        assert sum(g["outcomes"].values()) == g["size"] and g["nearest_thread"] is not None
        assert set(g["outcomes"]) <= {"no_match", "staff"}
    garage = next(g for g in gaps if topic_of[g["questions"][0]] == "garage")
    assert {"garage", "opener"} <= set(garage["missing"]), garage  # the forum has no garage
    later = (datetime.now(UTC) + timedelta(days=8)).isoformat()
    r = client.get("/v1/insights/gaps", params={"until": later}, headers=auth("agent"))
    assert r.json()["gaps"] == []  # this week's gaps are the previous window there
    r = client.get("/v1/insights/gaps", params={"min_size": "1"}, headers=auth("agent"))
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "min_size"
    assert client.get("/v1/insights/gaps", headers=auth("public")).status_code == 403
    window = {"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}
    r = client.get("/v1/insights/gaps", params=window, headers=auth("agent"))
    assert r.status_code == 200 and r.json()["questions"] == 0  # an empty window
    ancient = {"since": "0001-01-02T00:00:00Z"}  # the previous window would start before year 1
    assert client.get("/v1/insights/gaps", params=ancient, headers=auth("agent")).status_code == 200
    for until in ("0001-01-01T00:00:00Z", "0011-01-01T00:00:00Z"):  # found by the schema fuzzer
        r = client.get("/v1/insights/gaps", params={"until": until}, headers=auth("agent"))
        assert r.status_code == 200, (until, r.text)
    # found by the fuzzer: moments before year 1 (or after 9999) once converted to UTC
    for path, field, moment in (
        ("/v1/insights/gaps", "since", "0001-01-01T00:00:00+00:01"),
        ("/v1/insights/gaps", "until", "9999-12-31T23:59:00-00:01"),
        ("/v1/insights/languages", "since", "0001-01-01T00:00:00+00:01"),
    ):
        r = client.get(path, params={field: moment}, headers=auth("agent"))
        assert r.status_code == 422, (path, field, r.text)
        assert r.json()["detail"][0]["field"] == field


def test_confidential_questions_keep_no_text(client: TestClient, loaded: Engine) -> None:
    """Security N8: a staff-routed suggest keeps its decision and language, not its text."""
    assert _ask(client, "refund to my card 4111 1111 1111 1111 please, Maria Silva") == "staff"
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    assert loaded.activity.unresolved(hour_ago, datetime.now(UTC)) == []
    r = client.get("/v1/insights/gaps", params={"min_size": "2"}, headers=auth("agent"))
    assert r.status_code == 200 and r.json()["questions"] == 0
    assert "Maria" not in r.text
    days = client.get("/v1/insights/daily", headers=auth("agent")).json()["rows"]
    assert sum(d["staff"] for d in days) == 1  # still counted


def test_confidential_questions_kept_redacted_when_asked(
    client: TestClient, loaded: Engine
) -> None:
    loaded.settings = loaded.settings.model_copy(update={"gaps_keep_confidential": True})
    card = "4111 1111 1111 1111"
    assert _ask(client, f"refund to my card {card} please") == "staff"
    stored = loaded.activity.unresolved(datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC))
    assert len(stored) == 1 and card not in stored[0].text and stored[0].outcome == "staff"


def test_cli_writes_markdown_and_a_chart(
    client: TestClient,
    loaded: Engine,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("data_dir", "model", "min_similarity", "triage_model_dir", "triage_policy"):
        monkeypatch.setenv(f"UNSOURCE_{name.upper()}", str(getattr(settings, name)))
    for qs in PLANTED.values():
        for q in qs:
            _ask(client, q)
    loaded.close()
    out = tmp_path / "report"
    r = CliRunner().invoke(app, ["insights", "gaps", "--out", str(out)])
    assert r.exit_code == 0, r.output
    text = (out / "gaps.md").read_text()
    assert text.count("## #") == 3 and "printer toner cartridge" in text
    assert (out / "gaps.png").stat().st_size > 1000


def test_daily_and_language_figures(client: TestClient, loaded: Engine) -> None:
    r = client.post(
        "/v1/suggest",
        json={"title": "Reset the hub to factory settings", "body": "The hub light blinks orange"},
        headers=auth("public"),
    ).json()
    assert r["decision"] == "suggest"
    vote = {
        "request_id": r["request_id"],
        "thread_id": r["suggestions"][0]["thread_id"],
        "helpful": True,
    }
    assert client.post("/v1/feedback", json=vote, headers=auth("public")).status_code == 200
    _ask(client, "zzqx vvwy")
    _ask(client, "Como reiniciar o roteador da operadora?")
    days = client.get("/v1/insights/daily", headers=auth("agent")).json()["rows"]
    assert len(days) == 1 and days[0]["key"] == datetime.now(UTC).date().isoformat()
    assert days[0]["suggest_count"] == 3 and days[0]["deflected"] == 1
    assert days[0]["deflection_rate"] == round(1 / (3 - days[0]["staff"]), 6)
    langs = {
        row["key"]: row
        for row in client.get("/v1/insights/languages", headers=auth("agent")).json()["rows"]
    }
    assert langs["pt"]["suggest_count"] == 1 and langs["en"]["deflected"] == 1
    assert sum(row["suggest_count"] for row in langs.values()) == 3
    r2 = client.get("/v1/insights/daily", params={"days": "0"}, headers=auth("agent"))
    assert r2.status_code == 422 and r2.json()["detail"][0]["field"] == "days"


def test_console_page_holds_no_data_and_sets_text_not_html(client: TestClient) -> None:
    page = client.get("/console")
    assert page.status_code == 200 and "staff console" in page.text
    assert page.headers["cache-control"] == "no-store"
    script = client.get("/console.js")
    assert script.status_code == 200 and "textContent" in script.text
    assert "innerHTML" not in page.text + script.text


def test_gaps_count_questions_the_suggestions_did_not_answer(
    client: TestClient, loaded: Engine
) -> None:
    """A reader who posted after seeing suggestions, or voted them not helpful, was not
    answered: the question joins the gaps with its outcome."""

    def shown(title: str) -> tuple[str, str]:
        r = client.post("/v1/suggest", json={"title": title}, headers=auth("public")).json()
        assert r["decision"] == "suggest", title
        return r["request_id"], r["suggestions"][0]["thread_id"]

    def vote(rid: str, tid: str, helpful: bool) -> None:
        v = {"request_id": rid, "thread_id": tid, "helpful": helpful}
        assert client.post("/v1/feedback", json=v, headers=auth("public")).status_code == 200

    title = "Reset the hub to factory settings"
    posted, _ = shown(title)
    q = {"id": "q-posted", "title": "still cannot reset", "request_id": posted}
    assert client.post("/v1/questions", json=q, headers=auth("agent")).status_code == 201
    vote(*shown(title), helpful=False)
    shown(title)  # no vote, no question: nothing says it failed
    r = client.get("/v1/insights/gaps", params={"min_size": "2"}, headers=auth("agent")).json()
    assert r["questions"] == 2 and r["sampled"] is False
    assert [g["outcomes"] for g in r["gaps"]] == [{"posted": 1, "not_helpful": 1}]


def test_a_window_is_clustered_from_a_bounded_sample(client: TestClient, loaded: Engine) -> None:
    """Security finding N2: the public fills the window; the gaps read the newest
    UNRESOLVED_MAX questions of it, each cut to QUESTION_CHARS, and say it sampled."""
    from index.activity import QUESTION_CHARS, UNRESOLVED_MAX

    now = datetime.now(UTC)
    for i in range(UNRESOLVED_MAX + 50):
        loaded.activity.log_suggest(
            f"r{i}", now - timedelta(seconds=i), "no_match", None, [], f"q{i} " + "x" * 5000, "en"
        )
    stored = loaded.activity.unresolved(now - timedelta(days=1), now + timedelta(seconds=1))
    assert len(stored) == UNRESOLVED_MAX
    assert max(len(u.text) for u in stored) == QUESTION_CHARS
    assert stored[0].text.startswith(f"q{UNRESOLVED_MAX - 1} ")  # the newest were kept
    r = client.get("/v1/insights/gaps", headers=auth("agent")).json()
    assert r["questions"] == UNRESOLVED_MAX and r["sampled"] is True


def test_gaps_md_renders_public_text_inert(tmp_path: Path) -> None:
    """Security finding N16: a question's image, HTML tag or link rendered live in gaps.md."""
    from service.cli import insights as insights_report
    from service.insights import Gap

    evil = (
        "![status](https://evil.example/pixel.png) <img src=x onerror=y> "
        "[official fix, sign in here](https://evil.example/login)"
    )
    gap = Gap(size=4, previous=0, trend=4, languages={"en": 4}, outcomes={"no_match": 4},
              questions=[evil], nearest_thread="t1", nearest_title="<b>Reset</b>")  # fmt: skip
    now = datetime.now(UTC)
    text = insights_report.write([gap], now, now, 4, tmp_path).read_text()
    for live in ("![status", "<img", "](http", "<b>"):
        assert live not in text, live
    assert "official fix, sign in here" in text  # the words are still there to read
