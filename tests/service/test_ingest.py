"""The pipelined ingest (``Engine.ingest_batches``): the next batch is redacted and encoded
while one is written; the result is that of one upsert after another."""

from __future__ import annotations

import numpy as np
import pytest

from index.errors import ValidationFailed
from service.runtime import Engine, batched
from tests.support import SAMPLE, CountingEncoder, make_thread

THREADS = [
    make_thread(f"x{i}", f"Question {i} about the hub", f"Body {i}", f"Answer {i}", language="en")
    for i in range(23)
]


def test_batches_commit_in_order_each_text_encoded_once(
    engine: Engine, encoder: CountingEncoder
) -> None:
    seen: list[int] = []
    report = engine.ingest_batches(batched(THREADS, 5), seen.append)
    assert seen == [5, 5, 5, 5, 3]
    assert report.created == [t.id for t in THREADS]
    assert len(encoder.encoded) == len(THREADS)  # ahead of the upsert, never again in it
    for t in THREADS:
        stored = engine.store.get(t.id)
        assert stored is not None and stored.thread.title == t.title
    hits = engine.corpus.nearest(encoder.encode([engine.corpus.text_of(THREADS[7])])[0], 1)
    assert hits[0][0] == engine.store.get("x7").pk  # type: ignore[union-attr]
    # again: nothing changed, nothing encoded
    before = len(encoder.encoded)
    again = engine.ingest(THREADS)
    assert again.unchanged_text == [t.id for t in THREADS] and len(encoder.encoded) == before


def test_a_failed_batch_stops_there_and_keeps_the_ones_before(engine: Engine) -> None:
    bad = [*THREADS[5:8], THREADS[5]]  # a duplicate id: refused with 422 naming it
    batches = [THREADS[:5], bad, THREADS[10:15]]
    with pytest.raises(ValidationFailed, match="duplicate id"):
        engine.ingest_batches(batches)
    assert all(engine.store.get(t.id) is not None for t in THREADS[:5])
    assert all(engine.store.get(t.id) is None for t in [*THREADS[5:8], *THREADS[10:15]])


def test_vectors_encoded_ahead_are_used_only_for_their_own_text(
    engine: Engine, encoder: CountingEncoder
) -> None:
    """A thread changed between the encode ahead and the write is encoded again."""
    engine.upsert(SAMPLE[:1])
    ahead = engine.corpus.prepare(THREADS[:2])
    assert len(ahead.vectors) == 2
    changed = [THREADS[0], THREADS[1].model_copy(update={"title": "Another question entirely"})]
    encoder.encoded.clear()
    engine.corpus.upsert(changed, ahead)
    assert encoder.encoded == [engine.corpus.text_of(changed[1])]
    stored = engine.corpus.vectors_for([engine.store.get("x1").pk])  # type: ignore[union-attr]
    expected = encoder.encode([engine.corpus.text_of(changed[1])])[0]
    assert np.allclose(next(iter(stored.values())), expected, atol=1e-3)


def test_pii_is_redacted_before_the_encode_ahead(engine: Engine, encoder: CountingEncoder) -> None:
    leaky = make_thread("p1", "Card 4111 1111 1111 1111 declined", "", "", language="en")
    engine.ingest_batches([[leaky], THREADS[:2]])
    assert not any("4111" in text for text in encoder.encoded)
    stored = engine.store.get("p1")
    assert stored is not None and "4111" not in stored.thread.title


def test_a_failing_source_of_batches_keeps_the_batch_already_read(engine: Engine) -> None:
    def source():  # type: ignore[no-untyped-def]
        yield THREADS[:3]
        yield THREADS[3:6]
        raise OSError("the dump is truncated")

    with pytest.raises(OSError, match="truncated"):
        engine.ingest_batches(source())
    assert all(engine.store.get(t.id) is not None for t in THREADS[:6])
