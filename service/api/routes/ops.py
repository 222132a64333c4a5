"""Operations: liveness and readiness, Prometheus metrics, and the admin's index tools
(reindex, verify)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.api.deps import Admin, Agent, EngineDep, MetricsDep
from service.api.schemas import Health, Ready, VerifyResult, documented

router = APIRouter()


@router.get("/healthz", response_model=Health, tags=["ops"])
def healthz(engine: EngineDep) -> Health:
    """Liveness: the process answers (no database query: cheap at any size)."""
    return Health(status="ok", threads=engine.corpus.indexed(), model=engine.encoder.name)


@router.get(
    "/readyz",
    response_model=Ready,
    responses={503: {"model": Ready, "description": "Not ready"}},
    tags=["ops"],
)
def readyz(engine: EngineDep) -> JSONResponse:
    """Readiness: encoder and triage loaded, both databases answer, and the vector index
    has applied every committed write and holds every stored thread. The store's count
    is re-read only when its generation moved (one key read otherwise: cheap at 1M)."""
    generation, threads = engine.corpus.count_at_generation()
    indexed = engine.corpus.indexed()
    checks = {
        "encoder": engine.encoder is not None,
        "triage": engine.triage is not None,
        "store": engine.store.ping(),
        "activity": engine.activity.ping(),
        "index": engine.corpus.generation == generation and indexed == threads,
    }
    ok = all(checks.values())
    body = Ready(
        status="ready" if ok else "not_ready",
        checks=checks,
        threads=threads,
        indexed=indexed,
        fast_scan=engine.corpus.fast_scan_state(),
        warm_up="done" if engine.warmed.is_set() else "running",
    )
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses=documented()
    | {200: {"content": {"text/plain": {"example": "unsource_index_threads 1170.0\n"}}}},
    tags=["agent"],
)
def metrics(registry: MetricsDep, _: Agent) -> Response:
    """Prometheus metrics: request latency per route, suggest decisions, triage routes,
    feedback, rate-limit refusals, webhook attempts and index size."""
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)


@router.post(
    "/v1/admin/reindex",
    responses=documented({"threads": 1170, "re_embedded": 1170}),
    tags=["admin"],
)
def reindex(engine: EngineDep, _: Admin) -> dict[str, int]:
    """Rebuild the vector index from the store's vectors, re-embedding only threads whose
    stored vector came from another model (searches wait while it runs)."""
    done = engine.corpus.rebuild()
    return {"threads": engine.corpus.count(), "re_embedded": done}


VERIFY_EXAMPLE = {
    "ok": True, "threads": 1170, "indexed": 1170, "missing": [], "extra": [], "duplicated": 0,
    "sampled": 100, "misranked": [],
}  # fmt: skip


@router.get(
    "/v1/admin/verify",
    response_model=VerifyResult,
    responses=documented(VERIFY_EXAMPLE),
    tags=["admin"],
)
def verify(
    engine: EngineDep,
    _: Admin,
    sample: Annotated[
        int, Query(ge=0, le=10_000, description="Threads ranked by their own vector.")
    ] = 100,
) -> VerifyResult:
    """Compare the vector index with the store: the same keys, each once, and each sampled
    thread's own stored vector ranks it first. `ok` is false on any difference."""
    v = engine.corpus.verify(sample)
    return VerifyResult(ok=v.ok, **asdict(v))
