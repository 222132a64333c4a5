"""The crash harness (eval/crash.py): 10,000 threads through the HTTP API while the server
is SIGKILLed at random moments, over 14 seeds (make test stays within 30 minutes; the
harness was run over 20 seeds in earlier rounds). UNSOURCE_CRASH_SEEDS=FIRST:COUNT picks
others (the harness's own CLI takes --seed)."""

from __future__ import annotations

import os

import pytest

from eval.crash import run_seeds

pytestmark = pytest.mark.slow


def _seeds() -> list[int]:
    first, _, count = os.environ.get("UNSOURCE_CRASH_SEEDS", "0:14").partition(":")
    return list(range(int(first), int(first) + int(count or 1)))


def test_no_acknowledged_write_is_lost_across_sigkills() -> None:
    reports = run_seeds(_seeds(), threads=10_000, batch=100)
    for r in reports:
        assert r.kills >= 2, r  # at least one mid-ingest kill and the final one
        assert r.acknowledged >= 100  # every create batch acknowledged eventually
        assert not r.lost and not r.phantom and not r.wrong_version, r
        assert r.duplicated == 0 and not r.index_failures, r
        assert r.missing_at_end == 0 and r.stored_at_end > 9_900, r
    assert sum(r.unanswered for r in reports) > 0  # some kills did land mid-request
