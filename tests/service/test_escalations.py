"""Forum questions: registration with triage, SLA per category, escalation list, webhook."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.config import ConfigError, Settings
from service.escalation import Escalations, verify
from service.experts import as_payload
from service.runtime import Engine
from tests.support import SAMPLE, auth

SECRET = "escalation-test-secret-0123456789abcdef"

NOW = datetime.now(UTC)


def _ago(hours: float) -> str:
    return (NOW - timedelta(hours=hours)).isoformat()


@pytest.fixture
def agent(settings: Settings, loaded: Engine) -> Iterator[TestClient]:
    sla = settings.model_copy(update={"sla_hours": {"default": 24, "billing": 2}})
    with TestClient(create_app(sla, engine=loaded), headers=auth("agent")) as c:
        yield c


def _register(c: TestClient, qid: str, hours_ago: float, category: str = "default", **kw: str):  # type: ignore[no-untyped-def]
    payload = {"id": qid, "title": f"Question {qid} about my hub", "category": category,
               "created_at": _ago(hours_ago), **kw}  # fmt: skip
    return c.post("/v1/questions", json=payload)


def test_questions_past_their_sla_are_escalated_oldest_first(agent: TestClient) -> None:
    assert _register(agent, "old", 30).status_code == 201
    assert _register(agent, "fresh", 1).status_code == 201
    assert _register(agent, "bill-late", 3, "billing").status_code == 201
    assert _register(agent, "bill-ok", 1, "billing").status_code == 201
    assert _register(agent, "older", 50).status_code == 201
    r = agent.get("/v1/escalations")
    assert r.status_code == 200
    ids = [q["id"] for q in r.json()["escalations"]]
    assert ids == ["older", "old", "bill-late"]
    first = r.json()["escalations"][0]
    assert first["overdue"] is True and first["sla_hours"] == 24
    assert first["triage"]["route"] in ("staff", "community") and "confidence" in first["triage"]
    late = r.json()["escalations"][2]
    assert late["sla_hours"] == 2

    r = agent.post("/v1/questions/old/answered", json={"thread_id": "t1"})
    assert r.status_code == 200 and r.json()["answered_at"] and r.json()["overdue"] is False
    ids = [q["id"] for q in agent.get("/v1/escalations").json()["escalations"]]
    assert ids == ["older", "bill-late"]
    queue = agent.get("/v1/escalations", params={"include_open": "true"}).json()["escalations"]
    assert [q["id"] for q in queue] == ["older", "bill-late", "bill-ok", "fresh"]  # oldest first
    assert [q["overdue"] for q in queue] == [True, True, False, False]
    page = agent.get("/v1/escalations", params={"include_open": "true", "limit": 2}).json()
    assert page["next"] == "bill-late"
    one = agent.get("/v1/questions/bill-late").json()
    assert one["overdue"] is True and one["sla_hours"] == 2 and one["notified"] is False
    assert agent.get("/v1/questions/old").json()["answered_at"] is not None
    missing = agent.get("/v1/questions/nope")
    assert missing.status_code == 404 and "nope" in missing.text
    assert agent.get("/v1/escalations", params={"limit": 1}).json()["count"] == 1


def test_registration_is_idempotent_redacted_and_triaged(agent: TestClient) -> None:
    card = "4111 1111 1111 1111"
    r = agent.post("/v1/questions", json={"id": "q1", "title": f"Refund to my card {card}"})
    assert r.status_code == 201
    body = r.json()
    assert card not in r.text and "[CARD]" in body["title"]
    assert body["triage"]["route"] == "staff" and body["overdue"] is False
    again = agent.post("/v1/questions", json={"id": "q1", "title": "Something else"})
    assert again.status_code == 200 and again.json()["title"] == body["title"]


def test_question_errors_name_the_field(agent: TestClient) -> None:
    cases = [
        ({"id": "q", "title": "t", "created_at": "2026-11-23T10:00:00"}, "created_at"),
        ({"id": "q", "title": "t", "category": "Billing Team"}, "category"),
        ({"id": "bad id", "title": "t"}, "id"),
        ({"id": "q", "title": ""}, "title"),
        ({"id": "q", "title": "t", "request_id": "nope"}, "request_id"),
        ({"id": "q", "title": "t\x00"}, "title"),  # PostgreSQL text holds no NUL
        ({"id": "q", "title": "t", "body": "a\x00b"}, "body"),
        ({"id": "q", "title": "t", "url": "https://x/\x00"}, "url"),
        # due = created_at + SLA: far ahead, past year 9999 (was a 500, OverflowError)
        ({"id": "q", "title": "t", "created_at": "9999-12-31T23:00:00Z"}, "created_at"),
        ({"id": "q", "title": "t", "created_at": _ago(-25)}, "created_at"),
    ]
    for payload, field in cases:
        r = agent.post("/v1/questions", json=payload)
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == field, payload
    r = agent.post("/v1/questions/unknown/answered", json={})
    assert r.status_code == 404
    assert agent.get("/v1/questions/q").status_code == 404  # nothing half-written
    assert _register(agent, "q", -23).status_code in (200, 201)  # a clock a little ahead
    r = agent.post("/v1/questions/q/answered", json={"at": "9999-12-31T23:00:00Z"})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "at"


def _seed(engine: Engine, qid: str, hours_ago: float) -> None:
    engine.activity.add_question(
        qid, f"{qid} question", "", "default", None, None, NOW - timedelta(hours=hours_ago), NOW,
        {"route": "community", "queue": None, "confidence": 0.9, "reasons": []},
    )  # fmt: skip


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []
    fail_first: ClassVar[int] = 0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        type(self).received.append((dict(self.headers), body))
        failing = len(type(self).received) <= type(self).fail_first
        self.send_response(500 if failing else 204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[tuple[str, type[_Hook]]]:
    handler = type("Hook", (_Hook,), {"received": [], "fail_first": 1})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", handler
    server.shutdown()


def test_webhook_is_sent_once_with_retry_and_backoff(
    settings: Settings, engine: Engine, hook: tuple[str, type[_Hook]]
) -> None:
    url, handler = hook
    conf = settings.model_copy(
        update={
            "escalation_webhook_url": url,
            "escalation_webhook_secret": "s3cret",
            "webhook_backoff_seconds": 60.0,
        }
    )
    clock = [NOW]
    esc = Escalations(engine.activity, conf, clock=lambda: clock[0])
    for qid, hours in (("late", 30), ("early", 2)):
        _seed(engine, qid, hours)
    assert esc.notify_once() == 0  # the endpoint answers 500 the first time
    assert len(handler.received) == 1
    assert esc.notify_once() == 0 and len(handler.received) == 1  # backing off
    clock[0] = NOW + timedelta(seconds=61)
    assert esc.notify_once() == 1 and len(handler.received) == 2
    clock[0] = NOW + timedelta(hours=5)
    assert esc.notify_once() == 0 and len(handler.received) == 2  # sent once only
    headers, body = handler.received[-1]
    payload = json.loads(body)
    assert payload["event"] == "question.sla_breached" and payload["question"]["id"] == "late"
    stamp = headers["x-unsource-timestamp"]
    delivery = headers["x-unsource-delivery"]
    assert delivery == "late:sla_breached"
    signed = f"{stamp}.{delivery}.".encode() + body
    mac = hmac.new(b"s3cret", signed, hashlib.sha256).hexdigest()
    assert headers["x-unsource-signature"] == f"sha256={mac}"
    # the signature covers the time: a replay later, or a changed body, does not verify
    lower = {k.lower(): v for k, v in headers.items()}
    sent_at = int(stamp)
    assert verify("s3cret", body, lower, now=sent_at + 10)
    assert not verify("s3cret", body, lower, now=sent_at + 301)
    assert not verify("s3cret", body + b" ", lower, now=sent_at)
    # security N13: nor does a replay within the tolerance under a fresh delivery id
    assert not verify("s3cret", body, {**lower, "x-unsource-delivery": "x:1"}, now=sent_at)
    assert not verify("s3cret", body, {k: v for k, v in lower.items() if "delivery" not in k}, 1)
    # "early" crosses its SLA later and gets its own notice
    clock[0] = NOW + timedelta(hours=23)
    assert esc.notify_once() == 1
    assert json.loads(handler.received[-1][1])["question"]["id"] == "early"


def test_webhook_gives_up_after_max_attempts(
    settings: Settings, engine: Engine, hook: tuple[str, type[_Hook]]
) -> None:
    url, handler = hook
    handler.fail_first = 100
    conf = settings.model_copy(
        update={"escalation_webhook_url": url, "webhook_max_attempts": 3,
                "webhook_backoff_seconds": 1.0}
    )  # fmt: skip
    clock = [NOW]
    outcomes: list[str] = []
    esc = Escalations(engine.activity, conf, clock=lambda: clock[0], on_attempt=outcomes.append)
    _seed(engine, "q", 30)
    for step in range(6):
        clock[0] = NOW + timedelta(seconds=10 * step)
        esc.notify_once()
    assert outcomes == ["failed", "failed", "gave_up"] and len(handler.received) == 3


def test_background_loop_delivers_without_blocking_requests(
    settings: Settings, loaded: Engine, hook: tuple[str, type[_Hook]]
) -> None:
    url, handler = hook
    handler.fail_first = 0
    conf = settings.model_copy(
        update={
            "escalation_webhook_url": url,
            "escalation_webhook_secret": SECRET,
            "escalation_check_seconds": 0.05,
        }
    )
    with TestClient(create_app(conf, engine=loaded), headers=auth("agent")) as c:
        r = _register(c, "stale", 48)
        assert r.status_code == 201 and r.json()["notified"] is False
        deadline = time.monotonic() + 10
        while not handler.received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(handler.received) == 1
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if c.get("/v1/escalations").json()["escalations"][0]["notified"]:
                break
            time.sleep(0.05)
        assert c.get("/v1/escalations").json()["escalations"][0]["notified"] is True


def test_1500_overdue_every_breach_is_delivered_and_listed(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Audit finding 6: with more than 1,000 overdue questions the loop re-read the same
    1,000 oldest (already notified) ones, so a newer breach was never delivered or listed."""
    conf = settings.model_copy(
        update={
            "escalation_webhook_url": "http://hook.invalid/x",
            "escalation_webhook_secret": SECRET,
        }
    )
    clock = [NOW]
    esc = Escalations(engine.activity, conf, clock=lambda: clock[0])
    for i in range(1500):
        _seed(engine, f"old-{i:04d}", 48)
    delivered: list[str] = []

    def post(_: str, payload: dict[str, Any], delivery: str) -> tuple[bool, str]:
        delivered.append(payload["question"]["id"])
        return True, ""

    monkeypatch.setattr(esc, "_post", post)
    assert esc.notify_once() == 1500
    _seed(engine, "new", 30)  # a new breach behind 1,500 notified ones
    assert esc.notify_once() == 1 and delivered[-1] == "new"
    assert esc.notify_once() == 0 and len(delivered) == 1501  # each exactly once
    with TestClient(create_app(conf, engine=engine), headers=auth("agent")) as c:
        seen: list[str] = []
        after = None
        while True:
            params: dict[str, Any] = {"limit": 1000, **({"after": after} if after else {})}
            page = c.get("/v1/escalations", params=params).json()
            seen += [q["id"] for q in page["escalations"]]
            after = page["next"]
            if after is None:
                break
        assert len(seen) == 1501 and len(set(seen)) == 1501 and "new" in seen
        r = c.get("/v1/escalations", params={"after": "nope"})
        assert r.status_code == 404 and "after" in r.text


