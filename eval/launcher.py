"""The one way to run ``unsource serve`` as a process of its own, on a free loopback port:
the benchmarks (eval/bench.py), the crash harness (eval/crash.py) and the tests
(tests/server.py) all start, wait for, kill and stop servers through it."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

BIN = Path(sys.executable).with_name("unsource")  # this environment's CLI


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """One ``unsource serve`` at a time (``spawn`` again after ``kill`` or ``stop``), its
    output appended to ``log``; ``args`` go before the host and port (e.g. ``--dev``)."""

    def __init__(
        self,
        env: Mapping[str, str],
        log: Path,
        args: Sequence[str] = (),
        bin_path: Path = BIN,
        cwd: Path | None = None,
    ) -> None:
        self.env, self.log, self.args = dict(env), log, list(args)
        self.bin_path, self.cwd = bin_path, cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self.base = ""

    def spawn(self) -> None:
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        command = [str(self.bin_path), "serve", *self.args, "--host", "127.0.0.1"]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*command, "--port", str(port)],
                env=self.env, stdout=out, stderr=subprocess.STDOUT, cwd=self.cwd,
            )  # fmt: skip

    def wait_ready(self, timeout: float = 120, poll: float = 0.05) -> None:
        """Until /readyz answers 200; RuntimeError if the process exits or time runs out."""
        assert self.proc is not None, "spawn first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited ({self.proc.returncode}); see {self.log}")
            time.sleep(poll)
        raise RuntimeError(f"server not ready in {timeout:.0f} s; see {self.log}")

    def start(self, timeout: float = 120, poll: float = 0.05) -> None:
        self.spawn()
        self.wait_ready(timeout, poll)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 60) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=timeout)
