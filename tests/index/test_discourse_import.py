"""`unsource import discourse` against a local fake Discourse whose every response
validates against Discourse's published OpenAPI document (tests/discourse_fake.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from index.store.factory import open_store
from service.cli.root import app
from tests.discourse_fake import Forum, Post, Topic, serve

KEY = "discourse-read-key"


def _forum() -> Forum:
    q = Post("alice", "<p>My hub blinks orange. How do I <b>reset</b> it?</p>")
    return Forum(
        categories=[(1, "support", False), (2, "staff-only", True)],
        topics=[
            Topic(
                1,
                "How do I reset the hub?",
                1,
                [
                    q,
                    Post("bob", "<p>Unplug it?</p>", likes=1),
                    Post("carol", "<p>Hold the pinhole button for 15 s.</p>", accepted=True),
                ],
            ),
            Topic(
                2,
                "Best bulbs for a wall dimmer?",
                1,
                [
                    Post("dave", "<p>Mine flicker.</p>"),
                    Post("dan", "<p>Use the trailing-edge dimmer.</p>", likes=5),
                    Post("erin", "<p>Any dimmer works.</p>", likes=2),
                ],
                tags=["bulbs"],
            ),
            Topic(3, "Salary review for the team", 2, [q, Post("boss", "<p>Private.</p>")]),
            Topic(
                4,
                "Your order",
                0,
                [q, Post("agent", "<p>PM reply</p>")],
                archetype="private_message",
            ),
            Topic(5, "Hidden topic", 1, [q, Post("x", "<p>hidden answer</p>")], visible=False),
            Topic(6, "Deleted topic", 1, [q, Post("x", "<p>gone</p>")], deleted=True),
            Topic(7, "Nobody answered yet", 1, [q]),
        ],
        api_key=KEY,
        rate_limited={"/latest.json?page=1"},
    )


def _import(tmp_path: Path, url: str, *extra: str, key: str = KEY) -> tuple[int, str]:
    env = {"UNSOURCE_DATA_DIR": str(tmp_path / "data"), "UNSOURCE_MODEL": "hash:64"}
    args = ["import", "discourse", "--url", url, "--api-key", key, *extra]
    r = CliRunner().invoke(app, args, env=env)
    return r.exit_code, r.output


def _stored(tmp_path: Path) -> dict[str, object]:
    store = open_store(None, tmp_path / "data" / "unsource.db")
    try:
        ids = [f"discourse-{i}" for i in range(1, 8)]
        return {i: s.thread for i in ids if (s := store.get(i)) is not None}
    finally:
        store.close()


def test_topics_become_threads_and_private_ones_never_do(tmp_path: Path) -> None:
    forum = _forum()
    with serve(forum) as url:
        code, out = _import(tmp_path, url)
    assert code == 0, out
    assert "imported 2 threads" in out, out
    for reason in ("private category", "personal message", "unlisted", "deleted", "no reply"):
        assert reason in out, (reason, out)
    assert "rate limited 1 times" in out  # the 429 was waited out and retried
    threads = _stored(tmp_path)
    assert set(threads) == {"discourse-1", "discourse-2"}
    reset = threads["discourse-1"]
    assert reset.answer == "Hold the pinhole button for 15 s." and reset.accepted  # type: ignore[attr-defined]
    assert reset.answer_author == "carol" and reset.body.startswith("My hub blinks")  # type: ignore[attr-defined]
    assert reset.url == f"{url}/t/topic-1/1"  # type: ignore[attr-defined]
    dimmer = threads["discourse-2"]
    assert dimmer.answer_author == "dan" and dimmer.answer_votes == 5  # type: ignore[attr-defined]
    assert not dimmer.accepted and set(dimmer.tags) == {"bulbs", "support"}  # type: ignore[attr-defined]
    assert all("/t/3" not in r for r in forum.requests)  # the private topic was never read


def test_a_topic_that_became_unlisted_is_removed(tmp_path: Path) -> None:
    forum = _forum()
    forum.topics[4].visible = True
    with serve(forum) as url:
        assert _import(tmp_path, url)[0] == 0
        assert "discourse-5" in _stored(tmp_path)
        forum.topics[4].visible = False
        code, out = _import(tmp_path, url)
    assert code == 0 and "removed 1 threads" in out, out
    assert "discourse-5" not in _stored(tmp_path)


def test_an_interrupted_import_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    forum = _forum()
    forum.rate_limited.clear()
    forum.broken = {7}  # the last page fails
    with serve(forum) as url:
        code, out = _import(tmp_path, url)
        assert code == 1 and "resume" in out, out
        assert set(_stored(tmp_path)) == {"discourse-1", "discourse-2"}
        forum.broken.clear()
        forum.requests.clear()
        code, out = _import(tmp_path, url)
    assert code == 0, out
    assert "/t/1.json" not in forum.requests  # pages already done are not read again
    assert "/t/7.json" in forum.requests


def test_bad_urls_and_keys_fail_in_one_line(tmp_path: Path) -> None:
    with serve(_forum()) as url:
        code, out = _import(tmp_path, url, key="wrong")
        assert code == 2 and "--api-key" in out and "Traceback" not in out, out
        code, out = _import(tmp_path, url + "/not-a-forum")
        assert code == 2 and "not a Discourse forum" in out, out
    code, out = _import(tmp_path, "ftp://forum.example.com")
    assert code == 2 and "--url" in out
    assert _stored(tmp_path) == {}


@pytest.mark.parametrize("since,expected", [("2026-12-02T00:00:00Z", 0), ("2026-11-01", 2)])
def test_since_stops_at_older_topics(tmp_path: Path, since: str, expected: int) -> None:
    with serve(_forum()) as url:
        code, out = _import(tmp_path, url, "--since", since)
    assert code == 0 and f"imported {expected} threads" in out, out
