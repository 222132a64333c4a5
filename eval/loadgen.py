"""Load generator for ``/v1/suggest``: its own process, ``clients`` concurrent clients on
keep-alive HTTP connections, each sending its share of the questions one after another.

``python -m eval.loadgen --url http://127.0.0.1:8000 --questions q.json --clients 16``
prints one JSON object: requests, errors, seconds, throughput, p50/p99/max latency (ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import httpx
import numpy as np


async def _client(
    http: httpx.AsyncClient,
    url: str,
    questions: list[str],
    out: list[float],
    errors: list[str],
    tags: list[str] | None = None,
) -> None:
    extra = {"tags": tags} if tags else {}
    for q in questions:
        t0 = time.perf_counter()
        try:
            r = await http.post(url, json={"title": q, "k": 5, **extra})
            if r.status_code != 200:
                errors.append(f"{r.status_code}: {r.text[:200]}")
                continue
        except httpx.HTTPError as exc:
            errors.append(repr(exc))
            continue
        out.append((time.perf_counter() - t0) * 1000)


async def run(
    base: str, questions: list[str], clients: int, warmup: int = 20, tags: list[str] | None = None
) -> dict[str, object]:
    url = base.rstrip("/") + "/v1/suggest"
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        await _client(http, url, questions[:warmup], [], [], tags)  # connections, caches, JIT
        work = questions[warmup:]
        shares = [work[i::clients] for i in range(clients)]
        latencies: list[float] = []
        errors: list[str] = []
        t0 = time.perf_counter()
        await asyncio.gather(*(_client(http, url, s, latencies, errors, tags) for s in shares))
        seconds = time.perf_counter() - t0
    lat = np.array(latencies) if latencies else np.array([float("nan")])
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "seconds": round(seconds, 2),
        "throughput_rps": round(len(latencies) / seconds, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 2),
        "p99_ms": round(float(np.percentile(lat, 99)), 2),
        "max_ms": round(float(lat.max()), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, allow_abbrev=False)
    parser.add_argument("--url", required=True)
    parser.add_argument("--questions", type=Path, required=True, help="JSON list of titles")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--tags", default="", help="comma-separated tag filter for every request")
    args = parser.parse_args()
    questions = json.loads(args.questions.read_text())
    tags = [t for t in args.tags.split(",") if t] or None
    print(json.dumps(asyncio.run(run(args.url, questions, args.clients, tags=tags))))


if __name__ == "__main__":
    main()
