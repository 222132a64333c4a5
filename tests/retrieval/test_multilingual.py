"""Per-pair scoring (retrieval/encoders/pair.py), language detection, per-pair evaluation."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from eval.datasets import Query, RetrievalSet
from eval.multilingual import choose_threshold, pair_of
from retrieval.encoders.factory import load_encoder
from retrieval.encoders.pair import PairwiseEncoder, is_english, query_form
from retrieval.language import detect
from triage.datasets import read_forum


class Fixed:
    """A deterministic encoder whose vectors are given per text."""

    def __init__(self, name: str, vectors: dict[str, list[float]]) -> None:
        self.name = name
        self.vectors = vectors
        self.dimension = len(next(iter(vectors.values())))

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.array([self.vectors[t] for t in texts], dtype=np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


EN_Q = "How do I update the hub firmware manually?"
EN_T = "Updating the hub firmware by hand from the settings page"
PT_Q = "Como atualizo o firmware do hub manualmente?"
PT_T = "Como reiniciar o Hub Lumio para as configurações de fábrica?"
TEXTS = [EN_Q, EN_T, PT_Q, PT_T]


@pytest.fixture
def pair() -> PairwiseEncoder:
    rng = np.random.default_rng(0)
    english = Fixed("en", {t: rng.normal(size=8).tolist() for t in TEXTS})
    multi = Fixed("multi", {t: rng.normal(size=6).tolist() for t in TEXTS})
    return PairwiseEncoder(english, multi)


def test_document_vectors_are_unit_length_with_language_blocks(pair: PairwiseEncoder) -> None:
    docs = pair.encode(TEXTS)
    assert docs.shape == (4, 8 + 2 * 6)
    np.testing.assert_allclose(np.linalg.norm(docs, axis=1), 1.0, rtol=1e-5)
    assert [is_english(d, 8) for d in docs] == [True, True, False, False]
    assert not docs[2, :14].any()  # a Portuguese text fills only the last block


def test_one_inner_product_gives_the_per_pair_score(pair: PairwiseEncoder) -> None:
    w = 0.7
    docs = pair.encode(TEXTS)
    e, m = pair.english.encode(TEXTS), pair.multilingual.encode(TEXTS)
    q_en, q_pt = query_form(docs[0], 8, w), query_form(docs[2], 8, w)
    # English question, English thread: the mix
    assert q_en @ docs[1] == pytest.approx(w * e[0] @ e[1] + (1 - w) * m[0] @ m[1], abs=1e-5)
    # English question, Portuguese thread: the multilingual model alone
    assert q_en @ docs[3] == pytest.approx(m[0] @ m[3], abs=1e-5)
    # Portuguese question, English and Portuguese threads: the multilingual model alone
    assert q_pt @ docs[1] == pytest.approx(m[2] @ m[1], abs=1e-5)
    assert q_pt @ docs[3] == pytest.approx(m[2] @ m[3], abs=1e-5)


def test_pair_spec_loads_two_encoders() -> None:
    enc = load_encoder("hash:16+hash:32")
    assert isinstance(enc, PairwiseEncoder)
    assert enc.name == "hash:16+hash:32" and enc.dimension == 16 + 64
    with pytest.raises(Exception, match="encoder pair"):
        load_encoder("hash:16+")


@pytest.mark.parametrize(
    "text,language",
    [
        ("Como atualizo o firmware?", "pt"),
        ("¿Cómo restablezco el hub de fábrica?", "es"),
        ("Non ricevo nessuna notifica su Android", "it"),
        ("My hub keeps going offline every night", "en"),
        ("12345 !!", "en"),
    ],
)
def test_detect(text: str, language: str) -> None:
    assert detect(text) == language


def test_pair_of_and_thresholds() -> None:
    data = RetrievalSet(
        "x",
        [{"id": "a", "language": "en"}, {"id": "b", "language": "pt"}],
        [Query("q1", "?", language="pt"), Query("q2", "?", language="pt")],
        {"q1": {"a": 1}, "q2": {"a": 1, "b": 1}},
    )
    assert pair_of(data, "q1", "pt") == "pt->other"
    assert pair_of(data, "q2", "pt") == "pt->pt"
    rows = [(True, 0.2, False), (True, 0.3, False), (False, 0.6, True), (False, 0.7, True)]
    t, off, miss = choose_threshold(rows, np.round(np.arange(0.2, 0.8, 0.01), 3))
    assert 0.3 < t <= 0.6 and off == 0.0 and miss == 0.0


def test_read_forum_labels_community_unless_overridden(tmp_path: Path) -> None:
    forum = tmp_path / "forum.csv"
    forum.write_text(
        "id,title,content\n1,Tabs crash,<p>Firefox &amp; tabs crash</p>\n2,Locked account,x\n"
    )
    labels = tmp_path / "labels.csv"
    labels.write_text("id,route,queue\n2,staff,account\n")
    rows = read_forum(forum, labels)
    assert [(r.route, r.queue) for r in rows] == [("community", ""), ("staff", "account")]
    assert rows[0].text == "Tabs crash Firefox & tabs crash"


def test_hashing_pair_searches_across_languages_in_the_engine(tmp_path: Path) -> None:
    """The searcher applies the query form: an English thread found for a pt question."""
    from index.models import Thread
    from service.config import Settings
    from service.runtime import build_engine

    settings = Settings(data_dir=tmp_path, model="hash:64+hash:32", _env_file=None)
    engine = build_engine(settings, with_triage=False)
    try:
        assert engine.searcher.query_form is not None
        engine.upsert([Thread(id="t1", title="Firmware do hub: como atualizar manualmente")])
        stored = engine.store.get("t1")
        assert stored is not None and stored.thread.language == "pt"
        ranked = engine.searcher.rank("Firmware do hub: como atualizar manualmente")
        assert ranked and ranked[0][2] == pytest.approx(1.0, abs=1e-3)  # float16 codes
    finally:
        engine.close(save=False)


def test_the_pair_shares_triage_encoder_when_it_is_the_same_model(tmp_path: Path) -> None:
    """One copy of the multilingual weights, and one encode of a question for both."""
    from retrieval.encoders.base import HashingEncoder
    from retrieval.encoders.batching import BatchingEncoder
    from service.config import Settings
    from service.runtime import load_encoder_for

    settings = Settings(data_dir=tmp_path, model="hash:64+hash:32", _env_file=None)
    shared = BatchingEncoder(HashingEncoder(32), max_batch=1)
    pair = load_encoder_for(settings, shared)
    assert isinstance(pair, PairwiseEncoder) and pair.multilingual is shared
    other = load_encoder_for(settings, BatchingEncoder(HashingEncoder(48), max_batch=1))
    assert isinstance(other, PairwiseEncoder) and other.multilingual is not shared
    assert load_encoder_for(settings).name == "hash:64+hash:32"
    pair.encode(["Como atualizo o firmware do hub?"])
    assert len(shared.cache) == 1  # a later triage call for the question is a cache hit


class RecordingPool:
    """An executor that runs each job at once, on a thread of its own, and records it."""

    def __init__(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.pool = ThreadPoolExecutor(1)
        self.jobs: list[object] = []

    def submit(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.jobs.append(fn)
        return self.pool.submit(fn, *args, **kwargs)


def test_the_helper_encodes_an_english_question_multilingual_half_alike(
    pair: PairwiseEncoder,
) -> None:
    """With a helper the two halves of one English question encode at once: the vector is
    the same; a Portuguese question (one model) and a batch never go to the helper."""
    serial = pair.encode([EN_Q])
    helper = RecordingPool()
    pair.helper = helper  # type: ignore[assignment]
    np.testing.assert_array_equal(pair.encode([EN_Q]), serial)
    assert len(helper.jobs) == 1
    pair.encode([PT_Q])
    np.testing.assert_array_equal(
        pair.encode(TEXTS), PairwiseEncoder(pair.english, pair.multilingual).encode(TEXTS)
    )
    assert len(helper.jobs) == 1
    helper.pool.shutdown()


def test_the_helper_is_skipped_when_the_shared_encoder_knows_the_question() -> None:
    from retrieval.encoders.base import HashingEncoder
    from retrieval.encoders.batching import BatchingEncoder

    shared = BatchingEncoder(HashingEncoder(32), max_batch=1)
    helper = RecordingPool()
    pair = PairwiseEncoder(HashingEncoder(64), shared, helper)  # type: ignore[arg-type]
    first = pair.encode([EN_Q])
    assert len(helper.jobs) == 1 and shared.known(EN_Q)  # now cached (triage asked first)
    np.testing.assert_array_equal(pair.encode([EN_Q]), first)
    assert len(helper.jobs) == 1
    helper.pool.shutdown()
