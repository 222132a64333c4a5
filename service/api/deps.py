"""FastAPI dependencies: the engine, the metrics, the escalation loop (all made by
``create_app``), and API-key authorisation with per-key rate limits.

They are ``async``: each does a few dictionary lookups and never blocks, and FastAPI runs a
sync dependency on its thread pool, one thread hand-off each (measured on 2 cores: /healthz
3.8 -> 1.7 ms, a suggest about 4 ms less). The in-memory rate limiter does not block; a
limiter that does network I/O must run off the event loop."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from index.models import AwareTimestamp
from service.api.auth import Principal, Role
from service.api.limits import client_bucket
from service.escalation import Escalations
from service.observability import Metrics
from service.runtime import Engine

DEV = Principal("dev", "admin")
api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="An API key (or send it as a Bearer token)."
)
bearer = HTTPBearer(auto_error=False, description="An API key as a Bearer token.")


async def single_valued_query(request: Request) -> None:
    """Every query parameter of this API takes one value: one given twice
    (``?after=a&after=b``) is refused with 422 naming it, instead of the framework quietly
    taking the last (the schema fuzzer found ``after`` sent as an array accepted)."""
    params = request.query_params
    if len(params) == len(params.multi_items()):  # no key repeated: nothing to count
        return
    counts = Counter(key for key, _ in params.multi_items())
    raise RequestValidationError(
        [
            {"type": "repeated", "loc": ("query", key), "msg": f"given {n} times; send one value"}
            for key, n in counts.items()
            if n > 1
        ]
    )


async def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


async def get_escalations(request: Request) -> Escalations:
    escalations: Escalations = request.app.state.escalations
    return escalations


EngineDep = Annotated[Engine, Depends(get_engine)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
EscalationsDep = Annotated[Escalations, Depends(get_escalations)]


def authorize(role: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency: 401 without a valid key, 403 below ``role``, 429 over the key's budget."""

    async def dependency(
        request: Request,
        key: Annotated[str | None, Security(api_key_header)],
        token: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    ) -> Principal:
        state = request.app.state
        presented = [k for k in (key, token.credentials if token else None) if k]
        if not presented:
            if not state.settings.dev_mode:
                raise HTTPException(
                    401,
                    "missing API key: send X-API-Key or Authorization: Bearer",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            principal = DEV
        else:  # every key presented must be valid, and name the same principal
            found = {state.keyring.identify(k) for k in presented}
            if None in found or len(found) != 1:
                raise HTTPException(401, "invalid API key", headers={"WWW-Authenticate": "Bearer"})
            principal = found.pop()
        if not principal.allows(role):
            raise HTTPException(403, f"this key has role {principal.role!r}; needs {role!r}")
        request.state.principal = principal.name
        request.state.role = principal.role
        client = client_bucket(request.client.host) if request.client else "-"
        limiter = state.limiter  # a shared (Redis) limiter counts over the network: off-loop
        retry = (
            await run_in_threadpool(limiter.retry_after, principal, client)
            if limiter.shared
            else limiter.retry_after(principal, client)
        )
        if retry is not None:
            state.metrics.rate_limited.labels(principal.role).inc()
            raise HTTPException(
                429, f"rate limit for key {principal.name!r}", headers={"Retry-After": str(retry)}
            )
        return principal

    return dependency


Public = Annotated[Principal, Depends(authorize("public"))]
Agent = Annotated[Principal, Depends(authorize("agent"))]
Admin = Annotated[Principal, Depends(authorize("admin"))]

# the start of a report's period, as every report route takes it
Since = Annotated[
    AwareTimestamp | None, Query(description="ISO-8601 time with offset; default: all time")
]
