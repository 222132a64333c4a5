"""Rate limits shared by replicas through Redis (a real server the test starts): a key's
budget is one budget, whichever replica a request reaches; with Redis down, each replica
counts the budget itself."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.api.auth import Principal
from service.api.limits import RateLimiter
from service.config import Settings
from service.runtime import build_engine
from tests.redis_server import redis_server
from tests.support import SAMPLE, CountingEncoder, auth

pytestmark = pytest.mark.slow
READER = Principal("forum", "public")


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


def test_replicas_share_one_budget_per_key(redis_url: str) -> None:
    a, b, c = (RateLimiter({"public": "3/minute"}, redis_url) for _ in range(3))
    assert a.shared
    assert [a.retry_after(READER, "10.0.0.7"), b.retry_after(READER, "10.0.0.7")] == [None, None]
    assert c.retry_after(READER, "10.0.0.7") is None  # the third of three
    for replica in (a, b, c):  # over budget wherever the fourth lands
        retry = replica.retry_after(READER, "10.0.0.7")
        assert retry is not None and 1 <= retry <= 60
    assert a.retry_after(READER, "10.0.0.8") is None  # another reader has its own budget


def test_a_request_over_budget_is_refused_by_whichever_replica_gets_it(
    redis_url: str, settings: Settings, tmp_path: Path
) -> None:
    conf = settings.model_copy(
        update={
            "rate_limits": {"public": "4/minute"},
            "rate_limit_storage": redis_url.replace("/0", "/1"),
        }
    )
    clients = []
    for name in ("a", "b"):
        replica = conf.model_copy(update={"data_dir": tmp_path / name})
        engine = build_engine(replica, encoder=CountingEncoder())
        engine.upsert(SAMPLE)
        clients.append(TestClient(create_app(replica, engine=engine)))
    with clients[0] as a, clients[1] as b:
        codes = [
            (a if i % 2 else b).post("/v1/suggest", json={"title": "hub"}, headers=auth("public"))
            for i in range(6)
        ]
        assert [r.status_code for r in codes] == [200, 200, 200, 200, 429, 429]
        assert int(codes[-1].headers["Retry-After"]) >= 1


def test_redis_unreachable_limits_per_replica() -> None:
    """Security finding N6: a refused Redis removed every limit (fail open). Now the
    budget is counted in the replica while a circuit breaker leaves Redis alone."""
    limiter = RateLimiter({"public": "1/minute"}, "redis://127.0.0.1:1/0")
    start = time.monotonic()
    assert limiter.retry_after(READER, "10.0.0.9") is None  # Redis refused: counted here
    assert limiter.degraded
    assert limiter.retry_after(READER, "10.0.0.9") is not None  # the budget still holds
    assert limiter.retry_after(READER, "10.0.0.10") is None  # per client address
    assert time.monotonic() - start < 1.0  # no call waited on Redis's 5 s default
