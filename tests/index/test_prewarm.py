"""A replica's store file handed to the page cache as it starts (index/store/prewarm.py)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from index.store import prewarm
from index.store.factory import open_store


def _file(tmp_path: Path, size: int) -> Path:
    path = tmp_path / "store.db"
    path.write_bytes(b"x" * size)
    return path


class Advised:
    def __init__(self, stop_after: int | None = None, stop: threading.Event | None = None):
        self.calls: list[tuple[int, int]] = []
        self.stop_after, self.stop = stop_after, stop

    def __call__(self, fd: int, offset: int, length: int) -> None:
        self.calls.append((offset, length))
        if self.stop is not None and len(self.calls) == self.stop_after:
            self.stop.set()


def test_the_whole_file_is_advised_step_by_step(tmp_path: Path) -> None:
    size = 2 * prewarm.STEP + 5
    advise = Advised()
    done = prewarm.prewarm_file(_file(tmp_path, size), threading.Event(), 10 * size, advise)
    assert done == size
    assert advise.calls == [(i * prewarm.STEP, prewarm.STEP) for i in range(3)]


def test_a_file_over_half_the_memory_available_is_left_alone(tmp_path: Path) -> None:
    advise = Advised()
    path = _file(tmp_path, 1000)
    assert prewarm.prewarm_file(path, threading.Event(), 1999, advise) == 0
    assert advise.calls == []
    assert prewarm.prewarm_file(path, threading.Event(), 2000, advise) == 1000


def test_unknown_memory_or_a_missing_file_warms_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    advise = Advised()
    monkeypatch.setattr(prewarm, "available_memory", lambda: None)
    assert prewarm.prewarm_file(_file(tmp_path, 10), threading.Event(), None, advise) == 0
    assert prewarm.prewarm_file(tmp_path / "none.db", threading.Event(), 10**9, advise) == 0
    assert advise.calls == []


def test_stop_ends_it_between_steps(tmp_path: Path) -> None:
    stop = threading.Event()
    advise = Advised(stop_after=1, stop=stop)
    path = _file(tmp_path, 3 * prewarm.STEP)
    assert prewarm.prewarm_file(path, stop, 10 * prewarm.STEP, advise) == prewarm.STEP
    assert len(advise.calls) == 1


def test_meminfo_is_read_in_bytes_and_nonsense_is_none(tmp_path: Path) -> None:
    info = tmp_path / "meminfo"
    info.write_text("MemTotal:       24000000 kB\nMemAvailable:   1000 kB\n")
    assert prewarm.available_memory(info) == 1000 * 1024
    info.write_text("MemAvailable: lots\n")
    assert prewarm.available_memory(info) is None
    info.write_text("MemTotal: 5 kB\n")
    assert prewarm.available_memory(info) is None
    assert prewarm.available_memory(tmp_path / "missing") is None


def test_the_sqlite_store_warms_its_own_file(tmp_path: Path) -> None:
    store = open_store(None, tmp_path / "unsource.db")
    try:
        done = store.warm_pages(threading.Event())
        assert done == (tmp_path / "unsource.db").stat().st_size > 0
    finally:
        store.close()
