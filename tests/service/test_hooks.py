"""`POST /v1/hooks/discourse`: signed deliveries only, replays are no-ops, stale ones are
refused, and each event keeps the threads and the question queue in step with a (fake,
OpenAPI-validated) Discourse forum."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.config import Settings
from service.runtime import Engine, build_engine
from tests.discourse_fake import Forum, Post, Topic, serve
from tests.support import CountingEncoder

SECRET = "a-webhook-secret-of-some-length"
NOW = datetime.now(UTC).isoformat()


def _forum() -> Forum:
    return Forum(
        categories=[(1, "support", False), (2, "staff-only", True)],
        topics=[
            Topic(
                1,
                "How do I reset the hub?",
                1,
                [Post("alice", "<p>It blinks orange.</p>")],
                bumped_at=NOW,
            ),
        ],
    )


@pytest.fixture
def forum() -> Iterator[tuple[Forum, str]]:
    f = _forum()
    with serve(f) as url:
        yield f, url


@pytest.fixture
def hooked(settings: Settings, forum: tuple[Forum, str]) -> Iterator[tuple[TestClient, Engine]]:
    s = settings.model_copy(update={"discourse_webhook_secret": SECRET, "discourse_url": forum[1]})
    engine = build_engine(s, encoder=CountingEncoder(64))
    with TestClient(create_app(s, engine=engine)) as client:
        yield client, engine
    engine.close()


def _deliver(
    client: TestClient,
    event: str,
    payload: dict[str, Any],
    event_id: str,
    secret: str | None = SECRET,
) -> Any:
    raw = json.dumps(payload).encode()
    headers = {"X-Discourse-Event": event, "X-Discourse-Event-Id": event_id,
               "Content-Type": "application/json"}  # fmt: skip
    if secret is not None:
        digest = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
        headers["X-Discourse-Event-Signature"] = f"sha256={digest}"
    return client.post("/v1/hooks/discourse", content=raw, headers=headers)


def _topic(topic_id: int = 1, **kw: Any) -> dict[str, Any]:
    return {"topic": {"id": topic_id, "title": "How do I reset the hub?", "slug": "reset",
                      "archetype": "regular", "created_at": NOW, **kw}}  # fmt: skip


def _post(number: int, **kw: Any) -> dict[str, Any]:
    return {"post": {"id": 100 + number, "topic_id": 1, "post_number": number,
                     "created_at": NOW, "updated_at": NOW, **kw}}  # fmt: skip


def test_unsigned_or_wrongly_signed_deliveries_are_refused(
    hooked: tuple[TestClient, Engine],
) -> None:
    client, engine = hooked
    r = _deliver(client, "topic_created", _topic(), "e1", secret=None)
    assert r.status_code == 401 and r.json()["detail"][0]["field"] == "X-Discourse-Event-Signature"
    r = _deliver(client, "topic_created", _topic(), "e1", secret="not-the-secret-at-all")
    assert r.status_code == 401
    assert engine.activity.question("discourse-1") is None  # nothing applied


def test_a_new_topic_is_registered_and_a_replay_changes_nothing(
    hooked: tuple[TestClient, Engine],
) -> None:
    client, engine = hooked
    r = _deliver(client, "topic_created", _topic(), "e1")
    assert r.status_code == 200 and r.json()["result"] == "registered", r.text
    question = engine.activity.question("discourse-1")
    assert question is not None and question.triage["route"] == "community"
    again = _deliver(client, "topic_created", _topic(), "e1")
    assert again.json()["result"] == "duplicate"


def test_a_stale_delivery_is_refused(hooked: tuple[TestClient, Engine]) -> None:
    client, _ = hooked
    old = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    r = _deliver(client, "topic_created", _topic(created_at=old), "e-old")
    assert r.status_code == 400 and r.json()["error"] == "stale_delivery"
    r = _deliver(client, "post_edited", _post(2, updated_at=old), "e-old-edit")
    assert r.status_code == 400 and r.json()["error"] == "stale_delivery"


def test_replies_edits_and_solutions_keep_the_thread_current(
    hooked: tuple[TestClient, Engine], forum: tuple[Forum, str]
) -> None:
    client, engine = hooked
    f, _ = forum
    _deliver(client, "topic_created", _topic(), "e1")
    f.topics[0].posts.append(Post("bob", "<p>Unplug it for a minute.</p>"))
    r = _deliver(client, "post_created", _post(2), "e2")
    assert r.json()["result"] == "stored", r.text
    stored = engine.store.get("discourse-1")
    assert stored is not None and stored.thread.answer == "Unplug it for a minute."
    # two edits delivered out of order: the thread ends as the forum has it now
    f.topics[0].posts[1] = Post("bob", "<p>Hold the pinhole button for 15 s.</p>")
    _deliver(client, "post_edited", _post(2), "e4")
    _deliver(client, "post_edited", _post(2), "e3")
    stored = engine.store.get("discourse-1")
    assert stored is not None and stored.thread.answer == "Hold the pinhole button for 15 s."
    assert engine.searcher.search("How do I reset the hub?").hits[0].thread.thread.id == (
        "discourse-1"
    )
    f.topics[0].posts[1].accepted = True
    r = _deliver(client, "accepted_solution", {"solved": _post(2)["post"]}, "e5")
    assert "question answered" in r.json()["result"], r.text
    stored = engine.store.get("discourse-1")
    assert stored is not None and stored.thread.accepted
    question = engine.activity.question("discourse-1")
    assert question is not None and question.answered_at is not None


def test_a_staff_reply_answers_the_question(
    hooked: tuple[TestClient, Engine], forum: tuple[Forum, str]
) -> None:
    client, _ = hooked
    _deliver(client, "topic_created", _topic(), "e1")
    forum[0].topics[0].posts.append(Post("support", "<p>We are on it.</p>"))
    r = _deliver(client, "post_created", _post(2, staff=True), "e2")
    assert "question answered" in r.json()["result"], r.text


def test_a_topic_moved_to_a_private_category_or_deleted_is_removed(
    hooked: tuple[TestClient, Engine], forum: tuple[Forum, str]
) -> None:
    client, engine = hooked
    f, _ = forum
    f.topics[0].posts.append(Post("bob", "<p>Unplug it.</p>"))
    _deliver(client, "post_created", _post(2), "e1")
    assert engine.store.get("discourse-1") is not None
    f.topics[0].category_id = 2  # an old topic moved: its own times are old, still applied
    old = (datetime.now(UTC) - timedelta(days=300)).isoformat()
    r = _deliver(client, "topic_edited", _topic(category_id=2, created_at=old), "e2")
    assert r.json()["result"] == "removed (private category)", r.text
    assert engine.store.get("discourse-1") is None
    f.topics[0].category_id, f.topics[0].deleted = 1, True
    r = _deliver(client, "topic_destroyed", _topic(), "e3")
    assert r.json()["result"].startswith("not stored (deleted)"), r.text


def test_without_a_secret_the_route_is_not_there(client: TestClient) -> None:
    r = client.post("/v1/hooks/discourse", json=_topic())
    assert r.status_code == 404
