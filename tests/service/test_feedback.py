"""Request ids, feedback, the ranking prior and /v1/stats."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from index.activity import ActivityStore
from index.store.factory import open_store
from index.store.protocol import Row
from retrieval.prior import Signals, apply_prior, prior
from service.api.lifespan import retention
from service.runtime import Engine
from tests.support import auth, make_thread


def _suggest(client: TestClient, title: str) -> dict:
    r = client.post("/v1/suggest", json={"title": title, "k": 3}, headers=auth("public"))
    assert r.status_code == 200
    assert r.headers["x-request-id"] == r.json()["request_id"]
    return r.json()


def _feedback(client: TestClient, rid: str, tid: str, helpful: bool) -> tuple[int, dict]:
    r = client.post(
        "/v1/feedback",
        json={"request_id": rid, "thread_id": tid, "helpful": helpful},
        headers=auth("public"),
    )
    return r.status_code, r.json()


def test_feedback_moves_stats(client: TestClient) -> None:
    empty = client.get("/v1/stats").json()
    assert empty["suggest_count"] == 0 and empty["helpful_rate"] is None

    hit = _suggest(client, "Camera records to microSD card")
    miss = _suggest(client, "zzqx vvwy")
    staff = _suggest(client, "I was charged twice, refund to card 4111 1111 1111 1111")
    assert (hit["decision"], miss["decision"], staff["decision"]) == (
        "suggest",
        "no_match",
        "staff",
    )
    top = hit["suggestions"][0]["thread_id"]

    assert _feedback(client, hit["request_id"], top, True) == (200, {"result": "created"})
    s = client.get("/v1/stats").json()
    assert s["suggest_count"] == 3 and s["decisions"] == {"suggest": 1, "no_match": 1, "staff": 1}
    assert s["staff_rate"] == round(1 / 3, 6) and s["no_match_rate"] == round(1 / 3, 6)
    assert (s["helpful"], s["unhelpful"], s["helpful_rate"]) == (1, 0, 1.0)
    assert s["deflected"] == 1 and s["deflection_estimate"] == 0.5  # 1 of 2 non-staff

    # the same vote again changes nothing; flipping it moves the counts
    assert _feedback(client, hit["request_id"], top, True)[1] == {"result": "unchanged"}
    assert _feedback(client, hit["request_id"], top, False)[1] == {"result": "changed"}
    s = client.get("/v1/stats").json()
    assert (s["helpful"], s["unhelpful"], s["deflected"]) == (0, 1, 0)
    assert _feedback(client, hit["request_id"], top, True)[1] == {"result": "changed"}

    # the asker posted anyway: not a deflection
    r = client.post(
        "/v1/questions",
        json={"id": "posted-1", "title": "Camera to microSD", "request_id": hit["request_id"]},
    )
    assert r.status_code == 201
    s = client.get("/v1/stats").json()
    assert s["deflected"] == 0 and s["questions_posted"] == 1

    later = client.get("/v1/stats", params={"since": "2999-01-01T00:00:00Z"}).json()
    assert later["suggest_count"] == 0 and later["questions_posted"] == 0


def test_feedback_errors(client: TestClient) -> None:
    hit = _suggest(client, "Camera records to microSD card")
    code, body = _feedback(client, "f" * 32, "t3", True)
    assert code == 404
    code, body = _feedback(client, hit["request_id"], "t2-not-shown", True)
    assert code == 422 and body["detail"][0]["field"] == "thread_id"
    code, body = _feedback(client, "not-hex", "t3", True)
    assert code == 422 and body["detail"][0]["field"] == "request_id"


def test_prior_is_zero_without_signals_and_ordered() -> None:
    assert prior(Signals()) == 0.0
    assert prior(Signals(accepted=True)) > 0 > prior(Signals(unhelpful=3))
    assert prior(Signals(helpful=10)) > prior(Signals(helpful=1)) > 0
    assert prior(Signals(unhelpful=1000)) >= -1.0 and prior(Signals(True, 1000, 1000)) <= 1.0
    fused = {1: 0.5, 2: 0.5}
    assert apply_prior(fused, {}, 0.05) == fused
    moved = apply_prior(fused, {2: Signals(helpful=4)}, 0.05)
    assert moved[2] > moved[1] == 0.5


def test_helpful_feedback_lifts_a_thread_over_its_twin(client: TestClient, loaded: Engine) -> None:
    twins = [
        make_thread("twin-a", "Camera night mode looks grainy", answer="Open the app settings"),
        make_thread("twin-b", "Camera night mode looks grainy", answer="Open the app settings"),
    ]
    loaded.upsert(twins)
    first = _suggest(client, "Camera night mode looks grainy")
    order = [s["thread_id"] for s in first["suggestions"][:2]]
    assert first["decision"] == "suggest", first
    assert set(order) == {"twin-a", "twin-b"}
    loser = order[1]
    for _ in range(3):
        rid = _suggest(client, "Camera night mode looks grainy")["request_id"]
        assert _feedback(client, rid, loser, True)[0] == 200
    again = _suggest(client, "Camera night mode looks grainy")
    assert again["suggestions"][0]["thread_id"] == loser


def test_signals_list_only_threads_the_community_has_judged(
    client: TestClient, loaded: Engine
) -> None:
    loaded.upsert([make_thread("judged", "Hub pairing mode", accepted=True, answer_votes=2)])
    rid = _suggest(client, "Camera records to microSD card")["request_id"]
    assert _feedback(client, rid, "t3", False)[0] == 200
    pks = loaded.store.pks_for_ids(["judged", "t1", "t3"])
    got = loaded.signals(list(pks.values()))
    assert got == {
        pks["judged"]: Signals(accepted=True, votes=2),
        pks["t3"]: Signals(unhelpful=1),
    }  # t1: no signal, no entry, a prior of 0 (as apply_prior treats a missing entry)


def test_one_vote_per_reader_and_thread_whatever_the_request(
    client: TestClient, loaded: Engine
) -> None:
    """Audit finding 15: one reader cast 31 helpful votes in 40 requests."""
    votes = []
    for _ in range(31):
        hit = _suggest(client, "Camera records to microSD card")
        top = hit["suggestions"][0]["thread_id"]
        votes.append(_feedback(client, hit["request_id"], top, True)[1]["result"])
    assert votes[0] == "created" and set(votes[1:]) == {"unchanged"}
    assert loaded.activity.feedback_counts([top])[top] == (1, 0)
    # the reader changes their mind: still one vote
    again = _suggest(client, "Camera records to microSD card")
    assert _feedback(client, again["request_id"], top, False)[1]["result"] == "changed"
    assert loaded.activity.feedback_counts([top])[top] == (0, 1)
    # another reader (another client address) has a vote of their own
    other = TestClient(client.app, client=("198.51.100.9", 5000))
    r = other.post("/v1/suggest", json={"title": "Camera records to microSD card"},
                   headers=auth("public"))  # fmt: skip
    vote = {"request_id": r.json()["request_id"], "thread_id": top, "helpful": True}
    r = other.post("/v1/feedback", headers=auth("public"), json=vote)
    assert r.json()["result"] == "created"
    assert loaded.activity.feedback_counts([top])[top] == (1, 1)


def test_retention_purges_old_log_rows_and_votes_but_keeps_thread_totals(
    tmp_path: Path,
) -> None:
    activity = ActivityStore.open(None, tmp_path / "activity.db")
    now = datetime.now(UTC)
    old, recent = now - timedelta(days=100), now - timedelta(days=1)
    activity.log_suggest("r-old", old, "suggest", None, ["t1"])
    activity.log_suggest("r-new", recent, "suggest", None, ["t1"])
    activity.record_feedback("r-old", "t1", True, old, "forum@10.0.0.1")
    activity.record_feedback("r-new", "t1", True, recent, "forum@10.0.0.2")
    assert activity.purge(now - timedelta(days=90)) == (1, 1)
    assert activity.suggested("r-old") is None and activity.suggested("r-new") == ["t1"]
    assert activity.feedback_counts(["t1"]) == {"t1": (2, 0)}  # totals name no reader
    stats = activity.stats(None)
    assert stats.suggest_count == 1 and stats.helpful == 1
    assert activity.purge(now - timedelta(days=90)) == (0, 0)
    activity.log_suggest("r-newer", now, "suggest", None, ["t1"])
    retention(activity, days=1, owner="replica-a")  # the hourly job: older than a day goes
    assert activity.suggested("r-new") is None
    activity.log_suggest("r-old-2", old, "suggest", None, ["t1"])
    retention(activity, days=1, owner="replica-b")  # A holds this round's lease: B skips
    assert activity.suggested("r-old-2") == ["t1"]
    retention(activity, days=1, owner="replica-a")
    assert activity.suggested("r-old-2") is None and activity.suggested("r-newer") == ["t1"]
    activity.close()


def test_signals_are_cached_until_a_write_or_their_ttl(
    client: TestClient, loaded: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.signals import CommunitySignals

    now = [0.0]
    signals = CommunitySignals(loaded.store, loaded.activity, ttl=10.0, clock=lambda: now[0])
    reads: list[int] = []
    read = signals._read

    def counting(pks: Sequence[int]) -> dict[int, Signals]:
        reads.append(len(pks))
        return read(pks)

    monkeypatch.setattr(signals, "_read", counting)
    pks = loaded.store.pks_for_ids(["t1", "t3"])
    t1, t3 = pks["t1"], pks["t3"]
    assert signals([t1, t3]) == {} and reads == [2]
    assert signals([t1, t3]) == {} and reads == [2]  # cached, threads without signals too
    first = _suggest(client, "Camera records to microSD card")["request_id"]
    assert _feedback(client, first, "t3", True)[0] == 200  # a vote through this process
    assert signals([t1, t3]) == {t3: Signals(helpful=1)} and reads == [2, 2]
    # a vote through another replica (its own activity store on the same database)
    second = _suggest(client, "Camera records to microSD card")["request_id"]
    other = ActivityStore.open(None, loaded.settings.activity_path)
    other.record_feedback(second, "t3", True, datetime.now(UTC), reader="another reader")
    other.close()
    assert signals([t3]) == {t3: Signals(helpful=1)}  # not seen before the ttl
    now[0] = 10.5
    assert signals([t3]) == {t3: Signals(helpful=2)} and reads == [2, 2, 1]
    loaded.upsert([make_thread("t1", "Reset the hub", accepted=True)])  # a write by this process
    assert signals([t1, t3]) == {t1: Signals(accepted=True), t3: Signals(helpful=2)}
    assert reads[-1] == 2
    # a thread written through another replica (its own store on the same database)
    replica = open_store(loaded.settings.database_url, loaded.settings.database_path)
    replica.upsert([Row(make_thread("t3", "Camera records to microSD card", answer_votes=4),
                        "h", "m", np.zeros(0, dtype=np.float32))])  # fmt: skip
    replica.close()
    assert signals([t3]) == {t3: Signals(helpful=2)} and reads[-1] == 2  # not before the ttl
    now[0] = 21.0
    assert signals([t3]) == {t3: Signals(votes=4, helpful=2)}
