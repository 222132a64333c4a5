"""A classifier-only staff call in the policy's ``answered`` band yields to a thread the
forum answers the question with (``/v1/suggest``, ``/v1/triage``, a registered question);
every other staff call is final."""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from fastapi.testclient import TestClient

from index.errors import ValidationFailed
from index.store.protocol import StoredThread
from retrieval.search import Hit, Searcher, SearchResult
from service.runtime import Engine
from service.suggest import SuggestPolicy
from tests.support import SAMPLE
from triage import pii
from triage.classifier import Prediction
from triage.decision import TriageDecision, answered_in_public, decide, yields_to_answer
from triage.lexicon import LexiconHit
from triage.policy import AnsweredPolicy, Policy

POLICY = Policy.load()  # the shipped policy: classifier 0.3, answered band below 0.45 at 0.7
RULE = POLICY.answered
TEXT = "my old mechanical chime doesn't ring with the doorbell"


def _decision(
    p_staff: float | None, hits: list[LexiconHit] | None = None, text: str = TEXT
) -> TriageDecision:
    findings = pii.detect(text)
    prediction: Prediction | str = (
        "failed: RuntimeError"
        if p_staff is None
        else Prediction(p_staff, "account", {"account": p_staff}, "intent", p_staff, [])
    )
    return decide(POLICY, "v", pii.redact(text, findings), findings, hits or [], prediction)


def test_the_shipped_band_lies_above_the_classifier_threshold() -> None:
    assert POLICY.classifier.threshold < RULE.max_p_staff < 1.0 and RULE.enabled


def test_only_a_classifier_only_staff_call_below_the_bound_yields() -> None:
    inside = _decision(0.35)
    assert inside.route == "staff" and yields_to_answer(RULE, inside)
    assert not yields_to_answer(RULE, _decision(0.5))  # P(staff) at or above the bound
    assert not yields_to_answer(RULE, _decision(RULE.max_p_staff))
    assert not yields_to_answer(RULE, _decision(0.1))  # community already
    assert not yields_to_answer(RULE, _decision(None))  # classifier failed: closed
    hint = LexiconHit("billing", "my bill", "en", decisive=False)
    decisive = LexiconHit("billing", "charged twice", "en", decisive=True)
    assert not yields_to_answer(RULE, _decision(0.35, [hint]))
    assert not yields_to_answer(RULE, _decision(0.35, [decisive]))
    with_email = _decision(0.35, text=TEXT + " write to ana@example.com")
    assert with_email.route == "staff" and not yields_to_answer(RULE, with_email)
    off = RULE.model_copy(update={"enabled": False})
    assert not yields_to_answer(off, inside)


def test_a_yielded_decision_is_community_and_names_the_thread() -> None:
    d = answered_in_public(RULE, _decision(0.35), "lumio-024", 0.99)
    assert d.route == "community" and d.queue is None
    assert d.confidence == pytest.approx(0.65)
    assert d.reasons[-1].kind == "answered" and d.reasons[-1].label == "lumio-024"
    assert "0.990" in d.reasons[-1].detail and d.p_staff == pytest.approx(0.35)


def test_a_bad_answered_section_names_its_field(tmp_path: Path) -> None:
    bad = tmp_path / "p.toml"
    bad.write_text("[answered]\nmin_relevance = 1.5\nmax_p_staff = 0\nspeed = 1\n")
    with pytest.raises(ValidationFailed) as exc:
        Policy.load(bad)
    fields = {p[1] for p in exc.value.problems}
    assert fields == {"answered.min_relevance", "answered.max_p_staff", "answered.speed"}


# -- the suggest policy -------------------------------------------------------------------


def _hit(i: int, relevance: float | None) -> Hit:
    return Hit(StoredThread(i + 1, SAMPLE[i]), 0.8, 0.7, None, relevance)


class FakeSearcher:
    def __init__(self, result: SearchResult | Exception) -> None:
        self.result = result
        self.calls = 0

    def search(self, *_: Any, **__: Any) -> SearchResult:
        self.calls += 1
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


@pytest.fixture(params=[False, True], ids=["serial", "parallel"])
def pool(request: pytest.FixtureRequest) -> Iterator[cf.Executor | None]:
    if not request.param:
        yield None
        return
    with cf.ThreadPoolExecutor(2) as executor:
        yield executor


