"""A daemon thread that calls a function every N seconds until stopped."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Periodic:
    """Calls ``fn`` now and then every ``seconds``; an exception is logged and the next
    round runs as usual."""

    def __init__(self, name: str, seconds: float, fn: Callable[[], object]) -> None:
        self.name = name
        self.seconds = seconds
        self.fn = fn
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.fn()
            except Exception:  # keep the loop alive
                log.exception("%s round failed", self.name)
            self._stop.wait(self.seconds)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None


class Once:
    """Runs ``fn(stop)`` once in a daemon thread; ``fn`` should return soon after ``stop``
    is set. An exception is logged."""

    def __init__(self, name: str, fn: Callable[[threading.Event], object]) -> None:
        self.name = name
        self.fn = fn
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            self.fn(self._stop)
        except Exception:
            log.exception("%s failed", self.name)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
