"""The routing decision: PII, lexicon and classifier combined under the policy.

Any one signal sends a question to staff. The classifier runs with a deadline; an error
or a timeout routes to staff (fail closed) and says so in the reasons. Only redacted text
goes past this module: the lexicon and the classifier never see a raw card number.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field

from retrieval.encoders.base import Encoder
from triage import pii
from triage.classifier import Prediction, TriageModel
from triage.lexicon import Lexicon, LexiconHit
from triage.policy import AnsweredPolicy, Policy

log = logging.getLogger(__name__)

_PII_NAMES = {
    "card": "payment card number (Luhn-valid)",
    "iban": "IBAN (mod-97 valid)",
    "email": "email address",
    "phone": "phone number",
    "account": "account or customer number",
}


class Reason(BaseModel):
    # answered: a classifier-only staff call yielded to a public answer (service.suggest)
    kind: Literal["pii", "lexicon", "classifier", "answered"]
    label: str
    detail: str


class EvidenceItem(BaseModel):
    text: str
    label: str
    route: str
    queue: str | None
    similarity: float


class TriageDecision(BaseModel):
    route: Literal["staff", "community"]
    queue: str | None = Field(description="Staff queue; null for community.")
    confidence: float = Field(ge=0.0, le=1.0)
    reasons: list[Reason]
    evidence: list[EvidenceItem] = Field(
        description="Nearest labelled training examples (public datasets)."
    )
    p_staff: float | None = Field(description="Classifier P(staff); null if it failed.")
    redacted_text: str
    model_version: str


class Triage:
    def __init__(
        self,
        model: TriageModel,
        encoder: Encoder,
        lexicon: Lexicon,
        policy: Policy,
        executor: cf.ThreadPoolExecutor | None = None,
    ) -> None:
        """``executor`` runs the classifier under its deadline; the caller who passes one
        owns it (the service's composition root). Without one, a pool of its own is made
        and ``close`` shuts it."""
        self.model = model
        self.encoder = encoder
        self.lexicon = lexicon
        self.policy = policy
        self._owns_pool = executor is None
        # enough workers that concurrent requests reach the encoder's micro-batcher together
        self._pool = executor or cf.ThreadPoolExecutor(max_workers=32, thread_name_prefix="triage")

    def close(self) -> None:
        if self._owns_pool:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def screen(self, text: str) -> tuple[list[pii.Finding], str, list[LexiconHit]]:
        """The rule signals: PII findings, the redacted text, and lexicon hits on it."""
        findings = pii.detect(text)
        redacted = pii.redact(text, findings)
        hits = self.lexicon.match(redacted) if self.policy.lexicon.enabled else []
        return findings, redacted, hits

    def route(self, text: str, evidence: int | None = None) -> TriageDecision:
        """``evidence``: how many nearest labelled examples to attach (the policy's number
        by default; 0 skips the search over them, for callers that do not show them)."""
        findings, redacted, hits = self.screen(text)
        evidence = self.policy.classifier.evidence if evidence is None else evidence
        try:
            future = self._pool.submit(self.model.predict, self.encoder, [redacted], evidence)
            prediction: Prediction | str = future.result(
                timeout=self.policy.classifier.timeout_seconds
            )[0]
        except cf.TimeoutError:
            prediction = f"timed out after {self.policy.classifier.timeout_seconds}s"
        except Exception as exc:  # fail closed on anything the classifier raises
            log.warning("triage classifier failed: %s", type(exc).__name__)
            prediction = f"failed: {type(exc).__name__}"
        return decide(self.policy, self.model.version, redacted, findings, hits, prediction)


@dataclass
class _Verdict:
    """The decision as the signals build it, strongest first: PII, then the lexicon
    (decisive, then hints), then the classifier; the first to send to staff names the
    queue."""

    reasons: list[Reason] = field(default_factory=list)
    queue: str | None = None
    confidence: float = 0.0
    staff: bool = False

    def to_staff(self, queue: str, confidence: float) -> None:
        self.staff, self.confidence = True, max(self.confidence, confidence)
        self.queue = self.queue or queue

    def pii(self, policy: Policy, findings: list[pii.Finding]) -> None:
        for kind in dict.fromkeys(f.type for f in findings):
            detail = f"{_PII_NAMES[kind]}, redacted as {pii.PLACEHOLDER[kind]}"
            self.reasons.append(Reason(kind="pii", label=kind, detail=detail))
            forced = policy.pii.staff_types.get(kind)
            if forced:
                self.to_staff(forced, 1.0)

    def lexicon(self, policy: Policy, hits: list[LexiconHit]) -> None:
        for hit in hits:
            detail = f'"{hit.phrase}" ({hit.language})'
            if not hit.decisive:
                detail += f"; hint: classifier threshold {policy.lexicon.hint_threshold}"
            self.reasons.append(Reason(kind="lexicon", label=hit.queue, detail=detail))
            if hit.decisive:
                self.to_staff(hit.queue, policy.lexicon.confidence)

    def classifier(self, policy: Policy, hints: list[LexiconHit], prediction: Prediction) -> None:
        threshold = policy.classifier.threshold_for(prediction.queue)
        if hints:
            threshold = min(threshold, policy.lexicon.hint_threshold)
        says_staff = prediction.p_staff >= threshold
        compare = ">=" if says_staff else "<"
        detail = (
            f"P(staff)={prediction.p_staff:.3f} {compare} {threshold} "
            f"(most likely staff queue: {prediction.queue})"
        )
        self.reasons.append(Reason(kind="classifier", label=prediction.intent, detail=detail))
        if says_staff:
            self.to_staff(hints[0].queue if hints else prediction.queue, prediction.p_staff)
        if not self.staff:
            self.confidence = 1.0 - prediction.p_staff

    def failed(self, policy: Policy, error: str) -> None:
        detail = f"classifier {error}; fail closed"
        self.reasons.append(Reason(kind="classifier", label="error", detail=detail))
        # the confidence stays what the other signals gave: we do not know more
        self.staff, self.queue = True, self.queue or policy.fallback_queue


def decide(
    policy: Policy,
    version: str,
    redacted: str,
    findings: list[pii.Finding],
    hits: list[LexiconHit],
    prediction: Prediction | str,
) -> TriageDecision:
    """Combine the signals. ``prediction`` is a string when the classifier failed."""
    verdict = _Verdict()
    verdict.pii(policy, findings)
    verdict.lexicon(policy, hits)
    p_staff: float | None = None
    evidence: list[EvidenceItem] = []
    if isinstance(prediction, str):
        verdict.failed(policy, prediction)
    else:
        p_staff = prediction.p_staff
        verdict.classifier(policy, [h for h in hits if not h.decisive], prediction)
        evidence = [
            EvidenceItem(
                text=e.text,
                label=e.label,
                route=e.route,
                queue=e.queue or None,
                similarity=e.similarity,
            )
            for e in prediction.evidence
        ]
    return TriageDecision(
        route="staff" if verdict.staff else "community",
        queue=verdict.queue if verdict.staff else None,
        confidence=round(min(max(verdict.confidence, 0.0), 1.0), 4),
        reasons=verdict.reasons,
        evidence=evidence,
        p_staff=None if p_staff is None else round(p_staff, 4),
        redacted_text=redacted,
        model_version=version,
    )


def yields_to_answer(rule: AnsweredPolicy, decision: TriageDecision) -> bool:
    """Whether a staff decision may yield to a thread that answers the question in public
    (``AnsweredPolicy``): the classifier ran and alone sent it to staff, no PII was found
    and no lexicon phrase matched (decisive or hint), and P(staff) is below the bound."""
    return (
        rule.enabled
        and decision.route == "staff"
        and decision.p_staff is not None
        and decision.p_staff < rule.max_p_staff
        and all(r.kind == "classifier" for r in decision.reasons)
    )


def answered_in_public(
    rule: AnsweredPolicy, decision: TriageDecision, thread_id: str, relevance: float
) -> TriageDecision:
    """``decision`` (one that ``yields_to_answer``) turned community, the thread named."""
    p_staff = decision.p_staff or 0.0
    detail = (
        f"the forum answers it in public: relevance {relevance:.3f} >= {rule.min_relevance}, "
        f"and only the classifier said staff, P(staff)={p_staff:.3f} < {rule.max_p_staff}"
    )
    reason = Reason(kind="answered", label=thread_id, detail=detail)
    return decision.model_copy(
        update={
            "route": "community",
            "queue": None,
            "confidence": round(1.0 - p_staff, 4),
            "reasons": [*decision.reasons, reason],
        }
    )
