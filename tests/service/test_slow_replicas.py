"""Two `unsource serve` replicas share one PostgreSQL store (a real server the test
starts). A thread written through replica A is suggested by replica B within the
documented bound (UNSOURCE_INDEX_REFRESH_SECONDS plus one refresh; docs/deployment.md),
and a delete through B leaves A's suggestions just as fast."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from functools import partial
from pathlib import Path

import httpx
import pytest

from tests.pg import fresh_database, postgres_server
from tests.server import BIN, Served, serve_demo
from tests.support import TEST_POLICY, auth

pytestmark = pytest.mark.slow
BOUND_S = 3.0  # refresh every 1 s + the refresh itself, with room for a loaded CI machine


def _until(check: Callable[[], bool], timeout: float = 30) -> float:
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout, "replicas did not converge"
        time.sleep(0.05)
    return time.monotonic() - start


def _top(base: str, title: str) -> str | None:
    r = httpx.post(f"{base}/v1/suggest", json={"title": title, "k": 1}, headers=auth("public"))
    assert r.status_code == 200, r.text
    hits = r.json()["suggestions"]
    return hits[0]["thread_id"] if hits else None


def test_a_write_on_one_replica_is_suggested_by_the_other(tmp_path: Path, triage_dir: Path) -> None:
    title = "Zigbee range extender keeps losing pairing with the hub"
    with postgres_server() as server, ExitStack() as stack:
        env = {
            "UNSOURCE_DATABASE_URL": fresh_database(server),
            "UNSOURCE_MODEL": "hash:256",
            "UNSOURCE_TRIAGE_POLICY": str(TEST_POLICY),
            "UNSOURCE_INDEX_REFRESH_SECONDS": "1",
        }
        a = stack.enter_context(serve_demo(tmp_path / "a", triage_dir, BIN, None, **env))
        b = stack.enter_context(serve_demo(tmp_path / "b", triage_dir, BIN, None, **env))
        counts = [httpx.get(f"{s.base}/readyz").json()["threads"] for s in (a, b)]
        assert counts[0] == counts[1] > 0  # the demo, loaded once into the shared store

        put = httpx.put(
            f"{a.base}/v1/threads/zigbee-1",
            json={"title": title, "answer": "Move the extender within 5 m of the hub."},
            headers=auth("admin"),
        )
        assert put.status_code == 201
        assert _top(a.base, title) == "zigbee-1"  # read-your-writes on A
        seen_after = _until(lambda: _top(b.base, title) == "zigbee-1")

        assert (
            httpx.delete(f"{b.base}/v1/threads/zigbee-1", headers=auth("admin")).status_code == 204
        )
        gone_after = _until(lambda: _top(a.base, title) != "zigbee-1")
        print(f"\nreplica lag: write A→B {seen_after:.2f} s, delete B→A {gone_after:.2f} s")
        assert seen_after < BOUND_S and gone_after < BOUND_S

        def converged(s: Served) -> bool:
            v = httpx.get(f"{s.base}/v1/admin/verify", headers=auth("admin")).json()
            return bool(v["ok"]) and v["threads"] == counts[0]

        # a deleted thread leaves suggestions at once (hits are read from the store); the
        # other replica's index drops its vector at its next refresh
        assert max(_until(partial(converged, s)) for s in (a, b)) < BOUND_S
