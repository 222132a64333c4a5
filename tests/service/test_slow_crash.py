"""The crash harness (eval/crash.py): threads written through the HTTP API while the server
is SIGKILLed at random moments, at start-up and mid-request. `make test` runs 4 seeds x
3,000 threads (about a minute); `make test-soak` runs 20 seeds x 10,000 threads (about 12
minutes). UNSOURCE_CRASH_SEEDS=FIRST:COUNT and UNSOURCE_CRASH_THREADS pick others (the
harness's own CLI takes --seed)."""

from __future__ import annotations

import os

import pytest

from eval.crash import run_seeds

pytestmark = pytest.mark.slow


def _seeds() -> list[int]:
    first, _, count = os.environ.get("UNSOURCE_CRASH_SEEDS", "0:4").partition(":")
    return list(range(int(first), int(first) + int(count or 1)))


def test_no_acknowledged_write_is_lost_across_sigkills() -> None:
    threads = int(os.environ.get("UNSOURCE_CRASH_THREADS", "3000"))
    reports = run_seeds(_seeds(), threads=threads, batch=100)
    for r in reports:
        assert r.kills >= 2, r  # at least one mid-ingest kill and the final one
        assert r.acknowledged >= threads // 100  # every create batch acknowledged eventually
        assert not r.lost and not r.phantom and not r.wrong_version, r
        assert r.duplicated == 0 and not r.index_failures, r
        assert r.missing_at_end == 0 and r.stored_at_end > threads * 0.99, r
    assert sum(r.unanswered for r in reports) > 0  # some kills did land mid-request
    assert sum(r.kills_during_startup for r in reports) > 0  # and some during start-up
