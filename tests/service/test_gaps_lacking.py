"""The knowledge gaps' question vectors lean towards the words the forum lacks
(service.insights.Lean), with a bag-of-words encoder whose word vectors are one-hot:
what each weight does can be read off exactly."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from retrieval.relevance import WordAligner, content_words
from service import insights
from service.insights import Lean, forum_vocabulary

WORDS = ["lumio", "control", "garage", "opener", "blinds", "motorised", "hub", "bulb"]


def encode(texts: Sequence[str]) -> np.ndarray:
    """Each text as the sum of its known words' one-hot vectors (a word alone: its own)."""
    out = np.zeros((len(texts), len(WORDS)), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in text.lower().replace("?", " ").split():
            if word in WORDS:
                out[i, WORDS.index(word)] += 1.0
    return out


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


@pytest.fixture
def aligner() -> WordAligner:
    return WordAligner(encode)


def test_the_forums_words_are_its_threads_content_words(aligner: WordAligner) -> None:
    texts = ["Lumio hub control", "The bulb and the hub"]
    vocabulary = forum_vocabulary(aligner, texts)
    assert vocabulary.shape == (4, len(WORDS))  # lumio, hub, control, bulb: "the", "and" out
    assert np.allclose(np.linalg.norm(vocabulary, axis=1), 1.0)
    assert forum_vocabulary(aligner, texts, words=2).shape == (2, len(WORDS))


def test_a_question_leans_towards_the_rare_words_the_forum_lacks(aligner: WordAligner) -> None:
    vocabulary = forum_vocabulary(aligner, ["lumio control hub bulb"])
    window = ["Can Lumio control my garage opener?", "Garage opener broken", "Lumio bulb blinds?"]
    assert content_words(window[0], 12) == ["lumio", "control", "garage", "opener"]
    mixed = Lean(encode, aligner, vocabulary, weight=0.3)(window)[0]
    sentence = unit(encode([window[0]])[0])
    # the forum has "lumio" and "control"; garage and opener lack fully (one-hot words: no
    # other word is near them) and are in 2 of the 3 questions: each weighs log(3 / 2)
    lacked = unit(np.log(3 / 2) * encode(["garage opener"])[0])
    assert np.allclose(mixed, unit(0.7 * sentence + 0.3 * lacked), atol=1e-6)
    assert abs(float(np.linalg.norm(mixed)) - 1.0) < 1e-6


def test_a_word_weighs_its_lack_times_its_rarity_in_the_window(aligner: WordAligner) -> None:
    vocabulary = forum_vocabulary(aligner, ["lumio control hub bulb"])
    window = ["garage opener", "garage blinds", "garage motorised", "bulb"]
    mixed = Lean(encode, aligner, vocabulary, weight=0.5)(window)[0]
    # garage in 3 of 4 questions: log(4 / 3); opener in 1: log(4)
    lacked = unit(np.log(4 / 3) * encode(["garage"])[0] + np.log(4) * encode(["opener"])[0])
    assert np.allclose(mixed, unit(0.5 * unit(encode(["garage opener"])[0]) + 0.5 * lacked))


def test_near_words_count_as_one_for_the_rarity(
    aligner: WordAligner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A word and its translation (cosine at least ``SAME_WORD``) are one word when the
    window's questions holding it are counted."""
    vocabulary = forum_vocabulary(aligner, ["lumio control hub bulb"])
    window = ["garage opener", "garage blinds", "motorised", "bulb"]
    lean = Lean(encode, aligner, vocabulary, weight=0.5)
    alone = lean(window)[2]
    assert np.allclose(alone, unit(encode(["motorised"])[0]))  # lacking, its own direction
    # one-hot words are orthogonal: with SAME_WORD at 0, every word is near every other,
    # each is in all 4 questions, weighs log(4 / 4) = 0, and no question leans
    monkeypatch.setattr(insights, "SAME_WORD", 0.0)
    out = lean(window)
    assert np.allclose(out, insights.normalise(encode(window)))


def test_a_lone_question_keeps_its_vector(aligner: WordAligner) -> None:
    """In a window of one question, each of its words is in every question: no lean."""
    vocabulary = forum_vocabulary(aligner, ["lumio control hub bulb"])
    question = "Can Lumio control my garage opener?"
    out = Lean(encode, aligner, vocabulary)([question])[0]
    assert np.allclose(out, unit(encode([question])[0]))


def test_questions_alike_but_for_what_is_lacking_move_apart(aligner: WordAligner) -> None:
    vocabulary = forum_vocabulary(aligner, ["lumio control hub bulb"])
    questions = ["Can Lumio control a garage opener?", "Can Lumio control motorised blinds?"]
    plain = encode(questions)
    before = float(unit(plain[0]) @ unit(plain[1]))
    after = Lean(encode, aligner, vocabulary)(questions)
    assert float(after[0] @ after[1]) < before - 0.1


def test_a_question_the_forum_has_every_word_of_keeps_its_vector(aligner: WordAligner) -> None:
    vocabulary = forum_vocabulary(aligner, ["lumio control hub bulb"])
    texts = ["Lumio hub?", "?!"]  # the second has no word: no direction, stays zero
    out = Lean(encode, aligner, vocabulary)(texts)
    assert np.allclose(out[0], unit(encode(texts)[0]))
    assert np.allclose(out[1], 0.0)


def test_without_a_vocabulary_the_vectors_are_the_encoders(aligner: WordAligner) -> None:
    texts = ["Can Lumio control a garage opener?"]
    out = Lean(encode, aligner, forum_vocabulary(aligner, []))(texts)
    assert np.allclose(out, unit(encode(texts)[0]))


@pytest.fixture
def encoded(aligner: WordAligner) -> list[str]:
    """The words the aligner encodes from now on (the forum's, "lumio control hub bulb",
    are cached already)."""
    forum_vocabulary(aligner, ["lumio control hub bulb"])
    seen: list[str] = []

    def counting(texts: Sequence[str]) -> np.ndarray:
        seen.extend(texts)
        return encode(texts)

    aligner.encode = counting
    return seen


def test_a_windows_words_are_not_cached_and_their_encoding_is_bounded(
    aligner: WordAligner, encoded: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The public writes the window: its made-up words must not push the forum's out of
    the relevance stage's word cache, and only so many new words are encoded."""
    vocabulary = forum_vocabulary(aligner, ["lumio control hub bulb"])
    monkeypatch.setattr(insights, "LEAN_NEW_WORDS", 2)
    window = ["Can Lumio control motorised blinds, a garage opener?", "Lumio bulb?"]
    out = Lean(encode, aligner, vocabulary, weight=0.3)(window)[0]
    assert encoded == ["motorised", "blinds"]  # lumio, control cached; garage, opener left out
    assert aligner.missing(["motorised", "blinds"]) == ["motorised", "blinds"]
    lacked = unit(encode(["motorised blinds"])[0])  # each in 1 of 2 questions: log 2 alike
    assert np.allclose(out, unit(0.7 * unit(encode([window[0]])[0]) + 0.3 * lacked), atol=1e-6)


def test_a_word_of_both_windows_is_encoded_once(aligner: WordAligner, encoded: list[str]) -> None:
    vocabulary = forum_vocabulary(aligner, ["lumio control hub bulb"])
    lean = Lean(encode, aligner, vocabulary)
    lean(["Can Lumio control a garage opener?"])  # this window
    lean(["garage opener broken", "motorised blinds"])  # the one before it
    assert sorted(encoded) == ["blinds", "broken", "garage", "motorised", "opener"]


def test_a_gap_is_named_by_its_lacking_words_rarest_first(aligner: WordAligner) -> None:
    vocabulary = forum_vocabulary(aligner, ["lumio control hub bulb"])
    garage = ["Can Lumio control a garage opener?", "Lumio garage hub?"]
    blinds = ["Can Lumio control motorised blinds?"]
    lean = Lean(encode, aligner, vocabulary)
    lean(garage + blinds)
    # garage is in 2 of the 3 questions, opener in 1: rarer, it names the gap first; lumio,
    # control and hub are the forum's
    assert lean.missing([garage, blinds]) == [["opener", "garage"], ["motorised", "blinds"]]
    assert lean.missing([garage, ["bulb sensor"]])[1] == []  # "sensor" was never encoded
