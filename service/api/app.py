"""``create_app``: the FastAPI app around an engine: the middleware (request context and
metrics, body limits, dev-mode guard, CORS, security headers) and the routers. Its lifespan
(the engine and the jobs beside it) is ``service.api.lifespan``, its error contract
``service.api.errors``, the routes ``service.api.routes``, one router per feature.

Roles (service/api/auth.py): public keys suggest and give feedback, agent keys also triage,
read threads, register questions and see escalations, stats and metrics; admin keys also
write threads.
"""

from functools import partial
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline

from service.api.auth import Keyring
from service.api.deps import single_valued_query
from service.api.errors import add_error_handlers
from service.api.headers import SecurityHeaders
from service.api.lifespan import serving
from service.api.limits import BodyLimit, DevGuard, RateLimiter
from service.api.routes import ROUTERS
from service.config import Settings
from service.observability import Metrics, RequestContext
from service.runtime import Engine


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
        lifespan=partial(serving, settings=settings, engine=engine, metrics=metrics),
        docs_url="/docs" if settings.api_docs else None,
        redoc_url="/redoc" if settings.api_docs else None,
        dependencies=[Depends(single_valued_query)],
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

    add_error_handlers(app)

    for router in ROUTERS:
        app.include_router(router)
    return app
