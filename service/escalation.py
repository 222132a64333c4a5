"""Questions left unanswered past their category's SLA: the escalation list, and a webhook
POSTed once per question when it crosses the SLA (retried with backoff, from a background
thread so that no request ever waits on it).

Every replica runs the delivery loop. Before it POSTs, a replica claims the question for a
lease (``escalation_lease_seconds``, longer than a delivery can take): no other replica
delivers it meanwhile. The claim ends with the recorded result; a replica that dies while
delivering leaves the lease to run out, and another replica claims the question then. A
receiver therefore gets each breach acknowledged once; the one case of a second POST (a
replica killed after the receiver answered 2xx but before the result was recorded) carries
the same ``X-Unsource-Delivery`` id, so receivers can drop it."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import socket
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from index.activity import ActivityStore, Claim, Question
from service.background import Periodic
from service.config import Settings

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


SIGNATURE_TOLERANCE_SECONDS = 300


def sign(secret: str, body: bytes, timestamp: int, delivery: str) -> dict[str, str]:
    """Webhook signature headers: HMAC-SHA256 over ``"<timestamp>.<delivery>.<body>"``, so
    a captured delivery can neither be replayed later nor passed off as another delivery
    (receivers deduplicate on ``X-Unsource-Delivery``, so that id is signed as well).
    Receivers recompute it and refuse a timestamp more than
    ``SIGNATURE_TOLERANCE_SECONDS`` from their clock (``verify``)."""
    signed = f"{timestamp}.{delivery}.".encode() + body
    mac = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return {"x-unsource-timestamp": str(timestamp), "x-unsource-signature": f"sha256={mac}"}


def verify(
    secret: str,
    body: bytes,
    headers: dict[str, str],
    now: float,
    tolerance: float = SIGNATURE_TOLERANCE_SECONDS,
) -> bool:
    """What a receiver checks (``headers`` lower-cased): a fresh timestamp and a signature
    matching the body and the delivery id."""
    try:
        timestamp = int(headers["x-unsource-timestamp"])
        delivery = headers["x-unsource-delivery"]
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp, delivery)["x-unsource-signature"]
    return hmac.compare_digest(expected, headers.get("x-unsource-signature", ""))


class Escalations:
    def __init__(
        self,
        activity: ActivityStore,
        settings: Settings,
        clock: Clock = utcnow,
        on_attempt: Callable[[str], None] | None = None,
        find_experts: Callable[[Question], list[dict[str, Any]]] | None = None,
    ) -> None:
        self.activity = activity
        self.find_experts = find_experts  # service/experts.py; None: no experts notices
        self.settings = settings
        self.clock = clock
        self.on_attempt = on_attempt  # called with "sent" / "failed" / "gave_up"
        self._loop = Periodic("escalations", settings.escalation_check_seconds, self.notify_once)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def due_at(self, q: Question) -> datetime:
        return q.created_at + timedelta(hours=self.settings.sla_for(q.category))

    def overdue(
        self,
        now: datetime | None = None,
        limit: int = 100,
        after: tuple[datetime, str] | None = None,
        page: int = 500,
    ) -> list[Question]:
        """Unanswered questions past their SLA, oldest first, at most ``limit``; ``after``
        (created_at, id) continues from an earlier call's last question. Reads the store a
        page at a time, so however many questions are overdue, every one can be reached."""
        now = now or self.clock()
        cutoff = now - timedelta(hours=min(self.settings.sla_hours.values()))
        out: list[Question] = []
        while len(out) < limit:
            rows = self.activity.unanswered_before(cutoff, page, after)
            out += [q for q in rows if self.due_at(q) <= now][: limit - len(out)]
            if len(rows) < page:
                break
            after = (rows[-1].created_at, rows[-1].id)
        return out

    def claim(self, now: datetime, fraction: float = 1.0) -> Question | None:
        """Claim the oldest question whose breach notice this replica may deliver now; with
        ``fraction`` < 1, whose experts notice is due (at that fraction of the SLA)."""
        sla = self.settings.sla_hours
        cutoffs = {c: now - timedelta(hours=h * fraction) for c, h in sla.items() if c != "default"}
        default = now - timedelta(hours=sla["default"] * fraction)
        until = now + timedelta(seconds=self.settings.escalation_lease_seconds)
        claim = Claim(now, cutoffs, default, self.owner, until)
        if fraction < 1.0:
            return self.activity.claim_experts_due(claim)
        return self.activity.claim_breached(claim)

    def notify_experts(self, url: str) -> int:
        """Send each due experts notice once (one attempt: a head start before the SLA
        notice, which staff get regardless); returns how many went out. A confidential
        question, or one nobody in the community has answered near, gets none."""
        fraction = self.settings.experts_at_fraction
        if not fraction or self.find_experts is None:
            return 0
        sent = 0
        while (q := self.claim(self.clock(), fraction)) is not None:
            if q.triage.get("route") == "staff":
                self.activity.experts_result(q.id, self.clock(), "confidential", self.owner)
                continue
            found = self.find_experts(q)
            if not found:
                self.activity.experts_result(q.id, self.clock(), "no experts", self.owner)
                continue
            payload = self.payload(q, self.clock())
            del payload["overdue_seconds"]  # not overdue: this comes before the SLA
            payload |= {"event": "question.experts_suggested", "experts": found}
            ok, error = self._post(url, payload, delivery=f"{q.id}:experts_suggested")
            self.activity.experts_result(q.id, self.clock(), "" if ok else error, self.owner)
            sent += ok
            if self.on_attempt:
                self.on_attempt("experts_sent" if ok else "experts_failed")
        return sent

    # -- webhook ------------------------------------------------------------------------
    def payload(self, q: Question, now: datetime) -> dict[str, Any]:
        return {
            "event": "question.sla_breached",
            "question": {
                "id": q.id,
                "title": q.title,
                "category": q.category,
                "url": q.url,
                "created_at": q.created_at.isoformat(),
                "due_at": self.due_at(q).isoformat(),
                "route": q.triage.get("route"),
                "queue": q.triage.get("queue"),
            },
            "sla_hours": self.settings.sla_for(q.category),
            "overdue_seconds": round((now - self.due_at(q)).total_seconds(), 1),
        }

    def notify_once(self) -> int:
        """Claim and deliver owed notices until none is left; returns how many were
        delivered. Each question is tried once per call."""
        url = self.settings.escalation_webhook_url
        if not url:
            return 0
        self.notify_experts(url)
        sent = 0
        tried: set[str] = set()
        while (q := self.claim(self.clock())) is not None:
            if q.id in tried:  # its retry is due already: the next round tries it
                self.activity.release(q.id, self.owner)
                break
            tried.add(q.id)
            now = self.clock()
            ok, error = self._post(url, self.payload(q, now), delivery=f"{q.id}:sla_breached")
            retry_at = None
            attempts = q.notify_attempts + 1
            if not ok and attempts < self.settings.webhook_max_attempts:
                backoff = self.settings.webhook_backoff_seconds * 2 ** (attempts - 1)
                retry_at = now + timedelta(seconds=backoff)
            self.activity.notify_result(q.id, ok, self.clock(), retry_at, error, self.owner)
            outcome = "sent" if ok else ("failed" if retry_at else "gave_up")
            if self.on_attempt:
                self.on_attempt(outcome)
            if ok:
                sent += 1
            else:
                log.warning("escalation webhook for %s %s: %s", q.id, outcome, error)
        return sent

    def _post(self, url: str, payload: dict[str, Any], delivery: str) -> tuple[bool, str]:
        body = json.dumps(payload, sort_keys=True).encode()
        headers = {"content-type": "application/json", "x-unsource-delivery": delivery}
        secret = self.settings.escalation_webhook_secret
        if secret:
            headers.update(sign(secret, body, int(self.clock().timestamp()), delivery))
        try:
            r = httpx.post(
                url, content=body, headers=headers, timeout=self.settings.webhook_timeout_seconds
            )
        except httpx.HTTPError as exc:
            return False, f"{type(exc).__name__}: {exc}"
        if 200 <= r.status_code < 300:
            return True, ""
        return False, f"HTTP {r.status_code}"

    # -- background loop ----------------------------------------------------------------
    def start(self) -> None:
        if self.settings.escalation_webhook_url:
            self._loop.start()

    def stop(self) -> None:
        self._loop.stop()
