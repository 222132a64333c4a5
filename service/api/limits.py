"""Request limits: body size (an ASGI middleware, before any parsing) and per-key rates."""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from service.api.auth import Principal

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[Message], Any]


def presented_keys(headers: dict[bytes, bytes]) -> list[str]:
    """The API keys a request presents (X-API-Key, Authorization: Bearer)."""
    keys = []
    key = headers.get(b"x-api-key", b"").decode("latin-1").strip()
    if key:  # an empty header counts as none, as FastAPI's APIKeyHeader has it
        keys.append(key)
    scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        keys.append(token.strip())
    return keys


# webhooks from forums carry no API key: each verifies its own HMAC signature
SIGNED_PATHS = ("/v1/hooks/",)


class BodyLimit:
    """Refuse bodies over ``limit_for(path, role)`` bytes with 413, by Content-Length or by
    counting the stream, before the app sees them. The key is checked from the headers
    first: a /v1 request without a valid key is refused (401) before a byte of its body is
    read, and the large limits (bulk ingest, whole threads) apply only to roles that may
    send such bodies. ``identify`` maps presented keys to a role (None: no valid key)."""

    def __init__(
        self,
        app: Any,
        limit_for: Callable[[str, str | None], int],
        identify: Callable[[list[str]], str | None],
    ) -> None:
        self.app = app
        self.limit_for = limit_for
        self.identify = identify

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        role = self.identify(presented_keys(headers))
        signed = scope["path"].startswith(SIGNED_PATHS)  # authenticated by their HMAC instead
        if role is None and scope["path"].startswith("/v1/") and not signed:
            await _unauthorized(send)
            return
        limit = self.limit_for(scope["path"], role)
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(send, limit)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _too_large(send, limit)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            message: Message = await receive()
            return message

        await self.app(scope, replay, send)


async def _too_large(send: Send, limit: int) -> None:
    detail = [{"field": "body", "message": f"request body is over {limit} bytes"}]
    await _refuse(send, 413, {"error": "payload_too_large", "detail": detail})


async def _unauthorized(send: Send) -> None:
    detail = [{"field": "X-API-Key", "message": "missing or invalid API key"}]
    await _refuse(send, 401, {"error": "unauthorized", "detail": detail}, bearer=True)


async def _refuse(send: Send, status: int, payload: dict[str, Any], bearer: bool = False) -> None:
    data = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    if bearer:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


SWEEP_SECONDS = 1.0  # how often the in-process counts drop their expired entries


class SweptMemoryStorage(MemoryStorage):
    """limits' in-process storage, its expired entries dropped by one long-lived thread.
    The library's own schedules a 10 ms ``threading.Timer`` on a hit once the last has
    fired, so under load it started a thread nearly every request, on the event loop
    (16 clients at 10k threads: 16 % of the event loop's time was spent in
    ``Thread.start``, every request waiting behind it). Expiry here is only memory: a
    count reads the entries' times itself (moving window) or the key's expiry (fixed)."""

    def __init__(self, sweep_seconds: float = SWEEP_SECONDS) -> None:
        super().__init__()
        ref = weakref.ref(self)
        threading.Thread(
            target=_sweep, args=(ref, sweep_seconds), name="rate-limit-sweep", daemon=True
        ).start()

    def _MemoryStorage__schedule_expiry(self) -> None:  # the library's per-hit timer: none
        return None


def _sweep(ref: weakref.ReferenceType[SweptMemoryStorage], every: float) -> None:
    """Drop expired entries every ``every`` seconds while the storage lives."""
    while True:
        time.sleep(every)
        storage = ref()
        if storage is None:
            return
        storage._MemoryStorage__expire_events()  # type: ignore[attr-defined]
        del storage


SHARED_TIMEOUT = 0.25  # seconds a shared (Redis) count may take before it counts as down
# (loopback Redis answers in well under a millisecond; a busy 2-core CI machine needs slack)
BREAKER_SECONDS = 5.0  # after a failure, the shared storage is left alone this long