def _suggest(
    decision: TriageDecision,
    result: SearchResult | Exception,
    pool: cf.Executor | None,
    rule: AnsweredPolicy | None = RULE,
) -> tuple[str, TriageDecision, SearchResult | None, int]:
    searcher = FakeSearcher(result)
    policy = SuggestPolicy(cast(Searcher, searcher), lambda *_, **__: decision, pool, answered=rule)
    out = policy(TEXT, k=5)
    return out.decision, out.triage, out.result, searcher.calls


def test_a_public_answer_turns_a_band_staff_call_into_suggestions(
    pool: cf.Executor | None,
) -> None:
    found = SearchResult("suggest", [_hit(2, 0.55), _hit(0, 0.99)], 0.7, "en", 0.39, 0.99)
    decision, triage, result, _ = _suggest(_decision(0.35), found, pool)
    assert decision == "suggest" and triage.route == "community"
    assert triage.reasons[-1].kind == "answered" and triage.reasons[-1].label == "t1"
    # only the threads that reach the band's relevance are shown
    assert result is not None and [h.thread.thread.id for h in result.hits] == ["t1"]


@pytest.mark.parametrize(
    "result",
    [
        SearchResult("suggest", [_hit(0, 0.6)], 0.7, "en", 0.39, 0.6),  # not answered enough
        SearchResult("no_match", [], 0.3, "en", 0.39, 0.2),
        SearchResult("suggest", [_hit(0, None)], 0.7, "en", 0.45),  # relevance stage off
        RuntimeError("index gone"),  # a failed search leaves it with staff
    ],
    ids=["weak", "no_match", "no_relevance", "search_failed"],
)
def test_without_a_public_answer_staff_stays_staff(
    pool: cf.Executor | None, result: SearchResult | Exception
) -> None:
    decision, triage, shown, _ = _suggest(_decision(0.35), result, pool)
    assert (decision, triage.route, shown) == ("staff", "staff", None)


def test_a_final_staff_call_is_not_searched_in_series() -> None:
    found = SearchResult("suggest", [_hit(0, 0.99)], 0.7, "en", 0.39, 0.99)
    for decision, rule in [(_decision(0.6), RULE), (_decision(0.35), None)]:
        out, triage, shown, calls = _suggest(decision, found, None, rule)
        assert (out, triage.route, shown, calls) == ("staff", "staff", None, 0)
    out, _, _, calls = _suggest(_decision(0.35), found, None)
    assert (out, calls) == ("suggest", 1)


# -- /v1/triage and a registered question route as suggest does --------------------------


def _band(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, result: SearchResult | Exception
) -> list[str]:
    """The engine's triage gives a staff call in the band; its search gives ``result``.
    Returns the texts searched."""
    searched: list[str] = []

    def search(title: str, body: str = "", k: int = 5, **_: Any) -> SearchResult:
        searched.append(title)
        if isinstance(result, Exception):
            raise result
        return result

    monkeypatch.setattr(engine, "route", lambda text, evidence=None: _decision(0.35, text=text))
    monkeypatch.setattr(engine.searcher, "search", search)
    return searched


ANSWERED = SearchResult("suggest", [_hit(0, 0.95)], 0.7, "en", 0.39, 0.95)


def test_route_question_searches_the_redacted_text_of_a_band_staff_call(
    loaded: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    searched = _band(loaded, monkeypatch, ANSWERED)
    d = loaded.route_question(TEXT)
    assert d.route == "community" and d.reasons[-1].label == "t1" and searched == [TEXT]
    failing = _band(loaded, monkeypatch, RuntimeError("index gone"))
    assert loaded.route_question(TEXT).route == "staff" and failing == [TEXT]


def test_v1_triage_and_a_registered_question_take_the_public_answer(
    client: TestClient, loaded: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _band(loaded, monkeypatch, ANSWERED)
    d = client.post("/v1/triage", json={"text": TEXT}).json()
    assert d["route"] == "community" and d["queue"] is None
    assert [r["kind"] for r in d["reasons"]] == ["classifier", "answered"]
    metrics = client.get("/metrics").text
    assert 'unsource_answered_in_public_total{endpoint="triage"} 1.0' in metrics
    r = client.post("/v1/questions", json={"id": "q-chime", "title": TEXT})
    assert r.status_code in (200, 201), r.text
    stored = client.get("/v1/questions/q-chime").json()
    assert stored["triage"]["route"] == "community", stored
