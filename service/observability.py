"""Request ids, Prometheus metrics and structured logs. Every formatted log line is
redacted on the way out, whatever a caller put in it."""

from __future__ import annotations

import contextvars
import logging
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any, TextIO

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pythonjsonlogger.json import JsonFormatter

from service.api.limits import Message, Receive, Scope, Send
from triage import pii

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
access_log = logging.getLogger("unsource.access")


# label values are bounded: any other method is "other", any unmatched path "unmatched"
HTTP_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT")
)


class Metrics:
    """One registry per app, so several apps (tests) never share counters."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.latency = Histogram(
            "unsource_request_seconds",
            "HTTP request latency by route",
            ["method", "route", "status"],
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )
        self.decisions = Counter(
            "unsource_suggest_decisions", "Suggest outcomes by decision", ["decision"], registry=r
        )
        self.triage = Counter(
            "unsource_triage_routes", "Triage routes by queue", ["route", "queue"], registry=r
        )
        self.answered = Counter(
            "unsource_answered_in_public",
            "Classifier-only staff calls that yielded to a public answer (the routing "
            "policy's [answered] band), by endpoint",
            ["endpoint"],
            registry=r,
        )
        self.feedback = Counter(
            "unsource_feedback", "Reader feedback on suggestions", ["helpful"], registry=r
        )
        self.rate_limited = Counter(
            "unsource_rate_limited", "Requests refused with 429", ["role"], registry=r
        )
        self.webhooks = Counter(
            "unsource_escalation_webhooks", "Escalation webhook attempts", ["outcome"], registry=r
        )
        self.index_threads = Gauge("unsource_index_threads", "Threads in the index", registry=r)

    def track_index(self, count: Callable[[], int]) -> None:
        self.index_threads.set_function(lambda: float(count()))


class RequestContext:
    """Gives each request an id (``X-Request-ID`` on the response), times it into the
    latency histogram under its route template, and writes one access-log record."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = uuid.uuid4().hex
        token = request_id_var.set(rid)
        scope.setdefault("state", {})["request_id"] = rid
        status = 500
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in HTTP_METHODS else "other"
            self.metrics.latency.labels(method, route, str(status)).observe(elapsed)
            access_log.info(
                "request",
                extra={
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "principal": scope["state"].get("principal", "-"),
                },
            )
            request_id_var.reset(token)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return pii.redact(value)
    if isinstance(value, dict):
        return {_redacted(k): _redacted(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(v) for v in value]
    return value


class RedactingJsonFormatter(JsonFormatter):
    """JSON lines: every field (message with its arguments, extra fields, traceback text)
    is redacted before it is encoded, so an escape sequence in the encoded line can neither
    hide PII from the redactor nor be broken by it."""

    def serialize_log_record(self, log_data: dict[str, Any]) -> str:
        return super().serialize_log_record(_redacted(log_data))


class RedactingTextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return pii.redact(super().format(record))


def configure_logging(
    fmt: str = "json", level: int = logging.INFO, stream: TextIO | None = None
) -> None:
    """Root logging to stderr: one JSON object per line (or plain text), redacted."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RequestIdFilter())
    if fmt == "json":
        handler.setFormatter(
            RedactingJsonFormatter(
                "{asctime}{levelname}{name}{message}{request_id}",
                style="{",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(
            RedactingTextFormatter(
                "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
            )
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # our access log replaces it
