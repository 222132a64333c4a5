"""Body size, field bounds and rate limits: refused before anything is embedded."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi.testclient import TestClient

from service.app import create_app
from service.config import Settings
from service.runtime import Engine
from tests.conftest import CountingEncoder, auth


def test_oversized_body_is_413_before_embedding(
    client: TestClient, encoder: CountingEncoder
) -> None:
    encoder.encoded.clear()
    big = {"title": "x", "body": "y" * 70_000}
    r = client.post("/v1/suggest", json=big)
    assert r.status_code == 413
    assert r.json()["error"] == "payload_too_large" and r.json()["detail"][0]["field"] == "body"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        yield b'{"title": "x", "body": "'
        for _ in range(80):
            yield b"z" * 1024
        yield b'"}'

    r = client.post("/v1/suggest", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert encoder.encoded == []


def test_bulk_has_its_own_larger_body_limit(client: TestClient) -> None:
    threads = [{"id": f"big-{i}", "title": f"Thread {i}", "body": "w " * 400} for i in range(100)]
    r = client.post("/v1/threads:bulk", json={"threads": threads})  # ~80 KiB
    assert r.status_code == 200 and r.json()["created"] == 100


def test_bounds_are_422_before_embedding(client: TestClient, encoder: CountingEncoder) -> None:
    encoder.encoded.clear()
    cases = [
        ("/v1/suggest", {"title": "x", "k": 51}, "k"),
        ("/v1/suggest", {"title": "t" * 501}, "title"),
        ("/v1/suggest", {"title": "x", "body": "b" * 20_001}, "body"),
        ("/v1/triage", {"text": "t" * 20_501}, "text"),
        ("/v1/threads:bulk", {"threads": [{"id": f"i{i}", "title": "t"} for i in range(1001)]},
         "threads"),
    ]  # fmt: skip
    for path, payload, field in cases:
        r = client.post(path, json=payload)
        assert r.status_code == 422, (path, field)
        assert r.json()["detail"][0]["field"] == field
    assert encoder.encoded == []


def test_burst_gets_429_with_retry_after(settings: Settings, loaded: Engine) -> None:
    tight = settings.model_copy(update={"rate_limits": {"public": "5/minute"}})
    with TestClient(create_app(tight, engine=loaded)) as c:
        codes = [
            c.post("/v1/suggest", json={"title": "hub reset"}, headers=auth("public")).status_code
            for _ in range(8)
        ]
        assert codes[:5] == [200] * 5 and codes[5:] == [429] * 3
        r = c.post("/v1/suggest", json={"title": "hub reset"}, headers=auth("public"))
        assert r.status_code == 429 and r.json()["error"] == "rate_limited"
        assert 1 <= int(r.headers["retry-after"]) <= 60
        # other keys have their own budget (and roles without one are not limited)
        assert c.post("/v1/triage", json={"text": "x"}, headers=auth("agent")).status_code == 200
        metrics = c.get("/metrics", headers=auth("agent")).text
        assert 'unsource_rate_limited_total{role="public"} 4.0' in metrics
