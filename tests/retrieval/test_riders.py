"""A question's new words ride in the model call that encodes the question
(``BatchingEncoder.riders``, ``WordAligner.riders``): the relevance stage then finds them
cached instead of paying a multilingual model call of its own in the request."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import pytest

from retrieval.encoders.base import HashingEncoder
from retrieval.encoders.batching import BatchingEncoder
from retrieval.relevance import WordAligner
from tests.retrieval.test_batching import CountingEncoder, held_then_concurrent


class Recording(CountingEncoder):
    """Also keeps each call's texts."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[list[str]] = []

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.texts.append(list(texts))
        return super().encode(texts)


class Words:
    """Riders: each text's words but the text itself; ``keep`` records what it was given."""

    def __init__(self, fail: bool = False) -> None:
        self.kept: dict[str, np.ndarray] = {}
        self.fail = fail
        self.lock = threading.Lock()

    def riders(self, text: str) -> list[str]:
        if self.fail:
            raise RuntimeError("riders broke")
        return text.split()

    def keep(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        with self.lock:
            self.kept.update(zip(texts, vectors, strict=True))


def test_a_questions_riders_are_encoded_in_its_model_call() -> None:
    inner = Recording()
    words = Words()
    enc = BatchingEncoder(inner, riders=words)
    got = enc.encode(["pair remote"])
    assert inner.texts == [["pair remote", "pair", "remote"]]  # one call
    expected = HashingEncoder(64).encode(["pair remote", "pair", "remote"])
    assert got.shape == (1, 64) and np.allclose(got[0], expected[0])
    assert np.allclose(words.kept["pair"], expected[1])
    assert np.allclose(words.kept["remote"], expected[2])
    # a one-word text is not its own rider; several texts (ingest) carry none
    enc.encode(["hub"])
    enc.encode(["thread one", "thread two"])
    assert inner.texts[1:] == [["hub"], ["thread one", "thread two"]]
    enc.close()


def test_micro_batched_questions_carry_their_riders_once() -> None:
    inner = Recording()
    words = Words()
    enc = BatchingEncoder(inner, max_batch=32, max_wait_ms=20, cache_size=0, riders=words)
    texts = [f"q{i} shared" for i in range(8)]
    held_then_concurrent(enc, inner, texts)
    batched = [call for call in inner.texts if len([t for t in call if t in texts]) > 1]
    assert batched, inner.texts  # some questions were encoded together
    for call in batched:
        assert call.count("shared") == 1  # a word of several questions rides once
    assert set(words.kept) == {*(f"q{i}" for i in range(8)), "shared"}
    enc.close()


def test_riders_that_fail_leave_the_question_encoded() -> None:
    inner = Recording()
    enc = BatchingEncoder(inner, riders=Words(fail=True))
    got = enc.encode(["pair remote"])
    assert inner.texts == [["pair remote"]]
    assert np.allclose(got[0], HashingEncoder(64).encode(["pair remote"])[0])
    enc.close()


def test_the_aligner_names_the_new_words_of_a_question_and_keeps_them() -> None:
    inner = Recording()
    enc = BatchingEncoder(inner)
    aligner = WordAligner(enc.encode)
    enc.riders = aligner
    aligner.vectors(["hub"])  # cached before
    inner.texts.clear()
    question = "Does the hub pair with the doorbell chime?"
    assert aligner.riders(question) == ["pair", "doorbell", "chime"]
    enc.encode([question])
    assert inner.texts == [[question, "pair", "doorbell", "chime"]]
    assert aligner.missing(["hub", "pair", "doorbell", "chime"]) == []
    found = aligner.vectors(["doorbell"])  # from the cache: no model call
    assert len(inner.texts) == 1
    unit = HashingEncoder(64).encode(["doorbell"])[0]
    assert np.allclose(found[0], unit / np.linalg.norm(unit))
    enc.close()


@pytest.mark.parametrize("triage", [True, False])
def test_the_engine_gives_the_shared_multilingual_encoder_its_riders(triage: bool) -> None:
    """With triage on, its multilingual encoder (a ``BatchingEncoder`` the pair shares)
    carries the relevance stage's words; with triage off the search sends them ahead."""
    from retrieval.encoders.pair import PairwiseEncoder
    from service.config import Settings
    from service.runtime import relevance_for

    shared = BatchingEncoder(HashingEncoder(64))
    pair = BatchingEncoder(
        PairwiseEncoder(HashingEncoder(32), shared if triage else HashingEncoder(64))
    )

    class FakeTriage:
        encoder = shared

    model, aligner = relevance_for(Settings(), pair, FakeTriage() if triage else None)  # type: ignore[arg-type]
    assert model is not None and aligner is not None
    assert (shared.riders is aligner) is triage
