"""FastAPI app: suggest, triage, thread writes and reads, health and readiness.

Roles (service/auth.py): public keys suggest and give feedback, agent keys also triage,
read threads, register questions and see escalations, stats and metrics; admin keys also
write threads. Operations routes are in service/routes_ops.py, the widget in
service/widget.py.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Path, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from threadpoolctl import threadpool_limits

from index.errors import UnsourceError, ValidationFailed
from index.models import MAX_ID, Thread, ThreadFields
from retrieval.language import detect
from service import routes_ops, widget
from service.auth import Keyring
from service.background import Periodic
from service.config import Settings
from service.deps import Admin, Agent, EngineDep, Public
from service.escalation import Escalations
from service.limits import BodyLimit, DevGuard, RateLimiter
from service.observability import Metrics, RequestContext
from service.runtime import Engine, build_engine
from service.schemas import (
    AUTH_ERRORS,
    ERRORS,
    BulkRequest,
    BulkResult,
    Health,
    Ready,
    Suggestion,
    SuggestRequest,
    SuggestResponse,
    ThreadPublic,
    TriageRequest,
    WriteResult,
    example,
    excerpt,
)
from triage.decision import TriageDecision

ThreadIdPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_ID,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$",
        examples=["lumio-001"],
    ),
]
SUGGEST_EXAMPLE = {
    "request_id": "0b8f6c1e2d3a4b5c9e7f112233445566",
    "decision": "suggest",
    "queue": None,
    "reasons": [],
    "suggestions": [
        {
            "thread_id": "hub-reset-1",
            "title": "How do I factory reset the Lumio hub?",
            "answer_excerpt": "Hold the reset button for 15 seconds until the light blinks.",
            "url": "https://community.example.com/t/hub-reset-1",
            "score": 0.712,
            "similarity": 0.803,
            "accepted": True,
            "answer_votes": 12,
        }
    ],
    "best_similarity": 0.803,
    "threshold": 0.45,
}


def _error(code: int, error: str, items: list[tuple[str, str]], **kw: Any) -> JSONResponse:
    return JSONResponse(
        status_code=code,
        content={"error": error, "detail": [{"field": f, "message": m} for f, m in items]},
        **kw,
    )


def behind_proxies(app: Any, settings: Settings) -> Any:
    """The ASGI app as served: with ``trusted_proxies``, uvicorn's ProxyHeadersMiddleware
    takes the client address from X-Forwarded-For, but only on connections from those
    proxies; without, the app sees the connecting address (``serve`` turns uvicorn's own
    proxy-header handling off, which would otherwise trust loopback)."""
    if not settings.trusted_proxies:
        return app
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    return ProxyHeadersMiddleware(app, trusted_hosts=list(settings.trusted_proxies))


def body_limits(settings: Settings) -> Any:
    """Body limits by path and the caller's role: the large ones only for admin keys."""

    def limit_for(path: str, role: str | None) -> int:
        if role == "admin" and path == "/v1/threads:bulk":
            return settings.max_bulk_body_bytes
        if role == "admin" and path.startswith("/v1/threads/"):  # title+body+answer, 40k chars
            return 4 * settings.max_body_bytes
        return settings.max_body_bytes

    return limit_for


