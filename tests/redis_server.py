"""A throwaway Redis server for tests: Debian's ``redis-server`` on a free loopback port,
no persistence, stopped afterwards (``make test`` installs the package)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from eval.launcher import free_port


@contextmanager
def redis_server() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server not found: install it (apt-get install redis-server)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="unsource-redis-") as tmp:
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
             "no", "--dir", tmp],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        url = f"redis://127.0.0.1:{port}/0"
        try:
            client = redis.Redis.from_url(url)
            deadline = time.monotonic() + 20
            while True:
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    assert proc.poll() is None, "redis-server exited"
                    assert time.monotonic() < deadline, "redis-server did not start"
                    time.sleep(0.05)
            yield url
        finally:
            proc.terminate()
            proc.wait(10)
