"""Run `unsource serve` as a real process on a free loopback port, with the demo data."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support import API_KEYS

BIN = Path(sys.executable).parent / "unsource"


@dataclass
class Served:
    base: str
    log: Path  # the server's stdout + stderr
    proc: subprocess.Popen[bytes]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_demo(
    tmp_path: Path,
    triage_dir: Path,
    bin_path: Path = BIN,
    cwd: Path | None = None,
    **env_extra: str,
) -> Iterator[Served]:
    """Load the demo threads, serve them with the test keys, stop the server afterwards;
    ``bin_path`` is the ``unsource`` to run (another install's, for the wheel test)."""
    env = {
        **os.environ,
        "UNSOURCE_DATA_DIR": str(tmp_path / "data"),
        "UNSOURCE_TRIAGE_MODEL_DIR": str(triage_dir),
        "UNSOURCE_API_KEYS": json.dumps([k.model_dump() for k in API_KEYS]),
        "HF_HUB_OFFLINE": "1",
        **env_extra,
    }
    load = subprocess.run(
        [bin_path, "demo", "load", "--if-empty"], env=env, capture_output=True, text=True, cwd=cwd
    )
    assert load.returncode == 0, load.stderr
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [bin_path, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.5)
        yield Served(base, log, proc)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
