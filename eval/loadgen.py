"""Load generator for ``/v1/suggest``: its own process, ``clients`` concurrent clients on
keep-alive HTTP/1.1 connections, each sending its share of the questions one after another.

``python -m eval.loadgen --url http://127.0.0.1:8000 --questions q.json --clients 16``
prints one JSON object: requests, errors, seconds, throughput, p50/p99/max latency (ms).

The client is a minimal HTTP/1.1 client on asyncio streams (request bytes written
directly, the response read by its Content-Length), as wrk-style load generators are:
the load generator shares the server's machine, and a general-purpose client's own
per-request work (httpx: ~1-2 ms of CPU on these 2 cores) would be counted as the
server's latency and taken from the server's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

TIMEOUT_S = 60.0  # one request's answer, as long as it may take


class HTTPError(Exception):
    """The connection failed or the server's answer is not an HTTP/1.1 response."""


class Connection:
    """One keep-alive HTTP/1.1 connection that POSTs JSON and reads each response."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"--url must be http://host[:port], not {url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.path = parts.path or "/"
        self.authority = parts.netloc
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return self._reader, self._writer

    async def post(self, payload: dict[str, object]) -> tuple[int, bytes]:
        try:
            return await asyncio.wait_for(self._post(payload), TIMEOUT_S)
        except TimeoutError as exc:
            await self.close()
            raise HTTPError(f"no answer within {TIMEOUT_S:g} s") from exc

    async def _post(self, payload: dict[str, object]) -> tuple[int, bytes]:
        body = json.dumps(payload).encode()
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {self.authority}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        try:
            reader, writer = await self._open()
            writer.write(head + body)
            status_line = await reader.readline()
            fields = status_line.split(b" ", 2)
            if len(fields) < 2 or not fields[0].startswith(b"HTTP/1."):
                raise HTTPError(f"not an HTTP/1.1 status line: {status_line[:80]!r}")
            length, close = None, False
            while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value.strip())
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
            if length is None:
                raise HTTPError("the response has no Content-Length")
            data = await reader.readexactly(length)
        except HTTPError:
            await self.close()  # the stream's state is unknown: the next request reconnects
            raise
        except (OSError, ValueError, asyncio.IncompleteReadError) as exc:
            await self.close()
            raise HTTPError(repr(exc)) from exc
        if close:
            await self.close()
        return int(fields[1]), data

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None


async def _client(
    conn: Connection,
    questions: list[str],
    out: list[float],
    errors: list[str],
    tags: list[str] | None = None,
) -> None:
    extra = {"tags": tags} if tags else {}
    for q in questions:
        t0 = time.perf_counter()
        try:
            status, data = await conn.post({"title": q, "k": 5, **extra})
        except HTTPError as exc:
            errors.append(str(exc))
            continue
        if status != 200:
            errors.append(f"{status}: {data[:200].decode(errors='replace')}")
            continue
        out.append((time.perf_counter() - t0) * 1000)


async def run(
    base: str, questions: list[str], clients: int, warmup: int = 20, tags: list[str] | None = None
) -> dict[str, object]:
    url = base.rstrip("/") + "/v1/suggest"
    conns = [Connection(url) for _ in range(clients)]
    try:
        await _client(conns[0], questions[:warmup], [], [], tags)  # connection, caches, JIT
        work = questions[warmup:]
        shares = [work[i::clients] for i in range(clients)]
        latencies: list[float] = []
        errors: list[str] = []
        t0 = time.perf_counter()
        await asyncio.gather(
            *(_client(c, s, latencies, errors, tags) for c, s in zip(conns, shares, strict=True))
        )
        seconds = time.perf_counter() - t0
    finally:
        for c in conns:
            await c.close()
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
