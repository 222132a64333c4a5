"""``POST /v1/triage``: route any text to staff or community (support agents)."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.deps import Agent, EngineDep, MetricsDep
from service.api.schemas import TriageRequest, documented
from triage.decision import TriageDecision

router = APIRouter()


@router.post("/v1/triage", response_model=TriageDecision, responses=documented(), tags=["agent"])
def triage(req: TriageRequest, engine: EngineDep, metrics: MetricsDep, _: Agent) -> TriageDecision:
    """Route any text to `staff` (with a queue) or `community`, with confidence, reasons
    (PII, lexicon, classifier; `answered` when a staff call of the classifier alone, in
    the routing policy's band, yields to a thread that answers the text in public, as in
    /v1/suggest) and the nearest labelled examples. Fails closed: a classifier error or
    timeout routes to staff. Text comes back redacted."""
    decision = engine.route_question(req.text)
    metrics.triage.labels(decision.route, decision.queue or "-").inc()
    if any(r.kind == "answered" for r in decision.reasons):
        metrics.answered.labels("triage").inc()
    return decision
