"""The load generator's HTTP/1.1 client: keep-alive, status, body, and clear failures."""

from __future__ import annotations

import asyncio
import json

import pytest

from eval.loadgen import Connection, HTTPError, run


async def _serve(responses: list[bytes], seen: list[dict[str, object]]) -> asyncio.Server:
    """Answers each request on a connection with the next canned response."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while responses:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
            seen.append(json.loads(await reader.readexactly(length)))
            writer.write(responses.pop(0))
            await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def _response(status: int, body: bytes) -> bytes:
    return f"HTTP/1.1 {status} X\r\ncontent-length: {len(body)}\r\n\r\n".encode() + body


def test_requests_share_one_connection_and_errors_are_counted() -> None:
    async def go() -> dict[str, object]:
        seen: list[dict[str, object]] = []
        canned = [_response(200, b'{"ok":1}')] * 3 + [_response(429, b'{"error":"slow"}')]
        server = await _serve(canned, seen)
        port = server.sockets[0].getsockname()[1]
        async with server:
            out = await run(f"http://127.0.0.1:{port}", ["a", "b", "c", "d"], 1, warmup=1)
        assert [s["title"] for s in seen] == ["a", "b", "c", "d"]  # one connection served all
        assert seen[0] == {"title": "a", "k": 5}
        return out

    out = asyncio.run(go())
    assert out["requests"] == 2 and out["errors"] == 1
    assert str(out["first_error"]).startswith("429")


async def _post_fails(server: asyncio.Server, match: str) -> None:
    """One POST to ``server`` raises HTTPError matching ``match``; then the server stops."""
    port = server.sockets[0].getsockname()[1]
    async with server:
        conn = Connection(f"http://127.0.0.1:{port}/v1/suggest")
        with pytest.raises(HTTPError, match=match):
            await conn.post({"title": "x"})
        await conn.close()
        server.close()


def test_a_response_without_length_is_an_error_not_a_hang() -> None:
    async def go() -> None:
        await _post_fails(await _serve([b"HTTP/1.1 200 OK\r\n\r\n{}"], []), "Content-Length")

    asyncio.run(go())


def test_only_plain_http_urls_are_taken() -> None:
    with pytest.raises(ValueError, match="--url"):
        Connection("https://example.com/v1/suggest")


def test_a_server_that_never_answers_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("eval.loadgen.TIMEOUT_S", 0.2)

    async def go() -> None:
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1 << 16)
            await asyncio.sleep(5)

        await _post_fails(await asyncio.start_server(silent, "127.0.0.1", 0), "no answer")

    asyncio.run(go())
