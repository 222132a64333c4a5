"""``create_app``: the FastAPI app around an engine: its lifecycle (the engine, the
escalation loop and the index refresher start and stop with it), the middleware (request
context and metrics, body limits, dev-mode guard, CORS) and the error contract. The routes
are in ``service.api.routes``, one router per feature.

Roles (service/api/auth.py): public keys suggest and give feedback, agent keys also triage,
read threads, register questions and see escalations, stats and metrics; admin keys also
write threads.
"""

import gc
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException
from threadpoolctl import threadpool_limits

from index.activity import ActivityStore
from index.errors import UnsourceError, ValidationFailed
from service import experts
from service.api.auth import Keyring
from service.api.headers import SecurityHeaders
from service.api.limits import BodyLimit, DevGuard, RateLimiter
from service.api.routes import ROUTERS
from service.background import Once, Periodic
from service.config import Settings
from service.escalation import Escalations
from service.observability import Metrics, RequestContext
from service.runtime import Engine, build_engine

log = logging.getLogger(__name__)


RETENTION_EVERY_S = 3600.0


def retention(activity: ActivityStore, days: int, owner: str) -> None:
    """Purge the suggest log and votes older than ``days`` (UNSOURCE_RETENTION_DAYS), on one
    replica at a time: the one that holds the ``retention`` lease for this round."""
    now = datetime.now(UTC)
    lease = timedelta(seconds=RETENTION_EVERY_S * 0.9)
    if not activity.try_lease("retention", owner, now, now + lease):
        return
    logged, votes = activity.purge(now - timedelta(days=days))
    if logged or votes:
        log.info("retention: purged %d suggest-log rows and %d votes", logged, votes)


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


_frozen = 0  # serving apps in this process that hold the heap frozen
_frozen_lock = threading.Lock()


@contextmanager
def frozen_heap() -> Iterator[None]:
    """What a loaded engine holds (models, a million-entry index's key set, ...) is moved
    out of the cyclic garbage collector's view while serving: it lives as long as the app,
    yet every full collection walked all of it. At a million threads a full collection
    took 115-130 ms, once every ~300 requests, each time inside a request. Unfrozen when
    the last serving app in the process stops."""
    global _frozen
    with _frozen_lock:
        gc.collect()
        gc.freeze()
        _frozen += 1
    try:
        yield
    finally:
        with _frozen_lock:
            _frozen -= 1
            if not _frozen:
                gc.unfreeze()


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
        metrics.track_index(app.state.engine.corpus.indexed)  # in memory: no table count
        app.state.escalations = Escalations(
            app.state.engine.activity,
            settings,
            on_attempt=lambda outcome: metrics.webhooks.labels(outcome).inc(),
            find_experts=partial(experts.as_payload, app.state.engine),
        )
        app.state.escalations.start()
        refresher = Periodic(
            "index-refresh", settings.index_refresh_seconds, app.state.engine.refresh_index
        )
        refresher.start()
        jobs: list[Periodic | Once] = [refresher]
        jobs.append(Once("warm-caches", app.state.engine.warm_caches))
        jobs[-1].start()
        if settings.retention_days:
            purge = partial(
                retention,
                app.state.engine.activity,
                settings.retention_days,
                app.state.escalations.owner,
            )
            jobs.append(Periodic("retention", RETENTION_EVERY_S, purge))
            jobs[-1].start()
        try:
            with frozen_heap():
                yield
        finally:
            for job in jobs:
                job.stop()
            app.state.escalations.stop()
            app.state.engine.close()
            blas.restore_original_limits()

    # with docs on, Swagger UI and ReDoc are served from this origin (fastapi-offline),
    # never from a CDN: the console's agent key lives in this origin's sessionStorage
    make = FastAPIOffline if settings.api_docs else FastAPI
    app = make(
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
    app.state.limiter = RateLimiter(
        {str(r): b for r, b in settings.rate_limits.items()}, settings.rate_limit_storage
    )
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
    app.add_middleware(RequestContext, metrics=metrics)  # sees every response
    app.add_middleware(SecurityHeaders)  # outermost: on every response, errors included

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
    async def _internal(request: Request, exc: UnsourceError) -> JSONResponse:
        # an admin key sees the whole message ("write not committed: database or disk is
        # full"); anyone else what failed in unsource's own words ("thread store
        # unavailable"), never the driver's text after it: it names hosts, ports and paths
        # (security N10). The whole message goes to the log.
        log.error("503 on %s: %s", request.url.path, exc)
        if getattr(request.state, "role", None) == "admin":
            return _error(503, "unavailable", [("-", str(exc))])
        head = str(exc).split(":", 1)[0].strip() or "unavailable"
        return _error(503, "unavailable", [("-", f"{head}; retry later")])

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

    for router in ROUTERS:
        app.include_router(router)
    return app
