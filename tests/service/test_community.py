"""Kudos for deflection: a helpful vote credits the answer's author; the leaderboard ranks
authors by the questions their answers deflected (GET /v1/community/leaders)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.config import Settings
from service.runtime import Engine
from tests.support import SAMPLE, auth

AUTHORS = {"t1": "maria.h", "t2": None, "t3": "maria.h", "t4": "joao_p"}


@pytest.fixture
def community(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    engine.upsert([t.model_copy(update={"answer_author": AUTHORS[t.id]}) for t in SAMPLE])
    with TestClient(create_app(settings, engine=engine)) as c:
        yield c


def _vote(c: TestClient, title: str, thread_id: str, helpful: bool = True) -> str:
    r = c.post("/v1/suggest", json={"title": title, "k": 4}, headers=auth("public"))
    shown = {s["thread_id"]: s for s in r.json()["suggestions"]}
    assert thread_id in shown, (title, list(shown))
    assert shown[thread_id]["answer_author"] == AUTHORS[thread_id]
    vote = {"request_id": r.json()["request_id"], "thread_id": thread_id, "helpful": helpful}
    assert c.post("/v1/feedback", json=vote, headers=auth("public")).status_code == 200
    return str(r.json()["request_id"])


def _leaders(c: TestClient, **params: str) -> list[tuple[str, int, int]]:
    r = c.get("/v1/community/leaders", params=params, headers=auth("public"))
    assert r.status_code == 200, r.text
    return [(x["author"], x["deflected"], x["helpful_votes"]) for x in r.json()["leaders"]]


def test_helpful_votes_credit_the_answers_author(community: TestClient) -> None:
    _vote(community, "Camera records to microSD card", "t3")
    _vote(community, "Reset the hub to factory settings", "t1")
    _vote(community, "Como reiniciar o hub de fábrica", "t4")
    _vote(community, "Bulb flickers with a wall dimmer", "t2")  # no author: nobody credited
    assert _leaders(community) == [("maria.h", 2, 2), ("joao_p", 1, 1)]
    assert _leaders(community, language="pt") == [("joao_p", 1, 1)]
    assert _leaders(community, limit="1") == [("maria.h", 2, 2)]
    assert _leaders(community, since="2999-01-01T00:00:00Z") == []


def test_no_credit_without_deflection(community: TestClient) -> None:
    _vote(community, "Camera records to microSD card", "t3", helpful=False)  # not helpful
    asked = _vote(community, "Como reiniciar o hub de fábrica", "t4")
    question = {"id": "q-1", "title": "Still resetting", "request_id": asked}
    assert community.post("/v1/questions", json=question, headers=auth("agent")).status_code == 201
    assert _leaders(community) == []  # the reader asked anyway: not deflected


def test_leaders_refuse_bad_parameters_by_name(community: TestClient) -> None:
    for params, field in (({"limit": "0"}, "limit"), ({"language": "Portuguese"}, "language"),
                          ({"since": "yesterday"}, "since")):  # fmt: skip
        r = community.get("/v1/community/leaders", params=params, headers=auth("public"))
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == field, params


def test_the_leaderboard_cannot_be_polled_for_one_readers_vote(
    settings: Settings, engine: Engine
) -> None:
    """Security N15: ``since`` at any resolution, answered live, made a feed of when each
    reader found which author helpful. Now: whole UTC days, answers reused for minutes."""
    engine.upsert([t.model_copy(update={"answer_author": AUTHORS[t.id]}) for t in SAMPLE])
    with TestClient(create_app(settings, engine=engine)) as c:
        _vote(c, "Camera records to microSD card", "t3")
        now = datetime.now(UTC)
        just_after = (now + timedelta(seconds=1)).isoformat()
        r = c.get("/v1/community/leaders", params={"since": just_after}, headers=auth("public"))
        assert r.json()["since"].startswith(now.date().isoformat() + "T00:00:00")
        assert _leaders(c, since=just_after) == [("maria.h", 1, 1)]  # the whole day counts
        _vote(c, "Reset the hub to factory settings", "t1")
        assert _leaders(c, since=just_after) == [("maria.h", 1, 1)]  # the same answer, reused


def test_one_vote_per_ipv6_reader_across_its_slash_64(settings: Settings, engine: Engine) -> None:
    """Security N15: votes were counted per full IPv6 address, so one subscriber could cast
    a vote per address of its /64."""
    engine.upsert([t.model_copy(update={"answer_author": AUTHORS[t.id]}) for t in SAMPLE])
    app = create_app(settings, engine=engine)
    results = []
    with TestClient(app):  # the app's lifespan, once; each reader is its own client
        for host in ("2001:db8:7:1::10", "2001:db8:7:1:ffff::2", "2001:db8:7:2::10"):
            c = TestClient(app, client=(host, 40000))
            r = c.post("/v1/suggest", json={"title": "Camera records to microSD card", "k": 4},
                       headers=auth("public"))  # fmt: skip
            vote = {"request_id": r.json()["request_id"], "thread_id": "t3", "helpful": True}
            results.append(c.post("/v1/feedback", json=vote, headers=auth("public")).json())
    assert [r["result"] for r in results] == ["created", "unchanged", "created"]
