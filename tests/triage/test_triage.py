"""Triage: lexicon, labelled data, classifier artefact, policy and the fail-closed router."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from index.errors import ValidationFailed
from retrieval.encoders.base import HashingEncoder
from tests.support import TEST_POLICY, TRIAGE_TRAIN
from triage.classifier import CURRENT, ModelError, Prediction, TriageModel, train
from triage.datasets import expand_sources, read_labelled, read_routes, read_sources
from triage.decision import Triage, decide
from triage.lexicon import Lexicon, LexiconError, LexiconHit, fold
from triage.policy import Policy

CARD = "4111 1111 1111 1111"
IBAN = "DE89 3704 0044 0532 0130 00"


# -- lexicon ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lexicon() -> Lexicon:
    return Lexicon.load()


def test_lexicon_covers_four_languages(lexicon: Lexicon) -> None:
    assert lexicon.languages == ["en", "es", "it", "pt"]


@pytest.mark.parametrize(
    ("text", "queue"),
    [
        ("Why is MY BILL so high?", "billing"),
        ("Preciso da segunda via da minha FATURA", "billing"),
        ("Não consigo entrar na conta", "account"),  # accents folded
        ("Olvidé mi contraseña del banco", "account"),
        ("Mi hanno rubato la carta ieri", "security"),
        ("Quero ver meu prontuário", "personal_records"),
        ("I can\u2019t log in since Monday", "account"),  # typographic apostrophe
        ("Please check my  \n payment", "payments"),  # any whitespace between words
    ],
)
def test_lexicon_matches_case_and_accent_insensitively(
    lexicon: Lexicon, text: str, queue: str
) -> None:
    assert queue in {h.queue for h in lexicon.match(text)}


@pytest.mark.parametrize(
    "text",
    [
        "What is your refund policy?",
        "Which payment methods do you accept?",
        "The fraudster movie was great",  # 'fraud' only on a word boundary
        "How do I change the router password?",
        "Qual è la politica di rimborso?",
    ],
)
def test_lexicon_leaves_public_questions_alone(lexicon: Lexicon, text: str) -> None:
    assert lexicon.match(text) == []


def test_fold_strips_accents_and_case() -> None:
    assert fold("Cartão CLONADO ¿Qué?") == "cartao clonado ¿que?"


def test_lexicon_file_with_unknown_queue_is_refused(tmp_path: Path) -> None:
    (tmp_path / "xx.toml").write_text('gossip = ["secret"]\n')
    with pytest.raises(LexiconError, match="unknown queue 'gossip'"):
        Lexicon.load(tmp_path)


# -- labelled data -----------------------------------------------------------------------


def test_routes_and_intents_map_to_routes(tmp_path: Path) -> None:
    routes = tmp_path / "routes.csv"
    routes.write_text("intent,route,queue\nrefund,staff,billing\nhours,community,\n")
    data = tmp_path / "train.csv"
    data.write_text("text,intent\nI want my money back,refund\nWhen are you open,hours\n")
    rows = read_labelled(data, read_routes(routes), "shop")
    assert [(r.label, r.route, r.queue) for r in rows] == [
        ("shop:refund", "staff", "billing"),
        ("shop:hours", "community", ""),
    ]
    assert expand_sources([tmp_path], []) == [(data, routes, tmp_path.name)]


def test_bad_rows_name_line_and_field(tmp_path: Path) -> None:
    routes = tmp_path / "routes.csv"
    routes.write_text("intent,route,queue\nrefund,staff,billing\nodd,staff,nowhere\n")
    with pytest.raises(ValidationFailed) as bad_routes:
        read_routes(routes)
    assert bad_routes.value.problems[0][:2] == (f"{routes}: line 3", "queue")
    data = tmp_path / "d.csv"
    data.write_text("text,intent\nhello,refund\n,refund\nhi,unknown\n")
    with pytest.raises(ValidationFailed) as no_routes:
        read_labelled(data, None, "d")
    assert no_routes.value.problems[0][1] == "routes"
    good_routes = tmp_path / "r2.csv"
    good_routes.write_text("intent,route,queue\nrefund,staff,billing\n")
    with pytest.raises(ValidationFailed) as bad_rows:
        read_labelled(data, read_routes(good_routes), "d")
    assert [p[:2] for p in bad_rows.value.problems] == [
        (f"{data}: line 3", "text"),
        (f"{data}: line 4", "intent"),
    ]


# -- classifier artefact -----------------------------------------------------------------


@pytest.fixture(scope="module")
def small_model() -> TriageModel:
    return train(read_sources([(TRIAGE_TRAIN, None, "t")]), HashingEncoder(128), c=10.0)


def test_model_round_trips_through_disk(small_model: TriageModel, tmp_path: Path) -> None:
    enc = HashingEncoder(128)
    path = small_model.save(tmp_path)
    assert (tmp_path / CURRENT).read_text().strip() == path.name
    loaded = TriageModel.load(tmp_path)
    texts = ["I was charged twice", "How do I reset my hub?"]
    a = small_model.predict(enc, texts)
    b = loaded.predict(enc, texts)
    assert [x.p_staff for x in a] == pytest.approx([x.p_staff for x in b])
    assert a[0].p_staff > 0.5 > a[1].p_staff
    assert loaded.version == path.name and loaded.manifest["examples"] == {"t": 20}
    assert b[0].evidence and b[0].evidence[0].route == "staff"


def test_tampered_or_missing_model_is_refused(small_model: TriageModel, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="unsource triage train"):
        TriageModel.load(tmp_path / "nothing")
    path = small_model.save(tmp_path)
    head = path / "head.npz"
    head.write_bytes(head.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ModelError, match="checksum"):
        TriageModel.load(tmp_path)


def test_model_refuses_another_encoder(small_model: TriageModel) -> None:
    with pytest.raises(ModelError, match="trained on 'hash:128'"):
        small_model.predict(HashingEncoder(64), ["hello"])


def test_two_label_training_keeps_probabilities_consistent() -> None:
    rows = read_sources([(TRIAGE_TRAIN, None, "t")])
    binary = [r for r in rows if r.queue in ("", "billing")]
    model = train(binary, HashingEncoder(64))
    p = model.probabilities(HashingEncoder(64).encode(["charged twice", "reset the hub"]))
    assert p.shape == (2, 2) and np.allclose(p.sum(axis=1), 1.0)


# -- policy ------------------------------------------------------------------------------


def test_default_policy_loads_and_bad_policy_names_the_field(tmp_path: Path) -> None:
    assert Policy.load().classifier.threshold == 0.3
    assert Policy.load(TEST_POLICY).classifier.threshold == 0.7
    bad = tmp_path / "p.toml"
    bad.write_text("[classifier]\nthreshold = 2\n[classifier.queue_thresholds]\nvip = 0.1\n")
    with pytest.raises(ValidationFailed) as exc:
        Policy.load(bad)
    fields = {p[1] for p in exc.value.problems}
    assert fields == {"classifier.threshold", "classifier.queue_thresholds"}


# -- router ------------------------------------------------------------------------------


class RaisingEncoder(HashingEncoder):
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        raise RuntimeError("model exploded")


class SlowEncoder(HashingEncoder):
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        time.sleep(0.5)
        return super().encode(texts)


def _router(model: TriageModel, encoder: HashingEncoder, **policy: object) -> Triage:
    base = Policy.load(TEST_POLICY).model_dump()
    for key, value in policy.items():
        section, name = key.split("__")
        base[section][name] = value
    return Triage(model, encoder, Lexicon.load(), Policy.model_validate(base))


@pytest.mark.parametrize(("secret", "queue"), [(CARD, "security"), (IBAN, "payments")])
def test_card_or_iban_goes_to_staff_whatever_the_classifier_says(
    small_model: TriageModel, secret: str, queue: str
) -> None:
    never = _router(small_model, HashingEncoder(128), classifier__threshold=1.0)
    d = never.route(f"How do I reset my hub? Use {secret} if needed")
    assert d.route == "staff" and d.queue == queue and d.confidence == 1.0
    assert secret not in d.model_dump_json() and secret.replace(" ", "") not in d.redacted_text
    assert [r.kind for r in d.reasons][:1] == ["pii"]


def test_classifier_error_fails_closed(small_model: TriageModel) -> None:
    d = _router(small_model, RaisingEncoder(128)).route("How do I reset my hub?")
    assert d.route == "staff" and d.queue == "account" and d.p_staff is None
    assert any(r.kind == "classifier" and "RuntimeError" in r.detail for r in d.reasons)


def test_classifier_timeout_fails_closed(small_model: TriageModel) -> None:
    slow = _router(small_model, SlowEncoder(128), classifier__timeout_seconds=0.05)
    d = slow.route("How do I reset my hub?")
    assert d.route == "staff" and "timed out" in d.reasons[-1].detail


def test_community_question_gets_confidence_reasons_and_evidence(
    small_model: TriageModel,
) -> None:
    d = _router(small_model, HashingEncoder(128)).route("How do I reset my hub?")
    assert d.route == "community" and d.queue is None
    assert d.confidence == pytest.approx(1 - (d.p_staff or 0), abs=1e-3)
    assert d.reasons[0].kind == "classifier" and len(d.evidence) == 3


def test_lexicon_hit_routes_to_staff_with_its_queue(small_model: TriageModel) -> None:
    d = _router(small_model, HashingEncoder(128), classifier__threshold=1.0).route(
        "Quero ver meu prontuário"
    )
    assert d.route == "staff" and d.queue == "personal_records"
    assert d.reasons[0].kind == "lexicon" and "prontuario" in d.reasons[0].detail


def test_queue_threshold_override(small_model: TriageModel) -> None:
    text = "I was charged twice"
    strict = _router(
        small_model, HashingEncoder(128), lexicon__enabled=False, classifier__threshold=1.0,
        classifier__queue_thresholds={"billing": 0.3},
    )  # fmt: skip
    assert strict.route(text).route == "staff"


def test_a_hint_lowers_the_classifier_threshold_and_names_its_queue() -> None:
    policy = Policy.load()  # the shipped policy: hints at 0.3, billing's own threshold 0.4
    hint = LexiconHit("billing", "my bill", "en", decisive=False)

    def routed(p_staff: float, queue: str, hits: list[LexiconHit]) -> tuple[str, str | None]:
        prediction = Prediction(p_staff, queue, {queue: p_staff}, "intent", p_staff, [])
        d = decide(policy, "v", "why is my bill so high", [], hits, prediction)
        return d.route, d.queue

    hint_threshold = policy.lexicon.hint_threshold
    assert hint_threshold < policy.classifier.threshold_for("billing")
    between = (hint_threshold + policy.classifier.threshold_for("billing")) / 2
    # between the hint's threshold and billing's own: staff only with the hint
    assert routed(between, "billing", [hint]) == ("staff", "billing")
    assert routed(between, "billing", []) == ("community", None)
    # the hint names the queue when the classifier's most likely queue is another
    assert routed(0.95, "account", [hint]) == ("staff", "billing")
    # below the hint's threshold a hint does not decide
    assert routed(hint_threshold / 2, "billing", [hint]) == ("community", None)