class RateLimiter:
    """A moving-window budget per key (per key and client address for public keys), counted
    in ``storage``: in this process (``memory://``), or in Redis (``redis://...``), shared
    by every replica. Redis is given 250 ms (connect and answer); when it fails, a circuit
    breaker leaves it alone for 5 s and the budgets are counted in this process meanwhile
    (security N6: a hung Redis held every request for redis-py's 5 s, a refused one removed
    every limit). So an outage neither stalls the service nor lifts the limits: each
    replica enforces the whole budget on its own, which lets N replicas serve up to N times
    the budget until Redis is back (logged once a minute at most)."""

    def __init__(self, budgets: dict[str, str], storage: str = "memory://") -> None:
        self._items: dict[str, RateLimitItem] = {r: parse(b) for r, b in budgets.items()}
        self.shared = not storage.startswith("memory://")  # counting is network I/O
        self._storage = (
            SweptMemoryStorage()
            if not self.shared
            else storage_from_string(
                storage, socket_timeout=SHARED_TIMEOUT, socket_connect_timeout=SHARED_TIMEOUT
            )
        )
        self._limiter = MovingWindowRateLimiter(self._storage)
        self._local = MovingWindowRateLimiter(SweptMemoryStorage())  # while the shared one is down
        self._down_until = 0.0
        self._warned = 0.0

    def retry_after(self, principal: Principal, client: str) -> int | None:
        """Count one request; None if allowed, else whole seconds until the next one is."""
        item = self._items.get(principal.role)
        if item is None:
            return None
        who = f"{principal.name}@{client}" if principal.role == "public" else principal.name
        if time.monotonic() >= self._down_until:
            try:
                return self._count(self._limiter, item, who)
            except Exception as exc:  # the shared storage is down: count here for a while
                self._down_until = time.monotonic() + BREAKER_SECONDS
                if time.monotonic() - self._warned > 60:
                    self._warned = time.monotonic()
                    log.warning("rate-limit storage unavailable (%s); limiting per replica", exc)
        return self._count(self._local, item, who)

    @property
    def degraded(self) -> bool:
        """Whether the shared storage is being left alone after a failure."""
        return time.monotonic() < self._down_until

    @staticmethod
    def _count(limiter: MovingWindowRateLimiter, item: RateLimitItem, who: str) -> int | None:
        if limiter.hit(item, who):
            return None
        reset = limiter.get_window_stats(item, who).reset_time
        return max(1, math.ceil(reset - time.time()))


LOOPBACK_HOSTS = frozenset(("localhost", "127.0.0.1", "::1", "[::1]"))


def _host_of(value: str) -> str:
    """The host of a Host header or an Origin URL, without scheme and port."""
    value = value.split("://", 1)[-1].split("/", 1)[0].lower()
    if value.startswith("["):  # [::1]:8000
        return value.split("]", 1)[0] + "]"
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def _authority(value: str) -> str:
    """host[:port] of a Host header or an Origin URL (scheme and path dropped; the
    default port made explicit, so Origin http://localhost matches Host localhost:80)."""
    scheme, _, rest = value.rpartition("://")
    authority = rest.split("/", 1)[0].lower()
    host = _host_of(authority)
    port = authority[len(host) :].lstrip(":") or ("443" if scheme == "https" else "80")
    return f"{host}:{port}"


def client_bucket(address: str) -> str:
    """Who a client address counts as, for rate limits and one-vote-per-reader: an IPv4
    address as it is; an IPv6 address by its /64 (one subscriber's allocation, so rotating
    through its 2^64 addresses buys no extra budget or votes)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class DevGuard:
    """Keyless dev mode answers only requests meant for loopback: the Host must be a
    loopback name (a rebinding DNS name pointing at 127.0.0.1 is refused), and a request
    that changes anything must not come from another site (Origin not loopback, or
    Sec-Fetch-Site: cross-site). A page the developer visits cannot act as admin."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        host = _host_of(headers.get(b"host", b"").decode("latin-1"))
        if host not in LOOPBACK_HOSTS:
            detail = [{"field": "Host", "message": "dev mode answers loopback hosts only"}]
            await _refuse(send, 403, {"error": "forbidden", "detail": detail})
            return
        if scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            origin = headers.get(b"origin", b"").decode("latin-1")
            site = headers.get(b"sec-fetch-site", b"").decode("latin-1").lower()
            # same origin only: another local app (http://localhost:3000) is another site
            own = _authority(headers.get(b"host", b"").decode("latin-1"))
            foreign = (origin and _authority(origin) != own) or site in ("cross-site", "same-site")
            if foreign:
                detail = [{"field": "Origin", "message": "cross-site request refused in dev mode"}]
                await _refuse(send, 403, {"error": "forbidden", "detail": detail})
                return
        await self.app(scope, receive, send)
