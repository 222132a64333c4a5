"""Micro-batching of concurrent query encodes, and the query-embedding cache."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

from retrieval.encoders.base import HashingEncoder
from retrieval.encoders.batching import BatchingEncoder, QueryCache


class CountingEncoder(HashingEncoder):
    """The hashing encoder, recording each model call's batch; can be told to fail."""

    def __init__(self) -> None:
        super().__init__(64)
        self.calls: list[int] = []
        self.gate = threading.Event()
        self.gate.set()
        self.fail = False

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.gate.wait(5)
        self.calls.append(len(texts))
        if self.fail:
            raise RuntimeError("model crashed")
        return super().encode(texts)


def _concurrently(n: int, fn: Callable[[int], Any]) -> list[Any]:
    out: list[Any] = [None] * n
    barrier = threading.Barrier(n)

    def run(i: int) -> None:
        barrier.wait()
        try:
            out[i] = fn(i)
        except Exception as exc:
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return out


def held_then_concurrent(enc: BatchingEncoder, inner: CountingEncoder, texts: list[str]) -> None:
    """Each of ``texts`` encoded alone from threads of its own, at once, the model's first
    call held for 0.1 s so that the others queue behind it; each caller gets its own row."""
    inner.gate.clear()
    threading.Timer(0.1, inner.gate.set).start()
    got = _concurrently(len(texts), lambda i: enc.encode([texts[i]]))
    expected = HashingEncoder(64).encode(texts)
    for i in range(len(texts)):
        assert got[i].shape == (1, 64) and np.allclose(got[i][0], expected[i])


def test_concurrent_queries_share_model_calls_and_get_their_own_rows() -> None:
    inner = CountingEncoder()
    enc = BatchingEncoder(inner, max_batch=32, max_wait_ms=20, cache_size=0)
    held_then_concurrent(enc, inner, [f"question {i} about printers" for i in range(16)])
    assert sum(inner.calls) == 16 and len(inner.calls) < 16
    assert enc.batches == len(inner.calls) and enc.batched_texts == 16
    enc.close()


def test_batch_size_is_capped_and_duplicates_are_encoded_once() -> None:
    inner = CountingEncoder()
    enc = BatchingEncoder(inner, max_batch=4, max_wait_ms=50, cache_size=0)
    inner.gate.clear()
    threading.Timer(0.1, inner.gate.set).start()
    got = _concurrently(12, lambda i: enc.encode(["same question" if i < 6 else f"q{i}"]))
    assert all(np.allclose(g, got[0]) for g in got[:6])
    assert max(inner.calls) <= 4 and sum(inner.calls) < 12
    enc.close()


def test_multi_text_calls_of_new_texts_are_one_model_call() -> None:
    inner = CountingEncoder()
    enc = BatchingEncoder(inner, max_batch=8)
    out = enc.encode(["a", "b", "c"])
    assert out.shape == (3, 64) and inner.calls == [3] and enc.batches == 0
    assert enc.encode([]).shape == (0, 64)
    assert enc.name == inner.name and enc.dimension == 64


def test_cache_answers_repeats_without_the_model_and_is_bounded() -> None:
    inner = CountingEncoder()
    enc = BatchingEncoder(inner, max_batch=1, cache_size=2)
    first = enc.encode(["how do I reset my router"])
    first[0, 0] = 99.0  # a caller changing its copy must not change the cache
    again = enc.encode(["how do I reset my router"])
    assert inner.calls == [1] and again[0, 0] != 99.0 and enc.cache.hits == 1
    enc.encode(["two"])
    enc.encode(["three"])  # evicts the router question (least recently used)
    assert len(enc.cache) == 2
    enc.encode(["how do I reset my router"])
    assert inner.calls == [1, 1, 1, 1]


def test_lru_keeps_recently_used_entries() -> None:
    cache = QueryCache(2)
    cache.put("a", np.ones(2))
    cache.put("b", np.ones(2))
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("c", np.ones(2))
    assert cache.get("b") is None and cache.get("a") is not None and cache.get("c") is not None
    assert QueryCache(0).get("x") is None


def test_a_failing_model_fails_every_waiting_caller_and_the_worker_survives() -> None:
    inner = CountingEncoder()
    enc = BatchingEncoder(inner, max_batch=8, max_wait_ms=20, cache_size=0)
    inner.fail = True
    got = _concurrently(4, lambda i: enc.encode([f"q{i}"]))
    assert all(isinstance(g, RuntimeError) for g in got)
    inner.fail = False
    assert enc.encode(["after"]).shape == (1, 64)
    enc.close()
    with pytest.raises(AssertionError):
        assert enc._worker is not None and enc._worker.is_alive()
    assert enc.encode(["after close"]).shape == (1, 64)  # runs inline once closed


def test_a_text_being_encoded_is_not_encoded_again_by_a_second_caller() -> None:
    """Triage and retrieval share the multilingual encoder and ask for the same question
    at the same moment: one model call, both get the vector."""
    inner = CountingEncoder()
    enc = BatchingEncoder(inner, max_batch=1, cache_size=0)  # no cache, no batching
    inner.gate.clear()
    threading.Timer(0.2, inner.gate.set).start()
    got = _concurrently(3, lambda i: enc.encode(["the same question"]))
    assert inner.calls == [1]
    assert all(g.shape == (1, 64) and np.allclose(g, got[0]) for g in got)
    assert not enc._inflight  # nothing left behind
    inner.fail = True
    with pytest.raises(RuntimeError):
        enc.encode(["the same question"])  # a failure is not remembered either
    inner.fail = False
    assert enc.encode(["the same question"]).shape == (1, 64)


def test_a_multi_text_call_takes_cached_texts_from_the_cache_and_caches_nothing() -> None:
    """An encoder pair's micro-batch asks the shared multilingual encoder for questions
    that triage has just encoded one by one: only the others reach the model."""
    inner = CountingEncoder()
    enc = BatchingEncoder(inner, max_batch=8)
    alone = {t: enc.encode([t])[0] for t in ("a", "b")}
    inner.calls.clear()
    out = enc.encode(["a", "c", "b", "a", "c"])
    assert inner.calls == [1]  # "c" alone, once
    expected = HashingEncoder(64).encode(["c"])[0]
    assert np.allclose(out[[0, 3]], alone["a"]) and np.allclose(out[2], alone["b"])
    assert np.allclose(out[[1, 4]], expected) and out.dtype == np.float32
    assert len(enc.cache) == 2  # "c" was not cached