def key_roles(settings: Settings, keyring: Keyring) -> Any:
    """Presented keys -> role, as the auth dependency decides it (dev mode: admin)."""

    def identify(keys: list[str]) -> str | None:
        if not keys:
            return "admin" if settings.dev_mode else None
        found = {keyring.identify(k) for k in keys}
        if None in found or len(found) != 1:
            return None
        principal = found.pop()
        return None if principal is None else principal.role

    return identify


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    settings = settings or Settings()
    settings.check_serving()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = engine or build_engine(settings)
        app.state.engine.warm_up()
        # Each request is its own thread; multi-threaded BLAS under them spins (measured:
        # 35 vs 831 triage predictions/s from 16 threads on 2 cores). After the engine, so
        # that every BLAS its models loaded is covered.
        blas = threadpool_limits(settings.blas_threads, user_api="blas")
        metrics.track_index(app.state.engine.catalog.indexed)  # in memory: no table count
        app.state.escalations = Escalations(
            app.state.engine.activity,
            settings,
            on_attempt=lambda outcome: metrics.webhooks.labels(outcome).inc(),
        )
        app.state.escalations.start()
        refresher = Periodic(
            "index-refresh", settings.index_refresh_seconds, app.state.engine.refresh_index
        )
        refresher.start()
        try:
            yield
        finally:
            refresher.stop()
            app.state.escalations.stop()
            app.state.engine.close()
            blas.restore_original_limits()

    app = FastAPI(
        title="unsource",
        version="0.2.0",
        summary="Suggest existing community answers; route confidential questions to staff.",
        description="Send an API key as `X-API-Key` or `Authorization: Bearer`. Roles nest: "
        "public (suggest, feedback) ⊂ agent (triage, threads read, questions, escalations, "
        "stats, metrics) ⊂ admin (thread writes, reindex).",
        lifespan=lifespan,
        docs_url="/docs" if settings.api_docs else None,
        redoc_url="/redoc" if settings.api_docs else None,
    )
    app.state.settings = settings
    app.state.keyring = Keyring(settings.api_keys)
    app.state.limiter = RateLimiter({str(r): b for r, b in settings.rate_limits.items()})
    app.state.metrics = metrics
    app.add_middleware(
        BodyLimit,
        limit_for=body_limits(settings),
        identify=key_roles(settings, Keyring(settings.api_keys)),
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "X-API-Key", "Authorization"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    if settings.dev_mode:
        app.add_middleware(DevGuard)
    app.add_middleware(RequestContext, metrics=metrics)  # outermost: sees every response

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        items = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ())]
            if loc and loc[0] in ("body", "query", "path"):
                loc = loc[1:]
            items.append((".".join(loc) or "body", str(err.get("msg", "invalid"))))
        return _error(422, "validation_error", items)

    @app.exception_handler(ValidationFailed)
    async def _refused(_: Request, exc: ValidationFailed) -> JSONResponse:
        return _error(422, "validation_error", [(f"{loc}.{f}", m) for loc, f, m in exc.problems])

    @app.exception_handler(UnsourceError)
    async def _internal(_: Request, exc: UnsourceError) -> JSONResponse:
        return _error(503, "unavailable", [("-", str(exc))])

    @app.exception_handler(StarletteHTTPException)  # FastAPI's own subclass included
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI's "error parsing the body" (e.g. not UTF-8)
            return _error(422, "validation_error", [("body", str(exc.detail))])
        field = "X-API-Key" if exc.status_code in (401, 403) else "-"
        kinds = {401: "unauthorized", 403: "forbidden", 404: "not_found", 429: "rate_limited"}
        return _error(
            exc.status_code,
            kinds.get(exc.status_code, "http_error"),
            [(field, str(exc.detail))],
            headers=exc.headers,
        )

    @app.post(
        "/v1/suggest",
        response_model=SuggestResponse,
        responses={**AUTH_ERRORS, **example(SUGGEST_EXAMPLE)},
        tags=["public"],
    )
    def suggest(
        req: SuggestRequest, engine: EngineDep, _: Public, request: Request
    ) -> SuggestResponse:
        """Triage first: a confidential question gets `staff` with its queue and reasons and
        no peer suggestions. Otherwise the best existing answers, or `no_match`. Quote the
        `request_id` in /v1/feedback."""
        outcome = engine.suggest(req.title, req.body, req.k, req.tags, req.language)
        triage, result = outcome.triage, outcome.result
        hits = result.hits if result else []
        rid: str = request.state.request_id
        engine.activity.log_suggest(
            rid,
            datetime.now(UTC),
            outcome.decision,
            triage.queue,
            [h.thread.thread.id for h in hits],
        )
        metrics.decisions.labels(outcome.decision).inc()
        return SuggestResponse(
            request_id=rid,
            decision=outcome.decision,
            queue=triage.queue,
            reasons=triage.reasons,
            suggestions=[
                Suggestion(
                    thread_id=h.thread.thread.id,
                    title=h.thread.thread.title,
                    answer_excerpt=excerpt(h.thread.thread.answer),
                    url=h.thread.thread.url,
                    score=round(h.score, 6),
                    similarity=round(h.similarity, 6),
                    language=h.thread.thread.language,
                    accepted=h.thread.thread.accepted,
                    answer_votes=h.thread.thread.answer_votes,
                )
                for h in hits
            ],
            best_similarity=None
            if result is None or result.best_similarity is None
            else round(result.best_similarity, 6),
            threshold=engine.settings.min_similarity if result is None else result.threshold,
            language=detect(f"{req.title}\n{req.body}") if result is None else result.language,
        )

    @app.post("/v1/triage", response_model=TriageDecision, responses=AUTH_ERRORS, tags=["agent"])
    def triage(req: TriageRequest, engine: EngineDep, _: Agent) -> TriageDecision:
        """Route any text to `staff` (with a queue) or `community`, with confidence, reasons
        (PII, lexicon, classifier) and the nearest labelled examples. Fails closed: a
        classifier error or timeout routes to staff. Text comes back redacted."""
        decision = engine.route(req.text)
        metrics.triage.labels(decision.route, decision.queue or "-").inc()
        return decision

    @app.put(
        "/v1/threads/{thread_id}",
        response_model=WriteResult,
        responses={201: {"model": WriteResult, "description": "Created"}, **AUTH_ERRORS},
        tags=["admin"],
    )
    def put_thread(
        thread_id: ThreadIdPath,
        fields: ThreadFields,
        engine: EngineDep,
        response: Response,
        _: Admin,
    ) -> WriteResult:
        """Create or replace a thread. Committed and searchable when this returns."""
        report = engine.upsert([Thread(id=thread_id, **fields.model_dump())])
        if report.created:
            response.status_code = status.HTTP_201_CREATED
            return WriteResult(id=thread_id, result="created")
        return WriteResult(id=thread_id, result="updated" if report.updated else "unchanged_text")

    @app.post("/v1/threads:bulk", response_model=BulkResult, responses=AUTH_ERRORS, tags=["admin"])
    def bulk(req: BulkRequest, engine: EngineDep, _: Admin) -> BulkResult:
        """Upsert up to 1000 threads in one transaction."""
        report = engine.upsert(req.threads)
        return BulkResult(
            created=len(report.created),
            updated=len(report.updated),
            unchanged_text=len(report.unchanged_text),
            count=engine.catalog.count(),
        )

    @app.get(
        "/v1/threads/{thread_id}", response_model=ThreadPublic, responses=ERRORS, tags=["agent"]
    )
    def get_thread(thread_id: ThreadIdPath, engine: EngineDep, _: Agent) -> ThreadPublic:
        """A stored thread, as stored (redacted)."""
        stored = engine.catalog.get(thread_id)
        if stored is None:
            raise HTTPException(404, f"thread {thread_id!r} not found")
        return ThreadPublic.model_validate(stored.thread.model_dump())

    @app.delete(
        "/v1/threads/{thread_id}",
        status_code=204,
        response_class=Response,
        responses=ERRORS,
        tags=["admin"],
    )
    def delete_thread(thread_id: ThreadIdPath, engine: EngineDep, _: Admin) -> Response:
        """Remove a thread from the store, keyword index and vectors."""
        if not engine.catalog.delete(thread_id):
            raise HTTPException(404, f"thread {thread_id!r} not found")
        return Response(status_code=204)

    @app.get("/healthz", response_model=Health, tags=["ops"])
    def healthz(engine: EngineDep) -> Health:
        """Liveness: the process answers (no database query: cheap at any size)."""
        return Health(status="ok", threads=engine.catalog.indexed(), model=engine.encoder.name)

    @app.get(
        "/readyz",
        response_model=Ready,
        responses={503: {"model": Ready, "description": "Not ready"}},
        tags=["ops"],
    )
    def readyz(engine: EngineDep) -> JSONResponse:
        """Readiness: encoder and triage loaded, both databases answer, and the vector index
        has applied every committed write and holds every stored thread. The store's count
        is re-read only when its generation moved (one key read otherwise: cheap at 1M)."""
        generation, threads = engine.catalog.count_at_generation()
        indexed = engine.catalog.indexed()
        checks = {
            "encoder": engine.encoder is not None,
            "triage": engine.triage is not None,
            "store": engine.store.ping(),
            "activity": engine.activity.ping(),
            "index": engine.catalog.generation == generation and indexed == threads,
        }
        ok = all(checks.values())
        body = Ready(
            status="ready" if ok else "not_ready", checks=checks, threads=threads, indexed=indexed
        )
        return JSONResponse(body.model_dump(), status_code=200 if ok else 503)

    app.include_router(routes_ops.router)
    app.include_router(widget.router)
    return app
