"""Run `unsource serve` as a real process on a free loopback port, with the demo data."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from eval.launcher import BIN, ServerProcess
from tests.support import API_KEYS


@dataclass
class Served:
    base: str
    log: Path  # the server's stdout + stderr
    proc: subprocess.Popen[bytes]


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
    server = ServerProcess(env, tmp_path / "server.log", bin_path=bin_path, cwd=cwd)
    try:
        server.start(poll=0.5)
        assert server.proc is not None
        yield Served(server.base, server.log, server.proc)
    finally:
        server.stop(timeout=30)
