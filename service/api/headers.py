"""Security headers on every response (security N14): no MIME sniffing, no referrer, no
framing of any page, and a Content-Security-Policy on each HTML page that allows scripts
from this origin only (the console, which holds an agent key in the tab's sessionStorage,
runs no inline script at all)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

COMMON = {
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
    b"x-frame-options": b"DENY",
}
# the console and any page without inline script: scripts and data from this origin only
STRICT = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
# Swagger UI / ReDoc (served from this origin by fastapi-offline, no CDN) and the demo
# forum page start themselves with a few inline lines FastAPI writes
PAGES = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; base-uri 'none'; frame-ancestors 'none'"
)
INLINE_PAGES = ("/docs", "/redoc", "/demo")


class SecurityHeaders:
    """Pure ASGI middleware (no body buffering): adds the headers as the response starts."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in COMMON.items() if k not in present]
                kind = dict(headers).get(b"content-type", b"")
                if kind.startswith(b"text/html"):
                    policy = PAGES if path.startswith(INLINE_PAGES) else STRICT
                    headers.append((b"content-security-policy", policy.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)
