"""The error contract of every response: ``{"error": kind, "detail": [{"field", "message"}]}``
with 422 for a field that is wrong (FastAPI's own validation and unsource's), 503 for a
store that failed (an admin key sees why), and the HTTP errors under their own kinds."""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from index.errors import UnsourceError, ValidationFailed

log = logging.getLogger(__name__)

KINDS = {401: "unauthorized", 403: "forbidden", 404: "not_found", 429: "rate_limited"}


def _error(code: int, error: str, items: list[tuple[str, str]], **kw: Any) -> JSONResponse:
    return JSONResponse(
        status_code=code,
        content={"error": error, "detail": [{"field": f, "message": m} for f, m in items]},
        **kw,
    )


async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
    items = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        if loc and loc[0] in ("body", "query", "path"):
            loc = loc[1:]
        items.append((".".join(loc) or "body", str(err.get("msg", "invalid"))))
    return _error(422, "validation_error", items)


async def _refused(_: Request, exc: ValidationFailed) -> JSONResponse:
    return _error(422, "validation_error", [(f"{loc}.{f}", m) for loc, f, m in exc.problems])


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


async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == 400:  # FastAPI's "error parsing the body" (e.g. not UTF-8)
        return _error(422, "validation_error", [("body", str(exc.detail))])
    field = "X-API-Key" if exc.status_code in (401, 403) else "-"
    return _error(
        exc.status_code,
        KINDS.get(exc.status_code, "http_error"),
        [(field, str(exc.detail))],
        headers=exc.headers,
    )


def add_error_handlers(app: FastAPI) -> None:
    """Every error the app answers goes through one of these (FastAPI's HTTPException is
    a subclass of Starlette's)."""
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    app.add_exception_handler(ValidationFailed, _refused)  # type: ignore[arg-type]
    app.add_exception_handler(UnsourceError, _internal)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http)  # type: ignore[arg-type]