def test_question_ids_in_paths_and_queries_are_checked(agent: TestClient) -> None:
    """Refused by name before the store sees them (PostgreSQL text holds no NUL)."""
    for url in ("/v1/questions/a%00b", "/v1/escalations?after=a%00b"):
        r = agent.get(url)
        assert r.status_code == 422, url
    r = agent.post("/v1/questions/a%00b/answered", json={})
    assert r.status_code == 422 and "question_id" in r.text


def _ask(engine: Engine, qid: str, title: str, hours_ago: float, route: str) -> None:
    triage: dict[str, Any] = {"route": route, "queue": None, "confidence": 0.9, "reasons": []}
    created = NOW - timedelta(hours=hours_ago)
    engine.activity.add_question(qid, title, "", "default", None, None, created, NOW, triage)


def test_experts_hear_first_staff_at_the_sla_and_confidential_questions_never_go_out(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    authors = {"t1": "maria.h", "t2": None, "t3": "maria.h", "t4": "joao_p"}
    engine.upsert([t.model_copy(update={"answer_author": authors[t.id]}) for t in SAMPLE])
    conf = settings.model_copy(
        update={
            "escalation_webhook_url": "http://hook.invalid/x",
            "escalation_webhook_secret": SECRET,
        }
    )
    clock = [NOW]
    esc = Escalations(
        engine.activity, conf, clock=lambda: clock[0], find_experts=partial(as_payload, engine)
    )
    posts: list[tuple[str, dict[str, Any]]] = []

    def post(_: str, payload: dict[str, Any], delivery: str) -> tuple[bool, str]:
        posts.append((delivery, payload))
        return True, ""

    monkeypatch.setattr(esc, "_post", post)
    _ask(engine, "hub", "Reset the hub to factory settings", 13, "community")  # past half
    _ask(engine, "card", "Reset the hub to factory settings", 13, "staff")  # confidential
    _ask(engine, "nobody", "zzqx vvwy", 13, "community")  # no answered thread near it
    _ask(engine, "fresh", "Reset the hub to factory settings", 1, "community")
    esc.notify_once()
    assert [d for d, _ in posts] == ["hub:experts_suggested"]
    event = posts[0][1]
    assert event["event"] == "question.experts_suggested"
    assert event["experts"][0]["author"] == "maria.h" and "t1" in event["experts"][0]["threads"]
    esc.notify_once()
    assert len(posts) == 1  # once
    clock[0] = NOW + timedelta(hours=12)  # 25 h: staff hear of all three; "fresh" is at 13 h
    esc.notify_once()
    assert sorted(d for d, _ in posts[1:]) == [
        "card:sla_breached", "fresh:experts_suggested", "hub:sla_breached", "nobody:sla_breached",
    ]  # fmt: skip
    with TestClient(create_app(conf, engine=engine), headers=auth("agent")) as c:
        shown = c.get("/v1/questions/hub/experts").json()
        assert shown["withheld"] is None and shown["experts"][0]["author"] == "maria.h"
        assert shown["language"] == "en"
        secret = c.get("/v1/questions/card/experts").json()
        assert secret["experts"] == [] and secret["withheld"].startswith("confidential")
        assert c.get("/v1/questions/none/experts").status_code == 404


@pytest.mark.parametrize("secret", [None, "", "short-secret-of-31-characters.."])
def test_a_webhook_url_needs_a_long_secret_to_serve(settings: Settings, secret: str | None) -> None:
    """Security N13: a webhook URL without a secret sent unsigned POSTs with no warning."""
    conf = settings.model_copy(
        update={
            "escalation_webhook_url": "https://helpdesk.example/hook",
            "escalation_webhook_secret": secret,
            "dev_mode": True,
        }
    )
    with pytest.raises(ConfigError, match="escalation_webhook_secret"):
        conf.check_serving()
    conf.escalation_webhook_secret = "x" * 32
    conf.check_serving()
