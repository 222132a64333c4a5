"""Body size, field bounds and rate limits: refused before anything is embedded."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from service.api.app import behind_proxies, create_app
from service.config import Settings
from service.runtime import Engine
from tests.support import CountingEncoder, auth


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


def _codes(c: TestClient, forwarded: list[str]) -> list[int]:
    return [
        c.post(
            "/v1/suggest",
            json={"title": "hub reset"},
            headers={**auth("public"), "X-Forwarded-For": addr},
        ).status_code
        for addr in forwarded
    ]


def test_forwarded_for_is_ignored_unless_the_proxy_is_trusted(
    settings: Settings, loaded: Engine
) -> None:
    """Audit finding 5: a loopback client picked its own bucket with X-Forwarded-For."""
    tight = settings.model_copy(update={"rate_limits": {"public": "3/minute"}})
    app = behind_proxies(create_app(tight, engine=loaded), tight)
    with TestClient(app, client=("127.0.0.1", 40000)) as c:
        spoofed = [f"203.0.113.{i}" for i in range(6)]
        assert _codes(c, spoofed) == [200] * 3 + [429] * 3


def test_trusted_proxy_gives_each_reader_a_budget(settings: Settings, loaded: Engine) -> None:
    """Behind a load balancer off loopback, readers no longer share one budget."""
    conf = settings.model_copy(
        update={"rate_limits": {"public": "3/minute"}, "trusted_proxies": ["10.0.0.0/24"]}
    )
    app = behind_proxies(create_app(conf, engine=loaded), conf)
    with TestClient(app, client=("10.0.0.7", 40000)) as lb:
        readers = [f"198.51.100.{i}" for i in range(10)]
        assert _codes(lb, readers) == [200] * 10  # ten readers, ten budgets
        assert _codes(lb, ["198.51.100.1"] * 3) == [200, 200, 429]  # each budget holds
        direct = TestClient(app, client=("192.0.2.9", 40000))  # not a trusted proxy
        forged = [f"198.51.100.{i}" for i in range(20, 25)]
        assert _codes(direct, forged) == [200] * 3 + [429] * 2


def test_trusted_proxies_must_be_addresses(settings: Settings) -> None:
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="trusted_proxies"):
        Settings(data_dir=settings.data_dir, trusted_proxies=["lb.example.com"])


def test_keys_are_checked_before_a_body_is_read(settings: Settings, loaded: Engine) -> None:
    """Audit finding 3: 16 MiB bulk bodies were read and parsed before the key was checked."""
    keyed = settings.model_copy(update={"dev_mode": False})
    with TestClient(create_app(keyed, engine=loaded)) as c:
        read: list[int] = []

        def body() -> Iterator[bytes]:
            for i in range(16 * 1024):
                read.append(i)
                yield b"x" * 1024

        for headers in ({}, {"X-API-Key": "uns_not_a_key"}):
            r = c.post("/v1/threads:bulk", content=body(), headers=headers)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert len(read) <= 2  # refused from the headers, the body left unread
        # a public or agent key gets the ordinary limit on the admin routes: 413, not 16 MiB
        big = b'{"threads": [' + b" " * (200 * 1024) + b"]}"
        for role in ("public", "agent"):
            r = c.post("/v1/threads:bulk", content=big, headers=auth(role))
            assert r.status_code == 413, role
        r = c.post("/v1/threads:bulk", content=big, headers=auth("admin"))
        assert r.status_code == 422  # read and parsed: an empty list of threads


def test_a_failing_shared_storage_trips_the_breaker_and_limits_locally(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Security finding N6, without a server: the shared count raising is tried once, then
    left alone for BREAKER_SECONDS while the budget is counted in this process."""
    from service.api import limits as limits_mod
    from service.api.auth import Principal

    limiter = limits_mod.RateLimiter({"public": "2/minute"})
    calls = []

    def down(*_: object) -> bool:
        calls.append(1)
        raise ConnectionError("redis down")

    monkeypatch.setattr(limiter._limiter, "hit", down)
    reader = Principal("widget", "public")
    results = [limiter.retry_after(reader, "10.0.0.1") for _ in range(3)]
    assert results[:2] == [None, None] and results[2] is not None
    assert len(calls) == 1 and limiter.degraded


def test_in_process_counts_start_no_thread_per_request_and_are_swept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """limits' own in-process storage started a 10 ms ``threading.Timer`` on a hit once
    the last had fired (under load: a thread nearly every request, on the event loop)."""
    import gc
    import threading
    import time

    import limits.storage.memory as memory
    from limits import parse
    from limits.strategies import MovingWindowRateLimiter

    from service.api import limits as limits_mod

    before = set(threading.enumerate())
    storage = limits_mod.SweptMemoryStorage(sweep_seconds=0.05)
    # (only the sweeper kept: the library's first timer holds the storage until it ends)
    sweepers = [
        t for t in threading.enumerate() if t not in before and t.name == "rate-limit-sweep"
    ]
    del before
    assert len(sweepers) == 1
    started: list[object] = []
    real_timer = threading.Timer

    def counted(*args: object, **kwargs: object) -> threading.Timer:
        started.append(args)
        return real_timer(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(memory.threading, "Timer", counted)
    limiter = MovingWindowRateLimiter(storage)
    item = parse("3/second")
    hits = []
    for _ in range(5):
        hits.append(limiter.hit(item, "reader"))
        time.sleep(0.02)  # past the library's 10 ms timer each time
    assert hits == [True, True, True, False, False]  # the budget still holds
    assert started == []
    time.sleep(1.2)  # the window has passed and the sweeper has run since
    assert not any(storage.events.values())
    assert limiter.hit(item, "reader")
    del limiter, storage
    gc.collect()
    time.sleep(0.2)
    assert all(not t.is_alive() for t in sweepers)  # a dropped storage's sweeper ends
